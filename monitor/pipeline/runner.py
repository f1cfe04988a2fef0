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

A batch that fails unexpectedly does not stop the path: the runner goes back
to the last commit, runs again what it had run since (its journal), and runs
the failed batch in halves, committing each half that works, down to the
single messages that fail, which become ``internal_error`` dead letters.
Database errors a retry may outlive (``storage.transient``) are the caller's
to handle: it reconnects and reads again from the stored positions.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection

from driftwarden.alerts import AlertEngine
from driftwarden.core.records import DeadLetter, EventKind, ResultRecord
from driftwarden.monitor.config import Config
from driftwarden.monitor.ingest.decoding import EventDecoder, decoder
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages
from driftwarden.monitor.pipeline.building import close_delays
from driftwarden.monitor.pipeline.pipeline import Pipeline
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.storage import Commit, Store, transient

log = logging.getLogger("driftwarden.pipeline")


@dataclass(frozen=True)
class SourceBatch:
    """What a source hands the batch path: raw messages per kind of event, and the next
    offset of every partition they came from (Kafka)."""

    messages: Mapping[EventKind, Messages]
    positions: Mapping[tuple[str, int], int] = field(default_factory=dict)
    decoded: Mapping[EventKind, DecodedBatch] = field(default_factory=dict)
    """The messages already decoded (``BatchRunner.decode``), by a thread that runs ahead of
    the batch path; used on the batch's first run only, a rerun decodes again."""

    def __len__(self) -> int:
        return sum(len(messages) for messages in self.messages.values())

    def part(self, start: int, stop: int) -> SourceBatch:
        """Messages ``start`` to ``stop`` of the batch, predictions first, then labels, with
        their own positions."""
        parts: dict[EventKind, Messages] = {}
        positions: dict[tuple[str, int], int] = {}
        offset = 0
        for kind in _KINDS:
            messages = self.messages.get(kind)
            if messages is None:
                continue
            low, high = max(start - offset, 0), min(stop - offset, len(messages))
            if low < high:
                parts[kind] = messages.take(low, high)
                positions.update(parts[kind].positions())
            offset += len(messages)
        return SourceBatch(parts, positions)


_KINDS: tuple[EventKind, ...] = ("prediction", "label")


