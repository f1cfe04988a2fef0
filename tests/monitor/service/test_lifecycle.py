"""The daemon's threads: started in order, stopped in reverse, housekeeping on its own thread."""

from __future__ import annotations

import threading
import time

from support.kafka import wait_for

from driftwarden.monitor.service.lifecycle import Housekeeping, Lifecycle


def test_components_stop_in_reverse_order_even_when_one_fails() -> None:
    events: list[str] = []
    lifecycle = Lifecycle()
    for name in ("database", "http", "worker"):
        lifecycle.start(name, name, lambda n=name: events.append(f"start {n}"),
                        lambda n=name: events.append(f"stop {n}"))  # fmt: skip

    def broken() -> None:
        raise RuntimeError("stuck")

    lifecycle.start("broken", None, None, broken)
    lifecycle.stop()
    assert events == [
        "start database",
        "start http",
        "start worker",
        "stop worker",
        "stop http",
        "stop database",
    ]


def test_housekeeping_calls_its_jobs_until_stopped_promptly() -> None:
    calls: list[str] = []
    seen = threading.Event()

    def job() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) >= 2:
            seen.set()

    housekeeping = Housekeeping(every=0.05)
    housekeeping.add("job", job)
    housekeeping.start()
    try:
        wait_for(seen.is_set, 10, "two housekeeping calls")
    finally:
        started = time.monotonic()
        housekeeping.stop()
    assert time.monotonic() - started < 5
    assert threading.main_thread().name not in calls
