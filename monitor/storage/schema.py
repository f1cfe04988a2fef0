"""The database schema's revision: upgrading it with the bundled Alembic migrations,
creating it in an empty database, and refusing to run on an outdated one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError

from driftwarden.monitor.errors import DatabaseUnavailable, SchemaOutdatedError

try:
    import fcntl
except ImportError:  # Windows: SQLite files are not locked across processes there
    fcntl = None  # type: ignore[assignment]

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("driftwarden.storage")

_PREPARE_LOCK = 0x6472_6966_7477_6172  # "driftwar": one schema creation at a time (PostgreSQL)
_creating = threading.Lock()


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
    """The schema's revision (``None`` for an empty database); ``DatabaseUnavailable`` when
    the database cannot be reached."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnavailable(f"cannot reach the database {where}: {reason}") from None


def require_current(engine: Engine, command_hint: str) -> None:
    """Refuse an empty or outdated schema, naming the command that fixes it."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise _outdated(current, head, command_hint)


def prepare(engine: Engine, command_hint: str) -> bool:
    """Make the schema ready for a process that writes to it (the daemon, ``replay``).

    An empty database (no table at all) gets this release's schema, logged as event
    ``schema_created``; the return value says whether that happened. A schema at this
    release's revision is left alone. Anything else is refused with ``SchemaOutdatedError``
    naming ``command_hint`` (the ``db upgrade`` command): an older or newer revision, and
    tables without a revision, are never changed behind the operator's back.

    Two processes (or threads) preparing one empty database take turns: the second finds
    the schema created and returns False.
    """
    head = head_revision()
    if current_revision(engine) == head:
        return False
    with _exclusive(engine):  # another process may be creating it: look again once alone
        return _create(engine, head, command_hint)


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One schema creation at a time: in this process (Alembic's context is global), and
    across processes (a PostgreSQL advisory lock; an advisory lock on a SQLite file, which
    SQLite's own byte-range locks do not touch)."""
    with _creating:
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                lock, unlock = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
                connection.execute(text(lock), {"key": _PREPARE_LOCK})
                try:
                    yield
                finally:
                    connection.execute(text(unlock), {"key": _PREPARE_LOCK})
                    connection.commit()
            return
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if fcntl is None or not database or not Path(database).is_file():
            yield
            return
        with open(database, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _create(engine: Engine, head: str, command_hint: str) -> bool:
    """Create the schema in an empty database; refuse anything else but the current one."""
    current = current_revision(engine)
    if current == head:
        return False
    tables = _tables(engine) if current is None else []
    if current is not None or tables:
        raise _outdated(current, head, command_hint, tables=tables)
    try:
        upgrade(engine)
    except Exception:
        if current_revision(engine) == head:  # created by a process that raced this one
            return False
        raise
    where = engine.url.render_as_string(hide_password=True)
    log.info(
        "created the database schema in an empty database",
        extra={"event": "schema_created", "revision": head, "database": where},
    )
    return True


def _tables(engine: Engine) -> list[str]:
    """The tables in the engine's default schema (the search path's first, on PostgreSQL)."""
    try:
        return sorted(inspect(engine).get_table_names())
    except OperationalError as error:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnavailable(f"cannot reach the database {where}: {reason}") from None


def _outdated(
    current: str | None, head: str, command_hint: str, *, tables: list[str] | None = None
) -> SchemaOutdatedError:
    if current is None and tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        return SchemaOutdatedError(
            f"the database has tables ({shown}) but no driftwarden schema revision: point "
            "storage.url at a database (or PostgreSQL schema) of driftwarden's own, or create "
            f"this release's schema (revision {head}) beside them with `{command_hint}`"
        )
    state = "empty" if current is None else f"at revision {current}"
    return SchemaOutdatedError(
        f"the database schema is {state}; this release needs revision {head}: run `{command_hint}`"
    )


@dataclass(frozen=True)
class Migration:
    """One migration of the bundled chain, for ``driftwarden db history``."""

    revision: str
    down_revision: str | None
    description: str
    head: bool


def history() -> list[Migration]:
    """The bundled migrations, oldest first."""
    script = ScriptDirectory(str(MIGRATIONS))
    heads = set(script.get_heads())
    chain = reversed(list(script.walk_revisions()))
    return [
        Migration(
            revision=item.revision,
            down_revision=item.down_revision if isinstance(item.down_revision, str) else None,
            description=item.doc,
            head=item.revision in heads,
        )
        for item in chain
    ]
