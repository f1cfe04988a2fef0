"""Error attribution end to end: per feature, where a window's excess errors fall, from the
error counts kept with the label panes, checked against a groupby on the raw joined rows."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from support.pipeline import HOUR, START

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.windows.profile import Profile, fit, read_reference, with_importance

MODEL = "credit"
REGIONS = np.array(["north", "south", "east", "west"])
SPAN = 6 * HOUR


def rows(n: int, rng: np.random.Generator, extra_error: np.ndarray | float) -> pl.DataFrame:
    """Income (lognormal, 2 % missing), age (noise), a region, a score and a label that is
    wrong 10 % of the time, plus ``extra_error`` more where income is above 84,000."""
    income = np.round(rng.lognormal(np.log(50_000), 0.5, size=n))
    income[rng.random(n) < 0.02] = np.nan
    age = rng.normal(40, 10, size=n)
    region = REGIONS[rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])]
    score = rng.random(n)
    chance = 0.1 + np.where(np.nan_to_num(income) > 84_000, extra_error, 0.0)
    wrong = rng.random(n) < chance
    label = np.where(wrong, score < 0.5, score >= 0.5).astype(np.int64)
    return pl.DataFrame(
        {
            "income": pl.Series(income, nan_to_null=True),
            "age": age,
            "region": region,
            "prediction": score,
            "label": label,
        }
    )


def write_case(
    directory: Path,
    analysis: pl.DataFrame,
    window: str = "{kind: time, size: 2h}",
    *,
    task: str = "binary_classification",
    policy: str = "first",
    reference_rows: pl.DataFrame | None = None,
) -> tuple[configuration.Config, Path, Path]:
    """A labelled reference of 20,000 rows, the config, ``analysis`` as predictions over six
    hours and their labels ten minutes later."""
    reference = directory / "reference.parquet"
    if reference_rows is None:
        reference_rows = rows(20_000, np.random.default_rng(1), 0.0)
    reference_rows.write_parquet(reference)
    config = directory / "config.yaml"
    config.write_text(
        f"""\
storage:
  url: "sqlite://"
models:
  {MODEL}:
    task: {task}
    reference: {reference}
    features:
      numeric: [income, age]
      categorical: [region]
    window: {window}
    labels: {{ttl: 2h, min_labeled: 100, policy: {policy}}}
"""
    )
    n = analysis.height
    events = analysis.with_columns(
        pl.lit(MODEL).alias("model"),
        pl.format("e-{}", pl.int_range(n)).alias("id"),
        (START + pl.int_range(n, dtype=pl.Int64) * (SPAN // n)).alias("ts"),
    )
    predictions = directory / "predictions.jsonl"
    events.select(
        "model", "id", "ts", pl.struct("income", "age", "region").alias("features"), "prediction"
    ).write_ndjson(predictions)
    labels = directory / "labels.jsonl"
    events.select("model", "id", pl.col("ts") + 600_000, "label").write_ndjson(labels)
    return configuration.load(config), predictions, labels


def read_results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def attribution(records: list[dict]) -> dict[tuple[int, str], dict]:
    return {
        (r["window_index"], r["feature"]): r for r in records if r["kind"] == "error_attribution"
    }


def income_bucket(income: pl.Expr, reference: pl.Series) -> tuple[pl.Expr, list[str]]:
    """Each row's income decile on the reference's labelled rows (computed here with numpy),
    its text as the record names it, and the names of all buckets."""
    present = reference.drop_nulls().to_numpy()
    edges = np.quantile(present, np.arange(1, 10) / 10, method="inverted_cdf")
    names = [f"< {edges[0]:.6g}"]
    names += [f"[{low:.6g}, {high:.6g})" for low, high in itertools.pairwise(edges)]
    names += [f">= {edges[-1]:.6g}"]
    code = pl.lit(0)
    for edge in edges:
        code = code + (income >= edge).cast(pl.Int64)
    bucket = pl.when(income.is_null()).then(pl.lit("missing"))
    return bucket.otherwise(pl.lit(pl.Series(names)).get(code)), names


MISCLASSIFIED = (pl.col("prediction") >= 0.5) != (pl.col("label") == 1)


def raw_shares(
    window: pl.DataFrame, reference: pl.DataFrame, bucket: pl.Expr, error: pl.Expr = MISCLASSIFIED
) -> pl.DataFrame:
    """Per bucket, by a groupby on the raw joined rows: rows, errors (or summed losses), the
    reference's rate there, the excess errors and the share of the positive excess."""
    ref = reference.group_by(bucket.alias("bucket")).agg(error.mean().alias("ref_rate"))
    return (
        window.group_by(bucket.alias("bucket"))
        .agg(pl.len().alias("n"), error.sum().alias("errors"))
        .join(ref, on="bucket", how="left")
        .with_columns(excess=pl.col("errors") - pl.col("n") * pl.col("ref_rate"))
        .with_columns(
            share=pl.col("excess").clip(lower_bound=0) / pl.col("excess").clip(lower_bound=0).sum()
        )
    )


