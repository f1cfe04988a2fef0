"""Labels through replay: the join, realized performance, fairness, expiry, orphans, policies.

Values are checked against scikit-learn and fairlearn on the joined rows of each window.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from support.pipeline import HOUR, START, make_config

from driftwarden.detectors import StreamDetector
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.config import ConceptDriftConfig
from driftwarden.monitor.config.detectors import build_concept_detector
from driftwarden.monitor.pipeline.building import load_reference
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.windows.profile import fit, read_reference

TTL = "2h"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six hours of predictions and their labels: delays, early labels, missing ones, orphans."""
    directory = tmp_path_factory.mktemp("labels")
    stream = synthetic.Stream(
        n=12_000, start=START, span=6 * HOUR, seed=21, concept_from=START + 4 * HOUR
    )
    events = synthetic.events(stream)
    rng = np.random.default_rng(5)
    labelled = rng.random(events.height) < 0.85
    delay = rng.integers(60_000, 90 * 60_000, events.height)
    delay = np.where(rng.random(events.height) < 0.02, -delay // 10, delay)
    labels = (
        events.with_columns((pl.col("ts") + pl.Series(delay)).alias("ts"))
        .filter(pl.Series(labelled))
        .select("model", "id", "ts", "label")
    )
    strangers = pl.DataFrame(
        {
            "model": [synthetic.MODEL] * 40,
            "id": [f"nobody-{i}" for i in range(40)],
            "ts": (START + np.linspace(0, 7.4 * HOUR, 40)).astype(np.int64),
            "label": [1] * 40,
        }
    )
    labels = pl.concat([labels, strangers]).sort("ts", maintain_order=True)
    predictions = directory / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    label_file = directory / "labels.jsonl"
    label_file.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    return {
        "directory": directory,
        "events": events,
        "labels": labels,
        "labelled": labelled,
        "predictions": predictions,
        "label_file": label_file,
    }


def write_config(
    directory: Path, reference: Path, window: str = "{kind: time, size: 1h}", policy: str = "first"
) -> configuration.Config:
    text = synthetic.config_yaml(str(reference), "sqlite://").replace(
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}",
        f"    window: {window}\n    labels: {{ttl: {TTL}, orphan_ttl: 30m, policy: {policy}, "
        "min_labeled: 100}",
    )
    path = directory / "config.yaml"
    path.write_text(text)
    return configuration.load(path)


def read_results(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]


def joined_rows(day: dict) -> pl.DataFrame:
    return day["events"].filter(pl.Series(day["labelled"]))


