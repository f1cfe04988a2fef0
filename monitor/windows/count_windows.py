"""Count windows of one model: a window closes every ``size`` predictions, in arrival order.

A count window's time range runs from its first event time to just after its
last; its key (see ``windowing``) is its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from driftwarden.monitor.config import CountWindowConfig
from driftwarden.monitor.windows.archive import as_bytes, pack, unpack
from driftwarden.monitor.windows.summary import WindowSummary
from driftwarden.monitor.windows.windowing import Assignment, SkippedRun, WindowBounds, Windows


@dataclass
class CountWindowState:
    """The open count window: its events so far and its index."""

    summary: WindowSummary | None = None
    next_index: int = 0


class CountWindows(Windows):
    """Closes a window every ``size`` events, in arrival order."""

    keys_are_indexes = True

    def __init__(self, config: CountWindowConfig, state: CountWindowState | None = None) -> None:
        self.config = config
        self.state = state or CountWindowState()
        self._full: list[tuple[WindowBounds, WindowSummary]] = []
        self.skipped: list[SkippedRun] = []

    @property
    def count(self) -> int:
        return 0 if self.state.summary is None else self.state.summary.n_events

    def assign(self, ts: pl.Series, arrival: int | None) -> Assignment:
        """Key every row by the window it fills; none is ever late."""
        n_rows = ts.len()
        first = self.config.size - self.count
        cuts = np.arange(first, n_rows, self.config.size)
        keys = self.state.next_index + np.searchsorted(cuts, np.arange(n_rows), side="right")
        return Assignment(pl.Series(keys, dtype=pl.Int64), np.zeros(n_rows, dtype=bool))

    def open_summary(self, key: int) -> WindowSummary | None:
        return self.state.summary if key == self.state.next_index else None

    def add(self, key: int, summary: WindowSummary) -> None:
        """Fold events in; a window that reaches ``size`` events is set aside to close."""
        state = self.state
        state.summary = summary if state.summary is None else state.summary.merge(summary)
        if state.summary.n_events >= self.config.size:
            self._set_aside()

    def close_due(
        self, now: int | None, *, flush: bool
    ) -> list[tuple[WindowBounds, list[WindowSummary]]]:
        """Full windows, and at the end of input the partial one."""
        if flush and self.state.summary is not None and self.state.summary.n_events:
            self._set_aside()
        full, self._full = self._full, []
        return [(bounds, [summary]) for bounds, summary in full]

    def open_window_of(self, key: int) -> WindowBounds:
        return WindowBounds(key, key, key)

    def key_range(self, window: WindowBounds) -> tuple[int, int]:
        return window.index, window.index + 1

    def _set_aside(self) -> None:
        summary = self.state.summary
        assert summary is not None and summary.first_ts is not None and summary.last_ts is not None
        bounds = WindowBounds(self.state.next_index, summary.first_ts, summary.last_ts + 1)
        self._full.append((bounds, summary))
        self.state.summary = None
        self.state.next_index += 1

    def index_of(self, ts: int) -> int:
        return self.state.next_index

    def to_bytes(self, extra: dict[str, Any]) -> bytes:
        summary = self.state.summary
        header = {"extra": extra, "kind": "count", "next_index": self.state.next_index}
        arrays = {} if summary is None else {"summary": as_bytes(summary.to_bytes())}
        return pack(header, arrays)

    @classmethod
    def from_bytes(
        cls, config: CountWindowConfig, data: bytes
    ) -> tuple[CountWindows, dict[str, Any]]:
        """Windows restored from ``to_bytes``, and the ``extra`` state stored with them."""
        header, arrays = unpack(data)
        summary = arrays.get("summary")
        state = CountWindowState(
            summary=None if summary is None else WindowSummary.from_bytes(summary.tobytes()),
            next_index=header["next_index"],
        )
        return cls(config, state), header["extra"]
