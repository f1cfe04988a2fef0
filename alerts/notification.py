"""A group notification: the alerts one message tells a channel about, channel-neutral.

Channels turn it into their request body (``channels/``); templates see it
through ``context()``. Values taken from results (model and feature names)
are data here and are never compiled as templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from driftwarden.core.records import ResultRecord
from driftwarden.core.times import format_optional

State = Literal["firing", "resolved"]
SEVERITIES = ("critical", "error", "warning", "info")
ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")


def severity_rank(severity: str) -> int:
    """0 for critical up to 3 for info: sorts the most severe first."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as a notification shows it."""

    fingerprint: str
    rule: str
    severity: str
    state: State
    model: str
    labels: Mapping[str, str]
    evidence: ResultRecord
    starts_at: int
    ends_at: int | None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """The variables of the alert for templates (annotations included once rendered)."""
        evidence = self.evidence
        return {
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "model": self.model,
            "model_version": evidence.model_version,
            "reference_id": evidence.reference_id,
            "kind": evidence.kind,
            "detector": evidence.detector,
            "feature": evidence.feature,
            "metric": evidence.metric,
            "group_attribute": evidence.group_attribute,
            "subject": evidence.subject,
            "value": evidence.value,
            "threshold": evidence.threshold,
            "direction": evidence.direction,
            "comparison": _comparison(evidence.value, evidence.threshold),
            "p_value": evidence.p_value,
            "window_start": format_optional(evidence.window_start),
            "window_end": format_optional(evidence.window_end),
            "window_index": evidence.window_index,
            "n_window": evidence.n_window,
            "n_reference": evidence.n_reference,
            "n_labeled": evidence.n_labeled,
            "since": format_optional(self.starts_at),
            "ends_at": format_optional(self.ends_at),
            "labels": dict(self.labels),
            **{name: self.annotations.get(name, "") for name in ANNOTATIONS},
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """What one message to one channel says about one alert group."""

    channel: str
    idempotency_key: str
    incident_id: str
    group_key: str
    group_labels: Mapping[str, str]
    status: State
    model: str
    alerts: tuple[AlertView, ...]
    created_at: int
    started_at: int

    @property
    def firing(self) -> tuple[AlertView, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "firing")

    @property
    def resolved(self) -> tuple[AlertView, ...]:
        return tuple(alert for alert in self.alerts if alert.state == "resolved")

    @property
    def top(self) -> AlertView:
        """The alert that speaks for the group: the most severe firing one, else the first."""
        return min(self.firing or self.alerts, key=lambda a: severity_rank(a.severity))

    @property
    def latest(self) -> ResultRecord:
        """The evidence of the most recent window (its model version and reference)."""
        return max((alert.evidence for alert in self.alerts), key=lambda e: e.window_end)

    @property
    def rules(self) -> list[str]:
        return sorted({alert.rule for alert in self.alerts})

    def context(self) -> dict[str, Any]:
        """The variables of the notification for templates."""
        alerts = [alert.context() for alert in self.alerts]
        latest, top = self.latest, self.top
        return {
            "status": self.status,
            "model": self.model,
            "model_version": latest.model_version,
            "reference_id": latest.reference_id,
            "severity": top.severity,
            "rules": self.rules,
            "alerts": alerts,
            "firing": [alert for alert in alerts if alert["state"] == "firing"],
            "resolved": [alert for alert in alerts if alert["state"] == "resolved"],
            "window_start": format_optional(min(a.evidence.window_start for a in self.alerts)),
            "window_end": format_optional(max(a.evidence.window_end for a in self.alerts)),
            "group_labels": dict(self.group_labels),
            "incident_id": self.incident_id,
            "started_at": format_optional(self.started_at),
            "runbook_url": top.annotations.get("runbook_url", ""),
            "dashboard_url": top.annotations.get("dashboard_url", ""),
        }


def _comparison(value: float | None, threshold: float | None) -> str:
    if value is None or threshold is None:
        return "?"
    return ">" if value > threshold else "<" if value < threshold else "="
