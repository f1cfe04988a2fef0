"""Kafka as a source: the consumer the daemon polls (on the configured client library),
polled records as batches of messages, and a producer that sends dead letters back to the
topic they came from."""

from __future__ import annotations

import threading
from datetime import timedelta
from itertools import chain
from typing import Any

import numpy as np
import orjson

from driftwarden.core.times import Clock, format_time, from_ms, wall_clock_ms
from driftwarden.monitor.config import KafkaConfig
from driftwarden.monitor.errors import ReplayRefused
from driftwarden.monitor.ingest.consumer import Consumer, Polled, Producer
from driftwarden.monitor.ingest.kafka_python import KafkaPythonConsumer, KafkaPythonProducer
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.storage import Store, StoredDeadLetter


def consumer(kafka: KafkaConfig) -> Consumer:
    """A group consumer on the client library ``kafka.library`` names."""
    if kafka.library == "confluent":
        from driftwarden.monitor.ingest.confluent import ConfluentConsumer

        return ConfluentConsumer(kafka)
    return KafkaPythonConsumer(kafka)


def batches(polled: list[Polled]) -> tuple[dict[str, Messages], dict[tuple[str, int], int]]:
    """One batch of messages per topic from one or more polls, keeping each message's
    partition and offset; and the next offset of every partition read."""
    by_topic: dict[str, list[Polled]] = {}
    for chunk in polled:
        by_topic.setdefault(chunk.topic, []).append(chunk)
    out = {}
    positions: dict[tuple[str, int], int] = {}
    for topic, chunks in by_topic.items():
        if len(chunks) == 1:
            values, partitions, offsets = chunks[0].values, chunks[0].partitions, chunks[0].offsets
        else:
            values = list(chain.from_iterable(chunk.values for chunk in chunks))
            partitions = np.concatenate([chunk.partitions for chunk in chunks])
            offsets = np.concatenate([chunk.offsets for chunk in chunks])
        out[topic] = messages = Messages(values, topic, None, offsets, partitions)
        positions.update(messages.positions())
    return out, positions


def producer(kafka: KafkaConfig) -> Producer:
    """A producer on the client library ``kafka.library`` names, with the ``kafka.client``
    settings that concern producers."""
    if kafka.library == "confluent":
        from driftwarden.monitor.ingest.confluent import ConfluentProducer

        return ConfluentProducer(kafka)
    return KafkaPythonProducer(kafka)


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
        self._producer: Producer | None = None
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
            self._open().send(
                origin.source, value, _key(value, stored), self.timeout.total_seconds()
            )
        now = self.clock()
        self.store.mark_replayed([dead_letter_id], from_ms(now))
        return {"id": dead_letter_id, "topic": origin.source, "replayed_at": format_time(now)}

    def _open(self) -> Producer:
        if self._producer is None:
            self._producer = producer(self.kafka)
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
