"""Schema upgrades keep data: from every earlier revision (0001 is the previous release's
schema) to head, on SQLite and PostgreSQL, with rows in every table that revision has."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from driftwarden.alerts.tables import metadata as alerts_metadata
from driftwarden.monitor import storage
from driftwarden.monitor.labels.waiting import WaitingPredictions
from driftwarden.monitor.storage import schema, tables
from driftwarden.monitor.storage.join_store import JoinStore

ROWS = 3
SCRIPTS = ScriptDirectory(str(schema.MIGRATIONS))
CHAIN = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]
EARLIER = CHAIN[:-1]
DROPPED = {("alert_states", "last_active_at")}
"""Columns a migration folded into another (0006: into ``last_seen_at``, tested below)."""
NONE_AS_EMPTY = {("results", "model_version")}
"""Columns a migration made part of a unique key: "none" is stored as ``""`` from then on."""


def _value(column: sa.Column, table_index: int, column_index: int, row: int) -> Any:
    """A distinct value of the column's type for row ``row`` (None in one nullable row)."""
    kind = column.type
    if column.nullable and not column.primary_key and row == ROWS - 1:
        return None
    number = 1_000_000 * (table_index + 1) + 1000 * row + column_index
    if isinstance(kind, sa.Boolean):
        return row % 2 == 0
    if isinstance(kind, sa.Integer):
        return number
    if isinstance(kind, sa.Float | sa.Numeric):
        return number + 0.25
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 1, 1 + row, 12, column_index, 30, 123000, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 1, 1 + row)
    if isinstance(kind, sa.LargeBinary):
        return bytes([0, 255, row, column_index]) + b"\x00raw \xe2\x82"
    if isinstance(kind, sa.String | sa.Text):
        text = f"{column.name}-{row}-é✓"
        length = getattr(kind, "length", None)
        return text[-length:] if length else text
    raise AssertionError(f"no test value for {column.table.name}.{column.name}: {kind!r}")


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _fill(engine: sa.Engine) -> dict[str, set[tuple]]:
    """Rows in every table of the current schema; what each table holds, by its columns."""
    reflected = sa.MetaData()
    reflected.reflect(engine)
    inserted: dict[str, set[tuple]] = {}
    generated: dict[tuple[str, str], list[Any]] = {}
    with engine.begin() as connection:
        for t, table in enumerate(reflected.sorted_tables):
            if table.name == "alembic_version":
                continue
            rows = []
            for row in range(ROWS):
                values = {}
                for c, column in enumerate(table.columns):
                    foreign = next(iter(column.foreign_keys), None)
                    if foreign is not None:
                        key = (foreign.column.table.name, foreign.column.name)
                        values[column.name] = generated[key][row]
                    else:
                        values[column.name] = _value(column, t, c, row)
                rows.append(values)
            connection.execute(table.insert(), rows)
            for column in table.columns:
                generated[(table.name, column.name)] = [r[column.name] for r in rows]
            names = [column.name for column in table.columns]
            inserted[table.name] = {tuple(_normal(r[n]) for n in names) for r in rows}
    return inserted


def _read(engine: sa.Engine, table: str, columns: list[str]) -> set[tuple]:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(*(reflected.c[name] for name in columns)))
        return {tuple(_normal(value) for value in row) for row in rows}


def test_the_previous_release_is_in_the_chain() -> None:
    assert CHAIN[0] == "0001" and len(CHAIN) >= 2, CHAIN


@pytest.mark.parametrize("start", EARLIER)
def test_upgrade_to_head_keeps_every_row(database_url: str, start: str) -> None:
    engine = storage.create(database_url)
    try:
        config = storage.alembic_config(engine)
        command.upgrade(config, start)
        before = _fill(engine)
        assert before, f"no tables at revision {start}"
        columns = {
            table: [c["name"] for c in sa.inspect(engine).get_columns(table)] for table in before
        }
        command.upgrade(config, "head")
        assert storage.current_revision(engine) == storage.head_revision()
        for table, rows in before.items():
            kept = [i for i, name in enumerate(columns[table]) if (table, name) not in DROPPED]
            after = _read(engine, table, [columns[table][i] for i in kept])
            empty = [(table, columns[table][i]) in NONE_AS_EMPTY for i in kept]
            expected = {
                tuple(
                    "" if e and row[i] is None else row[i] for i, e in zip(kept, empty, strict=True)
                )
                for row in rows
            }
            assert after == expected, f"{table}: rows changed by upgrading from {start} to head"
    finally:
        engine.dispose()


def test_alerts_last_seen_is_their_last_active_window_after_the_upgrade(
    database_url: str,
) -> None:
    engine = storage.create(database_url)
    try:
        config = storage.alembic_config(engine)
        command.upgrade(config, "0005")
        _fill(engine)
        with engine.connect() as connection:
            old = connection.execute(
                sa.text("SELECT fingerprint, last_active_at, since FROM alert_states")
            ).all()
        assert any(active is None for _, active, _ in old)
        command.upgrade(config, "0006")
        with engine.connect() as connection:
            query = sa.text("SELECT fingerprint, last_seen_at FROM alert_states")
            seen = {fingerprint: at for fingerprint, at in connection.execute(query)}
        assert seen == {fp: since if active is None else active for fp, active, since in old}
    finally:
        engine.dispose()


def test_head_schema_matches_the_models(database_url: str) -> None:
    engine = storage.create(database_url)
    try:
        storage.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, [tables.metadata, alerts_metadata])
        assert differences == [], "models and migrations disagree: add a migration"
    finally:
        engine.dispose()


def test_labels_joined_before_flags_existed_are_flagged_by_the_upgrade(database_url: str) -> None:
    engine = storage.create(database_url)
    try:
        config = storage.alembic_config(engine)
        command.upgrade(config, "0003")
        labelled = {"a": {1, 4}, "b": {0}}
        rows = [
            {
                "model": model,
                "id": f"{model}-{i}",
                "ts": 1000 + (7 * i) % 5,
                "pane": 0,
                "prediction": "0.5",
                "label": "1" if i in labelled[model] else None,
                "expires_at": 10**12,
            }
            for model in labelled
            for i in range(5)
        ]
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO label_join (model, id, ts, pane, prediction, label, expires_at) "
                    "VALUES (:model, :id, :ts, :pane, :prediction, :label, :expires_at)"
                ),
                rows,
            )
        command.upgrade(config, "head")
        store = JoinStore(engine.dialect.name)
        with engine.connect() as connection:
            for model, chosen in labelled.items():
                assert store.label_counts(connection, model) == (5 - len(chosen), len(chosen))
                ids = pl.Series([f"{model}-{i}" for i in range(5)])
                found = WaitingPredictions(store, model).find(connection, ids)
                flagged = store.labeled(connection, model, found["seq"].to_numpy())
                expected = [int(i.split("-")[1]) in chosen for i in found["id"]]
                assert flagged.tolist() == expected
                assert sorted(found["seq"].to_list()) == [1, 2, 3, 4, 5]
    finally:
        engine.dispose()
