"""Storage: every SQL statement of the daemon, its tables, their migrations and retention.

SQLite by default, PostgreSQL by URL. Stages above persist through these
modules on the connection the batch path hands them, inside its transaction.
"""

from driftwarden.monitor.storage.engine import create, transient
from driftwarden.monitor.storage.schema import (
    alembic_config,
    current_revision,
    head_revision,
    prepare,
    require_current,
    upgrade,
)
from driftwarden.monitor.storage.store import (
    ClosedWindow,
    Commit,
    ModelSnapshot,
    Store,
    StoredDeadLetter,
)
from driftwarden.monitor.storage.tables import SCHEMA
from driftwarden.monitor.storage.wal import WalCheckpointer

__all__ = [
    "SCHEMA",
    "ClosedWindow",
    "Commit",
    "ModelSnapshot",
    "Store",
    "StoredDeadLetter",
    "WalCheckpointer",
    "alembic_config",
    "create",
    "current_revision",
    "head_revision",
    "prepare",
    "require_current",
    "transient",
    "upgrade",
]
