"""Duration strings (``500ms``, ``30s``, ``10m``, ``1h``, ``7d``, ``1h30m``) in configuration."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def parse_duration(value: Any) -> timedelta:
    """A duration from ``"500ms"``, ``"30s"``, ``"10m"``, ``"1h"``, ``"7d"`` or ``"1h30m"``."""
    if isinstance(value, timedelta):
        return value
    text = value.strip() if isinstance(value, str) else ""
    parts = _PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f'expected a duration like "1h", got {value!r}')
    return sum((float(number) * _UNITS[unit] for number, unit in parts), timedelta())


def format_duration(value: timedelta) -> str:
    """The shortest duration string that parses back to ``value``."""
    milliseconds = round(value.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
