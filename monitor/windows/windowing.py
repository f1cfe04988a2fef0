"""What every kind of window offers the batch path: one interface for time and count windows.

Rows of a batch get a *key*: the unit their summaries (and their labels' summaries)
are kept under. For time windows a key is the start of the row's pane (epoch ms);
for count windows it is the index of the window the row falls in. A window holds
the keys in ``key_range(window)``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from driftwarden.monitor.windows.summary import WindowSummary


@dataclass(frozen=True)
class WindowBounds:
    """One window: its index among the model's windows and its time range (epoch ms)."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class SkippedRun:
    """Empty windows skipped in one step: ``count`` windows from index ``first``, covering
    ``[start, end)``."""

    first: int
    count: int
    start: int
    end: int


@dataclass(frozen=True)
class Assignment:
    """The key of every row of a batch (in arrival order) and which rows are too late."""

    keys: pl.Series
    late: np.ndarray


class Windows(abc.ABC):
    """The windows of one model: which rows go where, what is open, what closes."""

    keys_are_indexes: bool
    """Whether keys are window indexes (count windows) rather than pane starts (time)."""

    skipped: list[SkippedRun]
    """Runs of empty windows the last ``close_due`` skipped rather than closed: the index
    of the first and the time range the run covered."""

    @abc.abstractmethod
    def assign(self, ts: pl.Series, arrival: int | None) -> Assignment:
        """Key every row (event times ``ts``, in arrival order) and advance the watermark;
        ``arrival`` is the wall-clock time of the batch, live."""

    @abc.abstractmethod
    def open_summary(self, key: int) -> WindowSummary | None:
        """The summary folded so far under ``key``, if it is open."""

    @abc.abstractmethod
    def add(self, key: int, summary: WindowSummary) -> None:
        """Fold a summary of new rows in under ``key``."""

    @abc.abstractmethod
    def close_due(
        self, now: int | None, *, flush: bool
    ) -> list[tuple[WindowBounds, list[WindowSummary]]]:
        """Close every window that is due and return it with the summaries it is made of;
        ``flush`` closes every open window (the end of the input)."""

    @abc.abstractmethod
    def open_window_of(self, key: int) -> WindowBounds:
        """The earliest window not yet closed that holds ``key``."""

    @abc.abstractmethod
    def key_range(self, window: WindowBounds) -> tuple[int, int]:
        """The keys ``[low, high)`` that ``window`` holds."""

    @abc.abstractmethod
    def index_of(self, ts: int) -> int:
        """The index of the earliest window not yet closed that holds event time ``ts`` (the
        next window to close, for earlier times; the latest event's, for later ones)."""

    @abc.abstractmethod
    def to_bytes(self, extra: dict[str, Any]) -> bytes:
        """The windows' state (and ``extra`` JSON state stored with it), for the database."""
