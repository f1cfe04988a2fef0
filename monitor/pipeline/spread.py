"""A model spread over partitions (``spread: true``): its events may arrive on any partition
of the predictions topic, read by any instance of the consumer group.

Each partition that carries the model folds its events in a part of its own: a
``ModelPipeline`` stored under ``model@partition``, whose windows decide what is too late
and when a window closes on that partition's events alone (its watermark, its idle
timeout). A part does not evaluate the windows it closes: it hands their panes in
(``window_partials``, each pane once) and says how far it has closed and whether it is idle
(``spread_progress``), in its instance's checkpoint, with the partition's position.

A window of the model closes when every partition of the topic has closed it or is idle.
At each checkpoint the instance locks the model's state row, reads every partition's
progress and the handed-in panes, and closes what is due: it merges the panes (summaries
are mergeable) and evaluates the window once. The lock queues instances closing the same
model, and the window's end is stored with the lock held, so a window is never evaluated
twice. Labels follow their predictions (same key, same partition number on the labels
topic): a part joins them, and a window's label-based results read every partition's
label panes. Late labels are folded by their partition's part and the windows they
complete are evaluated again under the same lock.

Not yet for spread models: concept drift (its errors have no one order across
partitions), silence, versions split and segments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.monitor import windows
from driftwarden.monitor.config import ModelConfig, TimeWindowConfig
from driftwarden.monitor.ingest.messages import DecodedBatch
from driftwarden.monitor.labels.join import LabelJoin, LabelReport, error_shape
from driftwarden.monitor.pipeline.freshness import Freshness
from driftwarden.monitor.pipeline.model_pipeline import (
    Lane,
    ModelPipeline,
    older_profiles,
    reject_closed,
    stored_profile,
)
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.versions import ConceptOutline
from driftwarden.monitor.storage import Commit, ModelSnapshot, Store
from driftwarden.monitor.storage.partials import (
    Partial,
    Progress,
    drop_partials,
    lock_model,
    partials_of,
    progress_of,
)
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary
from driftwarden.monitor.windows.time_windows import TimeWindows
from driftwarden.monitor.windows.windowing import SkippedRun, WindowBounds

log = logging.getLogger("driftwarden.pipeline")


@dataclass(frozen=True)
class Spread:
    """Where spread models' events come from: the predictions topic and its partition
    count (every partition may carry them)."""

    topic: str
    partitions: int


def part_key(model: str, partition: int) -> str:
    """The name a partition's part of a spread model is stored under."""
    return f"{model}@{partition}"


class _Part(ModelPipeline):
    """One partition's share of a spread model: it folds and joins; the model closes."""

    changed: set[int]
    """Label panes whose summaries changed (shared with the model: it re-evaluates the
    closed windows holding them)."""

    def outcomes_changed(
        self, joined: LabelReport, commit: Commit, connection: Connection, report: BatchReport
    ) -> None:
        self.changed |= joined.panes


class _Closer(ModelPipeline):
    """Evaluates a spread model's merged windows; their labels are every partition's."""

    partitions: int

    def window_labels(self, connection: Connection, window: WindowInfo) -> LabelSummary:
        profile = self.profiles[window.reference_id]
        shape = error_shape(profile)
        names = self.config.business.names
        if self.join is None or not self.config.labels.enabled:
            return LabelSummary.empty(profile.outcomes, profile.task, shape, names)
        low, high = self.windows.key_range(WindowBounds(window.index, window.start, window.end))
        panes: dict[int, LabelSummary] = {}
        for partition in range(self.partitions):
            key = part_key(self.name, partition)
            for pane, data in self.join.store.load_range(connection, key, low, high).items():
                summary = LabelSummary.from_bytes(data)
                panes[pane] = panes[pane].merge(summary) if pane in panes else summary
        return LabelSummary.of_panes(profile.outcomes, profile.task, panes, shape, names)


