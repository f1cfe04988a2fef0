"""Fixtures of the alerting tests: migrated databases, a clock, receivers, an HTTP client."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from support.alerts import SECRET, Clock, make_engine
from support.receivers import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    SlackReceiver,
    WebhookReceiver,
)

from driftwarden.alerts.tables import metadata
from driftwarden.monitor import storage


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("alerts") / "template.db"
    make_engine(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(scope="session")
def postgres_alerts(postgres_server: str) -> Iterator[str]:
    """A migrated schema on the session's PostgreSQL database, emptied before each test."""
    schema = f"alerts_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_server}?options=-csearch_path%3D{schema}"
    make_engine(url).dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_engine(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database of this test's own."""
    path = tmp_path / "alerts.db"
    shutil.copyfile(sqlite_template, path)
    engine = storage.create(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgresql_engine(postgres_alerts: str) -> Iterator[Engine]:
    """The migrated PostgreSQL schema with empty alerting tables."""
    engine = storage.create(postgres_alerts)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            connection.execute(table.delete())
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Engine:
    """A migrated database with empty alerting tables: SQLite, then PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def clock() -> Clock:
    """Starts at the real time: webhook receivers check signature timestamps against it."""
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver(hang_seconds=1.0) as receiver:
        yield receiver


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyReceiver]:
    with PagerDutyReceiver() as receiver:
        yield receiver


@pytest.fixture
def alertmanager() -> Iterator[AlertmanagerReceiver]:
    with AlertmanagerReceiver() as receiver:
        yield receiver


@pytest.fixture
def retrain() -> Iterator[WebhookReceiver]:
    from driftwarden.alerts import schema

    with WebhookReceiver([SECRET], schema("retrain.v1"), hang_seconds=1.0) as receiver:
        yield receiver


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    from driftwarden.alerts import schema

    with WebhookReceiver([SECRET], schema("webhook.v1"), hang_seconds=1.0) as receiver:
        yield receiver
