"""``driftwarden silence add|list|expire`` and ``driftwarden alerts deliveries``.

Silences and the outbox live in the configuration's database; these
commands find it through ``--config`` and delegate to ``driftwarden.alerts``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from driftwarden.alerts import (
    AlertsError,
    Matcher,
    add_silence,
    deliveries,
    expire_silence,
    list_silences,
    parse_duration,
    parse_matcher,
)
from driftwarden.core.times import to_ms
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.errors import InputError


def add_commands(subparsers: Any) -> None:
    """Register ``silence`` and ``alerts`` on the ``driftwarden`` command's subparsers (which
    give ``--config`` its default, ``$DRIFTWARDEN_CONFIG``, and require one of the two)."""
    silence = subparsers.add_parser("silence", help="mute matching alerts for a while")
    actions = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="add a silence",
        description="Mute alerts whose labels match every MATCHER (name=value, name!=value, "
        "name=~regex, name!~regex), e.g. model=credit-default feature=~inc.*",
    )
    add.add_argument("--config", type=Path)
    add.add_argument("matchers", nargs="+", type=_matcher, metavar="MATCHER")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--duration", type=_duration, help='how long, e.g. "2h"')
    end.add_argument("--until", type=_time, help="an RFC 3339 time, e.g. 2026-11-27T08:00:00Z")
    add.add_argument("--author", default=_user(), help="default: the current user")
    add.add_argument("--comment", required=True, help="why, for whoever reads the list")
    add.set_defaults(handler=_silence_add)

    listing = actions.add_parser("list", help="list silences that have not expired")
    listing.add_argument("--config", type=Path)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    listing.set_defaults(handler=_silence_list)

    expire = actions.add_parser("expire", help="end silences now")
    expire.add_argument("--config", type=Path)
    expire.add_argument("ids", nargs="+", metavar="ID")
    expire.set_defaults(handler=_silence_expire)

    alerts = subparsers.add_parser("alerts", help="alert notifications")
    alert_actions = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    shown = alert_actions.add_parser(
        "deliveries", help="print notifications and their delivery, newest first"
    )
    shown.add_argument("--config", type=Path)
    shown.add_argument("--failed", action="store_true", help="only those given up on")
    shown.add_argument("--limit", type=int, default=50)
    shown.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    shown.set_defaults(handler=_deliveries)


def _silence_add(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    ends_at = now + args.duration if args.duration is not None else args.until
    with _connection(args.config, write=True) as connection:
        try:
            silence = add_silence(
                connection,
                args.matchers,
                ends_at=ends_at,
                author=args.author,
                comment=args.comment,
                now=now,
            )
        except AlertsError as exc:
            raise InputError(str(exc)) from None
    print(silence.id)
    return 0


def _silence_list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    with _connection(args.config) as connection:
        silences = list_silences(connection, now, include_expired=args.all)
    rows = [silence.to_json(to_ms(now)) for silence in silences]
    if args.json:
        _json_lines(rows)
        return 0
    columns = ("id", "state", "ends_at", "author", "matchers", "comment")
    _table([{**row, "matchers": " ".join(row["matchers"])} for row in rows], columns)
    return 0


def _silence_expire(args: argparse.Namespace) -> int:
    with _connection(args.config, write=True) as connection:
        for silence_id in args.ids:
            try:
                expire_silence(connection, silence_id, datetime.now(UTC))
            except AlertsError as exc:
                raise InputError(str(exc)) from None
    print(f"expired {len(args.ids)} silence(s)")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    with _connection(args.config) as connection:
        entries = deliveries(connection, failed_only=args.failed, limit=args.limit)
    rows = [entry.to_json() for entry in entries]
    if args.json:
        _json_lines(rows)
        return 0
    columns = ("id", "created_at", "channel", "model", "status", "state", "attempts", "last_error")
    _table(rows, columns)
    return 0


@contextmanager
def _connection(config_path: Path, *, write: bool = False) -> Iterator[Connection]:
    """A connection to the configuration's database (a transaction when writing)."""
    url = configuration.load(config_path).storage.url
    engine = storage.create(url)
    try:
        storage.require_current(engine, f"driftwarden db upgrade --config {config_path}")
        with engine.begin() if write else engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _matcher(text: str) -> Matcher:
    try:
        return parse_matcher(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> Any:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value.total_seconds() <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return value


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time like 2026-11-27T08:00:00Z, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _json_lines(rows: list[dict[str, Any]]) -> None:
    out = sys.stdout.buffer
    for row in rows:
        out.write(orjson.dumps(row) + b"\n")
    out.flush()


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row[column]) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for line in cells:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:59] + "…"
