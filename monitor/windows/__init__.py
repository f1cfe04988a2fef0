"""Windows: panes and count windows, the summaries folded into them, reference profiles."""

from __future__ import annotations

from typing import Any

from driftwarden.monitor.config import CountWindowConfig, TimeWindowConfig
from driftwarden.monitor.windows.count_windows import CountWindows
from driftwarden.monitor.windows.pane_counts import PaneCountWindows
from driftwarden.monitor.windows.time_windows import TimeWindows
from driftwarden.monitor.windows.windowing import Assignment, WindowBounds, Windows

__all__ = [
    "Assignment",
    "CountWindows",
    "PaneCountWindows",
    "TimeWindows",
    "WindowBounds",
    "Windows",
    "restore",
    "restore_spread",
]

_KINDS: dict[str, Any] = {"time": TimeWindows, "count": CountWindows}


def restore(
    config: TimeWindowConfig | CountWindowConfig, data: bytes | None
) -> tuple[Windows, dict[str, Any]]:
    """A model's windows from its configuration and stored state (fresh without one), and the
    ``extra`` state stored with them."""
    kind = _KINDS[config.kind]
    if data is None:
        return kind(config), {}
    return kind.from_bytes(config, data)


def restore_spread(
    config: TimeWindowConfig | CountWindowConfig, data: bytes | None
) -> tuple[TimeWindows, dict[str, Any]]:
    """A spread model's windows (time windows, or count windows of whole panes) from its
    configuration and stored state, and the ``extra`` state stored with them."""
    kind: Any = TimeWindows if isinstance(config, TimeWindowConfig) else PaneCountWindows
    if data is None:
        return kind(config), {}
    return kind.from_bytes(config, data)
