"""The database schema's revision: upgrading it with the bundled Alembic migrations, and
refusing to run on an empty or outdated one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from driftwarden.monitor.errors import DatabaseUnavailable, SchemaOutdatedError

MIGRATIONS = Path(__file__).with_name("migrations")


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
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdatedError(
            f"the database schema is {state}; this release needs revision {head}: "
            f"run `{command_hint}`"
        )
