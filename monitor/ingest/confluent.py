"""The consumer and producer on confluent-kafka (``kafka.library: confluent``, extra
``driftwarden[confluent]``).

librdkafka runs the rebalance callbacks inside ``poll``, as kafka-python does, but a
partition being assigned cannot be sought yet: seeks made inside the ``assigned``
callback become the offsets the partitions are assigned at. High watermarks are read in
``poll``, on the polling thread: the fold worker asks for them while that thread may be
inside a rebalance callback waiting for the worker, and the client must not be entered
from both. Under the eager protocol
(the default) a rebalance revokes everything and assigns the whole new set; under the
cooperative one (``partition.assignment.strategy: cooperative-sticky``) it revokes and
adds only what moves, and the adapter still hands the daemon the whole assignment.
"""

from __future__ import annotations

import operator
from itertools import repeat
from typing import Any

import numpy as np

from driftwarden.monitor.config import KafkaConfig
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.ingest.consumer import Partition, Polled, Rebalanced

try:
    import confluent_kafka as ck
except ImportError:  # pragma: no cover - the extra is installed by make test
    ck = None


METADATA_TIMEOUT = 30.0
"""Seconds to wait for the broker's topic metadata (kafka-python's bootstrap waits as long)."""

FETCH_QUEUE_BACKOFF_MS = 10
"""librdkafka's ``fetch.queue.backoff.ms``: once its local queue of fetched messages is over
its thresholds (``queued.min.messages``, 100,000 by default), librdkafka waits this long
before fetching again. Its default, a second, starves a daemon catching up on a backlog: it
drains the queue in less than that and then waits for the fetch (a quarter of its time on
bench/scale.py's stream). ``kafka.client`` can set it."""


def _library() -> Any:
    if ck is None:
        raise ConfigError(
            "kafka.library confluent needs confluent-kafka: pip install 'driftwarden[confluent]'",
            "kafka.library",
        )
    return ck


def _servers(kafka: KafkaConfig) -> str:
    servers = kafka.bootstrap_servers
    return servers if isinstance(servers, str) else ",".join(servers)


