"""PagerDuty Events API v2: trigger while an incident fires, resolve when it is over.

``dedup_key`` is ``driftwarden-<incident id>``: every trigger of one
incident (first, updates, repeats) lands on the same PagerDuty incident and
the resolve closes it. The routing key is added at send time, so the
outbox and ``replay`` output never hold it.
"""

from __future__ import annotations

import json
from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport, post
from driftwarden.alerts.config import AlertsConfig, PagerDutyChannel
from driftwarden.alerts.evidence import payload
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.alerts.templates import render_source, truncate
from driftwarden.core.times import format_optional

MAX_SUMMARY = 1024
MAX_DETAILS = 50


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
        context = notification.context()
        summary = render_source(self.templates.pagerduty_summary, "pagerduty_summary", context)
        top = notification.top
        links = [
            {"href": url, "text": text}
            for url, text in (
                (context["dashboard_url"], "Dashboard"),
                (context["runbook_url"], "Runbook"),
            )
            if url.startswith(("https://", "http://"))
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
