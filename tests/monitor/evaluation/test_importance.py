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
                s.labels.get("kind"),
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
        impact = [
            r
            for r in outcome.results.values()
            if r.kind == "drift_impact" and r.window_index == index
        ]
        metrics.window_closed(window, impact)
        seen = {
            (s.name, s.labels.get("feature")): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for s in family.samples
            if s.labels.get("model") == MODEL and "impact" in s.name
        }
        expected = {
            ("driftwarden_drift_impact_contribution" if r.feature else "driftwarden_drift_impact",
             r.feature): r.value
            for r in impact
        }  # fmt: skip
        expected["driftwarden_drift_impact_threshold", None] = 1.0
        assert seen == pytest.approx(expected)


def shifted(frame: pl.DataFrame, **shifts: float) -> pl.DataFrame:
    """``frame`` with numeric features moved by ``shifts`` (the prediction recomputed from
    the moved x1 and x2, as the model would)."""
    moved = frame.with_columns(pl.col(name) + shift for name, shift in shifts.items())
    delta = 0.8 * shifts.get("x1", 0.0) + 0.6 * shifts.get("x2", 0.0)
    return moved.with_columns(pl.col("prediction") + delta)


def expected_impact(records: list[dict], index: int, cap: float = 5.0) -> tuple[float, list]:
    """The impact computed here from the window's records: weights from the reference
    importances, each feature's largest statistic over threshold among the data-drift
    detectors, capped, weighted and summed."""
    importance = {
        r["feature"]: r["reference_value"]
        for r in records
        if r["kind"] == "feature_importance"
        and r["detector"] == "mutual_information"
        and r["feature"]
        and r["window_index"] == index
    }
    total = sum(importance.values())
    scores: dict[str, float] = {}
    for r in records:
        if r["kind"] != "data_drift" or r["window_index"] != index or r["value"] is None:
            continue
        if r["direction"] == "above":
            ratio = r["value"] / r["threshold"]
            scores[r["feature"]] = max(scores.get(r["feature"], 0.0), ratio)
    parts = {f: importance[f] / total * min(s, cap) for f, s in scores.items()}
    ranked = sorted((f for f in parts if parts[f] > 0), key=lambda f: -parts[f])
    return sum(parts.values()), ranked


