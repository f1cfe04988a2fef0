"""The ``alerts`` configuration: defaults, errors that name the rule, templates checked early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from driftwarden.alerts import AlertsConfig

EXAMPLE = Path(__file__).parents[2] / "alerts" / "example.yaml"
LOG = {"ops": {"type": "log"}}


def _error(data: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        AlertsConfig.model_validate(data)
    error = caught.value.errors(include_url=False)[0]
    return error["loc"], error["msg"].removeprefix("Value error, ")


def _rule(**changes: object) -> dict:
    return {"name": "psi-high", "severity": "warning", "channels": ["ops"], **changes}


def test_no_alerts_is_valid_and_has_alertmanager_like_defaults() -> None:
    config = AlertsConfig()
    assert config.rules == [] and config.channels == {}
    assert config.group_by == ["model", "rule"]
    assert config.group_wait.total_seconds() == 30
    assert config.group_interval.total_seconds() == 300
    assert config.repeat_interval.total_seconds() == 4 * 3600
    assert config.send_resolved and config.max_window_age is None


def test_the_example_configuration_is_valid() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    substituted = yaml.safe_load(
        EXAMPLE.read_text()
        .replace("${SLACK_WEBHOOK_URL}", "https://hooks.slack.com/services/T/B/x")
        .replace("${PAGERDUTY_ROUTING_KEY}", "0123456789abcdef0123456789abcdef")
        .replace("${RETRAIN_URL}", "https://ml.example.com/retrain")
        .replace("${RETRAIN_SECRET}", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    )
    config = AlertsConfig.model_validate(substituted["alerts"])
    names = {rule.name for rule in config.rules}
    assert {"feature-psi-high", "roc-auc-low", "demographic-parity", "concept-drift"} <= names
    assert "alerts" in raw


def test_an_unknown_channel_names_the_rule() -> None:
    _, message = _error({"channels": LOG, "rules": [_rule(channels=["slak"])]})
    assert message == "rule 'psi-high': unknown channel 'slak'"


def test_a_bad_severity_points_at_the_rule() -> None:
    loc, message = _error({"channels": LOG, "rules": [_rule(), _rule(name="b", severity="page")]})
    assert loc == ("rules", 1, "severity")
    assert message.startswith("Input should be 'critical', 'error', 'warning' or 'info'")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"above": 0.2, "below": 0.1}, "rule 'psi-high': set 'above' or 'below', not both"),
        ({"match": ["colour=red"]}, "rule 'psi-high': cannot match on 'colour'"),
        ({"labels": {"severity": "x"}}, "rule 'psi-high': label name 'severity'"),
        ({"channels": ["ops", "ops"]}, "rule 'psi-high': a channel is listed twice"),
        ({"name": "has space"}, "rule 'has space': names use letters"),
    ],
)
def test_inconsistent_rules_are_errors_naming_the_rule(changes: dict, expected: str) -> None:
    _, message = _error({"channels": LOG, "rules": [_rule(**changes)]})
    assert message.startswith(expected)


def test_rules_are_named_once() -> None:
    _, message = _error({"channels": LOG, "rules": [_rule(), _rule()]})
    assert message == "rule 'psi-high' is defined twice"


def test_a_bad_matcher_is_an_error_at_its_position() -> None:
    loc, message = _error({"channels": LOG, "rules": [_rule(match=["feature=~(inc"])]})
    assert loc == ("rules", 0, "match", 0)
    assert "invalid regular expression" in message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ feature ", "template annotations.summary: unexpected end of template"),
        ("{{ featur }}", "template annotations.summary: UndefinedError: 'featur' is undefined"),
        ("{{ labels.team }}", "template annotations.summary: UndefinedError"),
    ],
)
def test_broken_annotation_templates_fail_at_validation(template: str, expected: str) -> None:
    _, message = _error({"channels": LOG, "rules": [_rule(annotations={"summary": template})]})
    assert message.startswith(f"rule 'psi-high': {expected}")


def test_annotation_templates_see_the_rules_labels() -> None:
    rule = _rule(labels={"team": "risk"}, annotations={"summary": "{{ labels.team }}"})
    AlertsConfig.model_validate({"channels": LOG, "rules": [rule]})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ model.__class__ }}", "template slack_title: SecurityError"),
        ("{% for x in alerts %}{{ x.nope }}{% endfor %}", "template slack_title: UndefinedError"),
        ("{% if %}", "template slack_title: Expected an expression"),
    ],
)
def test_broken_channel_templates_fail_at_validation(template: str, expected: str) -> None:
    loc, message = _error({"templates": {"slack_title": template}})
    assert loc == ("templates",)
    assert message.startswith(expected)


def test_secrets_are_checked_but_never_shown() -> None:
    secret = "whsec_not base64!"
    channel = {"type": "retrain", "url": "https://x.example/r", "secrets": [secret]}
    loc, message = _error({"channels": {"r": channel}})
    assert loc == ("channels", "r", "retrain", "secrets", 0)
    assert "whsec_" in message and secret not in message
    config = AlertsConfig.model_validate(
        {"channels": {"s": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/secret"}}}
    )
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    "data",
    [
        {"group_by": ["rule"]},
        {"group_interval": "0s"},
        {"channels": {"a b": {"type": "log"}}},
        {"channels": {"w": {"type": "webhook", "url": "ftp://x", "secrets": ["whsec_AAAA"]}}},
        {"delivery": {"backoff_initial": "10m", "backoff_max": "1s"}},
        {"delivery": {"timeout": "soon"}},
        {"channels": {"s": {"type": "slak", "url": "https://x"}}},
    ],
)
def test_other_bad_settings_are_refused(data: dict) -> None:
    with pytest.raises(ValidationError):
        AlertsConfig.model_validate(data)


def test_group_by_names_only_labels_alerts_carry() -> None:
    with pytest.raises(ValidationError, match="group_by: unknown label 'window'"):
        AlertsConfig.model_validate({"group_by": ["model", "window"]})
    team = {"name": "r", "severity": "info", "channels": ["log"], "labels": {"team": "risk"}}
    config = AlertsConfig.model_validate(
        {"channels": {"log": {"type": "log"}}, "rules": [team], "group_by": ["model", "team"]}
    )
    assert config.group_by == ["model", "team"]
