"""Kafka as a source: the consumer the daemon polls, polled records as batches of messages,
and a producer that sends dead letters back to the topic they came from."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaConfigurationError

from driftwarden.core.times import Clock, format_time, from_ms, wall_clock_ms
from driftwarden.monitor.config import KafkaConfig
from driftwarden.monitor.errors import ConfigError, ReplayRefused
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.storage import Store, StoredDeadLetter


def consumer(kafka: KafkaConfig) -> KafkaConsumer:
    """A group consumer with the daemon's settings and the user's ``kafka.client`` ones."""
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "group_id": kafka.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": kafka.start_from,
        "max_poll_records": kafka.max_poll_records,
        "client_id": "driftwarden",
    }
    settings.update(kafka.client)
    try:
        return KafkaConsumer(**settings)
    except (KafkaConfigurationError, TypeError, AssertionError) as exc:
        raise ConfigError(f"rejected by the Kafka client: {exc}", "kafka.client") from None


def batches(
    records: dict[TopicPartition, list[Any]],
) -> tuple[dict[str, Messages], dict[tuple[str, int], int]]:
    """One batch of messages per topic from a poll, keeping each message's partition and
    offset; and the next offset of every partition read."""
    by_topic: dict[str, list[tuple[int, list[Any]]]] = {}
    positions: dict[tuple[str, int], int] = {}
    for tp, items in records.items():
        by_topic.setdefault(tp.topic, []).append((tp.partition, items))
        if items:
            positions[(tp.topic, tp.partition)] = items[-1].offset + 1  # in offset order
    out = {}
    for topic, parts in by_topic.items():
        values = [r.value if r.value is not None else b"" for _, items in parts for r in items]
        offsets = np.fromiter((r.offset for _, items in parts for r in items), dtype=np.int64)
        partitions = np.fromiter(
            (p for p, items in parts for _ in items), dtype=np.int64, count=len(values)
        )
        out[topic] = Messages(values, topic, None, offsets, partitions)
    return out, positions


_CONSUMER_ONLY = {"group_id", "auto_offset_reset", "enable_auto_commit", "max_poll_records"}
_CONSUMER_ONLY |= {"session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms"}


class DeadLetterReplayer:
    """Produces a stored dead letter's bytes again to the topic it came from, then marks it
    replayed (``driftwarden dead-letters replay --id N`` does the same from the CLI)."""

    def __init__(
        self,
        kafka: KafkaConfig,
        store: Store,
        clock: Clock = wall_clock_ms,
        timeout: timedelta = timedelta(seconds=30),
    ) -> None:
        self.kafka = kafka
        self.store = store
        self.clock = clock
        self.timeout = timeout
        self._producer: Any = None
        self._lock = threading.Lock()

    def __call__(self, dead_letter_id: int) -> dict[str, Any]:
        return self.replay(dead_letter_id)

    def replay(self, dead_letter_id: int, corrected: bytes | None = None) -> dict[str, Any]:
        """Produce the stored bytes (or a ``corrected`` event) to the dead letter's topic."""
        found = self.store.dead_letters(ids=[dead_letter_id])
        if not found:
            raise LookupError(f"no dead letter with id {dead_letter_id}")
        stored = found[0]
        origin = stored.letter.origin
        if origin.partition is None:
            raise ReplayRefused(
                f"dead letter {dead_letter_id} came from the file {origin.source}, not from "
                "Kafka: correct the file and replay it instead",
            )
        value = stored.letter.raw if corrected is None else corrected
        with self._lock:
            producer = self._open()
            future = producer.send(origin.source, value=value, key=_key(value, stored))
            producer.flush(timeout=self.timeout.total_seconds())
            future.get(timeout=self.timeout.total_seconds())
        now = self.clock()
        self.store.mark_replayed([dead_letter_id], from_ms(now))
        return {"id": dead_letter_id, "topic": origin.source, "replayed_at": format_time(now)}

    def _open(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            settings = {k: v for k, v in self.kafka.client.items() if k not in _CONSUMER_ONLY}
            self._producer = KafkaProducer(
                bootstrap_servers=self.kafka.bootstrap_servers, **settings
            )
        return self._producer

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None


def _key(value: bytes, stored: StoredDeadLetter) -> bytes | None:
    """The message key: the event's model (or the dead letter's), as producers key them."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        event = None
    found = event.get("model") if isinstance(event, dict) else None
    if isinstance(found, str):
        return found.encode()
    return str(stored.letter.model).encode() if stored.letter.model else None
