"""Running one piece of work on several threads that start at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def at_once(
    work: Callable[[T], R], inputs: Sequence[T], timeout: float = 120
) -> list[R | BaseException]:
    """``work`` on each of ``inputs``, one thread each, all released together; what each
    returned or raised, in the order they finished."""
    start = threading.Barrier(len(inputs))
    outcomes: list[R | BaseException] = []

    def run(item: T) -> None:
        start.wait()
        try:
            outcomes.append(work(item))
        except BaseException as exc:  # handed to the caller
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(item,)) for item in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return outcomes
