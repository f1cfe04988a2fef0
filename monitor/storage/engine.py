"""Opening the database: SQLite by default (write-ahead log, tuned pragmas), PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url


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
