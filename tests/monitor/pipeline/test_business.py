"""Business metrics end to end: per window the count, sum and mean of the business values the
labels carry (checked against a polars groupby on the raw label events), their bounds, and
their correlation with the main performance metric and drift impact (checked against
``scipy.stats.pearsonr`` on the same per-window series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from scipy.stats import pearsonr
from support.pipeline import HOUR, START

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.labels.join import ModelLabels
from driftwarden.monitor.windows.profile import fit, read_reference

WINDOWS = 12
BUSINESS = """\
    labels: {{ttl: 2h, orphan_ttl: 3h, min_labeled: 50, policy: {policy}}}
    business:
      metrics:
        loss_amount: {{max: {ceiling}}}
        revenue: {{}}
      correlation_windows: 8
      min_windows: 4
"""


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Twelve hours of predictions (outcomes drift from hour 6 on) and their labels 1 to 30
    minutes later, carrying a loss on wrong predictions, a revenue on some, and a value of a
    name no configuration watches."""
    directory = tmp_path_factory.mktemp("business")
    events = synthetic.events(
        synthetic.Stream(
            n=WINDOWS * 600, start=START, span=WINDOWS * HOUR, seed=4, concept_from=START + 6 * HOUR
        )
    )
    rng = np.random.default_rng(9)
    n = events.height
    wrong = (events["prediction"].to_numpy() >= 0.5) != (events["label"].to_numpy() == 1)
    loss = np.where(wrong, rng.lognormal(5, 0.4, n), 0.0).round(2)
    revenue = np.where(rng.random(n) < 0.7, rng.normal(20, 5, n), np.nan).round(2)
    labels = events.select(
        "model",
        "id",
        pl.col("ts") + pl.Series(rng.integers(60_000, 30 * 60_000, n)),
        "label",
        pl.struct(
            loss_amount=pl.Series(loss),
            revenue=pl.Series(revenue, nan_to_null=True),
            clicks=pl.lit(3),
        ).alias("business"),
    ).sort("ts", maintain_order=True)
    predictions = directory / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    label_file = directory / "labels.jsonl"
    label_file.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    return {"events": events, "labels": labels, "predictions": predictions, "file": label_file}


def write_config(
    directory: Path, reference: Path, *, policy: str = "first", ceiling: float = 60.0
) -> configuration.Config:
    text = synthetic.config_yaml(str(reference), "sqlite://") + BUSINESS.format(
        policy=policy, ceiling=ceiling
    )
    path = directory / "config.yaml"
    path.write_text(text)
    return configuration.load(path)


