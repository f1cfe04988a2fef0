"""Feature importance end to end: mutual information of each feature with the prediction,
window against reference, from joint counts folded with the window summaries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import spearmanr
from sklearn.metrics import mutual_info_score
from support.pipeline import HOUR, START

from driftwarden.core.records import WindowInfo
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline
from driftwarden.monitor.pipeline.pipeline import Pipeline
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.storage import Commit
from driftwarden.monitor.windows.profile import Profile, fit, read_reference, with_importance

MODEL = "pricing"
SEGMENTS = np.array(["a", "b", "c", "d"])
EFFECT = {"a": 0.0, "b": 0.5, "c": -0.5, "d": 1.0}


def rows(n: int, weight_x1: np.ndarray | float, rng: np.random.Generator) -> pl.DataFrame:
    """Standard normal x1, x2, noise x3 (2 % missing), a segment (2 % missing) and a
    prediction ``w·x1 + sqrt(1 - w²)·x2 + segment effect``: its distribution does not depend on
    ``w``, but how much it reads x1 does."""
    x1, x2 = rng.normal(size=(2, n))
    x3 = rng.normal(2.0, 3.0, size=n)
    x3[rng.random(n) < 0.02] = np.nan
    segment = SEGMENTS[rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])].astype(object)
    effect = np.array([EFFECT[s] for s in segment])
    segment[rng.random(n) < 0.02] = None
    weight = np.broadcast_to(weight_x1, n)
    return pl.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": pl.Series(x3, nan_to_null=True),
            "segment": pl.Series(segment, dtype=pl.String),
            "prediction": weight * x1 + np.sqrt(1.0 - weight**2) * x2 + effect,
        }
    )


def write_case(
    directory: Path, analysis: pl.DataFrame, window: str, importance: str = "{}"
) -> configuration.Config:
    """A reference of 20,000 rows with weight 0.8 on x1, the config, ``analysis`` as events."""
    reference = directory / "reference.parquet"
    rows(20_000, 0.8, np.random.default_rng(1)).write_parquet(reference)
    config = directory / "config.yaml"
    config.write_text(
        f"""\
storage:
  url: "sqlite://"
models:
  {MODEL}:
    task: regression
    reference: {reference}
    features:
      numeric: [x1, x2, x3]
      categorical: [segment]
    window: {window}
    importance: {importance}
"""
    )
    n = analysis.height
    events = analysis.select(
        pl.lit(MODEL).alias("model"),
        pl.format("e-{}", pl.int_range(n)).alias("id"),
        (START + pl.int_range(n, dtype=pl.Int64) * (20 * HOUR // n)).alias("ts"),
        pl.struct("x1", "x2", "x3", "segment").alias("features"),
        "prediction",
    )
    events.write_ndjson(directory / "predictions.jsonl")
    return configuration.load(config)


def read_results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def of_kind(records: list[dict], kind: str, feature: str | None = None) -> list[dict]:
    chosen = (r for r in records if r["kind"] == kind and feature in (None, r["feature"]))
    return sorted(chosen, key=lambda r: r["window_index"])


def buckets(values: np.ndarray, reference: np.ndarray, n_buckets: int = 10) -> np.ndarray:
    """Decile bucket of each value on the reference's deciles, computed here from the raw
    rows: ``edges[j-1] <= x < edges[j]``; missing values in a bucket of their own (-1)."""
    present = reference[~np.isnan(reference)]
    edges = np.quantile(present, np.arange(1, n_buckets) / n_buckets, method="inverted_cdf")
    out = np.searchsorted(edges, values, side="right")
    return np.where(np.isnan(values), -1, out)


def raw_importances(
    window: pl.DataFrame, reference: pl.DataFrame, correction: str
) -> dict[str, float]:
    """Mutual information of each feature's buckets with the prediction's on the raw rows, by
    scikit-learn; with ``correction="miller-madow"`` minus Miller's bias term, counted here."""
    predicted = buckets(window["prediction"].to_numpy(), reference["prediction"].to_numpy())
    labels = {
        name: buckets(
            window[name].cast(pl.Float64).fill_null(np.nan).to_numpy(),
            reference[name].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        )
        for name in ("x1", "x2", "x3")
    }
    labels["segment"] = window["segment"].fill_null("<missing>").to_numpy()
    out = {}
    for name, feature in labels.items():
        mi = mutual_info_score(feature, predicted)
        if correction == "miller-madow":
            cells = len({(f, p) for f, p in zip(feature.tolist(), predicted.tolist(), strict=True)})
            occupied = cells - len(set(feature.tolist())) - len(set(predicted.tolist())) + 1
            mi = max(mi - occupied / (2 * window.height), 0.0)
        out[name] = mi
    return out


