"""``driftwarden replay``: the daemon's pipeline on files, for back-tests and experiments.

Reads prediction events from JSON lines or flat Parquet in file order, as a
consumer reads a partition, folds them into windows, closes open windows at
the end of input, and writes ``results.jsonl``, ``alerts.jsonl`` and
``dead_letters.jsonl``. It starts no Kafka and no HTTP server and never
delivers a notification.
"""

from __future__ import annotations

import base64
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import polars as pl
from sqlalchemy import Connection

from driftwarden.alerts import AlertEngine, pending_notifications
from driftwarden.monitor import storage
from driftwarden.monitor.config import Config
from driftwarden.monitor.errors import InputError
from driftwarden.monitor.events import DeadLetter, DecodedBatch, Kind, Messages
from driftwarden.monitor.pipeline import Pipeline
from driftwarden.monitor.results import ResultRecord
from driftwarden.monitor.runtime import build_pipeline, decoder, window_sizes

BATCH_LINES = 50_000
_READ_BYTES = 16 << 20


@dataclass
class ReplayOutcome:
    """What a replay produced."""

    events: int = 0
    windows: int = 0
    results: dict[tuple[Any, ...], ResultRecord] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ignored: int = 0
    seconds: float = 0.0
    notifications: list[dict[str, Any]] = field(default_factory=list)


def replay(
    config: Config,
    predictions: Path,
    out: Path,
    *,
    labels: Path | None = None,
    label_delay: timedelta | None = None,
    storage_url: str | None = None,
    progress: IO[str] | None = None,
) -> ReplayOutcome:
    """Run the pipeline over ``predictions`` (and ``labels``) and write the outputs into ``out``.

    ``label_delay`` sets each label's time to its prediction's time plus the delay.
    """
    if label_delay is not None and labels is None:
        raise InputError("--label-delay needs --labels")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="driftwarden-replay-") as scratch:
        engine = _engine(storage_url, Path(scratch))
        try:
            feed = None if labels is None else LabelFeed.read(labels, config, label_delay)
            outcome = _run(config, predictions, feed, storage.Store(engine), progress)
        finally:
            engine.dispose()
    outcome.seconds = time.perf_counter() - started
    write_outputs(out, outcome)
    return outcome


def _engine(url: str | None, scratch: Path) -> Any:
    if url is None:
        engine = storage.create(f"sqlite:///{scratch / 'replay.db'}")
        storage.upgrade(engine)
        return engine
    engine = storage.create(url)
    storage.require_current(engine, f"driftwarden db upgrade --storage {url}")
    return engine


def _run(
    config: Config,
    predictions: Path,
    feed: LabelFeed | None,
    store: storage.Store,
    progress: IO[str] | None,
) -> ReplayOutcome:
    pipeline = build_pipeline(config, store, resume=False, labels=feed is not None)
    decode = decoder(config, "prediction")
    alerts = AlertEngine(config.alerts, window_sizes(config), deliver=False)
    outcome = ReplayOutcome()
    meter = _Progress(progress, predictions)

    def step(work: Callable[[storage.Commit, Connection], object]) -> None:
        """One unit of work in one transaction: results, alert state and outbox together."""
        commit = storage.Commit()
        work(commit, connection)
        store.write(connection, commit)
        alerts.evaluate(commit.results, _event_time(pipeline.event_now), connection)
        connection.commit()
        _collect(outcome, commit)

    with (
        store.engine.connect() as connection,
        storage.WalCheckpointer(store.engine).start(connection),
    ):
        if feed is not None:
            step(lambda commit, _: commit.dead_letters.extend(feed.dead_letters))
            outcome.ignored += feed.ignored
        for messages in read_events(predictions, config, "prediction"):
            batch = decode.decode(messages)
            step(_predictions_step(pipeline, batch, outcome))
            if feed is not None:
                feed.schedule(batch)
                for labels in feed.release(before=pipeline.event_now + 1):
                    step(_labels_step(pipeline, labels, outcome))
            step(lambda commit, connection: pipeline.expire(commit, connection))
            meter.update(len(messages.values))
        if feed is not None:
            for labels in feed.release(before=None):
                step(_labels_step(pipeline, labels, outcome))

        def finish(commit: storage.Commit, connection: Connection) -> None:
            pipeline.flush(commit, connection)
            pipeline.expire(commit, connection, end_of_input=True)
            pipeline.snapshot(commit, connection)

        step(finish)
        # Alert timers run on event time: the last groups wait out their group_wait.
        alerts.tick(_event_time(pipeline.event_now) + config.alerts.group_wait, connection)
        outcome.notifications = [entry.to_replay() for entry in pending_notifications(connection)]
        connection.commit()
    meter.finish()
    return outcome


