"""When to try a failed delivery again: exponential backoff with jitter, or ``Retry-After``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime

from driftwarden.core.times import to_ms


def backoff(
    attempt: int, initial: timedelta, maximum: timedelta, random: Callable[[], float]
) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, …).

    ``min(maximum, initial × 2^(attempt-1)) × (0.5 + random() / 2)``: the
    delay doubles per attempt up to ``maximum``, and "equal jitter" spreads
    instances that failed together over the upper half of it.
    """
    ceiling = min(maximum, initial * 2 ** min(attempt - 1, 30))
    return ceiling * (0.5 + random() / 2)


def parse_retry_after(value: str | None, now: int) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds, or an HTTP date compared
    with ``now`` in epoch milliseconds)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (to_ms(moment) - now) / 1000)