def read_results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def raw_windows(stream: dict) -> pl.DataFrame:
    """Per window of the prediction and business name: count, sum and mean of the raw label
    events' values (a direct polars groupby)."""
    joined = stream["labels"].join(
        stream["events"].select("id", pl.col("ts").alias("pts")), on="id"
    )
    values = joined.select(
        ((pl.col("pts") - START) // HOUR).alias("window"),
        pl.col("business").struct.field("loss_amount"),
        pl.col("business").struct.field("revenue"),
    ).unpivot(index="window", variable_name="name")
    return (
        values.group_by("window", "name")
        .agg(
            pl.col("value").count().alias("n"),
            pl.col("value").sum().alias("sum"),
            pl.col("value").mean().alias("mean"),
        )
        .sort("window", "name")
    )


def by_key(records: list[dict], kind: str) -> dict[tuple, dict]:
    return {
        (r["window_index"], r["metric"], r["detector"], r["group_attribute"]): r
        for r in records
        if r["kind"] == kind
    }


def test_count_sum_and_mean_equal_a_groupby_of_the_raw_label_events(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    replay(loaded, stream["predictions"], tmp_path / "out", labels=stream["file"])
    found = by_key(read_results(tmp_path / "out"), "business_metric")
    expected = raw_windows(stream)
    assert expected.height == 2 * WINDOWS
    for row in expected.iter_rows(named=True):
        mean = found[(row["window"], row["name"], "mean", None)]
        total = found[(row["window"], row["name"], "sum", None)]
        assert mean["status"] == "ok"
        assert mean["value"] == pytest.approx(row["mean"], rel=1e-12)
        assert total["value"] == pytest.approx(row["sum"], rel=1e-12)
        assert mean["n_labeled"] == total["n_labeled"] == row["n"]
        assert mean["n_window"] == 600
        if row["name"] == "loss_amount":
            assert (mean["threshold"], mean["direction"]) == (60.0, "above")
            assert mean["drift"] == (row["mean"] > 60.0)
        else:
            assert (mean["threshold"], mean["drift"]) == (None, False)
    # The unwatched name is ignored: no record, no dead letter.
    assert {name for _, name, _, _ in found} == {"loss_amount", "revenue"}
    assert (tmp_path / "out" / "dead_letters.jsonl").read_bytes() == b""
    assert any(found[(w, "loss_amount", "mean", None)]["drift"] for w in range(WINDOWS))


def test_correlations_equal_scipy_pearsonr_on_the_same_per_window_series(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    replay(loaded, stream["predictions"], tmp_path / "out", labels=stream["file"])
    records = read_results(tmp_path / "out")
    correlations = by_key(records, "business_correlation")
    raw = raw_windows(stream)
    auc = {
        r["window_index"]: r["value"]
        for r in records
        if r["kind"] == "performance" and r["metric"] == "roc_auc"
    }
    impact = {
        r["window_index"]: r["value"]
        for r in records
        if r["kind"] == "drift_impact" and r["feature"] is None and r["status"] == "ok"
    }
    assert len(impact) == WINDOWS
    checked = 0
    for last in range(WINDOWS):
        windows = list(range(max(0, last - 7), last + 1))
        for name in ("loss_amount", "revenue"):
            means = raw.filter(pl.col("name") == name).sort("window")["mean"].to_numpy()
            for against, other in (("roc_auc", auc), ("drift_impact", impact)):
                record = correlations[(last, name, "pearson", against)]
                assert record["n_window"] == len(windows)
                if len(windows) < 4:
                    assert record["status"] == "insufficient_data"
                    assert record["value"] is None
                    continue
                r, p = pearsonr(means[windows], [other[w] for w in windows])
                assert record["status"] == "ok"
                assert record["value"] == pytest.approx(r, rel=1e-9, abs=1e-12)
                assert record["p_value"] == pytest.approx(p, rel=1e-6, abs=1e-12)
                checked += 1
    assert checked == 2 * 2 * (WINDOWS - 3)
    # Losses follow the errors: they rise as the outcomes drift and the AUC falls.
    assert correlations[(WINDOWS - 1, "loss_amount", "pearson", "roc_auc")]["value"] < -0.5


def test_labels_waiting_for_their_prediction_keep_their_business_values(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    """Labels that come before their prediction wait as orphans; once joined, the records
    equal those of labels that came after it."""
    loaded = write_config(tmp_path, reference_file)
    early = tmp_path / "early.jsonl"
    labels = stream["labels"].join(stream["events"].select("id", pl.col("ts").alias("pts")), "id")
    first_half = pl.col("pts") < START + 6 * HOUR
    labels.with_columns(
        pl.when(first_half).then(pl.col("pts") - 60_000).otherwise("ts").alias("ts")
    ).drop("pts").sort("ts", maintain_order=True).write_ndjson(early)
    replay(loaded, stream["predictions"], tmp_path / "early", labels=early)
    replay(loaded, stream["predictions"], tmp_path / "timely", labels=stream["file"])
    kinds = ("business_metric", "business_correlation")
    fields = ("status", "value", "p_value", "n_labeled", "n_window", "drift")
    mine, theirs = (
        {
            key: [record[f] for f in fields]
            for kind in kinds
            for key, record in by_key(read_results(tmp_path / run), kind).items()
        }
        for run in ("early", "timely")
    )
    assert mine.keys() == theirs.keys()
    for key, values in theirs.items():
        numbers = [None if v is None else pytest.approx(v, rel=1e-9) for v in values[1:3]]
        assert mine[key] == [values[0], *numbers, *values[3:]], key


def test_a_label_replaced_under_policy_last_takes_its_business_values_back_out(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    loaded = write_config(tmp_path, reference_file, policy="last")
    final = stream["labels"]
    wrong = final.head(2000).with_columns(
        pl.col("ts") - 30_000,
        pl.struct(loss_amount=pl.lit(10_000.0), revenue=pl.lit(-5.0), clicks=pl.lit(1)).alias(
            "business"
        ),
    )
    twice = tmp_path / "twice.jsonl"
    pl.concat([wrong, final]).sort("ts", maintain_order=True).write_ndjson(twice)
    replay(loaded, stream["predictions"], tmp_path / "twice", labels=twice)
    found = by_key(read_results(tmp_path / "twice"), "business_metric")
    for row in raw_windows(stream).iter_rows(named=True):
        mean = found[(row["window"], row["name"], "mean", None)]
        assert mean["value"] == pytest.approx(row["mean"], rel=1e-9)
        assert mean["n_labeled"] == row["n"]
    # Under policy first the first values stay.
    config = write_config(tmp_path, reference_file, policy="first")
    replay(config, stream["predictions"], tmp_path / "first", labels=twice)
    kept = by_key(read_results(tmp_path / "first"), "business_metric")
    assert kept[(0, "loss_amount", "mean", None)]["value"] > 1000


def test_a_waiting_label_keeps_its_business_values_across_a_restart(
    tmp_path: Path, reference_file: Path, stream: dict, label_join
) -> None:
    """An orphan label stored by one process joins, with its business values, the prediction
    that a later process (a fresh join over the same database) stores."""
    from driftwarden.monitor import storage
    from driftwarden.monitor.config.detectors import build_concept_detector
    from driftwarden.monitor.ingest.decoding import decoder
    from driftwarden.monitor.ingest.messages import Messages

    loaded = write_config(tmp_path, reference_file)
    model = loaded.models[synthetic.MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(synthetic.MODEL, model, frame, content)
    engine = storage.create(f"sqlite:///{tmp_path / 'join.db'}")
    storage.upgrade(engine)
    predictions = stream["events"].head(300)
    waiting = stream["labels"].filter(pl.col("id").is_in(predictions["id"].implode()))
    lines = synthetic.label_lines(waiting)
    labels = decoder(loaded, "label").decode(Messages(lines, "t", 0, np.arange(300)))

    def join() -> ModelLabels:
        detector = build_concept_detector(
            model.concept_drift, "x", profile.outcomes.error_reference
        )
        return ModelLabels(synthetic.MODEL, model, profile, detector, label_join)

    with engine.connect() as connection:
        before = join()
        report = before.add_labels(connection, labels.frames[synthetic.MODEL], labels, START)
        assert report.orphaned == 300
        connection.commit()
    with engine.connect() as connection:
        after = join()  # a restarted process: nothing in memory
        batch = decoder(loaded, "prediction").decode(
            Messages(synthetic.prediction_lines(predictions), "t", 0, np.arange(300))
        )
        rows = batch.frames[synthetic.MODEL]
        keys = pl.Series(((rows["ts"] - START) // HOUR).to_numpy())
        with after.storing(connection, rows, keys, START + HOUR) as report:
            pass
        assert report.joined == 300
        summary = after.window_labels(connection, 0, 1).business
    values = waiting["business"].struct.unnest()
    for name in ("loss_amount", "revenue"):
        assert summary.count(name) == values[name].count()
        assert summary.sum(name) == pytest.approx(values[name].sum(), rel=1e-12)
        assert summary.mean(name) == pytest.approx(values[name].mean(), rel=1e-12)


def test_a_rule_on_a_business_metric_fires_on_the_windows_over_its_bound(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    config = tmp_path / "config.yaml"
    config.write_text(
        config.read_text()
        + "alerts:\n  channels: {log: {type: log}}\n"
        + "  rules: [{name: losses, match: [kind=business_metric, metric=loss_amount, "
        + "detector=mean], severity: warning, channels: [log]}]\n"
    )
    loaded = configuration.load(config)
    replay(loaded, stream["predictions"], tmp_path / "out", labels=stream["file"])
    over = sorted(
        r["window_index"]
        for r in read_results(tmp_path / "out")
        if r["kind"] == "business_metric" and r["detector"] == "mean" and r["drift"]
    )
    lines = (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()
    firing = [orjson.loads(line)["payload"] for line in lines]
    firing = [p for p in firing if p["status"] == "firing"]
    assert over and firing, "the rule did not fire"
    alert = firing[0]["alerts"][0]
    assert (alert["rule"], alert["subject"]) == ("losses", "loss_amount")
    assert "> 60" in alert["summary"]


def test_the_gauges_show_the_latest_windows_mean_and_correlations(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    from prometheus_client import CollectorRegistry

    from driftwarden.core.records import ResultRecord
    from driftwarden.monitor.service.metrics import Metrics

    loaded = write_config(tmp_path, reference_file)
    replay(loaded, stream["predictions"], tmp_path / "out", labels=stream["file"])
    records = [ResultRecord.from_json(r) for r in read_results(tmp_path / "out")]
    registry = CollectorRegistry()
    metrics = Metrics(registry, [synthetic.MODEL])
    model = loaded.models[synthetic.MODEL]
    for index in (WINDOWS - 1, 0):  # an older window's late update does not win
        mine = [r for r in records if r.window_index == index]
        metrics.outcomes(mine[0].window, mine, model)
    last = {
        (r.kind, r.metric, r.detector, r.group_attribute): r.value
        for r in records
        if r.window_index == WINDOWS - 1
    }
    for name in ("loss_amount", "revenue"):
        labels = {"model": synthetic.MODEL, "metric": name}
        assert registry.get_sample_value("driftwarden_business_metric", labels) == pytest.approx(
            last[("business_metric", name, "mean", None)]
        )
        for against in ("roc_auc", "drift_impact"):
            value = registry.get_sample_value(
                "driftwarden_business_correlation", labels | {"against": against}
            )
            assert value == pytest.approx(last[("business_correlation", name, "pearson", against)])


def test_the_window_page_lists_the_business_records_as_stored(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    from driftwarden.monitor import storage
    from driftwarden.monitor.service.pages import Pages

    loaded = write_config(tmp_path, reference_file)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    storage.upgrade(storage.create(url))
    replay(loaded, stream["predictions"], tmp_path / "out", labels=stream["file"], storage_url=url)
    html = Pages(storage.Store(storage.create(url))).window(synthetic.MODEL, WINDOWS - 1)
    assert html is not None
    stored = by_key(read_results(tmp_path / "out"), "business_metric")
    mean = stored[(WINDOWS - 1, "loss_amount", "mean", None)]["value"]
    assert 'data-kind="business_metric" data-detector="mean" data-feature="" ' in html
    assert f'data-metric="loss_amount" data-group="" data-value="{mean!r}"' in html
    assert 'data-kind="business_correlation" data-detector="pearson"' in html
    assert 'data-group="drift_impact"' in html


def test_each_version_gets_its_own_business_records(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    """With versions split, a version's records count only the labels of its predictions."""
    events = stream["events"].with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.lit("B")).otherwise(pl.lit("A"))
        .alias("model_version")
    )  # fmt: skip
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    write_config(tmp_path, reference_file)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + "    versions: {split: true}\n")
    replay(configuration.load(config), predictions, tmp_path / "out", labels=stream["file"])
    records = [r for r in read_results(tmp_path / "out") if r["kind"] == "business_metric"]
    joined = stream["labels"].join(events.select("id", "model_version", "ts"), on="id")
    expected = (
        joined.select(
            "model_version",
            ((pl.col("ts_right") - START) // HOUR).alias("window"),
            pl.col("business").struct.field("loss_amount"),
        )
        .group_by("model_version", "window")
        .agg(pl.col("loss_amount").mean(), pl.len().alias("n"))
    )
    found = {
        (r["model_version"], r["window_index"]): r
        for r in records
        if r["metric"] == "loss_amount" and r["detector"] == "mean"
    }
    assert len(found) == expected.height == 2 * WINDOWS
    for row in expected.iter_rows(named=True):
        record = found[(row["model_version"], row["window"])]
        assert record["value"] == pytest.approx(row["loss_amount"], rel=1e-12)
        assert record["n_labeled"] == row["n"]
    correlations = {
        r["model_version"]
        for r in read_results(tmp_path / "out")
        if r["kind"] == "business_correlation" and r["status"] == "ok"
    }
    assert correlations == {"A", "B"}


def test_a_sum_too_large_for_a_float_makes_the_window_undefined_not_a_crash(
    tmp_path: Path, reference_file: Path
) -> None:
    from driftwarden.core.records import WindowInfo
    from driftwarden.monitor.evaluation.business_results import business_records
    from driftwarden.monitor.windows.outcomes import BusinessSummary

    config = write_config(tmp_path, reference_file).models[synthetic.MODEL]
    rows = pl.DataFrame({"biz:loss_amount": [1e308] * 60, "biz:revenue": [1.0] * 60})
    summary = BusinessSummary.of_rows(config.business.names, rows)
    window = WindowInfo(synthetic.MODEL, None, "r", 0, START, START + HOUR)
    found = {(r.metric, r.detector): r for r in business_records(config, window, summary, 60)}
    assert found[("loss_amount", "mean")].status == "undefined"
    assert found[("loss_amount", "sum")].status == "undefined"
    assert found[("revenue", "mean")].value == 1.0
    assert found[("revenue", "sum")].value == 60.0


def test_on_postgresql_waiting_and_replaced_labels_keep_and_return_their_values(
    tmp_path: Path, reference_file: Path, stream: dict, postgres_url: str
) -> None:
    """PostgreSQL's join tables: labels that wait for their prediction (the first half) and
    labels replaced under policy last (the first 2,000, first with wrong values) give the
    means of the raw final labels."""
    from driftwarden.monitor import storage

    loaded = write_config(tmp_path, reference_file, policy="last")
    labels = stream["labels"].join(stream["events"].select("id", pl.col("ts").alias("pts")), "id")
    early = labels.with_columns(
        pl.when(pl.col("pts") < START + 6 * HOUR).then(pl.col("pts") - 60_000).otherwise("ts")
    ).drop("pts")
    wrong = early.head(2000).with_columns(
        pl.col("ts") - 30_000,
        pl.struct(loss_amount=pl.lit(1e4), revenue=pl.lit(-5.0), clicks=pl.lit(1)).alias(
            "business"
        ),
    )
    path = tmp_path / "labels.jsonl"
    pl.concat([wrong, early]).sort("ts", maintain_order=True).write_ndjson(path)
    storage.upgrade(storage.create(postgres_url))
    replay(loaded, stream["predictions"], tmp_path / "out", labels=path, storage_url=postgres_url)
    found = by_key(read_results(tmp_path / "out"), "business_metric")
    for row in raw_windows(stream).iter_rows(named=True):
        mean = found[(row["window"], row["name"], "mean", None)]
        assert mean["value"] == pytest.approx(row["mean"], rel=1e-9)
        assert mean["n_labeled"] == row["n"]


def test_business_metrics_may_be_listed_by_name(tmp_path: Path, reference_file: Path) -> None:
    text = synthetic.config_yaml(str(reference_file), "sqlite://")
    listed = configuration.parse(text + "    business: {metrics: [revenue, loss]}\n", environ={})
    business = listed.models[synthetic.MODEL].business
    assert business.names == ("loss", "revenue")
    assert business.metrics["loss"].min is None and business.metrics["loss"].max is None
    assert (business.correlation_windows, business.min_windows) == (20, 5)


def test_each_segments_business_values_are_those_of_its_labels_and_correlations_the_models(
    tmp_path: Path, reference_file: Path, stream: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    text = (tmp_path / "config.yaml").read_text()
    segmented = tmp_path / "segmented.yaml"
    segmented.write_text(text + "    segments: {attributes: [channel], min_reference_rows: 200}\n")
    predictions, labels = stream["predictions"], stream["file"]
    replay(configuration.load(segmented), predictions, tmp_path / "seg", labels=labels)
    replay(loaded, stream["predictions"], tmp_path / "whole", labels=stream["file"])
    records = read_results(tmp_path / "seg")
    joined = stream["labels"].join(
        stream["events"].select("id", "channel", pl.col("ts").alias("pts")), on="id"
    )
    web = joined.filter(pl.col("channel") == "web").select(
        ((pl.col("pts") - START) // HOUR).alias("window"),
        pl.col("business").struct.field("loss_amount"),
    )
    expected = web.group_by("window").agg(
        pl.col("loss_amount").count().alias("n"), pl.col("loss_amount").mean().alias("mean")
    )
    mine = {
        r["window_index"]: r
        for r in records
        if (r["kind"], r["segment"], r["metric"], r["detector"])
        == ("business_metric", "channel=web", "loss_amount", "mean")
    }
    assert len(mine) == WINDOWS
    for row in expected.iter_rows(named=True):
        record = mine[row["window"]]
        assert record["n_labeled"] == row["n"]
        assert record["value"] == pytest.approx(row["mean"], rel=1e-12)
    whole = by_key(read_results(tmp_path / "whole"), "business_correlation")
    correlations = {
        key: r for key, r in by_key(records, "business_correlation").items() if not r["segment"]
    }
    assert correlations.keys() == whole.keys()
    for key, record in correlations.items():
        assert record["value"] == whole[key]["value"], key
    assert not [r for r in records if r["kind"] == "business_correlation" and r["segment"]]
