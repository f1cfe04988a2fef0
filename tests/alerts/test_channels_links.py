"""Link URLs (Slack buttons, PagerDuty links, Alertmanager's generatorURL) are valid URLs:
what a URL may not contain is percent-encoded, a valid URL is left as it is."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from support.alerts import SECRET, Clock, alerts_config, evaluate, recent
from support.receivers import AlertmanagerReceiver, PagerDutyReceiver, SlackReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, deliveries
from driftwarden.alerts.channels import validate
from driftwarden.alerts.channels.base import link_url

VALID = [
    "https://grafana.example/d/abc/drift?orgId=1&var-model=credit%20default&from=now-6h",
    "http://127.0.0.1:3000/d/x#panel-4",
    "https://user:token@wiki.example:8443/runbooks/psi-high?x=1;y=2#step-2",
    "http://[::1]:8080/a/b/",
    "https://h.example/a%2Fb/%E2%82%AC/(c)!*'$,@:~",
    "https://grafana.example/d/x?var-model=%C3%BCber",
]


@pytest.mark.parametrize("url", VALID)
def test_a_valid_url_is_kept_as_it_is(url: str) -> None:
    assert link_url(url) == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://g.example/d/x?m=a b", "https://g.example/d/x?m=a%20b"),
        ("https://g.example/über/ç?f=naïve", "https://g.example/%C3%BCber/%C3%A7?f=na%C3%AFve"),
        ('https://g.example/d?m=<a> & "b"', "https://g.example/d?m=%3Ca%3E%20&%20%22b%22"),
        ("https://g.example/100%/x?p=5%", "https://g.example/100%25/x?p=5%25"),
        ("https://g.example/a|b{c}^`\\", "https://g.example/a%7Cb%7Bc%7D%5E%60%5C"),
        ("https://g.example/a#b#c d", "https://g.example/a#b%23c%20d"),
        ("https://g.example/[x]?q=[1]", "https://g.example/%5Bx%5D?q=%5B1%5D"),
        ("  https://g.example/x  ", "https://g.example/x"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    ],
)
def test_what_a_url_may_not_contain_is_percent_encoded(url: str, expected: str) -> None:
    assert link_url(url) == expected
    assert link_url(expected) == expected  # and encoding twice changes nothing


@pytest.mark.parametrize(
    "url",
    [
        "",
        "javascript:alert(1)",
        "ftp://files.example/x",
        "/d/relative",
        "https://",
        "https://two words.example/x",
        "https://h.example:http/x",
        "https://<h>.example/x",
        "https://[::1/x",
    ],
)
def test_what_cannot_be_a_link_is_left_out(url: str) -> None:
    assert link_url(url) is None


NAME = 'credit "<default>" & über'
ANNOTATIONS = {
    "dashboard_url": "https://grafana.example/d/x?var-model={{ model }}&var-f={{ feature }}",
    "runbook_url": "https://wiki.example/runbooks/{{ model|urlencode }}",
}
DASHBOARD = (
    "https://grafana.example/d/x?var-model=credit%20%22%3Cdefault%3E%22%20&%20%C3%BCber"
    "&var-f=a%20b%20%3Cc%3E"
)
RUNBOOK = "https://wiki.example/runbooks/credit%20%22%3Cdefault%3E%22%20%26%20%C3%BCber"


def test_every_channel_links_encoded_urls_and_the_receivers_accept_them(
    sqlite_engine: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    alertmanager: AlertmanagerReceiver,
) -> None:
    channels: dict[str, Any] = {
        "slack": {"type": "slack", "url": slack.url},
        "pd": {"type": "pagerduty", "routing_key": "k" * 32, "url": pagerduty.url},
        "am": {"type": "alertmanager", "url": alertmanager.url},
    }
    rule = {
        "name": "psi-high",
        "match": ["detector=psi"],
        "above": 0.2,
        "severity": "warning",
        "channels": list(channels),
        "annotations": ANNOTATIONS,
    }
    config = alerts_config(channels=channels, rules=[rule], group_wait="0s")
    evaluate(AlertEngine(config), sqlite_engine, recent(clock, "a b <c>", model=NAME), clock.now)
    with sqlite_engine.connect() as connection:
        bodies = {e.channel: e for e in deliveries(connection)}
    assert all(validate(e.channel_type, e.payload) is None for e in bodies.values())
    dispatcher = Dispatcher(
        sqlite_engine, config, registry=CollectorRegistry(), clock=clock, http=http
    )
    assert dispatcher.run_once() == 3

    (message,) = slack.messages
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("Dashboard", DASHBOARD),
        ("Runbook", RUNBOOK),
    ]
    (event,) = pagerduty.events
    assert [(link["text"], link["href"]) for link in event["links"]] == [
        ("Dashboard", DASHBOARD),
        ("Runbook", RUNBOOK),
    ]
    (alert,) = alertmanager.alerts
    assert alert["generatorURL"] == DASHBOARD
    assert alert["annotations"]["dashboard_url"] == (  # annotations stay what the rule wrote
        'https://grafana.example/d/x?var-model=credit "<default>" & über&var-f=a b <c>'
    )


def test_a_link_that_cannot_be_a_url_is_left_out_not_sent(
    sqlite_engine: Engine, clock: Clock
) -> None:
    channels: dict[str, Any] = {"slack": {"type": "slack", "url": "http://127.0.0.1:9/s"}}
    rule = {
        "name": "psi-high",
        "match": ["detector=psi"],
        "above": 0.2,
        "severity": "warning",
        "channels": ["slack"],
        "annotations": {
            "dashboard_url": "https://{{ model }}.grafana.example/d/x",
            "runbook_url": "https://wiki.example/" + "r" * 3000,
        },
    }
    config = alerts_config(channels=channels, rules=[rule], group_wait="0s")
    evaluate(AlertEngine(config), sqlite_engine, recent(clock, "x", model="a b"), clock.now)
    with sqlite_engine.connect() as connection:
        (entry,) = deliveries(connection)
    assert [b["type"] for b in entry.payload["blocks"]] == [
        "header",
        "section",
        "section",
        "context",
    ]
    assert validate("slack", entry.payload) is None


PAGES = "https://driftwarden.example/monitor"
LINK_CHANNELS = {
    "slack": {"type": "slack", "url": "http://127.0.0.1:9/s"},
    "pagerduty": {"type": "pagerduty", "routing_key": "k", "url": "http://127.0.0.1:9/p"},
    "webhook": {"type": "webhook", "url": "http://127.0.0.1:9/w", "secrets": [SECRET]},
    "retrain": {"type": "retrain", "url": "http://127.0.0.1:9/r", "secrets": [SECRET]},
}


def _queued(engine: Engine, clock: Clock, pages_url: str | None) -> dict[str, Any]:
    from driftwarden.alerts import pending_notifications

    rule = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "critical",
            "channels": list(LINK_CHANNELS)}  # fmt: skip
    config = alerts_config(channels=LINK_CHANNELS, rules=[rule], group_wait="0s")
    model = "credit default/β"
    evaluate(AlertEngine(config, pages_url=pages_url), engine, recent(clock, "x", model=model),
             clock.now)  # fmt: skip
    with engine.connect() as connection:
        entries = pending_notifications(connection)
    for entry in entries:
        assert validate(entry.channel_type, entry.payload) is None, entry.channel
    return {entry.channel_type: entry.payload for entry in entries}


def test_with_the_pages_address_every_notification_links_to_its_incident_and_window(
    sqlite_engine: Engine, clock: Clock
) -> None:
    payloads = _queued(sqlite_engine, clock, PAGES)
    webhook = payloads["webhook"]
    incident = webhook["incident_id"]
    index = webhook["alerts"][0]["evidence"]["window_index"]
    expected = {
        "incident": f"{PAGES}/ui/incidents/{incident}",
        "window": f"{PAGES}/ui/models/credit%20default%2F%CE%B2/windows/{index}",
    }
    assert webhook["links"] == expected
    assert payloads["retrain"]["links"] == expected
    buttons = {
        element["text"]["text"]: element["url"]
        for block in payloads["slack"]["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }
    assert buttons == {"Incident": expected["incident"], "Window": expected["window"]}
    links = {link["text"]: link["href"] for link in payloads["pagerduty"]["links"]}
    assert links == {"Incident": expected["incident"], "Window": expected["window"]}
    served = httpx.URL(expected["window"]).raw_path.decode()
    assert served == "/monitor/ui/models/credit%20default%2F%CE%B2/windows/" + str(index)


def test_without_the_pages_address_no_notification_carries_page_links(
    sqlite_engine: Engine, clock: Clock
) -> None:
    payloads = _queued(sqlite_engine, clock, None)
    assert "links" not in payloads["webhook"] and "links" not in payloads["retrain"]
    assert not [b for b in payloads["slack"]["blocks"] if b["type"] == "actions"]
    assert payloads["pagerduty"]["links"] == []
