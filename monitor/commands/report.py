"""``driftwarden report``: the evidence pages of a model as one self-contained HTML file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine

from driftwarden.core.times import Clock, wall_clock_ms
from driftwarden.monitor import storage
from driftwarden.monitor.errors import InputError
from driftwarden.monitor.service.pages import Links, Pages
from driftwarden.monitor.storage import evidence

LAST_WINDOWS = 500
"""Windows a report covers when no window or time range is given: the model's last ones."""
REPLAY_WINDOW_PAGES = 100
"""Window pages ``replay``'s report holds per model (drifting windows first)."""


def write_report(
    engine: Engine,
    model: str,
    out: Path,
    *,
    window: int | None = None,
    since: int | None = None,
    until: int | None = None,
    clock: Clock = wall_clock_ms,
) -> int:
    """Write ``model``'s pages to ``out``: window ``window``, the windows overlapping
    ``[since, until)`` (epoch ms; either may be open), or its last ``LAST_WINDOWS``; return
    how many windows the file covers."""
    with engine.connect() as connection:
        if window is not None:
            history = evidence.window_range(connection, model, window, window, by_index=True)
        elif since is not None or until is not None:
            low = -(2**62) if since is None else since
            high = 2**62 if until is None else until
            history = evidence.window_range(connection, model, low, high)
        else:
            history = evidence.history(connection, model, LAST_WINDOWS)
    if not history.windows:
        raise InputError(f"no stored window of model {model!r} matches")
    pages = Pages(storage.Store(engine), Links(anchors=True), clock)
    _write(out, pages.report([history]))
    return len(history.windows)


def write_replay_report(
    engine: Engine, models: Iterable[str], out: Path, clock: Clock = wall_clock_ms
) -> None:
    """``report.html`` of a back-test: each of ``models`` over all its windows."""
    with engine.connect() as connection:
        histories = [
            evidence.window_range(connection, model, 0, 2**31 - 1, by_index=True)
            for model in models
        ]
    pages = Pages(storage.Store(engine), Links(anchors=True), clock)
    _write(out, pages.report(histories, REPLAY_WINDOW_PAGES))


def _write(out: Path, html: str) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc}") from None
