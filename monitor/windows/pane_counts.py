"""Count windows of a spread model: runs of whole panes, each closed once it holds ``size``
events.

Partitions read in parallel share no arrival order, so a spread model cannot count its
events as they arrive. Its partitions fold events into panes of event time (``pane``
long), as time windows of one pane do, and hand each pane in once their watermark has
passed it (see ``pipeline.spread``). A window is the run of panes from the end of the
previous window up to the first pane end at which the run holds at least ``size``
events; it closes once every partition has passed that end. So a window holds ``size``
events or more, starts and ends on pane boundaries, and depends only on the events'
times, never on which partition or instance read them. At the end of the input
(``replay``) the last, smaller run closes too, as the last count window does.
"""

from __future__ import annotations

from typing import Any

from driftwarden.monitor.config import CountWindowConfig
from driftwarden.monitor.windows.summary import WindowSummary
from driftwarden.monitor.windows.time_windows import TimeWindows, TimeWindowState
from driftwarden.monitor.windows.windowing import WindowBounds


class PaneCountWindows(TimeWindows):
    """A spread model's count windows, closed from its partitions' merged panes."""

    def __init__(self, config: CountWindowConfig, state: TimeWindowState | None = None) -> None:
        super().__init__(config.panes(), state)
        self.size = config.size

    def close_due(
        self, now: int | None, *, flush: bool
    ) -> list[tuple[WindowBounds, list[WindowSummary]]]:
        """Close each run of panes the watermark has passed that holds ``size`` events, in
        order; ``flush`` closes the rest as one last window."""
        self.skipped = []
        closed = []
        run: list[tuple[int, WindowSummary]] = []
        held = 0
        watermark = self.watermark
        for pane, summary in sorted(self.state.panes.items()):
            end = self._offset(pane, self._step)
            if not flush and (watermark is None or end > watermark):
                break
            run.append((pane, summary))
            held += summary.n_events
            if held >= self.size:
                closed.append(self._close_run(run, end))
                run, held = [], 0
        if flush and run:
            closed.append(self._close_run(run, self._offset(run[-1][0], self._step)))
        return closed

    def _close_run(
        self, run: list[tuple[int, WindowSummary]], end: int
    ) -> tuple[WindowBounds, list[WindowSummary]]:
        """The window from the previous one's end (or the run's first pane) to ``end``."""
        state = self.state
        start = run[0][0] if state.next_start is None else state.next_start
        bounds = WindowBounds(state.next_index, start, end)
        for pane, _ in run:
            del state.panes[pane]
        state.next_start = state.closed_until = end
        state.next_index += 1
        return bounds, [summary for _, summary in run]

    def open_window_of(self, pane: int) -> WindowBounds:
        """The window that will hold ``pane``: the next to close, its end not yet known (the
        pane's end stands for it)."""
        start = pane if self.state.next_start is None else self.state.next_start
        return WindowBounds(self.state.next_index, start, self._offset(pane, self._step))

    @classmethod
    def from_bytes(  # type: ignore[override]
        cls, config: CountWindowConfig, data: bytes
    ) -> tuple[PaneCountWindows, dict[str, Any]]:
        """Windows restored from ``to_bytes``, and the ``extra`` state stored with them."""
        panes, extra = TimeWindows.from_bytes(config.panes(), data)
        return cls(config, panes.state), extra
