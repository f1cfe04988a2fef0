"""The ids of a model's labels waiting for their prediction (``orphan_labels``)."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import Connection

from driftwarden.monitor.ingest.messages import DecodedBatch
from driftwarden.monitor.storage.join_store import JoinStore


class Orphans:
    """The ids of one model's orphan labels, loaded from the table on first use.

    The versions of a model monitored separately share one: a label names the model, not
    the version, so it waits for whichever version's prediction of its id comes.
    """

    def __init__(self, store: JoinStore, model: str, policy: str, ttl: int) -> None:
        self.store = store
        self.model = model
        self.policy = policy
        self.ttl = ttl
        self._ids: set[str] | None = None

    def ids(self, connection: Connection) -> set[str]:
        """The ids waiting (the set itself: callers add and remove what they store)."""
        if self._ids is None:
            self._ids = self.store.orphan_ids(connection, self.model)
        return self._ids

    def expire(self, connection: Connection, before: int) -> list[Any]:
        """Drop the orphans expiring before ``before``; their rows (id, origin, raw, expiry)."""
        rows = self.store.expire_orphans(connection, self.model, before)
        if self._ids is not None:
            self._ids.difference_update(row[0] for row in rows)
        return rows

    def keep(
        self,
        connection: Connection,
        rows: pl.DataFrame,
        batch: DecodedBatch,
        now: int,
    ) -> tuple[int, int]:
        """Keep labels that found no prediction as orphans; how many repeated a waiting
        orphan (duplicates) and how many were new."""
        orphans = self.ids(connection)
        waiting = rows.filter(pl.col("id").is_in(list(orphans)))
        new = rows.filter(~pl.col("id").is_in(list(orphans)))
        if self.policy == "last":
            self.store.replace_orphan_labels(
                connection,
                [
                    (label, business, ts, late, self.model, i)
                    for i, ts, label, business, late in waiting.select(
                        "id", "ts", "label", "business", "late"
                    ).rows()
                ],
            )
        entries = []
        columns = new.select("_row", "id", "ts", "label", "business", "late")
        for row, identifier, ts, label, business, late in columns.rows():
            origin = batch.messages.origin(row)
            entries.append(
                (
                    self.model,
                    identifier,
                    ts,
                    label,
                    business,
                    now + self.ttl,
                    origin.source,
                    -1 if origin.partition is None else origin.partition,
                    origin.offset,
                    batch.messages.values[row],
                    late,
                )
            )
        self.store.insert_orphans(connection, entries)
        orphans.update(new["id"].to_list())
        return waiting.height, new.height