def _event_time(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def _predictions_step(
    pipeline: Pipeline, batch: DecodedBatch, outcome: ReplayOutcome
) -> Callable[[storage.Commit, Connection], None]:
    def work(commit: storage.Commit, connection: Connection) -> None:
        report = pipeline.process(batch, commit, connection)
        outcome.events += sum(report.events.values())
        outcome.ignored += sum(batch.ignored.values())

    return work


def _labels_step(
    pipeline: Pipeline, batch: DecodedBatch, outcome: ReplayOutcome
) -> Callable[[storage.Commit, Connection], None]:
    def work(commit: storage.Commit, connection: Connection) -> None:
        pipeline.process_labels(batch, commit, connection)
        outcome.ignored += sum(batch.ignored.values())

    return work


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
            frame.select("_row", "id", "ts", "label").with_columns(pl.lit(model).alias("model"))
            for model, frame in batch.frames.items()
        ]
        labels = pl.concat(frames, how="vertical_relaxed").sort("_row") if frames else None
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

    def schedule(self, batch: DecodedBatch) -> None:
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
            self._pool = pl.concat([self._pool, due.with_columns(pl.col("ts").alias("key"))])
            self._unscheduled = self._unscheduled.join(due.select("_row"), on="_row", how="anti")

    def release(self, before: int | None) -> Iterator[DecodedBatch]:
        """The labels due before ``before`` (everything left when ``None``), in time order."""
        if before is None:
            leftover = self._unscheduled.with_columns(pl.col("ts").alias("key"))
            due = pl.concat([self._pool, leftover])
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


def _collect(outcome: ReplayOutcome, commit: storage.Commit) -> None:
    outcome.windows += len(commit.windows)
    for record in commit.results:
        outcome.results[record.key] = record
    outcome.dead_letters.extend(commit.dead_letters)


def read_events(
    path: Path, config: Config, kind: Kind, batch_lines: int = BATCH_LINES
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


def _parquet_events(path: Path, config: Config, kind: Kind, batch_lines: int) -> Iterator[Messages]:
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
    yield from _chunks_as_messages(frame.select(columns), path, batch_lines)


def _chunks_as_messages(events: pl.DataFrame, path: Path, batch_lines: int) -> Iterator[Messages]:
    for start in range(0, events.height, batch_lines):
        chunk = events.slice(start, batch_lines)
        lines = chunk.write_ndjson().encode().split(b"\n")
        values = [line for line in lines if line]
        offsets = np.arange(start + 1, start + 1 + len(values), dtype=np.int64)
        yield Messages(values, str(path), None, offsets)


def write_outputs(out: Path, outcome: ReplayOutcome) -> None:
    """``results.jsonl``, ``alerts.jsonl`` and ``dead_letters.jsonl`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    records = sorted(outcome.results.values(), key=lambda r: (r.model, r.window_index, r.key))
    with (out / "results.jsonl").open("wb") as handle:
        for record in records:
            handle.write(orjson.dumps(record.to_json()) + b"\n")
    with (out / "alerts.jsonl").open("wb") as handle:
        for notification in outcome.notifications:
            handle.write(orjson.dumps(notification) + b"\n")
    with (out / "dead_letters.jsonl").open("wb") as handle:
        for letter in outcome.dead_letters:
            handle.write(orjson.dumps(dead_letter_json(letter)) + b"\n")


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON: reason, detail, origin and the raw bytes (base64)."""
    return {
        "kind": letter.kind,
        "reason": letter.reason,
        "detail": letter.detail,
        "model": letter.model,
        "origin": letter.origin.as_dict(),
        "raw_base64": base64.b64encode(letter.raw).decode(),
    }


class _Progress:
    """A one-line progress meter on a terminal; silent otherwise."""

    def __init__(self, stream: IO[str] | None, path: Path) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.started = time.perf_counter()
        self.events = 0
        self.path = path

    def update(self, events: int) -> None:
        self.events += events
        if self.stream is not None:
            rate = self.events / max(time.perf_counter() - self.started, 1e-9)
            self.stream.write(f"\r{self.path.name}: {self.events:,} events, {rate:,.0f}/s")
            self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
