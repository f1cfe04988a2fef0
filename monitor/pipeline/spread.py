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

Concept drift runs on one error stream merged from every partition in a fixed order.
An error is known at the later of its prediction's and its label's event time; a part
keeps the errors it joins and hands them in by the pane of that time. A label behind its
labels partition's watermark (the latest label time it read before, less
``allowed_lateness``) gives no error to the stream; a prediction behind its partition's
closed windows is a dead letter. So once a partition reports that it has passed a time
(``errors_until``: its closed windows' end and its label watermark, whichever is earlier;
an idle side does not count), no error before that time can come from it. Under the
model's lock, the panes every partition has passed are fed to the detector in pane order,
each pane's errors by (time, prediction id), one update per pane: the same sequence
whichever instances read which partitions, and in ``replay``.

Silence is the model's, not a partition's: each partition says when its last event of
the model arrived and whether its owner has read it to its end; under the lock, the model
is silent when the latest of those is older than its ``silence`` and every partition is
read to its end. ``replay`` (one process reading everything) finds silences as for any
model.

Segments are folded per partition like the whole model: each pane handed in carries
every segment's share of it, and the closer merges them before the window closes.

Count windows are cut from whole panes of event time (``windows.pane_counts``): the
partitions fold and hand in panes as for time windows, and the model closes a window at
the first pane end where the panes since the previous window hold ``size`` events. A
pane's errors are fed to the concept-drift detector once that window has closed (the
window a detection belongs to is known only then).

Not yet for spread models: versions split.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.core.times import duration_ms
from driftwarden.monitor import windows
from driftwarden.monitor.config import CountWindowConfig, ModelConfig
from driftwarden.monitor.ingest.messages import DecodedBatch
from driftwarden.monitor.labels.join import Detection, LabelJoin, LabelReport, error_shape
from driftwarden.monitor.pipeline.freshness import Freshness, Silence
from driftwarden.monitor.pipeline.model_pipeline import (
    Lane,
    ModelPipeline,
    concept_detector,
    older_profiles,
    reject_closed,
    stored_profile,
)
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.versions import ConceptOutline
from driftwarden.monitor.storage import Commit, ModelSnapshot, Store
from driftwarden.monitor.storage.lanes import part_key
from driftwarden.monitor.storage.partials import (
    ErrorPartial,
    Partial,
    Progress,
    drop_partials,
    lock_model,
    partials_of,
    progress_of,
    take_error_partials,
)
from driftwarden.monitor.windows.outcomes import LabelSummary, detector_stream
from driftwarden.monitor.windows.pane_counts import PaneCountWindows
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.segmentation import SegmentProfiles
from driftwarden.monitor.windows.summary import WindowSummary
from driftwarden.monitor.windows.time_windows import TimeWindows
from driftwarden.monitor.windows.windowing import SkippedRun, WindowBounds

log = logging.getLogger("driftwarden.pipeline")


_FOREVER = np.iinfo(np.int64).max
"""``errors_until`` of a partition that holds no error back (both its sides idle, or the
end of the input)."""
_BEFORE_ALL = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Spread:
    """Where spread models' events come from: the predictions topic and its partition
    count (every partition may carry them), and the labels topic (partitioned alike)."""

    topic: str
    partitions: int
    labels_topic: str | None = None
    shared: bool = True
    """Whether other instances may read some of the partitions (the daemon), or one
    process reads them all (``replay``)."""


@dataclass
class LabelWatermark:
    """How far one labels partition has read a spread model's labels: the latest label
    event time, and when (wall clock) the last label arrived."""

    latest: int | None = None
    arrival: int | None = None

    def mark(self, frame: pl.DataFrame, lateness: int, now: int) -> pl.DataFrame:
        """``frame`` (labels in offset order) with ``_late``: behind the latest label time
        read before it, less ``lateness``; the watermark moves past them."""
        times = frame["ts"].to_numpy()
        prior = times[0] if self.latest is None else self.latest
        seen = np.maximum.accumulate(np.concatenate(([prior], times)))
        late = times < seen[:-1] - lateness
        self.latest = int(seen[-1])
        self.arrival = now
        return frame.with_columns(pl.Series("_late", late))

    def until(self, lateness: int) -> int | None:
        """Before when a label of this partition is behind (``None``: no label yet)."""
        return None if self.latest is None else self.latest - lateness

    def to_state(self) -> dict[str, int | None]:
        return {"latest": self.latest, "arrival": self.arrival}


