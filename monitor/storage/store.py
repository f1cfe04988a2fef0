"""Reading and writing the daemon's state, and the one transaction per checkpoint.

Everything a batch produces — consumer positions, model window state, closed
windows, results, dead letters — is written in one transaction (``Store.write``
on the caller's connection), which is what makes a crash at any instant
neither lose nor double-count an event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from driftwarden.core.records import RESULT_FIELDS, RESULT_KEY, DeadLetter, Origin, ResultRecord
from driftwarden.core.times import to_ms
from driftwarden.monitor.storage.partials import (
    ErrorPartial,
    Partial,
    Progress,
    write_error_partials,
    write_partials,
    write_progress,
)
from driftwarden.monitor.storage.tables import (
    Base,
    DeadLetterRow,
    ModelStateRow,
    PositionRow,
    ProfileRow,
    ResultRow,
    WindowRow,
)


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
    partials: list[Partial] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    error_partials: list[ErrorPartial] = field(default_factory=list)


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
        if batch.partials:
            write_partials(connection, batch.partials)
        if batch.progress:
            write_progress(connection, batch.progress)
        if batch.error_partials:
            write_error_partials(connection, batch.error_partials)
        if batch.windows:
            latest = {(window.model, window.index): window for window in batch.windows}
            rows = [_window_row(window) for window in latest.values()]
            columns = [c for c in rows[0] if c not in ("model", "window_index")]
            connection.execute(self._upsert(WindowRow, columns), rows)
        if batch.results:
            latest = {record.key: record for record in batch.results}
            rows = [_result_row(record) for record in latest.values()]
            columns = [c for c in rows[0] if c not in RESULT_KEY]
            connection.execute(self._upsert(ResultRow, columns, "uq_results_key"), rows)
        if batch.dead_letters:
            rows = [_dead_letter_row(letter) for letter in batch.dead_letters]
            connection.execute(self._insert(DeadLetterRow).on_conflict_do_nothing(), rows)

    def results(
        self,
        model: str | None = None,
        since: int | None = None,
        version: str | None = None,
        segment: str | None = None,
    ) -> Iterator[ResultRecord]:
        """Stored results in window order, optionally of one model, one model version, one
        segment (``""``: the whole model's) and from a time on."""
        columns = ResultRow.__table__.c
        query = select(ResultRow).order_by(*(columns[name] for name in RESULT_KEY))
        if model is not None:
            query = query.where(columns.model == model)
        if version is not None:
            query = query.where(columns.model_version == version)
        if segment is not None:
            query = query.where(columns.segment == segment)
        if since is not None:
            query = query.where(columns.window_end > since)
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                yield record_of(row)

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


def closed_windows(
    connection: Connection, model: str, low: int, high: int, *, by_index: bool
) -> list[ClosedWindow]:
    """The model's stored windows with an index in ``[low, high]`` (``by_index``) or a
    time range that overlaps ``[low, high]``."""
    columns = WindowRow.__table__.c
    if by_index:
        where = (columns.window_index >= low, columns.window_index <= high)
    else:
        where = (columns.window_start <= high, columns.window_end > low)
    rows = connection.execute(
        select(
            columns.window_index,
            columns.window_start,
            columns.window_end,
            columns.reference_id,
            columns.model_version,
            columns.n_events,
            columns.summary,
        ).where(columns.model == model, *where)
    )
    return [
        ClosedWindow(model, index, start, end, reference_id, version, n_events, bytes(data))
        for index, start, end, reference_id, version, n_events, data in rows
    ]


def window_results(
    connection: Connection,
    model: str,
    kinds: tuple[str, ...],
    low: int,
    high: int,
    *,
    version: str | None = None,
) -> list[ResultRecord]:
    """The whole model's stored results of ``kinds`` (not its segments') in windows ``low``
    to ``high``; only those of ``version`` when one is given (versions split)."""
    columns = ResultRow.__table__.c
    query = select(ResultRow).where(
        columns.model == model,
        columns.segment == "",
        columns.window_index >= low,
        columns.window_index <= high,
        columns.kind.in_(kinds),
    )
    if version is not None:
        query = query.where(columns.model_version == version)
    return [record_of(row) for row in connection.execute(query).mappings()]


def _conflict_columns(table: type[Base], constraint: str | None) -> list[str]:
    if constraint == "uq_results_key":
        return list(RESULT_KEY)
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
    row = {name: getattr(record, name) for name in RESULT_FIELDS}
    for name in _KEY_TEXT:
        row[name] = row[name] or ""
    return row


def record_of(row: Any) -> ResultRecord:
    """The result record of a ``results`` row (a mapping of its columns)."""
    values = {name: row[name] for name in RESULT_FIELDS}
    for name in _KEY_TEXT:
        values[name] = values[name] or None
    return ResultRecord(**values)


_KEY_TEXT = ("model_version", "feature", "metric", "group_attribute", "segment")
"""Optional key fields, stored as ``""`` for "none" (see ``tables``)."""


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as stored, with its id and when it was kept and fed back (epoch ms)."""

    id: int
    letter: DeadLetter
    created_at: int
    replayed_at: int | None


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
    replayed = row["replayed_at"]
    return StoredDeadLetter(
        row["id"], letter, _ms(row["created_at"]), None if replayed is None else _ms(replayed)
    )


def _ms(moment: datetime) -> int:
    """Epoch milliseconds of a stored time (SQLite gives it back without its UTC zone)."""
    return to_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


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
