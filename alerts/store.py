"""Reading and writing alert state, groups and the notification log on the caller's connection.

Nothing here commits: the engine runs inside the caller's transaction, so
alert state, the notification log and outbox rows commit together with the
results that caused them. Due groups are claimed ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so two daemons sharing a database never flush one group at
the same time.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update

from driftwarden.alerts.dedup import LogEntry
from driftwarden.alerts.evidence import from_state as evidence_from_state
from driftwarden.alerts.evidence import to_state as evidence_to_state
from driftwarden.alerts.lifecycle import AlertState
from driftwarden.alerts.sql import insert_new, upsert
from driftwarden.alerts.tables import (
    alert_groups,
    alert_notification_log,
    alert_states,
)


@dataclass(frozen=True, slots=True)
class Group:
    """An alert group and its timer."""

    group_key: str
    labels: Mapping[str, str]
    model: str
    next_flush_at: int
    created_at: int


def alerts_of_models(connection: Connection, models: Collection[str]) -> dict[str, AlertState]:
    """Every stored alert of ``models``, by fingerprint."""
    query = select(alert_states).where(alert_states.c.model.in_(list(models)))
    return {state.fingerprint: state for state in _states(connection, query)}


def alerts_of_group(connection: Connection, group_key: str) -> list[AlertState]:
    query = select(alert_states).where(alert_states.c.group_key == group_key)
    return _states(connection, query.order_by(alert_states.c.fingerprint))


def firing_alerts(connection: Connection) -> list[AlertState]:
    """Every firing alert (the sources inhibit rules look at)."""
    return _states(connection, select(alert_states).where(alert_states.c.state == "firing"))


def alerts_where(connection: Connection, *conditions: Any) -> list[AlertState]:
    return _states(connection, select(alert_states).where(*conditions))


def save_alerts(connection: Connection, states: Iterable[AlertState]) -> None:
    upsert(connection, alert_states, [_row(state) for state in states], ["fingerprint"])


def delete_alerts(connection: Connection, fingerprints: Collection[str]) -> None:
    if fingerprints:
        connection.execute(
            delete(alert_states).where(alert_states.c.fingerprint.in_(list(fingerprints)))
        )


def alert_counts(connection: Connection) -> dict[tuple[str, str], int]:
    """Stored alerts per (rule, state)."""
    query = select(alert_states.c.rule, alert_states.c.state, func.count()).group_by(
        alert_states.c.rule, alert_states.c.state
    )
    return {(rule, state): count for rule, state, count in connection.execute(query)}


def ensure_group(connection: Connection, group: Group) -> None:
    """Create ``group`` unless it exists (an existing group keeps its timer)."""
    insert_new(
        connection,
        alert_groups,
        {
            "group_key": group.group_key,
            "labels": json.dumps(dict(group.labels), sort_keys=True),
            "model": group.model,
            "next_flush_at": group.next_flush_at,
            "created_at": group.created_at,
        },
    )


def next_due(connection: Connection) -> int | None:
    """When the next group's timer expires (``None``: no group waits)."""
    return connection.execute(select(func.min(alert_groups.c.next_flush_at))).scalar()


def due_groups(connection: Connection, now: int) -> list[Group]:
    """Groups whose timer has expired, claimed for this transaction."""
    query = (
        select(alert_groups)
        .where(alert_groups.c.next_flush_at <= now)
        .order_by(alert_groups.c.next_flush_at, alert_groups.c.group_key)
        .with_for_update(skip_locked=True)
    )
    return [_group(row) for row in connection.execute(query).mappings()]


def schedule_group(connection: Connection, group_key: str, next_flush_at: int) -> None:
    connection.execute(
        update(alert_groups)
        .where(alert_groups.c.group_key == group_key)
        .values(next_flush_at=next_flush_at)
    )


def delete_group(connection: Connection, group_key: str) -> None:
    connection.execute(delete(alert_groups).where(alert_groups.c.group_key == group_key))