class SpreadPipeline:
    """One model whose events may arrive on any partition (see the module)."""

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        profile: Profile,
        store: Store,
        join: LabelJoin | None,
        spread: Spread,
        state: ModelSnapshot | None = None,
    ) -> None:
        assert isinstance(config.window, TimeWindowConfig)
        self.name = name
        self.config = config
        self.window_config = config.window
        self.profile = profile
        self.store = store
        self.join = join if config.labels.enabled else None
        self.spread = spread
        self.freshness = Freshness(name, None)
        self.labels = None if self.join is None else ConceptOutline(None)
        self.closer = _Closer(name, config, profile, join=self.join)
        self.closer.partitions = spread.partitions
        idle = self.window_config.idle_timeout
        self._idle = None if idle is None else idle // timedelta(milliseconds=1)
        self._lateness = self.window_config.allowed_lateness // timedelta(milliseconds=1)
        self._fresh = TimeWindows(self.window_config).to_bytes({})
        self.restore(state)

    def restore(self, state: ModelSnapshot | None) -> None:
        """Forget every part (each reloads its committed state when its partition is read
        again); of the model's own ``state`` only where its windows closed is kept, the rest
        is read under the lock at each close."""
        self.parts: dict[int, _Part] = {}
        self.written: dict[int, Progress] = {}
        self.changed: set[int] = set()
        self.caught_up: set[int] = set()
        self.source: tuple[str, int] | None = None
        self.skipped: list[SkippedRun] = []
        self.closed_until: int | None = None
        if state is not None:
            stored, _ = windows.restore(self.window_config, state.data)
            self.closed_until = stored.state.closed_until  # type: ignore[attr-defined]
        """Where the model's closed windows end, as this instance last read it: an event
        before it is too late, whatever its own partition has closed."""

    @property
    def dirty(self) -> bool:
        return any(part.dirty for part in self.parts.values())

    @property
    def windows(self) -> windows.Windows:
        """The model's windows as of the last close this instance ran."""
        return self.closer.windows

    @property
    def keys(self) -> list[str]:
        """The names its parts' waiting predictions are stored under."""
        return [part_key(self.name, partition) for partition in sorted(self.parts)]

    def _part(self, partition: int) -> _Part:
        """The part of ``partition``, from its committed state when first needed."""
        part = self.parts.get(partition)
        if part is None:
            key = part_key(self.name, partition)
            state = self.store.model_state(key)
            older = older_profiles(self.store, state, self.profile)
            lane = Lane(None, key, None)
            part = _Part(self.name, self.config, self.profile, older, state, self.join, lane=lane)
            part.changed = self.changed
            self.parts[partition] = part
        return part

    # -- events ----------------------------------------------------------------------------

    def fold(
        self,
        frame: pl.DataFrame,
        batch: DecodedBatch,
        connection: Connection,
        now: int | None,
        event_now: int,
        future_limit: int | None,
        report: BatchReport,
    ) -> int:
        """Fold each partition's rows into its part; returns how many rows were folded."""
        folded = 0
        if self.closed_until is not None:
            frame = reject_closed(frame, batch, self.closed_until, self.name)
        for partition, rows in _by_partition(frame, batch):
            part = self._part(partition)
            folded += part.fold(rows, batch, connection, now, event_now, future_limit, report)
            self.source = (self.spread.topic, partition)
        return folded

    def join_labels(
        self,
        frame: pl.DataFrame,
        batch: DecodedBatch,
        commit: Commit,
        connection: Connection,
        now: int,
        report: BatchReport,
    ) -> None:
        """Join each labels partition's rows in the part of the same partition number."""
        for partition, rows in _by_partition(frame, batch):
            self._part(partition).join_labels(rows, batch, commit, connection, now, report)

    def outcomes_changed(
        self, joined: LabelReport, commit: Commit, connection: Connection, report: BatchReport
    ) -> None:
        """Note the label panes a fold's join changed; the next close re-evaluates them."""
        self.changed |= joined.panes

    def expire(
        self,
        connection: Connection,
        now: int,
        commit: Commit,
        report: BatchReport,
        *,
        end_of_input: bool = False,
    ) -> None:
        for part in self.parts.values():
            part.expire(connection, now, commit, report, end_of_input=end_of_input)

    # -- windows ---------------------------------------------------------------------------

    def close_due(
        self, commit: Commit, connection: Connection, now: int | None, *, flush: bool
    ) -> list[tuple[WindowInfo, list[ResultRecord]]]:
        """Close each part's due windows on its own partition's events and hand their panes
        in, and add each changed progress to ``commit``; the model's windows close in
        ``gather``."""
        for partition in self.caught_up:
            self._part(partition)
        for partition, part in sorted(self.parts.items()):
            commit.partials += self._hand_in(partition, part, now, flush)
            progress = Progress(
                self.name,
                partition,
                part.windows.state.closed_until,  # type: ignore[attr-defined]
                self._idle_at(partition, part, now),
            )
            if self.written.get(partition) != progress:
                commit.progress.append(progress)
                self.written[partition] = progress
        return []

    def _hand_in(self, partition: int, part: _Part, now: int | None, flush: bool) -> list[Partial]:
        """The panes of the part's windows that close now, each once."""
        state = part.windows.state  # type: ignore[attr-defined]
        before, panes = state.closed_until, dict(state.panes)
        closed = part.windows.close_due(now, flush=flush)
        if not closed:
            return []
        part.dirty = True
        handed = []
        for pane, summary in sorted(panes.items()):
            first = before is None or pane >= before
            if first and any(bounds.start <= pane < bounds.end for bounds, _ in closed):
                handed.append(Partial(self.name, partition, pane, summary.to_bytes()))
        return handed

    def _idle_at(self, partition: int, part: _Part, now: int | None) -> bool:
        """Whether the partition holds no window back: read to its end, no open pane, and
        no event for ``idle_timeout`` (or never one of this model)."""
        state = part.windows.state  # type: ignore[attr-defined]
        if now is None or partition not in self.caught_up or state.panes:
            return False
        if state.last_arrival is None:
            return True
        return self._idle is not None and now - state.last_arrival >= self._idle

    def gather(self, commit: Commit, connection: Connection, report: BatchReport) -> None:
        """Under the model's lock: close every window all partitions have closed (merging
        their panes), and evaluate again the closed windows whose labels changed."""
        reference_id, data = lock_model(
            connection, self.name, self.profile.reference_id, self._fresh
        )
        model_windows, _ = windows.restore(self.window_config, data)
        assert isinstance(model_windows, TimeWindows)
        self.closer.windows = model_windows
        watermark = _watermark(progress_of(connection, self.name), self.spread.partitions)
        if watermark is not None:
            self._close(model_windows, watermark, commit, connection, report)
            commit.model_states[self.name] = ModelSnapshot(reference_id, model_windows.to_bytes({}))
        self.closed_until = model_windows.state.closed_until
        if self.changed:
            joined = LabelReport(panes=set(self.changed))
            self.closer.outcomes_changed(joined, commit, connection, report)
            self.changed.clear()

    def _close(
        self,
        model_windows: TimeWindows,
        watermark: int,
        commit: Commit,
        connection: Connection,
        report: BatchReport,
    ) -> None:
        """Close the windows every partition has passed, from the merged handed-in panes."""
        state = model_windows.state
        self._behind(connection, state.next_start)
        handed = partials_of(connection, self.name, state.next_start or np.iinfo(np.int64).min)
        if state.next_start is None and handed:
            state.next_start = min(handed)
        state.panes = {pane: _merged(blobs) for pane, blobs in handed.items()}
        self._know_profiles(state.panes.values())
        state.max_ts = max(state.max_ts or 0, watermark + self._lateness)
        closed = self.closer.close_due(commit, connection, None, flush=False)
        report.closed += closed
        report.skipped += [(self.name, run) for run in model_windows.skipped]
        if state.next_start is not None:
            drop_partials(connection, self.name, state.next_start)
        state.panes = {}

    def _behind(self, connection: Connection, next_start: int | None) -> None:
        """Log the events partitions handed in for windows the model had already closed
        (their partition was idle when it closed; see docs/scaling.md)."""
        if next_start is None:
            return
        behind = partials_of(connection, self.name, np.iinfo(np.int64).min, next_start)
        if behind:
            log.error(
                "events of a spread model were handed in after its window closed",
                extra={
                    "event": "spread_behind",
                    "model": self.name,
                    "events": sum(_merged(blobs).n_events for blobs in behind.values()),
                },
            )

    def _know_profiles(self, summaries: Iterable[WindowSummary]) -> None:
        """Load the profiles panes were folded on that the closer does not know yet (the
        reference changed while they were open)."""
        for reference_id in {summary.reference_id for summary in summaries}:
            if reference_id not in self.closer.profiles:
                profile = stored_profile(self.store, reference_id)
                if profile is not None:
                    self.closer.profiles[reference_id] = profile

    def snapshot_parts(self, commit: Commit, connection: Connection, *, changed_only: bool) -> None:
        """Add the state of every (or every changed) part to ``commit``."""
        for part in self.parts.values():
            if part.dirty or not changed_only:
                commit.model_states[part.key] = part.snapshot(connection)


