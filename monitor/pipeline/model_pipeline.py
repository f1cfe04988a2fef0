"""One model's part of the batch path: its profiles, windows, label join and detectors."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import polars as pl
from sqlalchemy import Connection

from driftwarden.core.records import DeadLetter, EventKind, Origin, ResultRecord, WindowInfo
from driftwarden.core.times import duration_ms, format_time
from driftwarden.detectors.result import DetectorResult
from driftwarden.detectors.stream import StreamDetector
from driftwarden.monitor import windows
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.config.detectors import build_concept_detector, build_detectors
from driftwarden.monitor.evaluation.business_results import (
    BUSINESS,
    CORRELATED_KINDS,
    correlation_records,
)
from driftwarden.monitor.evaluation.importance_results import impact_records, importance_records
from driftwarden.monitor.evaluation.outcome_results import outcome_records
from driftwarden.monitor.evaluation.window_results import evaluate
from driftwarden.monitor.ingest.messages import DecodedBatch
from driftwarden.monitor.labels.join import Detection, LabelJoin, LabelReport, ModelLabels
from driftwarden.monitor.labels.orphans import Orphans
from driftwarden.monitor.pipeline.freshness import Freshness, Silence
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.segments import SegmentWindows
from driftwarden.monitor.storage import ClosedWindow, Commit, ModelSnapshot, Store
from driftwarden.monitor.storage.store import closed_windows, window_results
from driftwarden.monitor.windows.archive import unpack
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.segmentation import SegmentProfiles
from driftwarden.monitor.windows.summary import WindowSummary, summarize
from driftwarden.monitor.windows.windowing import SkippedRun, WindowBounds

log = logging.getLogger("driftwarden.pipeline")


class ModelPipeline:
    """One model: its profiles, its windows, its label join, and the detectors it runs.

    The same class runs one version of a model whose versions are split: ``version`` is
    then the version every record carries, ``key`` the name its windows and waiting
    predictions are stored under, and ``orphans`` the model's orphan labels (shared).
    """

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        profile: Profile,
        older_profiles: dict[str, Profile] | None = None,
        state: ModelSnapshot | None = None,
        join: LabelJoin | None = None,
        *,
        lane: Lane | None = None,
        segments: SegmentProfiles | None = None,
    ) -> None:
        self.name = name
        self.segment_profiles = segments
        self.lane = lane
        self.key = name if lane is None else lane.key
        self.config = config
        self.profile = profile
        self.profiles = {**(older_profiles or {}), profile.reference_id: profile}
        self.detectors = build_detectors(config.detectors, f"models.{name}.detectors")
        self.join = join
        silence = config.silence
        self.freshness = Freshness(name, None if silence is None else duration_ms(silence))
        self.restore(state)

    def restore(self, state: ModelSnapshot | None) -> None:
        """Continue from a stored snapshot (or start fresh without one)."""
        data = None if state is None else state.data
        if data is not None and self.lane is None and split_state(data):
            log.warning(
                "model %s: its stored windows are per version (versions.split was on); "
                "its windows start afresh",
                self.name,
            )
            data = None
        self.windows, extra = windows.restore(self.config.window, data)
        self.source = (
            None if state is None or state.topic is None else (state.topic, state.partition)
        )
        self.dirty = False
        self.freshness.silence = Silence.from_state(extra.get("silence"))
        self.segments: SegmentWindows | None = None
        if self.segment_profiles is not None:
            self.segments = SegmentWindows(
                self.segment_profiles, self.profile, extra.get("segments")
            )
        self.labels: ModelLabels | None = None
        if self.join is not None and self.config.labels.enabled:
            concept = extra.get("concept")
            detector = None
            if not self.config.spread:
                detector = concept_detector(self.name, self.config, self.profile, concept)
            position = 0 if concept is None else concept["position"]
            orphans = None if self.lane is None else self.lane.orphans
            self.labels = ModelLabels(
                self.key,
                self.config,
                self.profile,
                detector,
                self.join,
                position,
                orphans,
                self.segment_profiles,
            )
        self.restore_extra(extra)

    def restore_extra(self, extra: dict[str, Any]) -> None:
        """Take what a subclass keeps in the snapshot's ``extra`` (see ``extra_state``)."""

    def extra_state(self) -> dict[str, Any]:
        """What a subclass keeps in the snapshot's ``extra`` besides the model's own."""
        return {}

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
        """Fold one batch of this model's rows in; late rows and rows after ``future_limit``
        become dead letters. Returns how many rows were folded."""
        self.dirty = True
        last_row = int(frame["_row"][-1])
        self.source = (batch.messages.source, batch.messages.origin(last_row).partition)
        if future_limit is not None:
            frame = reject_future(frame, batch, future_limit, self.name, "prediction")
        if frame.height == 0:
            return 0
        assignment = self.windows.assign(frame["ts"], now)
        frame = frame.with_columns(assignment.keys.alias("_key"))
        detail = "falls in a window that has closed"
        late = pl.Series(assignment.late)
        frame = _reject(frame, late, batch, "too_late", detail, self.name, "prediction")
        if self.labels is not None and frame.height:
            now_or_event = event_now if now is None else now
            with self.labels.storing(connection, frame, frame["_key"], now_or_event) as joined:
                self._fold(frame)
            report.joins.setdefault(self.name, LabelReport()).add(joined)
        else:
            self._fold(frame)
        return frame.height

    def _fold(self, frame: pl.DataFrame) -> None:
        """Summarize the rows of every key and fold them into its open pane or window."""
        for (key,), part in sorted(frame.partition_by("_key", as_dict=True).items()):
            profile = self._profile_of(self.windows.open_summary(key))
            self.windows.add(key, summarize(profile, part))
        if self.segments is not None:
            self.segments.fold(frame)

    def _profile_of(self, open_summary: WindowSummary | None) -> Profile:
        """The profile new events of an open pane or window are binned on: the one it began
        on (an open window finishes on the reference it started with), else the current one."""
        if open_summary is None:
            return self.profile
        return self.profiles.get(open_summary.reference_id, self.profile)

    @property
    def keys(self) -> list[str]:
        """The names its waiting predictions are stored under."""
        return [self.key]

    @property
    def skipped(self) -> list[SkippedRun]:
        """Runs of empty windows the last ``close_due`` skipped."""
        return self.windows.skipped

    def close_due(
        self, commit: Commit, connection: Connection, now: int | None, *, flush: bool
    ) -> list[tuple[WindowInfo, list[ResultRecord]]]:
        """Close every window that is due; add it and its results to ``commit``."""
        closed = [
            self._finish(bounds, summaries, commit, connection)
            for bounds, summaries in self.windows.close_due(now, flush=flush)
        ]
        if self.segments is not None:
            self.segments.forget(self.windows)
        self.dirty = self.dirty or bool(closed)
        return closed

    def _finish(
        self,
        bounds: WindowBounds,
        panes: list[WindowSummary],
        commit: Commit,
        connection: Connection,
    ) -> tuple[WindowInfo, list[ResultRecord]]:
        reference_id = panes[0].reference_id if panes else self.profile.reference_id
        profile = self.profiles[reference_id]
        summary = WindowSummary.empty(profile)
        for pane in panes:
            if pane.reference_id == reference_id:
                summary = summary.merge(pane)
        version = summary.model_version if self.lane is None else self.lane.version
        window = WindowInfo(
            model=self.name,
            model_version=version,
            reference_id=reference_id,
            index=bounds.index,
            start=bounds.start,
            end=bounds.end,
        )
        results = evaluate(profile, summary, window, self.config, self.detectors)
        results += importance_records(profile, summary, window, self.config)
        results += impact_records(profile, summary, window, self.config, results)
        labels = self.window_labels(connection, window)
        results += outcome_records(profile, self.config, window, summary, labels)
        if self.segments is not None:
            keys = self.windows.key_range(bounds)
            found, counts = self.segments.close(window, keys, self.config, self.detectors, labels)
            results += found
            summary = replace(summary, segments=counts)
        commit.windows.append(
            ClosedWindow(
                model=self.key,
                index=bounds.index,
                start=bounds.start,
                end=bounds.end,
                reference_id=reference_id,
                model_version=version,
                n_events=summary.n_events,
                summary=summary.to_bytes(),
            )
        )
        commit.results.extend(results)
        correlations = self._correlate(connection, commit, [bounds.index])
        commit.results.extend(correlations)
        return window, results + correlations

    def window_labels(self, connection: Connection, window: WindowInfo) -> LabelSummary:
        """The label summary of the panes of ``window`` (empty without labels)."""
        profile = self.profiles[window.reference_id]
        if self.labels is None:
            return LabelSummary.empty(profile.outcomes, profile.task)
        low, high = self.windows.key_range(WindowBounds(window.index, window.start, window.end))
        return self.labels.window_labels(connection, low, high)

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
        """Join a batch of labels; recompute closed windows they complete; record detections."""
        assert self.labels is not None
        joined = self.labels.add_labels(connection, frame, batch, now)
        report.joins.setdefault(self.name, LabelReport()).add(joined)
        report.labels[self.name] += frame.height
        self.dirty = True
        self.outcomes_changed(joined, commit, connection, report)

    def outcomes_changed(
        self, joined: LabelReport, commit: Commit, connection: Connection, report: BatchReport
    ) -> None:
        """Upsert the outcome results of closed windows whose labels changed, and detections."""
        if not joined.panes and not joined.detections:
            return
        changed: list[int] = []
        for window, summary in self.closed_holding(connection, commit, joined.panes):
            profile = self.profiles.get(window.reference_id, self.profile)
            labels = self.window_labels(connection, window)
            records = outcome_records(profile, self.config, window, summary, labels)
            if self.segments is not None and window.reference_id == self.profile.reference_id:
                counts = summary.segments
                records += self.segments.label_records(window, self.config, labels, counts)
            commit.results.extend(records)
            report.outcomes.append((window, records))
            changed.append(window.index)
        correlations = self._correlate(connection, commit, changed)
        commit.results.extend(correlations)
        for index in sorted({record.window_index for record in correlations}):
            updated = [record for record in correlations if record.window_index == index]
            report.outcomes.append((updated[0].window, updated))
        assert self.labels is not None
        for detection in joined.detections:
            assert self.labels.detector is not None
            self.record_detection(self.labels.detector.name, detection, commit, connection, report)

    def record_detection(
        self,
        detector: str,
        detection: Detection,
        commit: Commit,
        connection: Connection,
        report: BatchReport,
    ) -> None:
        """Add the concept-drift record of ``detection`` to ``commit`` and ``report``, on the
        earliest window holding the pane of the prediction it was found at."""
        window = self._window_of(connection, commit, detection.pane)
        result = DetectorResult(
            value=float(detection.position),
            threshold=None,
            direction="above",
            drift=True,
            n_labeled=detection.position + 1,
        )
        record = ResultRecord.of(
            window,
            "concept_drift",
            detector,
            result,
            metric=f"position_{detection.position}",
            detected_at=detection.detected_at,
        )
        commit.results.append(record)
        report.outcomes.append((window, [record]))

    def _correlate(
        self, connection: Connection, commit: Commit, changed: list[int]
    ) -> list[ResultRecord]:
        """The business correlations of every closed window whose last
        ``correlation_windows`` windows hold one of ``changed`` (windows that closed or whose
        outcomes changed), from the stored records and those of this commit."""
        settings = self.config.business
        if not settings.metrics or not changed:
            return []
        span = settings.correlation_windows - 1
        low, high = min(changed) - span, max(changed) + span
        version = None if self.lane is None else self.lane.version

        def wanted(record: ResultRecord) -> bool:
            return (
                record.model == self.name
                and record.segment is None
                and record.kind in CORRELATED_KINDS
                and low <= record.window_index <= high
                and (version is None or record.model_version == version)
            )

        stored = window_results(connection, self.name, CORRELATED_KINDS, low, high, version=version)
        latest = {record.key: record for record in stored}
        latest.update({record.key: record for record in commit.results if wanted(record)})
        records = list(latest.values())
        windows = {r.window_index: r.window for r in records if r.kind == BUSINESS}
        out = []
        for index in sorted(windows):
            if any(c <= index <= c + span for c in changed):
                out += correlation_records(self.config, windows[index], records)
        return out

    def closed_holding(
        self, connection: Connection, commit: Commit, keys: set[int]
    ) -> list[tuple[WindowInfo, WindowSummary]]:
        """Closed windows (stored or closed since the last checkpoint) holding any of ``keys``."""
        if not keys:
            return []
        by_index = self.windows.keys_are_indexes
        stored = closed_windows(connection, self.key, min(keys), max(keys), by_index=by_index)
        found: dict[int, ClosedWindow] = {window.index: window for window in stored}
        found.update({w.index: w for w in commit.windows if w.model == self.key})
        out = []
        for window in sorted(found.values(), key=lambda w: w.index):
            low, high = self.windows.key_range(WindowBounds(window.index, window.start, window.end))
            if any(low <= key < high for key in keys):
                info = WindowInfo(
                    self.name,
                    window.model_version,
                    window.reference_id,
                    window.index,
                    window.start,
                    window.end,
                )
                out.append((info, WindowSummary.from_bytes(window.summary)))
        return out

    def _window_of(self, connection: Connection, commit: Commit, key: int) -> WindowInfo:
        """The earliest window holding ``key``: closed, or the open one it will close as
        (named, where versions are not split, by the most frequent version under ``key``:
        the window's is known when it closes)."""
        closed = self.closed_holding(connection, commit, {key})
        if closed:
            return closed[0][0]
        bounds = self.windows.open_window_of(key)
        if self.lane is not None:
            version = self.lane.version
        else:
            held = self.windows.open_summary(key)
            version = None if held is None else held.model_version
        return WindowInfo(
            self.name, version, self.profile.reference_id, bounds.index, bounds.start, bounds.end
        )

    def expire(
        self,
        connection: Connection,
        now: int,
        commit: Commit,
        report: BatchReport,
        *,
        end_of_input: bool = False,
    ) -> None:
        """Expire predictions never labelled and orphans past their ttl (dead letters);
        at the end of the input, every orphan left."""
        if self.labels is None:
            return
        expired, orphans = self.labels.expire(connection, now, end_of_input=end_of_input)
        report.expired[self.name] += expired
        commit.dead_letters += orphan_dead_letters(self.name, orphans, now)

    def reads(self, caught_up: set[tuple[str, int]]) -> bool:
        """Whether an instance that has read ``caught_up`` to their end reads this model's
        events (a model with none yet counts as read)."""
        return self.source is None or self.source in caught_up

    def checkpoint(self, commit: Commit, connection: Connection, *, changed_only: bool) -> None:
        """Add the model's state to ``commit``: with ``changed_only``, only if it changed."""
        if self.dirty or not changed_only:
            commit.model_states[self.key] = self.snapshot(connection)

    def snapshot(self, connection: Connection) -> ModelSnapshot:
        """The window state to store (label summaries are written on ``connection``)."""
        self.dirty = False
        topic, partition = self.source or (None, None)
        extra: dict[str, Any] = {}
        if self.freshness.silence is not None:
            extra["silence"] = self.freshness.silence.to_state()
        if self.segments is not None:
            extra["segments"] = self.segments.state()
        if self.labels is not None:
            self.labels.flush(connection)
        if self.labels is not None and self.labels.detector is not None:
            extra["concept"] = {
                "detector": self.labels.detector.state_dict(),
                "position": self.labels.position,
            }
        extra.update(self.extra_state())
        return ModelSnapshot(
            self.profile.reference_id, self.windows.to_bytes(extra), topic, partition
        )


