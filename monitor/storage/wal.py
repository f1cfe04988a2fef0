"""Checkpointing SQLite's write-ahead log from a thread of its own."""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Connection, Engine

# A writer whose log is checkpointed by a ``WalCheckpointer`` still checkpoints itself
# past this many log pages (about 1 GiB), should the checkpointer fall behind.
WRITER_AUTOCHECKPOINT = 262_144

log = logging.getLogger("driftwarden.storage")


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

    def prepare(self, writer: Connection) -> None:
        """Leave checkpointing to this thread on ``writer`` (up to ``WRITER_AUTOCHECKPOINT``
        pages): its commits only append to the log."""
        if self.applies:
            writer.exec_driver_sql(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT}")

    def start(self, writer: Connection) -> WalCheckpointer:
        if not self.applies:
            return self
        self.prepare(writer)
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
