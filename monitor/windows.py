"""Windows of one model: panes on event time, the watermark, and when a window closes.

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
daemon (Kafka polls) and ``replay`` (file chunks) agree. Count windows close
every ``size`` events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from driftwarden.monitor.archive import pack, unpack
from driftwarden.monitor.config import CountWindowConfig, TimeWindowConfig
from driftwarden.monitor.summary import WindowSummary


def _polars_duration(value: timedelta) -> str:
    if value % timedelta(days=1) == timedelta(0):
        return f"{value // timedelta(days=1)}d"
    return f"{value // timedelta(milliseconds=1)}ms"


@dataclass(frozen=True)
class WindowBounds:
    """One window: its index among the model's windows and its time range (epoch ms)."""

    index: int
    start: int
    end: int


@dataclass
class TimeWindowState:
    """What survives a restart: open panes and the position of the next window."""

    panes: dict[int, WindowSummary] = field(default_factory=dict)
    max_ts: int | None = None
    next_start: int | None = None
    next_index: int = 0
    closed_until: int | None = None
    last_arrival: int | None = None


class TimeWindows:
    """Assigns events to panes and decides which windows close."""

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


@dataclass
class CountWindowState:
    """The open count window: its events so far and its index."""

    summary: WindowSummary | None = None
    next_index: int = 0


class CountWindows:
    """Closes a window every ``size`` events, in arrival order.

    A count window's range runs from its first event time to just after its last.
    """

    def __init__(self, config: CountWindowConfig, state: CountWindowState | None = None) -> None:
        self.config = config
        self.state = state or CountWindowState()
        self._full: list[tuple[WindowBounds, WindowSummary]] = []

    @property
    def count(self) -> int:
        return 0 if self.state.summary is None else self.state.summary.n_events

    def cuts(self, n_rows: int) -> list[int]:
        """Row positions in a batch of ``n_rows`` after which the open window is full."""
        first = self.config.size - self.count
        return list(range(first, n_rows + 1, self.config.size))

    def add(self, summary: WindowSummary) -> None:
        """Fold events in; a window that reaches ``size`` events is set aside to close."""
        state = self.state
        state.summary = summary if state.summary is None else state.summary.merge(summary)
        if state.summary.n_events >= self.config.size:
            self._set_aside()

    def due(self, *, flush: bool) -> list[tuple[WindowBounds, WindowSummary]]:
        """Full windows, and at the end of input the partial one."""
        if flush and self.state.summary is not None and self.state.summary.n_events:
            self._set_aside()
        full, self._full = self._full, []
        return full

    def _set_aside(self) -> None:
        summary = self.state.summary
        assert summary is not None and summary.first_ts is not None and summary.last_ts is not None
        bounds = WindowBounds(self.state.next_index, summary.first_ts, summary.last_ts + 1)
        self._full.append((bounds, summary))
        self.state.summary = None
        self.state.next_index += 1


def encode_state(windows: TimeWindows | CountWindows, extra: dict[str, Any]) -> bytes:
    """A model's window state (and ``extra`` JSON state) as bytes, for the database."""
    if isinstance(windows, TimeWindows):
        state = windows.state
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
        arrays = {f"pane.{pane}": _bytes_array(s.to_bytes()) for pane, s in state.panes.items()}
        return pack(header, arrays)
    summary = windows.state.summary
    header = {"extra": extra, "kind": "count", "next_index": windows.state.next_index}
    arrays = {} if summary is None else {"summary": _bytes_array(summary.to_bytes())}
    return pack(header, arrays)


def decode_state(
    config: TimeWindowConfig | CountWindowConfig, data: bytes | None
) -> tuple[TimeWindows | CountWindows, dict[str, Any]]:
    """The windows of a model from its configuration and stored state (fresh if none), and
    the ``extra`` state stored with them."""
    if data is None:
        fresh = (
            CountWindows(config) if isinstance(config, CountWindowConfig) else TimeWindows(config)
        )
        return fresh, {}
    header, arrays = unpack(data)
    if isinstance(config, CountWindowConfig):
        summary = arrays.get("summary")
        return CountWindows(
            config,
            CountWindowState(
                summary=None if summary is None else WindowSummary.from_bytes(summary.tobytes()),
                next_index=header["next_index"],
            ),
        ), header["extra"]
    panes = {
        pane: WindowSummary.from_bytes(arrays[f"pane.{pane}"].tobytes()) for pane in header["panes"]
    }
    return TimeWindows(
        config,
        TimeWindowState(
            panes=panes,
            max_ts=header["max_ts"],
            next_start=header["next_start"],
            next_index=header["next_index"],
            closed_until=header["closed_until"],
            last_arrival=header["last_arrival"],
        ),
    ), header["extra"]


def _bytes_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)
