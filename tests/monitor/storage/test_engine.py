"""``storage.create`` on SQLite: connections opened at once on a new file all get the
write-ahead log, however they interleave (SQLite refuses one of two simultaneous switches at
once, without waiting its busy timeout)."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from driftwarden.monitor import storage


def _journal_modes_opening_at_once(engines: list[sa.Engine]) -> list[str | BaseException]:
    """Each engine's journal mode (or its error), all connecting at the same moment."""
    start = threading.Barrier(len(engines))
    modes: list[str | BaseException] = []

    def connect(engine: sa.Engine) -> None:
        start.wait()
        try:
            with engine.connect() as connection:
                modes.append(connection.exec_driver_sql("PRAGMA journal_mode").scalar())
        except BaseException as exc:  # reported by the caller
            modes.append(exc)

    threads = [threading.Thread(target=connect, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return modes


def test_connections_opened_at_once_on_a_new_file_all_use_the_write_ahead_log(
    tmp_path: Path,
) -> None:
    for round_ in range(20):
        engines = [storage.create(f"sqlite:///{tmp_path / f'{round_}.db'}") for _ in range(4)]
        assert _journal_modes_opening_at_once(engines) == ["wal"] * 4, round_
        for engine in engines:
            engine.dispose()