def test_realized_performance_equals_scikit_learn_on_each_windows_joined_rows(
    tmp_path: Path, reference_file: Path, day: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    replay(loaded, day["predictions"], tmp_path / "out", labels=day["label_file"])
    results = read_results(tmp_path / "out")
    rows = joined_rows(day)
    for window in range(6):
        start = START + window * HOUR
        part = rows.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
        y, p = part["label"].to_numpy(), part["prediction"].to_numpy()
        predicted = p >= 0.5
        mine = {
            r["metric"]: r
            for r in results
            if r["kind"] == "performance" and r["window_index"] == window
        }
        assert mine["accuracy"]["n_labeled"] == len(y)
        assert mine["accuracy"]["n_window"] == 2_000
        assert mine["accuracy"]["value"] == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
        assert mine["precision"]["value"] == pytest.approx(precision_score(y, predicted), abs=1e-12)
        assert mine["recall"]["value"] == pytest.approx(recall_score(y, predicted), abs=1e-12)
        assert mine["f1"]["value"] == pytest.approx(f1_score(y, predicted), abs=1e-12)
        auc = mine["roc_auc"]
        assert abs(auc["value"] - roc_auc_score(y, p)) <= auc["error_bound"] + 1e-12
        estimated = {
            r["metric"]: r["value"]
            for r in results
            if r["kind"] == "estimated_performance" and r["window_index"] == window
        }
        assert set(estimated) >= {"roc_auc", "accuracy", "f1", "precision", "recall"}


def test_fairness_per_window_equals_fairlearn(
    tmp_path: Path, reference_file: Path, day: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    replay(loaded, day["predictions"], tmp_path / "out", labels=day["label_file"])
    results = read_results(tmp_path / "out")
    events, labelled = day["events"], day["labelled"]
    for window in range(6):
        start = START + window * HOUR
        inside = (events["ts"] >= start) & (events["ts"] < start + HOUR)
        every = events.filter(inside)
        labelled_rows = events.filter(inside & pl.Series(labelled))
        mine = {
            r["metric"]: r["value"]
            for r in results
            if r["kind"] == "fairness"
            and r["window_index"] == window
            and r["group_attribute"] == "sex"
        }
        predicted = every["prediction"].to_numpy() >= 0.5
        sex = every["sex"].to_numpy()
        assert mine["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(predicted, predicted, sensitive_features=sex), abs=1e-12
        )
        assert mine["demographic_parity_ratio"] == pytest.approx(
            demographic_parity_ratio(predicted, predicted, sensitive_features=sex), abs=1e-12
        )
        y = labelled_rows["label"].to_numpy()
        p = labelled_rows["prediction"].to_numpy() >= 0.5
        groups = labelled_rows["sex"].to_numpy()
        assert mine["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(y, p, sensitive_features=groups), abs=1e-12
        )
        tprs = [true_positive_rate(y[groups == g], p[groups == g]) for g in ("F", "M")]
        assert mine["equal_opportunity_difference"] == pytest.approx(
            abs(tprs[0] - tprs[1]), abs=1e-12
        )


def test_coverage_expiry_and_orphans_are_counted(
    tmp_path: Path, reference_file: Path, day: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    outcome = replay(loaded, day["predictions"], tmp_path / "out", labels=day["label_file"])
    letters = [
        orjson.loads(line)
        for line in (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()
    ]
    orphans = [d for d in letters if d["reason"] == "orphan_label"]
    # Every stranger becomes a dead letter exactly once: 30 minutes of event time after it
    # arrived, or at the end of the input if that comes first.
    last = max(int(day["labels"]["ts"].max()), int(day["events"]["ts"].max()))
    strangers = day["labels"].filter(pl.col("id").str.starts_with("nobody-"))
    waited = dict(
        d["detail"].removeprefix("no prediction with id ").split(" arrived ") for d in orphans
    )
    assert len(orphans) == strangers.height
    assert set(waited) == {repr(i) for i in strangers["id"]}
    assert set(waited.values()) == {"within orphan_ttl", "before the end of the input"}
    for identifier, ts in strangers.select("id", "ts").iter_rows():
        if ts + 30 * 60_000 >= last:
            assert waited[repr(identifier)] == "before the end of the input"
        if waited[repr(identifier)] == "within orphan_ttl":
            assert ts + 30 * 60_000 < last
    assert all(d["kind"] == "label" and d["origin"]["offset"] > 0 for d in orphans)
    storage_url = f"sqlite:///{tmp_path / 'kept.db'}"
    from driftwarden.monitor import storage

    storage.upgrade(storage.create(storage_url))
    replay(
        loaded,
        day["predictions"],
        tmp_path / "again",
        labels=day["label_file"],
        storage_url=storage_url,
    )
    engine = storage.create(storage_url)
    with engine.connect() as connection:
        waiting, _ = JoinStore("sqlite").label_counts(connection, synthetic.MODEL)
    unlabelled = day["events"].filter(~pl.Series(day["labelled"]))
    never_expired = unlabelled.filter(pl.col("ts") + 2 * HOUR >= last).height
    assert waiting == never_expired
    assert outcome.events == 12_000


@pytest.mark.parametrize("policy", ["first", "last"])
def test_a_second_label_replaces_the_first_only_under_policy_last(
    tmp_path: Path, reference_file: Path, day: dict, policy: str
) -> None:
    labels = day["labels"].filter(~pl.col("id").str.starts_with("nobody-"))
    flipped = labels.head(3000).with_columns(
        (1 - pl.col("label")).alias("label"), (pl.col("ts") + 60_000).alias("ts")
    )
    both = pl.concat([labels, flipped]).sort("ts", maintain_order=True)
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b"\n".join(synthetic.label_lines(both)) + b"\n")
    loaded = write_config(tmp_path, reference_file, policy=policy)
    replay(loaded, day["predictions"], tmp_path / "out", labels=path)
    results = read_results(tmp_path / "out")
    final = {row[0]: row[1] for row in labels.select("id", "label").rows()}
    if policy == "last":
        final.update({row[0]: row[1] for row in flipped.select("id", "label").rows()})
    events = (
        day["events"]
        .with_columns(pl.col("id").replace_strict(final, default=None).alias("truth"))
        .filter(pl.col("truth").is_not_null())
    )
    for window in range(6):
        start = START + window * HOUR
        part = events.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
        expected = accuracy_score(part["truth"].to_numpy(), part["prediction"].to_numpy() >= 0.5)
        accuracy = next(
            r
            for r in results
            if r["kind"] == "performance"
            and r["metric"] == "accuracy"
            and r["window_index"] == window
        )
        assert accuracy["value"] == pytest.approx(expected, abs=1e-12)
        assert accuracy["n_labeled"] == part.height


def test_sliding_windows_of_labels_equal_recomputing_each_window(
    tmp_path: Path, reference_file: Path, day: dict
) -> None:
    loaded = write_config(tmp_path, reference_file, window="{kind: time, size: 3h, step: 1h}")
    replay(loaded, day["predictions"], tmp_path / "out", labels=day["label_file"])
    results = read_results(tmp_path / "out")
    rows = joined_rows(day)
    starts = sorted({r["window_start"] for r in results if r["kind"] == "performance"})
    assert len(starts) >= 4
    for record in (r for r in results if r["kind"] == "performance" and r["metric"] == "f1"):
        begin = int(np.datetime64(record["window_start"].rstrip("Z"), "ms").astype(np.int64))
        part = rows.filter((pl.col("ts") >= begin) & (pl.col("ts") < begin + 3 * HOUR))
        if record["status"] != "ok":
            continue
        expected = f1_score(part["label"].to_numpy(), part["prediction"].to_numpy() >= 0.5)
        assert record["value"] == pytest.approx(expected, abs=1e-12)
        assert record["n_labeled"] == part.height


def test_concept_drift_is_detected_after_outcomes_change(
    tmp_path: Path, reference_file: Path, day: dict
) -> None:
    loaded = write_config(tmp_path, reference_file)
    replay(loaded, day["predictions"], tmp_path / "out", labels=day["label_file"])
    detections = [r for r in read_results(tmp_path / "out") if r["kind"] == "concept_drift"]
    assert detections, "the change of outcomes at hour 4 was not detected"
    assert all(r["detected_at"] >= "2026-11-26T04:00:00.000Z" for r in detections)
    assert all(r["detector"] == "risk_cusum" and r["drift"] for r in detections)


def test_labels_of_a_model_without_the_join_are_counted_as_ignored(
    tmp_path: Path, reference_file: Path, day: dict
) -> None:
    text = synthetic.config_yaml(str(reference_file), "sqlite://").replace(
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}",
        "    window: {kind: time, size: 1h}\n    labels: {enabled: false}",
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    outcome = replay(
        configuration.load(path), day["predictions"], tmp_path / "out", labels=day["label_file"]
    )
    assert outcome.ignored == day["labels"].height
    assert outcome.events == 12_000


@pytest.mark.parametrize("detector", ["cusum", "risk_cusum"])
def test_the_calibrated_cusum_finds_the_change_and_only_after_it(
    tmp_path: Path, reference_file: Path, day: dict, detector: str
) -> None:
    loaded = write_config(tmp_path, reference_file)
    model = loaded.models[synthetic.MODEL]
    calibrated = model.model_copy(
        update={"concept_drift": model.concept_drift.model_copy(update={"detector": detector})}
    )
    loaded = loaded.model_copy(update={"models": {synthetic.MODEL: calibrated}})
    replay(loaded, day["predictions"], tmp_path / "out", labels=day["label_file"])
    detections = [r for r in read_results(tmp_path / "out") if r["kind"] == "concept_drift"]
    assert detections, "the change of outcomes at hour 4 was not detected"
    assert all(r["detected_at"] >= "2026-11-26T04:00:00.000Z" for r in detections)
    assert all(r["detector"] == detector and r["drift"] for r in detections)


def _calibrated(reference_file: Path, detector: str) -> tuple[pl.DataFrame, StreamDetector]:
    """The synthetic reference and the named detector as the daemon builds it from it."""
    text = synthetic.config_yaml(str(reference_file), "sqlite://")
    concept = f"    concept_drift: {{detector: {detector}}}\n"
    model = configuration.parse(text + concept, environ={}).models[synthetic.MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(synthetic.MODEL, model, frame, content)
    reference = profile.outcomes.error_reference
    return frame, build_concept_detector(model.concept_drift, "x", reference)


def test_the_cusum_is_calibrated_on_the_reference_error_rate(reference_file: Path) -> None:
    frame, detector = _calibrated(reference_file, "cusum")
    expected = 1.0 - accuracy_score(frame["label"], frame["prediction"] >= 0.5)
    assert detector.name == "cusum"
    assert detector.reference_rate == pytest.approx(expected, abs=1e-12)


def test_risk_cusum_is_calibrated_on_the_reference_error_rate_per_band_of_scores(
    reference_file: Path,
) -> None:
    frame, detector = _calibrated(reference_file, "risk_cusum")
    scores = frame["prediction"].to_numpy()
    wrong = (scores >= 0.5) != (frame["label"].to_numpy() == 1)
    edges = np.asarray(detector.reference_bins["edges"])
    band = np.searchsorted(edges, scores, side="right")
    assert detector.name == "risk_cusum" and edges.size == 19
    assert (np.diff(np.r_[0, np.cumsum(np.bincount(band, minlength=20))]) > 0).all()
    for k in range(20):
        inside = band == k
        rate = (wrong[inside].sum() + 0.5) / (inside.sum() + 1)
        assert detector.reference_bins["rates"][k] == pytest.approx(rate, rel=1e-12)
        assert detector.reference_bins["shares"][k] == pytest.approx(inside.mean(), rel=1e-12)
    assert sum(detector.reference_bins["shares"]) == pytest.approx(1.0)


def test_a_profile_stored_before_score_bands_gets_them_at_start(
    tmp_path: Path, reference_file: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    model = configuration.parse(synthetic.config_yaml(str(reference_file), url), environ={}).models[
        synthetic.MODEL
    ]
    frame, content = read_reference(model.reference)
    profile = fit(synthetic.MODEL, model, frame, content)
    rate = profile.outcomes.error_reference["reference_rate"]
    older = replace(
        profile, outcomes=replace(profile.outcomes, error_reference={"reference_rate": rate})
    )
    engine = storage.create(url)
    storage.upgrade(engine)
    store = storage.Store(engine)
    store.save_profile(
        profile.reference_id, synthetic.MODEL, str(model.reference), older.to_bytes()
    )
    loaded = load_reference(synthetic.MODEL, model, store)
    engine.dispose()
    assert not loaded.fitted
    assert loaded.profile.outcomes.error_reference == profile.outcomes.error_reference
    assert "reference_bins" in loaded.profile.outcomes.error_reference


def test_a_model_naming_no_detector_gets_adwin_where_the_reference_has_no_labels(
    reference_file: Path,
) -> None:
    text = synthetic.config_yaml(str(reference_file), "sqlite://")
    model = configuration.parse(text, environ={}).models[synthetic.MODEL]
    frame, content = read_reference(model.reference)
    labelled = fit(synthetic.MODEL, model, frame, content).outcomes.error_reference
    unlabelled = fit(synthetic.MODEL, model, frame.drop("label"), content).outcomes
    assert build_concept_detector(model.concept_drift, "x", labelled).name == "risk_cusum"
    detector = build_concept_detector(model.concept_drift, "x", unlabelled.error_reference)
    assert detector.name == "adwin" and detector.delta == 0.00002


def test_a_saved_concept_detector_continues_only_under_the_same_detector_and_settings(
    reference_file: Path, profile, label_join, connection
) -> None:
    model = make_config(reference_file, "{kind: time, size: 1h}").models[synthetic.MODEL]
    cusum = model.model_copy(update={"concept_drift": ConceptDriftConfig(detector="cusum")})
    first = ModelPipeline(synthetic.MODEL, cusum, profile, join=label_join)
    assert first.labels is not None
    first.labels.detector.update(np.ones(5))  # a statistic above 0, below the threshold
    saved = first.labels.detector.state_dict()
    snapshot = first.snapshot(connection)
    same = ModelPipeline(synthetic.MODEL, cusum, profile, state=snapshot, join=label_join)
    assert same.labels is not None and same.labels.detector.state_dict() == saved
    assert same.labels.detector.statistic > 0
    rarer = cusum.model_copy(
        update={"concept_drift": ConceptDriftConfig(detector="cusum", params={"arl": 1e9})}
    )
    changed = ModelPipeline(synthetic.MODEL, rarer, profile, state=snapshot, join=label_join)
    assert changed.labels is not None and changed.labels.detector.statistic == 0
    other = ModelPipeline(synthetic.MODEL, model, profile, state=snapshot, join=label_join)
    assert other.labels is not None and other.labels.detector.name == "risk_cusum"
