"""The batch path: decode → fold → close → evaluate → store → alerts → commit.

``BatchRunner`` is the one component that runs it. The daemon feeds it polls of
Kafka and ``replay`` feeds it chunks of files; they differ only in where
messages come from (and, for ``replay``, labels a file source has already
timed), which clock they pass (the wall clock, or event time), how often
they commit (``Cadence``), and what happens to notifications (delivered by
the dispatcher, or held for ``alerts.jsonl``).

Between checkpoints the label join writes on the runner's connection as it
goes; a checkpoint adds positions, window state, closed windows, results and
dead letters, lets the alert engine judge the new results, and commits it all
in one transaction. See docs/architecture.md, "The batch path".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection

from driftwarden.alerts import AlertEngine
from driftwarden.core.records import DeadLetter, EventKind
from driftwarden.monitor.config import Config
from driftwarden.monitor.ingest.decoding import EventDecoder, decoder
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages
from driftwarden.monitor.pipeline.pipeline import Pipeline
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.storage import Commit, Store


@dataclass(frozen=True)
class SourceBatch:
    """What a source hands the batch path: raw messages per kind of event, and the next
    offset of every partition they came from (Kafka)."""

    messages: Mapping[EventKind, Messages]
    positions: Mapping[tuple[str, int], int] = field(default_factory=dict)


class TimedLabels(Protocol):
    """Labels a source has decoded and timed already (``replay``'s label file)."""

    def after(self, predictions: DecodedBatch, event_now: int) -> Iterable[DecodedBatch]:
        """The labels due once these predictions are in and event time reached
        ``event_now``."""

    def rest(self) -> Iterable[DecodedBatch]:
        """Every label still to come: the end of the input."""


@dataclass(frozen=True)
class Cadence:
    """How often, on the runner's clock (milliseconds), the runner commits and sweeps the
    label join for expired rows; 0 means after every batch. A window that closes always
    commits at once."""

    checkpoint_every: int
    expire_every: int


class BatchRunner:
    """Runs batches through the pipeline and commits them with their alerts.

    ``connection`` is the runner's own: the label join writes on it between
    checkpoints, and every checkpoint commits it.
    """

    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        store: Store,
        alerts: AlertEngine,
        connection: Connection,
        cadence: Cadence,
        *,
        labels: TimedLabels | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.store = store
        self.alerts = alerts
        self.connection = connection
        self.cadence = cadence
        self.labels = labels
        self.decoders: dict[EventKind, EventDecoder] = {
            "prediction": decoder(config, "prediction"),
            "label": decoder(config, "label"),
        }
        self._commit = self._new_commit()
        self._report = BatchReport()
        self._last_checkpoint = pipeline.now
        self._last_expiry: int | None = None

    @property
    def now(self) -> int:
        """The runner's clock: the wall clock live, the latest event time in a replay."""
        return self.pipeline.now

    def run(
        self, batch: SourceBatch, *, caught_up: set[tuple[str, int]] | None = None
    ) -> BatchReport | None:
        """Run one batch; commit when the cadence says (or a window closed). Returns what
        was committed, or ``None`` when nothing was.

        A live source passes the partitions it has read to their end (``caught_up``):
        models on them may close windows on the idle timeout.
        """
        self.process(batch)
        if caught_up is not None:
            self.tick(self.pipeline.owned(caught_up))
        return self.checkpoint() if self.due() else None

    def process(self, batch: SourceBatch) -> None:
        """Decode, fold, join and close windows; nothing is committed yet."""
        commit, connection = self._commit, self.connection
        for kind in ("prediction", "label"):
            messages = batch.messages.get(kind)
            if messages is None:
                continue
            decoded = self.decoders[kind].decode(messages)
            if kind == "label":
                self._report.extend(self.pipeline.process_labels(decoded, commit, connection))
                continue
            self._report.extend(self.pipeline.process(decoded, commit, connection))
            if self.labels is not None:
                for due in self.labels.after(decoded, self.pipeline.event_now):
                    self._labels(due)
        commit.positions.update(batch.positions)

    def keep(self, letters: Iterable[DeadLetter]) -> None:
        """Keep dead letters a source found before the batch path (with the next commit)."""
        self._commit.dead_letters += letters

    def tick(self, models: Iterable[str]) -> None:
        """Close windows of ``models`` due on the clock (idle timeout); live only."""
        self._report.extend(self.pipeline.tick(self._commit, self.connection, models))

    def finish(self) -> BatchReport:
        """The end of the input: the labels still to come as one last batch; then every open
        window closed and every orphan label a dead letter. Commits both."""
        report = BatchReport()
        if self.labels is not None:
            for due in self.labels.rest():
                self._labels(due)
            report.extend_committed(self.checkpoint())
        self._report.extend(self.pipeline.flush(self._commit, self.connection))
        report.extend_committed(self.checkpoint(end_of_input=True))
        return report

    def due(self) -> bool:
        """Whether the next checkpoint is due: a window closed, or the cadence says so."""
        waited = self.now - self._last_checkpoint
        return bool(self._report.closed) or waited >= self.cadence.checkpoint_every

    def checkpoint(self, *, end_of_input: bool = False) -> BatchReport:
        """Expire what is due, store everything since the last checkpoint, let the alert
        engine judge the new results, and commit; returns what was committed."""
        began = time.perf_counter()
        commit, report = self._commit, self._report
        self._commit, self._report = self._new_commit(), BatchReport()
        now = self.now
        last = self._last_expiry
        if end_of_input or last is None or now - last >= self.cadence.expire_every:
            report.extend(self.pipeline.expire(commit, self.connection, end_of_input=end_of_input))
            self._last_expiry = now
        self.pipeline.snapshot(commit, self.connection, changed_only=not end_of_input)
        self.store.write(self.connection, commit)
        self.alerts.evaluate(commit.results, now, self.connection)
        self.connection.commit()
        self._last_checkpoint = now
        report.results = commit.results
        report.dead_letters = commit.dead_letters
        report.positions = commit.positions
        report.checkpoint_seconds = time.perf_counter() - began
        return report

    def discard(self) -> None:
        """Forget what was not committed (partitions moved: they are read again)."""
        self._commit, self._report = self._new_commit(), BatchReport()

    def _labels(self, batch: DecodedBatch) -> None:
        self._report.extend(self.pipeline.process_labels(batch, self._commit, self.connection))

    def _new_commit(self) -> Commit:
        return Commit(group_id=self.config.kafka.group_id)