class ConfluentConsumer:
    """A confluent-kafka group consumer with the daemon's settings and ``kafka.client``'s."""

    def __init__(self, kafka: KafkaConfig) -> None:
        _library()
        settings: dict[str, Any] = {
            "bootstrap.servers": _servers(kafka),
            "group.id": kafka.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": kafka.start_from,
            "client.id": "driftwarden",
            "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        }
        settings.update(kafka.client)
        try:
            self._consumer = ck.Consumer(settings)
        except (ck.KafkaException, TypeError, ValueError) as exc:
            raise ConfigError(f"rejected by confluent-kafka: {exc}", "kafka.client") from None
        strategy = str(settings.get("partition.assignment.strategy", ""))
        self._cooperative = "cooperative" in strategy
        self._topics: list[str] = []
        self._assignment: set[Partition] = set()
        self._pending: dict[Partition, int] | None = None  # seeks inside ``assigned``
        self._closing = False
        self._highwater: dict[Partition, int] = {}  # as of the last poll

    def subscribe(self, topics: list[str], assigned: Rebalanced, revoked: Rebalanced) -> None:
        def on_assign(consumer: Any, added: list[Any]) -> None:
            fresh = {Partition(tp.topic, tp.partition) for tp in added}
            cooperative = self._cooperative
            self._assignment = self._assignment | fresh if cooperative else fresh
            self._pending = {}
            try:
                assigned(set(self._assignment))
                seeks = self._pending
            finally:
                self._pending = None
            placed = [ck.TopicPartition(*p, seeks.pop(p, ck.OFFSET_INVALID)) for p in fresh]
            if cooperative:
                consumer.incremental_assign(placed)
                for p, offset in seeks.items():
                    consumer.seek(ck.TopicPartition(*p, offset))
            else:
                consumer.assign(placed)

        def on_revoke(consumer: Any, taken: list[Any]) -> None:
            gone = {Partition(tp.topic, tp.partition) for tp in taken}
            cooperative = self._cooperative
            if not self._closing:
                revoked(gone)
            self._assignment -= gone
            if cooperative:
                consumer.incremental_unassign(taken)
            else:
                consumer.unassign()

        self._topics = list(topics)
        self._consumer.subscribe(self._topics, on_assign=on_assign, on_revoke=on_revoke)

    def poll(self, timeout: float, max_records: int) -> list[Polled]:
        """What is queued, up to ``max_records``; with nothing queued, waits up to ``timeout``
        for the first record only (``consume`` alone would wait for ``max_records``)."""
        messages = self._consumer.consume(max_records, 0)
        if not messages:
            first = self._consumer.poll(timeout)
            if first is not None:
                rest = self._consumer.consume(max_records - 1, 0) if max_records > 1 else []
                messages = [first, *rest]
        self._highwater = {
            p: self._consumer.get_watermark_offsets(ck.TopicPartition(*p), cached=True)[1]
            for p in self._assignment
        }
        if not messages:
            return []
        errors = list(map(ck.Message.error, messages))
        if any(map(operator.is_not, errors, repeat(None))):  # KafkaError == None raises
            for error in errors:
                if error is not None and error.fatal():
                    raise ck.KafkaException(error)
            messages = [m for m, error in zip(messages, errors, strict=True) if error is None]
            if not messages:
                return []
        if len(self._topics) == 1:
            return [_columns(self._topics[0], messages)]
        topics = np.array(list(map(ck.Message.topic, messages)), dtype=object)
        by_topic = [np.flatnonzero(topics == topic).tolist() for topic in self._topics]
        return [
            _columns(topic, list(map(messages.__getitem__, rows)))
            for topic, rows in zip(self._topics, by_topic, strict=True)
            if rows
        ]

    def seek(self, partition: Partition, offset: int) -> None:
        self._place(partition, offset)

    def seek_to_beginning(self, partition: Partition) -> None:
        self._place(partition, ck.OFFSET_BEGINNING)

    def seek_to_end(self, partition: Partition) -> None:
        self._place(partition, ck.OFFSET_END)

    def _place(self, partition: Partition, offset: int) -> None:
        if self._pending is not None:
            self._pending[partition] = offset
        else:
            self._consumer.seek(ck.TopicPartition(*partition, offset))

    def highwater(self, partition: Partition) -> int | None:
        high = self._highwater.get(partition, -1)
        return None if high < 0 else high

    def partition_count(self, topic: str) -> int | None:
        """From the metadata of every topic: librdkafka asks for a topic named alone, which
        a broker may create."""
        try:
            metadata = self._consumer.list_topics(timeout=METADATA_TIMEOUT)
        except ck.KafkaException as exc:
            raise ConnectionError(f"no topic metadata from the broker: {exc}") from None
        found = metadata.topics.get(topic)
        return None if found is None else len(found.partitions) or None

    def commit(self, offsets: dict[Partition, int]) -> None:
        self._consumer.commit(
            offsets=[ck.TopicPartition(*p, o) for p, o in offsets.items()], asynchronous=True
        )

    def close(self) -> None:
        self._closing = True
        self._consumer.close()


def _columns(topic: str, messages: list[Any]) -> Polled:
    """One topic's messages as columns (each partition's stay in offset order); the
    accessors are mapped in C, not called from Python per message."""
    count = len(messages)
    values = list(map(ck.Message.value, messages))
    if None in values:  # tombstones: empty events, dead-lettered as such
        values = [value or b"" for value in values]
    return Polled(
        topic,
        values,
        np.fromiter(map(ck.Message.partition, messages), dtype=np.int64, count=count),
        np.fromiter(map(ck.Message.offset, messages), dtype=np.int64, count=count),
    )


_CONSUMER_ONLY = {"group.id", "auto.offset.reset", "enable.auto.commit"}
_CONSUMER_ONLY |= {"session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms"}


class ConfluentProducer:
    """A confluent-kafka producer with the producer settings of ``kafka.client``."""

    def __init__(self, kafka: KafkaConfig) -> None:
        _library()
        settings = {k: v for k, v in kafka.client.items() if k not in _CONSUMER_ONLY}
        try:
            self._producer = ck.Producer({"bootstrap.servers": _servers(kafka), **settings})
        except (ck.KafkaException, TypeError, ValueError) as exc:
            raise ConfigError(f"rejected by confluent-kafka: {exc}", "kafka.client") from None

    def send(self, topic: str, value: bytes, key: bytes | None, timeout: float) -> None:
        outcome: list[Any] = []
        self._producer.produce(
            topic, value=value, key=key, on_delivery=lambda error, _: outcome.append(error)
        )
        self._producer.flush(timeout)
        if not outcome:
            raise TimeoutError(f"no acknowledgement from the broker within {timeout:g} s")
        if outcome[0] is not None:
            raise ck.KafkaException(outcome[0])

    def close(self) -> None:
        self._producer.flush(5)
