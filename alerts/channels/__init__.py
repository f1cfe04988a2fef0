"""Channels: how a notification is rendered for, and delivered to, each kind of receiver."""

from __future__ import annotations

from collections.abc import Mapping

from driftwarden.alerts.channels.alertmanager import Alertmanager
from driftwarden.alerts.channels.base import Channel, SendResult, Transport
from driftwarden.alerts.channels.contracts import validate
from driftwarden.alerts.channels.log import Log
from driftwarden.alerts.channels.pagerduty import PagerDuty
from driftwarden.alerts.channels.slack import Slack
from driftwarden.alerts.channels.webhook import Retrain, Webhook, schema
from driftwarden.alerts.config import AlertsConfig

__all__ = ["Channel", "SendResult", "Transport", "build_channels", "schema", "validate"]

_TYPES: Mapping[str, type] = {
    "slack": Slack,
    "pagerduty": PagerDuty,
    "webhook": Webhook,
    "retrain": Retrain,
    "alertmanager": Alertmanager,
    "log": Log,
}


def build_channels(config: AlertsConfig) -> dict[str, Channel]:
    """A channel object per configured channel, by name."""
    return {
        name: _TYPES[channel.type](name, channel, config)
        for name, channel in config.channels.items()
    }