class _Part(ModelPipeline):
    """One partition's share of a spread model: it folds and joins; the model closes."""

    changed: set[int]
    """Label panes whose summaries changed (shared with the model: it re-evaluates the
    closed windows holding them)."""

    def restore_extra(self, extra: dict[str, Any]) -> None:
        self.label_watermark = LabelWatermark(**extra.get("label_watermark", {}))
        if self.labels is not None:
            self.labels.errors = []

    def extra_state(self) -> dict[str, Any]:
        return {"label_watermark": self.label_watermark.to_state()}

    def join_labels(
        self,
        frame: pl.DataFrame,
        batch: DecodedBatch,
        commit: Commit,
        connection: Connection,
        now: int,
        report: BatchReport,
    ) -> None:
        """Join labels, marking those behind this partition's label watermark."""
        lateness = self.config.window.allowed_lateness // timedelta(milliseconds=1)
        marked = self.label_watermark.mark(frame, lateness, now)
        super().join_labels(marked, batch, commit, connection, now, report)

    def take_errors(self) -> pl.DataFrame | None:
        """The errors joined since the last call (see ``ModelLabels.errors``), if any."""
        if self.labels is None or not self.labels.errors:
            return None
        errors = pl.concat(self.labels.errors)
        self.labels.errors = []
        return errors if errors.height else None

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
        segments: SegmentProfiles | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.window_config = config.window
        self.part_config = config
        """What a partition folds with: the model's, but count windows become panes."""
        if isinstance(config.window, CountWindowConfig):
            self.part_config = config.model_copy(update={"window": config.window.panes()})
        self.profile = profile
        self.store = store
        self.join = join if config.labels.enabled else None
        self.spread = spread
        silence = None if config.silence is None else duration_ms(config.silence)
        self.freshness = Freshness(name, None if spread.shared else silence)
        """This process's own view: whole only when it reads every partition (``replay``);
        a shared model's silence is judged under the lock (``gather``)."""
        self._silence = silence if spread.shared else None
        self.labels = None
        if self.join is not None:
            self.labels = ConceptOutline(concept_detector(name, config, profile, None))
        self.segment_profiles = segments
        self.closer = _Closer(name, config, profile, join=self.join, segments=segments)
        self.closer.partitions = spread.partitions
        idle = self.window_config.idle_timeout
        self._idle = None if idle is None else idle // timedelta(milliseconds=1)
        self._lateness = self.window_config.allowed_lateness // timedelta(milliseconds=1)
        self._fresh = windows.restore_spread(self.window_config, None)[0].to_bytes({})
        self.restore(state)

    def restore(self, state: ModelSnapshot | None) -> None:
        """Forget every part (each reloads its committed state when its partition is read
        again); of the model's own ``state`` only where its windows closed is kept, the rest
        is read under the lock at each close."""
        self.parts: dict[int, _Part] = {}
        self.written: dict[int, Progress] = {}
        self.changed: set[int] = set()
        self.caught_up: set[int] = set()
        self.labels_caught_up: set[int] = set()
        """Partitions of the labels topic read to their end (as of the last tick)."""
        self.source: tuple[str, int] | None = None
        self.skipped: list[SkippedRun] = []
        self._end_of_input = False
        data = None if state is None else state.data
        stored, _ = windows.restore_spread(self.window_config, data)
        self.closer.windows = stored
        self.closed_until = stored.state.closed_until
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
            part = _Part(
                self.name,
                self.part_config,
                self.profile,
                older,
                state,
                self.join,
                lane=lane,
                segments=self.segment_profiles,
            )
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
        ``gather`` (all of them after ``flush``: the end of the input)."""
        self._end_of_input |= flush
        for partition in self.caught_up:
            self._part(partition)
        for partition, part in sorted(self.parts.items()):
            commit.partials += self._hand_in(partition, part, now, flush)
            closed_until = part.windows.state.closed_until  # type: ignore[attr-defined]
            idle = self._idle_at(partition, part, now)
            errors_until = self._errors_until(partition, part, now, idle, flush)
            progress = Progress(
                self.name,
                partition,
                closed_until,
                idle,
                errors_until,
                part.windows.state.last_arrival,  # type: ignore[attr-defined]
                partition in self.caught_up,
            )
            if self.written.get(partition) != progress:
                commit.progress.append(progress)
                self.written[partition] = progress
        return []

    def _hand_in(self, partition: int, part: _Part, now: int | None, flush: bool) -> list[Partial]:
        """The panes of the part's windows that close now, each once (with each segment's
        share of them)."""
        state = part.windows.state  # type: ignore[attr-defined]
        before, panes = state.closed_until, dict(state.panes)
        closed = part.windows.close_due(now, flush=flush)
        if not closed:
            return []
        part.dirty = True
        handed = []
        segments = part.segments
        for pane, summary in sorted(panes.items()):
            first = before is None or pane >= before
            if first and any(bounds.start <= pane < bounds.end for bounds, _ in closed):
                shares = None if segments is None else segments.pane_state(pane)
                handed.append(Partial(self.name, partition, pane, summary.to_bytes(), shares))
        if segments is not None:
            segments.forget(part.windows)
        return handed

    def _hand_in_errors(self, part: _Part) -> list[ErrorPartial]:
        """The errors the part joined since its last hand-in, by the pane of their time."""
        errors = part.take_errors()
        if errors is None:
            return []
        panes = part.windows.pane_starts(errors["at"])  # type: ignore[attr-defined]
        return [
            ErrorPartial(self.name, int(pane), _encoded(rows.drop("_bucket")))
            for (pane,), rows in errors.with_columns(panes.alias("_bucket"))
            .partition_by("_bucket", as_dict=True)
            .items()
        ]

    def _errors_until(
        self, partition: int, part: _Part, now: int | None, idle: bool, flush: bool
    ) -> int | None:
        """Before when the partition hands in no more errors: its closed windows' end
        (unless idle) and its label watermark (unless its labels are idle), whichever is
        earlier; ``None`` while a side has no word yet."""
        if flush:
            return _FOREVER
        holds = []
        if not idle:
            holds.append(part.windows.state.closed_until)  # type: ignore[attr-defined]
        if not self._labels_idle(partition, part, now):
            holds.append(part.label_watermark.until(self._lateness))
        if any(hold is None for hold in holds):
            return None
        return min(holds, default=_FOREVER)

    def _labels_idle(self, partition: int, part: _Part, now: int | None) -> bool:
        """Whether the partition's labels hold no error back: read to their end, and no
        label for ``idle_timeout`` (or never one of this model)."""
        if now is None or partition not in self.labels_caught_up:
            return False
        arrival = part.label_watermark.arrival
        return arrival is None or (self._idle is not None and now - arrival >= self._idle)

    def _idle_at(self, partition: int, part: _Part, now: int | None) -> bool:
        """Whether the partition holds no window back: read to its end, no open pane, and
        no event for ``idle_timeout`` (or never one of this model)."""
        state = part.windows.state  # type: ignore[attr-defined]
        if now is None or partition not in self.caught_up or state.panes:
            return False
        if state.last_arrival is None:
            return True
        return self._idle is not None and now - state.last_arrival >= self._idle

    def gather(
        self, commit: Commit, connection: Connection, report: BatchReport, now: int | None
    ) -> None:
        """Under the model's lock: close every window all partitions have closed (merging
        their panes), feed the errors every partition has passed to the concept-drift
        detector, judge the model's silence by ``now`` (live), and evaluate again the closed
        windows whose labels changed."""
        reference_id, data = lock_model(
            connection, self.name, self.profile.reference_id, self._fresh
        )
        model_windows, extra = windows.restore_spread(self.window_config, data)
        self.closer.windows = model_windows
        progress = progress_of(connection, self.name)
        watermark = _watermark(progress, self.spread.partitions)
        if watermark is not None:
            self._close(model_windows, watermark, commit, connection, report)
        detected = False
        if self.labels is not None:
            until = _errors_watermark(progress, self.spread.partitions)
            if isinstance(model_windows, PaneCountWindows) and until is not None:
                until = min(until, model_windows.state.closed_until or _BEFORE_ALL)
            detected = self._detect(extra, until, commit, connection, report)
        heard = self._silence is not None and self._hear(extra, progress, now, commit, report)
        if watermark is not None or detected or heard:
            commit.model_states[self.name] = ModelSnapshot(
                reference_id, model_windows.to_bytes(extra)
            )
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
        handed = partials_of(connection, self.name, state.next_start or _BEFORE_ALL)
        if state.next_start is None and handed:
            state.next_start = min(handed)
        state.panes = {pane: _merged(partials) for pane, partials in handed.items()}
        self._merge_segments(handed)
        self._know_profiles(state.panes.values())
        state.max_ts = max(state.max_ts or 0, watermark + self._lateness)
        closed = self.closer.close_due(commit, connection, None, flush=self._end_of_input)
        report.closed += closed
        report.skipped += [(self.name, run) for run in model_windows.skipped]
        if state.next_start is not None:
            drop_partials(connection, self.name, state.next_start)
        state.panes = {}

    def _detect(
        self,
        extra: dict[str, Any],
        until: int | None,
        commit: Commit,
        connection: Connection,
        report: BatchReport,
    ) -> bool:
        """Feed the detector the errors of the panes every partition has passed, in the
        stream's order (see the module), and record its detections; the detector's state
        goes in ``extra``. Whether any error was fed."""
        if until is None:
            return False
        before = None
        if until != _FOREVER:
            start = self.closer.windows.pane_starts(pl.Series([until], dtype=pl.Int64))
            before = int(start[0])
        taken = take_error_partials(connection, self.name, before)
        if not taken:
            return False
        concept = extra.get("concept")
        detector = concept_detector(self.name, self.config, self.profile, concept)
        position = 0 if concept is None else concept["position"]
        for pane in sorted(taken):
            rows = pl.concat([_decoded(blob) for blob in taken[pane]]).sort("at", "id")
            scores = rows["score"] if "score" in rows.columns else None
            found = detector.update(
                detector_stream(detector.reads, rows["error"].to_numpy(), scores)
            )
            times, panes = rows["ts"].to_list(), rows["pane"].to_list()
            for at in found.drifts.tolist():
                detection = Detection(position + at, times[at], panes[at])
                self.closer.record_detection(detector.name, detection, commit, connection, report)
            position += rows.height
        extra["concept"] = {"detector": detector.state_dict(), "position": position}
        return True

    def _hear(
        self,
        extra: dict[str, Any],
        progress: dict[int, Progress],
        now: int | None,
        commit: Commit,
        report: BatchReport,
    ) -> bool:
        """The freshness records of the model's silences: one ends when a partition heard
        an event after it began; one begins when no partition has heard an event for
        ``silence`` and every partition is read to its end. Their state goes in ``extra``;
        whether it changed."""
        silence = Silence.from_state(extra.get("silence"))
        freshness = Freshness(self.name, self._silence, extra.get("heard_at"), silence)
        before = freshness.heard_at
        index_of, reference_id = self.closer.windows.index_of, self.profile.reference_id
        records = []
        heard = max((p.heard_at for p in progress.values() if p.heard_at is not None), default=None)
        if heard is not None and (freshness.heard_at is None or heard > freshness.heard_at):
            records += freshness.heard(np.array([heard]), index_of, reference_id)
        read = all(p in progress and progress[p].caught_up for p in range(self.spread.partitions))
        if now is not None and read:
            found = freshness.check(now, index_of, reference_id)
            records += [] if found is None else [found]
        commit.results += records
        report.silences += records
        extra["heard_at"] = freshness.heard_at
        extra["silence"] = None if freshness.silence is None else freshness.silence.to_state()
        return bool(records) or freshness.heard_at != before

    def _merge_segments(self, handed: dict[int, list[Partial]]) -> None:
        """Give the closer every segment's share of the handed-in panes, merged."""
        segments = self.closer.segments
        if segments is None:
            return
        segments.open = {}
        for partials in handed.values():
            for partial in partials:
                if partial.segments is not None:
                    segments.absorb(partial.segments)

    def _behind(self, connection: Connection, next_start: int | None) -> None:
        """Log the events partitions handed in for windows the model had already closed
        (their partition was idle when it closed; see docs/scaling.md)."""
        if next_start is None:
            return
        behind = partials_of(connection, self.name, _BEFORE_ALL, next_start)
        if behind:
            log.error(
                "events of a spread model were handed in after its window closed",
                extra={
                    "event": "spread_behind",
                    "model": self.name,
                    "events": sum(_merged(partials).n_events for partials in behind.values()),
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

    def reads(self, caught_up: set[tuple[str, int]]) -> bool:
        """Always (any partition may carry the model); notes which of its partitions, and
        of its labels', are ``caught_up``."""
        self.caught_up = {p for topic, p in caught_up if topic == self.spread.topic}
        self.labels_caught_up = {p for topic, p in caught_up if topic == self.spread.labels_topic}
        return True

    def checkpoint(self, commit: Commit, connection: Connection, *, changed_only: bool) -> None:
        """Add the state of every (or every changed) part to ``commit``, with the errors
        each joined since the last checkpoint (so they are handed in exactly once); the
        model's own state is written only by ``gather``."""
        for part in self.parts.values():
            if part.dirty or not changed_only:
                commit.model_states[part.key] = part.snapshot(connection)
                commit.error_partials += self._hand_in_errors(part)


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


def _errors_watermark(progress: dict[int, Progress], partitions: int) -> int | None:
    """Before when no partition hands in errors any more (``None``: a partition has no
    word yet, or holds the stream back)."""
    untils = [progress[p].errors_until if p in progress else None for p in range(partitions)]
    if any(until is None for until in untils):
        return None
    return min(untils)  # type: ignore[type-var]


def _encoded(errors: pl.DataFrame) -> bytes:
    """Handed-in errors as stored (Arrow IPC)."""
    out = io.BytesIO()
    errors.write_ipc(out)
    return out.getvalue()


def _decoded(data: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(data))


def _merged(partials: list[Partial]) -> WindowSummary:
    """One pane's summary over all partitions."""
    summaries = [WindowSummary.from_bytes(partial.summary) for partial in partials]
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
