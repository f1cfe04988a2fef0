"""The notification pipeline of one due group: route → group → mute → dedup → outbox.

Each stage is a function with one signature, ``stage(flush, batch) -> batch``:
``Flush`` is what the flush knows (configuration, connection, time, muters,
what each channel was told before); ``Batch`` is the group's alerts as the
stages have decided so far. The engine loads a due group's alerts and runs
``STAGES`` over them in order, as Alertmanager's notification pipeline does.

- ``route``: which channels each alert goes to (its rule's, and any channel
  told about it earlier, so that channel hears the resolve).
- ``group``: per channel, the alerts its notification covers; channels no
  longer configured are dropped with what they were told.
- ``mute``: alerts an active silence or a firing inhibiting alert mutes.
- ``dedup``: per channel, whether the group tells it anything new (and the
  notification log after the flush).
- ``outbox``: the decided notifications, rendered and queued.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from driftwarden.alerts import outbox as outbox_rows
from driftwarden.alerts import store
from driftwarden.alerts.channels import Channel
from driftwarden.alerts.config import AlertsConfig
from driftwarden.alerts.dedup import Decision, LogEntry, decide
from driftwarden.alerts.lifecycle import AlertState
from driftwarden.alerts.mute import Muter
from driftwarden.alerts.notification import AlertView, Notification, severity_rank
from driftwarden.alerts.rules import Rule
from driftwarden.alerts.templates import ANNOTATION_DEFAULTS, render_source

_log = logging.getLogger("driftwarden.alerts")


@dataclass(frozen=True, slots=True)
class QueuedNotification:
    """A notification written to the outbox."""

    channel: str
    channel_type: str
    idempotency_key: str
    model: str
    status: str
    rules: tuple[str, ...]
    severity: str
    alerts: int


@dataclass(frozen=True)
class Flush:
    """What one group's flush knows besides its alerts."""

    config: AlertsConfig
    rules: Mapping[str, Rule]
    channels: Mapping[str, Channel]
    repeat_interval: int
    group: store.Group
    entries: Mapping[str, LogEntry]
    muters: Sequence[Muter]
    connection: Connection
    now: int
    deliver: bool


@dataclass(frozen=True)
class Batch:
    """The group's alerts (not pending) and what the stages decided about them."""

    alerts: Mapping[str, AlertState]
    routed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    covered: Mapping[str, tuple[AlertState, ...]] = field(default_factory=dict)
    muted: frozenset[str] = frozenset()
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    queued: tuple[QueuedNotification, ...] = ()


Stage = Callable[[Flush, Batch], Batch]


def route(flush: Flush, batch: Batch) -> Batch:
    """Each channel and the alerts routed to it: by their rules, or because it was told."""
    routed: dict[str, set[str]] = {}
    for fingerprint, alert in batch.alerts.items():
        rule = flush.rules.get(alert.rule)
        for channel in rule.channels if rule else ():
            routed.setdefault(channel, set()).add(fingerprint)
    for channel, entry in flush.entries.items():
        routed.setdefault(channel, set()).update(entry.notified & batch.alerts.keys())
    return replace(batch, routed={name: frozenset(fps) for name, fps in routed.items()})


def group(flush: Flush, batch: Batch) -> Batch:
    """Per configured channel, the group's alerts its notification covers (in a stable
    order); a channel that is no longer configured forgets what it was told."""
    covered = {}
    for channel in sorted(batch.routed):
        if channel in flush.channels:
            covered[channel] = tuple(batch.alerts[fp] for fp in sorted(batch.routed[channel]))
        elif channel in flush.entries:
            store.delete_log(flush.connection, flush.group.group_key, channel)
    return replace(batch, covered=covered)


def mute(flush: Flush, batch: Batch) -> Batch:
    """The alerts a silence or an inhibition mutes now."""
    muted = frozenset(
        fingerprint
        for fingerprint, alert in batch.alerts.items()
        if any(muter.mutes(fingerprint, alert.labels) for muter in flush.muters)
    )
    return replace(batch, muted=muted)


