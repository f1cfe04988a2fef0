"""The ``alerts:`` section of the configuration: channels, rules, grouping, templates, delivery.

Every section has defaults and ``AlertsConfig()`` (no alerts) is valid.
Validation errors are ``ValueError`` messages that name the rule or channel
(``rule 'psi-high': unknown channel 'slak'``); templates are compiled and
rendered on sample data here, so a broken one fails at start-up. Secrets
(webhook URLs, routing keys, signing secrets) are ``SecretStr``: they never
appear in a repr or a log line.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    field_validator,
    model_validator,
)

from driftwarden.alerts.matchers import Matcher, parse_matcher
from driftwarden.alerts.signing import decode_secret
from driftwarden.alerts.templates import (
    ANNOTATION_DEFAULTS,
    DEFAULTS,
    check,
    sample_alerts,
    sample_notifications,
)
from driftwarden.core.durations import Duration

Severity = Literal["critical", "error", "warning", "info"]

MATCH_FIELDS = (
    "model",
    "model_version",
    "kind",
    "detector",
    "feature",
    "metric",
    "group_attribute",
    "segment",
)
"""Result fields a rule's ``match`` may test."""

IDENTITY_LABELS = (
    "rule",
    "model",
    "kind",
    "detector",
    "feature",
    "metric",
    "group_attribute",
    "model_version",
    "segment",
)
"""Labels that identify an alert; its fingerprint is their hash. ``model_version`` is one
only for models whose versions are monitored separately (``versions.split``), ``segment``
only for a segment's results (``segments``)."""

_RESERVED_LABELS = frozenset(IDENTITY_LABELS) | {"severity"}
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")

