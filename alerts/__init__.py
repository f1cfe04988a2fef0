"""driftwarden's alerting: rules, alert lifecycle, grouping, silences, channels, durable delivery.

The daemon builds an ``AlertEngine`` from ``AlertsConfig`` and calls
``evaluate`` with each batch's results and ``tick`` on a timer, inside the
transaction that stores the results; a ``Dispatcher`` delivers the outbox
after commit. See docs/alerting.md.
"""

from driftwarden.alerts.channels import SendResult, schema
from driftwarden.alerts.config import AlertsConfig, InhibitRuleConfig, RuleConfig
from driftwarden.alerts.dispatcher import Dispatcher
from driftwarden.alerts.engine import AlertEngine, EvaluationReport, Transition
from driftwarden.alerts.errors import AlertsError, MatcherError, SilenceError, TemplateError
from driftwarden.alerts.matchers import Matcher, parse_matcher
from driftwarden.alerts.outbox import OutboxEntry, deliveries, pending_notifications
from driftwarden.alerts.silences import Silence, add_silence, expire_silence, list_silences
from driftwarden.alerts.stages import QueuedNotification
from driftwarden.alerts.tables import metadata
from driftwarden.core.durations import Duration, format_duration, parse_duration

__all__ = [
    "AlertEngine",
    "AlertsConfig",
    "AlertsError",
    "Dispatcher",
    "Duration",
    "EvaluationReport",
    "InhibitRuleConfig",
    "Matcher",
    "MatcherError",
    "OutboxEntry",
    "QueuedNotification",
    "RuleConfig",
    "SendResult",
    "Silence",
    "SilenceError",
    "TemplateError",
    "Transition",
    "add_silence",
    "deliveries",
    "expire_silence",
    "format_duration",
    "list_silences",
    "metadata",
    "parse_duration",
    "parse_matcher",
    "pending_notifications",
    "schema",
]
