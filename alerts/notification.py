"""A group notification: the alerts one message tells a channel about, channel-neutral.

Channels turn it into their request body (``channels/``); templates see it
through ``context()``. Values taken from results (model and feature names)
are data here and are never compiled as templates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from driftwarden.alerts.links import page_links
from driftwarden.core.records import ResultRecord
from driftwarden.core.times import format_optional

State = Literal["firing", "resolved"]
SEVERITIES = ("critical", "error", "warning", "info")
ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")


def severity_rank(severity: str) -> int:
    """0 for critical up to 3 for info: sorts the most severe first."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def distance(evidence: ResultRecord) -> float | None:
    """How far past its threshold a result is, as a factor: 1 at the threshold, above 1 past it.

    ``value / threshold`` for direction ``above`` and ``threshold / value``
    for ``below``, when both are positive: a PSI of 0.5 over 0.2 is 2.5, an
    AUC of 0.35 under 0.7 is 2.

    In general, with ``a, b = value, threshold`` for ``above`` and
    ``a, b = -value, -threshold`` for ``below`` (so the condition is always
    ``a > b``), the factor is ``a / b`` if ``b > 0``, ``b / a`` if both are
    negative, and infinite if ``a`` is past a threshold of the other sign;
    a zero threshold gives infinity past it, 1 on it and 0 short of it. A
    missing or non-finite value or threshold, or another direction, gives
    ``None``. Equal factors (such as infinities) are ordered by ``margin``.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from driftwarden.alerts.templates import sample_alerts
    >>> psi = sample_alerts()[0].evidence
    >>> distance(replace(psi, value=0.5, threshold=0.2, direction="above"))
    2.5
    >>> distance(replace(psi, value=0.35, threshold=0.7, direction="below"))
    2.0
    >>> distance(replace(psi, value=0.0, threshold=0.7, direction="below"))
    inf
    >>> distance(replace(psi, value=-0.05, threshold=-0.1, direction="above"))
    2.0
    >>> distance(replace(psi, value=None)) is None
    True
    """
    value, threshold = evidence.value, evidence.threshold
    if value is None or threshold is None:
        return None
    if not (math.isfinite(value) and math.isfinite(threshold)):
        return None
    if evidence.direction == "above":
        a, b = value, threshold
    elif evidence.direction == "below":
        a, b = -value, -threshold
    else:
        return None
    if b > 0:
        return a / b
    if b < 0:
        return b / a if a < 0 else math.inf
    return math.inf if a > 0 else 1.0 if a == 0 else 0.0


def margin(evidence: ResultRecord) -> float | None:
    """How far past its threshold a result is, in the value's units (negative: not past it).

    ``value - threshold`` for direction ``above``, ``threshold - value`` for
    ``below``; ``None`` when ``distance`` is.
    """
    if distance(evidence) is None:
        return None
    assert evidence.value is not None and evidence.threshold is not None
    sign = 1.0 if evidence.direction == "above" else -1.0
    return sign * (evidence.value - evidence.threshold)


def rank(view: AlertView) -> tuple[Any, ...]:
    """The sort key of an alert in a notification: the ones on-call should see first, first.

    Firing before resolved; then the largest ``impact`` (the subject feature's share of
    its window's drift impact; 0 without one); then the greatest ``distance`` past the
    threshold, then the greatest ``margin`` (which orders alerts equally far
    by the factor, e.g. past a zero threshold); alerts without a distance
    (no value or threshold) after those with one; then the most severe; then
    rule, subject and fingerprint, so the order is total and stable.
    """
    far = distance(view.evidence)
    return (
        view.state != "firing",
        -(view.impact or 0.0),
        far is None,
        0.0 if far is None else -far,
        -(margin(view.evidence) or 0.0),
        severity_rank(view.severity),
        view.rule,
        view.evidence.subject,
        view.fingerprint,
    )


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
    impact: float | None = None

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
    policy: Mapping[str, Any] | None = None
    """What a retrain channel's refresh policy checked to let this notification through."""
    pages_url: str | None = None
    """Where the daemon's evidence pages are reached (``http.external_url``), if set."""

    @property
    def links(self) -> dict[str, str]:
        """The incident's page and its latest window's page (empty without ``pages_url``)."""
        latest = self.latest
        return page_links(self.pages_url, self.model, latest.window_index, self.incident_id)

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

    def ranked(self) -> Notification:
        """The notification with its alerts in ``rank`` order (channels that list only the
        first ones keep the top-ranked)."""
        return replace(self, alerts=tuple(sorted(self.alerts, key=rank)))

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
            "incident_url": self.links.get("incident", ""),
            "window_url": self.links.get("window", ""),
        }


def _comparison(value: float | None, threshold: float | None) -> str:
    if value is None or threshold is None:
        return "?"
    return ">" if value > threshold else "<" if value < threshold else "="
