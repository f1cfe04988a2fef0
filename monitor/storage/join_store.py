"""SQL of the label join's tables, for one dialect, run on the caller's connection.

``label_join`` holds waiting predictions (keyed by model and storage sequence
number, with each one's feature buckets for error attribution), ``label_flags``
one bit per stored prediction (labelled or not),
``orphan_labels`` labels waiting for their prediction (both keep a label's business
values as a JSON object), and ``label_panes`` the
label summaries of panes. Every multi-row read is one JSON aggregate that
polars parses, so no Python object is made per row.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import orjson
import polars as pl
from sqlalchemy import Connection

_CHUNK = 500
FLAGS_PER_CHUNK = 8192  # predictions per row of label_flags (1 KiB of bits)
PENDING_COLUMNS = ("id", "seq", "ts", "pane", "prediction", "groups", "buckets", "expires_at")
_LOAD_CHUNK = 200_000  # sequence numbers per statement when the id index is loaded
# The columns of a stored prediction as the join reads it: name -> (SQL, type).
FOUND_COLUMNS = {
    "id": ("j.id", pl.String),
    "seq": ("j.seq", pl.Int64),
    "pts": ("j.ts", pl.Int64),
    "pane": ("j.pane", pl.Int64),
    "prediction": ("j.prediction", pl.String),
    "groups": ("j.groups", pl.String),
    "buckets": ("j.buckets", pl.String),
    "old_label": ("j.label", pl.String),
    "old_business": ("j.business", pl.String),
}
_SEQ = {"seq": ("seq", pl.Int64)}


class JoinStore:
    """SQL for the join tables of one dialect, run on the caller's connection."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        ignore = "OR IGNORE " if dialect == "sqlite" else ""
        tail = "" if dialect == "sqlite" else " ON CONFLICT DO NOTHING"
        columns = ", ".join(PENDING_COLUMNS)
        if dialect == "sqlite":
            values = ", ".join(f"value ->> '{name}'" for name in PENDING_COLUMNS)
            self._insert_pending = (
                f"INSERT INTO label_join (model, {columns}) SELECT ?, {values} FROM json_each(?)"
            )
        else:
            marks = self._marks(len(PENDING_COLUMNS) + 1)
            self._insert_pending = f"INSERT INTO label_join (model, {columns}) VALUES ({marks})"
        self._insert_orphan = (
            f"INSERT {ignore}INTO orphan_labels (model, id, ts, label, business, expires_at, "
            f'source, partition, "offset", raw, late) VALUES ({self._marks(11)}){tail}'
        )

    @property
    def _mark(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _marks(self, n: int) -> str:
        return ", ".join([self._mark] * n)

    def insert_pending(self, connection: Connection, model: str, rows: pl.DataFrame) -> None:
        """Store new waiting predictions (columns ``PENDING_COLUMNS``) with no label yet.

        On SQLite the batch goes in as one JSON document: one statement, not one per row.
        """
        if self.dialect == "sqlite":
            payload = rows.select(PENDING_COLUMNS).write_json()
            connection.exec_driver_sql(self._insert_pending, (model, payload))
        else:
            values = rows.select(pl.lit(model).alias("model"), *PENDING_COLUMNS).rows()
            connection.exec_driver_sql(self._insert_pending, values)

    def rows_at(self, connection: Connection, model: str, seqs: np.ndarray) -> pl.DataFrame:
        """The stored predictions at these sequence numbers (columns ``FOUND_COLUMNS``)."""
        numbers = np.unique(seqs).tolist()
        if self.dialect == "sqlite":
            wanted = "json_each(?) AS wanted CROSS JOIN label_join AS j ON j.seq = wanted.value"
            parameter: Any = orjson.dumps(numbers).decode()
        else:
            wanted = (
                "unnest(%s::bigint[]) AS wanted(seq) JOIN label_join AS j ON j.seq = wanted.seq"
            )
            parameter = numbers
        return self._read(
            connection, FOUND_COLUMNS, f"{wanted} AND j.model = {self._mark}", (parameter, model)
        )

    def stored_ids(self, connection: Connection, model: str) -> Iterator[pl.DataFrame]:
        """The ids and sequence numbers of the model's stored predictions, in chunks of
        sequence numbers."""
        mark = self._mark
        low, high = connection.exec_driver_sql(
            f"SELECT min(seq), max(seq) FROM label_join WHERE model = {mark}", (model,)
        ).one()
        if low is None:
            return
        fields = {"seq": ("seq", pl.Int64), "id": ("id", pl.String)}
        source = f"label_join WHERE model = {mark} AND seq >= {mark} AND seq < {mark}"
        for start in range(low, high + 1, _LOAD_CHUNK):
            yield self._read(connection, fields, source, (model, start, start + _LOAD_CHUNK))

    def _read(
        self,
        connection: Connection,
        fields: dict[str, tuple[str, pl.DataType]],
        source: str,
        parameters: tuple[Any, ...],
    ) -> pl.DataFrame:
        """``SELECT fields FROM source`` as a frame: the database aggregates the rows into
        one JSON document and polars reads it, so no Python object is made per row."""
        pairs = ", ".join(f"'{name}', {sql}" for name, (sql, _) in fields.items())
        if self.dialect == "sqlite":
            rows = f"json_group_array(json_object({pairs}))"
        else:
            rows = f"coalesce(json_agg(json_build_object({pairs})), '[]')::text"
        found = connection.exec_driver_sql(f"SELECT {rows} FROM {source}", parameters).scalar()
        schema = {name: kind for name, (_, kind) in fields.items()}
        return pl.read_json(io.StringIO(found), schema=schema)

    def keep_labels(self, connection: Connection, model: str, rows: pl.DataFrame) -> None:
        """Store the label of found rows (columns ``seq``, ``label``, ``business``, ``ts``),
        for ``policy: last`` to replace it later."""
        if rows.is_empty():
            return
        mark = self._mark
        connection.exec_driver_sql(
            f"UPDATE label_join SET label = {mark}, business = {mark}, labeled_at = {mark} "
            f"WHERE model = {mark} AND seq = {mark}",
            rows.sort("seq").select("label", "business", "ts", pl.lit(model), "seq").rows(),
        )

    def labeled(self, connection: Connection, model: str, seqs: np.ndarray) -> np.ndarray:
        """Whether each of these stored predictions has a label."""
        chunks, bits = self._flags(connection, model, seqs)
        return bits[np.searchsorted(chunks, seqs // FLAGS_PER_CHUNK), seqs % FLAGS_PER_CHUNK]

    def set_flags(
        self, connection: Connection, model: str, seqs: np.ndarray, value: bool
    ) -> np.ndarray:
        """Mark these stored predictions as labelled (or not); what they were before.

        Only chunks that change are written, and chunks left without a flag are deleted.
        """
        chunks, bits = self._flags(connection, model, seqs)
        at = np.searchsorted(chunks, seqs // FLAGS_PER_CHUNK), seqs % FLAGS_PER_CHUNK
        before = bits[at]
        changed = np.unique(at[0][before != value])
        bits[at] = value
        self._save_flags(connection, model, chunks[changed], bits[changed])
        return before

    def _flags(
        self, connection: Connection, model: str, seqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chunks of flags covering ``seqs``, in order, and their bits (a row each)."""
        chunks = np.unique(seqs // FLAGS_PER_CHUNK)
        bits = np.zeros((chunks.size, FLAGS_PER_CHUNK), dtype=bool)
        if chunks.size == 0:
            return chunks, bits
        mark = self._mark
        stored = connection.exec_driver_sql(
            f"SELECT chunk, bits FROM label_flags WHERE model = {mark} "
            f"AND chunk >= {mark} AND chunk <= {mark}",
            (model, int(chunks[0]), int(chunks[-1])),
        )
        for chunk, data in stored:
            at = np.searchsorted(chunks, chunk)
            if at < chunks.size and chunks[at] == chunk:
                bits[at] = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return chunks, bits

    def _save_flags(
        self, connection: Connection, model: str, chunks: np.ndarray, bits: np.ndarray
    ) -> None:
        used = bits.any(axis=1)
        packed = np.packbits(bits[used], axis=1, bitorder="little")
        pairs = zip(chunks[used], packed, strict=True)
        rows = [(model, int(chunk), data.tobytes()) for chunk, data in pairs]
        if rows and self.dialect == "sqlite":
            connection.exec_driver_sql(
                "INSERT OR REPLACE INTO label_flags (model, chunk, bits) VALUES (?, ?, ?)", rows
            )
        elif rows:
            connection.exec_driver_sql(
                "INSERT INTO label_flags (model, chunk, bits) VALUES (%s, %s, %s) "
                "ON CONFLICT (model, chunk) DO UPDATE SET bits = EXCLUDED.bits",
                rows,
            )
        unused = [(model, int(chunk)) for chunk in chunks[~used]]
        if unused:
            connection.exec_driver_sql(
                f"DELETE FROM label_flags WHERE model = {self._mark} AND chunk = {self._mark}",
                unused,
            )

    def clear_flags_from(self, connection: Connection, model: str, first: int) -> None:
        """Clear the model's flags at ``first`` and past it: left by rows deleted outside
        the join (by retention), they must not make a new row there born labelled."""
        stale = connection.exec_driver_sql(
            f"SELECT max(chunk) FROM label_flags WHERE model = {self._mark}", (model,)
        ).scalar()
        if stale is not None and stale >= first // FLAGS_PER_CHUNK:
            ahead = np.arange(first, (stale + 1) * FLAGS_PER_CHUNK, dtype=np.int64)
            self.set_flags(connection, model, ahead, False)

    def insert_orphans(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            connection.exec_driver_sql(self._insert_orphan, rows)

    def replace_orphan_labels(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        """``(label, business, ts, late, model, id)``: a later label of a waiting orphan
        (``policy: last``)."""
        if rows:
            mark = self._mark
            connection.exec_driver_sql(
                f"UPDATE orphan_labels SET label = {mark}, business = {mark}, ts = {mark}, "
                f"late = {mark} "
                f"WHERE model = {self._mark} AND id = {self._mark}",
                rows,
            )

    def orphan_ids(self, connection: Connection, model: str) -> set[str]:
        rows = connection.exec_driver_sql(
            f"SELECT id FROM orphan_labels WHERE model = {self._mark}", (model,)
        )
        return {row[0] for row in rows}

    def take_orphans(self, connection: Connection, model: str, ids: list[str]) -> pl.DataFrame:
        """Remove and return the orphans of these ids (their predictions have arrived)."""
        taken = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            where = f"model = {self._mark} AND id IN ({self._marks(len(chunk))})"
            taken += connection.exec_driver_sql(
                f"SELECT id, ts, label, business, late FROM orphan_labels WHERE {where}",
                (model, *chunk),
            ).all()
            connection.exec_driver_sql(f"DELETE FROM orphan_labels WHERE {where}", (model, *chunk))
        schema = {
            "id": pl.String,
            "ts": pl.Int64,
            "label": pl.String,
            "business": pl.String,
            "late": pl.Boolean,
        }
        rows = [(*row[:4], bool(row[4])) for row in taken]
        return pl.DataFrame(rows, schema=schema, orient="row")

    def expire(
        self, connection: Connection, model: str, now: int, orphans_before: int
    ) -> tuple[np.ndarray, int, list[Any]]:
        """Drop predictions past their ttl (returning their sequence numbers, and how many
        were never labelled) and orphans expiring before ``orphans_before`` (returned with
        their expiry)."""
        expired, never = self.expire_predictions(connection, model, now)
        return expired, never, self.expire_orphans(connection, model, orphans_before)

    def expire_predictions(
        self, connection: Connection, model: str, now: int
    ) -> tuple[np.ndarray, int]:
        """Drop predictions past their ttl; their sequence numbers, and how many were never
        labelled."""
        mark = self._mark
        expired = self._read(
            connection,
            _SEQ,
            f"label_join WHERE model = {mark} AND expires_at < {mark}",
            (model, now),
        )["seq"].to_numpy()
        never = int(expired.size - self.set_flags(connection, model, expired, False).sum())
        connection.exec_driver_sql(
            f"DELETE FROM label_join WHERE model = {mark} AND expires_at < {mark}", (model, now)
        )
        return expired, never

    def expire_orphans(self, connection: Connection, model: str, before: int) -> list[Any]:
        """Drop orphans expiring before ``before``; returned with their origin and expiry."""
        mark = self._mark
        orphans = connection.exec_driver_sql(
            f'SELECT id, source, partition, "offset", raw, expires_at FROM orphan_labels '
            f"WHERE model = {mark} AND expires_at < {mark}",
            (model, before),
        ).all()
        connection.exec_driver_sql(
            f"DELETE FROM orphan_labels WHERE model = {mark} AND expires_at < {mark}",
            (model, before),
        )
        return orphans

    def label_counts(self, connection: Connection, model: str) -> tuple[int, int]:
        """How many stored predictions of the model wait for a label, and how many have one."""
        stored = self._read(connection, _SEQ, f"label_join WHERE model = {self._mark}", (model,))[
            "seq"
        ].to_numpy()
        labeled = int(self.labeled(connection, model, stored).sum())
        return stored.size - labeled, labeled

    def load_range(
        self, connection: Connection, model: str, start: int, end: int
    ) -> dict[int, bytes]:
        """Stored label summaries of the panes in ``[start, end)``."""
        rows = connection.exec_driver_sql(
            f"SELECT pane, data FROM label_panes WHERE model = {self._mark} "
            f"AND pane >= {self._mark} AND pane < {self._mark}",
            (model, start, end),
        )
        return {pane: bytes(data) for pane, data in rows}

    def load_panes(
        self, connection: Connection, model: str, panes: Iterable[int]
    ) -> dict[int, bytes]:
        wanted = sorted(set(panes))
        out: dict[int, bytes] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = connection.exec_driver_sql(
                f"SELECT pane, data FROM label_panes WHERE model = {self._mark} "
                f"AND pane IN ({self._marks(len(chunk))})",
                (model, *chunk),
            )
            out.update({pane: bytes(data) for pane, data in rows})
        return out

    def save_panes(self, connection: Connection, model: str, panes: dict[int, bytes]) -> None:
        if not panes:
            return
        rows = [(model, pane, data) for pane, data in panes.items()]
        if self.dialect == "sqlite":
            statement = "INSERT OR REPLACE INTO label_panes (model, pane, data) VALUES (?, ?, ?)"
        else:
            statement = (
                "INSERT INTO label_panes (model, pane, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (model, pane) DO UPDATE SET data = EXCLUDED.data"
            )
        connection.exec_driver_sql(statement, rows)
