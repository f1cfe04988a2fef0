"""``driftwarden run``: the long-running service.

The main loop polls Kafka, decodes each poll as one batch per topic, folds it
into windows, and checkpoints — consumer positions, window state, closed
windows, results, dead letters — in one database transaction, at least every
``storage.checkpoint_interval`` and whenever a window closes. A restart seeks
every partition to its stored position, so it re-reads at most what arrived
since the last checkpoint and counts nothing twice. On a rebalance the
revoked side checkpoints before giving partitions up and the assigned side
reloads state and seeks to the stored positions; rebalances only happen
inside ``poll``, so no batch is ever half-processed when they do.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaConfigurationError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection

from driftwarden.alerts import AlertEngine, Dispatcher
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.api import DeadLetterReplayer, database_actions
from driftwarden.monitor.config import Config
from driftwarden.monitor.endpoints import EndpointServer, Health
from driftwarden.monitor.errors import ConfigError, DriftwardenError
from driftwarden.monitor.events import DecodedBatch, Messages
from driftwarden.monitor.labels import JoinStore
from driftwarden.monitor.metrics import Metrics
from driftwarden.monitor.pipeline import BatchReport, Pipeline
from driftwarden.monitor.retention import Retention
from driftwarden.monitor.runtime import build_pipeline, decoder, window_sizes

log = logging.getLogger("driftwarden.daemon")

EXPIRY_INTERVAL = 60.0
"""Seconds between sweeps of the label join for rows past their ttl."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Pending:
    """What the next checkpoint writes."""

    commit: storage.Commit
    events: int = 0
    windows: int = 0
    kafka_offsets: dict[TopicPartition, int] = field(default_factory=dict)


