"""Shadow traffic (a challenger scoring some of the champion's requests, same ids): the
paired comparison equals scipy's binomial test on the discordant pairs counted here from
the raw rows, the agreement equals a direct count, identical predictions never drift, and
a restart mid-window loses no pair and counts none twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats
from support.pipeline import HOUR, START

from driftwarden.alerts import AlertEngine
from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.evaluation.paired_comparison import paired_records, prediction_spread
from driftwarden.monitor.ingest.files import LabelFeed, read_events
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.labels.pairs import ShadowPairs
from driftwarden.monitor.pipeline.building import build_pipeline, window_sizes
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.runner import BatchRunner, Cadence, SourceBatch
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.windows.profile import Profile

WINDOWS = 3
LABELS = "    labels: {ttl: 2h, orphan_ttl: 30m, min_labeled: 100}\n"
COMPARED = {"mcnemar_exact", "agreement", "psi", "ks", "wasserstein", "poisson_binomial_z"}
"""The detectors of a shadow window's comparison records: the paired test and agreement, the
default prediction-drift detectors on both versions' predictions, the estimated error rate."""


def _config(directory: Path, reference: Path) -> configuration.Config:
    text = synthetic.config_yaml(str(reference), "sqlite://") + LABELS
    text += '    versions: {split: true, champion: "A"}\n'
    path = directory / "config.yaml"
    path.write_text(text)
    return configuration.load(path)


def _shadow(seed: int, *, identical: bool) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Champion A scores every request, challenger B 30% of them (same ids and times):
    either A's very predictions, or predictions often right where A is wrong and wrong
    where it is right, and then a few requests of its own (ids A never scored, unpaired).
    Labels (of A's requests) arrive after both predictions."""
    stream = synthetic.Stream(n=6_000, start=START, span=WINDOWS * HOUR, seed=seed)
    champion = synthetic.events(stream).with_columns(model_version=pl.lit("A"))
    rng = np.random.default_rng(seed)
    shadow = champion.filter(pl.Series(rng.random(champion.height) < 0.3))
    if not identical:
        flipped = pl.Series(rng.random(shadow.height) < 0.25)
        shadow = shadow.with_columns(
            pl.when(flipped)
            .then(1.0 - pl.col("prediction"))
            .otherwise("prediction")
            .alias("prediction")
        )
    shadow = shadow.with_columns(model_version=pl.lit("B"))
    if not identical:  # a few requests only the challenger scored: unpaired
        solo = pl.Series(rng.random(shadow.height) < 0.05)
        shadow = shadow.with_columns(
            pl.when(solo).then(pl.col("id") + "-solo").otherwise("id").alias("id")
        )
    events = pl.concat([champion, shadow]).sort("ts", maintain_order=True)
    labels = synthetic.label_events(champion, seed=seed + 1, early=0.0, delay=(60_000, 1_200_000))
    return events, champion, labels


def _write(directory: Path, events: pl.DataFrame, labels: pl.DataFrame) -> tuple[Path, Path]:
    predictions, label_file = directory / "predictions.jsonl", directory / "labels.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    label_file.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    return predictions, label_file


def _results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def _pairs(events: pl.DataFrame, labels: pl.DataFrame, window: int) -> pl.DataFrame:
    """The window's pairs from the raw rows: both versions' classes and the label (null
    when never labelled)."""
    start = START + window * HOUR
    rows = events.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
    classes = rows.select("id", "model_version", (pl.col("prediction") >= 0.5).alias("class"))
    a = classes.filter(pl.col("model_version") == "A").select("id", pl.col("class").alias("a"))
    b = classes.filter(pl.col("model_version") == "B").select("id", pl.col("class").alias("b"))
    truth = labels.select("id", (pl.col("label") >= 0.5).alias("y"))
    return a.join(b, on="id").join(truth, on="id", how="left")


def _record(results: list[dict], window: int, detector: str) -> dict:
    (record,) = [
        r
        for r in results
        if (r["model_version"], r["window_index"], r["kind"], r["detector"])
        == ("B", window, "version_comparison", detector)
    ]
    return record


def test_the_paired_comparison_is_mcnemars_exact_test_of_scipy_on_the_raw_pairs(
    reference_file: Path, tmp_path: Path
) -> None:
    events, _, labels = _shadow(21, identical=False)
    predictions, label_file = _write(tmp_path, events, labels)
    replay(_config(tmp_path, reference_file), predictions, tmp_path / "out", labels=label_file)
    results = _results(tmp_path / "out")
    assert not [r for r in results if r["detector"] in ("two_proportion_z", "welch_t")]
    for window in range(WINDOWS):
        pairs = _pairs(events, labels, window)
        labelled = pairs.filter(pl.col("y").is_not_null())
        a_right = (labelled["a"] == labelled["y"]).to_numpy()
        b_right = (labelled["b"] == labelled["y"]).to_numpy()
        b = int((a_right & ~b_right).sum())  # the challenger's extra errors
        c = int((~a_right & b_right).sum())
        record = _record(results, window, "mcnemar_exact")
        assert (record["n_labeled"], record["n_reference"]) == (labelled.height, pairs.height)
        assert record["value"] == pytest.approx((b - c) / labelled.height)
        assert record["p_value"] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue)
        assert record["drift"] == (record["p_value"] < 0.05 and b > c)
        agreement = _record(results, window, "agreement")
        assert agreement["metric"] == "agreement"
        assert agreement["value"] == pytest.approx((pairs["a"] == pairs["b"]).mean())
        assert agreement["n_reference"] == pairs.height


