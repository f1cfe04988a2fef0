"""One model spread over six partitions, read by three daemons in one group on the real
broker and PostgreSQL: through a rebalance and a SIGKILL, the stored records are those
``replay`` computes from the same events on one instance."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.daemon import assert_same_results, stored_results
from support.kafka import (
    DaemonProcess,
    count_rows,
    create_topic,
    daemon_config,
    produce,
    unique,
    wait_for,
)
from support.stream import HOUR, START, WINDOWS

from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.core.records import ResultRecord
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.storage.lanes import part_key

pytestmark = pytest.mark.slow
PARTITIONS = 6
TIME_WINDOW = "{kind: time, size: 1h, allowed_lateness: 5m, idle_timeout: 3s}"
COUNT_WINDOW = "{kind: count, size: 1500, pane: 10m, allowed_lateness: 5m, idle_timeout: 3s}"
"""Windows of 1,500 of the stream's 2,000 events an hour: five ten-minute panes each, so
seven close and the eighth, smaller, stays open (``replay`` closes it at the end)."""


def _partitions(frame: pl.DataFrame) -> list[int]:
    """Each event's partition: its prediction id hashed, as a producer keying by id does."""
    return [zlib.crc32(i.encode()) % PARTITIONS for i in frame["id"].to_list()]


def _produce(broker: str, topic: str, lines: list[bytes], partitions: list[int]) -> None:
    produce(broker, topic, lines, partition=lambda i: partitions[i])


def _labelled(url: str) -> int:
    """Labels joined so far, over every partition's part."""
    engine = storage.create(url)
    try:
        with engine.connect() as connection:
            join = JoinStore(engine.dialect.name)
            keys = [part_key(synthetic.MODEL, p) for p in range(PARTITIONS)]
            return sum(join.label_counts(connection, key)[1] for key in keys)
    finally:
        engine.dispose()


def _replayed(config: Path, events: pl.DataFrame, labels: pl.DataFrame, directory: Path):
    predictions = directory / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    answers = directory / "labels.jsonl"
    answers.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    loaded = configuration.load(config)
    return replay(loaded, predictions, directory / "replay", labels=answers).results


@pytest.mark.parametrize(
    ("window", "closed"), [(TIME_WINDOW, WINDOWS), (COUNT_WINDOW, 7)], ids=["time", "count"]
)
def test_three_instances_on_six_partitions_store_what_one_replay_does_through_a_sigkill(
    tmp_path, broker, reference_file, postgres_url, library, window: str, closed: int
) -> None:
    events = synthetic.events(
        synthetic.Stream(
            n=12_000,
            start=START,
            span=WINDOWS * HOUR,
            drift_from=START + 3 * HOUR,
            concept_from=START + 3 * HOUR,
            seed=41,
        )
    )
    labels = synthetic.label_events(events, seed=41, share=0.8, early=0.05)
    predictions_topic, labels_topic = unique("predictions"), unique("labels")
    create_topic(broker, predictions_topic, PARTITIONS)
    create_topic(broker, labels_topic, PARTITIONS)
    storage.upgrade(storage.create(postgres_url))
    group = unique("group")
    configs = []
    for i in range(3):  # one configuration each: the same group, an HTTP port of its own
        text = daemon_config(
            reference_file,
            postgres_url,
            broker,
            predictions_topic,
            group,
            library=library,
            labels=labels_topic,
            max_poll_records=500,
        ).replace(TIME_WINDOW + "\n", window + "\n    spread: true\n")
        config = tmp_path / f"instance-{i}.yaml"
        config.write_text(text)
        configs.append(config)

    replayed = _replayed(configs[0], events, labels, tmp_path)
    # Live, the last count window stays open, and the errors known in its panes wait for it
    # (docs/scaling.md): detections at labels from its start on come only at the end of replay.
    still_open = min(
        (r.window_start for r in replayed.values() if r.window_index == closed), default=None
    )

    def stored_live(record: ResultRecord) -> bool:
        if record.window_index >= closed:
            return False
        held = record.kind == "concept_drift" and still_open is not None
        return not held or record.detected_at < still_open

    expected = {key: r for key, r in replayed.items() if stored_live(r)}
    concept = {key for key, record in expected.items() if record.kind == "concept_drift"}
    assert concept, "the stream's concept drift is found"

    def detected() -> bool:
        return concept <= set(stored_results(postgres_url))

    half = START + 2 * HOUR
    early, late = events.filter(pl.col("ts") < half), events.filter(pl.col("ts") >= half)
    early_labels = labels.filter(pl.col("ts") < half)
    late_labels = labels.filter(pl.col("ts") >= half)
    _produce(broker, predictions_topic, synthetic.prediction_lines(early), _partitions(early))
    _produce(broker, labels_topic, synthetic.label_lines(early_labels), _partitions(early_labels))
    with (
        DaemonProcess(configs[0], tmp_path / "instance-0.log") as first,
        DaemonProcess(configs[1], tmp_path / "instance-1.log"),
        DaemonProcess(configs[2], tmp_path / "instance-2.log") as third,
    ):
        third.stop()  # the group of three forms, then shrinks to two: a rebalance
        wait_for(lambda: count_rows(postgres_url, "windows") >= 1, 180, "a first window")
        # The rest trickles in; the first instance is killed while it reads it, and the third
        # comes back (rebalances while windows are open on every partition).
        chunks = 8
        step = (START + WINDOWS * HOUR - half) // chunks
        for i in range(chunks):
            low, high = half + i * step, half + (i + 1) * step
            part = late.filter(pl.col("ts").is_between(low, high, closed="left"))
            answers = late_labels.filter(pl.col("ts").is_between(low, high, closed="left"))
            if i == chunks - 1:
                answers = late_labels.filter(pl.col("ts") >= low)
            _produce(broker, predictions_topic, synthetic.prediction_lines(part), _partitions(part))
            _produce(broker, labels_topic, synthetic.label_lines(answers), _partitions(answers))
            if i == 3:
                first.kill()  # SIGKILL
                third.start()
            time.sleep(0.3)
        wait_for(lambda: count_rows(postgres_url, "windows") >= closed, 240, "every window")
        wait_for(lambda: _labelled(postgres_url) >= labels.height, 180, "every label")
        wait_for(detected, 120, "every concept-drift detection")
    assert _labelled(postgres_url) == labels.height
    assert count_rows(postgres_url, "dead_letters") == 0
    windows = {r.window_index for r in replayed.values()}
    assert windows == set(range(WINDOWS if window == TIME_WINDOW else closed + 1))
    assert any(r.kind == "performance" for r in expected.values())
    assert_same_results(postgres_url, expected)
    assert np.unique(_partitions(events)).size == PARTITIONS