@dataclass(frozen=True)
class _Done:
    """A batch run since the last checkpoint: what to run again after going back to it."""

    batch: SourceBatch
    labels: list[DecodedBatch]
    ticked: list[str] | None


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
        backtest: bool = False,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.store = store
        self.alerts = alerts
        self.connection = connection
        self.cadence = cadence
        self.labels = labels
        self.backtest = backtest
        self._close_delays = close_delays(config)
        self.decoders: dict[EventKind, EventDecoder] = {
            "prediction": decoder(config, "prediction"),
            "label": decoder(config, "label"),
        }
        self._commit = self._new_commit()
        self._report = BatchReport()
        self._journal: list[_Done] = []
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
        committed = None
        try:
            self._run(batch, caught_up)
        except Exception as error:
            if transient(error):
                raise
            committed = self._recover(batch, error)
        if self.due():
            report = self.checkpoint()
            if committed is None:
                return report
            committed.extend_committed(report)
        return committed

    def _run(
        self,
        batch: SourceBatch,
        caught_up: set[tuple[str, int]] | None,
        done: _Done | None = None,
    ) -> None:
        """Decode, fold, join and close windows (nothing is committed yet); ``done`` runs a
        journaled batch again with the labels and ticks it had."""
        commit, connection = self._commit, self.connection
        released: list[DecodedBatch] = []
        for kind in _KINDS:
            messages = batch.messages.get(kind)
            if messages is None:
                continue
            ahead = batch.decoded.get(kind) if done is None else None
            decoded = ahead if ahead is not None else self.decoders[kind].decode(messages)
            if kind == "label":
                self._labels(decoded)
                continue
            self._report.extend(self.pipeline.process(decoded, commit, connection))
            if done is not None:
                released = done.labels
            elif self.labels is not None:
                released = list(self.labels.after(decoded, self.pipeline.event_now))
            for due in released:
                self._labels(due)
        commit.positions.update(batch.positions)
        ticked = None if done is None else done.ticked
        if done is None and caught_up is not None:
            ticked = self.pipeline.owned(caught_up)
        if ticked is not None:
            self._report.extend(self.pipeline.tick(commit, connection, ticked))
        self._report.extend(self.pipeline.silences(commit, self._watched(ticked)))
        self._journal.append(_Done(batch, released, ticked))

    def decode(self, batch: SourceBatch) -> SourceBatch:
        """``batch`` with its messages decoded: decoding reads no state of the batch path,
        so a source may do it on another thread, overlapping the previous batch's fold and
        checkpoint (polars releases the GIL while it parses)."""
        decoded = {kind: self.decoders[kind].decode(m) for kind, m in batch.messages.items()}
        return SourceBatch(batch.messages, batch.positions, decoded)

    def _watched(self, ticked: list[str] | None) -> Iterable[str]:
        """The models whose silence the batch can tell: live, those on partitions read to
        their end (a lagging consumer proves nothing); in a replay, every model."""
        if self.pipeline.clock is None:
            return self.pipeline.models
        return ticked or ()

    def _recover(self, batch: SourceBatch, error: Exception) -> BatchReport:
        """Go back to the last commit, run the journal again, then the failed batch in
        halves; returns what that committed."""
        log.error(
            "a batch of %d messages failed (%s: %s); running it again in parts",
            len(batch),
            type(error).__name__,
            error,
            exc_info=error,
            extra={"event": "batch_failed", "messages": len(batch)},
        )
        journal = self._journal
        self.reset()
        for done in journal:
            self._run(done.batch, None, done)
        committed = self.checkpoint()
        pieces = [(0, len(batch))]
        while pieces:
            start, stop = pieces.pop(0)
            piece = batch.part(start, stop)
            try:
                self._run(piece, None)
                committed.extend_committed(self.checkpoint())
            except Exception as failure:
                if transient(failure):
                    raise
                self.reset()
                if stop - start == 1:
                    committed.extend_committed(self._give_up(piece, failure))
                else:
                    middle = (start + stop) // 2
                    pieces[:0] = [(start, middle), (middle, stop)]
        return committed

    def _give_up(self, message: SourceBatch, failure: Exception) -> BatchReport:
        """A message that fails on its own: an ``internal_error`` dead letter, committed with
        its position so the path moves past it."""
        ((kind, messages),) = message.messages.items()
        origin = messages.origin(0)
        log.error(
            "processing a message failed; kept as a dead letter",
            exc_info=failure,
            extra={"event": "internal_error", **origin.as_dict()},
        )
        where = traceback.extract_tb(failure.__traceback__)[-1]
        detail = (
            f"processing it failed: {type(failure).__name__}: {failure} "
            f"(in {where.name}, {where.filename.rsplit('/', 1)[-1]}:{where.lineno}; "
            "traceback in the log)"
        )
        self._commit.dead_letters.append(
            DeadLetter("internal_error", detail, messages.values[0], origin, kind)
        )
        self._commit.positions.update(message.positions)
        return self.checkpoint()

    def reset(self) -> None:
        """Go back to the last commit: roll back, reload every model's state, forget what
        was run since."""
        self.connection.rollback()
        self.pipeline.restore(self.store)
        self.discard()

    def keep(self, letters: Iterable[DeadLetter]) -> None:
        """Keep dead letters a source found before the batch path (with the next commit)."""
        self._commit.dead_letters += letters

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
        """Whether the next checkpoint is due: a window closed (or a partition closed a
        spread model's), or the cadence says so."""
        waited = self.now - self._last_checkpoint
        closed = self._report.closed or self._commit.partials
        return bool(closed) or waited >= self.cadence.checkpoint_every

    def checkpoint(self, *, end_of_input: bool = False) -> BatchReport:
        """Expire what is due, store everything since the last checkpoint, let the alert
        engine judge the new results, and commit; returns what was committed."""
        began = time.perf_counter()
        commit, report = self._commit, self._report
        now = self.now
        last = self._last_expiry
        if end_of_input or last is None or now - last >= self.cadence.expire_every:
            report.extend(self.pipeline.expire(commit, self.connection, end_of_input=end_of_input))
            self._last_expiry = now
        self.pipeline.snapshot(commit, self.connection, changed_only=not end_of_input)
        self.store.write(self.connection, commit)
        closing = self._new_commit()
        report.extend(self.pipeline.gather(closing, self.connection))
        self.store.write(self.connection, closing)
        commit.windows += closing.windows
        commit.results += closing.results
        if self.backtest:
            self._judge_on_event_time(commit.results, now)
        else:
            self.alerts.evaluate(commit.results, now, self.connection)
        self.connection.commit()
        self._commit, self._report, self._journal = self._new_commit(), BatchReport(), []
        self._last_checkpoint = now
        report.results = commit.results
        report.dead_letters = commit.dead_letters
        report.positions = commit.positions
        report.checkpoint_seconds = time.perf_counter() - began
        return report

    def _judge_on_event_time(self, results: list[ResultRecord], now: int) -> None:
        """Let the alert engine judge each result at the event time it became known, with
        the alert timers run up to each of those times and then to ``now``."""
        moments: dict[int, list[ResultRecord]] = defaultdict(list)
        for record in results:
            moments[self._known_at(record, now)].append(record)
        for moment in sorted(moments):
            self.alerts.advance_to(moment, self.connection)
            self.alerts.evaluate(moments[moment], moment, self.connection)
        self.alerts.advance_to(now, self.connection)

    def _known_at(self, record: ResultRecord, now: int) -> int:
        """When (event time) a streaming run would have had the record: as its window
        closed, or at its detection; never before the last checkpoint nor after ``now``.
        Records of labels that came later are dated to the checkpoint's span."""
        closed = record.detected_at or record.window_end + self._close_delays.get(record.model, 0)
        return min(now, max(self._last_checkpoint, closed))

    def discard(self) -> None:
        """Forget what was not committed (partitions moved: they are read again)."""
        self._commit, self._report, self._journal = self._new_commit(), BatchReport(), []

    def _labels(self, batch: DecodedBatch) -> None:
        self._report.extend(self.pipeline.process_labels(batch, self._commit, self.connection))

    def _new_commit(self) -> Commit:
        return Commit(group_id=self.config.kafka.group_id)