def _watermark(progress: dict[int, Progress], partitions: int) -> int | None:
    """How far every partition has closed the model's windows: the least of the partitions
    not idle (all idle: the furthest); ``None`` while a partition has no word yet or holds
    a window it has not closed once."""
    busy, idle = [], []
    for partition in range(partitions):
        found = progress.get(partition)
        if found is None:
            return None
        if found.idle:
            if found.closed_until is not None:
                idle.append(found.closed_until)
        elif found.closed_until is None:
            return None
        else:
            busy.append(found.closed_until)
    if busy:
        return min(busy)
    return max(idle, default=None)


def _merged(blobs: list[bytes]) -> WindowSummary:
    """One pane's summary over all partitions."""
    summaries = [WindowSummary.from_bytes(blob) for blob in blobs]
    merged = summaries[0]
    for summary in summaries[1:]:
        merged = merged.merge(summary)
    return merged


def _by_partition(frame: pl.DataFrame, batch: DecodedBatch) -> list[tuple[int, pl.DataFrame]]:
    """The rows of each partition the batch's messages came from, in partition order."""
    messages = batch.messages
    if messages.partitions is None:
        return [(int(messages.partition or 0), frame)]
    partitions = messages.partitions[frame["_row"].to_numpy()]
    return [
        (int(partition), frame.filter(pl.Series(partitions == partition)))
        for partition in np.unique(partitions)
    ]


def spread_models(models: dict[str, Any]) -> list[SpreadPipeline]:
    """The spread models among ``models``, in name order (the order their locks are
    taken in, so two instances never wait for each other)."""
    return [models[name] for name in sorted(models) if isinstance(models[name], SpreadPipeline)]
