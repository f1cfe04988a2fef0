"""Alerting metrics, on a registry the caller passes in (never the global one).

Label values come only from the configuration (rule and channel names,
severities, states, outcomes), never from results or events.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from driftwarden.alerts.config import AlertsConfig

ALERT_STATES = ("pending", "firing")
OUTCOMES = ("sent", "retry", "rejected", "unauthorized", "expired")
"""``sent``: delivered; ``retry``: failed, will be retried; ``rejected``: failed with a
final answer (4xx other than 401/403/408/429), or a body that breaks its channel's
contract; ``unauthorized``: 401/403 until ``dispatcher.AUTH_ATTEMPTS`` attempts;
``expired``: given up after ``max_attempts`` or ``max_age``, or its channel is no
longer configured."""


class AlertMetrics:
    """The alerting series of the metrics table (docs/metrics.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._series: dict[Gauge, set[tuple[str, ...]]] = {}
        self.alerts = Gauge(
            "driftwarden_alerts",
            "Alerts by rule, severity and state (pending, firing).",
            ["rule", "severity", "state"],
            registry=registry,
        )
        self.notifications = Counter(
            "driftwarden_notifications",
            "Delivery attempts by channel and outcome "
            "(sent, retry, rejected, unauthorized, expired).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "driftwarden_outbox_pending",
            "Notifications waiting in the outbox.",
            ["channel"],
            registry=registry,
        )
        self.oldest = Gauge(
            "driftwarden_outbox_oldest_pending_seconds",
            "Age of the oldest notification waiting in the outbox (0 if none).",
            ["channel"],
            registry=registry,
        )
        self.delivery = Histogram(
            "driftwarden_notification_delivery_seconds",
            "Duration of one delivery attempt: request sent to response read.",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )

    def withdraw(self) -> None:
        """Stop exporting the gauges read from the database (another instance of the fleet
        exports them)."""
        for gauge in (self.alerts, self.pending, self.oldest):
            gauge.clear()
        self._series.clear()

    def count(self, channel: str, outcome: str, amount: int = 1) -> None:
        self.notifications.labels(channel, outcome).inc(amount)

    def refresh(
        self,
        config: AlertsConfig,
        counts: Mapping[tuple[str, str], int],
        backlog: Mapping[str, tuple[int, int]],
        now: int,
    ) -> None:
        """Set the gauges from the database's alert counts and outbox backlog.

        Series of rules and channels no longer configured (and with nothing
        pending) are removed.
        """
        alerts = {
            (rule.name, rule.severity, state): counts.get((rule.name, state), 0)
            for rule in config.rules
            for state in ALERT_STATES
        }
        channels = set(config.channels) | set(backlog)
        pending = {(c,): backlog.get(c, (0, now))[0] for c in channels}
        oldest = {(c,): max(0.0, (now - backlog.get(c, (0, now))[1]) / 1000) for c in channels}
        for gauge, values in (
            (self.alerts, alerts),
            (self.pending, pending),
            (self.oldest, oldest),
        ):
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
            for labels in self._series.get(gauge, set()) - values.keys():
                gauge.remove(*labels)
            self._series[gauge] = set(values)
