"""What the daemon needs of a Kafka consumer (and the dead-letter replay of a producer),
whichever client library provides it.

``kafka.library`` picks the adapter (``kafka_python`` or ``confluent``); both subscribe
with rebalance callbacks that receive the partitions revoked and the whole new
assignment, return polled records as columns, seek, report high watermarks and partition
counts, commit advisory group offsets and close without calling the callbacks again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np


class Partition(NamedTuple):
    """One partition of a topic."""

    topic: str
    partition: int


@dataclass(frozen=True)
class Polled:
    """Records read from one topic, as columns; each partition's in offset order."""

    topic: str
    values: list[bytes]
    partitions: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


Rebalanced = Callable[[set[Partition]], None]


class Consumer(Protocol):
    """A group consumer; rebalance callbacks run inside ``poll``, on the polling thread."""

    def subscribe(self, topics: list[str], assigned: Rebalanced, revoked: Rebalanced) -> None:
        """Join the group on ``topics``. ``revoked`` receives the partitions taken away
        (before they go), ``assigned`` the whole assignment after each rebalance; seeks
        made inside ``assigned`` decide where its partitions are read from."""

    def poll(self, timeout: float, max_records: int) -> list[Polled]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for any."""

    def seek(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` from ``offset`` next."""

    def seek_to_beginning(self, partition: Partition) -> None:
        """Read ``partition`` from its earliest retained record next."""

    def seek_to_end(self, partition: Partition) -> None:
        """Read only what arrives on ``partition`` from now on."""

    def highwater(self, partition: Partition) -> int | None:
        """The offset after the last record of ``partition``, as last fetched (None before
        any fetch)."""

    def partition_count(self, topic: str) -> int | None:
        """How many partitions ``topic`` has (None when the broker does not know it), from
        the metadata of every topic: asking for one topic by name may create it. Raises
        ``ConnectionError`` when the broker does not answer."""

    def commit(self, offsets: dict[Partition, int]) -> None:
        """Commit ``offsets`` to the group without waiting (advisory: positions live in the
        database)."""

    def close(self) -> None:
        """Leave the group and close the connections; no callback runs."""


class Producer(Protocol):
    """Sends single messages and waits for each to be acknowledged."""

    def send(self, topic: str, value: bytes, key: bytes | None, timeout: float) -> None:
        """Produce one message; raises if the broker has not acknowledged it in ``timeout``
        seconds."""

    def close(self) -> None:
        """Flush and close the connections."""
