"""The consumer and producer on kafka-python (``kafka.library: kafka-python``, the
default)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConfigurationError, KafkaConnectionError, KafkaError
from kafka.structs import OffsetAndMetadata

from driftwarden.monitor.config import KafkaConfig
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.ingest.consumer import Partition, Polled, Rebalanced

log = logging.getLogger("driftwarden.kafka")


class KafkaPythonConsumer:
    """A kafka-python group consumer with the daemon's settings and ``kafka.client``'s."""

    def __init__(self, kafka: KafkaConfig) -> None:
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
            self._consumer = KafkaConsumer(**settings)
        except (KafkaConfigurationError, TypeError, AssertionError) as exc:
            raise ConfigError(f"rejected by kafka-python: {exc}", "kafka.client") from None

    def subscribe(self, topics: list[str], assigned: Rebalanced, revoked: Rebalanced) -> None:
        self._consumer.subscribe(topics, listener=_Listener(assigned, revoked))

    def poll(self, timeout: float, max_records: int) -> list[Polled]:
        """Records of one poll; a broker that cannot be reached gives none for the poll's
        timeout (the next poll connects again), as a broker restart must not end the daemon."""
        try:
            records = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaConnectionError as exc:
            log.warning("broker unreachable, polling again: %s", exc)
            time.sleep(timeout)
            return []
        return [
            Polled(
                tp.topic,
                [r.value if r.value is not None else b"" for r in items],
                np.full(len(items), tp.partition, dtype=np.int64),
                np.fromiter((r.offset for r in items), dtype=np.int64, count=len(items)),
            )
            for tp, items in records.items()
            if items
        ]

    def seek(self, partition: Partition, offset: int) -> None:
        self._consumer.seek(TopicPartition(*partition), offset)

    def seek_to_beginning(self, partition: Partition) -> None:
        self._consumer.seek_to_beginning(TopicPartition(*partition))

    def seek_to_end(self, partition: Partition) -> None:
        self._consumer.seek_to_end(TopicPartition(*partition))

    def highwater(self, partition: Partition) -> int | None:
        return self._consumer.highwater(TopicPartition(*partition))

    def partition_count(self, topic: str) -> int | None:
        """From the cached metadata, else from the metadata of every topic (which creates
        none; a subscription may)."""
        try:
            partitions = self._consumer.partitions_for_topic(topic)
        except KafkaError as exc:
            raise ConnectionError(f"no topic metadata from the broker: {exc}") from None
        return len(partitions) or None

    def commit(self, offsets: dict[Partition, int]) -> None:
        self._consumer.commit_async(
            {TopicPartition(*p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        )

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, assigned: Rebalanced, revoked: Rebalanced) -> None:
        self.assigned = assigned
        self.revoked = revoked

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoked({Partition(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned({Partition(tp.topic, tp.partition) for tp in assigned})


_CONSUMER_ONLY = {"group_id", "auto_offset_reset", "enable_auto_commit", "max_poll_records"}
_CONSUMER_ONLY |= {"session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms"}


class KafkaPythonProducer:
    """A kafka-python producer with the producer settings of ``kafka.client``."""

    def __init__(self, kafka: KafkaConfig) -> None:
        settings = {k: v for k, v in kafka.client.items() if k not in _CONSUMER_ONLY}
        self._producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, **settings)

    def send(self, topic: str, value: bytes, key: bytes | None, timeout: float) -> None:
        future = self._producer.send(topic, value=value, key=key)
        self._producer.flush(timeout=timeout)
        future.get(timeout=timeout)

    def close(self) -> None:
        self._producer.close()
