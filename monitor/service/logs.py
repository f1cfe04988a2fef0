"""Log lines: one JSON object per event, or plain text on a terminal.

Code logs with the standard ``logging`` module and names the event and its
fields in ``extra``: ``log.info("window closed", extra={"event": "window_closed",
"model": "m", ...})``. The JSON form carries every extra field.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Any

import orjson

from driftwarden.core.times import format_time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of a log record."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "event", ...extra}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": format_time(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extra = " ".join(
            f"{key}={value}" for key, value in fields(record).items() if key != "event"
        )
        text = f"{moment} {record.levelname.lower():<7} {record.getMessage()}"
        if extra:
            text = f"{text}  {extra}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def configure(json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Log to stderr: JSON lines unless stderr is a terminal (or ``json_lines`` says)."""
    as_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger("driftwarden")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
