"""Files as a source: JSON lines or flat Parquet read in file order (as a consumer reads a
partition), and the labels of a file handed over merged with predictions by time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.core.records import DeadLetter, EventKind
from driftwarden.monitor.config import Config
from driftwarden.monitor.errors import InputError
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages

BATCH_LINES = 50_000
_READ_BYTES = 16 << 20


def read_events(
    path: Path, config: Config, kind: EventKind, batch_lines: int = BATCH_LINES
) -> Iterator[Messages]:
    """Batches of raw events from JSON lines or flat Parquet, in file order."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        yield from _parquet_events(path, config, kind, batch_lines)
    else:
        yield from _jsonl_events(path, batch_lines)


def _jsonl_events(path: Path, batch_lines: int) -> Iterator[Messages]:
    """Lines of a JSON-lines file, empty ones skipped; offsets are 1-based line numbers."""
    values: list[bytes] = []
    numbers: list[np.ndarray] = []
    first_line = 1
    tail = b""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_READ_BYTES)
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop() if chunk else b""
            if b"\r" in chunk or not chunk:
                lines = [line.removesuffix(b"\r") for line in lines]
            present = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) > 0
            values.extend(itertools.compress(lines, present))
            numbers.append(np.flatnonzero(present) + first_line)
            first_line += len(lines)
            if len(values) >= batch_lines or (not chunk and values):
                yield Messages(values, str(path), None, np.concatenate(numbers))
                values, numbers = [], []
            if not chunk:
                return


def _parquet_events(
    path: Path, config: Config, kind: EventKind, batch_lines: int
) -> Iterator[Messages]:
    """Flat Parquet rows (reference columns plus model, id, ts) as events; offsets are rows."""
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot read Parquet: {exc}") from None
    value = "label" if kind == "label" else "prediction"
    missing = [column for column in ("model", "id", "ts", value) if column not in frame]
    if missing:
        raise InputError(f"{path}: Parquet input lacks column(s) {', '.join(missing)}")
    features = sorted(
        {f for m in config.models.values() for f in m.features.names} & set(frame.columns)
    )
    groups = sorted({g for m in config.models.values() for g in m.groups} & set(frame.columns))
    if frame.schema["ts"].is_temporal():
        frame = frame.with_columns(pl.col("ts").dt.epoch("ms"))
    if kind == "label":
        yield from _chunks_as_messages(
            frame.select("model", "id", "ts", "label"), path, batch_lines
        )
        return
    columns = [pl.col("model", "id", "ts", "prediction")]
    if "model_version" in frame.columns:
        columns.append(pl.col("model_version"))
    columns.append(
        pl.struct(features).alias("features") if features else pl.lit({}).alias("features")
    )
    if groups:
        columns.append(pl.struct(groups).alias("groups"))
    names = {f for m in config.models.values() for f in m.features.names}
    attributed = [c for c in frame.columns if c.removeprefix(ATTRIBUTION_PREFIX) in names - {c}]
    if attributed:
        columns.append(
            pl.struct(
                pl.col(c).alias(c.removeprefix(ATTRIBUTION_PREFIX)) for c in attributed
            ).alias("attributions")
        )
    yield from _chunks_as_messages(frame.select(columns), path, batch_lines)


ATTRIBUTION_PREFIX = "attribution."
"""Flat Parquet columns ``attribution.<feature>`` are the events' attributions."""


def _chunks_as_messages(events: pl.DataFrame, path: Path, batch_lines: int) -> Iterator[Messages]:
    for start in range(0, events.height, batch_lines):
        chunk = events.slice(start, batch_lines)
        lines = chunk.write_ndjson().encode().split(b"\n")
        values = [line for line in lines if line]
        offsets = np.arange(start + 1, start + 1 + len(values), dtype=np.int64)
        yield Messages(values, str(path), None, offsets)


