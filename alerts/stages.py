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
- ``outbox``: the decided notifications, rendered, checked against their
  channel's contract and queued; a channel told once per incident (retrain)
  hears it when its refresh policy lets it through (``refresh``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from driftwarden.alerts import outbox as outbox_rows
from driftwarden.alerts import refresh, store
from driftwarden.alerts.channels import Channel, validate
from driftwarden.alerts.config import AlertsConfig
from driftwarden.alerts.dedup import Decision, LogEntry, decide
from driftwarden.alerts.lifecycle import AlertState
from driftwarden.alerts.mute import Muter
from driftwarden.alerts.notification import AlertView, Notification, rank
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
    pages_url: str | None = None
    impacts: Mapping[str, float] = field(default_factory=dict)


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
    """Render every notification the dedup stage decided on and queue it in the outbox; a
    channel that hears each incident once gets its firing notification when its refresh
    policy lets it through."""
    views: dict[tuple[str, str], AlertView] = {}
    queued = []
    for channel, decision in batch.decisions.items():
        if flush.channels[channel].once_per_incident:
            item = _once(flush, channel, decision, batch, views)
        elif decision.send:
            item = _enqueue(flush, channel, decision, batch.alerts, views)
        else:
            item = None
        queued += [item] if item else []
    return replace(batch, queued=tuple(queued))


STAGES: tuple[Stage, ...] = (route, group, mute, dedup, outbox)
"""The stages a due group's alerts pass, in order."""


def close_incident(
    flush: Flush, entry: LogEntry, alerts: Mapping[str, AlertState]
) -> QueuedNotification | None:
    """Tell ``entry``'s channel its incident is over, every alert it announced resolved:
    the configuration no longer groups or routes them as it did (a reload)."""
    told = sorted(fp for fp in entry.notified if fp in alerts)
    configured = entry.channel in flush.config.channels
    wanted = flush.config.send_resolved_for(entry.channel) if configured else True
    if not told or not wanted:
        return None
    over = {
        fp: alerts[fp]
        if alerts[fp].state == "resolved"
        else replace(alerts[fp], state="resolved", resolved_at=flush.now)
        for fp in told
    }
    decision = Decision(
        True,
        resolved=tuple(told),
        incident_id=entry.incident_id,
        started_at=entry.started_at,
        seq=entry.seq + 1,
    )
    views: dict[tuple[str, str], AlertView] = {}
    if flush.channels[entry.channel].once_per_incident:
        batch = Batch(over, routed={entry.channel: frozenset(told)})
        return _once(flush, entry.channel, decision, batch, views)
    return _enqueue(flush, entry.channel, decision, over, views)


def _once(
    flush: Flush,
    name: str,
    decision: Decision,
    batch: Batch,
    views: dict[tuple[str, str], AlertView],
) -> QueuedNotification | None:
    """A channel told once per incident (retrain): its firing notification when the
    refresh policy lets the incident through — judged again at every flush until then —
    and its resolve only if the firing one was queued."""
    entry = decision.entry
    incident = decision.incident_id or (entry.incident_id if entry else "")
    if not incident:
        return None
    fired = outbox_rows.queued(flush.connection, name, f"dw-{incident}-firing")
    if decision.send and not decision.firing:
        return _enqueue(flush, name, decision, batch.alerts, views) if fired else None
    firing = tuple(
        fp
        for fp in batch.routed.get(name, ())
        if batch.alerts[fp].state == "firing" and fp not in batch.muted
    )
    if fired or not firing or entry is None:
        return None
    attempt = Decision(
        True,
        firing=tuple(sorted(firing)),
        incident_id=incident,
        started_at=entry.started_at,
        seq=entry.seq,
    )
    policy = flush.config.refresh_policy(name)
    if policy is None:
        return _enqueue(flush, name, attempt, batch.alerts, views)
    model_alerts = store.alerts_of_models(flush.connection, {flush.group.model}).values()
    verdict = refresh.judge(
        policy,
        flush.connection,
        name,
        flush.group.model,
        [batch.alerts[fp] for fp in firing],
        model_alerts,
        flush.now,
    )
    if verdict.allowed:
        return _enqueue(flush, name, attempt, batch.alerts, views, verdict.payload(policy))
    _suppress(flush, name, attempt, batch.alerts, views, verdict.reason)
    return None


def _suppress(
    flush: Flush,
    name: str,
    decision: Decision,
    alerts: Mapping[str, AlertState],
    views: dict[tuple[str, str], AlertView],
    reason: str,
) -> None:
    """Record, once per incident, the firing notification a refresh policy held back."""
    notification = _notification(flush, name, decision, alerts, views)
    body = flush.channels[name].render(notification)
    row = _row(flush, name, notification, f"dw-{decision.incident_id}-suppressed", body)
    if outbox_rows.enqueue(flush.connection, row, flush.now, state="suppressed", error=reason):
        _log.info(
            "retrain held back for %s by %s's refresh policy: %s",
            flush.group.model,
            name,
            reason,
            extra={
                "event": "retrain_suppressed",
                "channel": name,
                "model": flush.group.model,
                "incident_id": decision.incident_id,
                "reason": reason,
            },
        )


def _enqueue(
    flush: Flush,
    name: str,
    decision: Decision,
    alerts: Mapping[str, AlertState],
    views: dict[tuple[str, str], AlertView],
    policy: Mapping[str, Any] | None = None,
) -> QueuedNotification | None:
    """Render the decided notification for channel ``name``, check it against the channel's
    contract and write it to the outbox (as ``failed`` if it breaks the contract)."""
    notification = _notification(flush, name, decision, alerts, views, policy)
    channel = flush.channels[name]
    body = channel.render(notification)
    error = validate(channel.type, body)
    row = _row(flush, name, notification, notification.idempotency_key, body)
    state = "failed" if error is not None else "pending" if flush.deliver else "held"
    if not outbox_rows.enqueue(flush.connection, row, flush.now, state=state, error=error):
        return None
    item = QueuedNotification(
        name,
        row["channel_type"],
        notification.idempotency_key,
        notification.model,
        notification.status,
        tuple(notification.rules),
        notification.top.severity,
        len(notification.alerts),
    )
    if error is not None:
        _log.error(
            "notification for %s not queued: its body breaks %s's contract: %s",
            notification.model,
            name,
            error,
            extra={
                "event": "alert_delivery_failed",
                "outcome": "rejected",
                "channel": name,
                "idempotency_key": item.idempotency_key,
                "error": error,
            },
        )
        return item
    _log.info(
        "notification queued: %s %s %s (%d alerts) for %s",
        item.status,
        item.model,
        ",".join(item.rules),
        item.alerts,
        name,
        extra={
            "event": "notification_queued",
            "channel": name,
            "idempotency_key": item.idempotency_key,
            "model": item.model,
            "status": item.status,
            "rules": list(item.rules),
            "alerts": item.alerts,
        },
    )
    return item


def _notification(
    flush: Flush,
    name: str,
    decision: Decision,
    alerts: Mapping[str, AlertState],
    views: dict[tuple[str, str], AlertView],
    policy: Mapping[str, Any] | None = None,
) -> Notification:
    """The notification a decision makes, its alerts ranked (the furthest past its
    threshold first)."""
    status = "firing" if decision.firing else "resolved"
    once = flush.channels[name].once_per_incident
    key = f"dw-{decision.incident_id}-{status if once else decision.seq}"
    listed = [(fp, "firing") for fp in decision.firing]
    listed += [(fp, "resolved") for fp in decision.resolved]
    for fp, state in listed:
        if (fp, state) not in views:
            views[fp, state] = _view(flush.rules, alerts[fp], state, flush.impacts)
    due = flush.group
    return Notification(
        channel=name,
        idempotency_key=key,
        incident_id=decision.incident_id,
        group_key=due.group_key,
        group_labels=due.labels,
        status=status,
        model=due.model,
        alerts=tuple(sorted((views[item] for item in listed), key=rank)),
        created_at=flush.now,
        started_at=decision.started_at,
        policy=policy,
        pages_url=flush.pages_url,
    )


def _row(
    flush: Flush, name: str, notification: Notification, key: str, body: Any
) -> dict[str, Any]:
    """The outbox row of a notification: its descriptive columns and rendered ``body``."""
    channel = flush.channels[name]
    return {
        "channel": name,
        "channel_type": channel.type,
        "idempotency_key": key,
        "group_key": notification.group_key,
        "model": notification.model,
        "status": notification.status,
        "rules": notification.rules,
        "severity": notification.top.severity,
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }


def _view(
    rules: Mapping[str, Rule], alert: AlertState, state: str, impacts: Mapping[str, float]
) -> AlertView:
    """The alert as notifications show it, with its rule's annotations rendered and the
    share of the model's drift impact its feature holds (``impacts``)."""
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
        impact=impacts.get(alert.evidence.feature or ""),
    )
    sources = rule.config.annotations.resolved() if rule else dict(ANNOTATION_DEFAULTS)
    context = view.context()
    annotations = {
        name: render_source(source, f"annotations.{name}", context)
        for name, source in sources.items()
    }
    return replace(view, annotations=annotations)
