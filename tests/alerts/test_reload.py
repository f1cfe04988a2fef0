"""A reload resolves what it regroups: every open incident the new configuration would not
produce is resolved to its channel — one dropped from the routes, one dropped altogether —
before the alerts regroup; an unchanged configuration changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from support.alerts import Clock, alerts_config, recent
from support.receivers import PagerDutyReceiver, SlackReceiver

from driftwarden.alerts import AlertEngine, Dispatcher
from driftwarden.alerts.tables import alert_outbox


def _config(channels: dict[str, Any], routes: list[str], **settings: Any) -> Any:
    rules = [
        {"name": f"{detector}-high", "match": [f"detector={detector}"], "above": 0.2}
        | {"severity": "critical", "channels": routes}
        for detector in ("psi", "ks")
    ]
    return alerts_config(channels=channels, rules=rules, group_wait="0s", **settings)


def _rows(db: Engine) -> list[tuple[str, str, str]]:
    with db.connect() as connection:
        query = select(alert_outbox.c.channel, alert_outbox.c.status, alert_outbox.c.group_key)
        return [tuple(row) for row in connection.execute(query.order_by(alert_outbox.c.id))]


def _reload(alerts: AlertEngine, db: Engine, config: Any, clock: Clock) -> dict[str, Any]:
    with db.begin() as connection:
        retired = alerts.reload(config)
        alerts.reconcile(clock(), connection, retired)
        alerts.tick(clock(), connection)
    return retired


def _drifted(alerts: AlertEngine, db: Engine, clock: Clock) -> None:
    results = recent(clock, "income") + recent(clock, "income", detector="ks")
    with db.begin() as connection:
        alerts.evaluate(results, clock(), connection)


def _deliver(db: Engine, config: Any, clock: Clock, http: httpx.Client, retired: Any) -> None:
    dispatcher = Dispatcher(db, config, registry=CollectorRegistry(), clock=clock, http=http)
    dispatcher.reload(config, retired)
    for _ in range(20):
        dispatcher.run_once()
        clock.advance(seconds=2)


def test_an_unchanged_configuration_changes_nothing(db: Engine, clock: Clock) -> None:
    config = _config({"log": {"type": "log"}}, ["log"])
    alerts = AlertEngine(config)
    _drifted(alerts, db, clock)
    before = _rows(db)
    _reload(alerts, db, config, clock)
    assert _rows(db) == before and len(before) == 2


def test_a_channel_dropped_from_the_routes_hears_its_incidents_resolve(
    db: Engine, clock: Clock, http: httpx.Client, slack: SlackReceiver
) -> None:
    channels = {"slack": {"type": "slack", "url": f"{slack.url}/services/T/B/x"}}
    channels |= {"log": {"type": "log"}}
    alerts = AlertEngine(_config(channels, ["slack", "log"]))
    _drifted(alerts, db, clock)
    config = _config(channels, ["log"])
    _reload(alerts, db, config, clock)
    slack_rows = [(channel, status) for channel, status, _ in _rows(db) if channel == "slack"]
    assert slack_rows == [("slack", "firing")] * 2 + [("slack", "resolved")] * 2
    _deliver(db, config, clock, http, {})
    headers = [m["blocks"][0]["text"]["text"] for m in slack.messages]
    assert [h.split(":")[0] for h in headers] == ["Critical"] * 2 + ["Resolved"] * 2


def test_a_channel_dropped_altogether_still_hears_its_incidents_resolve(
    db: Engine, clock: Clock, http: httpx.Client, pagerduty: PagerDutyReceiver
) -> None:
    pd = {"type": "pagerduty", "routing_key": "r" * 32, "url": f"{pagerduty.url}/v2"}
    alerts = AlertEngine(_config({"pd": pd, "log": {"type": "log"}}, ["pd", "log"]))
    _drifted(alerts, db, clock)
    config = _config({"log": {"type": "log"}}, ["log"])
    retired = _reload(alerts, db, config, clock)
    assert set(retired) == {"pd"}
    _deliver(db, config, clock, http, retired)
    assert sorted(pagerduty.incidents.values()) == ["resolved", "resolved"]


def test_regrouping_resolves_each_old_incident_then_opens_one_new(db: Engine, clock: Clock) -> None:
    alerts = AlertEngine(_config({"log": {"type": "log"}}, ["log"]))
    _drifted(alerts, db, clock)
    (_, _, first), (_, _, second) = _rows(db)
    _reload(alerts, db, _config({"log": {"type": "log"}}, ["log"], group_by=["model"]), clock)
    rows = _rows(db)
    assert rows[2:4] == [("log", "resolved", first), ("log", "resolved", second)]
    (new,) = {key for _, status, key in rows[4:] if status == "firing"}
    assert new not in (first, second) and len(rows) == 5
