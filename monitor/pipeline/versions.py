"""A model whose versions are monitored separately (``versions.split``).

Each version seen in the events runs in a lane of its own: a ``ModelPipeline`` with its
own windows, label panes and concept-drift stream, whose records carry the version. A
label names the model, not the version: it joins every lane that holds a prediction of
its id (one with A/B traffic; each version's when versions score the same requests, in
shadow), and waits as an orphan of the model when none does. At most ``max_tracked`` versions
have lanes; events of further versions are counted (``version_untracked``) and ignored.
A version with no event for ``forget_after`` has its open windows closed and its lane put
to rest: its window state (small once closed) is kept, so if it comes back its windows
go on numbering from where they stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl
from sqlalchemy import Connection

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.core.times import duration_ms
from driftwarden.detectors.stream import StreamDetector
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.config.detectors import build_concept_detector
from driftwarden.monitor.evaluation.paired_comparison import paired_records, prediction_spread
from driftwarden.monitor.evaluation.version_comparison import (
    comparison_records,
    unlabelled_records,
)
from driftwarden.monitor.ingest.messages import DecodedBatch
from driftwarden.monitor.labels.join import LabelJoin, LabelReport, label_rows
from driftwarden.monitor.labels.orphans import Orphans
from driftwarden.monitor.pipeline.freshness import Freshness, Silence
from driftwarden.monitor.pipeline.model_pipeline import (
    Lane,
    ModelPipeline,
    orphan_dead_letters,
    split_state,
)
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.shadow import Shadow
from driftwarden.monitor.storage import Commit, ModelSnapshot
from driftwarden.monitor.storage.lanes import lane_key
from driftwarden.monitor.windows import Windows, restore
from driftwarden.monitor.windows.archive import as_bytes, pack, unpack
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.segmentation import SegmentProfiles
from driftwarden.monitor.windows.summary import WindowSummary
from driftwarden.monitor.windows.windowing import SkippedRun, WindowBounds

log = logging.getLogger("driftwarden.pipeline")

UNTRACKED = "version_untracked"
"""The reason ``driftwarden_events_ignored_total`` counts events of untracked versions by."""

MAX_RESTING = 1000
"""How many versions put to rest keep their window numbering (the most recently seen)."""


@dataclass(frozen=True)
class ConceptOutline:
    """What the daemon publishes of a model's label side before any lane exists."""

    detector: StreamDetector


