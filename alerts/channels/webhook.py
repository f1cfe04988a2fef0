"""Signed JSON webhooks: the generic ``webhook.v1`` and the retrain pipeline's ``retrain.v1``.

Both are signed per Standard Webhooks, with ``webhook-id`` = the
notification's idempotency key (the same on every retry), and validate
against the JSON Schemas in ``alerts/schemas/``. The generic webhook hears
every notification of an incident (first, updates, repeats, resolve); the
retrain webhook hears an incident once when it fires
(``<incident>-firing``) and once when it is resolved (``<incident>-resolved``),
so a pipeline retrains once per incident.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport, post
from driftwarden.alerts.config import AlertsConfig, RetrainChannel, WebhookChannel
from driftwarden.alerts.evidence import payload
from driftwarden.alerts.notification import AlertView, Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.alerts.signing import headers
from driftwarden.core.times import format_optional

WEBHOOK_SCHEMA = "driftwarden.webhook.v1"
RETRAIN_SCHEMA = "driftwarden.retrain.v1"


@cache
def schema(name: str) -> dict[str, Any]:
    """A payload schema shipped in ``alerts/schemas/`` (``retrain.v1``, ``webhook.v1``)."""
    text = resources.files("driftwarden.alerts").joinpath("schemas", f"{name}.json").read_text()
    return json.loads(text)


class _Signed:
    """Delivery shared by both webhooks: the stored body, signed with every secret."""

    def __init__(
        self, name: str, config: WebhookChannel | RetrainChannel, alerts: AlertsConfig
    ) -> None:
        self.name = name
        self.config = config

    def send(self, entry: OutboxEntry, transport: Transport) -> SendResult:
        body = entry.body.encode()
        secrets = [secret.get_secret_value() for secret in self.config.secrets]
        signed = headers(secrets, entry.idempotency_key, transport.now // 1000, body)
        return post(transport, self.config.url, body, {**self.config.headers, **signed})


class Webhook(_Signed):
    """A generic webhook receiver (``webhook.v1``)."""

    type = "webhook"
    once_per_incident = False

    def render(self, notification: Notification) -> dict[str, Any]:
        context = notification.context()
        return {
            "schema": WEBHOOK_SCHEMA,
            "idempotency_key": notification.idempotency_key,
            "incident_id": notification.incident_id,
            "status": notification.status,
            "model": notification.model,
            "model_version": context["model_version"],
            "reference_id": context["reference_id"],
            "group_labels": dict(notification.group_labels),
            "started_at": format_optional(notification.started_at),
            "created_at": format_optional(notification.created_at),
            "alerts": [_alert(alert) for alert in notification.alerts],
        } | _links(notification)


class Retrain(_Signed):
    """The retrain pipeline's webhook (``retrain.v1``)."""

    type = "retrain"
    once_per_incident = True

    def render(self, notification: Notification) -> dict[str, Any]:
        context = notification.context()
        top = notification.top
        alerts = notification.alerts
        resolved = [a.ends_at for a in alerts if a.ends_at is not None]
        return {
            "schema": RETRAIN_SCHEMA,
            "idempotency_key": notification.idempotency_key,
            "incident_id": notification.incident_id,
            "state": notification.status,
            "model": notification.model,
            "model_version": context["model_version"],
            "reference_id": context["reference_id"],
            "rule": {"name": top.rule, "severity": top.severity},
            "window": {
                "start": context["window_start"],
                "end": context["window_end"],
                "first_index": min(a.evidence.window_index for a in alerts),
                "last_index": max(a.evidence.window_index for a in alerts),
            },
            "evidence": [_evidence(alert) for alert in alerts],
            "started_at": format_optional(notification.started_at),
            "resolved_at": format_optional(max(resolved))
            if notification.status == "resolved"
            else None,
            "created_at": format_optional(notification.created_at),
            "policy": None if notification.policy is None else dict(notification.policy),
        } | _links(notification)


def _links(notification: Notification) -> dict[str, Any]:
    """``links`` (the incident's and window's pages) when the pages' address is known."""
    links = notification.links
    return {"links": links} if links else {}


def _alert(alert: AlertView) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.state,
        "rule": alert.rule,
        "severity": alert.severity,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": format_optional(alert.starts_at),
        "ends_at": format_optional(alert.ends_at),
        "evidence": payload(alert.evidence),
    }


def _evidence(alert: AlertView) -> dict[str, Any]:
    evidence = alert.evidence
    return {
        "rule": alert.rule,
        "state": alert.state,
        "kind": evidence.kind,
        "detector": evidence.detector,
        "feature": evidence.feature,
        "metric": evidence.metric,
        "group_attribute": evidence.group_attribute,
        "value": evidence.value,
        "threshold": evidence.threshold,
        "direction": evidence.direction,
        "p_value": evidence.p_value,
        "window_start": format_optional(evidence.window_start),
        "window_end": format_optional(evidence.window_end),
        "window_index": evidence.window_index,
        "n_reference": evidence.n_reference,
        "n_window": evidence.n_window,
        "n_labeled": evidence.n_labeled,
        "since": format_optional(alert.starts_at),
        "resolved_at": format_optional(alert.ends_at),
        "model_version": evidence.model_version,
        "champion_version": evidence.champion_version,
        "ci_low": evidence.ci_low,
        "ci_high": evidence.ci_high,
    }
