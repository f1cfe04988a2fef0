"""Time windows of one model: panes on event time, the watermark, and when a window closes.

Time windows are half-open ``[start, end)``, aligned to multiples of the step
in UTC (or in ``timezone``, so a ``1d`` window starts at local midnight). A
window of ``size`` is the sum of ``size / step`` panes. The watermark is the
largest event time seen minus ``allowed_lateness``; a window closes when the
watermark reaches its end, or, live, when no event has arrived for
``idle_timeout`` after its end. An event whose time falls in a window that has
already closed is too late (for sliding windows: in any closed window). Until
the first window closes, an earlier event moves the first window back.

All of this is decided per event in arrival order, vectorized over a batch, so
the windows and what is too late do not depend on how events are batched: the
daemon (Kafka polls) and ``replay`` (file chunks) agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from driftwarden.monitor.config import TimeWindowConfig
from driftwarden.monitor.windows.archive import as_bytes, pack, unpack
from driftwarden.monitor.windows.summary import WindowSummary
from driftwarden.monitor.windows.windowing import Assignment, SkippedRun, WindowBounds, Windows


def _polars_duration(value: timedelta) -> str:
    if value % timedelta(days=1) == timedelta(0):
        return f"{value // timedelta(days=1)}d"
    return f"{value // timedelta(milliseconds=1)}ms"


@dataclass
class TimeWindowState:
    """What survives a restart: open panes and the position of the next window."""

    panes: dict[int, WindowSummary] = field(default_factory=dict)
    max_ts: int | None = None
    next_start: int | None = None
    next_index: int = 0
    closed_until: int | None = None
    last_arrival: int | None = None


class TimeWindows(Windows):
    """Assigns events to panes and decides which windows close."""

    keys_are_indexes = False

    def __init__(self, config: TimeWindowConfig, state: TimeWindowState | None = None) -> None:
        self.config = config
        self.state = state or TimeWindowState()
        self._step = _polars_duration(config.pane)
        self._size = _polars_duration(config.size)
        self._back = (
            "-" + _polars_duration(config.size - config.pane)
            if config.size > config.pane
            else "0ms"
        )
        self.skipped: list[SkippedRun] = []
        self._lateness = config.allowed_lateness // timedelta(milliseconds=1)
        self._idle = (
            None
            if config.idle_timeout is None
            else config.idle_timeout // timedelta(milliseconds=1)
        )

    def assign(self, ts: pl.Series, arrival: int | None) -> Assignment:
        """Key every row by its pane; rows of a window that has closed are late."""
        panes = self.pane_starts(ts)
        return Assignment(panes, self.admit(ts, panes, arrival))

    def open_summary(self, key: int) -> WindowSummary | None:
        return self.state.panes.get(key)

    def close_due(
        self, now: int | None, *, flush: bool
    ) -> list[tuple[WindowBounds, list[WindowSummary]]]:
        """Close the due windows in order. A run of more than ``max_empty_windows`` windows
        without an event is not closed one by one: the windows up to the next one with
        events (or holding the watermark) are skipped in one step (see ``skipped``)."""
        self.skipped = []
        closed = []
        empty_run = 0
        while (bounds := self._next_due(now, flush)) is not None:
            if self._holds_events(bounds):
                empty_run = 0
            elif (empty_run := empty_run + 1) > self.config.max_empty_windows and self._skip(
                bounds
            ):
                empty_run = 0
                continue
            closed.append((bounds, self.close(bounds)))
        return closed

    def key_range(self, window: WindowBounds) -> tuple[int, int]:
        return window.start, window.end

    def pane_starts(self, ts: pl.Series) -> pl.Series:
        """The start (epoch ms) of the pane of each event time."""
        local = ts.cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone(self.config.timezone)
        return local.dt.truncate(self._step).dt.epoch("ms").alias("pane")

    def admit(self, ts: pl.Series, panes: pl.Series, arrival: int | None = None) -> np.ndarray:
        """Which events (in arrival order) are too late; advance the watermark and first window.

        An event is too late when its time is before the pane of the watermark when it
        arrived, or before the end of the last closed window. Until the first window
        closes, an event that is not too late may move the first window back (by at most
        ``allowed_lateness`` and a pane). Windows close as the watermark passes their end,
        event by event.
        """
        state = self.state
        times = ts.to_numpy()
        starts = panes.to_numpy()
        late = np.zeros(len(times), dtype=bool)
        if not len(times):
            return late
        prior = times[0] if state.max_ts is None else max(state.max_ts, times[0])
        seen = np.maximum.accumulate(np.maximum(times, prior))
        watermark_before = np.concatenate(([prior], seen[:-1])) - self._lateness
        late = times < self._truncate(watermark_before)
        closed_until = state.closed_until
        first = 0
        if closed_until is None:
            limit = np.iinfo(np.int64).max
            origin_limit = limit if state.next_start is None else state.next_start
            admitted = np.where(late, limit, starts)
            origins = np.minimum.accumulate(np.minimum(admitted, origin_limit))
            first_ends = self._offsets(origins, self._size)
            closes = seen - self._lateness >= first_ends
            if not closes.any():
                state.next_start = int(origins[-1])
                self._observe(times[~late], arrival)
                return late
            first = int(np.argmax(closes)) + 1
            state.next_start = int(origins[first - 1])
            closed_until = int(first_ends[first - 1])
        late[first:] |= times[first:] < closed_until
        self._observe(times[~late], arrival)
        return late

    def open_window_of(self, pane: int) -> WindowBounds:
        """The earliest window not yet closed that holds ``pane``."""
        start = self.state.next_start if self.state.next_start is not None else pane
        index = self.state.next_index
        while self._offset(start, self._size) <= pane:
            start, index = self._offset(start, self._step), index + 1
        return WindowBounds(index, start, self._offset(start, self._size))

    def add(self, pane: int, summary: WindowSummary) -> None:
        """Fold a pane's new events in."""
        panes = self.state.panes
        panes[pane] = panes[pane].merge(summary) if pane in panes else summary

    def _observe(self, times: np.ndarray, arrival: int | None) -> None:
        if len(times):
            latest = int(times.max())
            if self.state.max_ts is None or latest > self.state.max_ts:
                self.state.max_ts = latest
        if arrival is not None:
            self.state.last_arrival = arrival

    def _truncate(self, moments: np.ndarray) -> np.ndarray:
        """The step boundary at or before each moment (in the window time zone)."""
        return self.pane_starts(pl.Series(moments, dtype=pl.Int64)).to_numpy()

    def _offsets(self, moments: np.ndarray, by: str) -> np.ndarray:
        if self.config.timezone == "UTC" and not by.endswith("d"):
            return moments + int(by[:-2])
        series = pl.Series(moments, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC"))
        local = series.dt.convert_time_zone(self.config.timezone).dt.offset_by(by)
        return local.dt.epoch("ms").to_numpy()

    @property
    def watermark(self) -> int | None:
        return None if self.state.max_ts is None else self.state.max_ts - self._lateness

    def _next_due(self, now: int | None, flush: bool) -> WindowBounds | None:
        """The next window, if it closes now: watermark passed, idle timeout (live), or end
        of input."""
        state = self.state
        if state.next_start is None:
            return None
        start = state.next_start
        end = self._offset(start, self._size)
        last_pane = max(state.panes, default=None)
        if not self._closes(end, now, flush, last_pane, start):
            return None
        return WindowBounds(state.next_index, start, end)

    def _holds_events(self, window: WindowBounds) -> bool:
        return any(window.start <= pane < window.end for pane in self.state.panes)

    def _skip(self, window: WindowBounds) -> bool:
        """Move past the empty windows from ``window`` on: to the first window that holds
        an open pane, or else the one that holds the watermark's pane. Whether it moved."""
        state = self.state
        ahead = [pane for pane in state.panes if pane >= window.start]
        target = min(ahead) if ahead else int(self._truncate(np.array([self.watermark]))[0])
        start = max(window.start, self._offset(target, self._back))
        steps = self._steps_between(window.start, start)
        if steps == 0:
            return False
        self.skipped.append(SkippedRun(window.index, steps, window.start, start))
        state.next_start = start
        state.next_index = window.index + steps
        state.closed_until = start
        return True

    def _steps_between(self, earlier: int, later: int) -> int:
        """How many steps (panes) lie between two pane starts."""
        step = self.config.pane
        if step % timedelta(days=1) == timedelta(0):
            days = (
                pl.Series([earlier, later], dtype=pl.Int64)
                .cast(pl.Datetime("ms", "UTC"))
                .dt.convert_time_zone(self.config.timezone)
                .dt.date()
            )
            return (days[1] - days[0]).days // step.days
        return (later - earlier) // (step // timedelta(milliseconds=1))

    def close(self, window: WindowBounds) -> list[WindowSummary]:
        """Take the panes of ``window``; forget panes no later window needs."""
        panes = [
            summary
            for pane, summary in sorted(self.state.panes.items())
            if window.start <= pane < window.end
        ]
        next_start = self._offset(window.start, self._step)
        self.state.panes = {
            pane: summary for pane, summary in self.state.panes.items() if pane >= next_start
        }
        self.state.next_start = next_start
        self.state.next_index = window.index + 1
        self.state.closed_until = window.end
        return panes

    def _closes(
        self, end: int, now: int | None, flush: bool, last_pane: int | None, start: int
    ) -> bool:
        """Watermark past the end; or, for windows holding the latest events, end of input or
        (live) no event for ``idle_timeout`` since both the last arrival and the window's end."""
        watermark = self.watermark
        if watermark is not None and watermark >= end:
            return True
        if last_pane is None or start > last_pane:
            return False
        if flush:
            return True
        if now is None or self._idle is None or self.state.last_arrival is None:
            return False
        return now >= end + self._idle and now - self.state.last_arrival >= self._idle

    def _offset(self, moment: int, by: str) -> int:
        return int(self._offsets(np.array([moment], dtype=np.int64), by)[0])

    def index_of(self, ts: int) -> int:
        """Times past the latest event count as the latest event's (a wall-clock time, live),
        so the answer is among the open windows."""
        latest = self.state.max_ts
        moment = ts if latest is None else min(ts, latest)
        pane = int(self.pane_starts(pl.Series([moment], dtype=pl.Int64))[0])
        return self.open_window_of(pane).index

    def to_bytes(self, extra: dict[str, Any]) -> bytes:
        state = self.state
        header = {
            "extra": extra,
            "kind": "time",
            "max_ts": state.max_ts,
            "next_start": state.next_start,
            "next_index": state.next_index,
            "closed_until": state.closed_until,
            "last_arrival": state.last_arrival,
            "panes": sorted(state.panes),
        }
        arrays = {f"pane.{pane}": as_bytes(s.to_bytes()) for pane, s in state.panes.items()}
        return pack(header, arrays)

    @classmethod
    def from_bytes(
        cls, config: TimeWindowConfig, data: bytes
    ) -> tuple[TimeWindows, dict[str, Any]]:
        """Windows restored from ``to_bytes``, and the ``extra`` state stored with them."""
        header, arrays = unpack(data)
        panes = {
            pane: WindowSummary.from_bytes(arrays[f"pane.{pane}"].tobytes())
            for pane in header["panes"]
        }
        state = TimeWindowState(
            panes=panes,
            max_ts=header["max_ts"],
            next_start=header["next_start"],
            next_index=header["next_index"],
            closed_until=header["closed_until"],
            last_arrival=header["last_arrival"],
        )
        return cls(config, state), header["extra"]
