"""Messages: injections stay inert, Slack's and PagerDuty's limits hold, templates fall back."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from sqlalchemy import Engine
from support.alerts import Clock, alerts_config, evaluate, recent
from support.receivers import PagerDutyReceiver, SlackReceiver

from driftwarden.alerts import AlertEngine, pending_notifications
from driftwarden.alerts.templates import slack_escape, truncate

HOSTILE = ["{{ 7*7 }}", "<script>alert(1)</script>", "<!channel>", "a & b", "{% raw %}x"]


def _notifications(
    db: Engine, clock: Clock, results: list, **settings: Any
) -> dict[str, dict[str, Any]]:
    channels = {
        "slack": {"type": "slack", "url": "http://127.0.0.1:9/s"},
        "pd": {"type": "pagerduty", "routing_key": "k", "url": "http://127.0.0.1:9/p"},
    }
    rule = {
        "name": "psi-high",
        "match": ["detector=psi"],
        "above": 0.2,
        "severity": "critical",
        "channels": list(channels),
        **settings.pop("rule", {}),
    }
    config = alerts_config(channels=channels, rules=[rule], group_wait="0s", **settings)
    evaluate(AlertEngine(config), db, results, clock.now)
    with db.connect() as connection:
        return {e.channel: e.payload for e in pending_notifications(connection)}


def test_injection_attempts_in_names_come_out_inert(
    sqlite_engine: Engine, clock: Clock, slack: SlackReceiver
) -> None:
    results = recent(clock, *HOSTILE, model="<!here> & {{ config }}")
    sent = _notifications(sqlite_engine, clock, results)
    slack_text = json.dumps(sent["slack"], ensure_ascii=False)
    assert re.search(r"\b49\b", slack_text) is None  # not evaluated (ids are hex: \b)
    assert "{{ 7*7 }}" in slack_text and "{{ config }}" in slack_text
    assert "<!channel>" not in slack_text and "<!here>" not in slack_text
    assert "<script>" not in slack_text
    assert "&lt;!channel&gt;" in slack_text and "&lt;script&gt;" in slack_text
    assert "a &amp; b" in slack_text and "&lt;!here&gt; &amp; {{ config }}" in slack_text
    pd = sent["pd"]["payload"]
    assert "{{ 7*7 }}" in pd["summary"] and "<!channel>" in pd["summary"]  # JSON: plain text
    assert pd["source"] == "<!here> & {{ config }}"


def test_a_huge_group_fits_slacks_limits_and_says_how_many_more(
    sqlite_engine: Engine, clock: Clock, slack: SlackReceiver
) -> None:
    features = [f"{'f' * 180}<&>{i:03d}" for i in range(300)]
    results = recent(clock, *features, model="m" * 80)
    sent = _notifications(sqlite_engine, clock, results, rule={"name": "x" * 90})
    message = sent["slack"]
    assert slack.problem(message) == ""
    assert len(message["blocks"]) <= 50
    assert message["blocks"][0]["text"]["text"].endswith("…")
    assert "…and 250 more" in message["blocks"][-1]["elements"][0]["text"]
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in sections)
    assert not any(
        text.endswith(("&", "&a", "&am", "&amp", "&l", "&lt", "&g", "&gt")) for text in sections
    )


def test_pagerduty_events_respect_the_field_limits(
    sqlite_engine: Engine, clock: Clock, pagerduty: PagerDutyReceiver
) -> None:
    features = [f"feature_{'x' * 40}_{i}" for i in range(100)]
    event = _notifications(sqlite_engine, clock, recent(clock, *features))["pd"]
    assert pagerduty.errors({"routing_key": "k", **event}) == []
    payload = event["payload"]
    assert len(payload["summary"]) == 1024 and payload["summary"].endswith("…")
    assert payload["severity"] == "critical" and payload["source"] == "credit-default"
    assert len(event["dedup_key"]) <= 255
    assert payload["custom_details"]["not_listed"] == 50


def test_dashboard_and_runbook_links_are_in_every_channel(
    sqlite_engine: Engine, clock: Clock
) -> None:
    annotations = {
        "dashboard_url": "https://grafana.example/d/x?var-model={{ model|urlencode }}",
        "runbook_url": "https://wiki.example/runbooks/{{ detector }}",
    }
    sent = _notifications(
        sqlite_engine, clock, recent(clock, "x", model="a b"), rule={"annotations": annotations}
    )
    buttons = next(b for b in sent["slack"]["blocks"] if b["type"] == "actions")["elements"]
    assert [b["url"] for b in buttons] == [
        "https://grafana.example/d/x?var-model=a%20b",
        "https://wiki.example/runbooks/psi",
    ]
    assert [link["text"] for link in sent["pd"]["links"]] == ["Dashboard", "Runbook"]


def test_a_template_that_fails_on_real_data_falls_back_to_the_default(
    sqlite_engine: Engine, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    tricky = "{% if model == 'credit-default' %}ok{% else %}{{ no_such_variable }}{% endif %}"
    with caplog.at_level(logging.ERROR, logger="driftwarden.alerts"):
        sent = _notifications(
            sqlite_engine,
            clock,
            recent(clock, "x", model="fraud"),
            templates={"slack_title": tricky},
        )
    assert sent["slack"]["text"] == "Critical: fraud — psi-high (1 firing)"
    assert [r.template for r in caplog.records if getattr(r, "event", "") == "template_failed"] == [
        "slack_title"
    ]


def test_custom_templates_and_annotations_are_used(sqlite_engine: Engine, clock: Clock) -> None:
    sent = _notifications(
        sqlite_engine,
        clock,
        recent(clock, "income"),
        templates={
            "slack_title": "{{ model|upper }} needs a look",
            "pagerduty_summary": "{{ model }}",
        },
        rule={"annotations": {"summary": "{{ feature }} moved ({{ value|num }})"}},
    )
    assert sent["slack"]["text"] == "CREDIT-DEFAULT needs a look"
    assert "income moved (0.3)" in json.dumps(sent["slack"])
    assert sent["pd"]["payload"]["summary"] == "credit-default"


def test_escaping_and_truncation_helpers() -> None:
    assert slack_escape("<a & b>") == "&lt;a &amp; b&gt;"
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("ab&amp;cd", 5) == "ab…"
    assert truncate("short", 10) == "short"
