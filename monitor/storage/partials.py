"""The tables of models spread over partitions: each partition's pane summaries handed in,
each partition's progress, and the lock under which one instance closes a model's window.

Every partition of a spread model is folded by the instance that owns it; its summaries
and progress are written in that instance's checkpoint. The window's close reads all of
them under a row lock on the model's state, so whichever instance closes a window, it
is closed once (docs/scaling.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from driftwarden.monitor.storage.tables import (
    ErrorPartialRow,
    ModelStateRow,
    SpreadProgressRow,
    WindowPartialRow,
)


@dataclass(frozen=True)
class Partial:
    """One partition's final summary of one pane of a spread model (and of each segment's
    share of it, encoded by ``SegmentWindows.pane_state``)."""

    model: str
    partition: int
    pane: int
    summary: bytes
    segments: bytes | None = None


@dataclass(frozen=True)
class Progress:
    """How far one partition has closed a spread model's windows (``None``: none yet),
    whether it is idle, before when it hands in no more errors (``None``: it holds the
    error stream back), when its last event of the model arrived, and whether its owner
    has read it to its end."""

    model: str
    partition: int
    closed_until: int | None
    idle: bool
    errors_until: int | None = None
    heard_at: int | None = None
    caught_up: bool = False


@dataclass(frozen=True)
class ErrorPartial:
    """Errors of one pane of a spread model's error stream that one partition joined since
    its last checkpoint (an encoded frame, see ``monitor.pipeline.spread``)."""

    model: str
    pane: int
    data: bytes


def write_partials(connection: Connection, partials: list[Partial]) -> None:
    """Store handed-in pane summaries (a pane is handed in once per partition)."""
    rows = [
        {
            "model": p.model,
            "partition": p.partition,
            "pane": p.pane,
            "data": p.summary,
            "segments": p.segments,
        }
        for p in partials
    ]
    connection.execute(_insert(connection)(WindowPartialRow).on_conflict_do_nothing(), rows)


def write_error_partials(connection: Connection, partials: list[ErrorPartial]) -> None:
    """Store handed-in errors."""
    rows = [{"model": p.model, "pane": p.pane, "data": p.data} for p in partials]
    connection.execute(ErrorPartialRow.__table__.insert(), rows)


def take_error_partials(
    connection: Connection, model: str, before: int | None
) -> dict[int, list[bytes]]:
    """Remove and return the handed-in errors of the model's panes before ``before``
    (``None``: all), by pane."""
    where = [ErrorPartialRow.model == model]
    if before is not None:
        where.append(ErrorPartialRow.pane < before)
    rows = connection.execute(
        select(ErrorPartialRow.pane, ErrorPartialRow.data)
        .where(*where)
        .order_by(ErrorPartialRow.pane, ErrorPartialRow.id)
    )
    panes: dict[int, list[bytes]] = defaultdict(list)
    for pane, data in rows:
        panes[pane].append(bytes(data))
    if panes:
        connection.execute(delete(ErrorPartialRow).where(*where))
    return dict(panes)


def write_progress(connection: Connection, progress: list[Progress]) -> None:
    """Store each partition's progress (the owner's latest word)."""
    rows = [
        {
            "model": p.model,
            "partition": p.partition,
            "closed_until": p.closed_until,
            "idle": p.idle,
            "errors_until": p.errors_until,
            "heard_at": p.heard_at,
            "caught_up": p.caught_up,
        }
        for p in progress
    ]
    statement = _insert(connection)(SpreadProgressRow)
    columns = ("closed_until", "idle", "errors_until", "heard_at", "caught_up")
    update = {name: statement.excluded[name] for name in columns}
    connection.execute(
        statement.on_conflict_do_update(index_elements=["model", "partition"], set_=update),
        rows,
    )


def lock_model(
    connection: Connection, model: str, reference_id: str, fresh: bytes
) -> tuple[str, bytes]:
    """Lock the model's state row until the transaction ends (created as ``fresh`` state if
    missing) and return its reference id and data. Instances closing the same model's
    windows queue here; SQLite, one process only, has no row locks to take."""
    row = {"model": model, "reference_id": reference_id, "data": fresh}
    connection.execute(_insert(connection)(ModelStateRow).values(row).on_conflict_do_nothing())
    locked = connection.execute(
        select(ModelStateRow.reference_id, ModelStateRow.data)
        .where(ModelStateRow.model == model)
        .with_for_update()
    ).one()
    return locked[0], bytes(locked[1])


def progress_of(connection: Connection, model: str) -> dict[int, Progress]:
    """Every partition's committed progress on ``model`` (and this transaction's)."""
    rows = connection.execute(
        select(
            SpreadProgressRow.partition,
            SpreadProgressRow.closed_until,
            SpreadProgressRow.idle,
            SpreadProgressRow.errors_until,
            SpreadProgressRow.heard_at,
            SpreadProgressRow.caught_up,
        ).where(SpreadProgressRow.model == model)
    )
    return {
        partition: Progress(model, partition, closed, bool(idle), errors, heard, bool(caught))
        for partition, closed, idle, errors, heard, caught in rows
    }


def partials_of(
    connection: Connection, model: str, since: int, until: int | None = None
) -> dict[int, list[Partial]]:
    """The handed-in summaries of the model's panes from ``since`` on (and before
    ``until``), by pane, in partition order."""
    where = [WindowPartialRow.model == model, WindowPartialRow.pane >= since]
    if until is not None:
        where.append(WindowPartialRow.pane < until)
    rows = connection.execute(
        select(
            WindowPartialRow.partition,
            WindowPartialRow.pane,
            WindowPartialRow.data,
            WindowPartialRow.segments,
        )
        .where(*where)
        .order_by(WindowPartialRow.pane, WindowPartialRow.partition)
    )
    panes: dict[int, list[Partial]] = defaultdict(list)
    for partition, pane, data, segments in rows:
        held = None if segments is None else bytes(segments)
        panes[pane].append(Partial(model, partition, pane, bytes(data), held))
    return dict(panes)


def drop_partials(connection: Connection, model: str, before: int) -> None:
    """Forget the summaries of panes no window still to close holds."""
    connection.execute(
        delete(WindowPartialRow).where(
            WindowPartialRow.model == model, WindowPartialRow.pane < before
        )
    )


def _insert(connection: Connection) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