@pytest.mark.parametrize("correction", ["none", "miller-madow"])
def test_importances_equal_scikit_learns_mutual_information_on_the_bucketed_raw_rows(
    tmp_path: Path, correction: str
) -> None:
    analysis = rows(9000, 0.3, np.random.default_rng(2))
    loaded = write_case(
        tmp_path,
        analysis,
        "{kind: count, size: 3000}",
        f"{{correction: {correction}, min_rows: 1000}}",
    )
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    found = of_kind(read_results(tmp_path / "out"), "feature_importance")
    records = [r for r in found if r["metric"] is None]
    rankings = [r for r in found if r["metric"] == "rank_correlation"]
    assert len(records) == 3 * 4 and len(rankings) == 3
    reference = pl.read_parquet(loaded.models[MODEL].reference)
    expected_reference = raw_importances(reference, reference, correction)
    for index in range(3):
        window = analysis.slice(3000 * index, 3000)
        expected = raw_importances(window, reference, correction)
        seen = {r["feature"]: r for r in records if r["window_index"] == index}
        assert set(seen) == set(expected)
        for name, record in seen.items():
            assert record["detector"] == "mutual_information"
            assert record["status"] == "ok" and record["n_window"] == 3000
            assert record["n_reference"] == 20_000
            assert record["value"] == pytest.approx(expected[name], rel=1e-9, abs=1e-12)
            assert record["reference_value"] == pytest.approx(
                expected_reference[name], rel=1e-9, abs=1e-12
            )
        names = sorted(expected)
        rho = spearmanr([expected[n] for n in names], [expected_reference[n] for n in names])
        (ranking,) = [r for r in rankings if r["window_index"] == index]
        assert ranking["detector"] == "mutual_information" and ranking["status"] == "ok"
        assert ranking["value"] == pytest.approx(rho.statistic, rel=1e-9)


