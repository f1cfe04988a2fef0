"""What the batch path did: the one report metrics, logs and ``replay`` read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from driftwarden.core.records import DeadLetter, ResultRecord, WindowInfo
from driftwarden.monitor.labels.join import LabelReport
from driftwarden.monitor.windows.windowing import SkippedRun


@dataclass
class BatchReport:
    """What one or more batches did, up to and including a checkpoint.

    ``closed`` holds each window that closed with its records; ``outcomes`` the
    records of windows whose outcomes changed later (labels) and concept-drift
    detections; ``silences`` the freshness records of models that fell silent or
    heard again; ``joins`` what each model's label join did. A checkpoint fills in
    what it committed: every result and dead letter in the order written, and the
    consumer positions.
    """

    events: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    closed: list[tuple[WindowInfo, list[ResultRecord]]] = field(default_factory=list)
    close_seconds: list[float] = field(default_factory=list)
    outcomes: list[tuple[WindowInfo, list[ResultRecord]]] = field(default_factory=list)
    joins: dict[str, LabelReport] = field(default_factory=dict)
    expired: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    unconfigured_features: dict[str, set[str]] = field(default_factory=dict)
    skipped: list[tuple[str, SkippedRun]] = field(default_factory=list)
    silences: list[ResultRecord] = field(default_factory=list)
    results: list[ResultRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    checkpoint_seconds: float | None = None

    def extend(self, other: BatchReport) -> None:
        """Add what ``other`` did to this report."""
        self.events.update(other.events)
        self.labels.update(other.labels)
        self.closed += other.closed
        self.close_seconds += other.close_seconds
        self.outcomes += other.outcomes
        for model, joined in other.joins.items():
            self.joins.setdefault(model, LabelReport()).add(joined)
        self.expired.update(other.expired)
        self.ignored.update(other.ignored)
        self.skipped += other.skipped
        self.silences += other.silences
        for model, names in other.unconfigured_features.items():
            self.unconfigured_features.setdefault(model, set()).update(names)

    def extend_committed(self, other: BatchReport) -> None:
        """Add what ``other`` did and committed to this report."""
        self.extend(other)
        self.results += other.results
        self.dead_letters += other.dead_letters
        self.positions.update(other.positions)
