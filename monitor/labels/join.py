"""The label join: predictions waiting for labels, labels waiting for predictions.

Every prediction of a model with labels enabled leaves a row in ``label_join``
(id, event time, window key, prediction, group values, and the coarse bucket of each
feature for error attribution — never the feature values)
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

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import Connection

from driftwarden.detectors.stream import StreamDetector
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.ingest.decoding import DecodedBatch
from driftwarden.monitor.labels.orphans import Orphans
from driftwarden.monitor.labels.waiting import WaitingPredictions
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.windows.outcomes import LabelSummary, detector_stream, error_stream
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.segmentation import SegmentProfiles
from driftwarden.monitor.windows.summary import decode_buckets, error_buckets

_END_OF_TIME = 2**63 - 1
LABEL_COLUMNS = ("_row", "id", "ts", "label", "business", "late")
"""The columns of labels as the join takes them."""


def label_rows(frame: pl.DataFrame, business: tuple[str, ...]) -> pl.DataFrame:
    """Decoded labels as the join takes them (``LABEL_COLUMNS``): the label as text, the
    ``biz:<name>`` values of ``business`` as one JSON object (null without any value), and
    whether the label came behind its partition's label watermark (``_late``, set by a
    spread model's part; false otherwise)."""
    values = [pl.col(f"biz:{name}").alias(name) for name in business]
    encoded = pl.lit(None, pl.String)
    if values:
        any_value = pl.any_horizontal(pl.col(f"biz:{name}").is_not_null() for name in business)
        encoded = pl.when(any_value).then(pl.struct(values).struct.json_encode())
    late = pl.col("_late") if "_late" in frame.columns else pl.lit(False)
    return frame.select(
        "_row",
        "id",
        "ts",
        pl.col("label").cast(pl.String),
        encoded.alias("business"),
        late.alias("late"),
    )


def business_columns(encoded: pl.Series, business: tuple[str, ...]) -> list[pl.Series]:
    """The ``biz:<name>`` columns of business values stored as JSON objects."""
    if not business:
        return []
    decoded = encoded.str.json_decode(pl.Struct({name: pl.Float64 for name in business}))
    return [decoded.struct.field(name).alias(f"biz:{name}") for name in business]


@dataclass(frozen=True)
class LabelJoin:
    """Where the join keeps its rows, and the thread that stores waiting predictions while
    the batch path summarizes them (owned by whoever runs the path)."""

    store: JoinStore
    helper: Executor


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

    def add(self, other: LabelReport) -> None:
        """Count what ``other`` did too."""
        self.stored += other.stored
        self.joined += other.joined
        self.duplicate_labels += other.duplicate_labels
        self.duplicate_predictions += other.duplicate_predictions
        self.orphaned += other.orphaned
        self.expired += other.expired
        self.delays += other.delays
        self.panes |= other.panes
        self.detections += other.detections


@dataclass(frozen=True)
class Detection:
    """A concept-drift detection: its position in the error stream, and where it happened."""

    position: int
    detected_at: int
    pane: int


def error_shape(profile: Profile) -> tuple[int, int] | None:
    """(features, buckets) of a label summary's error counts on ``profile``, ``None``
    without feature importance."""
    importance = profile.importance
    if importance is None:
        return None
    return len(profile.features), importance.n_buckets