def test_the_agreement_and_unpaired_gauges_follow_the_challengers_last_window(
    reference_file: Path, tmp_path: Path
) -> None:
    events, _, labels = _shadow(21, identical=False)
    predictions, label_file = _write(tmp_path, events, labels)
    loaded = _config(tmp_path, reference_file)
    replay(loaded, predictions, tmp_path / "out", labels=label_file)
    report = BatchReport()
    for line in _results(tmp_path / "out"):
        record = ResultRecord.from_json(line)
        if record.kind != "freshness":
            info = WindowInfo(
                record.model,
                record.model_version,
                record.reference_id,
                record.window_index,
                record.window_start,
                record.window_end,
            )
            report.closed.append((info, [record]))
    registry = CollectorRegistry()
    Metrics(registry, loaded.models).record(report, loaded.models)
    last = WINDOWS - 1
    pairs = _pairs(events, labels, last)
    start = START + last * HOUR
    shadow = events.filter(
        (pl.col("model_version") == "B") & pl.col("ts").is_between(start, start + HOUR - 1)
    )
    labels_of = {"model": synthetic.MODEL, "model_version": "B"}
    agreement = registry.get_sample_value(
        "driftwarden_version_agreement", {**labels_of, "metric": "agreement"}
    )
    assert agreement == pytest.approx((pairs["a"] == pairs["b"]).mean())
    unpaired = registry.get_sample_value("driftwarden_version_unpaired_predictions", labels_of)
    assert unpaired == shadow.height - pairs.height > 0


def test_a_shadow_with_the_champions_very_predictions_never_drifts(
    reference_file: Path, tmp_path: Path
) -> None:
    events, _, labels = _shadow(5, identical=True)
    predictions, label_file = _write(tmp_path, events, labels)
    replay(_config(tmp_path, reference_file), predictions, tmp_path / "out", labels=label_file)
    results = _results(tmp_path / "out")
    compared = [r for r in results if r["kind"] == "version_comparison"]
    assert len(compared) == len(COMPARED) * WINDOWS
    for window in range(WINDOWS):
        record = _record(results, window, "mcnemar_exact")
        assert (record["value"], record["p_value"], record["drift"]) == (0.0, 1.0, False)
        assert _record(results, window, "agreement")["value"] == 1.0
    assert not [r for r in compared if r["drift"]]


def _run_in_parts(
    config: configuration.Config, parts: list[tuple[Path, Path]], url: str
) -> list[ResultRecord]:
    """The batch path over each (predictions, labels) part, each run by a new pipeline
    resumed from the stored state (a restart between parts); the stored results."""
    engine = storage.create(url)
    storage.upgrade(engine)
    store = storage.Store(engine)
    try:
        for i, (predictions, labels) in enumerate(parts):
            with (
                engine.connect() as connection,
                ThreadPoolExecutor(max_workers=1) as helper,
            ):
                join = LabelJoin(JoinStore(engine.dialect.name), helper)
                pipeline = build_pipeline(config, store, resume=i > 0, join=join)
                alerts = AlertEngine(config.alerts, window_sizes(config), deliver=False)
                feed = LabelFeed.read(labels, config, None)
                runner = BatchRunner(
                    config,
                    pipeline,
                    store,
                    alerts,
                    connection,
                    Cadence(0, 0),
                    labels=feed,
                    backtest=True,
                )
                for messages in read_events(predictions, config, "prediction"):
                    runner.run(SourceBatch({"prediction": messages}))
                runner.checkpoint()
                if i == len(parts) - 1:
                    runner.finish()
        return sorted(store.results(), key=lambda r: r.key)
    finally:
        engine.dispose()


