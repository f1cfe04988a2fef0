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
from driftwarden.monitor.windows.windowing import Assignment, WindowBounds, Windows


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
        return [(bounds, self.close(bounds)) for bounds in self.due(now, flush=flush)]

    def key_range(self, window: WindowBounds) -> tuple[int, int]:
        return window.start, window.end

    def pane_starts(self, ts: pl.Series) -> pl.Series:
        """The start (epoch ms) of the pane of each event time."""
        local = ts.cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone(self.config.timezone)
        return local.dt.truncate(self._step).dt.epoch("ms").alias("pane")

    def admit(self, ts: pl.Series, panes: pl.Series, arrival: int | None = None) -> np.ndarray:
        """Which events (in arrival order) are too late; advance the watermark and first window.

        An event is too late when a window has closed before it arrived and its
        time is before the end of the last closed window. Windows close as the
        watermark passes their end, event by event.
        """
        state = self.state
        times = ts.to_numpy()
        starts = panes.to_numpy()
        prior = np.iinfo(np.int64).min if state.max_ts is None else state.max_ts
        seen = np.maximum.accumulate(np.maximum(times, prior))
        watermark_before = np.concatenate(([prior], seen[:-1])) - self._lateness
        late = np.zeros(len(times), dtype=bool)
        closed_until = state.closed_until
        first = 0
        if closed_until is None:
            origin_limit = np.iinfo(np.int64).max if state.next_start is None else state.next_start
            origins = np.minimum.accumulate(np.minimum(starts, origin_limit))
            first_ends = self._offsets(origins, self._size)
            closes = seen - self._lateness >= first_ends
            if not closes.any():
                state.next_start = int(origins[-1])
                self._observe(times, arrival)
                return late
            first = int(np.argmax(closes)) + 1
            state.next_start = int(origins[first - 1])
            closed_until = int(first_ends[first - 1])
        if first < len(times):
            boundaries = np.maximum(self._truncate(watermark_before[first:]), closed_until)
            late[first:] = times[first:] < boundaries
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

    def due(self, now: int | None = None, *, flush: bool = False) -> list[WindowBounds]:
        """Windows that close now: watermark passed, idle timeout (live), or end of input."""
        state = self.state
        if state.next_start is None:
            return []
        closing = []
        start, index = state.next_start, state.next_index
        last_pane = max(state.panes, default=None)
        while True:
            end = self._offset(start, self._size)
            if not self._closes(end, now, flush, last_pane, start):
                break
            closing.append(WindowBounds(index, start, end))
            start, index = self._offset(start, self._step), index + 1
        return closing

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
