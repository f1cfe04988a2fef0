"""Least privilege for Grafana's database role: deploy/grafana-reader.sql grants exactly the
tables the dashboards' SQL reads. On a real PostgreSQL, after the compose init script
(deploy/postgres/10-grafana-reader.sh) and the grants file run by psql as compose runs them,
every dashboard query works as the role, and dead_letters (raw event bytes) and every other
table are refused, including what an earlier setup's default privileges had granted."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError
from support.dashboards import queries, substitute
from support.ops import GRAFANA_GRANTS, GRAFANA_ROLE_SCRIPT

from driftwarden.monitor import storage

SQL_QUERIES = [q for q in queries() if q.datasource == "postgres"]
ALERT_COLUMNS = {"model", "group_key", "status", "severity", "rules", "created_at"}


def _tables_read(sql: str) -> set[str]:
    """The tables a query reads: names after FROM or JOIN, less its own CTEs."""
    sql = re.sub(r"--[^\n]*", "", sql)
    named = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]\w*)", sql, re.I))
    ctes = set(re.findall(r"(?:\bWITH|,)\s*([a-z_]\w*)\s+AS\s*\(", sql, re.I))
    return {name.lower() for name in named - ctes}


def _granted() -> tuple[set[str], dict[str, set[str]]]:
    """Whole tables and per-table columns the grants file gives SELECT on."""
    text = GRAFANA_GRANTS.read_text()
    tables = set(re.findall(r"^GRANT SELECT ON (\w+) TO", text, re.M))
    columns = {
        table: {c.strip() for c in names.split(",")}
        for names, table in re.findall(r"^GRANT SELECT \(([^)]*)\) ON (\w+) TO", text, re.M)
    }
    return tables, columns


def test_the_grants_are_the_tables_the_dashboards_read() -> None:
    used = set().union(*(_tables_read(q.text) for q in SQL_QUERIES))
    assert used == {"results", "alert_outbox"}, used
    tables, columns = _granted()
    assert tables | set(columns) == used
    assert "dead_letters" not in tables | set(columns)
    assert columns["alert_outbox"] == ALERT_COLUMNS
    assert "body" not in columns["alert_outbox"]  # notifications' contents stay private


@dataclass(frozen=True)
class Reader:
    url: str  # the test schema, as its owner
    role: str
    schema: str


def _psql_env(url: sa.URL, **more: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGPASSWORD": url.password or "",
        "PGDATABASE": url.database or "",
        **more,
    }


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def reader(postgres_server: str, psql: str) -> Iterator[Reader]:
    """A schema migrated to head by its owner, a role made by the init script, which an
    earlier setup's default privileges let read every table, then the grants file."""
    suffix = uuid.uuid4().hex[:10]
    schema, role = f"grants_{suffix}", f"grafana_reader_{suffix}"
    server = sa.make_url(postgres_server)
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    url = f"{postgres_server}?options=-csearch_path%3D{schema}"
    env = _psql_env(server, PGOPTIONS=f"-c search_path={schema}")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        _run(
            ["sh", str(GRAFANA_ROLE_SCRIPT)],
            {
                **env,
                "POSTGRES_USER": server.username or "postgres",
                "POSTGRES_DB": server.database or "",
                "GRAFANA_DB_PASSWORD": "a-test-password",
                "GRAFANA_DB_USER": role,
            },
        )
        with admin.connect() as connection:  # what 10-grafana-reader.sh used to grant
            connection.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            connection.exec_driver_sql(
                f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT SELECT ON TABLES TO "{role}"'
            )
        engine = storage.create(url)
        storage.upgrade(engine)
        engine.dispose()
        for _ in range(2):  # idempotent: compose runs it after every upgrade
            _run(
                [psql, "-v", "ON_ERROR_STOP=1", "-v", f"reader={role}", "-f", str(GRAFANA_GRANTS)],
                env,
            )
        yield Reader(url, role, schema)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            exists = connection.exec_driver_sql(
                "SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": role}
            ).scalar()
            if exists:
                connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
                connection.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


def _as_reader(reader: Reader, sql: str) -> None:
    engine = sa.create_engine(reader.url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'SET ROLE "{reader.role}"')
            connection.exec_driver_sql(sql).all()
    finally:
        engine.dispose()


@pytest.mark.parametrize("query", SQL_QUERIES, ids=lambda q: q.id)
def test_every_dashboard_query_runs_as_the_role(reader: Reader, query) -> None:
    sql = substitute(query.text, {"model": "credit-default"})
    sql = sql.replace("$__unixEpochFrom()", "0").replace("$__unixEpochTo()", "2000000000")
    _as_reader(reader, sql)


def test_nothing_else_is_readable(reader: Reader) -> None:
    engine = sa.create_engine(reader.url)
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        rows = connection.exec_driver_sql(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = %(role)s AND table_schema = %(schema)s",
            {"role": reader.role, "schema": reader.schema},
        ).all()
        columns = connection.exec_driver_sql(
            "SELECT table_name, column_name FROM information_schema.column_privileges "
            "WHERE grantee = %(role)s AND table_schema = %(schema)s "
            "AND privilege_type = 'SELECT'",
            {"role": reader.role, "schema": reader.schema},
        ).all()
        connection.exec_driver_sql("CREATE TABLE added_by_a_later_migration (id integer)")
        connection.commit()
    engine.dispose()
    assert set(rows) == {("results", "SELECT")}
    assert {c for t, c in columns if t == "alert_outbox"} == ALERT_COLUMNS
    assert "dead_letters" in tables
    for table in [*sorted(tables - {"results"}), "added_by_a_later_migration"]:
        with pytest.raises(ProgrammingError, match="permission denied"):
            _as_reader(reader, f"SELECT * FROM {table}")
    with pytest.raises(ProgrammingError, match="permission denied"):
        _as_reader(reader, "SELECT body, last_error FROM alert_outbox")
    _as_reader(reader, "SELECT model, status, created_at FROM alert_outbox")
