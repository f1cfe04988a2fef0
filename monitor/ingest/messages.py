"""A batch as sources hand it over (raw messages with their origins) and as decoding
returns it (one frame per model, dead letters, ignored counts)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from driftwarden.core.records import DeadLetter, EventKind, Origin


@dataclass(frozen=True)
class Messages:
    """Raw messages of one source, in order, with their offsets (or line numbers).

    ``partitions`` gives each message's partition when a batch spans several;
    otherwise every message is from ``partition``.
    """

    values: list[bytes]
    source: str
    partition: int | None
    offsets: np.ndarray
    partitions: np.ndarray | None = None

    def origin(self, row: int) -> Origin:
        partition = self.partition if self.partitions is None else int(self.partitions[row])
        return Origin(self.source, partition, int(self.offsets[row]))

    def __len__(self) -> int:
        return len(self.values)

    def take(self, start: int, stop: int) -> Messages:
        """The messages ``start`` to ``stop`` (in order)."""
        partitions = None if self.partitions is None else self.partitions[start:stop]
        return Messages(
            self.values[start:stop],
            self.source,
            self.partition,
            self.offsets[start:stop],
            partitions,
        )

    def positions(self) -> dict[tuple[str, int], int]:
        """The offset after the last message of each partition (Kafka's next position)."""
        if not self.values or (self.partition is None and self.partitions is None):
            return {}
        partitions = (
            np.full(len(self.values), self.partition)
            if self.partitions is None
            else self.partitions
        )
        return {
            (self.source, int(partition)): int(self.offsets[partitions == partition].max()) + 1
            for partition in np.unique(partitions)
        }


@dataclass
class DecodedBatch:
    """The result of decoding one batch: frames per model, dead letters, ignored counts."""

    messages: Messages
    frames: dict[str, pl.DataFrame]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    unconfigured_features: dict[str, set[str]] = field(default_factory=dict)

    @property
    def n_decoded(self) -> int:
        return sum(frame.height for frame in self.frames.values())

    def dead_letter(
        self,
        row: int,
        reason: str,
        detail: str,
        model: str | None,
        kind: EventKind,
        raw: bytes | None = None,
    ) -> None:
        """Record message ``row`` of this batch as a dead letter (with ``raw`` instead of its
        bytes, when given: a bounded part of a message too large to keep whole)."""
        origin = self.messages.origin(row)
        kept = self.messages.values[row] if raw is None else raw
        self.dead_letters.append(DeadLetter(reason, detail, kept, origin, kind, model))
