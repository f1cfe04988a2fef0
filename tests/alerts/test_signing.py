"""The signed webhooks: ``retrain.v1`` and ``webhook.v1`` payloads, Standard Webhooks signatures.

The receivers verify signatures with the ``standardwebhooks`` package and
validate every body against the committed JSON Schema (a 400 would leave the
row failed, which the tests would see).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import jsonschema
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select, update
from support.alerts import OLD_SECRET, SECRET, Clock, alerts_config, evaluate, recent
from support.receivers import WebhookReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, pending_notifications, schema
from driftwarden.alerts.signing import signature
from driftwarden.alerts.tables import alert_outbox

PSI = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "warning"}


def _setup(
    db: Engine, clock: Clock, http: httpx.Client, channels: dict[str, Any], **settings: Any
) -> tuple[AlertEngine, Dispatcher]:
    settings.setdefault("group_wait", "0s")
    rules = [{**PSI, "channels": list(channels)}]
    config = alerts_config(channels=channels, rules=rules, **settings)
    dispatcher = Dispatcher(
        db, config, registry=CollectorRegistry(), clock=clock, http=http, random=lambda: 0.0
    )
    return AlertEngine(config), dispatcher


def _states(db: Engine) -> list[str]:
    with db.connect() as connection:
        return list(connection.scalars(select(alert_outbox.c.state).order_by(alert_outbox.c.id)))


def test_the_retrain_pipeline_hears_each_incident_once_firing_and_once_resolved(
    db: Engine, clock: Clock, http: httpx.Client, retrain: WebhookReceiver
) -> None:
    channel = {"type": "retrain", "url": f"{retrain.url}/retrain", "secrets": [SECRET]}
    alerts, dispatcher = _setup(
        db, clock, http, {"retrain": channel}, group_interval="10s", repeat_interval="30s"
    )
    evaluate(alerts, db, recent(clock, "income", "age"), clock.now)
    dispatcher.run_once()
    for _ in range(3):  # updates and repeats are not for the pipeline
        clock.advance(seconds=20)
        evaluate(alerts, db, recent(clock, "income", "age", "region"), clock.now)
        dispatcher.run_once()
    clock.advance(seconds=20)
    evaluate(alerts, db, recent(clock, "income", "age", "region", value=0.01), clock.now)
    dispatcher.run_once()

    assert _states(db) == ["delivered", "delivered"]
    firing, resolved = retrain.processed
    incident = firing["incident_id"]
    assert [firing["idempotency_key"], resolved["idempotency_key"]] == [
        f"dw-{incident}-firing",
        f"dw-{incident}-resolved",
    ]
    assert [r.headers["webhook-id"] for r in retrain.accepted] == [
        firing["idempotency_key"],
        resolved["idempotency_key"],
    ]
    assert firing["state"] == "firing" and resolved["state"] == "resolved"
    assert (firing["model"], firing["model_version"]) == ("credit-default", "7")
    assert firing["rule"] == {"name": "psi-high", "severity": "warning"}
    assert [(e["feature"], e["value"], e["threshold"]) for e in firing["evidence"]] == [
        ("age", 0.3, 0.2),
        ("income", 0.3, 0.2),
    ]
    assert firing["reference_id"] == "9f2c4e1a7b3d"
    assert firing["window"]["first_index"] == firing["window"]["last_index"]
    assert firing["resolved_at"] is None and resolved["resolved_at"] is not None
    assert {e["feature"] for e in resolved["evidence"]} == {"income", "age", "region"}
    assert retrain.duplicates == 0


def test_payloads_validate_against_the_committed_schemas(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client
) -> None:
    channels = {
        "retrain": {"type": "retrain", "url": "http://127.0.0.1:9/r", "secrets": [SECRET]},
        "hook": {"type": "webhook", "url": "http://127.0.0.1:9/w", "secrets": [SECRET]},
    }
    alerts, _ = _setup(sqlite_engine, clock, http, channels)
    evaluate(alerts, sqlite_engine, recent(clock, "x", "y"), clock.now)
    clock.advance(hours=1)
    evaluate(alerts, sqlite_engine, recent(clock, "x") + recent(clock, "y", value=0), clock.now)
    clock.advance(hours=1)
    evaluate(alerts, sqlite_engine, recent(clock, "x", value=0), clock.now)
    with sqlite_engine.connect() as connection:
        entries = pending_notifications(connection)
    validators = {
        name: jsonschema.Draft202012Validator(
            schema(f"{name}.v1"), format_checker=jsonschema.FormatChecker()
        )
        for name in ("retrain", "webhook")
    }
    for validator in validators.values():
        validator.check_schema(validator.schema)
    kinds = [(e.channel, e.payload.get("status") or e.payload.get("state")) for e in entries]
    assert kinds == [
        ("hook", "firing"),
        ("retrain", "firing"),
        ("hook", "firing"),
        ("hook", "resolved"),
        ("retrain", "resolved"),
    ]
    for entry in entries:
        validators["retrain" if entry.channel == "retrain" else "webhook"].validate(entry.payload)
    broken = {**entries[1].payload, "state": "unknown"}
    assert not validators["retrain"].is_valid(broken)


def test_the_generic_webhook_hears_every_notification(
    db: Engine, clock: Clock, http: httpx.Client, webhook: WebhookReceiver
) -> None:
    channel = {"type": "webhook", "url": webhook.url, "secrets": [SECRET], "headers": {"x-t": "1"}}
    alerts, dispatcher = _setup(
        db, clock, http, {"hook": channel}, group_interval="30s", repeat_interval="1m"
    )
    evaluate(alerts, db, recent(clock, "x"), clock.now)
    dispatcher.run_once()
    clock.advance(minutes=1)
    evaluate(alerts, db, recent(clock, "x"), clock.now)
    dispatcher.run_once()
    clock.advance(minutes=1)
    evaluate(alerts, db, recent(clock, "x", value=0), clock.now)
    dispatcher.run_once()
    assert [p["status"] for p in webhook.processed] == ["firing", "firing", "resolved"]
    keys = [p["idempotency_key"] for p in webhook.processed]
    assert [key.rsplit("-", 1)[1] for key in keys] == ["1", "2", "3"]
    assert webhook.accepted[0].headers["x-t"] == "1"


def test_secrets_rotate_without_downtime(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client
) -> None:
    with (
        WebhookReceiver([SECRET]) as new,
        WebhookReceiver([OLD_SECRET]) as old,
        WebhookReceiver(["whsec_" + base64.b64encode(b"x" * 24).decode()]) as stranger,
    ):
        channels = {
            name: {"type": "webhook", "url": receiver.url, "secrets": [OLD_SECRET, SECRET]}
            for name, receiver in (("new", new), ("old", old), ("stranger", stranger))
        }
        alerts, dispatcher = _setup(sqlite_engine, clock, http, channels)
        evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
        dispatcher.run_once()
        assert len(new.processed) == len(old.processed) == 1
        assert len(stranger.received) == 1 and stranger.processed == []
    header = new.accepted[0].headers["webhook-signature"]
    assert len(header.split(" ")) == 2 and all(s.startswith("v1,") for s in header.split(" "))
    # the stranger's 401 is retried (a bounded number of times: test_dispatcher.py)
    assert sorted(_states(sqlite_engine)) == ["delivered", "delivered", "pending"]


def test_a_receiver_that_rotated_first_gets_the_notification_once_driftwarden_follows(
    sqlite_engine: Engine, clock: Clock, http: httpx.Client
) -> None:
    """The receiver moved to the new secret before driftwarden had it: 401, retried after
    the backoff; the reload (SIGHUP) adds the new secret and the retry is answered 200."""
    with WebhookReceiver([SECRET], schema("retrain.v1")) as receiver:
        channel = {"type": "retrain", "url": receiver.url, "secrets": [OLD_SECRET]}
        alerts, dispatcher = _setup(sqlite_engine, clock, http, {"retrain": channel})
        evaluate(alerts, sqlite_engine, recent(clock, "x"), clock.now)
        assert dispatcher.run_once() == 0
        rotated = {"retrain": {**channel, "secrets": [OLD_SECRET, SECRET]}}
        rules = [{**PSI, "channels": ["retrain"]}]
        dispatcher.reload(alerts_config(channels=rotated, rules=rules, group_wait="0s"))
        clock.advance(seconds=1)
        assert dispatcher.run_once() == 1
    assert len(receiver.received) == 2 and len(receiver.processed) == 1
    with sqlite_engine.connect() as connection:
        row = connection.execute(select(alert_outbox)).mappings().one()
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 2, 200)


def test_the_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    body = b'{"a":1}'
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, b"dw-abc.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert signature([SECRET], "dw-abc", 1_700_000_000, body) == f"v1,{expected}"


def test_a_redelivery_after_a_lost_answer_reaches_the_receiver_as_a_duplicate(
    db: Engine, clock: Clock, http: httpx.Client, retrain: WebhookReceiver
) -> None:
    channel = {"type": "retrain", "url": retrain.url, "secrets": [SECRET]}
    alerts, dispatcher = _setup(db, clock, http, {"retrain": channel})
    evaluate(alerts, db, recent(clock, "x"), clock.now)
    dispatcher.run_once()
    with db.begin() as connection:  # the dispatcher died before recording the delivery
        connection.execute(update(alert_outbox).values(state="pending", delivered_at=None))
    dispatcher.run_once()
    assert len(retrain.accepted) == 2
    assert retrain.duplicates == 1 and len(retrain.processed) == 1
