"""The refresh policy of a retrain channel: when an incident may start a retraining.

A retrain webhook starts expensive work, so a firing incident reaches it only when the
channel's ``policy`` lets it through, per model: not within ``cooldown`` of the model's
last retrain, not past ``daily_budget`` retrains in 24 hours, and only once its
conditions hold — the alert has held for ``min_windows`` windows, a performance or
estimated-performance alert of the model fires too (``require_performance``), enough of
the model's predictions have labels (``min_label_coverage``). An incident the policy holds
back is recorded (an outbox row ``suppressed``, with why) and tried again at every flush
of its group while it lasts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select

from driftwarden.alerts.config import RefreshPolicyConfig
from driftwarden.alerts.lifecycle import AlertState
from driftwarden.alerts.tables import alert_outbox
from driftwarden.core.durations import format_duration
from driftwarden.core.times import duration_ms

DAY = 86_400_000
_OUTCOMES = ("performance", "estimated_performance")


@dataclass(frozen=True)
class Verdict:
    """Whether the policy lets an incident through, why not, and what it checked."""

    allowed: bool
    reason: str
    checks: dict[str, Any]

    def payload(self, policy: RefreshPolicyConfig) -> dict[str, Any]:
        """The policy and its checks, as the retrain payload carries them."""
        return {
            "cooldown": format_duration(policy.cooldown),
            "min_windows": policy.min_windows,
            "require_performance": policy.require_performance,
            "min_label_coverage": policy.min_label_coverage,
            "daily_budget": policy.daily_budget,
            "checks": self.checks,
        }


def judge(
    policy: RefreshPolicyConfig,
    connection: Connection,
    channel: str,
    model: str,
    firing: Iterable[AlertState],
    model_alerts: Iterable[AlertState],
    now: int,
) -> Verdict:
    """Whether a firing incident of ``model`` (its ``firing`` alerts) may retrain now.

    ``model_alerts`` are all the model's alerts, whatever their group: they tell whether
    a performance alert fires and how many predictions have labels.
    """
    last, today = _retrains(connection, channel, model, now)
    streak = max((alert.streak for alert in firing), default=0)
    alerts = list(model_alerts)
    performance = any(
        alert.state == "firing" and alert.evidence.kind in _OUTCOMES for alert in alerts
    )
    coverage = _coverage(alerts)
    checks = {
        "windows_held": streak,
        "performance_alert_firing": performance,
        "label_coverage": coverage,
        "retrains_in_24h": today,
        "seconds_since_last_retrain": None if last is None else (now - last) / 1000,
    }
    reasons = []
    if last is not None and now - last < duration_ms(policy.cooldown):
        reasons.append(f"within the cooldown of {format_duration(policy.cooldown)}")
    if policy.daily_budget is not None and today >= policy.daily_budget:
        reasons.append(f"the daily budget of {policy.daily_budget} is spent")
    if streak < policy.min_windows:
        reasons.append(f"held for {streak} of {policy.min_windows} windows")
    if policy.require_performance and not performance:
        reasons.append("no performance alert of the model fires")
    if policy.min_label_coverage is not None and (
        coverage is None or coverage < policy.min_label_coverage
    ):
        shown = "unknown" if coverage is None else f"{coverage:.3f}"
        reasons.append(f"label coverage {shown} is below {policy.min_label_coverage}")
    return Verdict(not reasons, "; ".join(reasons), checks)


def _retrains(connection: Connection, channel: str, model: str, now: int) -> tuple[int | None, int]:
    """When the model's last retrain was queued, and how many were in the last 24 hours."""
    c = alert_outbox.c
    sent = and_(
        c.channel == channel,
        c.model == model,
        c.status == "firing",
        c.state.not_in(("suppressed", "failed")),
    )
    last, today = connection.execute(
        select(
            func.max(c.created_at),
            func.count().filter(c.created_at > now - DAY),
        ).where(sent)
    ).one()
    return last, int(today or 0)


def _coverage(alerts: list[AlertState]) -> float | None:
    """The largest share of labelled predictions any of the model's alerts last saw."""
    shares = [
        alert.evidence.n_labeled / alert.evidence.n_window
        for alert in alerts
        if alert.evidence.n_labeled is not None and alert.evidence.n_window
    ]
    return max(shares, default=None)
