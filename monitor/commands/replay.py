"""``driftwarden replay``: the daemon's pipeline on files, for back-tests and experiments.

Reads prediction events from JSON lines or flat Parquet in file order, as a
consumer reads a partition, folds them into windows, closes open windows at
the end of input, and writes ``results.jsonl``, ``alerts.jsonl`` and
``dead_letters.jsonl``. It starts no Kafka and no HTTP server and never
delivers a notification: alert rules judge each result at the event time it
became known and alert timers run on event time, so ``alerts.jsonl`` holds
every notification the daemon would have sent, stamped when it would have.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import make_url

from driftwarden.alerts import AlertEngine, pending_notifications
from driftwarden.core.records import DeadLetter, ResultRecord
from driftwarden.core.times import duration_ms
from driftwarden.monitor import storage
from driftwarden.monitor.commands.report import write_replay_report
from driftwarden.monitor.config import Config
from driftwarden.monitor.errors import InputError
from driftwarden.monitor.ingest.files import LabelFeed, read_events
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.pipeline.building import build_pipeline, split_models, window_sizes
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.runner import BatchRunner, Cadence, SourceBatch
from driftwarden.monitor.storage.join_store import JoinStore


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

    def add(self, report: BatchReport | None) -> None:
        """Count what a checkpoint committed."""
        if report is None:
            return
        self.events += sum(report.events.values())
        self.ignored += sum(report.ignored.values())
        self.windows += len(report.closed)
        for record in report.results:
            self.results[record.key] = record
        self.dead_letters.extend(report.dead_letters)

    def per_channel(self) -> dict[str, int]:
        """How many notifications each channel would have received (suppressed and failed
        ones left out)."""
        counts: dict[str, int] = {}
        for line in self.notifications:
            if "suppressed" not in line and "failed" not in line:
                counts[line["channel"]] = counts.get(line["channel"], 0) + 1
        return counts


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
    """Run the pipeline over ``predictions`` (and ``labels``) and write the outputs into ``out``
    (``results.jsonl``, ``alerts.jsonl``, ``dead_letters.jsonl`` and ``report.html``).

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
            write_replay_report(engine, config.models, out / "report.html")
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
    shown = make_url(url).render_as_string(hide_password=True)
    storage.prepare(engine, f"driftwarden db upgrade --storage {shown}")
    return engine


def _run(
    config: Config,
    predictions: Path,
    feed: LabelFeed | None,
    store: storage.Store,
    progress: IO[str] | None,
) -> ReplayOutcome:
    alerts = AlertEngine(
        config.alerts,
        window_sizes(config),
        deliver=False,
        pages_url=config.http.external_url,
        split_versions=split_models(config),
    )
    outcome = ReplayOutcome()
    meter = _Progress(progress, predictions)
    engine = store.engine
    with (
        engine.connect() as connection,
        storage.WalCheckpointer(engine).start(connection),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwarden-join") as helper,
    ):
        join = None if feed is None else LabelJoin(JoinStore(engine.dialect.name), helper)
        pipeline = build_pipeline(config, store, resume=False, join=join)
        runner = BatchRunner(
            config, pipeline, store, alerts, connection, Cadence(0, 0), labels=feed, backtest=True
        )
        if feed is not None:
            runner.keep(feed.dead_letters)
            outcome.ignored += feed.ignored
        for messages in read_events(predictions, config, "prediction"):
            outcome.add(runner.run(SourceBatch({"prediction": messages})))
            meter.update(len(messages.values))
        outcome.add(runner.finish())
        # Alert timers run on event time: the last groups wait out their group_wait.
        alerts.advance_to(pipeline.event_now + duration_ms(config.alerts.group_wait), connection)
        outcome.notifications = [entry.to_replay() for entry in pending_notifications(connection)]
        connection.commit()
    meter.finish()
    return outcome


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
            handle.write(orjson.dumps(letter.to_json()) + b"\n")


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