@dataclass(frozen=True)
class Lane:
    """One version of a model whose versions are monitored separately: the version its
    records carry, the name its state is stored under, and the model's orphan labels."""

    version: str | None
    key: str
    orphans: Orphans | None


def older_profiles(
    store: Store, state: ModelSnapshot | None, profile: Profile
) -> dict[str, Profile]:
    """The profile stored state was folded on, when it is not ``profile`` (the reference
    changed while windows were open: they finish on the one they began with)."""
    if state is None or state.reference_id == profile.reference_id:
        return {}
    previous = stored_profile(store, state.reference_id)
    return {} if previous is None else {state.reference_id: previous}


def stored_profile(store: Store, reference_id: str) -> Profile | None:
    """The profile stored under ``reference_id``, if any."""
    data = store.profile(reference_id)
    return None if data is None else Profile.from_bytes(data)


def split_state(data: bytes) -> bool:
    """Whether stored model state is that of a model with split versions."""
    header, _ = unpack(data)
    return header.get("extra", {}).get("kind") == "versions"


def orphan_dead_letters(model: str, orphans: list[Any], now: int) -> list[DeadLetter]:
    """The dead letters of expired orphan labels (rows of ``Orphans.expire``)."""
    letters = []
    for identifier, source, partition, offset, raw, expires_at in orphans:
        origin = Origin(source, None if partition < 0 else partition, offset)
        waited = "within orphan_ttl" if expires_at < now else "before the end of the input"
        detail = f"no prediction with id {identifier!r} arrived {waited}"
        letters.append(DeadLetter("orphan_label", detail, bytes(raw), origin, "label", model))
    return letters


