"""A lease in the database: which one instance of a fleet does a fleet-wide job.

Several daemons share a database. Figures read from it (alerts firing, the outbox backlog)
are the same for all of them, so if each exported them, dashboards that sum across
instances would multiply them. The instance holding the lease exports them; the others
do not. The holder renews it every second or so; when it stops (crash, shutdown, lost
database), another instance takes it once it expired.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from driftwarden.core.times import Clock
from driftwarden.monitor.storage.tables import LeaseRow

log = logging.getLogger("driftwarden.storage")
_leases = LeaseRow.__table__


class Lease:
    """The lease ``name`` for ``owner``, held ``ttl`` milliseconds from each renewal."""

    def __init__(self, engine: Engine, name: str, owner: str, ttl: int, clock: Clock) -> None:
        self.engine = engine
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.held = False

    def renew(self) -> bool:
        """Take or keep the lease if it is free, expired or ours; whether we hold it."""
        now = self.clock()
        mine = {"owner": self.owner, "expires_at": now + self.ttl}
        c = _leases.c
        try:
            with self.engine.begin() as connection:
                taken = connection.execute(
                    update(_leases)
                    .where(c.name == self.name, or_(c.owner == self.owner, c.expires_at < now))
                    .values(**mine)
                ).rowcount
                if not taken:
                    insert = postgresql if self.engine.dialect.name == "postgresql" else sqlite
                    statement = insert.insert(_leases).values(name=self.name, **mine)
                    taken = connection.execute(statement.on_conflict_do_nothing()).rowcount
        except Exception as error:
            log.warning("lease %s not renewed: %s", self.name, error)
            taken = 0
        if bool(taken) != self.held:
            log.info(
                "lease %s %s",
                self.name,
                "taken" if taken else "lost",
                extra={"event": "lease", "lease": self.name, "held": bool(taken)},
            )
        self.held = bool(taken)
        return self.held

    def release(self) -> None:
        """Give the lease up now (shutdown), so another instance takes it at once."""
        if not self.held:
            return
        self.held = False
        c = _leases.c
        with self.engine.begin() as connection:
            connection.execute(delete(_leases).where(c.name == self.name, c.owner == self.owner))
