"""Times as driftwarden keeps them: integer epoch milliseconds, UTC.

Everything inside the daemon and the alert engine counts in epoch
milliseconds; RFC 3339 text (millisecond precision, ``Z`` suffix) and
``datetime`` objects exist only at the edges: parsing events, writing records
and payloads, and the silence API.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

Clock = Callable[[], int]
"""A source of "now" in epoch milliseconds: the wall clock live, event time in a replay."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = 0
"""The earliest event time accepted: 1970-01-01T00:00:00.000Z."""
LATEST = (datetime(9999, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1) - 1
"""The latest event time accepted: 9998-12-31T23:59:59.999Z, so that window ends and alert
timers after it still have a date."""
_INTEGER = re.compile(r"-?\d+")


def wall_clock_ms() -> int:
    """Now, on the wall clock."""
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime (naive ones are refused: ambiguous)."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(milliseconds: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=milliseconds)


def format_time(milliseconds: int) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z`` suffix."""
    return from_ms(milliseconds).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_optional(milliseconds: int | None) -> str | None:
    """``format_time``, passing ``None`` through."""
    return None if milliseconds is None else format_time(milliseconds)


def parse_time(value: Any) -> int | None:
    """Epoch milliseconds from RFC 3339 text (no offset means UTC) or integer epoch ms;
    ``None`` when ``value`` is neither."""
    if is_integral(value):
        return int(value)
    if not isinstance(value, str):
        return None
    if _INTEGER.fullmatch(value):
        return int(value)
    if len(value) < 19 or value[10] not in "Tt ":
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace(" ", "T", 1))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


def in_range(milliseconds: int) -> bool:
    """Whether an event time lies between ``EARLIEST`` and ``LATEST``."""
    return EARLIEST <= milliseconds <= LATEST


def duration_ms(delta: timedelta) -> int:
    """Whole milliseconds of a duration."""
    return delta // timedelta(milliseconds=1)


def is_integral(value: Any) -> bool:
    """A JSON integer: an int, or a float with an integral value (JSON does not tell ``7``
    from ``7.0``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer() and abs(value) < 2**53
