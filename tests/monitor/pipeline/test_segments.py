"""Segments (``segments``): each segment's records are those of the same model fed only
that segment's rows against only its reference rows, its statistics equal scipy's on those
raw rows, drift planted in one segment is flagged in that segment only, a value the
reference never had (or one spelled ``__other__``) goes to ``__other__``, and a restart
mid-window changes no record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from support.pipeline import (
    HOUR,
    START,
    assert_same_records,
    halves,
    run_in_parts,
    write_predictions,
)

from driftwarden.alerts.config import RuleConfig
from driftwarden.alerts.rules import Rule, result_fields
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import cli, synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.pipeline.segments import SEGMENT_KINDS
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.windows.profile import read_reference
from driftwarden.monitor.windows.segmentation import OTHER, fit_segments

SEGMENTS = "    segments: {attributes: [region, sex], min_reference_rows: 200}\n"
DRIFTING = "north"


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six hours of events, ``income`` drifting in region north only from hour 3, and a
    region the reference never had (``atlantis``) in a few rows."""
    directory = tmp_path_factory.mktemp("segments")
    stream = synthetic.Stream(n=14_000, start=START, span=6 * HOUR, seed=8)
    events = synthetic.events(stream)
    shifted = (pl.col("region") == DRIFTING) & (pl.col("ts") >= START + 3 * HOUR)
    events = events.with_columns(
        pl.when(shifted).then(pl.col("income") * 2.5).otherwise(pl.col("income")).alias("income")
    )
    rng = np.random.default_rng(5)
    unseen = pl.Series(rng.random(events.height) < 0.01)
    events = events.with_columns(
        pl.when(unseen).then(pl.lit("atlantis")).otherwise(pl.col("region")).alias("region")
    )
    path = write_predictions(directory / "predictions.jsonl", events)
    return {"events": events, "predictions": path, "directory": directory}


def _config(directory: Path, reference: Path, segments: bool) -> configuration.Config:
    text = synthetic.config_yaml(str(reference), "sqlite://") + (SEGMENTS if segments else "")
    path = directory / "config.yaml"
    path.write_text(text)
    return configuration.load(path)


def _results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def segmented(
    traffic: dict, reference_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict]:
    directory = tmp_path_factory.mktemp("segmented")
    replay(_config(directory, reference_file, True), traffic["predictions"], directory / "out")
    return _results(directory / "out")


def _comparable(record: dict) -> tuple:
    """A record without what names its reference file and segment."""
    return tuple(sorted((k, v) for k, v in record.items() if k not in ("segment", "reference_id")))


@pytest.mark.parametrize("region", [DRIFTING, "east"])
def test_a_segments_records_are_those_of_its_rows_against_its_reference_rows(
    traffic: dict, reference_file: Path, segmented: list[dict], tmp_path: Path, region: str
) -> None:
    reference = pl.read_parquet(reference_file).filter(pl.col("region") == region)
    reference.write_parquet(tmp_path / "reference.parquet")
    rows = traffic["events"].filter(pl.col("region") == region)
    path = write_predictions(tmp_path / "predictions.jsonl", rows)
    replay(_config(tmp_path, tmp_path / "reference.parquet", False), path, tmp_path / "out")
    alone = [r for r in _results(tmp_path / "out") if r["kind"] in SEGMENT_KINDS]
    mine = [r for r in segmented if r["segment"] == f"region={region}"]
    assert {r["kind"] for r in mine} == set(SEGMENT_KINDS) - {"business_metric"}  # none set
    assert sorted(map(_comparable, mine), key=repr) == sorted(map(_comparable, alone), key=repr)


