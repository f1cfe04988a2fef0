"""Every configured model's part of the batch path, given decoded batches and a commit."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
from sqlalchemy import Connection

from driftwarden.core.times import Clock
from driftwarden.monitor.config import Config
from driftwarden.monitor.ingest.messages import DecodedBatch
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline, reject_future
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.spread import SpreadPipeline, spread_models
from driftwarden.monitor.pipeline.versions import VersionedPipeline
from driftwarden.monitor.storage import Commit, Store


class Pipeline:
    """All configured models; folds decoded batches, joins labels, closes windows."""

    def __init__(
        self,
        config: Config,
        models: dict[str, ModelPipeline | VersionedPipeline | SpreadPipeline],
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.models = models
        self.clock = clock
        skew = config.events.max_future_skew.total_seconds()
        self._max_future_skew = int(skew * 1000)
        self.event_now = 0
        if clock is not None:  # live: a model that had events before may fall silent
            for model in models.values():
                if model.source is not None:
                    model.freshness.heard_at = clock()

    @property
    def now(self) -> int:
        """The time ttls are measured on: the wall clock live, the latest event time in replay."""
        return self.clock() if self.clock else self.event_now

    def process(self, batch: DecodedBatch, commit: Commit, connection: Connection) -> BatchReport:
        """Fold a decoded batch of predictions in and close due windows."""
        report = BatchReport()
        now = self.clock() if self.clock else None
        limit = self._future_limit()
        self._observe(batch)
        for name, frame in batch.frames.items():
            if frame.height:
                report.events[name] += self.models[name].fold(
                    frame, batch, connection, now, self.event_now, limit, report
                )
        for name in report.events:
            self._heard(name, batch, commit, report)
        for name in batch.frames:
            joined = report.joins.get(name)
            if joined is not None:
                self.models[name].outcomes_changed(joined, commit, connection, report)
            self._close(name, commit, connection, report, now, flush=False)
        _account(batch, commit, report)
        return report

    def process_labels(
        self, batch: DecodedBatch, commit: Commit, connection: Connection
    ) -> BatchReport:
        """Join a decoded batch of labels to waiting predictions."""
        report = BatchReport()
        self._observe(batch)
        limit = self._future_limit()
        for name, frame in batch.frames.items():
            model = self.models[name]
            if frame.height and model.labels is None:
                batch.ignored["labels_disabled"] += frame.height
                continue
            if limit is not None:
                frame = reject_future(frame, batch, limit, name, "label")
            if frame.height:
                model.join_labels(frame, batch, commit, connection, self.now, report)
        _account(batch, commit, report)
        return report

    def silences(self, commit: Commit, models: Iterable[str]) -> BatchReport:
        """Freshness records of ``models`` found silent by now: the wall clock live; in a
        replay, the latest event any model was heard at (others going on without it)."""
        report = BatchReport()
        heard = [m.freshness.heard_at for m in self.models.values() if m.freshness.heard_at]
        now = self.clock() if self.clock else max(heard, default=None)
        if now is None:
            return report
        for name in models:
            model = self.models[name]
            found = model.freshness.check(now, model.windows.index_of, model.profile.reference_id)
            if found is not None:
                model.dirty = True  # the silence is checkpointed with the model's state
                commit.results.append(found)
                report.silences.append(found)
        return report

    def _heard(self, name: str, batch: DecodedBatch, commit: Commit, report: BatchReport) -> None:
        """A model received events: the freshness records of the silences they end."""
        model = self.models[name]
        if self.clock is not None:
            times = np.array([self.clock()], dtype=np.int64)
        else:
            times = batch.frames[name]["ts"].to_numpy()
        records = model.freshness.heard(times, model.windows.index_of, model.profile.reference_id)
        commit.results += records
        report.silences += records

    def _future_limit(self) -> int | None:
        """The latest event time accepted now; live mode only (replay has no wall clock)."""
        return self.clock() + self._max_future_skew if self.clock else None

    def _observe(self, batch: DecodedBatch) -> None:
        for frame in batch.frames.values():
            if frame.height:
                self.event_now = max(self.event_now, int(frame["ts"].max()))

    def tick(self, commit: Commit, connection: Connection, models: Iterable[str]) -> BatchReport:
        """Close windows of ``models`` due on the wall clock (idle timeout); live mode only."""
        report = BatchReport()
        now = self.clock() if self.clock else None
        for name in models:
            self._close(name, commit, connection, report, now, flush=False)
        return report

    def flush(self, commit: Commit, connection: Connection) -> BatchReport:
        """Close every open window: the end of the input."""
        report = BatchReport()
        for name in self.models:
            self._close(name, commit, connection, report, None, flush=True)
        return report

    def expire(
        self, commit: Commit, connection: Connection, *, end_of_input: bool = False
    ) -> BatchReport:
        """Expire label-join rows past their ttl, on ``now``; at the end of the input
        (replay), every orphan left becomes a dead letter."""
        report = BatchReport()
        for model in self.models.values():
            model.expire(connection, self.now, commit, report, end_of_input=end_of_input)
        return report

    def _close(
        self,
        name: str,
        commit: Commit,
        connection: Connection,
        report: BatchReport,
        now: int | None,
        *,
        flush: bool,
    ) -> None:
        model = self.models[name]
        began = time.perf_counter()
        closed = model.close_due(commit, connection, now, flush=flush)
        if closed:
            report.close_seconds += [(time.perf_counter() - began) / len(closed)] * len(closed)
        report.closed += closed
        report.skipped += [(name, run) for run in model.skipped]

    def snapshot(
        self, commit: Commit, connection: Connection, *, changed_only: bool = False
    ) -> None:
        """Add the state of every (or every changed) model to ``commit``."""
        for model in self.models.values():
            model.checkpoint(commit, connection, changed_only=changed_only)

    def gather(self, commit: Commit, connection: Connection) -> BatchReport:
        """Close the windows of spread models that every partition has closed, and
        re-evaluate their closed windows whose labels changed (after the parts' state of
        this checkpoint is written on ``connection``)."""
        report = BatchReport()
        now = self.clock() if self.clock else None
        for model in spread_models(self.models):
            model.gather(commit, connection, report, now)
        return report

    def restore(self, store: Store) -> None:
        """Reload every model's state from the database (after a rebalance or a rollback)."""
        for name, model in self.models.items():
            model.restore(store.model_state(name))

    def owned(self, partitions: set[tuple[str, int]]) -> list[str]:
        """Models whose events come from ``partitions`` (or from nowhere yet); every spread
        model, which learns which of its partitions these are."""
        return [name for name, model in self.models.items() if model.reads(partitions)]


def _account(batch: DecodedBatch, commit: Commit, report: BatchReport) -> None:
    """What decoding set aside: dead letters (to store) and ignored events (to count)."""
    commit.dead_letters.extend(batch.dead_letters)
    report.ignored.update(batch.ignored)
    for model, names in batch.unconfigured_features.items():
        report.unconfigured_features.setdefault(model, set()).update(names)
