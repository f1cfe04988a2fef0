"""Who owns the daemon's threads: one object starts them in order and stops them in reverse.

Every thread the daemon runs — the HTTP server, the housekeeping scheduler
(retention), the alert dispatcher, SQLite's checkpointer, the label join's
helper and the fold worker — is registered here as it starts, with the call
that drains and stops it. Stopping runs those calls last-started first, so the
fold worker's final checkpoint happens while everything it writes through is
still up, and ``/readyz`` keeps answering until the very end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar

log = logging.getLogger("driftwarden.daemon")

T = TypeVar("T")


class Lifecycle:
    """Components started in order and stopped in reverse, each stop attempted even when an
    earlier one failed."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], object]]] = []

    def start(
        self,
        name: str,
        component: T,
        start: Callable[[], object] | None,
        stop: Callable[[], object],
    ) -> T:
        """Run ``start`` (if any) and remember ``stop``; returns ``component``."""
        if start is not None:
            start()
        self._stops.append((name, stop))
        return component

    def stop(self) -> None:
        """Stop everything started, last first."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception:
                log.exception("stopping %s failed", name, extra={"event": "stop_failed"})


class Housekeeping:
    """One scheduler thread that calls periodic jobs every ``every`` seconds; the jobs decide
    from the clock they were given whether anything is due, so tests drive them directly."""

    def __init__(self, every: float = 1.0) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.every = every
        self._scheduler = BackgroundScheduler(timezone=UTC, daemon=True)

    def add(self, name: str, job: Callable[[], Any]) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        self._scheduler.add_job(
            job,
            IntervalTrigger(seconds=self.every, timezone=UTC),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        """Stop, waiting for a running job to return."""
        self._scheduler.shutdown(wait=True)