def test_segment_statistics_equal_scipy_and_counts_on_the_segments_raw_rows(
    traffic: dict, reference_file: Path, segmented: list[dict]
) -> None:
    from scipy import stats

    reference = pl.read_parquet(reference_file).filter(pl.col("region") == DRIFTING)
    events = traffic["events"]
    for window in range(6):
        start = START + window * HOUR
        rows = events.filter(
            (pl.col("region") == DRIFTING) & (pl.col("ts") >= start) & (pl.col("ts") < start + HOUR)
        )
        mine = {
            (r["kind"], r["detector"], r["feature"], r["metric"]): r
            for r in segmented
            if r["segment"] == f"region={DRIFTING}" and r["window_index"] == window
        }
        ks = mine[("data_drift", "ks", "income", None)]
        expected = stats.ks_2samp(reference["income"].drop_nulls(), rows["income"].drop_nulls())
        assert ks["n_window"] == rows.height
        assert ks["n_reference"] == reference.height
        assert abs(ks["value"] - expected.statistic) <= ks["error_bound"] + 1e-12
        missing = mine[("data_quality", "data_quality", "age", "missing_rate")]
        assert missing["value"] == pytest.approx(rows["age"].null_count() / rows.height)


def test_drift_planted_in_one_segment_is_flagged_in_that_segment_only(
    segmented: list[dict],
) -> None:
    income = [
        r
        for r in segmented
        if r["kind"] == "data_drift"
        and r["feature"] == "income"
        and (r["segment"] or "").startswith("region=")
    ]
    flagged = {
        (r["segment"], r["window_index"])
        for r in income
        if r["drift"] and r["detector"] in ("ks", "psi")
    }
    assert flagged == {(f"region={DRIFTING}", window) for window in range(3, 6)}
    for window in range(3, 6):
        for detector in ("ks", "psi", "wasserstein"):
            values = {
                r["segment"]: r["value"]
                for r in income
                if r["window_index"] == window and r["detector"] == detector and r["value"]
            }
            drifting = values.pop(f"region={DRIFTING}")
            assert drifting > 3 * max(values.values()), (window, detector)


