"""Ranked notifications: firing first, then the farthest past its threshold; Slack and
PagerDuty, which list at most 50 alerts, keep the top-ranked ones."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from support.alerts import SECRET, Clock, alerts_config, evaluate, recent
from support.receivers import PagerDutyReceiver, SlackReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, pending_notifications
from driftwarden.alerts.notification import distance, margin, rank
from driftwarden.alerts.templates import sample_alerts

FIRING, RESOLVED = sample_alerts()[0], sample_alerts()[1]


def _evidence(value: float | None, threshold: float | None, direction: str = "above") -> Any:
    return replace(FIRING.evidence, value=value, threshold=threshold, direction=direction)


@pytest.mark.parametrize(
    ("value", "threshold", "direction", "expected"),
    [
        (0.5, 0.2, "above", 2.5),  # value / threshold
        (0.2, 0.2, "above", 1.0),  # on the threshold
        (0.1, 0.2, "above", 0.5),  # short of it
        (-0.1, 0.2, "above", -0.5),
        (0.35, 0.7, "below", 2.0),  # threshold / value
        (0.7, 0.7, "below", 1.0),
        (1.4, 0.7, "below", 0.5),
        (0.0, 0.7, "below", math.inf),  # nothing left of a positive threshold
        (-0.3, 0.7, "below", math.inf),
        (0.3, 0.0, "above", math.inf),  # past a zero threshold
        (0.0, 0.0, "above", 1.0),
        (-0.3, 0.0, "above", 0.0),
        (-0.3, 0.0, "below", math.inf),
        (-0.05, -0.1, "above", 2.0),  # negative threshold: half as far below zero
        (-0.2, -0.1, "above", 0.5),
        (0.1, -0.1, "above", math.inf),  # past it with the other sign
        (-0.2, -0.1, "below", 2.0),
        (-0.05, -0.1, "below", 0.5),
        (None, 0.2, "above", None),  # no value
        (0.3, None, "above", None),  # no threshold
        (math.nan, 0.2, "above", None),
        (math.inf, 0.2, "above", None),
        (0.3, 0.2, "equal", None),  # no direction to be past
    ],
)
def test_distance_is_the_factor_past_the_threshold(
    value: float | None, threshold: float | None, direction: str, expected: float | None
) -> None:
    found = distance(_evidence(value, threshold, direction))
    assert found == (pytest.approx(expected) if expected not in (None, math.inf) else expected)


def test_margin_orders_what_the_factor_cannot() -> None:
    assert margin(_evidence(0.5, 0.2)) == pytest.approx(0.3)
    assert margin(_evidence(0.35, 0.7, "below")) == pytest.approx(0.35)
    assert margin(_evidence(0.1, 0.2)) == pytest.approx(-0.1)
    assert margin(_evidence(None, 0.2)) is None
    past_zero = [_evidence(v, 0.0) for v in (0.01, 0.5, 0.2)]
    assert {distance(e) for e in past_zero} == {math.inf}
    views = [replace(FIRING, evidence=e) for e in past_zero]
    assert [v.evidence.value for v in sorted(views, key=rank)] == [0.5, 0.2, 0.01]


def test_rank_puts_firing_first_then_the_farthest_then_the_unknown() -> None:
    def view(name: str, value: float | None, **changes: Any) -> Any:
        evidence = replace(FIRING.evidence, feature=name, value=value, threshold=0.2)
        return replace(FIRING, evidence=evidence, **changes)

    views = [
        view("a-resolved-far", 0.9, state="resolved"),
        view("b-just-past", 0.21),
        view("c-no-value", None, severity="critical"),
        view("d-far", 0.8),
        view("e-far-critical", 0.8, severity="critical"),
        view("f-farthest", 2.0),
        view("g-resolved-near", 0.19, state="resolved"),
    ]
    names = [v.evidence.feature for v in sorted(views, key=rank)]
    assert names == [
        "f-farthest",
        "e-far-critical",  # equally far: the more severe first
        "d-far",
        "b-just-past",
        "c-no-value",
        "a-resolved-far",
        "g-resolved-near",
    ]
    assert rank(RESOLVED) > rank(FIRING)


def _ranked_group(db: Engine, clock: Clock, channels: dict[str, Any]) -> list[str]:
    """60 drifted features, alphabetical order the reverse of how far they drifted; the
    features from the farthest to the nearest."""
    rule = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "warning"}
    config = alerts_config(
        channels=channels, rules=[{**rule, "channels": list(channels)}], group_wait="0s"
    )
    results = []
    for i in range(60):  # f00 drifted least (0.21), f59 most (0.8)
        results += recent(clock, f"f{i:02d}", value=round(0.21 + i * 0.01, 2))
    evaluate(AlertEngine(config), db, results, clock.now)
    return [f"f{i:02d}" for i in reversed(range(60))]


def test_slack_and_pagerduty_list_the_top_ranked_alerts(
    sqlite_engine: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
) -> None:
    channels = {
        "slack": {"type": "slack", "url": slack.url},
        "pd": {"type": "pagerduty", "routing_key": "k" * 32, "url": pagerduty.url},
    }
    ranked = _ranked_group(sqlite_engine, clock, channels)
    config = alerts_config(channels=channels)
    dispatcher = Dispatcher(
        sqlite_engine, config, registry=CollectorRegistry(), clock=clock, http=http
    )
    dispatcher.run_once()
    (message,) = slack.messages
    lines = "\n".join(b["text"]["text"] for b in message["blocks"][2:] if b["type"] == "section")
    listed = [line.split(" ")[1].rstrip(":") for line in lines.splitlines()]
    assert listed == ranked[:50]  # f59 (0.8) first; f00 … f09 left out
    assert "…and 10 more" in message["blocks"][-1]["elements"][0]["text"]

    (event,) = pagerduty.events
    details = event["payload"]["custom_details"]
    assert [d["feature"] for d in details["firing"]] == ranked[:50]
    assert details["not_listed"] == 10
    assert event["payload"]["component"] == "f59"  # the top-ranked alert speaks for the group


def test_the_channels_rank_their_alerts_whatever_order_the_notification_has(
    sqlite_engine: Engine, clock: Clock
) -> None:
    channels = {
        "slack": {"type": "slack", "url": "http://127.0.0.1:9/s"},
        "pd": {"type": "pagerduty", "routing_key": "k", "url": "http://127.0.0.1:9/p"},
    }
    ranked = _ranked_group(sqlite_engine, clock, channels)
    with sqlite_engine.connect() as connection:
        bodies = {e.channel: e.payload for e in pending_notifications(connection)}
    firing = bodies["pd"]["payload"]["custom_details"]["firing"]
    assert [d["value"] for d in firing] == sorted((d["value"] for d in firing), reverse=True)
    assert [d["feature"] for d in firing] == ranked[:50]
    assert "f59" in bodies["slack"]["blocks"][2]["text"]["text"].splitlines()[0]


def test_features_are_ranked_by_their_share_of_the_drift_impact_before_their_distance(
    sqlite_engine: Engine, clock: Clock
) -> None:
    """Three features drift, ``near`` least far past its threshold but holding most of the
    window's drift impact; ``far`` has none of it; the retrain payload lists them so too."""
    channels = {
        "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secrets": [SECRET]},
        "retrain": {"type": "retrain", "url": "http://127.0.0.1:9/rt", "secrets": [SECRET]},
    }
    rule = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "warning"}
    config = alerts_config(
        channels=channels, rules=[{**rule, "channels": list(channels)}], group_wait="0s"
    )
    drifted = recent(clock, "near", value=0.25) + recent(clock, "mid", value=0.5)
    drifted += recent(clock, "far", value=0.9)
    model_level = recent(
        clock, None, value=1.3, kind="drift_impact", detector="importance_weighted"
    )
    share = {"detector": "importance_weighted", "drift": False}
    shares = [
        *recent(clock, "near", value=0.9, kind="drift_impact", metric="contribution", **share),
        *recent(clock, "mid", value=0.4, kind="drift_impact", metric="contribution", **share),
    ]
    evaluate(AlertEngine(config), sqlite_engine, drifted + model_level + shares, clock.now)
    with sqlite_engine.connect() as connection:
        bodies = {e.channel: json.loads(e.body) for e in pending_notifications(connection)}
    webhook = [a["evidence"]["feature"] for a in bodies["hook"]["alerts"]]
    assert webhook == ["near", "mid", "far"]  # by distance alone: far, mid, near
    assert [e["feature"] for e in bodies["retrain"]["evidence"]] == ["near", "mid", "far"]


def test_without_drift_impact_the_distance_ranks(sqlite_engine: Engine, clock: Clock) -> None:
    channels = {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secrets": [SECRET]}}
    rule = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "warning"}
    config = alerts_config(
        channels=channels, rules=[{**rule, "channels": ["hook"]}], group_wait="0s"
    )
    drifted = recent(clock, "near", value=0.25) + recent(clock, "far", value=0.9)
    evaluate(AlertEngine(config), sqlite_engine, drifted, clock.now)
    with sqlite_engine.connect() as connection:
        (entry,) = pending_notifications(connection)
    assert [a["evidence"]["feature"] for a in json.loads(entry.body)["alerts"]] == ["far", "near"]
