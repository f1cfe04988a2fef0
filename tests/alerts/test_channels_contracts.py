"""Payload contracts: every body a channel renders keeps its schema, and one that does not
becomes a failed delivery naming the field, never a request."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from support.alerts import SECRET, Clock, alerts_config, evaluate, recent
from support.receivers import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    SlackReceiver,
    WebhookReceiver,
)

from driftwarden.alerts import AlertEngine, Dispatcher, pending_notifications
from driftwarden.alerts import outbox as outbox_rows
from driftwarden.alerts.channels import validate
from driftwarden.alerts.tables import alert_outbox

HOSTILE = ["{{ 7*7 }}", "<!channel>", 'a "quoted" & <b>', "über-feature", "x" * 300]


def _config(channels: dict[str, Any], **settings: Any) -> Any:
    rule = {
        "name": "psi-high",
        "match": ["detector=psi"],
        "above": 0.2,
        "severity": "critical",
        "channels": list(channels),
        "annotations": {"dashboard_url": "https://grafana.example/d/x?m={{ model }}"},
    }
    return alerts_config(channels=channels, rules=[rule], group_wait="0s", **settings)


def _rows(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as connection:
        query = select(alert_outbox).order_by(alert_outbox.c.id)
        return [dict(row) for row in connection.execute(query).mappings()]


def _payloads(db: Engine) -> dict[str, Any]:
    """The body of each channel's first queued notification."""
    with db.connect() as connection:
        entries = pending_notifications(connection)
    found: dict[str, Any] = {}
    for entry in entries:
        found.setdefault(entry.channel_type, entry.payload)
    return found


@pytest.fixture
def queued(sqlite_engine: Engine, clock: Clock) -> dict[str, Any]:
    """One firing notification of every channel type, rendered as the daemon would."""
    channels = {
        "slack": {"type": "slack", "url": "http://127.0.0.1:9/s"},
        "pagerduty": {"type": "pagerduty", "routing_key": "k", "url": "http://127.0.0.1:9/p"},
        "webhook": {"type": "webhook", "url": "http://127.0.0.1:9/w", "secrets": [SECRET]},
        "retrain": {"type": "retrain", "url": "http://127.0.0.1:9/r", "secrets": [SECRET]},
        "alertmanager": {"type": "alertmanager", "url": "http://127.0.0.1:9"},
        "log": {"type": "log"},
    }
    evaluate(AlertEngine(_config(channels)), sqlite_engine, recent(clock, "x", "y"), clock.now)
    payloads = _payloads(sqlite_engine)
    assert sorted(payloads) == sorted(channels)
    return payloads


def test_every_body_the_channels_render_keeps_its_contract_and_is_accepted(
    sqlite_engine: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    webhook: WebhookReceiver,
    retrain: WebhookReceiver,
    alertmanager: AlertmanagerReceiver,
) -> None:
    channels = {
        "slack": {"type": "slack", "url": slack.url, "min_interval": "0s"},
        "pd": {"type": "pagerduty", "routing_key": "k" * 32, "url": pagerduty.url},
        "hook": {"type": "webhook", "url": webhook.url, "secrets": [SECRET]},
        "retrain": {"type": "retrain", "url": retrain.url, "secrets": [SECRET]},
        "am": {"type": "alertmanager", "url": alertmanager.url},
    }
    config = _config(channels, group_interval="1s", repeat_interval="1m")
    alerts = AlertEngine(config)
    dispatcher = Dispatcher(
        sqlite_engine, config, registry=CollectorRegistry(), clock=clock, http=http
    )
    features = [*HOSTILE, *(f"f{i:03d}" for i in range(120))]
    steps = [  # firing; three resolve and the rest move; all resolve (the same window)
        recent(clock, *features, model='model "<é>" & co'),
        recent(clock, *features[:3], value=0.01, model='model "<é>" & co')
        + recent(clock, *features[3:], value=0.9, model='model "<é>" & co'),
        recent(clock, *features, value=0.01, model='model "<é>" & co'),
    ]
    for results in steps:
        evaluate(alerts, sqlite_engine, results, clock.now)
        with sqlite_engine.connect() as connection:
            for entry in pending_notifications(connection):
                assert validate(entry.channel_type, entry.payload) is None, entry.channel
        dispatcher.run_once()
        clock.advance(seconds=2)
    rows = _rows(sqlite_engine)
    assert [row["channel"] for row in rows].count("slack") == 3
    assert {row["channel"] for row in rows} == set(channels)
    assert {row["state"] for row in rows} == {"delivered"} and len(rows) == 14
    assert len(retrain.processed) == 2 and len(webhook.processed) == 3
    assert len(pagerduty.events) == 3 and len(alertmanager.alerts) > 125