def test_unseen_values_go_to_other_and_a_segment_without_reference_rows_has_no_verdict(
    traffic: dict, segmented: list[dict]
) -> None:
    other = [r for r in segmented if r["segment"] == f"region={OTHER}"]
    assert other and {r["status"] for r in other} == {"insufficient_data"}
    assert {r["n_reference"] for r in other} == {0}
    unseen = traffic["events"].filter(pl.col("region") == "atlantis")
    per_window = {r["window_index"]: r["n_window"] for r in other if r["kind"] == "data_drift"}
    expected = unseen.group_by(((pl.col("ts") - START) // HOUR).alias("w")).len()
    assert per_window == dict(expected.iter_rows())


def test_the_whole_models_records_stay_as_they_are(
    traffic: dict, reference_file: Path, segmented: list[dict], tmp_path: Path
) -> None:
    replay(_config(tmp_path, reference_file, False), traffic["predictions"], tmp_path / "out")
    plain = _results(tmp_path / "out")
    whole = [r for r in segmented if r["segment"] is None]
    assert sorted(map(_comparable, whole), key=repr) == sorted(map(_comparable, plain), key=repr)


def test_a_restart_mid_window_changes_no_segment_record(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    loaded = _config(tmp_path, reference_file, True)
    events = traffic["events"]
    cut = START + 2 * HOUR + HOUR // 3  # inside window 2: every segment has open panes
    parts = halves(events, cut, tmp_path)
    once, _ = run_in_parts(loaded, [traffic["predictions"]], f"sqlite:///{tmp_path / 'once.db'}")
    restarted, _ = run_in_parts(loaded, parts, f"sqlite:///{tmp_path / 'restarted.db'}")
    assert {r.segment for r in once} >= {f"region={DRIFTING}", "sex=F", None}
    assert_same_records(restarted, once)


@pytest.mark.parametrize("segment", [f"region={DRIFTING}", ""])
def test_results_segment_prints_that_segments_records(
    traffic: dict,
    reference_file: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    segment: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(synthetic.config_yaml(str(reference_file), url) + SEGMENTS)
    loaded = configuration.load(path)
    replay(loaded, traffic["predictions"], tmp_path / "out", storage_url=url)
    written = _results(tmp_path / "out")
    capsysbinary.readouterr()
    command = ["results", "--config", str(path), "--segment", segment]
    assert cli.main(command, environ={}) == 0
    printed = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    expected = [r for r in written if r["segment"] == (segment or None)]
    assert printed and sorted(printed, key=repr) == sorted(expected, key=repr)


def test_segment_gauges_and_alerts_are_the_segments_own(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    loaded = _config(tmp_path, reference_file, True)
    results, report = run_in_parts(
        loaded, [traffic["predictions"]], f"sqlite:///{tmp_path / 'db.sqlite'}"
    )
    registry = CollectorRegistry()
    Metrics(registry, loaded.models).record(report, loaded.models)
    last = max(r.window_index for r in results)
    for segment in (f"region={DRIFTING}", "sex=F", f"region={OTHER}"):
        mine = [r for r in results if r.segment == segment and r.window_index == last]
        drift = [r for r in mine if r.kind == "data_drift"]
        ok = [r for r in drift if r.status == "ok"]
        expected = sum(r.drift for r in ok) if ok else -1
        labels = {"model": synthetic.MODEL, "segment": segment}
        value = registry.get_sample_value("driftwarden_segment_drifted_features", labels)
        assert value == expected
        events = registry.get_sample_value("driftwarden_segment_window_events", labels)
        assert events == max(r.n_window or 0 for r in mine)
    whole = [
        r
        for r in results
        if r.segment is None and r.window_index == last and r.kind == "data_drift"
    ]
    for record in whole:
        labels = {"model": record.model, "detector": record.detector, "feature": record.feature}
        assert registry.get_sample_value("driftwarden_detector_value", labels) == record.value
    matchers = ["kind=data_drift", f"segment=region={DRIFTING}"]
    settings = {"name": "d", "match": matchers, "severity": "error", "channels": ["team"]}
    rule = Rule(RuleConfig.model_validate(settings))
    observed = [rule.observe(r, result_fields(r)) for r in results]
    fired = [o for o in observed if o is not None and o.active]
    assert fired and {o.identity["segment"] for o in fired} == {f"region={DRIFTING}"}
    whole_model_rule = {"name": "w", "match": ["kind=data_drift"], "severity": "error"}
    rule = Rule(RuleConfig.model_validate({**whole_model_rule, "channels": ["team"]}))
    judged = [r for r in results if rule.observe(r, result_fields(r)) is not None]
    assert judged and all(r.segment is None for r in judged)
    assert any(r.segment is not None and r.drift for r in results)


def test_with_versions_split_each_version_is_segmented(
    traffic: dict, reference_file: Path, segmented: list[dict], tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    text = synthetic.config_yaml(str(reference_file), "sqlite://") + SEGMENTS
    path.write_text(text + "    versions: {split: true}\n")
    replay(configuration.load(path), traffic["predictions"], tmp_path / "out")
    split = [r for r in _results(tmp_path / "out") if r["segment"] is not None]
    assert {r["model_version"] for r in split} == {"7"}  # the stream's one version
    mine = sorted(map(_comparable, split), key=repr)
    assert mine == sorted(map(_comparable, [r for r in segmented if r["segment"]]), key=repr)


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ("{attributes: [income]}", "neither groups nor categorical features"),
        ("{attributes: [region, region]}", "lists an attribute twice"),
        ("{attributes: [region], top_k: 0}", "top_k"),
    ],
)
def test_segments_settings_are_checked(
    reference_file: Path, tmp_path: Path, segments: str, message: str
) -> None:
    text = synthetic.config_yaml(str(reference_file), "sqlite://")
    with pytest.raises(ConfigError, match=message):
        configuration.parse(text + f"    segments: {segments}\n", environ={})


def test_a_restart_with_other_segments_starts_their_open_windows_afresh(
    traffic: dict, reference_file: Path, tmp_path: Path
) -> None:
    configs = []
    for top_k in (10, 2):
        text = synthetic.config_yaml(str(reference_file), "sqlite://")
        text += f"    segments: {{attributes: [region, sex], top_k: {top_k}}}\n"
        configs.append(configuration.parse(text, environ={}))
    events = traffic["events"]
    cut = START + 2 * HOUR + HOUR // 3
    parts = halves(events, cut, tmp_path)
    results, _ = run_in_parts(configs, parts, f"sqlite:///{tmp_path / 'db.sqlite'}")
    in_window_2 = {r.segment: r for r in results if r.window_index == 2 and r.kind == "data_drift"}
    after_cut = events.filter((pl.col("ts") >= cut) & (pl.col("ts") < START + 3 * HOUR))
    top_two = set(in_window_2) - {None, "sex=F", "sex=M", "sex=__other__"}
    assert len(top_two) == 3 and f"region={OTHER}" in top_two
    other = in_window_2[f"region={OTHER}"]  # refitted on other rows: only events after the cut
    regions = {name.split("=", 1)[1] for name in top_two} - {OTHER}
    assert other.n_window == after_cut.filter(~pl.col("region").is_in(list(regions))).height
    sex = events.filter(
        (pl.col("ts") >= START + 2 * HOUR) & (pl.col("ts") < START + 3 * HOUR)
    ).filter(pl.col("sex") == "F")
    assert in_window_2["sex=F"].n_window == sex.height  # kept across the restart


@pytest.fixture(scope="module")
def labelled(
    traffic: dict, reference_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict]:
    """The segmented replay with labels for 90 % of the predictions, some before them."""
    directory = tmp_path_factory.mktemp("labelled")
    labels = synthetic.label_events(traffic["events"])
    path = directory / "labels.jsonl"
    path.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    config = _config(directory, reference_file, True)
    replay(config, traffic["predictions"], directory / "out", labels=path)
    return _results(directory / "out")


@pytest.mark.parametrize("segment", [f"region={DRIFTING}", "sex=M", f"region={OTHER}"])
def test_a_segments_realized_performance_is_scikit_learns_on_its_labelled_rows(
    traffic: dict, labelled: list[dict], segment: str
) -> None:
    from sklearn import metrics

    attribute, value = segment.split("=")
    events = traffic["events"].join(
        synthetic.label_events(traffic["events"]).select("id", pl.col("label").alias("y")),
        on="id",
    )
    mine = pl.col(attribute) == value
    if value == OTHER:
        mine = ~pl.col(attribute).is_in(["north", "south", "east", "west", "central"])
    for window in range(6):
        start = START + window * HOUR
        rows = events.filter(mine & (pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
        records = {
            r["metric"]: r
            for r in labelled
            if (r["segment"], r["window_index"], r["kind"]) == (segment, window, "performance")
        }
        assert {r["n_labeled"] for r in records.values()} == {rows.height}
        if value == OTHER:
            assert {r["status"] for r in records.values()} == {"insufficient_data"}
            continue
        truth, scores = rows["y"].to_numpy(), rows["prediction"].to_numpy()
        predicted = scores >= 0.5
        accuracy, recall = records["accuracy"]["value"], records["recall"]["value"]
        assert accuracy == pytest.approx(metrics.accuracy_score(truth, predicted))
        assert recall == pytest.approx(metrics.recall_score(truth, predicted))
        auc = records["roc_auc"]
        assert abs(auc["value"] - metrics.roc_auc_score(truth, scores)) <= auc["error_bound"] + 1e-9


def test_late_labels_set_each_segments_performance_gauge_and_leave_the_models_alone(
    labelled: list[dict],
) -> None:
    from driftwarden.core.records import ResultRecord
    from driftwarden.monitor.pipeline.report import BatchReport

    loaded = configuration.parse(synthetic.config_yaml("r.parquet", "sqlite://"), environ={})
    records = [ResultRecord.from_json(r) for r in labelled if r["window_index"] == 5]
    performance = [r for r in records if r.kind == "performance"]
    window = performance[0].window
    registry = CollectorRegistry()
    report = BatchReport()
    report.outcomes.append((window, performance))
    Metrics(registry, loaded.models).record(report, loaded.models)
    for record in performance:
        labels = {"model": record.model, "metric": record.metric}
        if record.segment is None:
            labels["kind"] = "realized"
            value = registry.get_sample_value("driftwarden_performance", labels)
        else:
            labels["segment"] = record.segment
            value = registry.get_sample_value("driftwarden_segment_performance", labels)
        if record.value is None:
            assert value != value  # NaN: no verdict
        else:
            assert value == record.value, record.key


PLANTED = "east"


def test_a_shadow_planted_worse_in_one_segment_is_flagged_there_and_nowhere_else(
    reference_file: Path, tmp_path: Path
) -> None:
    """A challenger in shadow scores every request as the champion does, except in one
    region, where its scores are turned around: the comparison flags the challenger, its
    segment of that region flags worse performance, and no other record drifts."""
    stream = synthetic.Stream(n=12_000, start=START, span=4 * HOUR, seed=21)
    champion = synthetic.events(stream).with_columns(model_version=pl.lit("A"))
    planted = pl.col("region") == PLANTED
    challenger = champion.with_columns(
        model_version=pl.lit("B"),
        prediction=pl.when(planted).then(1.0 - pl.col("prediction")).otherwise("prediction"),
    )
    events = pl.concat([champion, challenger]).sort("ts", maintain_order=True)
    labels = synthetic.label_events(champion, seed=22, early=0.0, delay=(60_000, 1_200_000))
    predictions, label_file = tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    label_file.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    text = synthetic.config_yaml(str(reference_file), "sqlite://")
    text += '    versions: {split: true, champion: "A"}\n'
    text += "    segments: {attributes: [region], min_reference_rows: 200}\n"
    # Wasserstein decides on its value alone: on a segment's 600 rows its sampling noise
    # reaches the default 0.1 (docs: Segments), so the drift detectors here are the tests.
    text += "    detectors: {ks: {}, psi: {}}\n"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    replay(configuration.load(path), predictions, tmp_path / "out", labels=label_file)
    results = _results(tmp_path / "out")

    drifting = [r for r in results if r["drift"]]
    assert {r["model_version"] for r in drifting} == {"B"}
    assert {r["segment"] for r in drifting} <= {None, f"region={PLANTED}"}
    worse = {r["window_index"] for r in drifting if r["kind"] == "version_comparison"}
    assert worse == {0, 1, 2, 3}
    mine = [r for r in drifting if r["segment"] == f"region={PLANTED}"]
    flagged = {r["window_index"] for r in mine if r["kind"] == "performance"}
    assert flagged == {0, 1, 2, 3}
    assert not [r for r in drifting if r["kind"] in ("data_drift", "data_quality")]


def test_a_reference_value_spelled_like_the_other_segment_belongs_to_it(
    reference_file: Path, tmp_path: Path
) -> None:
    reference = pl.read_parquet(reference_file)
    commonest = reference["region"].value_counts(sort=True)["region"][0]
    renamed = reference.with_columns(pl.col("region").replace(commonest, OTHER))
    path = tmp_path / "reference.parquet"
    renamed.write_parquet(path)
    config = _config(tmp_path, path, True)
    name, model = next(iter(config.models.items()))
    frame, content = read_reference(model.reference)
    segments = fit_segments(name, model, frame, content)
    assert segments is not None
    regions = [s for s in segments.segments if s.attribute == "region"]
    names = [s.value for s in regions]
    assert names.count(OTHER) == 1 and OTHER not in segments.values["region"]
    top = set(names) - {OTHER}
    expected_other = renamed.filter(~pl.col("region").is_in(list(top)) | pl.col("region").is_null())
    assert next(s for s in regions if s.value == OTHER).n_reference == expected_other.height
    assert sum(s.n_reference for s in regions) == renamed.height
