"""Versions monitored separately (``versions.split``): each version's records are those of
the same model fed only that version's rows, realized performance equals scikit-learn on
that version's joined rows, and a restart mid-window changes no record."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from support.pipeline import (
    HOUR,
    START,
    assert_same_records,
    halves,
    run_in_parts,
    write_predictions,
)

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.core.times import format_time as _time
from driftwarden.detectors.cbpe import CBPE
from driftwarden.detectors.histogram import NumericSummary
from driftwarden.detectors.performance_regression import RegressionPerformanceSummary
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import cli, synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.config.detectors import build_detectors
from driftwarden.monitor.evaluation.version_comparison import comparison_records
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.versions import UNTRACKED
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile

VERSIONS = ("A", "B")
LABELS = "    labels: {ttl: 2h, orphan_ttl: 30m, min_labeled: 100}\n"


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def pipeline_log() -> Iterator[list[logging.LogRecord]]:
    """What the pipeline logs (collected on its logger: the daemon's logging setup, which
    other tests run, stops propagation to the root that ``caplog`` reads)."""
    logger = logging.getLogger("driftwarden.pipeline")
    handler, level = _Collected(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six hours of an A/B split (A gets 60%), B drifting in ``income`` from hour 3 and
    answering worse from hour 4, and labels."""
    directory = tmp_path_factory.mktemp("versions")
    stream = synthetic.Stream(n=14_000, start=START, span=6 * HOUR, seed=8)
    events = synthetic.events(stream)
    rng = np.random.default_rng(3)
    version = np.where(rng.random(events.height) < 0.6, "A", "B")
    version[0] = "A"
    events = events.with_columns(model_version=pl.Series(version))
    shifted = (pl.col("model_version") == "B") & (pl.col("ts") >= START + 3 * HOUR)
    events = events.with_columns(
        pl.when(shifted).then(pl.col("income") * 2.5).otherwise(pl.col("income")).alias("income")
    )
    flipped = pl.Series(rng.random(events.height) < 0.3)  # B answers worse from hour 4
    worse = (pl.col("model_version") == "B") & (pl.col("ts") >= START + 4 * HOUR) & flipped
    events = events.with_columns(
        pl.when(worse).then(1.0 - pl.col("prediction")).otherwise("prediction").alias("prediction")
    )
    labels = synthetic.label_events(events, seed=4, delay=(60_000, 30 * 60_000))
    files = {"events": events, "labels": labels, "directory": directory}
    for name, rows in {"all": events, **_by_version(events)}.items():
        path = directory / f"predictions-{name}.jsonl"
        path.write_bytes(b"\n".join(synthetic.prediction_lines(rows)) + b"\n")
        files[f"predictions-{name}"] = path
    for name, rows in {"all": labels, **_by_version(labels, events)}.items():
        path = directory / f"labels-{name}.jsonl"
        path.write_bytes(b"\n".join(synthetic.label_lines(rows)) + b"\n")
        files[f"labels-{name}"] = path
    return files


def _by_version(rows: pl.DataFrame, events: pl.DataFrame | None = None) -> dict:
    owner = (events if events is not None else rows).select("id", "model_version")
    tagged = rows if events is None else rows.join(owner, on="id", how="left")
    return {v: tagged.filter(pl.col("model_version") == v).select(rows.columns) for v in VERSIONS}


def _config(directory: Path, reference: Path, versions: str | None) -> configuration.Config:
    text = synthetic.config_yaml(str(reference), "sqlite://") + LABELS
    if versions is not None:
        text += f"    versions: {versions}\n"
    path = directory / "config.yaml"
    path.write_text(text)
    return configuration.load(path)


def _results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def _comparable(record: dict) -> tuple:
    """A record without its version (the reference run mixes nothing: one version)."""
    return tuple(sorted((k, v) for k, v in record.items() if k != "model_version"))


@pytest.fixture(scope="module")
def split_results(
    traffic: dict, reference_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict]:
    directory = tmp_path_factory.mktemp("split")
    loaded = _config(directory, reference_file, "{split: true}")
    labels = traffic["labels-all"]
    replay(loaded, traffic["predictions-all"], directory / "out", labels=labels)
    return _results(directory / "out")


