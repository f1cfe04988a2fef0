"""Durable delivery: a killed dispatcher loses nothing, two dispatchers never send a row twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select
from support.alerts import SECRET, Clock, alerts_config, evaluate, recent
from support.receivers import WebhookReceiver
from support.threads import at_once

from driftwarden.alerts import AlertEngine, Dispatcher, schema
from driftwarden.alerts.outbox import claim
from driftwarden.alerts.tables import alert_outbox
from driftwarden.core.times import to_ms
from driftwarden.monitor import storage

MODELS = [f"model-{i:02d}" for i in range(30)]


def _settings(url: str, **delivery: str) -> dict:
    return {
        "group_wait": "0s",
        "channels": {"retrain": {"type": "retrain", "url": url, "secrets": [SECRET]}},
        "rules": [
            {
                "name": "drift",
                "match": ["kind=data_drift"],
                "severity": "warning",
                "channels": ["retrain"],
            }
        ],
        "delivery": {"timeout": "1s", "batch_size": 2, "poll_interval": "20ms", **delivery},
    }


def _queue(db: Engine, clock: Clock, settings: dict) -> None:
    """One notification per model, queued as the daemon would."""
    alerts = AlertEngine(alerts_config(**settings))
    for model in MODELS:
        evaluate(alerts, db, recent(clock, "x", model=model), clock.now)


def _pending(db: Engine) -> int:
    with db.connect() as connection:
        query = select(func.count()).where(alert_outbox.c.state == "pending")
        return connection.scalar(query)


def _dispatcher(db: Engine, settings: dict, clock: Clock, http: httpx.Client) -> Dispatcher:
    return Dispatcher(
        db, alerts_config(**settings), registry=CollectorRegistry(), clock=clock, http=http
    )


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from prometheus_client import CollectorRegistry
    from sqlalchemy import create_engine
    from driftwarden.alerts import AlertsConfig, Dispatcher
    from driftwarden.core.times import wall_clock_ms

    engine = create_engine(sys.argv[1], connect_args={"timeout": 30})
    config = AlertsConfig.model_validate(json.loads(sys.argv[2]))
    clock = wall_clock_ms
    Dispatcher(engine, config, registry=CollectorRegistry(), clock=clock).start()
    print("started", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.slow
def test_a_dispatcher_killed_mid_delivery_loses_nothing(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client
) -> None:
    url = str(sqlite_engine.url)
    with WebhookReceiver([SECRET], schema("retrain.v1"), delay=0.03) as receiver:
        settings = _settings(receiver.url)
        _queue(sqlite_engine, clock, settings)
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, url, json.dumps(settings)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"started\n"
            deadline = time.monotonic() + 20
            while len(receiver.received) < 5 and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        killed_after = len(receiver.processed)
        assert 1 <= killed_after < len(MODELS)
        assert _pending(sqlite_engine) > 0

        clock.advance(seconds=60)  # the dead process's leases have expired
        restarted = _dispatcher(sqlite_engine, settings, clock, http)
        for _ in range(100):
            restarted.run_once()
            if not _pending(sqlite_engine):
                break
        assert _pending(sqlite_engine) == 0
        assert len(receiver.processed) == len(MODELS)
        assert {p["model"] for p in receiver.processed} == set(MODELS)
        assert receiver.duplicates <= 2  # at most the rows in flight when it died


def test_rows_leased_by_a_vanished_dispatcher_are_delivered_once_the_lease_expires(
    db: Engine, clock: Clock, http: httpx.Client, retrain: WebhookReceiver
) -> None:
    settings = _settings(retrain.url)
    _queue(db, clock, settings)
    with db.begin() as connection:
        now = to_ms(clock.now)
        orphaned = claim(
            connection, "retrain", owner="dead", now=now, lease_until=now + 30_000, limit=4
        )
    assert len(orphaned) == 4
    dispatcher = _dispatcher(db, settings, clock, http)
    for _ in range(20):
        dispatcher.run_once()
    assert len(retrain.processed) == len(MODELS) - 4
    clock.advance(seconds=30)
    for _ in range(5):
        dispatcher.run_once()
    assert len(retrain.processed) == len(MODELS) and retrain.duplicates == 0


@pytest.mark.parametrize("instances", [2, 3])
def test_dispatchers_sharing_a_database_never_deliver_a_row_twice(
    db: Engine, clock: Clock, instances: int
) -> None:
    with WebhookReceiver([SECRET], schema("retrain.v1"), delay=0.002) as receiver:
        settings = _settings(receiver.url, batch_size="3")
        _queue(db, clock, settings)
        url = db.url.render_as_string(hide_password=False)
        engines = [storage.create(url) for _ in range(instances)]
        clients = [httpx.Client(trust_env=False) for _ in range(instances)]
        registries = [CollectorRegistry() for _ in range(instances)]
        dispatchers = [
            Dispatcher(engine, alerts_config(**settings), registry=r, clock=clock, http=client)
            for engine, client, r in zip(engines, clients, registries, strict=True)
        ]

        def run(dispatcher: Dispatcher) -> None:
            deadline = time.monotonic() + 20
            while _pending(db) and time.monotonic() < deadline:
                dispatcher.run_once()

        outcomes = at_once(run, dispatchers, timeout=30)
        for client in clients:
            client.close()
        for engine in engines:
            engine.dispose()
    assert outcomes == [None] * instances
    assert _pending(db) == 0
    assert len(receiver.received) == len(MODELS)
    assert receiver.duplicates == 0 and len(receiver.processed) == len(MODELS)
    sent = [
        r.get_sample_value(
            "driftwarden_notifications_total", {"channel": "retrain", "outcome": "sent"}
        )
        or 0
        for r in registries
    ]
    assert sum(sent) == len(MODELS) and sum(1 for n in sent if n) >= 2  # they did share the work
