"""The database: migrations on SQLite and PostgreSQL, schema checks, idempotent writes."""

from __future__ import annotations

import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from driftwarden.core.records import DeadLetter, Origin, ResultRecord
from driftwarden.monitor import storage
from driftwarden.monitor.errors import SchemaOutdatedError
from driftwarden.monitor.storage import tables, wal


def _record(value: float, **changes: object) -> ResultRecord:
    fields = dict(
        model="m",
        model_version="7",
        reference_id="abc",
        window_start=0,
        window_end=3_600_000,
        window_index=0,
        kind="data_drift",
        detector="psi",
        feature="income",
        metric=None,
        group_attribute=None,
        value=value,
        p_value=None,
        threshold=0.2,
        direction="above",
        drift=value > 0.2,
        status="ok",
        n_reference=100,
        n_window=50,
        n_labeled=None,
    )
    fields.update(changes)
    return ResultRecord(**fields)


def test_upgrade_creates_every_table_and_matches_the_models(database_url: str) -> None:
    engine = storage.create(database_url)
    assert storage.upgrade(engine) == storage.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {t.name for schema in storage.SCHEMA for t in schema.sorted_tables} <= tables
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, list(storage.SCHEMA))
    assert differences == [], f"models changed without a migration: {differences}"
    engine.dispose()


def test_an_empty_database_is_refused_with_the_command_to_run(database_url: str) -> None:
    engine = storage.create(database_url)
    with pytest.raises(SchemaOutdatedError, match=r"schema is empty.*driftwarden db upgrade"):
        storage.require_current(engine, "driftwarden db upgrade --config c.yaml")
    storage.upgrade(engine)
    storage.require_current(engine, "unused")
    engine.dispose()


def test_results_are_upserted_by_key(database_url: str) -> None:
    engine = storage.create(database_url)
    storage.upgrade(engine)
    store = storage.Store(engine)
    store.commit(storage.Commit(results=[_record(0.1), _record(0.3, feature="age")]))
    store.commit(storage.Commit(results=[_record(0.25)]))
    records = {r.feature: r for r in store.results()}
    assert len(records) == 2
    assert records["income"].value == 0.25 and records["income"].drift
    assert records["income"].metric is None and records["income"].group_attribute is None
    engine.dispose()


def test_dead_letters_are_kept_once_per_origin(database_url: str) -> None:
    engine = storage.create(database_url)
    storage.upgrade(engine)
    store = storage.Store(engine)
    letter = DeadLetter(
        "invalid_json", "not JSON", b"{oops", Origin("predictions", 2, 41), "prediction"
    )
    store.commit(storage.Commit(dead_letters=[letter]))
    store.commit(storage.Commit(dead_letters=[letter]))
    with engine.connect() as connection:
        rows = connection.execute(
            select(tables.DeadLetterRow.raw, tables.DeadLetterRow.offset)
        ).all()
    assert rows == [(b"{oops", 41)]
    engine.dispose()


def test_positions_and_state_commit_together(database_url: str) -> None:
    engine = storage.create(database_url)
    storage.upgrade(engine)
    store = storage.Store(engine)
    commit = storage.Commit(group_id="g", positions={("predictions", 0): 10, ("predictions", 3): 7})
    commit.model_states["m"] = storage.ModelSnapshot("ref", b"state-1", "predictions", 3)
    store.commit(commit)
    store.commit(storage.Commit(group_id="g", positions={("predictions", 0): 12}))
    assert store.positions("g", "predictions") == {0: 12, 3: 7}
    assert store.model_state("m") == storage.ModelSnapshot("ref", b"state-1", "predictions", 3)
    engine.dispose()


def _write_pages(connection, batches: int) -> None:
    """Commit ``batches`` transactions of about 256 KiB each."""
    for _ in range(batches):
        connection.exec_driver_sql(
            "INSERT INTO blobs (data) SELECT randomblob(4000) FROM json_each(?)",
            (str(list(range(64))),),
        )
        connection.commit()


def _database_file_size(tmp_path) -> int:
    return (tmp_path / "wal.db").stat().st_size


@pytest.mark.parametrize("checkpointing", [True, False])
def test_the_write_ahead_log_is_copied_back_while_the_writer_goes_on(
    tmp_path, checkpointing: bool
) -> None:
    """The writer only appends to the log; with a checkpointer, its pages reach the
    database while the writer is still open (without one, they would not)."""
    engine = storage.create(f"sqlite:///{tmp_path / 'wal.db'}")
    checkpointer = storage.WalCheckpointer(engine, interval=0.01)
    with engine.connect() as writer:
        writer.exec_driver_sql("CREATE TABLE blobs (data BLOB)")
        writer.commit()
        if checkpointing:
            checkpointer.start(writer)
        else:
            writer.exec_driver_sql(f"PRAGMA wal_autocheckpoint={wal.WRITER_AUTOCHECKPOINT}")
        _write_pages(writer, 40)
        deadline = time.monotonic() + (10 if checkpointing else 0)
        while _database_file_size(tmp_path) < 8 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.01)
        copied_while_open = _database_file_size(tmp_path)
        checkpointer.stop()
        autocheckpoint = writer.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    engine.dispose()
    assert autocheckpoint == wal.WRITER_AUTOCHECKPOINT
    assert (copied_while_open >= 8 * 2**20) is checkpointing


def test_the_checkpointer_leaves_postgresql_and_memory_databases_alone(postgres_url: str) -> None:
    for url in (postgres_url, "sqlite://"):
        engine = storage.create(url)
        with engine.connect() as writer, storage.WalCheckpointer(engine).start(writer) as running:
            assert not running.applies
            names = {thread.name for thread in threading.enumerate()}
            assert "driftwarden-checkpoint" not in names
        engine.dispose()