def test_each_features_top_bucket_and_share_equal_a_groupby_on_the_raw_joined_rows(
    tmp_path: Path,
) -> None:
    analysis = rows(12_000, np.random.default_rng(2), 0.0)
    loaded, predictions, labels = write_case(tmp_path, analysis)
    replay(loaded, predictions, tmp_path / "out", labels=labels)
    found = attribution(read_results(tmp_path / "out"))
    reference = pl.read_parquet(tmp_path / "reference.parquet")
    ts = START + np.arange(12_000) * (SPAN // 12_000)
    checked = 0
    for index in range(3):
        inside = (ts >= START + index * 2 * HOUR) & (ts < START + (index + 1) * 2 * HOUR)
        window = analysis.filter(pl.Series(inside))
        for feature, bucket in (
            ("income", income_bucket(pl.col("income"), reference["income"])[0]),
            ("region", pl.col("region").map_elements(lambda v: f"= {v}", pl.String)),
        ):
            expected = raw_shares(window, reference, bucket).sort("excess", descending=True)
            top = expected.row(0, named=True)
            record = found[(index, feature)]
            assert record["status"] == "ok"
            assert record["bucket"] == top["bucket"]
            assert record["value"] == pytest.approx(top["share"], rel=1e-9)
            assert record["reference_value"] == pytest.approx(top["ref_rate"], rel=1e-9)
            assert record["n_labeled"] == top["n"]
            assert record["n_window"] == window.height
            assert record["drift"] is False
            checked += 1
    assert checked == 6
    assert {feature for _, feature in found} == {"income", "age", "region"}


def test_errors_rising_only_for_high_incomes_point_at_the_top_income_buckets(
    tmp_path: Path,
) -> None:
    n = 12_000
    extra = np.where(np.arange(n) >= n // 3, 0.4, 0.0)  # from the second window on
    analysis = rows(n, np.random.default_rng(3), extra)
    loaded, predictions, labels = write_case(tmp_path, analysis)
    replay(loaded, predictions, tmp_path / "out", labels=labels)
    found = attribution(read_results(tmp_path / "out"))
    reference = pl.read_parquet(tmp_path / "reference.parquet")
    _, names = income_bucket(pl.col("income"), reference["income"])
    # Incomes above 84,000 are the top decile (about two thirds of those rows) and the
    # upper part of the one below it.
    for index in (1, 2):
        record = found[(index, "income")]
        assert record["bucket"] == names[-1]
        assert record["value"] > 0.55
        # The other features spread the excess over their buckets.
        assert found[(index, "region")]["value"] < 0.6
        assert found[(index, "age")]["value"] < 0.4
    assert found[(0, "income")]["value"] < 0.6


def test_late_labels_and_sliding_windows_give_the_records_of_timely_labels(
    tmp_path: Path,
) -> None:
    analysis = rows(9_000, np.random.default_rng(4), 0.2)
    window = "{kind: time, size: 2h, step: 1h}"
    loaded, predictions, labels = write_case(tmp_path, analysis, window)
    replay(loaded, predictions, tmp_path / "timely", labels=labels)
    late = tmp_path / "late.jsonl"
    # Every label arrives 90 minutes late (within the ttl): windows close first.
    pl.read_ndjson(labels).with_columns(pl.col("ts") + 80 * 60_000).write_ndjson(late)
    replay(loaded, predictions, tmp_path / "late", labels=late)
    timely = attribution(read_results(tmp_path / "timely"))
    delayed = attribution(read_results(tmp_path / "late"))
    fields = ("status", "bucket", "value", "reference_value", "n_labeled", "n_window")
    assert len(timely) == 3 * 6  # six sliding windows over six hours, three features
    assert {k: [r[f] for f in fields] for k, r in delayed.items()} == {
        k: [r[f] for f in fields] for k, r in timely.items()
    }


def regression_rows(n: int, rng: np.random.Generator, extra_noise: float) -> pl.DataFrame:
    """A regressor whose absolute error grows by ``extra_noise`` where income > 84,000."""
    frame = rows(n, rng, 0.0)
    high = (frame["income"].fill_null(0) > 84_000).to_numpy()
    noise = rng.normal(0, 1.0 + np.where(high, extra_noise, 0.0), size=n)
    return frame.with_columns(
        (pl.col("prediction") * 10).alias("prediction"),
        pl.Series("label", frame["prediction"].to_numpy() * 10 + noise),
    )


def test_a_regressors_mean_loss_per_bucket_equals_a_groupby_of_absolute_errors(
    tmp_path: Path,
) -> None:
    analysis = regression_rows(12_000, np.random.default_rng(5), 2.0)
    reference_rows = regression_rows(20_000, np.random.default_rng(6), 0.0)
    loaded, predictions, labels = write_case(
        tmp_path, analysis, task="regression", reference_rows=reference_rows
    )
    replay(loaded, predictions, tmp_path / "out", labels=labels)
    found = attribution(read_results(tmp_path / "out"))
    loss = (pl.col("prediction") - pl.col("label")).abs()
    bucket, names = income_bucket(pl.col("income"), reference_rows["income"])
    ts = START + np.arange(12_000) * (SPAN // 12_000)
    for index in range(3):
        inside = (ts >= START + index * 2 * HOUR) & (ts < START + (index + 1) * 2 * HOUR)
        window = analysis.filter(pl.Series(inside))
        expected = raw_shares(window, reference_rows, bucket, loss).sort("excess", descending=True)
        top = expected.row(0, named=True)
        record = found[(index, "income")]
        assert record["bucket"] == top["bucket"] == names[-1]
        assert record["value"] == pytest.approx(top["share"], rel=1e-9)
        assert record["reference_value"] == pytest.approx(top["ref_rate"], rel=1e-9)


def test_a_label_replaced_under_policy_last_takes_its_errors_back_out(tmp_path: Path) -> None:
    analysis = rows(9_000, np.random.default_rng(7), 0.3)
    loaded, predictions, labels = write_case(tmp_path, analysis, policy="last")
    replay(loaded, predictions, tmp_path / "final", labels=labels)
    final = pl.read_ndjson(labels)
    # First a wrong label for a third of the predictions, replaced a minute later.
    flipped = (1 - pl.col("label")).alias("label")
    wrong = final.head(3000).with_columns(flipped, pl.col("ts") - 60_000)
    twice = tmp_path / "twice.jsonl"
    pl.concat([wrong, final]).sort("ts", maintain_order=True).write_ndjson(twice)
    replay(loaded, predictions, tmp_path / "twice", labels=twice)
    fields = ("status", "bucket", "value", "reference_value", "n_labeled", "n_window")
    once = attribution(read_results(tmp_path / "final"))
    replaced = attribution(read_results(tmp_path / "twice"))
    assert len(once) == 9
    for key, record in once.items():
        mine = replaced[key]
        assert [mine[f] for f in fields[:2]] == [record[f] for f in fields[:2]], key
        assert mine["value"] == pytest.approx(record["value"], rel=1e-9), key
        assert [mine[f] for f in fields[3:]] == [record[f] for f in fields[3:]], key
    # Under policy first the wrong labels stay, and the records differ.
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("policy: last", "policy: first"))
    replay(configuration.load(config), predictions, tmp_path / "first", labels=twice)
    kept = attribution(read_results(tmp_path / "first"))
    assert any(kept[key]["value"] != record["value"] for key, record in once.items())


@pytest.mark.parametrize("stored_importance", [True, False])
def test_a_profile_stored_before_error_attribution_gets_its_reference_errors_at_start(
    tmp_path: Path, stored_importance: bool
) -> None:
    loaded, _, _ = write_case(tmp_path, rows(10, np.random.default_rng(8), 0.0))
    model = loaded.models[MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(MODEL, model, frame, content)
    assert profile.importance is not None and profile.importance.errors is not None
    older_importance = replace(profile.importance, errors=None) if stored_importance else None
    older = Profile.from_bytes(replace(profile, importance=older_importance).to_bytes())
    upgraded = with_importance(older, model, frame)
    assert upgraded.importance is not None and upgraded.importance.errors is not None
    np.testing.assert_array_equal(upgraded.importance.errors.n, profile.importance.errors.n)
    np.testing.assert_array_equal(
        upgraded.importance.errors.errors, profile.importance.errors.errors
    )
    # The reference's misclassified rows, counted here: every feature sees all labelled rows.
    wrong = int((frame["prediction"] >= 0.5).ne(frame["label"] == 1).sum())
    assert upgraded.importance.errors.errors.sum(axis=1).tolist() == [wrong] * 3


def test_the_concentration_gauge_follows_the_latest_labelled_window(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from driftwarden.core.records import ResultRecord
    from driftwarden.monitor.pipeline.report import BatchReport
    from driftwarden.monitor.service.metrics import Metrics

    n = 12_000
    analysis = rows(n, np.random.default_rng(3), np.where(np.arange(n) >= n // 3, 0.4, 0.0))
    loaded, predictions, labels = write_case(tmp_path, analysis)
    replay(loaded, predictions, tmp_path / "out", labels=labels)
    records = [ResultRecord.from_json(r) for r in read_results(tmp_path / "out")]
    registry = CollectorRegistry()
    metrics = Metrics(registry, loaded.models)
    for index in range(3):
        mine = [r for r in records if r.window_index == index]
        window = mine[0].window
        report = BatchReport()
        report.outcomes.append((window, mine))
        metrics.record(report, loaded.models)
    last = [r for r in records if r.kind == "error_attribution" and r.window_index == 2]
    assert {r.feature for r in last} == {"income", "age", "region"}
    for record in last:
        labels = {"model": MODEL, "feature": record.feature}
        assert registry.get_sample_value("driftwarden_error_concentration", labels) == (
            record.value
        )
