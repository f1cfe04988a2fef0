"""The outbox: every notification is a row, written in the transaction that decided it.

A row is ``pending`` until delivered (``delivered``) or given up
(``failed``: rejected by the receiver, too old, or its channel is gone; or
at once, when its body breaks its channel's contract);
``replay`` writes ``held`` rows, which are listed but never delivered; a
retrain a refresh policy holds back is a ``suppressed`` row, kept to be seen,
never delivered.
The pair (channel, idempotency key) is unique, so deciding the same
notification twice queues it once.

Claiming. A dispatcher claims due rows of a channel by setting a lease
(owner token and expiry) in one atomic ``UPDATE … WHERE id IN (SELECT …)``;
on PostgreSQL the inner select is ``FOR UPDATE SKIP LOCKED``, so concurrent
dispatchers pass over each other's rows instead of waiting, and once
committed the lease keeps the rows out of every other claim. SQLite runs
one writer at a time, so the same statement is atomic there. A row waits
while an earlier row of its group and channel is pending, so a resolve
never overtakes its trigger. A dispatcher that dies holding a lease loses
it when it expires; the rows are then claimed again (at-least-once).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, func, or_, select, update

from driftwarden.alerts.sql import insert_new
from driftwarden.alerts.tables import alert_outbox
from driftwarden.core.times import format_optional

OutboxState = Literal["pending", "held", "delivered", "failed", "suppressed"]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One notification to one channel and where its delivery stands (times in epoch ms)."""

    id: int
    channel: str
    channel_type: str
    idempotency_key: str
    group_key: str
    model: str
    status: str
    rules: tuple[str, ...]
    severity: str
    body: str
    created_at: int
    state: OutboxState
    attempts: int
    next_attempt_at: int
    delivered_at: int | None
    last_status: int | None
    last_error: str | None

    @property
    def payload(self) -> Any:
        """The request body as JSON data (secrets such as routing keys are added at send time)."""
        return json.loads(self.body)

    def to_replay(self) -> dict[str, Any]:
        """The line ``replay`` writes to ``alerts.jsonl``: when (event time) the notification
        would have been queued, and, if it would not have been sent, why."""
        line: dict[str, Any] = {
            "at": format_optional(self.created_at),
            "channel": self.channel,
            "idempotency_key": self.idempotency_key,
        }
        if self.state in ("suppressed", "failed"):
            line[self.state] = self.last_error
        return line | {"payload": self.payload}

    def to_json(self) -> dict[str, Any]:
        """The row for ``driftwarden alerts deliveries`` (body left out)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "channel_type": self.channel_type,
            "idempotency_key": self.idempotency_key,
            "model": self.model,
            "status": self.status,
            "rules": list(self.rules),
            "severity": self.severity,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": format_optional(self.created_at),
            "next_attempt_at": format_optional(self.next_attempt_at),
            "delivered_at": format_optional(self.delivered_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


def enqueue(
    connection: Connection,
    row: Mapping[str, Any],
    now: int,
    *,
    state: OutboxState = "pending",
    error: str | None = None,
) -> bool:
    """Queue a notification (``row`` has the descriptive columns); False if already queued.

    Only ``pending`` rows are delivered: ``held`` ones are ``replay``'s,
    ``failed`` ones have a body that cannot be sent (``error`` says why, e.g.
    ``channels.validate``'s message), ``suppressed`` ones a refresh policy held
    back (``error`` says why).
    """
    return insert_new(
        connection,
        alert_outbox,
        {
            **row,
            "rules": ",".join(row["rules"]),
            "created_at": now,
            "state": state,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": error,
        },
    )


def queued(connection: Connection, channel: str, key: str) -> bool:
    """Whether a notification with this idempotency key was queued for ``channel`` (in any
    state but ``suppressed``)."""
    c = alert_outbox.c
    query = select(c.id).where(c.channel == channel, c.idempotency_key == key)
    return connection.execute(query.where(c.state != "suppressed").limit(1)).first() is not None


def pending_notifications(connection: Connection) -> list[OutboxEntry]:
    """Every notification not delivered — waiting, held, suppressed or failed — in queuing
    order (``replay``'s ``alerts.jsonl``)."""
    states = ("pending", "held", "suppressed", "failed")
    query = select(alert_outbox).where(alert_outbox.c.state.in_(states))
    return _entries(connection, query.order_by(alert_outbox.c.id))


def deliveries(
    connection: Connection, *, failed_only: bool = False, limit: int | None = 100
) -> list[OutboxEntry]:
    """The most recent outbox rows, newest first; only given-up ones with ``failed_only``."""
    query = select(alert_outbox).order_by(alert_outbox.c.id.desc()).limit(limit)
    if failed_only:
        query = query.where(alert_outbox.c.state == "failed")
    return _entries(connection, query)


def backlog(connection: Connection) -> dict[str, tuple[int, int]]:
    """Per channel with pending rows: how many, and when the oldest was queued."""
    query = (
        select(alert_outbox.c.channel, func.count(), func.min(alert_outbox.c.created_at))
        .where(alert_outbox.c.state == "pending")
        .group_by(alert_outbox.c.channel)
    )
    return {channel: (count, oldest) for channel, count, oldest in connection.execute(query)}


def _claim_statement() -> Any:
    row, earlier = alert_outbox, alert_outbox.alias("earlier")
    head = (  # the oldest pending row of the row's group and channel (an index lookup)
        select(func.min(earlier.c.id))
        .where(
            earlier.c.channel == row.c.channel,
            earlier.c.group_key == row.c.group_key,
            earlier.c.state == "pending",
        )
        .scalar_subquery()
    )
    due = (
        select(row.c.id)
        .where(
            row.c.channel == bindparam("p_channel"),
            row.c.state == "pending",
            row.c.next_attempt_at <= bindparam("p_now"),
            or_(row.c.lease_until.is_(None), row.c.lease_until <= bindparam("p_now")),
            row.c.id == head,
        )
        .order_by(row.c.id)
        .limit(bindparam("p_limit"))
        .with_for_update(skip_locked=True, of=row)
    )
    return (
        update(row)
        .where(row.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_lease_until"))
        .returning(*row.c)
    )


_CLAIM = _claim_statement()


def claim(
    connection: Connection, channel: str, *, owner: str, now: int, lease_until: int, limit: int
) -> list[OutboxEntry]:
    """Lease up to ``limit`` due rows of ``channel`` to ``owner``; return them, oldest first."""
    parameters = {
        "p_channel": channel,
        "p_now": now,
        "p_limit": limit,
        "p_owner": owner,
        "p_lease_until": lease_until,
    }
    claimed = [_entry(item) for item in connection.execute(_CLAIM, parameters).mappings()]
    return sorted(claimed, key=lambda entry: entry.id)


def finish(connection: Connection, entry_id: int, owner: str, **values: Any) -> bool:
    """Record an attempt's outcome and drop the lease; False if the lease was lost meanwhile."""
    statement = (
        update(alert_outbox)
        .where(alert_outbox.c.id == entry_id, alert_outbox.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, **values)
    )
    return connection.execute(statement).rowcount == 1


def release(connection: Connection, entry_ids: Collection[int], owner: str) -> None:
    """Give back leased rows that were not attempted."""
    if entry_ids:
        connection.execute(
            update(alert_outbox)
            .where(alert_outbox.c.id.in_(list(entry_ids)), alert_outbox.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def fail_unrouted(connection: Connection, channels: Collection[str], now: int) -> Counter[str]:
    """Give up pending rows whose channel is no longer configured; how many per channel."""
    statement = (
        update(alert_outbox)
        .where(
            alert_outbox.c.state == "pending",
            alert_outbox.c.channel.not_in(list(channels)),
            or_(alert_outbox.c.lease_until.is_(None), alert_outbox.c.lease_until <= now),
        )
        .values(state="failed", last_error="channel is no longer configured")
        .returning(alert_outbox.c.channel)
    )
    return Counter(connection.scalars(statement))


def _entries(connection: Connection, query: Any) -> list[OutboxEntry]:
    return [_entry(row) for row in connection.execute(query).mappings()]


def _entry(row: Mapping[str, Any]) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        channel=row["channel"],
        channel_type=row["channel_type"],
        idempotency_key=row["idempotency_key"],
        group_key=row["group_key"],
        model=row["model"],
        status=row["status"],
        rules=tuple(row["rules"].split(",")) if row["rules"] else (),
        severity=row["severity"],
        body=row["body"],
        created_at=row["created_at"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
    )