def log_entries(connection: Connection, group_key: str) -> dict[str, LogEntry]:
    """The notification log of a group, by channel."""
    query = select(alert_notification_log).where(alert_notification_log.c.group_key == group_key)
    return {entry.channel: entry for entry in _log(connection, query)}


def open_incidents(connection: Connection) -> list[LogEntry]:
    """Every channel's open incident of every group (the whole notification log)."""
    log = alert_notification_log.c
    return _log(connection, select(alert_notification_log).order_by(log.group_key, log.channel))


def group(connection: Connection, group_key: str) -> Group | None:
    row = (
        connection.execute(select(alert_groups).where(alert_groups.c.group_key == group_key))
        .mappings()
        .first()
    )
    return None if row is None else _group(row)


def delete_empty_groups(connection: Connection) -> None:
    """Groups without alerts and without an open incident (left behind by a regrouping)."""
    alerts = select(alert_states.c.group_key)
    told = select(alert_notification_log.c.group_key)
    connection.execute(
        delete(alert_groups).where(
            alert_groups.c.group_key.not_in(alerts), alert_groups.c.group_key.not_in(told)
        )
    )


def save_log(connection: Connection, entry: LogEntry) -> None:
    row = {
        "group_key": entry.group_key,
        "channel": entry.channel,
        "incident_id": entry.incident_id,
        "started_at": entry.started_at,
        "notified": json.dumps(sorted(entry.notified)),
        "seq": entry.seq,
        "last_sent_at": entry.last_sent_at,
    }
    upsert(connection, alert_notification_log, [row], ["group_key", "channel"])


def delete_log(connection: Connection, group_key: str, channel: str) -> None:
    connection.execute(
        delete(alert_notification_log).where(
            and_(
                alert_notification_log.c.group_key == group_key,
                alert_notification_log.c.channel == channel,
            )
        )
    )


def _group(row: Mapping[str, Any]) -> Group:
    return Group(
        group_key=row["group_key"],
        labels=json.loads(row["labels"]),
        model=row["model"],
        next_flush_at=row["next_flush_at"],
        created_at=row["created_at"],
    )


def _log(connection: Connection, query: Any) -> list[LogEntry]:
    return [
        LogEntry(
            group_key=row["group_key"],
            channel=row["channel"],
            incident_id=row["incident_id"],
            started_at=row["started_at"],
            notified=frozenset(json.loads(row["notified"])),
            seq=row["seq"],
            last_sent_at=row["last_sent_at"],
        )
        for row in connection.execute(query).mappings()
    ]


def _states(connection: Connection, query: Any) -> list[AlertState]:
    return [_state(row) for row in connection.execute(query).mappings()]


def _state(row: Mapping[str, Any]) -> AlertState:
    return AlertState(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        model=row["model"],
        labels=json.loads(row["labels"]),
        group_key=row["group_key"],
        state=row["state"],
        streak=row["streak"],
        prior_streak=row["prior_streak"],
        quiet=row["quiet"],
        prior_quiet=row["prior_quiet"],
        last_seen_at=row["last_seen_at"],
        last_window_index=row["last_window_index"],
        since=row["since"],
        fired_at=row["fired_at"],
        resolved_at=row["resolved_at"],
        stale=row["stale"],
        evidence=evidence_from_state(json.loads(row["evidence"]), row["model"]),
        updated_at=row["updated_at"],
    )


def _row(state: AlertState) -> dict[str, Any]:
    return {
        "fingerprint": state.fingerprint,
        "rule": state.rule,
        "model": state.model,
        "labels": json.dumps(dict(state.labels), sort_keys=True),
        "group_key": state.group_key,
        "state": state.state,
        "streak": state.streak,
        "prior_streak": state.prior_streak,
        "quiet": state.quiet,
        "prior_quiet": state.prior_quiet,
        "last_seen_at": state.last_seen_at,
        "last_window_index": state.last_window_index,
        "since": state.since,
        "fired_at": state.fired_at,
        "resolved_at": state.resolved_at,
        "stale": state.stale,
        "evidence": json.dumps(evidence_to_state(state.evidence)),
        "updated_at": state.updated_at,
    }