def test_drift_impact_ranks_the_important_drifting_feature_first_and_ignores_an_irrelevant_one(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(7)
    calm = rows(5000, 0.8, rng)
    both = shifted(rows(5000, 0.8, rng), x1=0.6, x3=6.0)  # x3 moves by two of its sd
    irrelevant = shifted(rows(5000, 0.8, rng), x3=6.0)
    loaded = write_case(tmp_path, pl.concat([calm, both, irrelevant]), "{kind: count, size: 5000}")
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    records = read_results(tmp_path / "out")
    impact = [r for r in of_kind(records, "drift_impact") if r["feature"] is None]
    assert [r["status"] for r in impact] == ["ok"] * 3
    assert [r["drift"] for r in impact] == [False, True, False]
    x3_drift = [r for r in of_kind(records, "data_drift", "x3") if r["drift"]]
    assert {r["window_index"] for r in x3_drift} == {1, 2}, "x3 must drift in both windows"
    for index, record in enumerate(impact):
        value, ranked = expected_impact(records, index)
        assert record["value"] == pytest.approx(value, rel=1e-9)
        assert record["threshold"] == 1.0 and record["direction"] == "above"
        contributors = [
            r
            for r in of_kind(records, "drift_impact")
            if r["window_index"] == index and r["metric"] == "contribution"
        ]
        ordered = sorted(contributors, key=lambda r: -r["value"])
        assert [r["feature"] for r in ordered] == ranked[:5]
    ordered = sorted(
        (r for r in of_kind(records, "drift_impact") if r["window_index"] == 1 and r["feature"]),
        key=lambda r: -r["value"],
    )
    assert ordered[0]["feature"] == "x1"
    assert impact[2]["value"] < 0.5


def test_configured_impact_weights_replace_the_reference_importances(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    analysis = shifted(rows(5000, 0.8, rng), x3=6.0)
    loaded = write_case(
        tmp_path,
        analysis,
        "{kind: count, size: 5000}",
        "{impact_weights: {x3: 1.0, x1: 1.0}}",
    )
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    records = read_results(tmp_path / "out")
    (impact,) = [r for r in of_kind(records, "drift_impact") if r["feature"] is None]
    assert impact["drift"] is True  # x3 holds half the weight now
    top = max(
        (r for r in of_kind(records, "drift_impact") if r["feature"]), key=lambda r: r["value"]
    )
    assert top["feature"] == "x3"


def test_impact_weights_must_name_configured_features(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown features"):
        write_case(
            tmp_path,
            rows(10, 0.8, np.random.default_rng(9)),
            "{kind: time}",
            "{impact_weights: {nope: 1.0}}",
        )


def test_a_rule_on_the_drift_impact_fires_when_the_features_the_model_uses_drift(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(10)
    analysis = pl.concat([rows(10_000, 0.8, rng), shifted(rows(10_000, 0.8, rng), x1=0.6)])
    write_case(tmp_path, analysis, "{kind: time, size: 2h}")  # 2,000 events each
    config = tmp_path / "config.yaml"
    config.write_text(
        config.read_text()
        + """\
alerts:
  channels:
    hook:
      type: webhook
      url: "http://127.0.0.1:9/hook"
      secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
  rules:
    - name: drift-that-matters
      match: ["kind=drift_impact", 'metric=""']
      severity: warning
      channels: [hook]
"""
    )
    replay(configuration.load(config), tmp_path / "predictions.jsonl", tmp_path / "out")
    impact = [
        r for r in of_kind(read_results(tmp_path / "out"), "drift_impact") if r["metric"] is None
    ]
    assert [r["drift"] for r in impact] == [False] * 5 + [True] * 5
    lines = [
        orjson.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()
    ]
    firing = [line["payload"] for line in lines if line["payload"]["status"] == "firing"]
    assert firing, "the rule did not fire"
    evidence = firing[0]["alerts"][0]["evidence"]
    assert (evidence["kind"], evidence["feature"], evidence["window_index"]) == (
        "drift_impact",
        None,
        5,
    )


def test_a_multiclass_models_classes_are_its_prediction_buckets(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)

    def classified(n: int) -> pl.DataFrame:
        x = rng.normal(size=n)
        predicted = np.where(x > 0.5, "hi", np.where(x < -0.5, "lo", "mid"))
        return pl.DataFrame({"x": x, "c": rng.choice(["u", "v"], size=n), "prediction": predicted})

    reference = classified(5000)
    reference.write_parquet(tmp_path / "reference.parquet")
    (tmp_path / "config.yaml").write_text(
        f"""\
storage: {{url: "sqlite://"}}
models:
  {MODEL}:
    task: multiclass_classification
    reference: {tmp_path / "reference.parquet"}
    features: {{numeric: [x], categorical: [c]}}
    window: {{kind: count, size: 3000}}
    importance: {{correction: none, min_rows: 100}}
"""
    )
    window = classified(3000)
    window.select(
        pl.lit(MODEL).alias("model"),
        pl.format("e-{}", pl.int_range(3000)).alias("id"),
        (START + pl.int_range(3000, dtype=pl.Int64)).alias("ts"),
        pl.struct("x", "c").alias("features"),
        "prediction",
    ).write_ndjson(tmp_path / "predictions.jsonl")
    loaded = configuration.load(tmp_path / "config.yaml")
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    records = {
        r["feature"]: r
        for r in of_kind(read_results(tmp_path / "out"), "feature_importance")
        if r["feature"]
    }
    for frame, key in ((window, "value"), (reference, "reference_value")):
        x = buckets(frame["x"].to_numpy(), reference["x"].to_numpy())
        predicted = frame["prediction"].to_numpy()
        assert records["x"][key] == pytest.approx(mutual_info_score(x, predicted), rel=1e-9)
        expected = mutual_info_score(frame["c"].to_numpy(), predicted)
        assert records["c"][key] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_disabling_importance_changes_the_reference_id_and_drops_its_records(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(12)
    on = write_case(tmp_path, rows(4000, 0.8, rng), "{kind: count, size: 2000}")
    model = on.models[MODEL]
    frame, content = read_reference(model.reference)
    off = write_case(
        tmp_path, rows(4000, 0.8, rng), "{kind: count, size: 2000}", "{enabled: false}"
    )
    disabled = fit(MODEL, off.models[MODEL], frame, content)
    assert disabled.importance is None
    assert disabled.reference_id != fit(MODEL, model, frame, content).reference_id
    replay(off, tmp_path / "predictions.jsonl", tmp_path / "out")
    kinds = {r["kind"] for r in read_results(tmp_path / "out")}
    assert "data_drift" in kinds
    assert not kinds & {"feature_importance", "drift_impact"}