MatcherField = Annotated[Matcher, PlainValidator(parse_matcher), PlainSerializer(str)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    return value


def _webhook_secret(value: SecretStr) -> SecretStr:
    decode_secret(value.get_secret_value())
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
WebhookSecret = Annotated[SecretStr, AfterValidator(_webhook_secret)]


class Section(BaseModel):
    """A configuration section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackChannel(Section):
    """A Slack incoming webhook; about one message per second per webhook (Slack's limit)."""

    type: Literal["slack"]
    url: SecretStr
    min_interval: Duration = timedelta(seconds=1)
    send_resolved: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        _http_url(value.get_secret_value())
        return value


class PagerDutyChannel(Section):
    """PagerDuty Events API v2: trigger and resolve with a deterministic ``dedup_key``."""

    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    min_interval: Duration = timedelta(0)
    send_resolved: bool | None = None


class WebhookChannel(Section):
    """A generic webhook: ``webhook.v1`` JSON signed per Standard Webhooks."""

    type: Literal["webhook"]
    url: HttpUrl
    secrets: list[WebhookSecret] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    min_interval: Duration = timedelta(0)
    send_resolved: bool | None = None


class RefreshPolicyConfig(Section):
    """When a retrain channel lets an incident start a retraining, per model (``refresh``)."""

    cooldown: Duration = timedelta(hours=24)
    min_windows: int = Field(default=1, ge=1)
    require_performance: bool = False
    min_label_coverage: float | None = Field(default=None, gt=0.0, le=1.0)
    daily_budget: int | None = Field(default=None, ge=1)

    @field_validator("cooldown")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("expected a duration of 0s or more")
        return value


class RetrainChannel(Section):
    """The retrain webhook: ``retrain.v1`` JSON, once per incident when firing (if ``policy``
    lets it through) and resolved."""

    type: Literal["retrain"]
    url: HttpUrl
    secrets: list[WebhookSecret] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    min_interval: Duration = timedelta(0)
    send_resolved: bool | None = None
    policy: RefreshPolicyConfig = Field(default_factory=RefreshPolicyConfig)


class AlertmanagerChannel(Section):
    """An Alertmanager: alerts are pushed to ``{url}/api/v2/alerts``."""

    type: Literal["alertmanager"]
    url: HttpUrl
    min_interval: Duration = timedelta(0)
    send_resolved: bool | None = None


class LogChannel(Section):
    """Notifications as structured log lines only (logger ``driftwarden.alerts``)."""

    type: Literal["log"]
    level: Literal["debug", "info", "warning", "error", "critical"] = "warning"
    min_interval: Duration = timedelta(0)
    send_resolved: bool | None = None


ChannelConfig = Annotated[
    SlackChannel
    | PagerDutyChannel
    | WebhookChannel
    | RetrainChannel
    | AlertmanagerChannel
    | LogChannel,
    Field(discriminator="type"),
]


class AnnotationsConfig(Section):
    """Templates rendered per alert; unset ones use ``templates.ANNOTATION_DEFAULTS``."""

    summary: str | None = None
    description: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None

    def resolved(self) -> dict[str, str]:
        """Every annotation's template source, defaults filled in."""
        return {
            name: default if getattr(self, name) is None else getattr(self, name)
            for name, default in ANNOTATION_DEFAULTS.items()
        }


class RuleConfig(Section):
    """A condition on results that, held for ``for`` consecutive windows, fires an alert.

    The condition is ``value > above``, ``value < below``, or (neither set)
    the result's own ``drift`` decision (for ``version_comparison`` results with
    ``comparison: better``: the challenger is significantly better); only ``ok``
    results with at least ``min_labeled`` labels are judged. A firing alert stays firing for
    ``keep_firing_for`` windows after its condition clears, so a one-window
    flap does not resolve it and page again. ``max_window_age`` overrides the
    section's for this rule: performance computed from labels that arrive
    days later needs a longer one.
    """

    name: str
    match: list[MatcherField] = Field(default_factory=list)
    above: float | None = None
    below: float | None = None
    min_labeled: int | None = Field(default=None, ge=1)
    comparison: Literal["worse", "better"] = "worse"
    for_windows: int = Field(default=1, ge=1, alias="for")
    keep_firing_for: int = Field(default=1, ge=0)
    resolve_after: Duration | None = None
    max_window_age: Duration | None = None
    severity: Severity
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: AnnotationsConfig = Field(default_factory=AnnotationsConfig)
    channels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RuleConfig:
        rule = f"rule {self.name!r}"
        if not _NAME.match(self.name):
            raise ValueError(f"{rule}: names use letters, digits, '_', '.', ':', '-' (≤ 100)")
        if self.above is not None and self.below is not None:
            raise ValueError(f"{rule}: set 'above' or 'below', not both")
        for matcher in self.match:
            if matcher.name not in MATCH_FIELDS:
                raise ValueError(
                    f"{rule}: cannot match on {matcher.name!r} (fields: {', '.join(MATCH_FIELDS)})"
                )
        for label in self.labels:
            if not _LABEL_NAME.match(label) or label in _RESERVED_LABELS:
                raise ValueError(f"{rule}: label name {label!r} is invalid or reserved")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"{rule}: a channel is listed twice")
        for name in ("resolve_after", "max_window_age"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{rule}: {name} must be positive")
        contexts = [alert.context() for alert in sample_alerts(self.labels)]
        for name, source in self.annotations.resolved().items():
            try:
                check(source, f"annotations.{name}", contexts)
            except ValueError as exc:
                raise ValueError(f"{rule}: {exc}") from None
        return self


class InhibitRuleConfig(Section):
    """While a firing alert matches ``source_matchers``, alerts matching ``target_matchers``
    with the same values of the ``equal`` labels are muted (Alertmanager's inhibit rule)."""

    source_matchers: list[MatcherField] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: list[str] = Field(default_factory=lambda: ["model"])


class TemplatesConfig(Section):
    """Channel templates (Jinja2, sandboxed, strict); see ``templates.DEFAULTS``."""

    slack_title: str = DEFAULTS["slack_title"]
    slack_text: str = DEFAULTS["slack_text"]
    slack_alert: str = DEFAULTS["slack_alert"]
    pagerduty_summary: str = DEFAULTS["pagerduty_summary"]
    log_message: str = DEFAULTS["log_message"]

    @model_validator(mode="after")
    def _render(self) -> TemplatesConfig:
        notifications = [notification.context() for notification in sample_notifications()]
        per_alert = [
            {**context, "alert": alert} for context in notifications for alert in context["alerts"]
        ]
        for name in DEFAULTS:
            check(getattr(self, name), name, per_alert if name == "slack_alert" else notifications)
        return self


class DeliveryConfig(Section):
    """How the dispatcher delivers the outbox.

    A failed attempt is retried after ``min(backoff_max, backoff_initial ×
    2^(attempt-1))`` scaled by a random factor in [0.5, 1) (or after the
    receiver's ``Retry-After``), until ``max_attempts`` (if set) or until the
    notification is ``max_age`` old; then it is marked failed.
    """

    timeout: Duration = timedelta(seconds=10)
    max_attempts: int | None = Field(default=None, ge=1)
    max_age: Duration = timedelta(hours=24)
    backoff_initial: Duration = timedelta(seconds=1)
    backoff_max: Duration = timedelta(minutes=10)
    poll_interval: Duration = timedelta(seconds=1)
    batch_size: int = Field(default=10, ge=1, le=1000)

    @model_validator(mode="after")
    def _positive(self) -> DeliveryConfig:
        for name in ("timeout", "max_age", "backoff_initial", "backoff_max", "poll_interval"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"delivery.{name} must be positive")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("delivery.backoff_max must be at least backoff_initial")
        return self


class AlertsConfig(Section):
    """The whole ``alerts:`` section."""

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=lambda: ["model", "rule"])
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)
    send_resolved: bool = True
    max_window_age: Duration | None = None
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)

    @model_validator(mode="after")
    def _references(self) -> AlertsConfig:
        for name in self.channels:
            if not _NAME.match(name):
                raise ValueError(
                    f"channel {name!r}: names use letters, digits, '_', '.', ':', '-' (≤ 100)"
                )
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule {rule.name!r} is defined twice")
            seen.add(rule.name)
            for channel in rule.channels:
                if channel not in self.channels:
                    raise ValueError(f"rule {rule.name!r}: unknown channel {channel!r}")
        if "model" not in self.group_by:
            raise ValueError(
                "group_by must include 'model' (every notification is about one model)"
            )
        known = {*IDENTITY_LABELS, "severity", *(label for r in self.rules for label in r.labels)}
        unknown = [label for label in self.group_by if label not in known]
        if unknown:
            raise ValueError(
                f"group_by: unknown label {unknown[0]!r} (alerts carry: {', '.join(sorted(known))})"
            )
        for name in ("group_interval", "repeat_interval"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.group_wait < timedelta(0):
            raise ValueError("group_wait must not be negative")
        if self.max_window_age is not None and self.max_window_age <= timedelta(0):
            raise ValueError("max_window_age must be positive")
        return self

    def refresh_policy(self, channel: str) -> RefreshPolicyConfig | None:
        """The refresh policy of a retrain channel; ``None`` for other channels."""
        config = self.channels[channel]
        return config.policy if isinstance(config, RetrainChannel) else None

    def send_resolved_for(self, channel: str) -> bool:
        """Whether ``channel`` is told when alerts resolve (its own setting, else the default)."""
        own = self.channels[channel].send_resolved
        return self.send_resolved if own is None else own