class VersionedPipeline:
    """One model whose versions each run in a lane of their own (see the module)."""

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        profile: Profile,
        older_profiles: dict[str, Profile] | None = None,
        state: ModelSnapshot | None = None,
        join: LabelJoin | None = None,
        *,
        segments: SegmentProfiles | None = None,
        reference_version: str | None = None,
    ) -> None:
        self.name = name
        self.segment_profiles = segments
        self.reference_version = reference_version
        self.config = config
        self.profile = profile
        self.older_profiles = older_profiles or {}
        self.join = join
        self.settings = config.versions
        self._forget_after = duration_ms(self.settings.forget_after)
        silence = config.silence
        self.freshness = Freshness(name, None if silence is None else duration_ms(silence))
        self.labels: ConceptOutline | None = None
        self._spread = prediction_spread(profile)
        if join is not None and config.labels.enabled:
            path = f"models.{name}.concept_drift"
            error_reference = profile.outcomes.error_reference
            self.labels = ConceptOutline(
                build_concept_detector(config.concept_drift, path, error_reference)
            )
        self.restore(state)

    # -- state -----------------------------------------------------------------------------

    def restore(self, state: ModelSnapshot | None) -> None:
        """Continue from a stored snapshot (or start fresh without one, or from the state
        of the model before its versions were split)."""
        self.orphans: Orphans | None = None
        if self.join is not None and self.config.labels.enabled:
            ttl = duration_ms(self.config.labels.orphan_ttl)
            self.orphans = Orphans(self.join.store, self.name, self.config.labels.policy, ttl)
        self.shadow = None
        if self.join is not None and self.config.labels.enabled:
            self.shadow = Shadow(self.join, self.profile)
        self.lanes: dict[str | None, ModelPipeline] = {}
        self.seen: dict[str | None, int] = {}
        self.resting: dict[str | None, tuple[int, bytes]] = {}
        self.champion = self.settings.champion or self.reference_version
        self.latest = 0
        self.source = (
            None if state is None or state.topic is None else (state.topic, state.partition)
        )
        self.dirty = False
        self.freshness.silence = None
        self._pending: dict[str | None, LabelReport] = {}
        self._refused: set[str | None] = set()
        self._blank, _ = restore(self.config.window, None)
        if state is None or not split_state(state.data):
            if state is not None:
                log.warning(
                    "model %s: its stored windows mix versions (versions.split was off); "
                    "the versions start windows of their own",
                    self.name,
                )
            return
        header, arrays = unpack(state.data)
        saved = header["extra"]
        self.champion = self.champion or saved["champion"]
        self.latest = saved["latest"]
        self.freshness.silence = Silence.from_state(saved.get("silence"))
        for i, (version, seen) in enumerate(saved["lanes"]):
            data = arrays[f"lane.{i}"].tobytes()
            snapshot = ModelSnapshot(state.reference_id, data, state.topic, state.partition)
            self.lanes[version] = self._lane(version, snapshot)
            self.seen[version] = seen
        for i, (version, seen) in enumerate(saved["resting"]):
            self.resting[version] = (seen, arrays[f"resting.{i}"].tobytes())

    def reads(self, caught_up: set[tuple[str, int]]) -> bool:
        """Whether an instance that has read ``caught_up`` to their end reads this model's
        events (a model with none yet counts as read)."""
        return self.source is None or self.source in caught_up

    def checkpoint(self, commit: Commit, connection: Connection, *, changed_only: bool) -> None:
        """Add every lane's state to ``commit``: with ``changed_only``, only if one changed."""
        if self.dirty or not changed_only:
            commit.model_states[self.name] = self.snapshot(connection)

    def snapshot(self, connection: Connection) -> ModelSnapshot:
        """Every lane's state (label summaries are written on ``connection``)."""
        self.dirty = False
        topic, partition = self.source or (None, None)
        if self.shadow is not None:
            self.shadow.flush(connection)
        lanes = [(v, lane.snapshot(connection).data) for v, lane in self.lanes.items()]
        extra = {
            "kind": "versions",
            "champion": self.champion,
            "latest": self.latest,
            "lanes": [[v, self.seen[v]] for v, _ in lanes],
            "resting": [[v, seen] for v, (seen, _) in self.resting.items()],
        }
        if self.freshness.silence is not None:
            extra["silence"] = self.freshness.silence.to_state()
        arrays = {f"lane.{i}": as_bytes(data) for i, (_, data) in enumerate(lanes)}
        for i, (_, data) in enumerate(self.resting.values()):
            arrays[f"resting.{i}"] = as_bytes(data)
        data = pack({"extra": extra}, arrays)
        return ModelSnapshot(self.profile.reference_id, data, topic, partition)

    def _lane(self, version: str | None, state: ModelSnapshot | None) -> ModelPipeline:
        lane = Lane(version, lane_key(self.name, version), self.orphans)
        pipeline = ModelPipeline(
            self.name,
            self.config,
            self.profile,
            self.older_profiles,
            state,
            self.join,
            lane=lane,
            segments=self.segment_profiles,
        )
        if self.shadow is not None:
            self.shadow.watch(pipeline)
        return pipeline

    def _pair(self, connection: Connection, version: str | None) -> None:
        """Pair what the lane of ``version`` just stored or joined (shadow traffic)."""
        if self.shadow is not None:
            self.shadow.pair(connection, version, self.lanes, self.champion)

    # -- what the pipeline reads -----------------------------------------------------------

    @property
    def windows(self) -> Windows:
        """The champion's windows (freshness records are numbered on them), else any
        lane's, else fresh ones."""
        lane = self.lanes.get(self.champion) or next(iter(self.lanes.values()), None)
        return self._blank if lane is None else lane.windows

    @property
    def keys(self) -> list[str]:
        """The names the tracked versions' waiting predictions are stored under."""
        return [lane.key for lane in self.lanes.values()]

    @property
    def skipped(self) -> list[SkippedRun]:
        """Runs of empty windows the lanes skipped in their last ``close_due``."""
        return [run for lane in self.lanes.values() for run in lane.skipped]

    # -- predictions -----------------------------------------------------------------------

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
        """Fold each version's rows into its lane; rows of untracked versions are counted
        and ignored. Returns how many rows were folded."""
        self.dirty = True
        last_row = int(frame["_row"][-1])
        self.source = (batch.messages.source, batch.messages.origin(last_row).partition)
        frame = self._tracked(frame, batch)
        folded = 0
        parts = frame.partition_by("model_version", as_dict=True, maintain_order=True)
        for (version,), part in parts.items():
            lane = self.lanes[version]
            scratch = BatchReport()
            folded += lane.fold(part, batch, connection, now, event_now, future_limit, scratch)
            self._pair(connection, version)
            moment = int(part["ts"].max()) if now is None else now
            self.seen[version] = max(self.seen[version], moment)
            self.latest = max(self.latest, moment)
            joined = scratch.joins.get(self.name)
            if joined is not None:
                self._pending.setdefault(version, LabelReport()).add(joined)
            report.extend(scratch)
        self._share_orphans(connection, event_now if now is None else now, report)
        return folded

    def _share_orphans(self, connection: Connection, now: int, report: BatchReport) -> None:
        """Orphan labels a version's predictions took in this batch join the other
        versions' predictions of their ids too (shadow traffic)."""
        for version, lane in self.lanes.items():
            taken = None if lane.labels is None else lane.labels.taken
            if taken is None or taken.height == 0:
                continue
            assert lane.labels is not None
            lane.labels.taken = None
            for other, receiver in self.lanes.items():
                if other == version or receiver.labels is None:
                    continue
                joined = LabelReport()
                receiver.labels.join_found(connection, taken, now, joined)
                self._pair(connection, other)
                self._pending.setdefault(other, LabelReport()).add(joined)
                report.joins.setdefault(self.name, LabelReport()).add(joined)

    def _tracked(self, frame: pl.DataFrame, batch: DecodedBatch) -> pl.DataFrame:
        """The rows of tracked versions; a new version is tracked while fewer than
        ``max_tracked`` are, else its rows are counted as ignored."""
        versions = frame["model_version"].unique(maintain_order=True).to_list()
        for version in versions:
            if version in self.lanes:
                continue
            if len(self.lanes) < self.settings.max_tracked:
                self._start(version, frame)
            elif version not in self._refused:
                self._refuse(version)
        if all(version in self.lanes for version in versions):
            return frame
        column = frame["model_version"]
        named = pl.Series([v for v in self.lanes if v is not None], dtype=pl.String)
        keep = column.is_in(named.implode()).fill_null(None in self.lanes)
        batch.ignored[UNTRACKED] += int((~keep).sum())
        return frame.filter(keep)

    def _start(self, version: str | None, frame: pl.DataFrame) -> None:
        """Track a version: a new lane, or the one it had before it was put to rest."""
        resting = self.resting.pop(version, None)
        state = None
        if resting is not None:
            state = ModelSnapshot(self.profile.reference_id, resting[1])
        self.lanes[version] = self._lane(version, state)
        self.seen[version] = int(frame["ts"].min())
        self.champion = self.champion or version
        self._refused.discard(version)
        log.info("model %s: version %r tracked", self.name, version)

    def _refuse(self, version: str | None) -> None:
        if len(self._refused) < MAX_RESTING:
            self._refused.add(version)
        log.warning(
            "model %s: events of version %r are ignored: %d versions are tracked already "
            "(versions.max_tracked); counted in driftwarden_events_ignored_total{reason=%r}",
            self.name,
            version,
            len(self.lanes),
            UNTRACKED,
        )

    def outcomes_changed(
        self, joined: LabelReport, commit: Commit, connection: Connection, report: BatchReport
    ) -> None:
        """Each lane's outcome records of closed windows whose labels changed while
        predictions were folded (``joined`` is their sum, already counted)."""
        pending, self._pending = self._pending, {}
        for version, lane_joined in pending.items():
            lane = self.lanes.get(version)
            if lane is not None:
                before = len(report.outcomes)
                lane.outcomes_changed(lane_joined, commit, connection, report)
                changed = [window for window, _ in report.outcomes[before:]]
                self._compare(version, changed, commit, connection, report.outcomes)

    def close_due(
        self, commit: Commit, connection: Connection, now: int | None, *, flush: bool
    ) -> list[tuple[WindowInfo, list[ResultRecord]]]:
        """Close every lane's windows that are due; put versions not seen for
        ``forget_after`` to rest (their open windows close)."""
        closed = []
        for version, lane in list(self.lanes.items()):
            windows = lane.close_due(commit, connection, now, flush=flush)
            closed += windows
            self._compare(
                version, [w for w, _ in windows], commit, connection, closed, just_closed=True
            )
        moment = self.latest if now is None else now
        for version in [v for v, seen in self.seen.items() if seen + self._forget_after < moment]:
            windows = self._rest(version, commit, connection)
            closed += windows
            self._compare(
                version, [w for w, _ in windows], commit, connection, closed, just_closed=True
            )
        self.dirty = self.dirty or bool(closed)
        return closed

    def _rest(
        self, version: str | None, commit: Commit, connection: Connection
    ) -> list[tuple[WindowInfo, list[ResultRecord]]]:
        lane = self.lanes.pop(version)
        seen = self.seen.pop(version)
        closed = lane.close_due(commit, connection, None, flush=True)
        self.resting[version] = (seen, lane.snapshot(connection).data)
        if len(self.resting) > MAX_RESTING:
            oldest = min(self.resting, key=lambda v: self.resting[v][0])
            del self.resting[oldest]
        log.info(
            "model %s: version %r not seen for %s: its windows are closed and it is no "
            "longer reported",
            self.name,
            version,
            self.settings.forget_after,
        )
        return closed

    # -- comparisons -----------------------------------------------------------------------

    def _compare(
        self,
        version: str | None,
        windows: list[WindowInfo],
        commit: Commit,
        connection: Connection,
        out: list[tuple[WindowInfo, list[ResultRecord]]],
        *,
        just_closed: bool = False,
    ) -> None:
        """The comparison records of the windows of ``version`` whose outcomes were just
        computed: the challenger's own, or (for the champion's) every challenger's window
        of the same bounds. Added to ``commit`` and to ``out``. Those that need no labels
        are made when the windows were ``just_closed`` (the later of the pair decides:
        their summaries change no more)."""
        champion = self.lanes.get(self.champion)
        if champion is None or not windows:
            return
        pairs: dict[tuple[str | None, int, int], WindowInfo] = {}
        for window in windows:
            if version != self.champion:
                pairs.setdefault((version, window.start, window.end), window)
                continue
            for other, lane in self.lanes.items():
                if other == self.champion:
                    continue
                for info, _ in self._same_bounds(lane, window, commit, connection):
                    pairs.setdefault((other, info.start, info.end), info)
        for (other, _, _), window in sorted(pairs.items(), key=lambda item: item[1].index):
            lane = self.lanes.get(other)
            if lane is None:  # put to rest in this step: compared when it closed
                continue
            found = self._same_bounds(lane, window, commit, connection)
            records = []
            if champion.labels is not None:
                n_window = found[0][1].n_events if found else None
                records += self._labelled(champion, lane, other, window, n_window, connection)
            held = self._same_bounds(champion, window, commit, connection) if just_closed else []
            if found and held and found[0][1].reference_id == held[0][1].reference_id:
                records += unlabelled_records(
                    window,
                    self.champion,
                    lane.profiles[window.reference_id],
                    self.config,
                    lane.detectors,
                    held[0][1],
                    found[0][1],
                )
            if records:
                commit.results.extend(records)
                out.append((window, records))

    def _labelled(
        self,
        champion: ModelPipeline,
        lane: ModelPipeline,
        version: str | None,
        window: WindowInfo,
        n_window: int | None,
        connection: Connection,
    ) -> list[ResultRecord]:
        """The comparison records of the challenger's ``window`` from labels: paired when
        the window holds pairs (shadow), else from both versions' label summaries (A/B)."""
        pairs = None
        if self.shadow is not None:
            pairs = self.shadow.window(connection, version, lane, window)
        min_labeled = self.config.labels.min_labeled
        if pairs is not None:
            return paired_records(window, self.champion, pairs, n_window, min_labeled, self._spread)
        return comparison_records(
            window,
            self.champion,
            champion.window_labels(connection, window),
            lane.window_labels(connection, window),
            n_window,
            min_labeled,
        )

    @staticmethod
    def _same_bounds(
        lane: ModelPipeline, window: WindowInfo, commit: Commit, connection: Connection
    ) -> list[tuple[WindowInfo, WindowSummary]]:
        """``lane``'s closed window with the bounds of ``window`` (none or one)."""
        low, _ = lane.windows.key_range(WindowBounds(window.index, window.start, window.end))
        return [
            (info, summary)
            for info, summary in lane.closed_holding(connection, commit, {low})
            if (info.start, info.end) == (window.start, window.end)
        ]

    # -- labels ----------------------------------------------------------------------------

    def join_labels(
        self,
        frame: pl.DataFrame,
        batch: DecodedBatch,
        commit: Commit,
        connection: Connection,
        now: int,
        report: BatchReport,
    ) -> None:
        """Join a batch of labels to every lane holding a prediction of its id (one for
        A/B traffic, each version's for shadow traffic); labels found in none wait as
        orphans of the model."""
        assert self.orphans is not None
        report.labels[self.name] += frame.height
        self.dirty = True
        total = report.joins.setdefault(self.name, LabelReport())
        keep = "last" if self.config.labels.policy == "last" else "first"
        labels = label_rows(frame, self.config.business.names)
        unique = labels.unique("id", keep=keep, maintain_order=True)
        total.duplicate_labels += labels.height - unique.height
        remaining = unique
        for version, lane in self.lanes.items():
            assert lane.labels is not None
            joined = LabelReport()
            missing = lane.labels.join_found(connection, unique, now, joined)
            self._pair(connection, version)
            remaining = remaining.filter(pl.col("_row").is_in(missing["_row"].implode()))
            total.add(joined)
            before = len(report.outcomes)
            lane.outcomes_changed(joined, commit, connection, report)
            changed = [window for window, _ in report.outcomes[before:]]
            self._compare(version, changed, commit, connection, report.outcomes)
        if remaining.height:
            duplicates, orphaned = self.orphans.keep(connection, remaining, batch, now)
            total.duplicate_labels += duplicates
            total.orphaned += orphaned

    def expire(
        self,
        connection: Connection,
        now: int,
        commit: Commit,
        report: BatchReport,
        *,
        end_of_input: bool = False,
    ) -> None:
        """Expire each lane's predictions never labelled, and the model's orphans."""
        if self.orphans is None:
            return
        for lane in self.lanes.values():
            lane.expire(connection, now, commit, report, end_of_input=end_of_input)
        if self.shadow is not None:
            self.shadow.forget_before(now - 2 * duration_ms(self.config.labels.ttl))
        before = np.iinfo(np.int64).max if end_of_input else now
        orphans = self.orphans.expire(connection, before)
        commit.dead_letters += orphan_dead_letters(self.name, orphans, now)
