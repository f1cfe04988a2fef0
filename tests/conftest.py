"""Shared fixtures: databases (SQLite and the real PostgreSQL) and the local broker; and the
markers every test gets from what it uses (``kafka``, ``postgres``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN = os.environ.get(
    "DRIFTWARDEN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_required() -> bool:
    return os.environ.get("DRIFTWARDEN_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A database of its own on the real PostgreSQL server for this test session."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(
        POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    name = f"driftwarden_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        if _postgres_required():
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_ADMIN}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN}")
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """An empty schema on the session's PostgreSQL database (search_path set in the URL)."""
    import sqlalchemy

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(
        postgres_server, isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{postgres_server}?options=-csearch_path%3D{schema}"
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database: SQLite in a temporary file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A tansu broker on 127.0.0.1 for the whole session; yields its bootstrap address."""
    from driftwarden.monitor.commands.local_broker import LocalBroker

    with LocalBroker() as running:
        yield running.bootstrap


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the real parts they use: ``kafka`` (the local broker) and ``postgres``."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "broker" in names or "topic" in names:
            item.add_marker(pytest.mark.kafka)
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgresql" in callspec.id
        if on_postgres or names & {"postgres_url", "postgres_server", "postgres_alerts"}:
            item.add_marker(pytest.mark.postgres)
