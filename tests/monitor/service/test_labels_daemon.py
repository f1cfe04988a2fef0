"""Labels through the real broker: the join, realized performance, restarts mid-join."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from support.kafka import (
    DaemonProcess,
    count_rows,
    create_topic,
    daemon_config,
    produce,
    unique,
    wait_for,
)
from support.stream import HOUR, START

from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.storage.join_store import JoinStore

pytestmark = pytest.mark.slow

WINDOWS = 6


def streams(seed: int = 31) -> tuple[pl.DataFrame, pl.DataFrame]:
    events = synthetic.events(
        synthetic.Stream(
            n=12_000, start=START, span=WINDOWS * HOUR, seed=seed, concept_from=START + 3 * HOUR
        )
    )
    labels = synthetic.label_events(events, seed=seed, share=0.8, early=0.05)
    return events, labels


def setup(tmp_path: Path, url: str, reference: Path, broker: str, **kw) -> tuple[Path, str, str]:
    predictions, labels = unique("predictions"), unique("labels")
    create_topic(broker, predictions, 2)
    create_topic(broker, labels, 2)
    storage.upgrade(storage.create(url))
    text = daemon_config(reference, url, broker, predictions, unique("group"), labels=labels, **kw)
    config = tmp_path / f"config-{unique('c')}.yaml"
    config.write_text(text)
    return config, predictions, labels


def labelled_count(url: str) -> int:
    engine = storage.create(url)
    try:
        with engine.connect() as connection:
            return JoinStore(engine.dialect.name).label_counts(connection, synthetic.MODEL)[1]
    finally:
        engine.dispose()


def performance(url: str) -> dict[tuple[int, str], object]:
    engine = storage.create(url)
    try:
        return {
            (r.window_index, r.metric or r.feature): r
            for r in storage.Store(engine).results()
            if r.kind in ("performance", "concept_drift", "multivariate_drift", "error_attribution")
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_labels_with_random_delays_give_scikit_learn_performance_per_window(
    request, tmp_path, broker, reference_file, database
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'dw.db'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    events, labels = streams()
    config, predictions, label_topic = setup(tmp_path, url, reference_file, broker)
    key = synthetic.MODEL.encode()
    # Labels first: some arrive before their predictions and wait as orphans.
    produce(broker, label_topic, synthetic.label_lines(labels), key=key)
    produce(broker, predictions, synthetic.prediction_lines(events), key=key)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(lambda: count_rows(url, "windows") >= WINDOWS, 180, "all windows")
        wait_for(lambda: labelled_count(url) >= labels.height, 120, "every label joined")
        assert daemon.stop() == 0
    assert count_rows(url, "orphan_labels") == 0
    results = performance(url)
    joined = events.join(labels.select("id"), on="id")
    for window in range(WINDOWS):
        start = START + window * HOUR
        part = joined.filter((pl.col("ts") >= start) & (pl.col("ts") < start + HOUR))
        y, p = part["label"].to_numpy(), part["prediction"].to_numpy()
        predicted = p >= 0.5
        assert results[(window, "accuracy")].n_labeled == len(y)
        checks = {
            "accuracy": accuracy_score(y, predicted),
            "precision": precision_score(y, predicted),
            "recall": recall_score(y, predicted),
            "f1": f1_score(y, predicted),
        }
        for metric, expected in checks.items():
            assert results[(window, metric)].value == pytest.approx(expected, abs=1e-12), metric
        auc = results[(window, "roc_auc")]
        assert abs(auc.value - roc_auc_score(y, p)) <= auc.error_bound + 1e-12


CALIBRATED = "    concept_drift: {detector: cusum}\n    multivariate_drift: {enabled: true}\n"


@pytest.mark.parametrize("settings", ["", CALIBRATED], ids=["default", "cusum-and-multivariate"])
def test_sigkill_while_predictions_wait_then_every_label_joins_as_in_an_uninterrupted_run(
    tmp_path, broker, reference_file, settings: str, library
) -> None:
    events, labels = streams(seed=32)
    key = synthetic.MODEL.encode()
    whole_url = f"sqlite:///{tmp_path / 'whole.db'}"
    killed_url = f"sqlite:///{tmp_path / 'killed.db'}"
    whole, predictions, label_topic = setup(
        tmp_path, whole_url, reference_file, broker, library=library
    )
    if settings:  # the calibrated CUSUM's state and the reconstruction errors survive too
        whole.write_text(
            whole.read_text().replace(
                "    window: {kind: time", settings + "    window: {kind: time", 1
            )
        )
    killed = tmp_path / "killed.yaml"
    killed.write_text(
        whole.read_text()
        .replace(whole_url, killed_url)
        .replace("group_id: group-", "group_id: killed-")
        .replace("max_poll_records: 5000", "max_poll_records: 300")
        .replace("batch_records: 20000", "batch_records: 300")
        .replace("checkpoint_interval: 1s", "checkpoint_interval: 100ms")
    )
    storage.upgrade(storage.create(killed_url))
    produce(broker, predictions, synthetic.prediction_lines(events), key=key)
    # Both runs read all predictions before any label, so both see the labels in one order.
    for config, url in ((whole, whole_url), (killed, killed_url)):
        with DaemonProcess(config, tmp_path / "first.log") as daemon:
            wait_for(lambda url=url: count_rows(url, "windows") >= WINDOWS, 180, "windows")
            assert daemon.stop() == 0
    produce(broker, label_topic, synthetic.label_lines(labels), key=key)
    # Thousands of predictions wait in the join store when the labels start; kill mid-way.
    with DaemonProcess(killed, tmp_path / "killed.log") as daemon:
        wait_for(lambda: labelled_count(killed_url) > labels.height // 3, 120, "some labels")
        daemon.kill()
    assert labelled_count(killed_url) < labels.height
    with DaemonProcess(killed, tmp_path / "killed.log") as daemon:
        wait_for(lambda: labelled_count(killed_url) >= labels.height, 120, "all labels")
        assert daemon.stop() == 0
    with DaemonProcess(whole, tmp_path / "whole.log") as daemon:
        wait_for(lambda: labelled_count(whole_url) >= labels.height, 180, "all labels")
        assert daemon.stop() == 0
    restarted, uninterrupted = performance(killed_url), performance(whole_url)
    assert sorted(set(restarted) ^ set(uninterrupted)) == []
    assert any((metric or "").startswith("position_") for _, metric in uninterrupted)
    assert all(
        record.detector == ("cusum" if settings else "risk_cusum")
        for record in uninterrupted.values()
        if record.kind == "concept_drift"
    )
    multivariate = [r for r in uninterrupted.values() if r.kind == "multivariate_drift"]
    assert len(multivariate) == (WINDOWS if settings else 0)
    errors = [r for r in uninterrupted.values() if r.kind == "error_attribution"]
    assert len(errors) == WINDOWS * len(synthetic.NUMERIC + synthetic.CATEGORICAL)
    for key_, record in uninterrupted.items():
        mine = restarted[key_]
        assert (mine.n_labeled, mine.status, mine.detected_at, mine.bucket) == (
            record.n_labeled,
            record.status,
            record.detected_at,
            record.bucket,
        ), key_
        if record.value is not None:
            assert mine.value == pytest.approx(record.value, rel=1e-12)
    assert np.isfinite([r.value for r in restarted.values() if r.value is not None]).all()
