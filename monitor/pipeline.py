"""The pipeline every source feeds: decoded batches in, windows, results and dead letters out.

The daemon (Kafka) and ``replay`` (files) both drive a ``Pipeline``: they
decode a batch, call ``process`` (predictions) or ``process_labels``, and
write the ``Commit`` — model state, closed windows, results, dead letters and,
for Kafka, positions — on the same connection, in one transaction. The label
join reads and writes that connection as it goes, so it sees its own writes
and commits or rolls back with everything else.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise

import numpy as np
import polars as pl
from sqlalchemy import Connection, text

from driftwarden.detectors.result import DetectorResult
from driftwarden.monitor.config import Config, ModelConfig
from driftwarden.monitor.detection import (
    build_concept_detector,
    build_detectors,
    evaluate,
    outcome_records,
)
from driftwarden.monitor.events import DeadLetter, DecodedBatch, Kind, Origin, format_time
from driftwarden.monitor.labels import JoinStore, LabelReport, ModelLabels
from driftwarden.monitor.outcomes import LabelSummary
from driftwarden.monitor.profile import Profile
from driftwarden.monitor.results import ResultRecord, WindowInfo
from driftwarden.monitor.storage import ClosedWindow, Commit, ModelSnapshot, Store
from driftwarden.monitor.summary import WindowSummary, summarize
from driftwarden.monitor.windows import (
    CountWindows,
    TimeWindows,
    WindowBounds,
    decode_state,
    encode_state,
)


@dataclass
class BatchReport:
    """What one batch did, for metrics and logs."""

    events: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    closed: list[tuple[WindowInfo, list[ResultRecord]]] = field(default_factory=list)
    close_seconds: list[float] = field(default_factory=list)
    outcomes: list[tuple[WindowInfo, list[ResultRecord]]] = field(default_factory=list)
    joins: dict[str, LabelReport] = field(default_factory=dict)
    expired: Counter[str] = field(default_factory=Counter)


class ModelPipeline:
    """One model: its profiles, its windows, its label join, and the detectors it runs."""

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        profile: Profile,
        older_profiles: dict[str, Profile] | None = None,
        state: ModelSnapshot | None = None,
        join_store: JoinStore | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.profile = profile
        self.profiles = {**(older_profiles or {}), profile.reference_id: profile}
        self.detectors = build_detectors(config.detectors, f"models.{name}.detectors")
        self.join_store = join_store
        self.restore(state)

    def restore(self, state: ModelSnapshot | None) -> None:
        """Continue from a stored snapshot (or start fresh without one)."""
        windows, extra = decode_state(self.config.window, None if state is None else state.data)
        self.windows = windows
        self.source = (
            None if state is None or state.topic is None else (state.topic, state.partition)
        )
        self.dirty = False
        self.labels: ModelLabels | None = None
        if self.join_store is not None and self.config.labels.enabled:
            path = f"models.{self.name}.concept_drift"
            detector = build_concept_detector(self.config.concept_drift, path)
            concept = extra.get("concept")
            if concept is not None:
                detector = type(detector).from_state(concept["detector"])
            position = 0 if concept is None else concept["position"]
            self.labels = ModelLabels(
                self.name, self.config, self.profile, detector, self.join_store, position
            )

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
        become dead letters."""
        self.dirty = True
        last_row = int(frame["_row"][-1])
        self.source = (batch.messages.source, batch.messages.origin(last_row).partition)
        if future_limit is not None:
            frame = _reject_future(frame, batch, future_limit, self.name, "prediction")
        if isinstance(self.windows, TimeWindows):
            frame = self._admit(frame, batch, now)
            keys = frame["pane"]
            fold_in = partial(self._fold_panes, frame)
        else:
            pieces = self._count_pieces(frame.height)
            keys = _piece_keys(pieces)
            fold_in = partial(self._fold_pieces, frame, pieces)
        if self.labels is not None and frame.height:
            with self.labels.storing(connection, frame, keys, _now(now, event_now)) as joined:
                fold_in()
            report.joins[self.name] = joined
        else:
            fold_in()
        return frame.height

    def _admit(self, frame: pl.DataFrame, batch: DecodedBatch, now: int | None) -> pl.DataFrame:
        """The rows whose pane is still open, with their pane key; late rows become dead
        letters."""
        windows = self.windows
        assert isinstance(windows, TimeWindows)
        frame = frame.with_columns(windows.pane_starts(frame["ts"]))
        late = pl.Series(windows.admit(frame["ts"], frame["pane"], now))
        detail = "falls in a window that has closed"
        return _reject(frame, late, batch, "too_late", detail, self.name, "prediction")

    def _fold_panes(self, frame: pl.DataFrame) -> None:
        windows = self.windows
        assert isinstance(windows, TimeWindows)
        for pane, part in sorted(frame.partition_by("pane", as_dict=True).items()):
            profile = self._profile_of(windows.state.panes.get(int(pane[0])))
            windows.add(int(pane[0]), summarize(profile, part))

    def _count_pieces(self, n_rows: int) -> list[tuple[int, int, int]]:
        """``(start, length, window index)`` of the pieces of a batch, one per count window
        it reaches."""
        windows = self.windows
        assert isinstance(windows, CountWindows)
        bounds = [0, *windows.cuts(n_rows), n_rows]
        index = windows.state.next_index
        pieces = []
        for start, end in pairwise(bounds):
            if end > start:
                pieces.append((start, end - start, index))
                index += 1
        return pieces

    def _fold_pieces(self, frame: pl.DataFrame, pieces: list[tuple[int, int, int]]) -> None:
        windows = self.windows
        assert isinstance(windows, CountWindows)
        for start, length, _ in pieces:
            profile = self._profile_of(windows.state.summary)
            windows.add(summarize(profile, frame.slice(start, length)))

    def _profile_of(self, open_summary: WindowSummary | None) -> Profile:
        """The profile new events of an open pane or window are binned on: the one it began
        on (an open window finishes on the reference it started with), else the current one."""
        if open_summary is None:
            return self.profile
        return self.profiles.get(open_summary.reference_id, self.profile)

    def close_due(
        self, commit: Commit, connection: Connection, now: int | None, *, flush: bool
    ) -> list[WindowInfo]:
        """Close every window that is due; add its results to ``commit``."""
        closed: list[WindowInfo] = []
        if isinstance(self.windows, TimeWindows):
            for bounds in self.windows.due(now, flush=flush):
                panes = self.windows.close(bounds)
                closed.append(self._finish(bounds, panes, commit, connection))
        else:
            for bounds, summary in self.windows.due(flush=flush):
                closed.append(self._finish(bounds, [summary], commit, connection))
        self.dirty = self.dirty or bool(closed)
        return closed

    def _finish(
        self,
        bounds: WindowBounds,
        panes: list[WindowSummary],
        commit: Commit,
        connection: Connection,
    ) -> WindowInfo:
        reference_id = panes[0].reference_id if panes else self.profile.reference_id
        profile = self.profiles[reference_id]
        summary = WindowSummary.empty(profile)
        for pane in panes:
            if pane.reference_id == reference_id:
                summary = summary.merge(pane)
        window = WindowInfo(
            model=self.name,
            model_version=summary.model_version,
            reference_id=reference_id,
            index=bounds.index,
            start=bounds.start,
            end=bounds.end,
        )
        results = evaluate(profile, summary, window, self.config, self.detectors)
        results += outcome_records(
            profile, self.config, window, summary, self._window_labels(connection, window)
        )
        commit.windows.append(
            ClosedWindow(
                model=self.name,
                index=bounds.index,
                start=bounds.start,
                end=bounds.end,
                reference_id=reference_id,
                model_version=summary.model_version,
                n_events=summary.n_events,
                summary=summary.to_bytes(),
            )
        )
        commit.results.extend(results)
        return window

    def _window_labels(self, connection: Connection, window: WindowInfo) -> LabelSummary:
        profile = self.profiles[window.reference_id]
        if self.labels is None:
            return LabelSummary.empty(profile.outcomes, profile.task)
        if isinstance(self.windows, CountWindows):
            return self.labels.window_labels(connection, window.index, window.index + 1)
        return self.labels.window_labels(connection, window.start, window.end)

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
        report.joins[self.name] = joined
        report.labels[self.name] += frame.height
        self.dirty = True
        self.outcomes_changed(joined, commit, connection, report)

    def outcomes_changed(
        self, joined: LabelReport, commit: Commit, connection: Connection, report: BatchReport
    ) -> None:
        """Upsert the outcome results of closed windows whose labels changed, and detections."""
        if not joined.panes and not joined.detections:
            return
        for window, summary in self._closed_windows(connection, commit, joined.panes):
            profile = self.profiles.get(window.reference_id, self.profile)
            records = outcome_records(
                profile, self.config, window, summary, self._window_labels(connection, window)
            )
            commit.results.extend(records)
            report.outcomes.append((window, records))
        assert self.labels is not None
        for detection in joined.detections:
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
                self.labels.detector.name,
                result,
                metric=f"position_{detection.position}",
                detected_at=detection.detected_at,
            )
            commit.results.append(record)
            report.outcomes.append((window, [record]))

    def _closed_windows(
        self, connection: Connection, commit: Commit, panes: set[int]
    ) -> list[tuple[WindowInfo, WindowSummary]]:
        """Closed windows (stored or closed since the last checkpoint) holding any of ``panes``."""
        if not panes:
            return []
        count = isinstance(self.windows, CountWindows)
        found: dict[int, ClosedWindow] = {}
        low, high = min(panes), max(panes)
        if count:
            where = "window_index >= :low AND window_index <= :high"
        else:
            where = "window_start <= :high AND window_end > :low"
        rows = connection.execute(
            text(
                "SELECT window_index, window_start, window_end, reference_id, model_version, "
                f"n_events, summary FROM windows WHERE model = :model AND {where}"
            ),
            {"model": self.name, "low": low, "high": high},
        )
        for index, start, end, reference_id, version, n_events, data in rows:
            found[index] = ClosedWindow(
                self.name, index, start, end, reference_id, version, n_events, bytes(data)
            )
        for window in commit.windows:
            if window.model == self.name:
                found[window.index] = window
        out = []
        for window in sorted(found.values(), key=lambda w: w.index):
            if count:
                hit = window.index in panes
            else:
                hit = any(window.start <= pane < window.end for pane in panes)
            if hit:
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

    def _window_of(self, connection: Connection, commit: Commit, pane: int) -> WindowInfo:
        """The earliest window holding ``pane``: closed, or the open one it will close as."""
        closed = self._closed_windows(connection, commit, {pane})
        if closed:
            return closed[0][0]
        if isinstance(self.windows, CountWindows):
            return WindowInfo(self.name, None, self.profile.reference_id, pane, pane, pane)
        bounds = self.windows.open_window_of(pane)
        return WindowInfo(
            self.name, None, self.profile.reference_id, bounds.index, bounds.start, bounds.end
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
        for identifier, source, partition, offset, raw, expires_at in orphans:
            origin = Origin(source, None if partition < 0 else partition, offset)
            waited = "within orphan_ttl" if expires_at < now else "before the end of the input"
            commit.dead_letters.append(
                DeadLetter(
                    "orphan_label",
                    f"no prediction with id {identifier!r} arrived {waited}",
                    bytes(raw),
                    origin,
                    "label",
                    self.name,
                )
            )

    def snapshot(self, connection: Connection) -> ModelSnapshot:
        """The window state to store (label summaries are written on ``connection``)."""
        self.dirty = False
        topic, partition = self.source or (None, None)
        extra = {}
        if self.labels is not None:
            self.labels.flush(connection)
            extra["concept"] = {
                "detector": self.labels.detector.state_dict(),
                "position": self.labels.position,
            }
        return ModelSnapshot(
            self.profile.reference_id, encode_state(self.windows, extra), topic, partition
        )


def _reject_future(
    frame: pl.DataFrame, batch: DecodedBatch, limit: int, model: str, kind: Kind
) -> pl.DataFrame:
    """The rows with event times up to ``limit``; later ones become dead letters
    (``future_timestamp``): a producer clock far ahead would otherwise move watermarks
    and label delays."""
    future = frame["ts"] > limit
    detail = "is more than the allowed skew ahead of now"
    return _reject(frame, future, batch, "future_timestamp", detail, model, kind)


def _reject(
    frame: pl.DataFrame,
    rejected: pl.Series,
    batch: DecodedBatch,
    reason: str,
    detail: str,
    model: str,
    kind: Kind,
) -> pl.DataFrame:
    """The rows not ``rejected``; the rejected ones become dead letters whose detail is
    their event time followed by ``detail``."""
    if not rejected.any():
        return frame
    for row, ts in frame.filter(rejected).select("_row", "ts").iter_rows():
        batch.dead_letter(row, reason, f"event time {format_time(ts)} {detail}", model, kind)
    return frame.filter(~rejected)


def _piece_keys(pieces: list[tuple[int, int, int]]) -> pl.Series:
    """The window key of every row of a batch cut into count-window pieces."""
    return pl.Series(
        np.repeat([index for _, _, index in pieces], [length for _, length, _ in pieces]),
        dtype=pl.Int64,
    )


def _now(now: int | None, event_now: int) -> int:
    return event_now if now is None else now


class Pipeline:
    """All configured models; folds decoded batches, joins labels, closes windows."""

    def __init__(
        self,
        config: Config,
        models: dict[str, ModelPipeline],
        *,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.models = models
        self.clock = clock
        skew = config.events.max_future_skew.total_seconds()
        self._max_future_skew = int(skew * 1000)
        self.event_now = 0

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
        for name in batch.frames:
            joined = report.joins.get(name)
            if joined is not None:
                self.models[name].outcomes_changed(joined, commit, connection, report)
            self._close(name, commit, connection, report, now, flush=False)
        commit.dead_letters.extend(batch.dead_letters)
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
                frame = _reject_future(frame, batch, limit, name, "label")
            if frame.height:
                model.join_labels(frame, batch, commit, connection, self.now, report)
        commit.dead_letters.extend(batch.dead_letters)
        return report

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
        start = len(commit.results)
        began = time.perf_counter()
        closed = self.models[name].close_due(commit, connection, now, flush=flush)
        if closed:
            report.close_seconds += [(time.perf_counter() - began) / len(closed)] * len(closed)
        for window in closed:
            results = [r for r in commit.results[start:] if r.window_index == window.index]
            report.closed.append((window, results))

    def snapshot(
        self, commit: Commit, connection: Connection, *, changed_only: bool = False
    ) -> None:
        """Add the state of every (or every changed) model to ``commit``."""
        for name, model in self.models.items():
            if model.dirty or not changed_only:
                commit.model_states[name] = model.snapshot(connection)

    def restore(self, store: Store) -> None:
        """Reload every model's state from the database (after a rebalance or a rollback)."""
        for name, model in self.models.items():
            model.restore(store.model_state(name))

    def owned(self, partitions: set[tuple[str, int]]) -> list[str]:
        """Models whose events come from ``partitions`` (or from nowhere yet)."""
        return [
            name
            for name, model in self.models.items()
            if model.source is None or model.source in partitions
        ]
