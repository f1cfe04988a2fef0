"""Jinja2 templates of messages: sandboxed, strict, and checked when the configuration loads.

Templates come only from the configuration (or the defaults below); values
from results — model and feature names included — reach them as variables and
are never compiled, so ``{{ 7*7 }}`` in a feature name stays text. Slack
templates escape every ``{{ }}`` output for mrkdwn (``&``, ``<``, ``>``), so a
feature called ``<!channel>`` cannot ping anyone. ``StrictUndefined`` makes a
misspelt variable an error, and every template is rendered on sample
notifications at validation time, so a broken template fails at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from driftwarden.alerts.errors import TemplateError
from driftwarden.alerts.notification import AlertView, Notification
from driftwarden.core.records import ResultRecord

DEFAULTS: Mapping[str, str] = {
    "slack_title": (
        "{% if status == 'resolved' %}Resolved{% else %}{{ severity|capitalize }}{% endif %}: "
        "{{ model }} — {{ rules|join(', ') }}"
        "{% if firing %} ({{ firing|length }} firing){% endif %}"
    ),
    "slack_text": (
        "*Model* {{ model }} · version {{ model_version or 'unknown' }}"
        " · reference {{ reference_id[:12] }}\n"
        "*Windows* {{ window_start }} – {{ window_end }}"
        "{% if resolved %} · {{ resolved|length }} resolved{% endif %}"
    ),
    "slack_alert": (
        "{{ ':large_green_circle:' if alert.state == 'resolved' else ':red_circle:' }} "
        "{{ alert.summary }} · since {{ alert.since }}"
        "{% if alert.state == 'resolved' %} · resolved {{ alert.ends_at }}{% endif %}"
    ),
    "pagerduty_summary": (
        "[{{ severity|upper }}] {{ model }}: {{ firing|map(attribute='summary')|join('; ') }}"
    ),
    "log_message": (
        "{{ status }} {{ model }} {{ rules|join(',') }}: "
        "{{ alerts|map(attribute='summary')|join('; ') }}"
    ),
}
"""Channel templates; every one can be overridden under ``alerts.templates``."""

SLACK_TEMPLATES = frozenset({"slack_title", "slack_text", "slack_alert"})

ANNOTATION_DEFAULTS: Mapping[str, str] = {
    "summary": (
        "{{ subject }}: {{ detector }} {{ value|num }} {{ comparison }} {{ threshold|num }}"
        "{% if n_labeled is not none %} ({{ n_labeled }} labels){% endif %}"
    ),
    "description": (
        "Window #{{ window_index }} ({{ window_start }} – {{ window_end }}, "
        "{{ n_window if n_window is not none else 'unknown' }} events) of model {{ model }} "
        "version {{ model_version or 'unknown' }} against reference {{ reference_id }}: "
        "{{ kind }} {{ detector }} = {{ value|num }}, threshold {{ threshold|num }} "
        "({{ direction }})."
    ),
    "runbook_url": "",
    "dashboard_url": "",
}
"""Rule annotations used when a rule does not set its own."""

_log = logging.getLogger("driftwarden.alerts")
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack mrkdwn (the three characters Slack parses)."""
    return text.translate(_SLACK_ESCAPES)


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """``text`` cut to ``limit`` characters with ``marker``, never inside an ``&…;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(marker)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + marker


def number(value: Any) -> str:
    """A number for people: four significant digits, ``n/a`` for none."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | int):
        return str(value)
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _environment(escape: Callable[[str], str]) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else escape(str(value)),
    )
    environment.filters["num"] = number
    return environment


_PLAIN = _environment(str)
_SLACK = _environment(slack_escape)


@lru_cache(maxsize=512)
def compile_template(source: str, name: str) -> Template:
    """Compile ``source``; Slack templates (``slack_*``) escape their output for mrkdwn."""
    environment = _SLACK if name in SLACK_TEMPLATES else _PLAIN
    try:
        return environment.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template {name}: {exc.message} (line {exc.lineno})") from None


def render(template: Template, name: str, context: Mapping[str, Any]) -> str:
    """Render ``template``; any failure becomes a ``TemplateError`` naming the template."""
    try:
        return template.render(context).strip()
    except Exception as exc:
        raise TemplateError(f"template {name}: {type(exc).__name__}: {exc}") from None


