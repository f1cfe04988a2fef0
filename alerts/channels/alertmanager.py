"""Alertmanager: push the group's alerts to ``/api/v2/alerts`` for teams that route there.

Firing alerts carry ``endsAt`` = now + 2 × ``repeat_interval``: driftwarden
re-sends them at least every ``repeat_interval``, so Alertmanager keeps them
active exactly while driftwarden does. Resolved alerts carry their
resolution time and Alertmanager resolves them.
"""

from __future__ import annotations

from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport, link_url, post
from driftwarden.alerts.config import AlertmanagerChannel, AlertsConfig
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.core.times import duration_ms, format_optional

ALERTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "The body of Alertmanager's POST /api/v2/alerts (postableAlerts)",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "string"},
            },
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "startsAt": {"type": ["string", "null"]},
            "endsAt": {"type": ["string", "null"]},
            "generatorURL": {"type": "string", "pattern": "^https?://"},
        },
    },
}
"""What ``render`` must produce: Alertmanager answers 400 to anything else."""


class Alertmanager:
    """An Alertmanager's API v2."""

    type = "alertmanager"
    once_per_incident = False

    def __init__(self, name: str, config: AlertmanagerChannel, alerts: AlertsConfig) -> None:
        self.name = name
        self.config = config
        self.hold = 2 * duration_ms(alerts.repeat_interval)

    def render(self, notification: Notification) -> list[dict[str, Any]]:
        alerts = []
        for alert in notification.alerts:
            context = alert.context()
            ends = (
                alert.ends_at if alert.state == "resolved" else notification.created_at + self.hold
            )
            item: dict[str, Any] = {
                "labels": {"alertname": alert.rule, **alert.labels},
                "annotations": {k: v for k, v in alert.annotations.items() if v},
                "startsAt": format_optional(alert.starts_at),
                "endsAt": format_optional(ends),
            }
            if url := link_url(context["dashboard_url"]):
                item["generatorURL"] = url
            alerts.append(item)
        return alerts

    def send(self, entry: OutboxEntry, transport: Transport) -> SendResult:
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        return post(transport, url, entry.body.encode())
