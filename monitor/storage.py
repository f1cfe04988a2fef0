"""The database: tables, schema checks, and the one transaction per batch.

SQLite by default, PostgreSQL by URL. Everything a batch produces — consumer
positions, model window state, closed windows, results, dead letters — is
written in one transaction (``Store.commit``), which is what makes a crash
at any instant neither lose nor double-count an event.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from driftwarden.alerts import tables as alerts_tables
from driftwarden.monitor.errors import SchemaOutdatedError
from driftwarden.monitor.events import DeadLetter, Origin
from driftwarden.monitor.results import ResultRecord

MIGRATIONS = Path(__file__).with_name("migrations")
# A writer whose log is checkpointed by a ``WalCheckpointer`` still checkpoints itself
# past this many log pages (about 1 GiB), should the checkpointer fall behind.
WRITER_AUTOCHECKPOINT = 262_144

log = logging.getLogger("driftwarden.storage")


class Base(DeclarativeBase):
    pass


class ProfileRow(Base):
    """A fitted reference profile."""

    __tablename__ = "profiles"
    reference_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), index=True)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ModelStateRow(Base):
    """A model's open windows and watermark, as of the last committed batch, and the
    topic partition its events last came from (its owner in a consumer group)."""

    __tablename__ = "model_states"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    reference_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str | None] = mapped_column(String(255))
    partition: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WindowRow(Base):
    """A closed window and its summary."""

    __tablename__ = "windows"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_end: Mapped[int] = mapped_column(BigInteger)
    reference_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(255))
    n_events: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[bytes] = mapped_column(LargeBinary)


class ResultRow(Base):
    """A result record; the unique key makes every write an upsert."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint(
            "model",
            "window_index",
            "kind",
            "detector",
            "feature",
            "metric",
            "group_attribute",
            name="uq_results_key",
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    window_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    detector: Mapped[str] = mapped_column(String(64))
    feature: Mapped[str] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(255))
    group_attribute: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(255))
    reference_id: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[int] = mapped_column(BigInteger, index=True)
    window_end: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[str] = mapped_column(String(8))
    drift: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(32))
    n_reference: Mapped[int | None] = mapped_column(BigInteger)
    n_window: Mapped[int | None] = mapped_column(BigInteger)
    n_labeled: Mapped[int | None] = mapped_column(BigInteger)
    error_bound: Mapped[float | None] = mapped_column(Float)
    detected_at: Mapped[int | None] = mapped_column(BigInteger)


class DeadLetterRow(Base):
    """A message that could not be used, with its bytes, reason and origin."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("kind", "source", "partition", "offset", name="uq_dead_letters_origin"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(1024))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PositionRow(Base):
    """The next offset to read per consumer group, topic and partition."""

    __tablename__ = "consumer_positions"
    group_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)


class LabelJoinRow(Base):
    """A prediction waiting for (or joined to) its label: only what the join needs.

    ``seq`` numbers a model's predictions in the order they were stored, so new rows
    append (clustered by it on SQLite); the join finds an id's row through an index
    in memory. Whether a prediction has a label is its bit in ``label_flags``;
    ``label`` keeps the value only where ``policy: last`` may have to replace it."""

    __tablename__ = "label_join"
    __table_args__ = (
        Index("ix_label_join_expiry", "model", "expires_at"),
        {"sqlite_with_rowid": False},
    )
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[str] = mapped_column(String(255))
    ts: Mapped[int] = mapped_column(BigInteger)
    pane: Mapped[int] = mapped_column(BigInteger)
    prediction: Mapped[str] = mapped_column(String(255))
    groups: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(255))
    labeled_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class LabelFlagsRow(Base):
    """Which stored predictions of a model have a label: bit ``seq % 8192`` of chunk
    ``seq // 8192`` (little-endian bit order). A label sets one bit of a small table
    instead of rewriting its prediction's row, wherever that row is."""

    __tablename__ = "label_flags"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    chunk: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bits: Mapped[bytes] = mapped_column(LargeBinary)


class OrphanLabelRow(Base):
    """A label that arrived before its prediction, waiting up to ``orphan_ttl``."""

    __tablename__ = "orphan_labels"
    __table_args__ = (Index("ix_orphan_labels_expiry", "model", "expires_at"),)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(1024))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class LabelPaneRow(Base):
    """The label summary of one pane (or count window) of a model."""

    __tablename__ = "label_panes"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    pane: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


metadata = Base.metadata
SCHEMA = (metadata, alerts_tables.metadata)
"""Every table the migrations manage: the daemon's and the alert engine's."""


@dataclass
class ClosedWindow:
    """A window that closed in this batch, with its summary bytes."""

    model: str
    index: int
    start: int
    end: int
    reference_id: str
    model_version: str | None
    n_events: int
    summary: bytes