def test_a_broken_body_is_described_by_its_field_and_what_is_wrong(
    queued: dict[str, Any],
) -> None:
    def broken(kind: str, change: Any) -> str | None:
        body = copy.deepcopy(queued[kind])
        change(body)
        return validate(kind, body)

    assert validate("retrain", queued["retrain"]) is None
    assert broken("retrain", lambda b: b.update(state="unknown")) == (
        "retrain.v1: $.state: 'unknown' is not one of ['firing', 'resolved']"
    )
    assert broken("retrain", lambda b: b["evidence"][1].update(value="high")) == (
        "retrain.v1: $.evidence[1].value: 'high' is not of type 'number', 'null'"
    )
    assert broken("retrain", lambda b: b["evidence"][0].update(value=math.nan)) == (
        "retrain.v1: $.evidence[0].value: nan is not a JSON number"
    )
    assert broken("retrain", lambda b: b.update(evidence=[])) == (
        "retrain.v1: $.evidence: 0 items, at least 1 allowed"
    )
    assert broken("webhook", lambda b: b.pop("alerts")) == (
        "webhook.v1: $: 'alerts' is a required property"
    )
    assert broken("webhook", lambda b: b["alerts"][0].update(fingerprint="x")) == (
        "webhook.v1: $.alerts[0].fingerprint: 'x' does not match '^[0-9a-f]{32}$'"
    )
    assert broken("slack", lambda b: b["blocks"][0]["text"].update(text="h" * 151)) == (
        "slack: $.blocks[0].text.text: 151 characters, at most 150 allowed"
    )
    assert broken("slack", lambda b: b.update(blocks=b["blocks"] * 20)) == (
        f"slack: $.blocks: {20 * len(queued['slack']['blocks'])} items, at most 50 allowed"
    )
    buttons = next(i for i, b in enumerate(queued["slack"]["blocks"]) if b["type"] == "actions")
    assert broken(
        "slack", lambda b: b["blocks"][buttons]["elements"][0].update(url="https://x/a b")
    ) == (
        f"slack: $.blocks[{buttons}].elements[0].url: 'https://x/a b' does not match "
        '"^https?://[!#$%&\'()*+,\\\\-./0-9:;=?@A-Z\\\\[\\\\]_a-z~]+$"'
    )
    assert broken("pagerduty", lambda b: b["payload"].update(summary="s" * 1025)) == (
        "pagerduty: $.payload.summary: 1025 characters, at most 1024 allowed"
    )
    assert broken("pagerduty", lambda b: b["payload"].update(severity="fatal")) == (
        "pagerduty: $.payload.severity: 'fatal' is not one of "
        "['critical', 'error', 'warning', 'info']"
    )
    huge = copy.deepcopy(queued["pagerduty"])
    huge["payload"]["custom_details"]["blob"] = "é" * 100_000  # sent as \u00e9: 6 bytes
    assert validate("pagerduty", huge) == (
        f"pagerduty: $: {len(json.dumps(huge))} bytes, at most 523264 allowed"
    )
    assert len(json.dumps(huge)) > 600_000 > len(json.dumps(huge, ensure_ascii=False))
    assert broken("alertmanager", lambda b: b[0].update(labels={})) == (
        "alertmanager: $[0].labels: {} should be non-empty"
    )
    assert broken("log", lambda b: b.update(message=math.nan)) is None
    with pytest.raises(ValueError, match="unknown channel type 'email'"):
        validate("email", {})


def test_a_long_bad_value_is_shortened_and_further_problems_are_counted(
    queued: dict[str, Any],
) -> None:
    body = copy.deepcopy(queued["retrain"])
    body.update(model=["m" * 5000], state="maybe", created_at=None)
    error = validate("retrain", body)
    assert error is not None and len(error) < 250
    assert error.endswith("(and 2 more problems)")


