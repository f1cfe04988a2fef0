"""PagerDuty Events API v2: trigger while an incident fires, resolve when it is over.

``dedup_key`` is ``driftwarden-<incident id>``: every trigger of one
incident (first, updates, repeats) lands on the same PagerDuty incident and
the resolve closes it. The routing key is added at send time, so the
outbox and ``replay`` output never hold it. ``custom_details`` lists the
``MAX_DETAILS`` top-ranked firing alerts (``notification.rank``).
``EVENT_SCHEMA`` (the Events API v2 fields and limits) and ``MAX_BYTES``
check an event before it is queued.
"""

from __future__ import annotations

import json
from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport, link_url, post
from driftwarden.alerts.config import AlertsConfig, PagerDutyChannel
from driftwarden.alerts.evidence import payload
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.alerts.templates import render_source, truncate
from driftwarden.core.times import format_optional

MAX_SUMMARY = 1024
MAX_DETAILS = 50
MAX_DEDUP_KEY = 255
MAX_BYTES = 512 * 1024
"""PagerDuty refuses events larger than 512 KB."""

_STRING = {"type": "string"}

EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "A PagerDuty Events API v2 event as driftwarden queues it (without routing_key)",
    "type": "object",
    "required": ["event_action", "dedup_key"],
    "properties": {
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": MAX_DEDUP_KEY},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": _STRING,
                "component": {"type": ["string", "null"]},
                "group": {"type": ["string", "null"]},
                "class": {"type": ["string", "null"]},
                "custom_details": {"type": "object"},
            },
        },
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "properties": {
                    "href": {"type": "string", "pattern": "^https?://"},
                    "text": _STRING,
                },
            },
        },
        "client": _STRING,
    },
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
}
"""What ``render`` must produce: PagerDuty answers 400 to an event outside these rules."""


def dedup_key(incident_id: str) -> str:
    return f"driftwarden-{incident_id}"


class PagerDuty:
    """A PagerDuty service integration (Events API v2)."""

    type = "pagerduty"
    once_per_incident = False

    def __init__(self, name: str, config: PagerDutyChannel, alerts: AlertsConfig) -> None:
        self.name = name
        self.config = config
        self.templates = alerts.templates

    def render(self, notification: Notification) -> dict[str, Any]:
        key = dedup_key(notification.incident_id)
        if notification.status == "resolved":
            return {"event_action": "resolve", "dedup_key": key}
        notification = notification.ranked()
        context = notification.context()
        summary = render_source(self.templates.pagerduty_summary, "pagerduty_summary", context)
        top = notification.top
        links = [
            {"href": url, "text": text}
            for source, text in (
                (context["incident_url"], "Incident"),
                (context["window_url"], "Window"),
                (context["dashboard_url"], "Dashboard"),
                (context["runbook_url"], "Runbook"),
            )
            if (url := link_url(source))
        ]
        details = [
            {"summary": alert["summary"], **payload(alert_view.evidence), "rule": alert["rule"]}
            for alert, alert_view in zip(context["firing"], notification.firing, strict=True)
        ]
        return {
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": truncate(summary or f"{notification.model}: drift", MAX_SUMMARY),
                "source": notification.model,
                "severity": top.severity,
                "timestamp": format_optional(notification.created_at),
                "component": top.evidence.subject,
                "group": top.rule,
                "class": top.evidence.kind,
                "custom_details": {
                    "model": notification.model,
                    "model_version": context["model_version"],
                    "reference_id": context["reference_id"],
                    "rules": context["rules"],
                    "window_start": context["window_start"],
                    "window_end": context["window_end"],
                    "firing": details[:MAX_DETAILS],
                    "not_listed": max(0, len(details) - MAX_DETAILS),
                    "resolved": [alert["subject"] for alert in context["resolved"]],
                    "incident_id": notification.incident_id,
                },
            },
            "links": links,
            "client": "driftwarden",
        }

    def send(self, entry: OutboxEntry, transport: Transport) -> SendResult:
        body = {"routing_key": self.config.routing_key.get_secret_value(), **entry.payload}
        return post(transport, self.config.url, json.dumps(body).encode())
