"""The alerting tables: created by the migration, and the outbox as ``replay`` reads it."""

from __future__ import annotations

import json

import httpx
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, inspect
from support.alerts import Clock, alerts_config, evaluate, recent
from support.receivers import SlackReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, metadata, pending_notifications
from driftwarden.core.times import format_time
from driftwarden.monitor import storage


def test_the_migration_creates_the_alerting_tables_as_declared(database_url: str) -> None:
    assert metadata in storage.SCHEMA
    engine = storage.create(database_url)
    storage.upgrade(engine)
    assert {t.name for t in metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, list(storage.SCHEMA))
    assert differences == [], f"tables changed without a migration: {differences}"
    engine.dispose()


def test_pending_notifications_are_what_replay_writes_without_secrets(
    sqlite_engine: Engine, clock: Clock
) -> None:
    channels = {
        "slack": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/SECRET1"},
        "pd": {"type": "pagerduty", "routing_key": "SECRET2", "url": "https://pd.example/x"},
        "retrain": {
            "type": "retrain",
            "url": "https://ml.example/retrain",
            "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        },
    }
    rules = [{"name": "drift", "severity": "warning", "channels": list(channels)}]
    alerts = AlertEngine(alerts_config(channels=channels, rules=rules, group_wait="0s"))
    report = evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
    with sqlite_engine.connect() as connection:
        lines = [entry.to_replay() for entry in pending_notifications(connection)]
    assert [(line["channel"], line["idempotency_key"]) for line in lines] == [
        (n.channel, n.idempotency_key) for n in report.notifications
    ]
    assert {line["channel"] for line in lines} == set(channels)
    assert all(set(line) == {"at", "channel", "idempotency_key", "payload"} for line in lines)
    assert {line["at"] for line in lines} == {format_time(clock())}
    text = json.dumps(lines)
    assert "SECRET1" not in text and "SECRET2" not in text and "MfKQ9r8" not in text


def test_replay_notifications_are_held_and_never_delivered(
    sqlite_engine: Engine, clock: Clock
) -> None:

    with SlackReceiver() as slack, httpx.Client(trust_env=False) as http:
        channels = {"slack": {"type": "slack", "url": slack.url}}
        rules = [{"name": "drift", "severity": "warning", "channels": ["slack"]}]
        config = alerts_config(channels=channels, rules=rules, group_wait="0s")
        evaluate(AlertEngine(config, deliver=False), sqlite_engine, recent(clock, "x"), clock.now)
        dispatcher = Dispatcher(
            sqlite_engine, config, registry=CollectorRegistry(), clock=clock, http=http
        )
        assert dispatcher.run_once() == 0
        assert slack.received == []
    with sqlite_engine.connect() as connection:
        (entry,) = pending_notifications(connection)
    assert entry.state == "held" and entry.channel == "slack"