class Daemon:
    """Consumes predictions, closes windows, serves metrics; ``run()`` until stopped."""

    def __init__(
        self,
        config: Config,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, config.models)
        self.health = Health()
        self._reload = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._assigned: set[TopicPartition] = set()
        self._positions: dict[tuple[str, int], int] = {}
        self._generation = 0
        self._queue: queue.Queue[tuple[int, dict[TopicPartition, list[Any]]] | None] = queue.Queue(
            maxsize=1
        )
        self._failure: BaseException | None = None
        self._offsets_lock = threading.Lock()
        self._checkpointed: dict[TopicPartition, int] = {}
        self._unconfigured: dict[str, set[str]] = {}
        self._pending = self._new_pending()
        self._last_checkpoint = time.monotonic()
        self._last_expiry = 0.0
        self.engine: Any = None
        self.alerts: AlertEngine | None = None
        self.dispatcher: Dispatcher | None = None
        self.retention: Retention | None = None
        self.replayer: DeadLetterReplayer | None = None
        self._connection: Connection | None = None
        self.wal_checkpointer: storage.WalCheckpointer | None = None
        self.store: storage.Store | None = None
        self.pipeline: Pipeline | None = None
        self.consumer: KafkaConsumer | None = None
        self.server: EndpointServer | None = None

    def stop(self) -> None:
        """Stop intake after the current batch (safe from signal handlers and other threads)."""
        self._stop.set()

    def run(self) -> int:
        """Start, consume until stopped, checkpoint, and close everything; the exit status.

        The main thread polls Kafka (rebalances happen there); a worker thread decodes,
        folds and checkpoints, one batch behind, so reading the next batch overlaps with
        processing this one. Rebalance callbacks wait for the batch in progress, and a
        batch polled before a rebalance is dropped unprocessed (its partitions are read
        again from their stored positions).
        """
        try:
            self._start()
            log.info(
                "daemon started",
                extra={
                    "event": "started",
                    "models": list(self.config.models),
                    "metrics": f"{self.server.url}/metrics" if self.server else None,
                },
            )
            worker = threading.Thread(target=self._work, name="driftwarden-fold", daemon=True)
            worker.start()
            try:
                while not self._stop.is_set():
                    records = self._poll_batch()
                    self.health.beat()
                    if self._reload.is_set():
                        self._reload_alerts()
                    self._queue.put((self._generation, records))
                    self._commit_offsets()
            finally:
                self._queue.put(None)
                worker.join()
            if self._failure is not None:
                raise self._failure
            return 0
        finally:
            self._shutdown()

    def _work(self) -> None:
        """The worker thread: process polled batches in order until told to stop."""
        while (item := self._queue.get()) is not None:
            generation, records = item
            try:
                with self._lock:
                    if generation == self._generation:
                        self._process_records(records)
            except BaseException as exc:  # stop the daemon; run() re-raises it
                self._failure = exc
                self._stop.set()
                return

    @property
    def metrics_url(self) -> str | None:
        return None if self.server is None else f"{self.server.url}/metrics"

    # -- start and stop --------------------------------------------------------------------

    def _start(self) -> None:
        config = self.config
        self.server = EndpointServer.from_config(
            config.http, self.registry, self.health, clock=self.clock
        ).start()
        self.engine = storage.create(config.storage.url)
        hint = f"driftwarden db upgrade --config {self.config_path or 'FILE'}"
        storage.require_current(self.engine, hint)
        self.store = storage.Store(self.engine)
        self.replayer = DeadLetterReplayer(config.kafka, self.store, clock=self.clock)
        assert self.server.api is not None
        self.server.api.actions = database_actions(self.store, self.clock, self.replayer)
        self.retention = Retention(
            self.engine, config.retention, self.registry, clock=self.clock
        ).start()
        self.pipeline = build_pipeline(config, self.store, resume=True, clock=self.clock)
        self._decoders = {
            config.kafka.predictions_topic: decoder(config, "prediction"),
            config.kafka.labels_topic: decoder(config, "label"),
        }
        self.alerts = AlertEngine(config.alerts, window_sizes(config))
        self.dispatcher = Dispatcher(
            self.engine, config.alerts, registry=self.registry, clock=self._now
        )
        self.dispatcher.start()
        self._connection = self.engine.connect()
        self.wal_checkpointer = storage.WalCheckpointer(self.engine).start(self._connection)
        join_store = JoinStore(self.engine.dialect.name)
        for name, model in self.pipeline.models.items():
            self.metrics.reference_performance(name, model.profile.outcomes.reference_performance)
            if model.labels is not None:
                self.metrics.concept_drift.labels(name, model.labels.detector.name)
                self.metrics.pending.labels(name).set(
                    join_store.label_counts(self._connection, name)[0]
                )
        self._connection.commit()
        self.consumer = self._consumer()
        topics = [config.kafka.predictions_topic]
        if any(model.labels.enabled for model in config.models.values()):
            topics.append(config.kafka.labels_topic)
        self.consumer.subscribe(topics, listener=_Listener(self))

    def _consumer(self) -> KafkaConsumer:
        kafka = self.config.kafka
        settings: dict[str, Any] = {
            "bootstrap_servers": kafka.bootstrap_servers,
            "group_id": kafka.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": kafka.start_from,
            "max_poll_records": kafka.max_poll_records,
            "client_id": "driftwarden",
        }
        settings.update(kafka.client)
        try:
            return KafkaConsumer(**settings)
        except (KafkaConfigurationError, TypeError, AssertionError) as exc:
            raise ConfigError(f"rejected by the Kafka client: {exc}", "kafka.client") from None

    def _shutdown(self) -> None:
        if self.consumer is not None:
            with self._lock:
                self._checkpoint()
            self.consumer.close(autocommit=False)
            self.consumer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self.wal_checkpointer is not None:
            self.wal_checkpointer.stop()
            self.wal_checkpointer = None
        if self.dispatcher is not None:
            self.dispatcher.stop(10)
            self.dispatcher = None
        if self.retention is not None:
            self.retention.stop()
            self.retention = None
        if self.replayer is not None:
            self.replayer.close()
            self.replayer = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.engine is not None:
            self.engine.dispose()
        log.info("daemon stopped", extra={"event": "stopped"})

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM stop intake (the current batch finishes and is persisted);
        SIGHUP reloads alert rules, channels and templates."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping", extra={"event": "stopping", "signal": signal.Signals(signum).name})
            self.stop()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGHUP, lambda _signum, _frame: self._reload.set())

    def _reload_alerts(self) -> None:
        """Re-read the configuration file and swap the alert section; state is kept."""
        self._reload.clear()
        if self.config_path is None or self.alerts is None or self.dispatcher is None:
            return
        try:
            fresh = configuration.load(self.config_path)
        except DriftwardenError as exc:
            log.error("reload refused", extra={"event": "reload_failed", "error": str(exc)})
            return
        self.alerts.reload(fresh.alerts)
        self.dispatcher.reload(fresh.alerts)
        if fresh.model_dump(exclude={"alerts"}) != self.config.model_dump(exclude={"alerts"}):
            log.warning(
                "only the alerts section was reloaded; other changes need a restart",
                extra={"event": "reload_partial"},
            )
        log.info("alerts reloaded", extra={"event": "reloaded"})

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock() / 1000, UTC)

    # -- the loop --------------------------------------------------------------------------

    def _process_records(self, records: dict[TopicPartition, list[Any]]) -> None:
        """Decode, fold and (when due) checkpoint one polled batch; called under the lock."""
        assert self.pipeline is not None
        batches = _batches(records)
        for topic in self._decoders:
            if topic in batches:
                self._process(self._decoders[topic].decode(batches[topic]), topic)
        idle = self.pipeline.owned(self._caught_up())
        self._report(self.pipeline.tick(self._pending.commit, self._connection, idle))
        interval = self.config.storage.checkpoint_interval.total_seconds()
        if self._pending.windows or time.monotonic() - self._last_checkpoint >= interval:
            self._checkpoint()

    def _poll_batch(self) -> dict[TopicPartition, list[Any]]:
        """Records of several polls, up to ``batch_records`` or ``batch_wait``: one decode and
        one fold per batch, however small the broker's fetches are. An empty poll does not
        end the batch early: the next fetch is usually in flight.

        A rebalance during the later polls discards them: nothing of them was processed,
        and the assignment seeks every partition back to its stored position.
        """
        assert self.consumer is not None
        kafka = self.config.kafka
        first = self.consumer.poll(
            timeout_ms=int(kafka.poll_timeout.total_seconds() * 1000),
            max_records=kafka.max_poll_records,
        )
        generation = self._generation
        records = {tp: list(batch) for tp, batch in first.items()}
        count = sum(len(batch) for batch in records.values())
        deadline = time.monotonic() + kafka.batch_wait.total_seconds()
        while count and count < kafka.batch_records and (left := deadline - time.monotonic()) > 0:
            more = self.consumer.poll(
                timeout_ms=int(left * 1000), max_records=kafka.max_poll_records
            )
            if generation != self._generation:
                return {}
            for tp, batch in more.items():
                records.setdefault(tp, []).extend(batch)
                count += len(batch)
        return records if generation == self._generation else {}

    def _process(self, batch: DecodedBatch, topic: str) -> None:
        assert self.pipeline is not None
        pending = self._pending
        commit, connection = pending.commit, self._connection
        if topic == self.config.kafka.labels_topic:
            report = self.pipeline.process_labels(batch, commit, connection)
        else:
            report = self.pipeline.process(batch, commit, connection)
        self._report(report)
        messages = batch.messages
        partitions = (
            messages.partitions
            if messages.partitions is not None
            else np.full(len(messages.values), messages.partition)
        )
        for partition in np.unique(partitions):
            offset = int(messages.offsets[partitions == partition].max()) + 1
            pending.commit.positions[(topic, int(partition))] = offset
            pending.kafka_offsets[TopicPartition(topic, int(partition))] = offset
        for reason, count in batch.ignored.items():
            self.metrics.ignored.labels(reason).inc(count)
        for letter in batch.dead_letters:
            self.metrics.dead_letters.labels(letter.reason).inc()
            log.warning(
                "dead letter",
                extra={
                    "event": "dead_letter",
                    "reason": letter.reason,
                    "detail": letter.detail,
                    "model": letter.model,
                    **letter.origin.as_dict(),
                },
            )
        for model, names in batch.unconfigured_features.items():
            self._unconfigured.setdefault(model, set()).update(names)
            self.metrics.unconfigured_features.labels(model).set(len(self._unconfigured[model]))

    def _report(self, report: BatchReport) -> None:
        for model, count in report.events.items():
            self.metrics.events.labels(model, "prediction").inc(count)
            self._pending.events += count
        for model, count in report.labels.items():
            self.metrics.events.labels(model, "label").inc(count)
        for model, joined in report.joins.items():
            self.metrics.label_join(model, joined)
        for model, count in report.expired.items():
            self.metrics.expired.labels(model).inc(count)
            self.metrics.pending.labels(model).dec(count)
        for window, records in report.outcomes:
            self.metrics.outcomes(window, records, self.config.models[window.model])
        for seconds in report.close_seconds:
            self.metrics.close_duration.observe(seconds)
        for window, records in report.closed:
            self._pending.windows += 1
            self.metrics.window_closed(window, records)
            self.metrics.outcomes(window, records, self.config.models[window.model])
            drifted = sorted({r.feature for r in records if r.drift and r.feature})
            log.info(
                "window closed",
                extra={
                    "event": "window_closed",
                    "model": window.model,
                    "window_index": window.index,
                    "window_start": window.start,
                    "window_end": window.end,
                    "results": len(records),
                    "drifted": drifted,
                },
            )

    def _checkpoint(self) -> None:
        """Commit everything since the last checkpoint, then offsets to Kafka (advisory).

        The label join has written on the same connection as it went; positions,
        window state, results and dead letters join it here, in one transaction.
        """
        assert self.store is not None and self.pipeline is not None
        connection = self._connection
        assert connection is not None
        pending, self._pending = self._pending, self._new_pending()
        started = time.perf_counter()
        if time.monotonic() - self._last_expiry >= EXPIRY_INTERVAL:
            self._report(self.pipeline.expire(pending.commit, connection))
            self._last_expiry = time.monotonic()
        self.pipeline.snapshot(pending.commit, connection, changed_only=True)
        self.store.write(connection, pending.commit)
        if self.alerts is not None:
            self.alerts.evaluate(pending.commit.results, self._now(), connection)
        connection.commit()
        self.metrics.checkpoint_duration.observe(time.perf_counter() - started)
        for letter in pending.commit.dead_letters:
            if letter.reason == "orphan_label":
                self.metrics.dead_letters.labels(letter.reason).inc()
        self._last_checkpoint = time.monotonic()
        with self._offsets_lock:
            self._checkpointed.update(pending.kafka_offsets)

    def _commit_offsets(self) -> None:
        """Commit checkpointed positions to the Kafka group (advisory, for lag tooling)."""
        with self._offsets_lock:
            offsets, self._checkpointed = self._checkpointed, {}
        if offsets and self.consumer is not None:
            try:
                self.consumer.commit_async(
                    {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
                )
            except Exception as exc:  # the group commit is advisory: never fail on it
                log.debug("advisory offset commit failed: %s", exc)

    def _new_pending(self) -> _Pending:
        return _Pending(storage.Commit(group_id=self.config.kafka.group_id))

    def _caught_up(self) -> set[tuple[str, int]]:
        """Assigned partitions read up to their high watermark (and publish the lag of each).

        Only models on these partitions may close windows on the idle timeout: a
        backlog or a rebalance pause is not an idle model.
        """
        assert self.consumer is not None
        caught_up = set()
        for tp in self._assigned:
            key = (tp.topic, tp.partition)
            highwater = self.consumer.highwater(tp)
            position = self._pending.commit.positions.get(key, self._positions.get(key))
            if position is not None:
                self._positions[key] = position
            if highwater is None or position is None:
                continue
            lag = max(highwater - position, 0)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
            if lag == 0:
                caught_up.add(key)
        return caught_up

    # -- rebalances (called inside poll) ---------------------------------------------------

    def revoked(self, partitions: set[TopicPartition]) -> None:
        """Checkpoint before partitions go to another member."""
        with self._lock:
            self._checkpoint()
            self._assigned -= set(partitions)
        self._ready(False, "rebalancing")
        log.info(
            "partitions revoked",
            extra={"event": "rebalance", "revoked": sorted(_names(partitions))},
        )

    def _ready(self, ready: bool, reason: str = "") -> None:
        """Readiness, as ``/readyz`` answers it and ``driftwarden_ready`` exports it."""
        self.health.set_ready(ready, reason)
        self.metrics.ready.set(int(ready))

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """Reload window state and seek every partition to its stored position."""
        assert self.store is not None and self.pipeline is not None and self.consumer is not None
        with self._lock:
            self.pipeline.restore(self.store)
            self._pending = self._new_pending()
            self._assigned = set(partitions)
            self._generation += 1
            by_topic: dict[str, dict[int, int]] = {}
            for tp in partitions:
                stored = by_topic.setdefault(
                    tp.topic, self.store.positions(self.config.kafka.group_id, tp.topic)
                )
                if tp.partition in stored:
                    self.consumer.seek(tp, stored[tp.partition])
                    self._positions[(tp.topic, tp.partition)] = stored[tp.partition]
                elif self.config.kafka.start_from == "earliest":
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek_to_end(tp)
        self._ready(True)
        log.info(
            "partitions assigned",
            extra={"event": "rebalance", "assigned": sorted(_names(partitions))},
        )


class _Listener(ConsumerRebalanceListener):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.daemon.revoked(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.daemon.assigned(set(assigned))


def _names(partitions: set[TopicPartition]) -> list[str]:
    return [f"{tp.topic}-{tp.partition}" for tp in partitions]


def _batches(records: dict[TopicPartition, list[Any]]) -> dict[str, Messages]:
    """One batch per topic from a poll, keeping each message's partition and offset."""
    by_topic: dict[str, list[tuple[int, list[Any]]]] = {}
    for tp, items in records.items():
        by_topic.setdefault(tp.topic, []).append((tp.partition, items))
    batches = {}
    for topic, parts in by_topic.items():
        values = [r.value if r.value is not None else b"" for _, items in parts for r in items]
        offsets = np.fromiter((r.offset for _, items in parts for r in items), dtype=np.int64)
        partitions = np.fromiter(
            (p for p, items in parts for _ in items), dtype=np.int64, count=len(values)
        )
        batches[topic] = Messages(values, topic, None, offsets, partitions)
    return batches
