"""Alerts on-call trusts: a flapping condition pages and retrains once (``keep_firing_for``
and the retrain channel's refresh policy), and the policy's rules each hold back a retrain,
visibly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from support.alerts import HOUR, SECRET, T0, Clock, alerts_config, result, window_end
from support.receivers import PagerDutyReceiver, SlackReceiver, WebhookReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, schema
from driftwarden.alerts.config import AlertsConfig
from driftwarden.alerts.tables import alert_outbox
from driftwarden.core.times import to_ms, wall_clock_ms

PSI = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "critical"}


def _run(
    db: Engine, alerts: AlertEngine, windows: dict[int, list], until: int, base: int = T0
) -> None:
    """Judge each hourly window's results (from ``base``) as it closes, the timers running
    between, up to just after window ``until`` closed, as the daemon would on a clock
    passing every instant."""
    for window in sorted(windows):
        moment = base + (window + 1) * HOUR + 5_000
        with db.begin() as connection:
            alerts.advance_to(moment, connection)
            alerts.evaluate(windows[window], moment, connection)
    with db.begin() as connection:
        alerts.advance_to(base + (until + 1) * HOUR + 5_000, connection)


def _rows(db: Engine, channel: str | None = None) -> list[dict[str, Any]]:
    query = select(alert_outbox).order_by(alert_outbox.c.id)
    if channel is not None:
        query = query.where(alert_outbox.c.channel == channel)
    with db.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


@pytest.fixture
def receivers() -> Iterator[tuple[SlackReceiver, PagerDutyReceiver, WebhookReceiver]]:
    with ExitStack() as stack:
        yield (
            stack.enter_context(SlackReceiver()),
            stack.enter_context(PagerDutyReceiver()),
            stack.enter_context(WebhookReceiver([SECRET], schema("retrain.v1"))),
        )


def _flapping(db: Engine, http: httpx.Client, receivers: Any, **settings: Any) -> dict[str, int]:
    """Eight hourly windows alternating drift and no drift, delivered to real receivers;
    what each received."""
    slack, pagerduty, retrain = receivers
    rule = {**PSI, "channels": ["slack", "pagerduty", "retrain"], **settings.pop("rule", {})}
    channels = {
        "slack": {"type": "slack", "url": f"{slack.url}/services/T/B/x"},
        "pagerduty": {"type": "pagerduty", "routing_key": "r" * 32, "url": f"{pagerduty.url}/v2"},
        "retrain": {"type": "retrain", "url": retrain.url, "secrets": [SECRET], **settings},
    }
    config = AlertsConfig.model_validate({"channels": channels, "rules": [rule]})
    alerts = AlertEngine(config)
    base = wall_clock_ms() // HOUR * HOUR - 10 * HOUR  # recent: signatures carry the time
    flaps = {
        w: [
            result(
                w,
                "income",
                0.5 if w % 2 == 0 else 0.05,
                window_start=base + w * HOUR,
                window_end=base + (w + 1) * HOUR,
            )
        ]
        for w in range(8)
    }
    _run(db, alerts, flaps, until=8, base=base)
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(db, config, registry=CollectorRegistry(), clock=clock, http=http)
    for _ in range(100):
        dispatcher.run_once()
        if all(row["state"] != "pending" for row in _rows(db)):
            break
        clock.advance(seconds=2)
    assert {row["state"] for row in _rows(db)} <= {"delivered", "suppressed"}
    triggers = [e for e in pagerduty.events if e["event_action"] == "trigger"]
    return {
        "slack messages": len(slack.messages),
        "pagerduty incidents": len(pagerduty.incidents),
        "pagerduty resolves": sum(e["event_action"] == "resolve" for e in pagerduty.events),
        "pagerduty triggers": len(triggers),
        "retrain calls": sum(p["state"] == "firing" for p in retrain.processed),
    }


def test_flapping_without_hysteresis_pages_and_retrains_on_every_flip(
    db: Engine, http: httpx.Client, receivers: Any
) -> None:
    counts = _flapping(db, http, receivers, rule={"keep_firing_for": 0}, policy={"cooldown": "0s"})
    assert counts == {
        "slack messages": 8,
        "pagerduty incidents": 4,
        "pagerduty resolves": 4,
        "pagerduty triggers": 4,
        "retrain calls": 4,
    }


def test_flapping_with_the_defaults_pages_and_retrains_once(
    db: Engine, http: httpx.Client, receivers: Any
) -> None:
    counts = _flapping(db, http, receivers)
    # one incident held open through the flips: told once, repeated after repeat_interval
    # (4 h) while it fires, never resolved (its last window is its first clean one)
    assert counts == {
        "slack messages": 2,
        "pagerduty incidents": 1,
        "pagerduty resolves": 0,
        "pagerduty triggers": 2,
        "retrain calls": 1,
    }


def _policy_engine(**policy: Any) -> AlertEngine:
    channels = {
        "retrain": {
            "type": "retrain",
            "url": "http://127.0.0.1:9/retrain",
            "secrets": [SECRET],
            "policy": policy,
        },
        "log": {"type": "log"},
    }
    performance = {
        "name": "auc-low",
        "match": ["kind=performance", "metric=roc_auc"],
        "below": 0.7,
        "severity": "critical",
        "channels": ["log"],
    }
    rules = [{**PSI, "channels": ["retrain"]}, performance]
    return AlertEngine(alerts_config(channels=channels, rules=rules))


def _auc(window: int, value: float, labeled: int = 4_000) -> Any:
    return result(
        window,
        None,
        value,
        kind="performance",
        detector="roc_auc",
        metric="roc_auc",
        threshold=0.7,
        direction="below",
        n_labeled=labeled,
    )


def _retrains(db: Engine) -> list[tuple[str, str, str | None]]:
    return [
        (row["idempotency_key"].rsplit("-", 1)[1], row["state"], row["last_error"])
        for row in _rows(db, "retrain")
        if row["status"] == "firing"
    ]


def test_a_second_incident_inside_the_cooldown_is_recorded_not_sent(db: Engine) -> None:
    alerts = _policy_engine()
    drift = {0: [result(0)], 1: [result(1, value=0.05)], 3: [result(3)]}
    _run(db, alerts, drift, until=4)
    assert _retrains(db) == [
        ("firing", "pending", None),
        ("suppressed", "suppressed", "within the cooldown of 1d"),
    ]
    _run(db, alerts, {30: [result(30)]}, until=31)  # a day later
    assert [state for _, state, _ in _retrains(db)] == ["pending", "suppressed", "pending"]


def test_min_windows_waits_until_the_alert_has_held(db: Engine) -> None:
    alerts = _policy_engine(min_windows=3)
    _run(db, alerts, {0: [result(0)], 1: [result(1)]}, until=1)
    assert _retrains(db) == [("suppressed", "suppressed", "held for 1 of 3 windows")]
    _run(db, alerts, {2: [result(2)]}, until=3)
    (sent,) = [row for row in _rows(db, "retrain") if row["state"] == "pending"]
    policy = _payload(sent)["policy"]
    assert policy["min_windows"] == 3 and policy["checks"]["windows_held"] == 3
    assert sent["created_at"] == to_ms(window_end(2)) + 30_000  # the next flush


def test_require_performance_waits_for_a_performance_alert(db: Engine) -> None:
    alerts = _policy_engine(require_performance=True)
    _run(db, alerts, {0: [result(0)]}, until=1)
    assert _retrains(db) == [
        ("suppressed", "suppressed", "no performance alert of the model fires")
    ]
    _run(db, alerts, {1: [result(1), _auc(1, 0.62)]}, until=2)
    assert [state for _, state, _ in _retrains(db)] == ["suppressed", "pending"]
    sent = _rows(db, "retrain")[-1]
    assert _payload(sent)["policy"]["checks"]["performance_alert_firing"] is True


def test_min_label_coverage_needs_enough_labelled_predictions(db: Engine) -> None:
    alerts = _policy_engine(min_label_coverage=0.5)
    window = {0: [result(0), _auc(0, 0.62, labeled=1_000)]}  # 1,000 of 4,980 labelled
    _run(db, alerts, window, until=1)
    assert {reason for _, _, reason in _retrains(db)} == {"label coverage 0.201 is below 0.5"}
    _run(db, alerts, {1: [result(1), _auc(1, 0.62, labeled=3_000)]}, until=2)
    assert "pending" in [state for _, state, _ in _retrains(db)]


def test_the_daily_budget_caps_retrains_per_24_hours(db: Engine) -> None:
    alerts = _policy_engine(cooldown="0s", daily_budget=2)
    flips = {w: [result(w, value=0.5 if w % 2 == 0 else 0.05)] for w in range(12)}
    _run(db, alerts, flips, until=12)  # six incidents in twelve hours
    assert (
        _retrains(db)
        == [("firing", "pending", None)] * 2
        + [("suppressed", "suppressed", "the daily budget of 2 is spent")] * 4
    )


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["body"])


def test_resolves_go_only_where_the_firing_notification_went(db: Engine) -> None:
    alerts = _policy_engine(min_windows=5)
    _run(db, alerts, {0: [result(0)], 1: [result(1, value=0.05)]}, until=2)
    assert [(row["status"], row["state"]) for row in _rows(db, "retrain")] == [
        ("firing", "suppressed")
    ]


def test_a_refresh_policy_that_makes_no_sense_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        _policy_engine(cooldown="-1h")
    with pytest.raises(ValueError, match="min_label_coverage"):
        _policy_engine(min_label_coverage=1.5)