def test_a_body_that_breaks_its_contract_is_never_posted(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, retrain: WebhookReceiver
) -> None:
    """A row queued before the check existed, or edited in the table, fails without a request."""
    registry = CollectorRegistry()
    config = _config({"retrain": {"type": "retrain", "url": retrain.url, "secrets": [SECRET]}})
    evaluate(AlertEngine(config), sqlite_engine, recent(clock, "x"), clock.now)
    (row,) = _rows(sqlite_engine)
    body = json.loads(row["body"])
    body["evidence"][0]["window_index"] = -1
    with sqlite_engine.begin() as connection:
        connection.execute(alert_outbox.update().values(body=json.dumps(body)))
    dispatcher = Dispatcher(sqlite_engine, config, registry=registry, clock=clock, http=http)
    assert dispatcher.run_once() == 0
    assert retrain.received == []
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"]) == ("failed", 0)
    assert row["last_error"] == (
        "invalid payload: retrain.v1: $.evidence[0].window_index: -1 is less than the minimum of 0"
    )
    rejected = {"channel": "retrain", "outcome": "rejected"}
    assert registry.get_sample_value("driftwarden_notifications_total", rejected) == 1


def test_a_row_queued_as_failed_is_kept_but_never_sent_nor_blocks_the_next(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, pagerduty: PagerDutyReceiver
) -> None:
    """``outbox.enqueue(..., state="failed", error=...)``: what the outbox stage does with a
    broken body."""
    config = _config({"pd": {"type": "pagerduty", "routing_key": "k", "url": pagerduty.url}})
    evaluate(AlertEngine(config), sqlite_engine, recent(clock, "x"), clock.now)
    (queued,) = _rows(sqlite_engine)
    error = "pagerduty: $.payload.summary: 1025 characters, at most 1024 allowed"
    columns = ("channel", "channel_type", "group_key", "model", "status", "severity", "body")
    row = {name: queued[name] for name in columns}
    row |= {"rules": queued["rules"].split(","), "status": "firing"}
    with sqlite_engine.begin() as connection:  # the same group and channel, queued earlier
        connection.execute(alert_outbox.delete())
        assert outbox_rows.enqueue(
            connection,
            {**row, "idempotency_key": "dw-broken-1"},
            clock(),
            state="failed",
            error=error,
        )
        assert not outbox_rows.enqueue(
            connection,
            {**row, "idempotency_key": "dw-broken-1"},
            clock(),
            state="failed",
            error=error,
        )
        assert outbox_rows.enqueue(connection, {**row, "idempotency_key": "dw-good-2"}, clock())
    dispatcher = Dispatcher(
        sqlite_engine, config, registry=CollectorRegistry(), clock=clock, http=http
    )
    assert dispatcher.run_once() == 1
    broken, good = _rows(sqlite_engine)
    assert (broken["state"], broken["attempts"], broken["last_error"]) == ("failed", 0, error)
    assert good["state"] == "delivered"
    assert len(pagerduty.received) == 1
    with sqlite_engine.connect() as connection:
        (listed,) = outbox_rows.deliveries(connection, failed_only=True)
    assert listed.to_json()["last_error"] == error


def test_a_notification_whose_body_breaks_its_contract_fails_without_a_request(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, retrain: WebhookReceiver
) -> None:
    """An infinite detector value would be ``Infinity`` in the JSON: not JSON at all."""
    channels = {"retrain": {"type": "retrain", "url": retrain.url, "secrets": [SECRET]}}
    rule = {"name": "drift", "severity": "warning", "channels": ["retrain"]}
    config = alerts_config(channels=channels, rules=[rule], group_wait="0s")
    results = recent(clock, "x", value=math.inf, drift=True)
    evaluate(AlertEngine(config), sqlite_engine, results, clock.now)
    dispatcher = Dispatcher(
        sqlite_engine, config, registry=CollectorRegistry(), clock=clock, http=http
    )
    dispatcher.run_once()
    assert retrain.received == []
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"]) == ("failed", 0)
    assert row["last_error"].endswith("retrain.v1: $.evidence[0].value: inf is not a JSON number")