class ModelLabels:
    """One model's side of the join: its label panes, error stream and orphan ids."""

    def __init__(
        self,
        name: str,
        config: ModelConfig,
        profile: Profile,
        detector: StreamDetector | None,
        join: LabelJoin,
        position: int = 0,
        orphans: Orphans | None = None,
        segments: SegmentProfiles | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.profile = profile
        self.segments = segments
        self.detector = detector
        self.store = join.store
        self.helper = join.helper
        self.waiting = WaitingPredictions(join.store, name)
        self.position = position
        self._ttl = int(config.labels.ttl.total_seconds() * 1000)
        self._orphan_ttl = int(config.labels.orphan_ttl.total_seconds() * 1000)
        self._panes: dict[int, LabelSummary] = {}
        self._dirty: set[int] = set()
        self.fresh: list[pl.DataFrame] | None = None
        """Rows joined since the caller last took them (``id``, ``pane``, ``prediction``,
        ``label``); kept only when the caller sets a list (shadow pairing)."""
        self.errors: list[pl.DataFrame] | None = None
        """Errors of rows joined since the caller last took them, of labels not behind their
        partition's label watermark: ``at`` (the later of the prediction's and the label's
        event time), ``id``, ``error``, ``ts`` (the label's) and ``pane`` (the
        prediction's). Kept only when the caller sets a list (a spread model's part: the
        model merges its partitions' errors in one order)."""
        self.taken: pl.DataFrame | None = None
        """The orphan labels the last ``storing`` took (other versions' predictions of
        their ids may want them too)."""
        if orphans is None:
            orphans = Orphans(join.store, name, config.labels.policy, self._orphan_ttl)
        self.orphans = orphans

    # -- predictions -----------------------------------------------------------------------

    @contextmanager
    def storing(
        self, connection: Connection, frame: pl.DataFrame, keys: pl.Series, now: int
    ) -> Iterator[LabelReport]:
        """Store folded predictions as waiting, then join labels that arrived before them.

        The SQL runs on the ``helper`` thread while the caller's block runs (it summarizes the
        same rows): the statement releases the GIL, so the two overlap. The block must not
        use ``connection``. The report is complete when the block ends.
        """
        report = LabelReport()
        insert = self.helper.submit(self.waiting.insert, connection, self._pending(frame, keys))
        try:
            yield report
        finally:
            inserted = insert.result()
        report.stored = inserted
        report.duplicate_predictions = frame.height - inserted
        self.taken = None
        orphans = self.orphans.ids(connection)
        if orphans:
            waiting = frame.filter(pl.col("id").is_in(list(orphans)))["id"].unique().to_list()
            if waiting:
                labels = self.store.take_orphans(connection, self.orphans.model, waiting)
                orphans.difference_update(waiting)
                self.taken = labels.with_row_index("_row")
                self._join(connection, self.taken, now, report)

    def _pending(self, frame: pl.DataFrame, keys: pl.Series) -> pl.DataFrame:
        """The join-store rows of folded predictions (``_PENDING_COLUMNS``): ``groups`` holds
        the group attributes and the segment attributes' values."""
        groups = [pl.col(f"grp:{name}").alias(name) for name in self.profile.groups]
        if self.segments is not None:
            groups += [
                pl.col(column).alias(attribute)
                for attribute, column in self.segments.columns.items()
                if attribute not in self.profile.groups
            ]
        return frame.select(
            "id",
            "ts",
            keys.alias("pane"),
            pl.col("prediction").cast(pl.String),
            (pl.struct(groups).struct.json_encode() if groups else pl.lit(None, pl.String)).alias(
                "groups"
            ),
            error_buckets(self.profile, frame),
            (pl.col("ts") + self._ttl).alias("expires_at"),
        )

    # -- labels ----------------------------------------------------------------------------

    def add_labels(
        self, connection: Connection, frame: pl.DataFrame, batch: DecodedBatch, now: int
    ) -> LabelReport:
        """Join a batch of this model's decoded labels; those that find no prediction wait
        as orphans."""
        report = LabelReport()
        labels = label_rows(frame, self.config.business.names)
        missing = self.join_found(connection, labels, now, report)
        if missing.height:
            duplicates, orphaned = self.orphans.keep(connection, missing, batch, now)
            report.duplicate_labels += duplicates
            report.orphaned += orphaned
        return report

    def join_found(
        self, connection: Connection, frame: pl.DataFrame, now: int, report: LabelReport
    ) -> pl.DataFrame:
        """Join the labels of ``frame`` (``LABEL_COLUMNS``) whose prediction is stored here
        (and labelled in time); the others are returned (``LABEL_COLUMNS``)."""
        return self._join(connection, frame.select(LABEL_COLUMNS), now, report)

    def _join(
        self, connection: Connection, labels: pl.DataFrame, now: int, report: LabelReport
    ) -> pl.DataFrame:
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
        if self.fresh is not None:
            self.fresh.append(fresh.select("id", "pane", "prediction", "label"))
        # A label flagged under policy first has no value to replace: it stays.
        replaceable = again & joined["old_label"].is_not_null()
        replaced = joined.filter(replaceable) if keep == "last" else joined.head(0)
        if keep == "last":
            self.store.keep_labels(connection, self.name, pl.concat([fresh, replaced]))
        self._summarize(connection, fresh, replaced, report)
        report.joined += fresh.height
        report.delays += ((fresh["ts"] - fresh["pts"]) / 1000).to_list()
        self._errors(fresh.sort("_row"), report)
        return missing.select(LABEL_COLUMNS)

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
            label, business = ("old_label", "old_business") if old else ("label", "business")
            for (pane,), group in rows.partition_by("pane", as_dict=True).items():
                delta = self._label_summary(group, label, business)
                if old:
                    delta = delta.negated()
                current = self._panes.get(pane)
                self._panes[pane] = delta if current is None else current.merge(delta)
                self._dirty.add(pane)
                report.panes.add(pane)

    def _label_summary(self, rows: pl.DataFrame, label: str, business: str) -> LabelSummary:
        names = self.config.business.names
        columns = [pl.col("prediction"), pl.col(label).alias("label")]
        columns += business_columns(rows[business], names)
        attributes = [] if self.segments is None else list(self.segments.columns)
        stored = list(dict.fromkeys([*self.profile.groups, *attributes]))
        decoded = None
        if stored:
            decoded = rows["groups"].str.json_decode(
                pl.Struct({name: pl.String for name in stored})
            )
            columns += [
                decoded.struct.field(name).alias(f"grp:{name}") for name in self.profile.groups
            ]
        frame = rows.select(columns)
        if self.profile.task != "multiclass_classification":
            frame = frame.with_columns(
                pl.col("prediction").cast(pl.Float64), pl.col("label").cast(pl.Float64)
            )
        buckets = None
        if (shape := error_shape(self.profile)) is not None:
            buckets = (decode_buckets(rows["buckets"], shape[0]), shape[1])
        segments = None
        if self.segments is not None and decoded is not None:
            texts = {name: decoded.struct.field(name) for name in attributes}
            segments = (self.segments.indices(texts), len(self.segments.segments))
        return LabelSummary.of_rows(
            self.profile.outcomes,
            self.profile.task,
            self.profile.groups,
            frame,
            buckets,
            names,
            segments,
        )

    def _errors(self, rows: pl.DataFrame, report: LabelReport) -> None:
        """Feed joined rows, in arrival order, to the concept-drift detector; or keep their
        errors for the spread model the part belongs to (``errors``)."""
        if rows.height == 0 or (self.detector is None and self.errors is None):
            return
        errors = error_stream(
            self.profile.task,
            self.profile.outcomes.decision_threshold,
            rows["prediction"],
            rows["label"],
        )
        if self.errors is not None:
            kept = rows.select(
                pl.max_horizontal("ts", "pts").alias("at"),
                "id",
                pl.Series("error", errors, pl.Float64),
                *self._score_column(),
                "ts",
                "pane",
                "late",
            )
            self.errors.append(kept.filter(~pl.col("late")).drop("late"))
            return
        assert self.detector is not None
        stream = detector_stream(self.detector.reads, errors, rows["prediction"])
        detections = self.detector.update(stream)
        times = rows["ts"].to_list()
        panes = rows["pane"].to_list()
        for position in detections.drifts.tolist():
            report.detections.append(
                Detection(self.position + position, times[position], panes[position])
            )
        self.position += rows.height

    def _score_column(self) -> list[pl.Expr]:
        """The scores a spread binary classifier's errors keep, for detectors that read them."""
        if self.profile.task != "binary_classification":
            return []
        return [pl.col("prediction").cast(pl.Float64).alias("score")]

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
        panes = {p: summary for p, summary in self._panes.items() if start <= p < end}
        return LabelSummary.of_panes(
            self.profile.outcomes,
            self.profile.task,
            panes,
            error_shape(self.profile),
            self.config.business.names,
        )

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
        seqs, expired = self.store.expire_predictions(connection, self.name, now)
        orphans = self.orphans.expire(connection, orphans_before)
        self.waiting.forget(seqs)
        horizon = now - 2 * self._ttl
        for pane in [p for p in self._panes if p < horizon and p not in self._dirty]:
            del self._panes[pane]
        return expired, orphans