class LabelFeed:
    """Labels of a file, handed to the pipeline merged with predictions by time.

    A label is due at its time (the running maximum of label times, so file order is
    kept) or, with a delay, at its prediction's time plus the delay once that
    prediction has been read. After each batch of predictions, the labels due up to
    its latest time follow; then rows past their ttl expire, on that same time, so
    nothing expires that a label still to come could join.
    """

    def __init__(
        self,
        batch: DecodedBatch,
        delay: timedelta | None,
        dead_letters: list[DeadLetter],
        ignored: int = 0,
    ) -> None:
        self.messages = batch.messages
        self.dead_letters = dead_letters
        self.ignored = ignored
        self._delay = None if delay is None else int(delay.total_seconds() * 1000)
        frames = [
            frame.select("_row", "id", "ts", "label", pl.col("^biz:.*$")).with_columns(
                pl.lit(model).alias("model")
            )
            for model, frame in batch.frames.items()
        ]
        # Models' business names differ: a name another model lacks is null in its rows.
        labels = pl.concat(frames, how="diagonal_relaxed").sort("_row") if frames else None
        empty = pl.DataFrame(
            schema={
                "_row": pl.Int64,
                "id": pl.String,
                "ts": pl.Int64,
                "label": pl.String,
                "model": pl.String,
                "key": pl.Int64,
            }
        )
        labels = (
            empty.drop("key")
            if labels is None
            else labels.with_columns(pl.col("label").cast(pl.String))
        )
        if self._delay is None:
            self._pool = labels.with_columns(pl.col("ts").cum_max().alias("key"))
            self._unscheduled = labels.head(0)
        else:
            self._pool = empty
            self._unscheduled = labels

    @classmethod
    def read(cls, path: Path, config: Config, delay: timedelta | None) -> LabelFeed:
        """Decode a whole labels file (JSON lines or Parquet)."""
        decode = decoder(config, "label")
        batches = [decode.decode(messages) for messages in read_events(path, config, "label")]
        values = [value for batch in batches for value in batch.messages.values]
        offsets = [batch.messages.offsets for batch in batches] or [np.empty(0, np.int64)]
        messages = Messages(values, str(path), None, np.concatenate(offsets))
        frames: dict[str, list[pl.DataFrame]] = {}
        letters: list[DeadLetter] = []
        shift = 0
        for batch in batches:
            for model, frame in batch.frames.items():
                frames.setdefault(model, []).append(frame.with_columns(pl.col("_row") + shift))
            letters += batch.dead_letters
            shift += len(batch.messages.values)
        merged = {model: pl.concat(parts) for model, parts in frames.items()}
        ignored = sum(sum(batch.ignored.values()) for batch in batches)
        return cls(DecodedBatch(messages, merged), delay, letters, ignored)

    def after(self, predictions: DecodedBatch, event_now: int) -> Iterator[DecodedBatch]:
        """The labels due once these predictions are read and event time is ``event_now``."""
        self._schedule(predictions)
        yield from self._release(before=event_now + 1)

    def rest(self) -> Iterator[DecodedBatch]:
        """Every label not handed over yet: the end of the input."""
        yield from self._release(before=None)

    def _schedule(self, batch: DecodedBatch) -> None:
        """With a delay: the labels of these predictions become due at their time + delay."""
        if self._delay is None or self._unscheduled.height == 0:
            return
        predictions = pl.concat(
            [
                frame.select(pl.lit(model).alias("model"), "id", pl.col("ts").alias("pts"))
                for model, frame in batch.frames.items()
            ]
            or [pl.DataFrame(schema={"model": pl.String, "id": pl.String, "pts": pl.Int64})]
        ).unique(["model", "id"], keep="first")
        due = self._unscheduled.join(predictions, on=["model", "id"])
        if due.height:
            due = due.with_columns((pl.col("pts") + self._delay).alias("ts")).drop("pts")
            self._pool = pl.concat(
                [self._pool, due.with_columns(pl.col("ts").alias("key"))], how="diagonal_relaxed"
            )
            self._unscheduled = self._unscheduled.join(due.select("_row"), on="_row", how="anti")

    def _release(self, before: int | None) -> Iterator[DecodedBatch]:
        """The labels due before ``before`` (everything left when ``None``), in time order."""
        if before is None:
            leftover = self._unscheduled.with_columns(pl.col("ts").alias("key"))
            due = pl.concat([self._pool, leftover], how="diagonal_relaxed")
            self._pool, self._unscheduled = due.head(0), self._unscheduled.head(0)
        else:
            due = self._pool.filter(pl.col("key") < before)
            self._pool = self._pool.filter(pl.col("key") >= before)
        if due.height == 0:
            return
        due = due.sort(["key", "_row"])
        parts = due.partition_by("model", as_dict=True, maintain_order=True)
        frames = {model: part.drop("model", "key") for (model,), part in parts.items()}
        yield DecodedBatch(self.messages, frames)
