"""Silences: matchers that mute alerts until an end time, kept in the database.

``driftwarden silence add|list|expire`` calls these functions; tests do too.
Each takes the caller's connection and commits nothing itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from driftwarden.alerts.errors import SilenceError
from driftwarden.alerts.matchers import Matcher, matches_all, parse_matcher
from driftwarden.alerts.tables import alert_silences
from driftwarden.core.times import format_optional, to_ms


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes every alert whose labels satisfy all ``matchers`` from ``starts_at`` to ``ends_at``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    author: str
    comment: str
    created_at: int

    def state(self, now: int) -> Literal["pending", "active", "expired"]:
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    def to_json(self, now: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(matcher) for matcher in self.matchers],
            "starts_at": format_optional(self.starts_at),
            "ends_at": format_optional(self.ends_at),
            "author": self.author,
            "comment": self.comment,
            "state": self.state(now),
        }


def add_silence(
    connection: Connection,
    matchers: Sequence[Matcher | str],
    *,
    ends_at: datetime,
    author: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
) -> Silence:
    """Store a new silence; it mutes from ``starts_at`` (default ``now``) until ``ends_at``.

    At least one matcher must need a non-empty label value, so that no
    silence can mute every alert by accident.
    """
    parsed = tuple(parse_matcher(matcher) for matcher in matchers)
    if not any(not matcher.matches({}) for matcher in parsed):
        raise SilenceError(
            "a silence needs at least one matcher that an empty label does not satisfy "
            "(e.g. model=credit-default)"
        )
    start = to_ms(starts_at or now)
    end = to_ms(ends_at)
    if end <= max(start, to_ms(now)):
        raise SilenceError("the silence would end before it starts (or in the past)")
    if not author.strip() or not comment.strip():
        raise SilenceError("a silence needs an author and a comment")
    silence = Silence(str(uuid.uuid4()), parsed, start, end, author, comment, to_ms(now))
    connection.execute(
        alert_silences.insert().values(
            id=silence.id,
            matchers=json.dumps([str(matcher) for matcher in parsed]),
            starts_at=start,
            ends_at=end,
            author=author,
            comment=comment,
            created_at=silence.created_at,
        )
    )
    return silence


def list_silences(
    connection: Connection, now: datetime, *, include_expired: bool = False
) -> list[Silence]:
    """Silences that have not expired (or all of them), oldest first."""
    query = select(alert_silences).order_by(alert_silences.c.created_at, alert_silences.c.id)
    if not include_expired:
        query = query.where(alert_silences.c.ends_at > to_ms(now))
    return [_silence(row) for row in connection.execute(query).mappings()]


def active_silences(connection: Connection, now: int) -> list[Silence]:
    """Silences muting at ``now`` (epoch milliseconds)."""
    query = select(alert_silences).where(
        alert_silences.c.starts_at <= now, alert_silences.c.ends_at > now
    )
    return [_silence(row) for row in connection.execute(query).mappings()]


def expire_silence(connection: Connection, silence_id: str, now: datetime) -> Silence:
    """End a silence now; an unknown id or an already expired silence is an error."""
    row = (
        connection.execute(select(alert_silences).where(alert_silences.c.id == silence_id))
        .mappings()
        .first()
    )
    if row is None:
        raise SilenceError(f"no silence with id {silence_id!r}")
    silence = _silence(row)
    moment = to_ms(now)
    if silence.state(moment) == "expired":
        raise SilenceError(f"silence {silence_id} has already expired")
    expired = replace(silence, starts_at=min(silence.starts_at, moment), ends_at=moment)
    connection.execute(
        update(alert_silences)
        .where(alert_silences.c.id == silence_id)
        .values(starts_at=expired.starts_at, ends_at=expired.ends_at)
    )
    return expired


def _silence(row: Mapping[str, Any]) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(parse_matcher(text) for text in json.loads(row["matchers"])),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        author=row["author"],
        comment=row["comment"],
        created_at=row["created_at"],
    )