@pytest.mark.parametrize("version", VERSIONS)
def test_each_versions_records_are_those_of_its_rows_alone(
    traffic: dict,
    reference_file: Path,
    split_results: list[dict],
    tmp_path: Path,
    version: str,
) -> None:
    loaded = _config(tmp_path, reference_file, None)
    labels = traffic[f"labels-{version}"]
    replay(loaded, traffic[f"predictions-{version}"], tmp_path / "out", labels=labels)
    alone = [r for r in _results(tmp_path / "out") if r["kind"] != "freshness"]
    mine = [
        r
        for r in split_results
        if r["model_version"] == version and r["kind"] != "version_comparison"
    ]
    assert {r["model_version"] for r in alone} == {version}
    kinds = {r["kind"] for r in mine}
    assert {"data_drift", "prediction_drift", "data_quality", "performance"} <= kinds
    assert {"estimated_performance", "fairness"} <= kinds
    assert sorted(map(_comparable, mine), key=repr) == sorted(map(_comparable, alone), key=repr)


def test_only_the_drifting_version_drifts_in_the_shifted_feature(split_results: list) -> None:
    flagged = {
        (r["model_version"], r["window_index"])
        for r in split_results
        if r["kind"] == "data_drift" and r["feature"] == "income" and r["drift"]
    }
    assert flagged == {("B", window) for window in range(3, 6)}


def _joined(traffic: dict) -> pl.DataFrame:
    """Predictions with the labels that joined them (within the 2 h ttl)."""
    events, labels = traffic["events"], traffic["labels"]
    joined = events.drop("label").join(
        labels.select("id", pl.col("ts").alias("label_ts"), "label"), on="id"
    )
    return joined.filter(pl.col("label_ts") <= pl.col("ts") + 2 * HOUR)


def test_performance_of_each_version_equals_scikit_learn_on_its_joined_rows(
    traffic: dict, split_results: list[dict]
) -> None:
    joined = _joined(traffic)
    for version in VERSIONS:
        for window in range(6):
            start = START + window * HOUR
            part = joined.filter(
                (pl.col("model_version") == version)
                & (pl.col("ts") >= start)
                & (pl.col("ts") < start + HOUR)
            )
            y, predicted = part["label"].to_numpy(), part["prediction"].to_numpy() >= 0.5
            mine = {
                r["metric"]: r
                for r in split_results
                if r["kind"] == "performance"
                and r["model_version"] == version
                and r["window_index"] == window
            }
            assert mine["accuracy"]["n_labeled"] == len(y)
            assert mine["accuracy"]["value"] == pytest.approx(accuracy_score(y, predicted))
            assert mine["precision"]["value"] == pytest.approx(precision_score(y, predicted))
            assert mine["recall"]["value"] == pytest.approx(recall_score(y, predicted))
            assert mine["f1"]["value"] == pytest.approx(f1_score(y, predicted))


