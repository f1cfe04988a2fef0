"""Delivery to local receivers that answer like Slack, PagerDuty and Alertmanager.

The dispatcher runs round by round (``run_once``) on a clock the tests move,
so backoff, ``Retry-After``, rate limits and give-up ages are checked without
sleeping.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from support.alerts import Clock, alerts_config, evaluate, recent, tick
from support.receivers import AlertmanagerReceiver, PagerDutyReceiver, SlackReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, deliveries
from driftwarden.alerts.backoff import backoff, parse_retry_after
from driftwarden.alerts.dispatcher import AUTH_ATTEMPTS
from driftwarden.alerts.tables import alert_outbox
from driftwarden.core.times import wall_clock_ms

PSI = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "warning"}


def _config(channels: dict[str, Any], **settings: Any) -> Any:
    settings.setdefault("group_wait", "0s")
    settings.setdefault("delivery", {"timeout": "2s"})
    rule = {**PSI, **settings.pop("rule", {}), "channels": list(channels)}
    return alerts_config(channels=channels, rules=[rule], **settings)


def _dispatcher(
    db: Engine, config: Any, clock: Clock, http: httpx.Client, registry: Any = None
) -> Dispatcher:
    return Dispatcher(
        db,
        config,
        registry=registry or CollectorRegistry(),
        clock=clock,
        http=http,
        random=lambda: 0.0,
    )


def _rows(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as connection:
        rows = connection.execute(select(alert_outbox).order_by(alert_outbox.c.id)).mappings()
        return [dict(row) for row in rows]


def _drain(dispatcher: Dispatcher, clock: Clock, db: Engine, step: float = 1.0) -> int:
    """Run rounds, moving the clock, until nothing is pending; rounds taken."""
    for rounds in range(1, 200):
        dispatcher.run_once()
        if all(row["state"] != "pending" for row in _rows(db)):
            return rounds
        clock.advance(seconds=step)
    raise AssertionError("the outbox did not drain")


def test_twenty_drifted_features_page_once_then_stay_quiet_then_resolve_once(
    db: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
) -> None:
    channels = {
        "slack": {"type": "slack", "url": f"{slack.url}/services/T/B/x"},
        "pagerduty": {"type": "pagerduty", "routing_key": "r" * 32, "url": f"{pagerduty.url}/v2"},
    }
    config = _config(channels, group_interval="5m", repeat_interval="4h")
    alerts, dispatcher = AlertEngine(config), _dispatcher(db, config, clock, http)
    features = [f"feature_{i:02d}" for i in range(20)]

    evaluate(alerts, db, recent(clock, *features), clock.now)
    _drain(dispatcher, clock, db)
    assert len(slack.messages) == 1 and len(pagerduty.events) == 1
    (message,) = slack.messages
    assert message["text"] == "Warning: credit-default — psi-high (20 firing)"
    assert all(f in json.dumps(message) for f in features)
    assert list(pagerduty.incidents.values()) == ["triggered"]

    for _ in range(3):  # the next windows, same drift: nothing new
        clock.advance(hours=1)
        evaluate(alerts, db, recent(clock, *features), clock.now)
        _drain(dispatcher, clock, db)
    assert len(slack.messages) == 1 and len(pagerduty.events) == 1

    clock.advance(hours=1, minutes=1)  # repeat_interval since the first message
    evaluate(alerts, db, recent(clock, *features), clock.now)
    _drain(dispatcher, clock, db)
    assert len(slack.messages) == 2 and len(pagerduty.events) == 2
    assert len(pagerduty.incidents) == 1

    clock.advance(hours=1)
    evaluate(alerts, db, recent(clock, *features, value=0.05), clock.now)
    _drain(dispatcher, clock, db)
    assert [m["text"] for m in slack.messages[2:]] == ["Resolved: credit-default — psi-high"]
    assert [e["event_action"] for e in pagerduty.events[2:]] == ["resolve"]
    assert list(pagerduty.incidents.values()) == ["resolved"]
    assert len(slack.received) == 3 and len(pagerduty.received) == 3


def test_a_receiver_down_for_a_while_gets_everything_once_when_back(
    db: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url, "min_interval": "0s"}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(db, config, clock, http)
    for model in ("a", "b", "c", "d"):
        evaluate(alerts, db, recent(clock, "x", model=model), clock.now)
    slack.fail_next(6, status=503)
    dispatcher.run_once()
    assert len(slack.received) == 1  # one probe while it is down, not one per row
    rounds = _drain(dispatcher, clock, db)
    assert rounds > 3
    keys = [row["idempotency_key"] for row in _rows(db)]
    assert len(keys) == 4 and all(row["state"] == "delivered" for row in _rows(db))
    assert len(slack.accepted) == 4
    assert len({m["blocks"][-1]["elements"][0]["text"] for m in slack.messages}) == 4


def test_retry_after_is_honoured(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(1, status=429, retry_after="7")
    assert dispatcher.run_once() == 0
    clock.advance(seconds=6.9)
    dispatcher.run_once()
    assert len(slack.received) == 1
    clock.advance(seconds=0.1)
    assert dispatcher.run_once() == 1
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 2, 200)


def test_other_4xx_are_not_retried_and_the_failure_stays_visible(
    sqlite_engine: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    config = _config({"slack": {"type": "slack", "url": slack.url}})
    alerts = AlertEngine(config)
    dispatcher = _dispatcher(sqlite_engine, config, clock, http, registry)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(1, status=404)
    with caplog.at_level(logging.INFO, logger="driftwarden.alerts"):
        dispatcher.run_once()
        for _ in range(3):
            clock.advance(minutes=10)
            dispatcher.run_once()
    assert len(slack.received) == 1
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"], row["last_status"]) == ("failed", 1, 404)
    with sqlite_engine.connect() as connection:
        (failed,) = deliveries(connection, failed_only=True)
    assert failed.to_json()["last_error"].startswith("HTTP 404")
    sample = registry.get_sample_value
    assert sample("driftwarden_notifications_total", {"channel": "slack", "outcome": "rejected"})
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "alert_delivery_failed"]
    assert record.outcome == "rejected" and record.http_status == 404


def test_408_and_5xx_are_retried_with_exponential_backoff(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config(
        {"slack": {"type": "slack", "url": slack.url}},
        delivery={"backoff_initial": "2s", "backoff_max": "1m", "timeout": "2s"},
    )
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(1, status=408)
    slack.fail_next(2, status=502)
    waits = []
    for _ in range(3):
        before = clock.now
        dispatcher.run_once()
        (row,) = _rows(sqlite_engine)
        waits.append((row["next_attempt_at"] - int(before.timestamp() * 1000)) / 1000)
        clock.advance(seconds=waits[-1])
    assert waits == [1.0, 2.0, 4.0]  # 2 s × 2^(n-1), jitter factor 0.5 with random() = 0
    assert dispatcher.run_once() == 1
    assert _rows(sqlite_engine)[0]["attempts"] == 4


def test_backoff_formula_and_retry_after_parsing(clock: Clock) -> None:
    initial, ceiling = timedelta(seconds=1), timedelta(seconds=30)
    assert backoff(1, initial, ceiling, lambda: 0.0) == timedelta(seconds=0.5)
    assert backoff(3, initial, ceiling, lambda: 0.999) == timedelta(seconds=4 * 0.9995)
    assert backoff(40, initial, ceiling, lambda: 0.0) == timedelta(seconds=15)
    assert parse_retry_after("120", clock()) == 120.0
    later = (clock.now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, clock()) == 30.0
    assert parse_retry_after("soon", clock()) is None


def test_a_hanging_receiver_times_out_and_gets_the_notification_later(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url}}, delivery={"timeout": "200ms"})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.hang_next(1)
    started = time.monotonic()
    assert dispatcher.run_once() == 0
    assert time.monotonic() - started < 1.0
    assert "no answer within 0.2 s" in _rows(sqlite_engine)[0]["last_error"]
    _drain(dispatcher, clock, sqlite_engine)
    assert len(slack.received) == 2 and len(slack.accepted) == 1


def test_deliveries_give_up_after_max_age_or_max_attempts(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    registry = CollectorRegistry()
    config = _config(
        {"slack": {"type": "slack", "url": slack.url, "min_interval": "0s"}},
        delivery={"max_age": "1h", "max_attempts": 5, "backoff_max": "1m", "timeout": "2s"},
    )
    alerts = AlertEngine(config)
    dispatcher = _dispatcher(sqlite_engine, config, clock, http, registry)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(100, status=500)
    dispatcher.run_once()
    clock.advance(minutes=30)
    dispatcher.refresh_metrics()
    oldest = {"channel": "slack"}
    assert registry.get_sample_value("driftwarden_outbox_oldest_pending_seconds", oldest) == 1800
    _drain(dispatcher, clock, sqlite_engine, step=60)
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"]) == ("failed", 5)

    evaluate(alerts, sqlite_engine, recent(clock, "x", model="other"), clock.now)
    clock.advance(hours=2)  # the dispatcher was down longer than max_age
    dispatcher.run_once()
    assert _rows(sqlite_engine)[1]["state"] == "failed"
    assert _rows(sqlite_engine)[1]["last_error"].startswith("not delivered within max_age")
    expired = {"channel": "slack", "outcome": "expired"}
    assert registry.get_sample_value("driftwarden_notifications_total", expired) == 2
    assert len(slack.received) == 5


def test_a_resolve_never_overtakes_its_trigger(
    db: Engine, clock: Clock, http: httpx.Client, pagerduty: PagerDutyReceiver
) -> None:
    channels = {"pd": {"type": "pagerduty", "routing_key": "k" * 32, "url": pagerduty.url}}
    config = _config(channels, group_interval="1s")
    alerts, dispatcher = AlertEngine(config), _dispatcher(db, config, clock, http)
    evaluate(alerts, db, recent(clock, "x"), clock.now)
    pagerduty.fail_next(3, status=500)
    dispatcher.run_once()
    clock.advance(hours=1)
    evaluate(alerts, db, recent(clock, "x", value=0.0), clock.now)
    assert [row["status"] for row in _rows(db)] == ["firing", "resolved"]
    _drain(dispatcher, clock, db)
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]


def test_slack_gets_at_most_one_message_per_min_interval(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url, "min_interval": "1s"}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    for model in ("a", "b", "c"):
        evaluate(alerts, sqlite_engine, recent(clock, "x", model=model), clock.now)
    assert [dispatcher.run_once(), dispatcher.run_once()] == [1, 0]
    clock.advance(seconds=0.5)
    assert dispatcher.run_once() == 0
    clock.advance(seconds=0.5)
    assert dispatcher.run_once() == 1


def test_notifications_for_a_removed_channel_fail_visibly(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    dispatcher.reload(alerts_config())
    assert dispatcher.run_once() == 0
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["last_error"]) == ("failed", "channel is no longer configured")


def test_metrics_follow_alerts_and_deliveries(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    registry = CollectorRegistry()
    config = _config({"slack": {"type": "slack", "url": slack.url}}, rule={"for": 2})
    alerts = AlertEngine(config)
    dispatcher = _dispatcher(sqlite_engine, config, clock, http, registry)
    sample = registry.get_sample_value
    state = {"rule": "psi-high", "severity": "warning"}

    evaluate(alerts, sqlite_engine, recent(clock, "x", "y", ago=1), clock.now)
    dispatcher.refresh_metrics()
    assert sample("driftwarden_alerts", {**state, "state": "pending"}) == 2
    assert sample("driftwarden_alerts", {**state, "state": "firing"}) == 0
    evaluate(alerts, sqlite_engine, recent(clock, "x", "y"), clock.now)
    dispatcher.refresh_metrics()
    assert sample("driftwarden_alerts", {**state, "state": "firing"}) == 2
    assert sample("driftwarden_outbox_pending", {"channel": "slack"}) == 1
    dispatcher.run_once()
    dispatcher.refresh_metrics()
    assert sample("driftwarden_outbox_pending", {"channel": "slack"}) == 0
    assert sample("driftwarden_outbox_oldest_pending_seconds", {"channel": "slack"}) == 0
    assert sample("driftwarden_notifications_total", {"channel": "slack", "outcome": "sent"}) == 1
    assert sample("driftwarden_notification_delivery_seconds_count", {"channel": "slack"}) == 1
    labels = {
        tuple(sorted(s.labels))
        for metric in registry.collect()
        if metric.name.startswith("driftwarden_")
        for s in metric.samples
    }
    allowed = {"rule", "severity", "state", "channel", "outcome", "le"}
    assert all(set(names) <= allowed for names in labels)


def test_every_notification_is_one_log_line(
    sqlite_engine: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url, "min_interval": "0s"}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    with caplog.at_level(logging.INFO, logger="driftwarden.alerts"):
        for model in ("a", "b"):
            evaluate(alerts, sqlite_engine, recent(clock, "x", model=model), clock.now)
        dispatcher.run_once()
    sent = [r for r in caplog.records if getattr(r, "event", "") == "alert_sent"]
    assert sorted(r.model for r in sent) == ["a", "b"]
    assert {r.idempotency_key for r in sent} == {
        row["idempotency_key"] for row in _rows(sqlite_engine)
    }


def test_the_log_channel_writes_the_notification(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config({"log": {"type": "log", "level": "warning"}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "income"), clock.now)
    with caplog.at_level(logging.INFO, logger="driftwarden.alerts"):
        assert dispatcher.run_once() == 1
    (line,) = [r for r in caplog.records if getattr(r, "event", "") == "alert_notification"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == "firing credit-default psi-high: income: psi 0.3 > 0.2"


def test_alertmanager_receives_the_alerts_and_their_resolution(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, alertmanager: AlertmanagerReceiver
) -> None:
    config = _config({"am": {"type": "alertmanager", "url": alertmanager.url}})
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "x", "y"), clock.now)
    dispatcher.run_once()
    clock.advance(hours=1)
    evaluate(alerts, sqlite_engine, recent(clock, "x", "y", value=0.0), clock.now)
    dispatcher.run_once()
    firing, resolved = alertmanager.alerts[:2], alertmanager.alerts[2:]
    assert [a["labels"]["feature"] for a in firing] == ["x", "y"]
    assert firing[0]["labels"]["alertname"] == "psi-high"
    assert firing[0]["endsAt"] > clock.now.strftime("%Y-%m-%dT%H:%M:%S")
    assert all(a["endsAt"] < clock.now.strftime("%Y-%m-%dT%H:%M:%S") for a in resolved)


def test_the_background_thread_delivers_and_stops(
    sqlite_engine: Engine, http: httpx.Client, slack: SlackReceiver
) -> None:
    from datetime import UTC, datetime

    clock = Clock(datetime.now(UTC))
    config = _config(
        {"slack": {"type": "slack", "url": slack.url, "min_interval": "0s"}},
        delivery={"poll_interval": "50ms", "timeout": "2s"},
    )
    alerts = AlertEngine(config)
    dispatcher = Dispatcher(
        sqlite_engine, config, registry=CollectorRegistry(), clock=wall_clock_ms
    )
    dispatcher.start()
    try:
        for model in ("a", "b"):
            evaluate(alerts, sqlite_engine, recent(clock, "x", model=model), clock.now)
        deadline = time.monotonic() + 5
        while len(slack.accepted) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        assert dispatcher.stop(timeout=5)
    assert len(slack.accepted) == 2


def test_tick_without_results_flushes_waiting_groups(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    config = _config({"slack": {"type": "slack", "url": slack.url}}, group_wait="30s")
    alerts, dispatcher = AlertEngine(config), _dispatcher(sqlite_engine, config, clock, http)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    assert dispatcher.run_once() == 0
    clock.advance(seconds=30)
    assert len(tick(alerts, sqlite_engine, clock.now).notifications) == 1
    assert dispatcher.run_once() == 1


def test_a_401_is_retried_and_delivered_when_the_receiver_accepts_again(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    registry = CollectorRegistry()
    config = _config({"slack": {"type": "slack", "url": slack.url}})
    alerts = AlertEngine(config)
    dispatcher = _dispatcher(sqlite_engine, config, clock, http, registry)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(1, status=401)
    assert dispatcher.run_once() == 0
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["last_status"]) == ("pending", 401)
    clock.advance(seconds=0.5)  # backoff_initial 1 s × jitter factor 0.5
    assert dispatcher.run_once() == 1
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 2, 200)
    sample = registry.get_sample_value
    assert sample("driftwarden_notifications_total", {"channel": "slack", "outcome": "retry"}) == 1
    assert sample("driftwarden_notifications_total", {"channel": "slack", "outcome": "sent"}) == 1


def test_a_403_that_persists_fails_after_the_bounded_attempts_and_is_counted(
    sqlite_engine: Engine,
    clock: Clock,
    http: httpx.Client,
    slack: SlackReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    config = _config({"slack": {"type": "slack", "url": slack.url}})
    alerts = AlertEngine(config)
    dispatcher = _dispatcher(sqlite_engine, config, clock, http, registry)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(100, status=403)
    started, waits = clock(), []
    with caplog.at_level(logging.INFO, logger="driftwarden.alerts"):
        for _ in range(AUTH_ATTEMPTS + 3):
            dispatcher.run_once()
            (row,) = _rows(sqlite_engine)
            if row["state"] != "pending":
                break
            waits.append(row["next_attempt_at"] - clock())
            clock.advance(milliseconds=waits[-1])
    assert (row["state"], row["attempts"], row["last_status"]) == ("failed", AUTH_ATTEMPTS, 403)
    assert row["last_error"].startswith("HTTP 403")
    assert len(slack.received) == AUTH_ATTEMPTS
    assert waits == [500 * 2**n for n in range(AUTH_ATTEMPTS - 1)]  # the usual backoff
    assert clock() - started == 500 * (2 ** (AUTH_ATTEMPTS - 1) - 1)
    counted = {
        outcome: registry.get_sample_value(
            "driftwarden_notifications_total", {"channel": "slack", "outcome": outcome}
        )
        for outcome in ("retry", "unauthorized", "rejected", "expired")
    }
    assert counted == {
        "retry": AUTH_ATTEMPTS - 1,
        "unauthorized": 1,
        "rejected": None,
        "expired": None,
    }
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "alert_delivery_failed"]
    assert (record.outcome, record.http_status, record.attempt) == (
        "unauthorized",
        403,
        AUTH_ATTEMPTS,
    )
    clock.advance(hours=1)
    dispatcher.run_once()
    assert len(slack.received) == AUTH_ATTEMPTS  # failed for good


def test_max_attempts_below_the_401_bound_ends_sooner_still_as_unauthorized(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    registry = CollectorRegistry()
    config = _config(
        {"slack": {"type": "slack", "url": slack.url}},
        delivery={"max_attempts": 2, "timeout": "2s"},
    )
    alerts = AlertEngine(config)
    dispatcher = _dispatcher(sqlite_engine, config, clock, http, registry)
    evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    slack.fail_next(100, status=401)
    _drain(dispatcher, clock, sqlite_engine)
    (row,) = _rows(sqlite_engine)
    assert (row["state"], row["attempts"]) == ("failed", 2)
    unauthorized = {"channel": "slack", "outcome": "unauthorized"}
    assert registry.get_sample_value("driftwarden_notifications_total", unauthorized) == 1
