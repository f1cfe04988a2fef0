"""Multivariate drift end to end: a correlation flip no per-feature statistic can see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler
from support.pipeline import HOUR, START

from driftwarden.core.records import WindowInfo
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.windows.profile import Profile, fit, read_reference
from driftwarden.monitor.windows.summary import WindowSummary, summarize

MODEL = "pricing"
SEGMENTS = np.array(["a", "b", "c", "d"])


def rows(n: int, rho: np.ndarray | float, rng: np.random.Generator) -> pl.DataFrame:
    """Standard normal x1, x2 with correlation ``rho`` (per row), noise x3 and a segment."""
    x1 = rng.normal(size=n)
    x2 = rho * x1 + np.sqrt(1.0 - np.square(rho)) * rng.normal(size=n)
    x3 = rng.normal(2.0, 3.0, size=n)
    x3[rng.random(n) < 0.02] = np.nan
    segment = SEGMENTS[rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])].astype(object)
    segment[rng.random(n) < 0.02] = None
    return pl.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": pl.Series(x3, nan_to_null=True),
            "segment": pl.Series(segment, dtype=pl.String),
            "prediction": 0.5 * x1 + 0.1 * np.nan_to_num(x3),
        }
    )


def write_case(
    directory: Path, analysis: pl.DataFrame, window: str, seed: int
) -> configuration.Config:
    """A reference of 20,000 rows at correlation +0.8, the config, and ``analysis`` as events."""
    rng = np.random.default_rng(seed)
    reference = directory / "reference.parquet"
    rows(20_000, 0.8, rng).write_parquet(reference)
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
    multivariate_drift: {{enabled: true}}
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


def kinds(records: list[dict], kind: str) -> list[dict]:
    return sorted((r for r in records if r["kind"] == kind), key=lambda r: r["window_index"])


def read_results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def test_a_correlation_flip_is_flagged_from_the_first_window_after_it_and_by_nothing_else(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(7)
    n = 20_000  # 20 hourly windows of 1,000 events; the flip at the start of window 10
    rho = np.where(np.arange(n) < n // 2, 0.8, -0.8)
    loaded = write_case(tmp_path, rows(n, rho, rng), "{kind: time, size: 1h}", seed=8)
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    records = read_results(tmp_path / "out")
    multivariate = kinds(records, "multivariate_drift")
    assert [r["window_index"] for r in multivariate] == list(range(20))
    assert all(r["status"] == "ok" and r["n_window"] == 1000 for r in multivariate)
    assert [r["drift"] for r in multivariate] == [False] * 10 + [True] * 10
    assert all(r["direction"] == "above" for r in multivariate[10:])
    flagged = [r for r in records if r["kind"] in ("data_drift", "prediction_drift") and r["drift"]]
    assert flagged == [], "a per-feature statistic saw the flip"
    assert {r["feature"] for r in kinds(records, "data_drift")} == {"x1", "x2", "x3", "segment"}


def test_the_gauges_carry_the_last_windows_error_band_and_decision(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rho = np.where(np.arange(4000) < 2000, 0.8, -0.8)
    loaded = write_case(tmp_path, rows(4000, rho, rng), "{kind: count, size: 1000}", seed=8)
    outcome = replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    by_window = sorted(
        (r for r in outcome.results.values() if r.kind == "multivariate_drift"),
        key=lambda r: r.window_index,
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, [MODEL])
    samples = []
    for record in by_window[1:3]:  # the last window before the flip, then the first after it
        window = WindowInfo(MODEL, None, record.reference_id, record.window_index, 0, 1)
        metrics.window_closed(window, [record])
        samples.append(
            {
                (s.name, s.labels.get("direction")): s.value
                for family in text_string_to_metric_families(generate_latest(registry).decode())
                for s in family.samples
                if s.labels.get("model") == MODEL
            }
        )
    before, after = samples
    for record, seen in zip(by_window[1:3], samples, strict=True):
        assert seen[("driftwarden_reconstruction_error", None)] == pytest.approx(record.value)
        assert seen[("driftwarden_reconstruction_error_threshold", "above")] == pytest.approx(
            record.threshold
        )
    assert before[("driftwarden_multivariate_drift", None)] == 0.0
    assert after[("driftwarden_multivariate_drift", None)] == 1.0


def test_a_stationary_correlated_stream_raises_no_alarm_in_100_windows(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    loaded = write_case(
        tmp_path, rows(50_000, 0.8, rng), "{kind: count, size: 500, min_samples: 500}", seed=12
    )
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    multivariate = kinds(read_results(tmp_path / "out"), "multivariate_drift")
    assert len(multivariate) == 100 and all(r["status"] == "ok" for r in multivariate)
    assert not any(r["drift"] for r in multivariate)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Profile, pl.DataFrame, Path]:
    """A fitted profile, 3,000 decoded events (correlation -0.5) and the reference's path."""
    directory = tmp_path_factory.mktemp("multivariate")
    rng = np.random.default_rng(3)
    loaded = write_case(directory, rows(3000, -0.5, rng), "{kind: time, size: 1h}", seed=4)
    model = loaded.models[MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(MODEL, model, frame, content)
    lines = (directory / "predictions.jsonl").read_bytes().splitlines()
    messages = Messages(lines, "test", 0, np.arange(len(lines), dtype=np.int64))
    decoded = decoder(loaded, "prediction").decode(messages).frames[MODEL]
    return profile, decoded, model.reference


def test_the_fitted_model_is_the_reference_pca_with_frequency_encoding(fitted) -> None:
    profile, _, reference = fitted
    assert profile.multivariate is not None
    frame = pl.read_parquet(reference)
    x3 = frame["x3"].to_numpy()
    x3 = np.where(np.isnan(x3), np.nanmean(x3), x3)
    segment = frame["segment"].fill_null(frame["segment"].mode()[0])
    share = segment.value_counts(normalize=True)
    freq = segment.replace_strict(share["segment"], share["proportion"]).to_numpy()
    table = np.column_stack([frame["x1"], frame["x2"], x3, freq])
    standardized = StandardScaler().fit_transform(table)
    pca = PCA(n_components=0.65, svd_solver="full").fit(standardized)
    rebuilt = pca.inverse_transform(pca.transform(standardized))
    expected = np.linalg.norm(standardized - rebuilt, axis=1)
    np.testing.assert_allclose(
        np.sort(profile.multivariate.errors), np.sort(expected), rtol=1e-7, atol=1e-9
    )


def test_windows_of_panes_and_restored_summaries_equal_the_summary_of_their_rows(fitted) -> None:
    profile, frame, _ = fitted
    whole = summarize(profile, frame).reconstruction
    panes = [summarize(profile, part) for part in frame.iter_slices(700)]
    merged = panes[0]
    for pane in panes[1:]:
        merged = WindowSummary.from_bytes(merged.merge(pane).to_bytes())
    ours = merged.reconstruction
    assert whole is not None and ours is not None
    assert ours.count == whole.count == frame.height
    np.testing.assert_array_equal(ours.counts, whole.counts)
    assert ours.mean == pytest.approx(whole.mean, rel=1e-12)
    assert ours.std == pytest.approx(whole.std, rel=1e-9)
    restored = Profile.from_bytes(profile.to_bytes())
    assert restored.multivariate is not None and profile.multivariate is not None
    np.testing.assert_array_equal(restored.multivariate.errors, profile.multivariate.errors)
    again = summarize(restored, frame).reconstruction
    assert again is not None and again.total == whole.total