def test_a_restart_mid_window_changes_no_versions_record(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    loaded = _config(tmp_path, reference_file, "{split: true}")
    events = traffic["events"]
    cut = START + 2 * HOUR + HOUR // 3  # inside window 2, both versions with open panes
    parts = halves(events, cut, tmp_path)
    whole = write_predictions(tmp_path / "whole.jsonl", events)
    once, _ = run_in_parts(loaded, [whole], f"sqlite:///{tmp_path / 'once.db'}")
    restarted, _ = run_in_parts(loaded, parts, f"sqlite:///{tmp_path / 'restarted.db'}")
    assert {r.model_version for r in once} == {"A", "B"}
    assert_same_records(restarted, once)


def test_versions_beyond_max_tracked_are_counted_and_ignored(
    traffic: dict, reference_file: Path, tmp_path: Path, pipeline_log: list[logging.LogRecord]
) -> None:
    loaded = _config(tmp_path, reference_file, "{split: true, max_tracked: 1}")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    results, report = run_in_parts(loaded, [traffic["predictions-all"]], url)
    n_b = traffic["events"].filter(pl.col("model_version") == "B").height
    assert report.ignored == {UNTRACKED: n_b}
    assert report.events == {synthetic.MODEL: traffic["events"].height - n_b}
    assert {r.model_version for r in results} == {"A"}
    registry = CollectorRegistry()
    Metrics(registry, loaded.models).record(report, loaded.models)
    ignored = {"reason": UNTRACKED}
    assert registry.get_sample_value("driftwarden_events_ignored_total", ignored) == n_b
    refused = [r.getMessage() for r in pipeline_log if "'B'" in r.getMessage()]
    assert len(refused) == 1 and "versions.max_tracked" in refused[0]


def test_a_version_not_seen_for_forget_after_is_no_longer_reported(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    events = traffic["events"]
    gone = START + 2 * HOUR  # B stops; A goes on for four hours
    events = events.filter((pl.col("model_version") == "A") | (pl.col("ts") < gone))
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    loaded = _config(tmp_path, reference_file, "{split: true, forget_after: 90m}")
    replay(loaded, path, tmp_path / "out")
    results = _results(tmp_path / "out")
    windows = {
        v: {
            r["window_index"]
            for r in results
            if r["model_version"] == v and r["kind"] != "freshness"
        }
        for v in VERSIONS
    }
    assert windows == {"A": set(range(6)), "B": {0, 1}}
    last_b = events.filter(pl.col("model_version") == "B")["ts"].max()
    closed_b = max(r["window_end"] for r in results if r["model_version"] == "B")
    assert closed_b == _time(START + 2 * HOUR) and last_b < gone


@pytest.mark.parametrize("split", [(False, True), (True, False)], ids=["on", "off"])
def test_turning_split_on_or_off_starts_the_open_windows_afresh(
    traffic: dict,
    reference_file: Path,
    tmp_path: Path,
    pipeline_log: list[logging.LogRecord],
    split: tuple[bool, bool],
) -> None:
    configs = [_config(tmp_path, reference_file, "{split: true}" if on else None) for on in split]
    parts = halves(traffic["events"], START + 2 * HOUR + HOUR // 3, tmp_path)
    results, _ = run_in_parts(configs, parts, f"sqlite:///{tmp_path / 'db.sqlite'}")
    said = " ".join(r.getMessage() for r in pipeline_log)
    assert "start afresh" in said or "start windows of their own" in said
    after = [r for r in results if r.kind == "data_drift" and r.window_index >= 3]
    versions = {r.model_version for r in after}
    assert versions == ({"A", "B"} if split[1] else {"A"})


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_the_challengers_error_rate_difference_is_the_textbook_two_proportion_comparison(
    traffic: dict, split_results: list[dict]
) -> None:
    joined = _joined(traffic)
    z = stats.norm.ppf(0.975)
    flagged = []
    for window in range(6):
        start = START + window * HOUR
        inside = joined.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
        arms = {}
        for version in VERSIONS:
            part = inside.filter(pl.col("model_version") == version)
            wrong = (part["prediction"].to_numpy() >= 0.5) != (part["label"].to_numpy() == 1)
            arms[version] = (int(wrong.sum()), part.height)
        (k0, n0), (k1, n1) = arms["A"], arms["B"]
        p0, p1 = k0 / n0, k1 / n1
        (l0, u0), (l1, u1) = _wilson(k0, n0, z), _wilson(k1, n1, z)
        pooled = (k0 + k1) / (n0 + n1)
        statistic = (p1 - p0) / math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        (record,) = [
            r
            for r in split_results
            if r["kind"] == "version_comparison"
            and r["window_index"] == window
            and r["metric"] == "error_rate"
        ]
        assert (record["model_version"], record["champion_version"]) == ("B", "A")
        assert (record["metric"], record["detector"]) == ("error_rate", "two_proportion_z")
        assert (record["n_reference"], record["n_labeled"]) == (n0, n1)
        assert record["value"] == pytest.approx(p1 - p0, abs=1e-12)
        low = p1 - p0 - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
        high = p1 - p0 + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
        assert record["ci_low"] == pytest.approx(low, abs=1e-9)
        assert record["ci_high"] == pytest.approx(high, abs=1e-9)
        p_value = 2 * stats.norm.sf(abs(statistic))
        assert record["p_value"] == pytest.approx(p_value, rel=1e-9, abs=1e-300)
        if record["drift"]:
            flagged.append(window)
    assert flagged == [4, 5]


def _window_predictions(events: pl.DataFrame, window: int) -> dict[str, np.ndarray]:
    """Each version's raw predictions in the hour ``window``."""
    start = START + window * HOUR
    inside = events.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
    return {
        v: inside.filter(pl.col("model_version") == v)["prediction"].to_numpy() for v in VERSIONS
    }


def test_the_challengers_prediction_distribution_is_each_drift_detector_on_the_raw_predictions(
    traffic: dict, split_results: list[dict], profile: Profile
) -> None:
    detectors = build_detectors(None, "test").numeric
    assert profile.prediction_reference is not None
    shift = profile.prediction_reference.shift
    drifted = set()
    for window in range(6):
        raw = _window_predictions(traffic["events"], window)
        summaries = {
            v: NumericSummary.from_columns(raw[v][None, :], profile.prediction_edges, shift)
            for v in VERSIONS
        }
        records = {
            r["detector"]: r
            for r in split_results
            if r["kind"] == "version_comparison"
            and r["window_index"] == window
            and r["metric"] == "prediction_distribution"
        }
        assert set(records) == {d.name for d in detectors}
        for detector in detectors:
            (expected,) = detector.numeric(summaries["A"], summaries["B"], profile.prediction_edges)
            record = records[detector.name]
            assert (record["model_version"], record["champion_version"]) == ("B", "A")
            assert record["feature"] is None
            assert (record["n_reference"], record["n_window"]) == (raw["A"].size, raw["B"].size)
            assert record["value"] == pytest.approx(expected.value, rel=1e-12, abs=1e-15)
            assert (record["threshold"], record["drift"]) == (expected.threshold, expected.drift)
            if record["drift"]:
                drifted.add(window)
        ks = stats.ks_2samp(raw["B"], raw["A"]).statistic
        assert abs(records["ks"]["value"] - ks) <= records["ks"]["error_bound"] + 1e-12
    assert drifted == {4, 5}  # B's predictions flipped from hour 4


def test_the_challengers_estimated_error_rate_is_the_poisson_binomial_comparison_of_its_rows(
    traffic: dict, split_results: list[dict], profile: Profile
) -> None:
    """Computed here from each version's scores and the profile's calibration. (B's flipped
    scores keep their expected errors: a score s and 1 - s are wrong with the same
    calibrated probability here, so no drift is expected, as CBPE cannot see that.)"""
    assert profile.outcomes.cbpe is not None
    calibration = CBPE.from_state(profile.outcomes.cbpe).calibration
    z = stats.norm.ppf(0.975)
    for window in range(6):
        arms = {}
        for version, scores in _window_predictions(traffic["events"], window).items():
            bins = np.minimum((scores * calibration.size).astype(int), calibration.size - 1)
            positive = calibration[bins]  # the calibrated probability of label 1
            wrong = np.where(scores >= 0.5, 1.0 - positive, positive)
            arms[version] = (wrong.sum(), (positive * (1.0 - positive)).sum(), scores.size)
        (e0, v0, n0), (e1, v1, n1) = arms["A"], arms["B"]
        difference = e1 / n1 - e0 / n0
        se = math.sqrt(v1 / n1**2 + v0 / n0**2)
        (record,) = [
            r
            for r in split_results
            if r["kind"] == "version_comparison"
            and r["window_index"] == window
            and r["metric"] == "estimated_error_rate"
        ]
        assert (record["detector"], record["champion_version"]) == ("poisson_binomial_z", "A")
        assert (record["n_reference"], record["n_labeled"]) == (n0, n1)
        assert record["value"] == pytest.approx(difference, abs=1e-12)
        assert record["ci_low"] == pytest.approx(difference - z * se, abs=1e-12)
        assert record["ci_high"] == pytest.approx(difference + z * se, abs=1e-12)
        p_value = 2 * stats.norm.sf(abs(difference) / se)
        assert record["p_value"] == pytest.approx(p_value, rel=1e-9, abs=1e-300)
        assert record["drift"] == (p_value < 0.05 and difference > 0)


def test_a_regression_challengers_absolute_error_is_welchs_test_of_scipy() -> None:
    rng = np.random.default_rng(11)
    y = {arm: rng.normal(50.0, 10.0, n) for arm, n in (("champion", 900), ("challenger", 700))}
    predicted = {
        "champion": y["champion"] + rng.normal(0.0, 3.0, 900),
        "challenger": y["challenger"] + rng.normal(0.4, 3.3, 700),
    }
    summaries = {
        arm: LabelSummary(
            y[arm].size,
            RegressionPerformanceSummary.from_arrays(y[arm], predicted[arm], shift=50.0),
            (),
        )
        for arm in y
    }
    window = WindowInfo("eta", "2", "ref", 3, START, START + HOUR)
    (record,) = comparison_records(
        window, "1", summaries["champion"], summaries["challenger"], 750, min_labeled=500
    )
    errors = {arm: np.abs(y[arm] - predicted[arm]) for arm in y}
    welch = stats.ttest_ind(errors["challenger"], errors["champion"], equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert (record.kind, record.detector, record.metric) == (
        "version_comparison",
        "welch_t",
        "absolute_error",
    )
    assert record.value == pytest.approx(errors["challenger"].mean() - errors["champion"].mean())
    assert record.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert (record.ci_low, record.ci_high) == pytest.approx(tuple(interval), rel=1e-9)
    assert (record.n_reference, record.n_labeled, record.n_window) == (900, 700, 750)
    assert record.drift == (welch.pvalue < 0.05 and record.value > 0)


ALERTS = """\
alerts:
  group_by: [model, model_version, rule]
  group_wait: 0s
  channels:
    hook:
      type: webhook
      url: "http://127.0.0.1:9/hook"
      secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]
    retrain:
      type: retrain
      url: "http://127.0.0.1:9/retrain"
      secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]
  rules:
    - {name: challenger, match: [kind=version_comparison, metric=error_rate],
       comparison: COMPARISON,
       severity: warning, channels: [hook, retrain]}
    - {name: income, match: [kind=data_drift, feature=income], severity: warning,
       channels: [hook]}
"""


@pytest.mark.parametrize(
    ("champion", "comparison"), [("A", "worse"), ("B", "better")], ids=["worse", "better"]
)
def test_alerts_on_versions_carry_the_version_and_the_comparison(
    traffic: dict, reference_file: Path, tmp_path: Path, champion: str, comparison: str
) -> None:
    text = synthetic.config_yaml(str(reference_file), "sqlite://") + LABELS
    text += f"    versions: {{split: true, champion: {champion}}}\n"
    text += ALERTS.replace("COMPARISON", comparison)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    loaded = configuration.load(path)
    labels = traffic["labels-all"]
    replay(loaded, traffic["predictions-all"], tmp_path / "out", labels=labels)
    lines = [
        orjson.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()
    ]
    retrain = [line for line in lines if line["channel"] == "retrain"]
    assert retrain and not any("failed" in line for line in retrain)  # retrain.v1 holds
    (evidence,) = retrain[0]["payload"]["evidence"]
    assert (evidence["kind"], evidence["model_version"]) == (
        "version_comparison",
        "B" if champion == "A" else "A",
    )
    assert evidence["champion_version"] == champion and evidence["ci_low"] is not None
    lines = [line for line in lines if line["channel"] == "hook"]
    firing = [line["payload"] for line in lines if line["payload"]["status"] == "firing"]
    by_rule = {}
    for body in firing:
        by_rule.setdefault(body["group_labels"]["rule"], []).append(body)
    challenger = "A" if champion == "B" else "B"
    (compared,) = by_rule["challenger"]  # one incident, windows 4 and 5
    assert compared["group_labels"]["model_version"] == challenger
    (alert,) = compared["alerts"]
    assert alert["labels"]["model_version"] == challenger
    evidence = alert["evidence"]
    assert (evidence["champion_version"], evidence["window_index"]) == (champion, 4)
    assert evidence["ci_low"] < evidence["value"] < evidence["ci_high"]
    assert (evidence["value"] > 0) == (comparison == "worse")
    drifted = {body["group_labels"]["model_version"] for body in by_rule["income"]}
    assert drifted == {"B"}


def test_results_version_prints_the_records_of_one_version(
    traffic: dict,
    reference_file: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    text = (
        synthetic.config_yaml(str(reference_file), url) + LABELS + "    versions: {split: true}\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    loaded = configuration.load(path)
    replay(loaded, traffic["predictions-all"], tmp_path / "out", storage_url=url)
    written = _results(tmp_path / "out")
    capsysbinary.readouterr()
    assert cli.main(["results", "--config", str(path), "--version", "B"], environ={}) == 0
    printed = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    expected = [r for r in written if r["model_version"] == "B"]
    assert printed and sorted(printed, key=repr) == sorted(expected, key=repr)


def _as_closed(results: list[dict]) -> BatchReport:
    """Replay's records as the windows a batch closed, in window order."""
    report = BatchReport()
    windows: dict[tuple, list[ResultRecord]] = {}
    for line in results:
        record = ResultRecord.from_json(line)
        if record.kind != "freshness":
            windows.setdefault((record.window_index, record.model_version), []).append(record)
    for (_, version), records in sorted(windows.items(), key=lambda item: item[0][0]):
        first = records[0]
        info = WindowInfo(
            first.model,
            version,
            first.reference_id,
            first.window_index,
            first.window_start,
            first.window_end,
        )
        report.closed.append((info, records))
    return report


def test_version_gauges_follow_each_versions_latest_window(
    traffic: dict, reference_file: Path, tmp_path: Path, split_results: list[dict]
) -> None:
    loaded = _config(tmp_path, reference_file, "{split: true}")
    registry = CollectorRegistry()
    Metrics(registry, loaded.models).record(_as_closed(split_results), loaded.models)
    model = synthetic.MODEL

    def gauge(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": model, **labels})

    def latest(version: str, kind: str, metric: str) -> dict:
        mine = [
            r
            for r in split_results
            if (r["model_version"], r["kind"], r["metric"]) == (version, kind, metric)
        ]
        return max(mine, key=lambda r: r["window_index"])

    for version in VERSIONS:
        accuracy = latest(version, "performance", "accuracy")["value"]
        labels = {"model_version": version, "metric": "accuracy", "kind": "realized"}
        assert gauge("driftwarden_version_performance", **labels) == accuracy
    champion = latest("A", "performance", "accuracy")["value"]
    assert gauge("driftwarden_performance", metric="accuracy", kind="realized") == champion
    compared = latest("B", "version_comparison", "error_rate")
    labels = {"model_version": "B", "metric": "error_rate"}
    for stat, field in (("difference", "value"), ("ci_low", "ci_low"), ("p_value", "p_value")):
        assert gauge("driftwarden_version_comparison", **labels, stat=stat) == compared[field]
    assert gauge("driftwarden_version_comparison_worse", **labels) == 1.0
    estimated = latest("B", "version_comparison", "estimated_error_rate")
    labels = {"model_version": "B", "metric": "estimated_error_rate", "stat": "difference"}
    assert gauge("driftwarden_version_comparison", **labels) == estimated["value"]
    for detector in ("psi", "ks", "wasserstein"):
        (distance,) = [
            r
            for r in split_results
            if (r["window_index"], r["metric"], r["detector"])
            == (5, "prediction_distribution", detector)
        ]
        labels = {"model_version": "B", "detector": detector}
        assert gauge("driftwarden_version_prediction_distance", **labels) == distance["value"]
        drift = gauge("driftwarden_version_prediction_distance_drift", **labels)
        assert drift == float(distance["drift"])
    flagged = sum(
        1
        for r in split_results
        if (r["model_version"], r["kind"], r["window_index"]) == ("B", "data_drift", 5)
        and r["drift"]
    )
    drifted = gauge("driftwarden_version_drifted_features", model_version="B")
    assert drifted == flagged >= 1


def test_version_gauges_keep_at_most_max_tracked_versions(
    reference_file: Path, tmp_path: Path
) -> None:
    loaded = _config(tmp_path, reference_file, "{split: true, max_tracked: 3}")
    report = BatchReport()
    for i, version in enumerate(["v1", "v2", "v3", "v4", "v5"]):
        window = WindowInfo(synthetic.MODEL, version, "ref", i, START, START + HOUR)
        record = ResultRecord.from_json(
            {
                "model": synthetic.MODEL,
                "model_version": version,
                "reference_id": "ref",
                "window_start": START,
                "window_end": START + HOUR,
                "window_index": i,
                "kind": "data_drift",
                "detector": "psi",
                "feature": "income",
                "value": 0.1,
                "direction": "above",
                "drift": False,
                "status": "ok",
            }
        )
        report.closed.append((window, [record]))
    registry = CollectorRegistry()
    Metrics(registry, loaded.models).record(report, loaded.models)
    exported = {
        sample.labels["model_version"]
        for family in registry.collect()
        if family.name == "driftwarden_version_drifted_features"
        for sample in family.samples
    }
    assert exported == {"v3", "v4", "v5"}


def test_in_shadow_each_label_joins_every_versions_prediction_of_its_id(
    reference_file: Path, tmp_path: Path
) -> None:
    stream = synthetic.Stream(n=6_000, start=START, span=3 * HOUR, seed=12)
    champion = synthetic.events(stream).with_columns(model_version=pl.lit("A"))
    rng = np.random.default_rng(9)
    sharper = np.clip(champion["label"].to_numpy() * 0.5 + rng.random(champion.height) * 0.5, 0, 1)
    shadow = champion.with_columns(model_version=pl.lit("B"), prediction=pl.Series(sharper))
    events = pl.concat([champion, shadow]).sort("ts", maintain_order=True)
    labels = synthetic.label_events(champion, seed=6, delay=(60_000, 20 * 60_000))
    predictions, label_file = tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    label_file.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    loaded = _config(tmp_path, reference_file, "{split: true}")
    outcome = replay(loaded, predictions, tmp_path / "out", labels=label_file)
    assert not outcome.dead_letters  # no label left an orphan
    results = _results(tmp_path / "out")
    truth = dict(zip(labels["id"].to_list(), labels["label"].to_list(), strict=True))
    for version, rows in (("A", champion), ("B", shadow)):
        for window in range(3):
            start = START + window * HOUR
            part = rows.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
            part = part.filter(pl.col("id").is_in(list(truth)))
            y = np.array([truth[i] for i in part["id"].to_list()])
            predicted = part["prediction"].to_numpy() >= 0.5
            (accuracy,) = [
                r
                for r in results
                if (r["model_version"], r["window_index"], r["kind"], r["metric"])
                == (version, window, "performance", "accuracy")
            ]
            assert accuracy["n_labeled"] == len(y)
            assert accuracy["value"] == pytest.approx(accuracy_score(y, predicted))
    compared = [r for r in results if r["kind"] == "version_comparison"]
    better = [r for r in compared if r["detector"] == "mcnemar_exact"]  # paired: same ids
    assert better and all(r["value"] < 0 and r["model_version"] == "B" for r in better)


def test_a_version_that_comes_back_goes_on_numbering_its_windows(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    events = traffic["events"]
    away = (pl.col("ts") >= START + 2 * HOUR) & (pl.col("ts") < START + 5 * HOUR)
    events = events.filter((pl.col("model_version") == "A") | ~away)
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    loaded = _config(tmp_path, reference_file, "{split: true, forget_after: 90m}")
    replay(loaded, path, tmp_path / "out")
    records = [
        r
        for r in _results(tmp_path / "out")
        if r["model_version"] == "B"
        and (r["kind"], r["detector"], r["feature"]) == ("data_drift", "psi", "income")
    ]
    # its windows go on where they stopped: those of its absence close empty when it is back
    by_start = {r["window_start"]: (r["window_index"], r["status"]) for r in records}
    assert len(records) == len(by_start) == 6
    for hour in range(6):
        index, status = by_start[_time(START + hour * HOUR)]
        assert index == hour
        assert (status == "ok") == (hour not in (2, 3, 4))


@pytest.mark.parametrize("scored_by", ["B", None])
def test_the_champion_is_by_default_the_version_the_reference_was_scored_by(
    traffic: dict, reference_file: Path, tmp_path: Path, scored_by: str | None
) -> None:
    reference = pl.read_parquet(reference_file)
    if scored_by is not None:  # mostly B, some A: the most frequent is the champion
        versions = np.where(np.arange(reference.height) % 4 == 0, "A", scored_by)
        reference = reference.with_columns(model_version=pl.Series(versions))
    reference.write_parquet(tmp_path / "reference.parquet")
    loaded = _config(tmp_path, tmp_path / "reference.parquet", "{split: true}")
    replay(
        loaded,
        traffic["predictions-all"],
        tmp_path / "out",
        labels=traffic["labels-all"],
    )
    compared = [r for r in _results(tmp_path / "out") if r["kind"] == "version_comparison"]
    first_seen = traffic["events"]["model_version"][0]
    champion = scored_by or first_seen
    challenger = ({"A", "B"} - {champion}).pop()
    assert compared
    assert {(r["model_version"], r["champion_version"]) for r in compared} == {
        (challenger, champion)
    }


def test_without_labels_a_challenger_is_compared_by_its_predictions_and_estimated_errors(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        synthetic.config_yaml(str(reference_file), "sqlite://") + "    versions: {split: true}\n"
    )
    replay(configuration.load(path), traffic["predictions-all"], tmp_path / "out")
    compared = [r for r in _results(tmp_path / "out") if r["kind"] == "version_comparison"]
    assert {(r["metric"], r["detector"]) for r in compared} == {
        ("prediction_distribution", "psi"),
        ("prediction_distribution", "ks"),
        ("prediction_distribution", "wasserstein"),
        ("estimated_error_rate", "poisson_binomial_z"),
    }
    assert len(compared) == 4 * 6 and all(r["status"] == "ok" for r in compared)


def _model_rows(task: str, version: str, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """A multiclass or regression model's rows; version B predicts otherwise."""
    x = rng.normal(0.0, 1.0, n)
    if task == "multiclass_classification":
        weights = [0.5, 0.3, 0.2] if version == "A" else [0.3, 0.3, 0.4]
        return pl.DataFrame({"x": x, "prediction": rng.choice(["cat", "dog", "owl"], n, p=weights)})
    return pl.DataFrame({"x": x, "prediction": 3.0 * x + (0.0 if version == "A" else 2.0)})


@pytest.mark.parametrize("task", ["multiclass_classification", "regression"])
def test_a_challengers_prediction_distribution_equals_scipy_on_both_versions_predictions(
    task: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(9)
    _model_rows(task, "A", 5_000, rng).write_parquet(tmp_path / "reference.parquet")
    n = 4_000
    events = pl.concat(
        [_model_rows(task, v, n, rng).with_columns(model_version=pl.lit(v)) for v in VERSIONS]
    ).with_columns(
        model=pl.lit("m"),
        id=pl.format("r{}", pl.int_range(2 * n)),
        ts=START + pl.Series(rng.integers(0, 2 * HOUR, 2 * n)),
    )
    events = events.sort("ts")
    predictions = events.select(
        "model", "id", "ts", "model_version", pl.struct("x").alias("features"), "prediction"
    )
    (tmp_path / "predictions.jsonl").write_text(predictions.write_ndjson())
    (tmp_path / "config.yaml").write_text(
        'storage:\n  url: "sqlite://"\nmodels:\n  m:\n'
        f"    task: {task}\n    reference: {tmp_path / 'reference.parquet'}\n"
        "    features: {numeric: [x]}\n"
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}\n"
        '    versions: {split: true, champion: "A"}\n'
    )
    replay(configuration.load(tmp_path / "config.yaml"), tmp_path / "predictions.jsonl",
           tmp_path / "out")  # fmt: skip
    compared = [r for r in _results(tmp_path / "out") if r["kind"] == "version_comparison"]
    for window in range(2):
        start = START + window * HOUR
        inside = events.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
        raw = {v: inside.filter(pl.col("model_version") == v)["prediction"] for v in VERSIONS}
        mine = {r["detector"]: r for r in compared if r["window_index"] == window}
        assert all(r["metric"] == "prediction_distribution" for r in mine.values())
        assert all(r["model_version"] == "B" and r["drift"] for r in mine.values())
        if task == "regression":
            assert set(mine) == {"psi", "ks", "wasserstein"}
            ks = stats.ks_2samp(raw["B"].to_numpy(), raw["A"].to_numpy()).statistic
            assert abs(mine["ks"]["value"] - ks) <= mine["ks"]["error_bound"] + 1e-12
        else:
            assert set(mine) == {"psi", "chi_square", "jensen_shannon"}
            table = np.array(
                [[int((raw[v] == c).sum()) for c in ("cat", "dog", "owl")] for v in VERSIONS]
            )
            chi2 = stats.chi2_contingency(table, correction=False)
            assert mine["chi_square"]["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9, abs=1e-300)
            cramers_v = math.sqrt(chi2.statistic / table.sum())
            assert mine["chi_square"]["value"] == pytest.approx(cramers_v, rel=1e-9)
        assert mine["psi"]["n_reference"] == raw["A"].len()
        assert mine["psi"]["n_window"] == raw["B"].len()
