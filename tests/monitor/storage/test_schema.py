"""``schema.prepare``: what ``run`` and ``replay`` do with the database before they write to it.
An empty database gets the schema (logged); the current schema is left alone; an older one,
or tables without a revision, are refused with the ``db upgrade`` command named. On SQLite
and PostgreSQL, including two processes preparing one empty database at once."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from support.threads import at_once

from driftwarden.monitor import storage
from driftwarden.monitor.errors import DatabaseUnavailable, SchemaOutdatedError
from driftwarden.monitor.storage import schema

HINT = "driftwarden db upgrade --config c.yaml"
CHAIN = [migration.revision for migration in schema.history()]


def test_an_empty_database_gets_the_schema_and_says_so(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = storage.create(database_url)
    with caplog.at_level(logging.INFO, logger="driftwarden.storage"):
        assert schema.prepare(engine, HINT) is True
    assert storage.current_revision(engine) == storage.head_revision()
    created = [r for r in caplog.records if getattr(r, "event", None) == "schema_created"]
    assert len(created) == 1 and created[0].revision == storage.head_revision()
    storage.require_current(engine, HINT)  # what every other command checks
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="driftwarden.storage"):
        assert schema.prepare(engine, HINT) is False  # the second start: nothing to do
    assert not caplog.records
    engine.dispose()


def test_an_outdated_schema_is_refused_and_left_as_it_was(database_url: str) -> None:
    engine = storage.create(database_url)
    command.upgrade(schema.alembic_config(engine), CHAIN[-2])
    before = set(sa.inspect(engine).get_table_names())
    with pytest.raises(SchemaOutdatedError) as refused:
        schema.prepare(engine, HINT)
    message = str(refused.value)
    assert f"at revision {CHAIN[-2]}" in message and f"run `{HINT}`" in message
    assert storage.current_revision(engine) == CHAIN[-2]
    assert set(sa.inspect(engine).get_table_names()) == before
    engine.dispose()


def test_tables_without_a_revision_are_refused_and_left_alone(database_url: str) -> None:
    engine = storage.create(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)")
        connection.exec_driver_sql("INSERT INTO someone_elses VALUES (1)")
    with pytest.raises(SchemaOutdatedError, match=r"has tables \(someone_elses\) but no"):
        schema.prepare(engine, HINT)
    assert sa.inspect(engine).get_table_names() == ["someone_elses"]
    assert storage.current_revision(engine) is None
    engine.dispose()


def test_two_threads_preparing_one_empty_database_create_it_once(database_url: str) -> None:
    engines = [storage.create(database_url) for _ in range(2)]
    outcomes = at_once(lambda engine: schema.prepare(engine, HINT), engines)
    assert sorted(outcomes, key=str) == [False, True], outcomes
    assert storage.current_revision(engines[0]) == storage.head_revision()
    for engine in engines:
        engine.dispose()


PREPARE = """
import sys, time
from pathlib import Path
from driftwarden.monitor import storage
from driftwarden.monitor.storage import schema
engine = storage.create(sys.argv[1])
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
print(schema.prepare(engine, "hint"))
"""


@pytest.mark.slow
def test_two_processes_preparing_one_empty_database_create_it_once(
    database_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE, database_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(3)  # both have imported driftwarden and wait for the go
    go.touch()
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sorted(out.strip() for out, _ in outputs) == ["False", "True"], outputs
    engine = storage.create(database_url)
    assert storage.current_revision(engine) == storage.head_revision()
    engine.dispose()


def test_an_unreachable_database_is_one_clear_error() -> None:
    engine = storage.create("postgresql+psycopg://u:secret@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseUnavailable, match="cannot reach the database") as error:
        schema.prepare(engine, HINT)
    assert "secret" not in str(error.value)
    engine.dispose()


def test_history_is_the_chain_from_base_to_head() -> None:
    migrations = schema.history()
    assert migrations[0].down_revision is None
    assert [m.down_revision for m in migrations[1:]] == [m.revision for m in migrations[:-1]]
    assert [m.head for m in migrations] == [False] * (len(migrations) - 1) + [True]
    assert migrations[-1].revision == storage.head_revision()
    assert all(m.description for m in migrations)
