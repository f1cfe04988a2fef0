"""The engine: rules, for: N, lifecycle, grouping, repeat, silences, inhibition, window age, reload.

Notifications are read back from the outbox (``pending_notifications``), as
``replay`` does; a ``log`` channel keeps payloads small and readable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from support.alerts import T0, alerts_config, at, make_engine, result, window_end

from driftwarden.alerts import (
    AlertEngine,
    EvaluationReport,
    add_silence,
    expire_silence,
    pending_notifications,
)
from driftwarden.alerts.tables import alert_groups, alert_states
from driftwarden.core.times import to_ms

LOG = {"log": {"type": "log"}}
PSI = {"name": "psi-high", "match": ["detector=psi"], "above": 0.2, "severity": "warning"}


def _engine(*rules: dict[str, Any], **settings: Any) -> AlertEngine:
    settings.setdefault("group_wait", "0s")
    config = alerts_config(
        channels=settings.pop("channels", LOG),
        rules=[{"channels": ["log"], **rule} for rule in rules or (PSI,)],
        **settings,
    )
    return AlertEngine(config, {"credit-default": timedelta(hours=1), "fraud": timedelta(hours=1)})


def _evaluate(alerts: AlertEngine, db: Engine, results: list, now) -> EvaluationReport:
    with db.begin() as connection:
        return alerts.evaluate(results, to_ms(now), connection)


def _tick(alerts: AlertEngine, db: Engine, now) -> EvaluationReport:
    with db.begin() as connection:
        return alerts.tick(to_ms(now), connection)


def _sent(report: EvaluationReport) -> list[tuple[str, list[tuple[str, str]]]]:
    """(status, [(subject, state), …]) per queued notification."""
    return [(n.status, n.alerts) for n in report.notifications]  # type: ignore[misc]


def _payloads(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as connection:
        return [entry.payload for entry in pending_notifications(connection)]


def _listed(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(alert["subject"], alert["state"]) for alert in payload["alerts"]]


def _drift(window: int, *features: str, value: float = 0.3, **changes: Any) -> list:
    return [result(window, feature, value, **changes) for feature in features]


def test_twenty_drifted_features_are_one_notification(db: Engine) -> None:
    alerts = _engine()
    features = [f"f{i:02d}" for i in range(20)]
    report = _evaluate(alerts, db, _drift(0, *features), window_end(0))
    assert [t.after for t in report.transitions] == ["firing"] * 20
    assert len(report.notifications) == 1
    assert report.notifications[0].alerts == 20
    (payload,) = _payloads(db)
    assert _listed(payload) == [(f, "firing") for f in features]


def test_a_window_without_drift_notifies_nothing(db: Engine) -> None:
    alerts = _engine()
    report = _evaluate(alerts, db, _drift(0, "age", "income", value=0.1), window_end(0))
    assert report.transitions == () and report.notifications == ()
    with db.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(alert_states)) == 0


def test_for_n_windows_fires_on_the_nth_consecutive_window(db: Engine) -> None:
    alerts = _engine({**PSI, "for": 3})
    assert [t.after for t in _evaluate(alerts, db, _drift(0, "x"), window_end(0)).transitions] == [
        "pending"
    ]
    assert _evaluate(alerts, db, _drift(1, "x"), window_end(1)).notifications == ()
    report = _evaluate(alerts, db, _drift(2, "x"), window_end(2))
    assert [(t.before, t.after) for t in report.transitions] == [("pending", "firing")]
    assert len(report.notifications) == 1


def test_a_window_without_drift_resets_the_count(db: Engine) -> None:
    alerts = _engine({**PSI, "for": 2})
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    report = _evaluate(alerts, db, _drift(1, "x", value=0.1), window_end(1))
    assert [(t.before, t.after) for t in report.transitions] == [("pending", None)]
    assert _evaluate(alerts, db, _drift(2, "x"), window_end(2)).notifications == ()
    assert len(_evaluate(alerts, db, _drift(3, "x"), window_end(3)).notifications) == 1


def test_a_gap_in_windows_breaks_the_streak(db: Engine) -> None:
    alerts = _engine({**PSI, "for": 2})
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    assert _evaluate(alerts, db, _drift(2, "x"), window_end(2)).notifications == ()
    assert len(_evaluate(alerts, db, _drift(3, "x"), window_end(3)).notifications) == 1


def test_a_re_upserted_window_counts_once(db: Engine) -> None:
    alerts = _engine({**PSI, "for": 3})
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    _evaluate(alerts, db, _drift(1, "x"), window_end(1))
    assert (
        _evaluate(alerts, db, _drift(1, "x", value=0.4), window_end(1, minutes=5)).transitions == ()
    )
    report = _evaluate(alerts, db, _drift(2, "x"), window_end(2))
    assert [(t.before, t.after) for t in report.transitions] == [("pending", "firing")]


def test_a_re_upserted_window_can_clear_the_alert(db: Engine) -> None:
    alerts = _engine()
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    report = _evaluate(alerts, db, _drift(0, "x", value=0.1), window_end(0, minutes=5))
    assert [(t.before, t.after) for t in report.transitions] == [("firing", "resolved")]


def test_a_result_of_an_older_window_leaves_the_alert_alone(db: Engine) -> None:
    alerts = _engine()
    _evaluate(alerts, db, _drift(5, "x"), window_end(5))
    report = _evaluate(alerts, db, _drift(4, "x", value=0.0), window_end(5, minutes=1))
    assert report.transitions == ()


def test_results_without_a_value_change_nothing(db: Engine) -> None:
    alerts = _engine()
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    report = _evaluate(alerts, db, [result(1, "x", None)], window_end(1))
    assert report.transitions == () and report.notifications == ()


def test_min_labeled_and_below_judge_performance(db: Engine) -> None:
    rule = {
        "name": "roc-auc-low",
        "match": ["kind=performance", "metric=roc_auc"],
        "below": 0.8,
        "min_labeled": 500,
        "max_window_age": "7d",
        "severity": "critical",
    }
    alerts = _engine(rule)
    perf = {"kind": "performance", "detector": "roc_auc", "metric": "roc_auc", "threshold": 0.8}
    few = [result(0, None, 0.7, direction="below", n_labeled=120, **perf)]
    assert _evaluate(alerts, db, few, window_end(0)).transitions == ()
    enough = [result(0, None, 0.7, direction="below", n_labeled=600, **perf)]
    report = _evaluate(alerts, db, enough, window_end(0, days=3))
    assert [t.after for t in report.transitions] == ["firing"]
    assert report.stale_results == 0
    (payload,) = _payloads(db)
    assert payload["alerts"][0]["summary"] == "roc_auc: roc_auc 0.7 < 0.8 (600 labels)"


def test_the_rule_threshold_is_the_evidence(db: Engine) -> None:
    alerts = _engine({**PSI, "above": 0.25})
    _evaluate(alerts, db, _drift(0, "x", value=0.22) + _drift(0, "y", value=0.3), window_end(0))
    (payload,) = _payloads(db)
    assert _listed(payload) == [("y", "firing")]
    assert payload["alerts"][0]["summary"] == "y: psi 0.3 > 0.25"


def test_the_next_window_with_the_same_drift_is_quiet_until_repeat_interval(db: Engine) -> None:
    alerts = _engine(repeat_interval="4h", group_interval="5m")
    features = [f"f{i}" for i in range(20)]
    assert len(_evaluate(alerts, db, _drift(0, *features), window_end(0)).notifications) == 1
    for window in (1, 2, 3):
        assert (
            _evaluate(alerts, db, _drift(window, *features), window_end(window)).notifications == ()
        )
    report = _evaluate(alerts, db, _drift(4, *features), window_end(4))
    assert [n.status for n in report.notifications] == ["firing"]
    keys = [e["message"] for e in _payloads(db)]
    assert len(keys) == 2


def test_clearing_drift_sends_one_resolve(db: Engine) -> None:
    alerts = _engine()
    features = [f"f{i}" for i in range(20)]
    _evaluate(alerts, db, _drift(0, *features), window_end(0))
    report = _evaluate(alerts, db, _drift(1, *features, value=0.05), window_end(1))
    assert [n.status for n in report.notifications] == ["resolved"]
    resolve = _payloads(db)[-1]
    assert _listed(resolve) == [(f, "resolved") for f in sorted(features)]
    assert (
        _evaluate(alerts, db, _drift(2, *features, value=0.05), window_end(2)).notifications == ()
    )
    with db.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(alert_states)) == 0
        assert connection.scalar(select(func.count()).select_from(alert_groups)) == 0


def test_a_resolve_is_announced_even_if_the_drift_is_back_before_the_flush(db: Engine) -> None:
    alerts = _engine({**PSI, "for": 2})
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    (first,) = _evaluate(alerts, db, _drift(1, "x"), window_end(1)).notifications
    flapping = _drift(2, "x", value=0.0) + _drift(3, "x")
    (resolve,) = _evaluate(alerts, db, flapping, window_end(3)).notifications
    assert resolve.status == "resolved"
    with db.connect() as connection:
        assert connection.scalar(select(alert_states.c.state)) == "pending"
    (again,) = _evaluate(alerts, db, _drift(4, "x"), window_end(4)).notifications
    assert again.status == "firing"
    incident = first.idempotency_key.rsplit("-", 1)[0]
    assert resolve.idempotency_key == f"{incident}-2"
    assert not again.idempotency_key.startswith(incident)  # a new incident


def test_send_resolved_false_stays_quiet_when_drift_clears(db: Engine) -> None:
    alerts = _engine(send_resolved=False)
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    assert _evaluate(alerts, db, _drift(1, "x", value=0.0), window_end(1)).notifications == ()
    assert len(_evaluate(alerts, db, _drift(2, "x"), window_end(2)).notifications) == 1


def test_group_wait_gathers_then_group_interval_spaces_updates(db: Engine) -> None:
    alerts = _engine(group_wait="30s", group_interval="5m")
    start = window_end(0)
    assert _evaluate(alerts, db, _drift(0, "a"), start).notifications == ()
    assert _evaluate(alerts, db, _drift(0, "b"), start + timedelta(seconds=10)).notifications == ()
    assert _tick(alerts, db, start + timedelta(seconds=29)).notifications == ()
    first = _tick(alerts, db, start + timedelta(seconds=30))
    assert [n.alerts for n in first.notifications] == [2]
    _evaluate(alerts, db, _drift(0, "c"), start + timedelta(minutes=1))
    assert _tick(alerts, db, start + timedelta(minutes=5)).notifications == ()
    update = _tick(alerts, db, start + timedelta(minutes=5, seconds=30))
    assert [n.alerts for n in update.notifications] == [3]
    assert _listed(_payloads(db)[-1]) == [("a", "firing"), ("b", "firing"), ("c", "firing")]


def test_models_and_rules_are_separate_groups(db: Engine) -> None:
    ks = {"name": "ks-high", "match": ["detector=ks"], "above": 0.1, "severity": "info"}
    alerts = _engine(PSI, ks)
    results = _drift(0, "a") + _drift(0, "a", model="fraud") + _drift(0, "a", detector="ks")
    report = _evaluate(alerts, db, results, window_end(0))
    assert sorted((n.model, n.rules) for n in report.notifications) == [
        ("credit-default", ("ks-high",)),
        ("credit-default", ("psi-high",)),
        ("fraud", ("psi-high",)),
    ]


def test_group_by_model_puts_rules_together(db: Engine) -> None:
    ks = {"name": "ks-high", "match": ["detector=ks"], "above": 0.1, "severity": "critical"}
    alerts = _engine(PSI, ks, group_by=["model"])
    report = _evaluate(alerts, db, _drift(0, "a") + _drift(0, "b", detector="ks"), window_end(0))
    assert [(n.rules, n.severity) for n in report.notifications] == [
        (("ks-high", "psi-high"), "critical")
    ]


def test_results_older_than_max_window_age_are_recorded_but_never_notify(db: Engine) -> None:
    alerts = _engine()
    month_later = window_end(24 * 30)
    moves = []
    for window in range(5):
        report = _evaluate(alerts, db, _drift(window, "x"), month_later)
        assert report.notifications == () and report.stale_results == 1
        moves += [(t.after, t.stale) for t in report.transitions]
    # each old window fires the alert, and as its subject has not reported for
    # resolve_after (3 windows by default) it resolves at once, told to no one, and goes
    assert moves == [("firing", True), ("resolved", False)] * 5
    with db.connect() as connection:
        assert connection.scalar(select(alert_states.c.state)) is None
    # two window lengths is the default age limit
    late = 24 * 30 + 1
    assert _evaluate(alerts, db, _drift(late, "x"), window_end(late, hours=2)).notifications == ()
    fresh = late + 2
    assert (
        len(_evaluate(alerts, db, _drift(fresh, "x"), window_end(fresh, minutes=5)).notifications)
        == 1
    )


def test_max_window_age_can_be_set(db: Engine) -> None:
    alerts = _engine(max_window_age="10m")
    assert _evaluate(alerts, db, _drift(0, "x"), window_end(0, minutes=11)).notifications == ()
    assert len(_evaluate(alerts, db, _drift(1, "x"), window_end(1, minutes=9)).notifications) == 1


def test_a_stale_window_still_resolves_what_on_call_was_told(db: Engine) -> None:
    alerts = _engine()
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    report = _evaluate(alerts, db, _drift(1, "x", value=0.0), window_end(1, days=2))
    assert [n.status for n in report.notifications] == ["resolved"]


def test_silences_mute_what_they_match_and_nothing_else(db: Engine) -> None:
    alerts = _engine()
    start = window_end(0)
    with db.begin() as connection:
        silence = add_silence(
            connection,
            ["model=credit-default", "feature=~inc.*"],
            ends_at=start + timedelta(hours=2),
            author="oncall",
            comment="known shift",
            now=start,
        )
    results = _drift(0, "income", "income_2", "age") + _drift(0, "income", model="fraud")
    _evaluate(alerts, db, results, start)
    by_model = {p["model"]: _listed(p) for p in _payloads(db)}
    assert by_model == {
        "credit-default": [("age", "firing")],
        "fraud": [("income", "firing")],
    }
    with db.begin() as connection:
        expire_silence(connection, silence.id, start + timedelta(minutes=30))
    report = _tick(alerts, db, start + timedelta(minutes=30))
    assert [n.alerts for n in report.notifications] == [3]


def test_a_fully_silenced_group_sends_nothing_until_the_silence_ends(db: Engine) -> None:
    alerts = _engine()
    start = window_end(0)
    with db.begin() as connection:
        add_silence(
            connection,
            ["model=credit-default"],
            ends_at=start + timedelta(minutes=20),
            author="oncall",
            comment="deploy",
            now=start,
        )
    assert _evaluate(alerts, db, _drift(0, "x"), start).notifications == ()
    assert _tick(alerts, db, start + timedelta(minutes=10)).notifications == ()
    assert len(_tick(alerts, db, start + timedelta(minutes=20)).notifications) == 1


def test_inhibition_mutes_a_models_drift_while_its_performance_alert_fires(db: Engine) -> None:
    perf = {
        "name": "roc-auc-low",
        "match": ["kind=performance"],
        "below": 0.8,
        "severity": "critical",
    }
    inhibit = [
        {
            "source_matchers": ["rule=roc-auc-low"],
            "target_matchers": ["kind=data_drift"],
            "equal": ["model"],
        }
    ]
    alerts = _engine(PSI, perf, inhibit_rules=inhibit)
    auc = {"kind": "performance", "detector": "roc_auc", "metric": "roc_auc", "feature": None}
    results = (
        _drift(0, "x")
        + _drift(0, "x", model="fraud")
        + [result(0, value=0.7, threshold=0.8, direction="below", **auc)]
    )
    report = _evaluate(alerts, db, results, window_end(0))
    assert sorted((n.model, n.rules) for n in report.notifications) == [
        ("credit-default", ("roc-auc-low",)),
        ("fraud", ("psi-high",)),
    ]
    recovered = [*_drift(1, "x"), result(1, value=0.9, threshold=0.8, direction="below", **auc)]
    report = _evaluate(alerts, db, recovered, window_end(1, minutes=6))
    assert sorted((n.rules, n.status) for n in report.notifications) == [
        (("psi-high",), "firing"),
        (("roc-auc-low",), "resolved"),
    ]


def test_a_restarted_engine_neither_refires_nor_forgets(db: Engine) -> None:
    _evaluate(_engine(), db, _drift(0, "x", "y"), window_end(0))
    restarted = _engine()
    assert _evaluate(restarted, db, _drift(1, "x", "y"), window_end(1)).notifications == ()
    report = _evaluate(restarted, db, _drift(2, "x", "y", value=0.0), window_end(2))
    assert [n.status for n in report.notifications] == ["resolved"]


def test_reload_keeps_alert_state_and_applies_new_settings(db: Engine) -> None:
    alerts = _engine()
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    alerts.reload(_engine({**PSI, "severity": "critical"}, repeat_interval="1h").config)
    assert _evaluate(alerts, db, _drift(1, "x"), window_end(1, minutes=-1)).notifications == ()
    report = _evaluate(alerts, db, _drift(2, "x"), window_end(2))
    assert [(n.status, n.severity) for n in report.notifications] == [("firing", "critical")]


def test_alerts_of_a_removed_rule_resolve(db: Engine) -> None:
    alerts = _engine()
    _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    other = {"name": "other", "match": ["detector=ks"], "severity": "info", "channels": ["log"]}
    alerts.reload(alerts_config(channels=LOG, rules=[other], group_wait="0s"))
    report = _tick(alerts, db, window_end(0, minutes=10))
    assert [(t.rule, t.after) for t in report.transitions] == [("psi-high", "resolved")]
    assert [n.status for n in report.notifications] == ["resolved"]


def test_detections_resolve_after_a_quiet_period(db: Engine) -> None:
    rule = {
        "name": "concept-drift",
        "match": ["kind=concept_drift"],
        "resolve_after": "2h",
        "severity": "error",
    }
    alerts = _engine(rule)
    detection = result(
        0,
        None,
        1.0,
        kind="concept_drift",
        detector="page_hinkley",
        drift=True,
        detected_at=T0 + 1_800_000,
    )
    assert len(_evaluate(alerts, db, [detection], window_end(0)).notifications) == 1
    assert _tick(alerts, db, at(T0 + 1_800_000, hours=1, minutes=59)).notifications == ()
    resolved = _tick(alerts, db, at(T0 + 1_800_000, hours=2))
    assert [t.after for t in resolved.transitions] == ["resolved"]
    report = _tick(alerts, db, at(T0 + 1_800_000, hours=2, minutes=4))  # next group_interval
    assert [n.status for n in report.notifications] == ["resolved"]


def test_state_changes_roll_back_with_the_callers_transaction(db: Engine) -> None:
    alerts = _engine()
    with pytest.raises(RuntimeError), db.begin() as connection:
        alerts.evaluate(_drift(0, "x"), to_ms(window_end(0)), connection)
        raise RuntimeError("the batch failed")
    assert _payloads(db) == []
    report = _evaluate(alerts, db, _drift(0, "x"), window_end(0))
    assert len(report.notifications) == 1


def test_idempotency_keys_are_stable_and_derived(db: Engine, tmp_path) -> None:
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    keys = []
    for database in (db, other):
        alerts = _engine()
        report = _evaluate(alerts, database, _drift(0, "x", "y"), window_end(0))
        cleared = _drift(1, "x") + _drift(1, "y", value=0.0)
        report = report.merge(_evaluate(alerts, database, cleared, window_end(1)))
        keys.append([n.idempotency_key for n in report.notifications])
    other.dispose()
    assert keys[0] == keys[1]
    assert keys[0][0].endswith("-1") and keys[0][1].endswith("-2")
    assert keys[0][0][:-2] == keys[0][1][:-2]
