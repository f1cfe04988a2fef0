"""Opening the database: SQLite by default (write-ahead log, tuned pragmas), PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


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
