"""Inserts that tolerate an existing row, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_new(connection: Connection, table: Table, row: Mapping[str, Any]) -> bool:
    """Insert ``row`` unless its key exists; whether it was inserted."""
    key = next(iter(table.primary_key.columns))
    statement = _insert(connection)(table).values(dict(row)).on_conflict_do_nothing().returning(key)
    return connection.execute(statement).first() is not None


def upsert(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows`` (all with the same columns), replacing the other columns of existing keys.

    One statement executed with many parameter sets, so its compiled form is
    cached whatever the number of rows.
    """
    if not rows:
        return
    statement = _insert(connection)(table)
    columns = [name for name in rows[0] if name not in keys]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in columns}
    )
    connection.execute(statement, [dict(row) for row in rows])


def _insert(connection: Connection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