def test_a_model_that_stops_reading_a_feature_is_flagged_by_importance_not_by_data_drift(
    tmp_path: Path,
) -> None:
    n = 40_000  # 8 windows of 5,000 rows; from window 4 on the model no longer reads x1
    weight = np.where(np.arange(n) < n // 2, 0.8, 0.0)
    analysis = rows(n, weight, np.random.default_rng(3))
    loaded = write_case(tmp_path, analysis, "{kind: count, size: 5000}")
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    records = read_results(tmp_path / "out")
    x1 = of_kind(records, "feature_importance", "x1")
    assert {r["detector"] for r in of_kind(records, "feature_importance")} == {
        "mutual_information"
    }  # events without attributions give no attribution records
    assert [r["status"] for r in x1] == ["ok"] * 8
    assert [r["drift"] for r in x1] == [False] * 4 + [True] * 4
    assert all(r["direction"] == "below" and r["value"] < r["threshold"] for r in x1[4:])
    assert all(r["value"] < 0.05 < 0.3 < r["reference_value"] for r in x1[4:])
    x2 = of_kind(records, "feature_importance", "x2")
    assert [r["drift"] for r in x2] == [False] * 4 + [True] * 4  # it took x1's place
    assert all(r["direction"] == "above" for r in x2[4:])
    for name in ("x3", "segment"):
        assert not any(r["drift"] for r in of_kind(records, "feature_importance", name))
    rankings = [r for r in of_kind(records, "feature_importance") if r["metric"]]
    assert [r["drift"] for r in rankings] == [False] * 8
    data_drift = of_kind(records, "data_drift")
    assert {r["feature"] for r in data_drift} == {"x1", "x2", "x3", "segment"}
    assert not [r for r in data_drift if r["drift"]], "a data-drift detector saw the swap"


def decoded(loaded: configuration.Config, directory: Path) -> pl.DataFrame:
    lines = (directory / "predictions.jsonl").read_bytes().splitlines()
    messages = Messages(lines, "test", 0, np.arange(len(lines), dtype=np.int64))
    return decoder(loaded, "prediction").decode(messages)


@pytest.mark.parametrize(
    "window", ["{kind: time, size: 4h, step: 2h}", "{kind: count, size: 2500}"]
)
def test_a_restart_mid_window_gives_the_results_of_one_pass(
    tmp_path: Path, connection, window: str
) -> None:
    weight = np.where(np.arange(10_000) < 5000, 0.8, 0.1)
    loaded = write_case(
        tmp_path, rows(10_000, weight, np.random.default_rng(4)), window, "{min_rows: 1000}"
    )
    model = loaded.models[MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(MODEL, model, frame, content)
    batch = decoded(loaded, tmp_path)

    def run(parts: list[tuple[int, int]]) -> list:
        commit = Commit()
        state = None
        for start, stop in parts:
            restored = Profile.from_bytes(profile.to_bytes())
            pipe = Pipeline(loaded, {MODEL: ModelPipeline(MODEL, model, restored, state=state)})
            rows_ = batch.frames[MODEL].slice(start, stop - start)
            pipe.process(batch.__class__(batch.messages, {MODEL: rows_}), commit, connection)
            state = pipe.models[MODEL].snapshot(connection)
        pipe.flush(commit, connection)
        return [
            (r.key, r.status, r.value, r.reference_value, r.drift)
            for r in commit.results
            if r.kind == "feature_importance"
        ]

    one_pass = run([(0, 10_000)])
    restarted = run([(0, 3700), (3700, 6100), (6100, 10_000)])
    assert restarted == one_pass
    assert any(drift for *_, drift in one_pass)


def test_a_profile_stored_before_feature_importance_gets_it_fitted_on_its_reference(
    tmp_path: Path,
) -> None:
    loaded = write_case(tmp_path, rows(10, 0.8, np.random.default_rng(5)), "{kind: time}")
    model = loaded.models[MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(MODEL, model, frame, content)
    older = Profile.from_bytes(replace(profile, importance=None).to_bytes())
    assert older.importance is None
    upgraded = with_importance(older, model, frame)
    assert upgraded.importance is not None and profile.importance is not None
    np.testing.assert_array_equal(
        upgraded.importance.reference.numeric.counts, profile.importance.reference.numeric.counts
    )
    np.testing.assert_array_equal(
        upgraded.importance.reference.categorical.counts,
        profile.importance.reference.categorical.counts,
    )


def test_the_gauges_carry_the_last_windows_importances_and_decisions(tmp_path: Path) -> None:
    weight = np.where(np.arange(10_000) < 5000, 0.8, 0.0)
    loaded = write_case(
        tmp_path, rows(10_000, weight, np.random.default_rng(6)), "{kind: count, size: 5000}"
    )
    outcome = replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    registry = CollectorRegistry()
    metrics = Metrics(registry, [MODEL])
    for index in (0, 1):
        records = [
            r
            for r in outcome.results.values()
            if r.kind == "feature_importance" and r.window_index == index and r.feature
        ]
        window = WindowInfo(MODEL, None, records[0].reference_id, index, 0, 1)
        metrics.window_closed(window, records)
        seen = {
            (
                s.name,
                s.labels.get("detector"),
                s.labels.get("feature"),
                s.labels.get("side"),
            ): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for s in family.samples
            if s.labels.get("model") == MODEL
        }
        assert len(records) == 4
        for record in records:
            name, labels = "driftwarden_feature_importance", (record.detector, record.feature)
            assert seen[(name, *labels, "window")] == pytest.approx(record.value)
            assert seen[(name, *labels, "reference")] == pytest.approx(record.reference_value)
            assert seen[(f"{name}_drift", *labels, None)] == float(record.drift)
        drift = seen[("driftwarden_feature_importance_drift", "mutual_information", "x1", None)]
        assert drift == float(index == 1)
