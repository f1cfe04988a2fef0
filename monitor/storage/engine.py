"""Opening the database: SQLite by default (write-ahead log, tuned pragmas), PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_BUSY_TIMEOUT_MS = 30_000


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
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    _write_ahead_log(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Reads through a memory map: the label join looks rows up at random in a large table.
    cursor.execute("PRAGMA mmap_size=2147418112")
    # A log grown while its checkpoints fell behind is cut back when it restarts.
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


def _write_ahead_log(cursor: Any) -> None:
    """Switch to the write-ahead log. Two connections switching a new file at once: SQLite
    tells one "database is locked" at once, without waiting its busy timeout, so it tries
    again for as long as that timeout."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


_TRANSIENT_STATES = {
    "08000",  # connection exception
    "08001",  # could not connect
    "08003",  # connection does not exist
    "08004",  # server rejected the connection
    "08006",  # connection failure
    "40001",  # serialization failure
    "40P01",  # deadlock detected
    "57P01",  # administrator shutdown
    "57P02",  # crash shutdown
    "57P03",  # cannot connect now (starting up or shutting down)
}


def transient(error: BaseException) -> bool:
    """Whether a database error is one a retry may outlive: a lost or refused connection, a
    server restarting or failing over, a serialization failure or deadlock, a busy SQLite.
    Anything else (a missing table, a constraint) is a fault of its own."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if state is not None:
        return state in _TRANSIENT_STATES or state.startswith("08")
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    if type(error.orig).__module__.startswith("sqlite3"):
        return "locked" in str(error.orig).lower()
    return True  # a server error without a SQL state: the connection itself failed