def dedup(flush: Flush, batch: Batch) -> Batch:
    """Per channel, whether the flush tells it anything new; keeps its notification log."""
    decisions = {}
    key = flush.group.group_key
    for channel, chosen in batch.covered.items():
        entry = flush.entries.get(channel)
        notified = entry.notified if entry else frozenset()
        decision = decide(
            entry,
            group_key=key,
            channel=channel,
            firing={
                a.fingerprint: a.since
                for a in chosen
                if a.state == "firing"
                and a.fingerprint not in batch.muted
                and (not a.stale or a.fingerprint in notified)
            },
            resolved=[
                a.fingerprint
                for a in chosen
                if a.state == "resolved" and a.fingerprint not in batch.muted
            ],
            gone={
                fp
                for fp in notified
                if fp not in batch.alerts or batch.alerts[fp].state == "resolved"
            },
            send_resolved=flush.config.send_resolved_for(channel),
            repeat_interval=flush.repeat_interval,
            now=flush.now,
        )
        if decision.entry is not None:
            store.save_log(flush.connection, decision.entry)
        elif entry is not None:
            store.delete_log(flush.connection, key, channel)
        decisions[channel] = decision
    return replace(batch, decisions=decisions)


def outbox(flush: Flush, batch: Batch) -> Batch:
    """Render every notification the dedup stage decided on and queue it in the outbox."""
    views: dict[tuple[str, str], AlertView] = {}
    queued = []
    for channel, decision in batch.decisions.items():
        if decision.send:
            item = _enqueue(flush, channel, decision, batch.alerts, views)
            queued += [item] if item else []
    return replace(batch, queued=tuple(queued))


STAGES: tuple[Stage, ...] = (route, group, mute, dedup, outbox)
"""The stages a due group's alerts pass, in order."""


def _enqueue(
    flush: Flush,
    name: str,
    decision: Decision,
    alerts: Mapping[str, AlertState],
    views: dict[tuple[str, str], AlertView],
) -> QueuedNotification | None:
    """Render the decided notification for channel ``name`` and write it to the outbox."""
    channel, due = flush.channels[name], flush.group
    status = "firing" if decision.firing else "resolved"
    if channel.once_per_incident:
        if status == "firing" and decision.seq > 1:
            return None
        key = f"dw-{decision.incident_id}-{status}"
    else:
        key = f"dw-{decision.incident_id}-{decision.seq}"
    listed = [(fp, "firing") for fp in decision.firing]
    listed += [(fp, "resolved") for fp in decision.resolved]
    for fp, state in listed:
        if (fp, state) not in views:
            views[fp, state] = _view(flush.rules, alerts[fp], state)
    shown = sorted(
        (views[item] for item in listed),
        key=lambda v: (v.state != "firing", severity_rank(v.severity), v.rule, v.evidence.subject),
    )
    notification = Notification(
        channel=name,
        idempotency_key=key,
        incident_id=decision.incident_id,
        group_key=due.group_key,
        group_labels=due.labels,
        status=status,
        model=due.model,
        alerts=tuple(shown),
        created_at=flush.now,
        started_at=decision.started_at,
    )
    body = json.dumps(channel.render(notification), ensure_ascii=False, separators=(",", ":"))
    row: dict[str, Any] = {
        "channel": name,
        "channel_type": channel.type,
        "idempotency_key": key,
        "group_key": due.group_key,
        "model": due.model,
        "status": status,
        "rules": notification.rules,
        "severity": notification.top.severity,
        "body": body,
    }
    if not outbox_rows.enqueue(flush.connection, row, flush.now, held=not flush.deliver):
        return None
    item = QueuedNotification(
        name,
        channel.type,
        key,
        due.model,
        status,
        tuple(notification.rules),
        notification.top.severity,
        len(shown),
    )
    _log.info(
        "notification queued: %s %s %s (%d alerts) for %s",
        status,
        due.model,
        ",".join(item.rules),
        item.alerts,
        name,
        extra={
            "event": "notification_queued",
            "channel": name,
            "idempotency_key": key,
            "model": due.model,
            "status": status,
            "rules": list(item.rules),
            "alerts": item.alerts,
        },
    )
    return item


def _view(rules: Mapping[str, Rule], alert: AlertState, state: str) -> AlertView:
    """The alert as notifications show it, with its rule's annotations rendered."""
    rule = rules.get(alert.rule)
    view = AlertView(
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        severity=alert.labels.get("severity", "info"),
        state="resolved" if state == "resolved" else "firing",
        model=alert.model,
        labels=alert.labels,
        evidence=alert.evidence,
        starts_at=alert.since,
        ends_at=alert.resolved_at if state == "resolved" else None,
    )
    sources = rule.config.annotations.resolved() if rule else dict(ANNOTATION_DEFAULTS)
    context = view.context()
    annotations = {
        name: render_source(source, f"annotations.{name}", context)
        for name, source in sources.items()
    }
    return replace(view, annotations=annotations)
