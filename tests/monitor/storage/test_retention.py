"""Retention: with a clock the test controls, rows past their age disappear and younger ones
stay, on SQLite and PostgreSQL. (Pruning a million rows while a real daemon ingests is in
test_dashboards_live.py, on the demo daemon that test runs anyway.)"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from prometheus_client import CollectorRegistry
from support.stream import HOUR

from driftwarden.monitor import storage
from driftwarden.monitor.config import RetentionConfig
from driftwarden.monitor.storage.lanes import PAIRS_SUFFIX, lane_key, part_key
from driftwarden.monitor.storage.retention import KINDS, Retention

DAY = 86_400_000
NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z


def _config(**settings: Any) -> RetentionConfig:
    return RetentionConfig.model_validate({"pause": "0s", **settings})


_SERIAL = itertools.count(1)


def _rows(table: sa.Table, count: int, **fixed: Any) -> list[dict[str, Any]]:
    """``count`` rows with a distinct value in every column, except the ``fixed`` ones."""
    rows = []
    for _ in range(count):
        n = next(_SERIAL)
        row: dict[str, Any] = {}
        for column in table.columns:
            kind = column.type
            if isinstance(kind, sa.Boolean):
                value: Any = False
            elif isinstance(kind, sa.Integer):
                value = n
            elif isinstance(kind, sa.Float):
                value = 0.5
            elif isinstance(kind, sa.DateTime):
                value = datetime(2027, 1, 1, tzinfo=UTC)
            elif isinstance(kind, sa.LargeBinary):
                value = b"raw"
            else:
                length = getattr(kind, "length", None) or 64
                value = f"{column.name}-{n}"[-length:]
            row[column.name] = value
        row.update(fixed)
        rows.append(row)
    return rows


def _tables(engine: sa.Engine) -> dict[str, sa.Table]:
    reflected = sa.MetaData()
    reflected.reflect(engine)
    return dict(reflected.tables)


def _count(engine: sa.Engine, table: str, where: str = "1 = 1") -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar()


def _old_and_young(engine: sa.Engine) -> None:
    """For each kind: 23 rows just past the limit, 5 just inside it (and outbox rows that
    must stay whatever their age: pending ones). Label flags are prunable with the last
    label-join row of their model."""
    t = _tables(engine)
    old, young = NOW - 90 * DAY - 1, NOW - 90 * DAY + 1
    old_letter = datetime.fromtimestamp((NOW - 30 * DAY - 1000) / 1000, tz=UTC)
    young_letter = datetime.fromtimestamp((NOW - 30 * DAY + 1000) / 1000, tz=UTC)
    old_note, young_note = NOW - 30 * DAY - 1, NOW - 30 * DAY + 1
    old_join, young_join = NOW - DAY - 1, NOW - DAY + 1
    old_joins = _rows(t["label_join"], 20, expires_at=old_join)
    young_joins = _rows(t["label_join"], 4, expires_at=young_join)
    batches: list[tuple[str, list[dict[str, Any]]]] = [
        ("results", _rows(t["results"], 23, window_start=old - HOUR, window_end=old)),
        ("results", _rows(t["results"], 5, window_start=young - HOUR, window_end=young)),
        ("windows", _rows(t["windows"], 23, window_end=old)),
        ("windows", _rows(t["windows"], 5, window_end=young)),
        ("dead_letters", _rows(t["dead_letters"], 23, created_at=old_letter)),
        ("dead_letters", _rows(t["dead_letters"], 5, created_at=young_letter)),
        ("alert_outbox", _rows(t["alert_outbox"], 20, state="delivered", delivered_at=old_note)),
        ("alert_outbox", _rows(t["alert_outbox"], 3, state="failed", created_at=old_note)),
        ("alert_outbox", _rows(t["alert_outbox"], 3, state="delivered", delivered_at=young_note)),
        ("alert_outbox", _rows(t["alert_outbox"], 2, state="pending", created_at=old_note)),
        ("label_join", old_joins),
        ("label_join", young_joins),
        ("orphan_labels", _rows(t["orphan_labels"], 1, expires_at=old_join)),
        # flags go with the last row of their model: two now, one with the young rows
        ("label_flags", [_rows(t["label_flags"], 1, model=j["model"])[0]
                         for j in (old_joins[0], old_joins[1], young_joins[0])]),
    ]  # fmt: skip
    with engine.begin() as connection:
        for name, rows in batches:
            connection.execute(t[name].insert(), rows)


def test_rows_past_their_age_go_and_younger_ones_stay(database_url: str) -> None:
    engine = storage.create(database_url)
    try:
        storage.upgrade(engine)
        _old_and_young(engine)
        registry = CollectorRegistry()
        retention = Retention(engine, _config(batch_size=7), registry, clock=lambda: NOW)
        assert retention.prune_once() == {
            "results": 23,
            "windows": 23,
            "dead_letters": 23,
            "notifications": 23,
            "label_join": 23,
        }
        assert _count(engine, "results") == 5
        assert _count(engine, "results", f"window_end <= {NOW - 90 * DAY}") == 0
        assert _count(engine, "windows") == 5
        assert _count(engine, "dead_letters") == 5
        assert _count(engine, "alert_outbox", "state = 'pending'") == 2
        assert _count(engine, "alert_outbox", "state = 'delivered'") == 3
        assert _count(engine, "alert_outbox", "state = 'failed'") == 0
        assert _count(engine, "label_join") == 4
        assert _count(engine, "orphan_labels") == 0
        assert _count(engine, "label_flags") == 1
        for kind in KINDS:
            assert registry.get_sample_value("driftwarden_pruned_rows_total", {"kind": kind}) == 23
        assert registry.get_sample_value(
            "driftwarden_retention_last_success_timestamp_seconds"
        ) == pytest.approx(NOW / 1000)
        # a day later the young ones are past the limit too (the outbox's pending rows never)
        retention.clock = lambda: NOW + DAY
        assert retention.prune_once() == dict.fromkeys(KINDS, 5) | {"notifications": 3}
        assert _count(engine, "alert_outbox") == 2
    finally:
        engine.dispose()


def test_null_keeps_rows_and_missing_tables_are_skipped(tmp_path: Path) -> None:
    engine = storage.create(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        command.upgrade(storage.alembic_config(engine), "0001")  # no outbox, no label join
        t = _tables(engine)
        with engine.begin() as connection:
            connection.execute(t["results"].insert(), _rows(t["results"], 4, window_end=0))
            connection.execute(t["windows"].insert(), _rows(t["windows"], 4, window_end=0))
        retention = Retention(engine, _config(results=None), CollectorRegistry(), lambda: NOW)
        assert retention.prune_once() == {"windows": 4, "dead_letters": 0}
        assert _count(engine, "results") == 4
    finally:
        engine.dispose()


def test_passes_run_when_the_clock_says_they_are_due(tmp_path: Path) -> None:
    engine = storage.create(f"sqlite:///{tmp_path / 'scheduled.db'}")
    try:
        storage.upgrade(engine)
        t = _tables(engine)
        with engine.begin() as connection:
            connection.execute(t["windows"].insert(), _rows(t["windows"], 3, window_end=0))
        registry = CollectorRegistry()
        now = [NOW]
        config = _config(interval="1h")
        retention = Retention(
            engine, config, registry, lambda: now[0], first_run=timedelta(minutes=1)
        )
        assert retention.run_due() is None
        now[0] += 60_000
        assert retention.run_due()["windows"] == 3
        assert _count(engine, "windows") == 0
        assert retention.run_due() is None
        now[0] += HOUR
        assert retention.run_due() is not None
        assert registry.get_sample_value("driftwarden_pruned_rows_total", {"kind": "windows"}) == 3
        disabled = Retention(engine, _config(enabled=False), CollectorRegistry(), lambda: now[0])
        now[0] += DAY
        assert disabled.run_due() is None
    finally:
        engine.dispose()


def test_label_summaries_go_when_no_stored_window_holds_them(database_url: str) -> None:
    """Time windows key their label summaries by pane start, count windows by window index;
    a version's lane and a challenger's pairs go by the lane's windows, a spread model's
    partition parts by the model's; a model no longer configured keeps them while it has a
    window or a waiting prediction."""
    engine = storage.create(database_url)
    try:
        storage.upgrade(engine)
        t = _tables(engine)
        old, young = NOW - 91 * DAY, NOW - 89 * DAY  # window starts either side of 90 days
        lane = lane_key("timed", "v2")
        windows = [
            {"model": key, "window_index": index, "window_start": start, "window_end": start + HOUR}
            for key in ("timed", lane, "spread", "removed-stored", "removed-spread")
            for index, start in ((0, old), (1, young))
        ] + [
            {
                "model": "counted",
                "window_index": index,
                "window_start": start,
                "window_end": start + HOUR,
            }
            for index, start in ((7, old), (8, young))
        ]
        panes = {
            "timed": [old, old + HOUR // 2, young, young + HOUR],  # the last: its window is open
            lane: [old, young],
            lane + PAIRS_SUFFIX: [old, young],
            part_key("spread", 0): [old, young],
            part_key("spread", 1): [old + HOUR // 2, young],
            "counted": [6, 7, 8, 9],
            "fresh": [5, NOW],  # configured, no window closed yet
            "removed-stored": [old, young],
            "removed-waiting": [old],  # a prediction still waits for its label
            "removed-gone": [old, young],
            part_key("removed-spread", 3): [old, young],  # its model's windows are stored
        }
        with engine.begin() as connection:
            for window in windows:
                connection.execute(t["windows"].insert(), _rows(t["windows"], 1, **window))
            for key, starts in panes.items():
                rows = [{"model": key, "pane": pane, "data": b"summary"} for pane in starts]
                connection.execute(t["label_panes"].insert(), rows)
            connection.execute(
                t["label_join"].insert(), _rows(t["label_join"], 1, model="removed-waiting")
            )
        configured = {"timed": False, "counted": True, "fresh": False, "spread": False}
        retention = Retention(
            engine, _config(batch_size=2), CollectorRegistry(), lambda: NOW,
            windows_by_index=configured,
        )  # fmt: skip
        pruned_windows = 6  # each model's or lane's old window
        pruned_panes = 2 + 1 + 1 + 1 + 1 + 2 + 2  # timed, lane, pairs, parts, counted, gone
        assert retention.prune_once()["windows"] == pruned_windows + pruned_panes
        with engine.connect() as connection:
            left = connection.execute(sa.text("SELECT model, pane FROM label_panes")).all()
        kept: dict[str, list[int]] = {}
        for key, pane in left:
            kept.setdefault(key, []).append(pane)
        assert {key: sorted(starts) for key, starts in kept.items()} == {
            "timed": [young, young + HOUR],
            lane: [young],
            lane + PAIRS_SUFFIX: [young],
            part_key("spread", 0): [young],
            part_key("spread", 1): [young],
            "counted": [8, 9],
            "fresh": [5, NOW],
            "removed-stored": [old, young],
            "removed-waiting": [old],
            part_key("removed-spread", 3): [old, young],
        }
    finally:
        engine.dispose()