def render_source(source: str, name: str, context: Mapping[str, Any]) -> str:
    """Render a configured template; if it fails on real data, log it and use the default.

    Configured templates are checked on sample data at start-up, yet real
    data can still surprise one; a notification is never lost to a template.
    """
    try:
        return render(compile_template(source, name), name, context)
    except TemplateError as exc:
        default = DEFAULTS.get(name) or ANNOTATION_DEFAULTS[name.removeprefix("annotations.")]
        if source == default:
            raise
        _log.error(
            "template failed, default used: %s",
            exc,
            extra={"event": "template_failed", "template": name, "error": str(exc)},
        )
        return render(compile_template(default, name), name, context)


def check(source: str, name: str, contexts: Iterable[Mapping[str, Any]]) -> Template:
    """Compile ``source`` and render it on every sample context; return the compiled template."""
    template = compile_template(source, name)
    for context in contexts:
        render(template, name, context)
    return template


def sample_alerts(labels: Mapping[str, str] | None = None) -> tuple[AlertView, ...]:
    """Alerts of every shape a template meets: a feature's, a metric's, firing and resolved."""
    extra = dict(labels or {})
    feature = ResultRecord(
        model="credit-default",
        status="ok",
        error_bound=0.0,
        kind="data_drift",
        detector="psi",
        feature="income",
        metric=None,
        group_attribute=None,
        value=0.27,
        threshold=0.2,
        direction="above",
        p_value=None,
        drift=True,
        window_start=1_795_690_800_000,
        window_end=1_795_694_400_000,
        window_index=11,
        model_version="7",
        reference_id="9f2c4e1a7b3d5f60",
        n_reference=50_000,
        n_window=4_980,
        n_labeled=None,
        detected_at=None,
    )
    metric = ResultRecord(
        model="credit-default",
        status="ok",
        error_bound=None,
        kind="fairness",
        detector="demographic_parity",
        feature=None,
        metric="demographic_parity_difference",
        group_attribute="sex",
        value=0.04,
        threshold=0.1,
        direction="above",
        p_value=0.01,
        drift=False,
        window_start=1_795_687_200_000,
        window_end=1_795_690_800_000,
        window_index=10,
        model_version=None,
        reference_id="9f2c4e1a7b3d5f60",
        n_reference=50_000,
        n_window=5_120,
        n_labeled=612,
        detected_at=None,
    )
    return (
        AlertView(
            fingerprint="0" * 32,
            rule="sample-rule",
            severity="warning",
            state="firing",
            model="credit-default",
            labels={"rule": "sample-rule", "model": "credit-default", **extra},
            evidence=feature,
            starts_at=feature.window_start,
            ends_at=None,
        ),
        AlertView(
            fingerprint="1" * 32,
            rule="sample-rule",
            severity="critical",
            state="resolved",
            model="credit-default",
            labels={"rule": "sample-rule", "model": "credit-default", **extra},
            evidence=metric,
            starts_at=metric.window_start,
            ends_at=metric.window_end,
        ),
    )


def sample_notifications() -> tuple[Notification, ...]:
    """A firing notification with a resolved alert in it, and an all-resolved one."""
    alerts = tuple(
        AlertView(
            fingerprint=alert.fingerprint,
            rule=alert.rule,
            severity=alert.severity,
            state=alert.state,
            model=alert.model,
            labels=alert.labels,
            evidence=alert.evidence,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            annotations={"summary": "income: psi 0.27 > 0.2", "description": "sample"},
        )
        for alert in sample_alerts()
    )
    common = {
        "channel": "sample",
        "idempotency_key": "dw-sample-1",
        "incident_id": "sample",
        "group_key": "sample",
        "group_labels": {"model": "credit-default", "rule": "sample-rule"},
        "model": "credit-default",
        "created_at": 1_795_694_430_000,
        "started_at": 1_795_690_800_000,
    }
    return (
        Notification(status="firing", alerts=alerts, **common),
        Notification(status="resolved", alerts=alerts[1:], **common),
    )