@dataclass(frozen=True)
class ModelSnapshot:
    """A model's stored window state."""

    reference_id: str
    data: bytes
    topic: str | None = None
    partition: int | None = None


@dataclass
class Commit:
    """Everything one batch changes, written in one transaction."""

    group_id: str | None = None
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    model_states: dict[str, ModelSnapshot] = field(default_factory=dict)
    windows: list[ClosedWindow] = field(default_factory=list)
    results: list[ResultRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def create(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL journaling and foreign keys.

    A SQLite connection may be handed to another thread (never used by two at once):
    the label join writes on a helper thread while the caller summarizes.
    """
    on_sqlite = make_url(url).get_backend_name() == "sqlite"
    connect_args = {"check_same_thread": False} if on_sqlite else {}
    engine = create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
    if on_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map: the label join looks rows up at random in a large table.
    cursor.execute("PRAGMA mmap_size=2147418112")
    # A log grown while its checkpoints fell behind is cut back when it restarts.
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


class WalCheckpointer:
    """Copies a SQLite write-ahead log back into the database from a thread of its own.

    The writer given to ``start`` then stops checkpointing at commit (up to
    ``WRITER_AUTOCHECKPOINT`` pages), so its commits only append to the log; copying the
    pages back, and the fsync that goes with it, overlap the writer's next batch. This
    matters when a batch dirties many scattered pages, as labels joining at random do.
    A no-op for PostgreSQL and in-memory SQLite.
    """

    def __init__(self, engine: Engine, interval: float = 0.05) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def applies(self) -> bool:
        url = self.engine.url
        return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")

    def start(self, writer: Connection) -> WalCheckpointer:
        if not self.applies:
            return self
        writer.exec_driver_sql(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT}")
        self._thread = threading.Thread(
            target=self._run, name="driftwarden-checkpoint", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after one last checkpoint."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> WalCheckpointer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        connection = self.engine.raw_connection()
        try:
            while not self._stop.wait(self.interval):
                self._checkpoint(connection)
            self._checkpoint(connection)
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: Any) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint failed: %s", exc, extra={"event": "checkpoint_failed"})
        finally:
            cursor.close()


def alembic_config(engine: Engine) -> AlembicConfig:
    """Alembic configuration for the bundled migrations on ``engine``."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> str:
    """Upgrade the schema to this release's head; return the head revision."""
    command.upgrade(alembic_config(engine), "head")
    return head_revision()


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine, command_hint: str) -> None:
    """Refuse an empty or outdated schema, naming the command that fixes it."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdatedError(
            f"the database schema is {state}; this release needs revision {head}: "
            f"run `{command_hint}`"
        )


class Store:
    """Reads and writes the daemon's state on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def save_profile(self, reference_id: str, model: str, source: str, data: bytes) -> None:
        """Store a profile unless one with this id exists."""
        row = {
            "reference_id": reference_id,
            "model": model,
            "source": source,
            "created_at": datetime.now(UTC),
            "data": data,
        }
        statement = self._insert(ProfileRow).values(row).on_conflict_do_nothing()
        with self.engine.begin() as connection:
            connection.execute(statement)

    def profile(self, reference_id: str) -> bytes | None:
        with self.engine.connect() as connection:
            return connection.scalar(
                select(ProfileRow.data).where(ProfileRow.reference_id == reference_id)
            )

    def model_state(self, model: str) -> ModelSnapshot | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    ModelStateRow.reference_id,
                    ModelStateRow.data,
                    ModelStateRow.topic,
                    ModelStateRow.partition,
                ).where(ModelStateRow.model == model)
            ).first()
        return None if row is None else ModelSnapshot(row[0], row[1], row[2], row[3])

    def positions(self, group_id: str, topic: str) -> dict[int, int]:
        """Stored next offsets per partition of ``topic`` for ``group_id``."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(PositionRow.partition, PositionRow.offset).where(
                    PositionRow.group_id == group_id, PositionRow.topic == topic
                )
            )
            return {partition: offset for partition, offset in rows}

    def commit(self, batch: Commit) -> None:
        """Write everything of one batch in one transaction of its own."""
        with self.engine.begin() as connection:
            self.write(connection, batch)

    def write(self, connection: Connection, batch: Commit) -> None:
        """Write everything of one batch on ``connection`` (the caller commits)."""
        if batch.positions:
            rows = [
                {"group_id": batch.group_id, "topic": topic, "partition": p, "offset": o}
                for (topic, p), o in batch.positions.items()
            ]
            connection.execute(self._upsert(PositionRow, ["offset"]), rows)
        if batch.model_states:
            rows = [
                {
                    "model": model,
                    "reference_id": snapshot.reference_id,
                    "data": snapshot.data,
                    "topic": snapshot.topic,
                    "partition": snapshot.partition,
                }
                for model, snapshot in batch.model_states.items()
            ]
            update = ["reference_id", "data", "topic", "partition"]
            connection.execute(self._upsert(ModelStateRow, update), rows)
        if batch.windows:
            latest = {(window.model, window.index): window for window in batch.windows}
            rows = [_window_row(window) for window in latest.values()]
            columns = [c for c in rows[0] if c not in ("model", "window_index")]
            connection.execute(self._upsert(WindowRow, columns), rows)
        if batch.results:
            latest = {record.key: record for record in batch.results}
            rows = [_result_row(record) for record in latest.values()]
            columns = [c for c in rows[0] if c not in _RESULT_KEY]
            connection.execute(self._upsert(ResultRow, columns, "uq_results_key"), rows)
        if batch.dead_letters:
            rows = [_dead_letter_row(letter) for letter in batch.dead_letters]
            connection.execute(self._insert(DeadLetterRow).on_conflict_do_nothing(), rows)

    def results(self, model: str | None = None, since: int | None = None) -> Iterator[ResultRecord]:
        """Stored results in window order, optionally of one model and from a time on."""
        query = select(ResultRow).order_by(
            ResultRow.model,
            ResultRow.window_index,
            ResultRow.kind,
            ResultRow.detector,
            ResultRow.feature,
            ResultRow.metric,
            ResultRow.group_attribute,
        )
        if model is not None:
            query = query.where(ResultRow.model == model)
        if since is not None:
            query = query.where(ResultRow.window_end > since)
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                yield _record(row)

    def dead_letters(
        self,
        *,
        reason: str | None = None,
        model: str | None = None,
        ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[StoredDeadLetter]:
        """Stored dead letters, newest first, optionally filtered."""
        query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc())
        if reason is not None:
            query = query.where(DeadLetterRow.reason == reason)
        if model is not None:
            query = query.where(DeadLetterRow.model == model)
        if ids is not None:
            query = query.where(DeadLetterRow.id.in_(list(ids)))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [_stored_dead_letter(row) for row in connection.execute(query).mappings()]

    def mark_replayed(self, ids: Sequence[int], when: datetime) -> None:
        """Record that these dead letters were fed back."""
        with self.engine.begin() as connection:
            connection.execute(
                update(DeadLetterRow)
                .where(DeadLetterRow.id.in_(list(ids)))
                .values(replayed_at=when)
            )

    def _upsert(
        self, table: type[Base], update: Sequence[str], constraint: str | None = None
    ) -> Any:
        """An insert that updates ``update`` columns on a key conflict (run with many rows)."""
        statement = self._insert(table)
        excluded = statement.excluded
        target = (
            {"constraint": constraint}
            if constraint and self._insert is postgresql.insert
            else {"index_elements": _conflict_columns(table, constraint)}
        )
        return statement.on_conflict_do_update(
            **target, set_={column: excluded[column] for column in update}
        )


_RESULT_KEY = ("model", "window_index", "kind", "detector", "feature", "metric", "group_attribute")


def _conflict_columns(table: type[Base], constraint: str | None) -> list[str]:
    if constraint == "uq_results_key":
        return list(_RESULT_KEY)
    return [column.name for column in table.__table__.primary_key.columns]


def _window_row(window: ClosedWindow) -> dict[str, Any]:
    return {
        "model": window.model,
        "window_index": window.index,
        "window_start": window.start,
        "window_end": window.end,
        "reference_id": window.reference_id,
        "model_version": window.model_version,
        "n_events": window.n_events,
        "summary": window.summary,
    }


def _result_row(record: ResultRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in record.__slots__}
    for name in ("feature", "metric", "group_attribute"):
        row[name] = row[name] or ""
    return row


def _record(row: Any) -> ResultRecord:
    values = {name: row[name] for name in ResultRecord.__slots__}
    for name in ("feature", "metric", "group_attribute"):
        values[name] = values[name] or None
    return ResultRecord(**values)


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as stored, with its id and when it was kept and fed back."""

    id: int
    letter: DeadLetter
    created_at: datetime
    replayed_at: datetime | None


def _stored_dead_letter(row: Any) -> StoredDeadLetter:
    partition = None if row["partition"] < 0 else row["partition"]
    letter = DeadLetter(
        reason=row["reason"],
        detail=row["detail"],
        raw=row["raw"],
        origin=Origin(row["source"], partition, row["offset"]),
        kind=row["kind"],
        model=row["model"],
    )
    return StoredDeadLetter(row["id"], letter, row["created_at"], row["replayed_at"])


def _dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "kind": letter.kind,
        "reason": letter.reason,
        "detail": letter.detail,
        "model": letter.model,
        "source": letter.origin.source,
        "partition": -1 if letter.origin.partition is None else letter.origin.partition,
        "offset": letter.origin.offset,
        "raw": letter.raw,
        "created_at": datetime.now(UTC),
        "replayed_at": None,
    }
