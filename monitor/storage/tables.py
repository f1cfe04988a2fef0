"""The daemon's tables (SQLAlchemy models); Alembic's migrations create and change them.

``results`` is derived from the record contract (``driftwarden.core.records``):
a field added there is a column here, once a migration adds it to databases.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, get_args, get_type_hints

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from driftwarden.alerts import tables as alerts_tables
from driftwarden.core.records import RESULT_KEY, ResultRecord


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


def _result_columns() -> list[Column[Any]]:
    """The columns of ``results``, one per field of the record contract.

    Text fields of the key are stored as ``""`` rather than NULL, so the unique key
    treats "no feature" as a value.
    """
    hints = get_type_hints(ResultRecord)
    columns: list[Column[Any]] = [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ]
    for item in fields(ResultRecord):
        kinds = set(get_args(hints[item.name])) or {hints[item.name]}
        nullable = type(None) in kinds and item.name not in RESULT_KEY
        kind = (kinds - {type(None)}).pop()
        columns.append(
            Column(
                item.name,
                _column_type(kind, item.metadata),
                nullable=nullable,
                index=item.name == "window_start",
            )
        )
    return columns


def _column_type(kind: type, metadata: Any) -> Any:
    if kind is str:
        return String(metadata["max_length"]) if "max_length" in metadata else Text()
    if kind is int:
        return Integer() if metadata.get("bits") == 32 else BigInteger()
    return {float: Float(), bool: Boolean()}[kind]


class ResultRow(Base):
    """A result record; the unique key makes every write an upsert."""

    __table__ = Table(
        "results",
        Base.metadata,
        *_result_columns(),
        UniqueConstraint(*RESULT_KEY, name="uq_results_key"),
    )


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
    buckets: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(255))
    business: Mapped[str | None] = mapped_column(Text)
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


class LeaseRow(Base):
    """A named lease one instance of a fleet holds until it expires unrenewed (epoch ms)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[int] = mapped_column(BigInteger)


class OrphanLabelRow(Base):
    """A label that arrived before its prediction, waiting up to ``orphan_ttl``."""

    __tablename__ = "orphan_labels"
    __table_args__ = (Index("ix_orphan_labels_expiry", "model", "expires_at"),)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(255))
    business: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(1024))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    """Behind its labels partition's watermark when it arrived: a spread model's error
    stream leaves its error out (docs/scaling.md)."""


class LabelPaneRow(Base):
    """The label summary of one pane (or count window) of a model."""

    __tablename__ = "label_panes"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    pane: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WindowPartialRow(Base):
    """One partition's summary of one pane of a spread model, handed in when the
    partition's watermark closed a window holding the pane; merged when the model's window
    closes (docs/scaling.md)."""

    __tablename__ = "window_partials"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    pane: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    segments: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The pane's summaries of each segment (``segments`` configured)."""


class SpreadProgressRow(Base):
    """How far one partition has closed a spread model's windows (the end of the last
    window it closed), and whether it is idle (it then holds no window back)."""

    __tablename__ = "spread_progress"
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    closed_until: Mapped[int | None] = mapped_column(BigInteger)
    idle: Mapped[bool] = mapped_column(Boolean)
    errors_until: Mapped[int | None] = mapped_column(BigInteger)
    """Before this time the partition hands in no more errors (``None``: it holds the
    model's error stream back)."""
    heard_at: Mapped[int | None] = mapped_column(BigInteger)
    """When (wall clock) its last event of the model arrived."""
    caught_up: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether its owner has read it to its end (a lagging partition proves no silence)."""


class ErrorPartialRow(Base):
    """Errors of a spread model's joined labels one partition handed in at a checkpoint,
    by the pane of their time; merged in one order when every partition has passed the
    pane (docs/scaling.md)."""

    __tablename__ = "error_partials"
    __table_args__ = (Index("ix_error_partials_pane", "model", "pane"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(255))
    pane: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


metadata = Base.metadata
SCHEMA = (metadata, alerts_tables.metadata)
"""Every table the migrations manage: the daemon's and the alert engine's."""