def test_a_restart_mid_window_with_pairs_waiting_loses_no_pair_and_counts_none_twice(
    reference_file: Path, tmp_path: Path
) -> None:
    events, _, labels = _shadow(33, identical=False)
    config = _config(tmp_path, reference_file)
    cut = START + HOUR + HOUR // 2  # inside window 1: pairs waiting for their labels
    parts = []
    for name, before in (("before", True), ("after", False)):
        keep = pl.col("ts") < cut if before else pl.col("ts") >= cut
        directory = tmp_path / name
        directory.mkdir()
        parts.append(_write(directory, events.filter(keep), labels.filter(keep)))
    whole = [_write(tmp_path, events, labels)]
    once = _run_in_parts(config, whole, f"sqlite:///{tmp_path / 'once.db'}")
    restarted = _run_in_parts(config, parts, f"sqlite:///{tmp_path / 'restarted.db'}")
    compared = [r for r in once if r.kind == "version_comparison"]
    assert {r.detector for r in compared} == COMPARED
    assert len(compared) == len(COMPARED) * WINDOWS
    mine = {r.key: r for r in restarted if r.kind == "version_comparison"}
    for record in compared:
        again = mine[record.key]
        assert (again.n_reference, again.n_labeled, again.drift) == (
            record.n_reference,
            record.n_labeled,
            record.drift,
        )
        assert again.value == pytest.approx(record.value, rel=1e-12)
        if record.detector == "mcnemar_exact":
            assert again.p_value == pytest.approx(record.p_value, rel=1e-9)


def test_a_regression_shadows_paired_comparison_is_scipys_paired_t_test(tmp_path: Path) -> None:
    """Pairs of a regressor, summarized per pane, written and read back: the paired t-test
    of absolute errors equals ``scipy.stats.ttest_rel``, the relative disagreement the
    mean gap over the spread."""
    rng = np.random.default_rng(14)
    n = 1_200
    y = rng.normal(50.0, 10.0, n)
    champion = y + rng.normal(0.0, 3.0, n)
    challenger = champion + rng.normal(0.3, 1.0, n)  # close to the champion: pairing helps
    labelled = rng.random(n) < 0.8
    panes = np.where(np.arange(n) < n // 2, START, START + HOUR // 2)
    text = {
        "champion": pl.Series(champion).cast(pl.String),
        "challenger": pl.Series(challenger).cast(pl.String),
        "label": pl.Series(y).cast(pl.String),
    }
    frame = pl.DataFrame({"pane": panes, **text})
    engine = storage.create(f"sqlite:///{tmp_path / 'pairs.db'}")
    storage.upgrade(engine)
    store = JoinStore(engine.dialect.name)
    with engine.begin() as connection:
        pairs = ShadowPairs(store, "eta#lane", "regression", 0.5)
        pairs.add_predictions(frame.drop("label"), connection)
        pairs.add_labelled(frame.filter(pl.Series(labelled)), connection)
        pairs.flush(connection)
    with engine.connect() as connection:  # read back as after a restart
        summary = ShadowPairs(store, "eta#lane", "regression", 0.5).window(
            connection, START, START + HOUR
        )
    engine.dispose()
    window = WindowInfo("eta", "2", "ref", 3, START, START + HOUR)
    spread = 7.5
    compared, agreement = paired_records(window, "1", summary, n + 40, 500, spread)
    errors_0 = np.abs(y - champion)[labelled]
    errors_1 = np.abs(y - challenger)[labelled]
    paired = stats.ttest_rel(errors_1, errors_0)
    assert (compared.detector, compared.metric) == ("paired_t", "absolute_error")
    assert compared.value == pytest.approx((errors_1 - errors_0).mean(), rel=1e-9)
    assert compared.p_value == pytest.approx(paired.pvalue, rel=1e-9)
    interval = paired.confidence_interval(0.95)
    assert (compared.ci_low, compared.ci_high) == pytest.approx(tuple(interval), rel=1e-9)
    assert (compared.n_reference, compared.n_labeled) == (n, int(labelled.sum()))
    assert agreement.metric == "relative_disagreement"
    assert agreement.value == pytest.approx(np.abs(challenger - champion).mean() / spread)
    assert agreement.n_window - agreement.n_reference == 40  # unpaired


def test_the_spread_of_relative_disagreement_is_the_reference_predictions_deviation(
    profile: Profile,
) -> None:
    predictions = synthetic.reference(20_000, seed=0)["prediction"].to_numpy()
    assert prediction_spread(profile) == pytest.approx(np.std(predictions, ddof=1), rel=1e-9)
