"""One model's stored predictions, found by id through an index in memory."""

from __future__ import annotations

import numpy as np
import polars as pl
from sqlalchemy import Connection

from driftwarden.monitor.labels.id_index import IdIndex, id_hashes
from driftwarden.monitor.storage.join_store import JoinStore


class WaitingPredictions:
    """One model's stored predictions, found by id.

    The rows are in ``label_join``, keyed by sequence number, so storing one appends to
    the table; which number holds an id is kept in memory (an ``IdIndex``, loaded from
    the table on first use), not in a database index where random ids would land on a
    page each. What the index returns is checked against the stored ids. New rows are
    numbered on from the index's last number, so a process never reuses one.
    """

    def __init__(self, store: JoinStore, model: str) -> None:
        self.store = store
        self.model = model
        self._index: IdIndex | None = None
        self.inserted: pl.DataFrame | None = None
        """The rows the last ``insert`` stored (with ``seq``), for shadow pairing."""

    def insert(self, connection: Connection, rows: pl.DataFrame) -> int:
        """Store predictions (``PENDING_COLUMNS`` but ``seq``) not stored yet; returns how
        many were new (the rest repeat an id, stored or earlier in ``rows``)."""
        index = self._loaded(connection)
        rows = rows.unique("id", keep="first", maintain_order=True)
        hashes = id_hashes(rows["id"])
        known = index.lookup(hashes)
        if known.size:
            stored = self.store.rows_at(connection, self.model, known)["id"]
            new = ~rows["id"].is_in(stored.implode()).to_numpy()
            rows, hashes = rows.filter(new), hashes[new]
        seqs = np.arange(index.last_seq + 1, index.last_seq + 1 + rows.height, dtype=np.int64)
        self.inserted = rows.with_columns(seq=seqs)
        if rows.is_empty():
            return 0
        self.store.insert_pending(connection, self.model, self.inserted)
        index.add(hashes, seqs)
        return rows.height

    def find(self, connection: Connection, ids: pl.Series) -> pl.DataFrame:
        """The stored rows of these ids (columns ``FOUND_COLUMNS``)."""
        seqs = self._loaded(connection).lookup(id_hashes(ids))
        found = self.store.rows_at(connection, self.model, seqs)
        return found.filter(pl.col("id").is_in(ids.implode()))

    def forget(self, seqs: np.ndarray) -> None:
        """Rows at ``seqs`` were deleted."""
        if self._index is not None:
            self._index.forget(seqs)

    def _loaded(self, connection: Connection) -> IdIndex:
        if self._index is None:
            self._index = IdIndex()
            for chunk in self.store.stored_ids(connection, self.model):
                self._index.add(id_hashes(chunk["id"]), chunk["seq"].to_numpy())
            self.store.clear_flags_from(connection, self.model, self._index.last_seq + 1)
        return self._index
