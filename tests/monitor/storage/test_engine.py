"""``storage.create`` on SQLite: connections opened at once on a new file all get the
write-ahead log, however they interleave (SQLite refuses one of two simultaneous switches at
once, without waiting its busy timeout)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from support.threads import at_once

from driftwarden.monitor import storage


def _journal_mode(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA journal_mode").scalar()


def test_connections_opened_at_once_on_a_new_file_all_use_the_write_ahead_log(
    tmp_path: Path,
) -> None:
    for round_ in range(60):
        engines = [storage.create(f"sqlite:///{tmp_path / f'{round_}.db'}") for _ in range(4)]
        assert at_once(_journal_mode, engines, timeout=60) == ["wal"] * 4, round_
        for engine in engines:
            engine.dispose()