def concept_detector(
    name: str, config: ModelConfig, profile: Profile, saved: dict[str, Any] | None
) -> StreamDetector:
    """The model's concept-drift detector: continued from ``saved`` (``{"detector": state,
    "position": n}``) when that is of the same kind and settings, else fresh."""
    path = f"models.{name}.concept_drift"
    detector = build_concept_detector(config.concept_drift, path, profile.outcomes.error_reference)
    if saved is not None and _same_settings(detector, saved["detector"]):
        detector = type(detector).from_state(saved["detector"])
    return detector


def _same_settings(detector: StreamDetector, state: dict[str, Any]) -> bool:
    """Whether a saved detector state is of ``detector``'s kind and settings: a changed
    detector, setting or (for calibrated ones) reference starts the stream's detector afresh."""
    return (
        state.get("detector") == detector.name
        and state.get("params") == detector.state_dict()["params"]
    )


def reject_future(
    frame: pl.DataFrame, batch: DecodedBatch, limit: int, model: str, kind: EventKind
) -> pl.DataFrame:
    """The rows with event times up to ``limit``; later ones become dead letters
    (``future_timestamp``): a producer clock far ahead would otherwise move watermarks
    and label delays."""
    future = frame["ts"] > limit
    detail = "is more than the allowed skew ahead of now"
    return _reject(frame, future, batch, "future_timestamp", detail, model, kind)


def reject_closed(
    frame: pl.DataFrame, batch: DecodedBatch, closed_until: int, model: str
) -> pl.DataFrame:
    """The rows after ``closed_until``; earlier ones fall in windows the model has closed
    (on other partitions' word) and become ``too_late`` dead letters."""
    closed = frame["ts"] < closed_until
    detail = "falls in a window the model has closed"
    return _reject(frame, closed, batch, "too_late", detail, model, "prediction")


def _reject(
    frame: pl.DataFrame,
    rejected: pl.Series,
    batch: DecodedBatch,
    reason: str,
    detail: str,
    model: str,
    kind: EventKind,
) -> pl.DataFrame:
    """The rows not ``rejected``; the rejected ones become dead letters whose detail is
    their event time followed by ``detail``."""
    if not rejected.any():
        return frame
    for row, ts in frame.filter(rejected).select("_row", "ts").iter_rows():
        batch.dead_letter(row, reason, f"event time {format_time(ts)} {detail}", model, kind)
    return frame.filter(~rejected)
