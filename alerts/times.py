"""Times as the alerting tables keep them: integer epoch milliseconds, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime (naive ones are refused: ambiguous)."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(milliseconds: int) -> datetime:
    """The UTC datetime of epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=milliseconds)


def format_ms(milliseconds: int | None) -> str | None:
    """RFC 3339 with millisecond precision and a ``Z`` suffix, as in the result records."""
    if milliseconds is None:
        return None
    return from_ms(milliseconds).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def duration_ms(delta: timedelta) -> int:
    """Whole milliseconds of a duration."""
    return delta // timedelta(milliseconds=1)
