"""The label join: predictions waiting for labels, labels waiting for predictions.

Every prediction of a model with labels enabled leaves a row in ``label_join``
(id, event time, window key, prediction, group values — never the features)
until ``ttl`` after its event time. A label joins its prediction by (model,
id) if it became known within ``ttl`` of the prediction; a label that finds
no prediction waits in ``orphan_labels`` up to ``orphan_ttl`` and then becomes
a dead letter. Joined rows update the label summary of the prediction's pane
(realized performance and fairness read those), and, in label-arrival order,
the model's error stream (concept drift).

All writes happen on the caller's connection, inside its transaction: the
join follows the daemon's exactly-once rule with everything else.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import polars as pl
from sqlalchemy import Connection

from driftwarden.detectors.stream import StreamDetector
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.events import DecodedBatch
from driftwarden.monitor.id_index import IdIndex, id_hashes
from driftwarden.monitor.outcomes import LabelSummary
from driftwarden.monitor.profile import Profile

_CHUNK = 500
_END_OF_TIME = 2**63 - 1
_FLAGS = 8192  # predictions per row of label_flags (1 KiB of bits)
_PENDING_COLUMNS = ("id", "seq", "ts", "pane", "prediction", "groups", "expires_at")
# Stores waiting predictions while the caller summarizes them (see ``ModelLabels.storing``).
_HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwarden-join")
_LOAD_CHUNK = 200_000  # sequence numbers per statement when the id index is loaded
# The columns of a stored prediction as the join reads it: name -> (SQL, type).
_FOUND = {
    "id": ("j.id", pl.String),
    "seq": ("j.seq", pl.Int64),
    "pts": ("j.ts", pl.Int64),
    "pane": ("j.pane", pl.Int64),
    "prediction": ("j.prediction", pl.String),
    "groups": ("j.groups", pl.String),
    "old_label": ("j.label", pl.String),
}
_SEQ = {"seq": ("seq", pl.Int64)}


@dataclass
class LabelReport:
    """What one batch did to the join of one model, for metrics and results."""

    stored: int = 0
    joined: int = 0
    duplicate_labels: int = 0
    duplicate_predictions: int = 0
    orphaned: int = 0
    expired: int = 0
    delays: list[float] = field(default_factory=list)
    panes: set[int] = field(default_factory=set)
    detections: list[Detection] = field(default_factory=list)


@dataclass(frozen=True)
class Detection:
    """A concept-drift detection: its position in the error stream, and where it happened."""

    position: int
    detected_at: int
    pane: int


class JoinStore:
    """SQL for the join tables of one dialect, run on the caller's connection."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        ignore = "OR IGNORE " if dialect == "sqlite" else ""
        tail = "" if dialect == "sqlite" else " ON CONFLICT DO NOTHING"
        columns = ", ".join(_PENDING_COLUMNS)
        if dialect == "sqlite":
            values = ", ".join(f"value ->> '{name}'" for name in _PENDING_COLUMNS)
            self._insert_pending = (
                f"INSERT INTO label_join (model, {columns}) SELECT ?, {values} FROM json_each(?)"
            )
        else:
            self._insert_pending = (
                f"INSERT INTO label_join (model, {columns}) VALUES ({self._marks(8)})"
            )
        self._insert_orphan = (
            f"INSERT {ignore}INTO orphan_labels (model, id, ts, label, expires_at, source, "
            f'partition, "offset", raw) VALUES ({self._marks(9)}){tail}'
        )

    @property
    def _mark(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _marks(self, n: int) -> str:
        return ", ".join([self._mark] * n)

    def insert_pending(self, connection: Connection, model: str, rows: pl.DataFrame) -> None:
        """Store new waiting predictions (columns ``_PENDING_COLUMNS``) with no label yet.

        On SQLite the batch goes in as one JSON document: one statement, not one per row.
        """
        if self.dialect == "sqlite":
            payload = rows.select(_PENDING_COLUMNS).write_json()
            connection.exec_driver_sql(self._insert_pending, (model, payload))
        else:
            values = rows.select(pl.lit(model).alias("model"), *_PENDING_COLUMNS).rows()
            connection.exec_driver_sql(self._insert_pending, values)

    def rows_at(self, connection: Connection, model: str, seqs: np.ndarray) -> pl.DataFrame:
        """The stored predictions at these sequence numbers (columns ``_FOUND``)."""
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
            connection, _FOUND, f"{wanted} AND j.model = {self._mark}", (parameter, model)
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
        """Store the label of found rows (columns ``seq``, ``label``, ``ts``), for
        ``policy: last`` to replace it later."""
        if rows.is_empty():
            return
        mark = self._mark
        connection.exec_driver_sql(
            f"UPDATE label_join SET label = {mark}, labeled_at = {mark} "
            f"WHERE model = {mark} AND seq = {mark}",
            rows.sort("seq").select("label", "ts", pl.lit(model), "seq").rows(),
        )

    def labeled(self, connection: Connection, model: str, seqs: np.ndarray) -> np.ndarray:
        """Whether each of these stored predictions has a label."""
        chunks, bits = self._flags(connection, model, seqs)
        return bits[np.searchsorted(chunks, seqs // _FLAGS), seqs % _FLAGS]

    def set_flags(
        self, connection: Connection, model: str, seqs: np.ndarray, value: bool
    ) -> np.ndarray:
        """Mark these stored predictions as labelled (or not); what they were before.

        Only chunks that change are written, and chunks left without a flag are deleted.
        """
        chunks, bits = self._flags(connection, model, seqs)
        at = np.searchsorted(chunks, seqs // _FLAGS), seqs % _FLAGS
        before = bits[at]
        changed = np.unique(at[0][before != value])
        bits[at] = value
        self._save_flags(connection, model, chunks[changed], bits[changed])
        return before

    def _flags(
        self, connection: Connection, model: str, seqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chunks of flags covering ``seqs``, in order, and their bits (a row each)."""
        chunks = np.unique(seqs // _FLAGS)
        bits = np.zeros((chunks.size, _FLAGS), dtype=bool)
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
        if stale is not None and stale >= first // _FLAGS:
            ahead = np.arange(first, (stale + 1) * _FLAGS, dtype=np.int64)
            self.set_flags(connection, model, ahead, False)

    def insert_orphans(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            connection.exec_driver_sql(self._insert_orphan, rows)

    def replace_orphan_labels(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        """``(label, ts, model, id)``: a later label of a waiting orphan (``policy: last``)."""
        if rows:
            connection.exec_driver_sql(
                f"UPDATE orphan_labels SET label = {self._mark}, ts = {self._mark} "
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
                f"SELECT id, ts, label FROM orphan_labels WHERE {where}", (model, *chunk)
            ).all()
            connection.exec_driver_sql(f"DELETE FROM orphan_labels WHERE {where}", (model, *chunk))
        return pl.DataFrame(
            taken, schema={"id": pl.String, "ts": pl.Int64, "label": pl.String}, orient="row"
        )

    def expire(
        self, connection: Connection, model: str, now: int, orphans_before: int
    ) -> tuple[np.ndarray, int, list[Any]]:
        """Drop predictions past their ttl (returning their sequence numbers, and how many
        were never labelled) and orphans expiring before ``orphans_before`` (returned with
        their expiry)."""
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
        orphans = connection.exec_driver_sql(
            f'SELECT id, source, partition, "offset", raw, expires_at FROM orphan_labels '
            f"WHERE model = {mark} AND expires_at < {mark}",
            (model, orphans_before),
        ).all()
        connection.exec_driver_sql(
            f"DELETE FROM orphan_labels WHERE model = {mark} AND expires_at < {mark}",
            (model, orphans_before),
        )
        return expired, never, orphans

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

    def insert(self, connection: Connection, rows: pl.DataFrame) -> int:
        """Store predictions (``_PENDING_COLUMNS`` but ``seq``) not stored yet; returns how
        many were new (the rest repeat an id, stored or earlier in ``rows``)."""
        index = self._loaded(connection)
        rows = rows.unique("id", keep="first", maintain_order=True)
        hashes = id_hashes(rows["id"])
        known = index.lookup(hashes)
        if known.size:
            stored = self.store.rows_at(connection, self.model, known)["id"]
            new = ~rows["id"].is_in(stored.implode()).to_numpy()
            rows, hashes = rows.filter(new), hashes[new]
        if rows.is_empty():
            return 0
        seqs = np.arange(index.last_seq + 1, index.last_seq + 1 + rows.height, dtype=np.int64)
        self.store.insert_pending(connection, self.model, rows.with_columns(seq=seqs))
        index.add(hashes, seqs)
        return rows.height

    def find(self, connection: Connection, ids: pl.Series) -> pl.DataFrame:
        """The stored rows of these ids (columns ``_FOUND``)."""
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


class ModelLabels:
    """One model's side of the join: its label panes, error stream and orphan ids."""

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        profile: Profile,
        detector: StreamDetector,
        store: JoinStore,
        position: int = 0,
    ) -> None:
        self.name = name
        self.config = config
        self.profile = profile
        self.detector = detector
        self.store = store
        self.waiting = WaitingPredictions(store, name)
        self.position = position
        self._ttl = int(config.labels.ttl.total_seconds() * 1000)
        self._orphan_ttl = int(config.labels.orphan_ttl.total_seconds() * 1000)
        self._panes: dict[int, LabelSummary] = {}
        self._dirty: set[int] = set()
        self._orphans: set[str] | None = None

    # -- predictions -----------------------------------------------------------------------

    @contextmanager
    def storing(
        self, connection: Connection, frame: pl.DataFrame, keys: pl.Series, now: int
    ) -> Iterator[LabelReport]:
        """Store folded predictions as waiting, then join labels that arrived before them.

        The SQL runs on a helper thread while the caller's block runs (it summarizes the
        same rows): the statement releases the GIL, so the two overlap. The block must not
        use ``connection``. The report is complete when the block ends.
        """
        report = LabelReport()
        insert = _HELPER.submit(self.waiting.insert, connection, self._pending(frame, keys))
        try:
            yield report
        finally:
            inserted = insert.result()
        report.stored = inserted
        report.duplicate_predictions = frame.height - inserted
        orphans = self._orphan_ids(connection)
        if orphans:
            waiting = frame.filter(pl.col("id").is_in(list(orphans)))["id"].unique().to_list()
            if waiting:
                labels = self.store.take_orphans(connection, self.name, waiting)
                orphans.difference_update(waiting)
                self._join(connection, labels.with_row_index("_row"), None, now, report)

    def _pending(self, frame: pl.DataFrame, keys: pl.Series) -> pl.DataFrame:
        """The join-store rows of folded predictions (``_PENDING_COLUMNS``)."""
        groups = [pl.col(f"grp:{name}").alias(name) for name in self.profile.groups]
        return frame.select(
            "id",
            "ts",
            keys.alias("pane"),
            pl.col("prediction").cast(pl.String),
            (pl.struct(groups).struct.json_encode() if groups else pl.lit(None, pl.String)).alias(
                "groups"
            ),
            (pl.col("ts") + self._ttl).alias("expires_at"),
        )

    # -- labels ----------------------------------------------------------------------------

    def add_labels(
        self, connection: Connection, frame: pl.DataFrame, batch: DecodedBatch, now: int
    ) -> LabelReport:
        """Join a batch of this model's labels (``_row``, ``id``, ``ts``, ``label``)."""
        report = LabelReport()
        labels = frame.select("_row", "id", "ts", pl.col("label").cast(pl.String))
        self._join(connection, labels, batch, now, report)
        return report

    def _join(
        self,
        connection: Connection,
        labels: pl.DataFrame,
        batch: DecodedBatch | None,
        now: int,
        report: LabelReport,
    ) -> None:
        keep = "last" if self.config.labels.policy == "last" else "first"
        unique = labels.unique("id", keep=keep, maintain_order=True)
        report.duplicate_labels += labels.height - unique.height
        stored = self.waiting.find(connection, unique["id"])
        joined = unique.join(stored, on="id", how="left")
        live = pl.col("pts").is_not_null() & (pl.col("ts") <= pl.col("pts") + self._ttl)
        missing = joined.filter(~live)
        joined = joined.filter(live)
        seqs = joined["seq"].to_numpy()
        again = pl.Series(self.store.set_flags(connection, self.name, seqs, True))
        report.duplicate_labels += int(again.sum())
        fresh = joined.filter(~again)
        # A label flagged under policy first has no value to replace: it stays.
        replaceable = again & joined["old_label"].is_not_null()
        replaced = joined.filter(replaceable) if keep == "last" else joined.head(0)
        if keep == "last":
            self.store.keep_labels(connection, self.name, pl.concat([fresh, replaced]))
        self._summarize(connection, fresh, replaced, report)
        report.joined += fresh.height
        report.delays += ((fresh["ts"] - fresh["pts"]) / 1000).to_list()
        self._errors(fresh.sort("_row"), report)
        if batch is not None and missing.height:
            self._orphan(connection, missing, batch, now, report)

    def _summarize(
        self,
        connection: Connection,
        fresh: pl.DataFrame,
        replaced: pl.DataFrame,
        report: LabelReport,
    ) -> None:
        parts = [(fresh, False), (replaced, False), (replaced, True)]
        panes = set()
        for rows, _ in parts:
            panes |= set(rows["pane"].to_list())
        self._load(connection, panes)
        for rows, old in parts:
            if rows.height == 0:
                continue
            label = "old_label" if old else "label"
            for (pane,), group in rows.partition_by("pane", as_dict=True).items():
                delta = self._label_summary(group, label)
                if old:
                    delta = delta.negated()
                current = self._panes.get(pane)
                self._panes[pane] = delta if current is None else current.merge(delta)
                self._dirty.add(pane)
                report.panes.add(pane)

    def _label_summary(self, rows: pl.DataFrame, label: str) -> LabelSummary:
        columns = [pl.col("prediction"), pl.col(label).alias("label")]
        if self.profile.groups:
            decoded = rows["groups"].str.json_decode(
                pl.Struct({name: pl.String for name in self.profile.groups})
            )
            columns += [
                decoded.struct.field(name).alias(f"grp:{name}") for name in self.profile.groups
            ]
        frame = rows.select(columns)
        if self.profile.task != "multiclass_classification":
            frame = frame.with_columns(
                pl.col("prediction").cast(pl.Float64), pl.col("label").cast(pl.Float64)
            )
        return LabelSummary.of_rows(
            self.profile.outcomes, self.profile.task, self.profile.groups, frame
        )

    def _errors(self, rows: pl.DataFrame, report: LabelReport) -> None:
        """Feed joined rows, in arrival order, to the concept-drift detector."""
        if rows.height == 0:
            return
        task = self.profile.task
        if task == "binary_classification":
            predicted = (
                rows["prediction"].cast(pl.Float64) >= self.profile.outcomes.decision_threshold
            )
            errors = (predicted != (rows["label"].cast(pl.Float64) >= 0.5)).cast(pl.Float64)
        elif task == "multiclass_classification":
            errors = (rows["prediction"] != rows["label"]).cast(pl.Float64)
        else:
            errors = (rows["prediction"].cast(pl.Float64) - rows["label"].cast(pl.Float64)).abs()
        detections = self.detector.update(errors.to_numpy())
        times = rows["ts"].to_list()
        panes = rows["pane"].to_list()
        for position in detections.drifts.tolist():
            report.detections.append(
                Detection(self.position + position, times[position], panes[position])
            )
        self.position += rows.height

    def _orphan(
        self,
        connection: Connection,
        rows: pl.DataFrame,
        batch: DecodedBatch,
        now: int,
        report: LabelReport,
    ) -> None:
        orphans = self._orphan_ids(connection)
        waiting = rows.filter(pl.col("id").is_in(list(orphans)))
        new = rows.filter(~pl.col("id").is_in(list(orphans)))
        report.duplicate_labels += waiting.height
        if self.config.labels.policy == "last":
            self.store.replace_orphan_labels(
                connection,
                [
                    (label, ts, self.name, i)
                    for i, ts, label in waiting.select("id", "ts", "label").rows()
                ],
            )
        entries = []
        for row, identifier, ts, label in new.select("_row", "id", "ts", "label").rows():
            origin = batch.messages.origin(row)
            entries.append(
                (
                    self.name,
                    identifier,
                    ts,
                    label,
                    now + self._orphan_ttl,
                    origin.source,
                    -1 if origin.partition is None else origin.partition,
                    origin.offset,
                    batch.messages.values[row],
                )
            )
        self.store.insert_orphans(connection, entries)
        orphans.update(new["id"].to_list())
        report.orphaned += new.height

    def _orphan_ids(self, connection: Connection) -> set[str]:
        if self._orphans is None:
            self._orphans = self.store.orphan_ids(connection, self.name)
        return self._orphans

    # -- panes -----------------------------------------------------------------------------

    def _load(self, connection: Connection, panes: set[int]) -> None:
        missing = [pane for pane in panes if pane not in self._panes]
        for pane, data in self.store.load_panes(connection, self.name, missing).items():
            self._panes[pane] = LabelSummary.from_bytes(data)

    def window_labels(self, connection: Connection, start: int, end: int) -> LabelSummary:
        """The label summary of the panes with keys in ``[start, end)``."""
        for pane, data in self.store.load_range(connection, self.name, start, end).items():
            if pane not in self._panes:
                self._panes[pane] = LabelSummary.from_bytes(data)
        summary = LabelSummary.empty(self.profile.outcomes, self.profile.task)
        for pane in sorted(p for p in self._panes if start <= p < end):
            summary = summary.merge(self._panes[pane])
        return summary

    def flush(self, connection: Connection) -> None:
        """Write the label summaries changed since the last flush."""
        self.store.save_panes(
            connection, self.name, {pane: self._panes[pane].to_bytes() for pane in self._dirty}
        )
        self._dirty.clear()

    def expire(
        self, connection: Connection, now: int, *, end_of_input: bool = False
    ) -> tuple[int, list[Any]]:
        """Drop what passed its ttl, and at the end of the input every orphan (no
        prediction can come for it any more); forget cached panes older than any joinable
        prediction."""
        orphans_before = _END_OF_TIME if end_of_input else now
        seqs, expired, orphans = self.store.expire(connection, self.name, now, orphans_before)
        self.waiting.forget(seqs)
        if self._orphans is not None:
            self._orphans.difference_update(row[0] for row in orphans)
        horizon = now - 2 * self._ttl
        for pane in [p for p in self._panes if p < horizon and p not in self._dirty]:
            del self._panes[pane]
        return expired, orphans
