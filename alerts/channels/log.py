"""The log channel: a notification as one structured log line on ``driftwarden.alerts``."""

from __future__ import annotations

import logging
from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport
from driftwarden.alerts.config import AlertsConfig, LogChannel
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.alerts.templates import render_source

_log = logging.getLogger("driftwarden.alerts")


class Log:
    """Writes each notification to the log instead of the network."""

    type = "log"
    once_per_incident = False

    def __init__(self, name: str, config: LogChannel, alerts: AlertsConfig) -> None:
        self.name = name
        self.level = logging.getLevelNamesMapping()[config.level.upper()]
        self.templates = alerts.templates

    def render(self, notification: Notification) -> dict[str, Any]:
        context = notification.context()
        return {
            "message": render_source(self.templates.log_message, "log_message", context),
            "status": notification.status,
            "model": notification.model,
            "rules": context["rules"],
            "alerts": [
                {
                    "rule": a["rule"],
                    "subject": a["subject"],
                    "state": a["state"],
                    "summary": a["summary"],
                }
                for a in context["alerts"]
            ],
        }

    def send(self, entry: OutboxEntry, transport: Transport) -> SendResult:
        payload = entry.payload
        _log.log(
            self.level,
            "%s",
            payload["message"],
            extra={
                "event": "alert_notification",
                "channel": self.name,
                "idempotency_key": entry.idempotency_key,
                "status": payload["status"],
                "model": payload["model"],
                "rules": payload["rules"],
                "alerts": payload["alerts"],
            },
        )
        return SendResult(True)
