"""``driftwarden run``: the long-running service.

The main thread polls Kafka and hands each poll to one of two decoding threads, then to a
fold worker, which runs it through the batch path (``pipeline.runner``): fold, close,
evaluate, and — at least every ``storage.checkpoint_interval`` and whenever a window
closes — a checkpoint that writes consumer positions, window state, closed
windows, results and dead letters in one database transaction. A restart
seeks every partition to its stored position, so it re-reads at most what
arrived since the last checkpoint and counts nothing twice. On a rebalance the
revoked side checkpoints before giving partitions up and the assigned side
reloads state and seeks to the stored positions; rebalances only happen
inside ``poll``, so no batch is ever half-processed when they do.

Every thread is started and stopped by one ``Lifecycle`` (see
docs/architecture.md, "Threads").

Nothing silences it. An unexpected error in a batch is isolated by the batch
path (the messages that cause it become ``internal_error`` dead letters). A
database error a retry may outlive pauses intake: readiness drops, the worker
reconnects with capped exponential backoff and jitter, reloads the committed
state and rereads every partition from its stored position, so nothing is
applied twice. Any other error ends the process with a non-zero status, the
error logged with its traceback; a second SIGINT or SIGTERM ends it at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Engine

from driftwarden.alerts import AlertEngine, AlertsConfig, Dispatcher
from driftwarden.core.times import Clock, duration_ms, format_time, wall_clock_ms
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.config import Config
from driftwarden.monitor.errors import DriftwardenError, TopicError
from driftwarden.monitor.ingest import kafka
from driftwarden.monitor.ingest.consumer import Consumer, Partition, Polled
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.pipeline.building import build_pipeline, split_models, window_sizes
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.runner import BatchRunner, Cadence, SourceBatch
from driftwarden.monitor.pipeline.spread import Spread
from driftwarden.monitor.service.api import database_actions
from driftwarden.monitor.service.endpoints import EndpointServer, Health
from driftwarden.monitor.service.lifecycle import Housekeeping, Lifecycle
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.service.pages import Pages
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.storage.lease import Lease
from driftwarden.monitor.storage.retention import Retention

log = logging.getLogger("driftwarden.daemon")

EXPIRY_INTERVAL_MS = 60_000
"""Milliseconds between sweeps of the label join for rows past their ttl."""
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 30.0
"""Seconds between attempts to reach the database again: doubling from the first, capped."""
DRAIN_TIMEOUT = 30.0
"""Seconds the fold worker may take to finish its batch when the daemon stops."""
DECODING_THREADS = 2
"""Polled batches decoded at once: decoding (polars, without the GIL) is the longest stage,
so the next batch's starts before the previous one's ends."""
BATCHES_AHEAD = 3
"""Polled batches queued for the fold worker (each decoding meanwhile): a few absorb the
uneven pace of decoding and folding, so that polling seldom waits. With one, the confluent
daemon's polling waited for the fold worker about a third of the time."""
LEASE_TTL_MS = 10_000
"""How long the lease of the database-wide figures outlives its holder's last renewal."""


class Daemon:
    """Consumes predictions and labels, closes windows, serves metrics; ``run()`` until
    stopped."""

    def __init__(
        self,
        config: Config,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock = wall_clock_ms,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, config.models, config.http.external_url)
        self.health = Health(config.http.stall_after.total_seconds())
        self._reload = threading.Event()
        self._stop = threading.Event()
        self._rewind = threading.Event()
        self._rewinding = False
        self._lock = threading.Lock()
        self._assigned: set[Partition] = set()
        self._owned: set[str] = set()
        self._positions: dict[tuple[str, int], int] = {}
        self._generation = 0
        self._queue: queue.Queue[tuple[int, Future[SourceBatch]] | _Reload | None] = queue.Queue(
            maxsize=BATCHES_AHEAD
        )
        self._decoder: ThreadPoolExecutor | None = None
        self._failure: BaseException | None = None
        self._offsets_lock = threading.Lock()
        self._checkpointed: dict[Partition, int] = {}
        self._topics = {
            config.kafka.predictions_topic: "prediction",
            config.kafka.labels_topic: "label",
        }
        self.alerts: AlertEngine | None = None
        self.dispatcher: Dispatcher | None = None
        self.runner: BatchRunner | None = None
        self.store: storage.Store | None = None
        self.engine: Engine | None = None
        self.checkpointer: storage.WalCheckpointer | None = None
        self.consumer: Consumer | None = None
        self.server: EndpointServer | None = None

    def stop(self) -> None:
        """Stop intake after the current batch (safe from signal handlers and other threads)."""
        self._stop.set()

    @property
    def metrics_url(self) -> str | None:
        return None if self.server is None else f"{self.server.url}/metrics"

    def run(self) -> int:
        """Start, consume until stopped, checkpoint, and close everything; the exit status.

        The main thread polls Kafka (rebalances happen there), two decoding threads decode
        the polls and the fold worker runs them through the rest of the batch path, in poll
        order: polling one batch, decoding the ones before and folding an earlier one
        overlap (librdkafka and polars release the GIL), with up to ``BATCHES_AHEAD``
        batches queued between polling and folding. Rebalance callbacks wait
        for the batch in progress, and a batch polled before a rebalance is dropped
        unprocessed (its partitions are read again from their stored positions).
        """
        lifecycle = Lifecycle()
        try:
            self._start(lifecycle)
            log.info(
                "daemon started",
                extra={
                    "event": "started",
                    "models": list(self.config.models),
                    "metrics": self.metrics_url,
                },
            )
            while not self._stop.is_set():
                if self._rewind.is_set():
                    self._seek_committed()
                records = self._poll_batch()
                self.health.beat("poll")
                self._publish_owned()
                if self._reload.is_set():
                    self._reload_alerts()
                assert self._decoder is not None
                self._hand_over((self._generation, self._decoder.submit(self._decode, records)))
                self._commit_offsets()
        finally:
            lifecycle.stop()
            log.info("daemon stopped", extra={"event": "stopped"})
        return 0 if self._failure is None else 1

    def _hand_over(self, item: tuple[int, Future[SourceBatch]] | _Reload) -> None:
        """Queue a polled batch being decoded (or a reload) for the fold worker, unless the
        daemon stops meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                self.health.beat("poll")

    # -- start and stop --------------------------------------------------------------------

    def _start(self, lifecycle: Lifecycle) -> None:
        """Start every component in order; ``lifecycle`` stops them in reverse."""
        config = self.config
        engine = self.engine = storage.create(config.storage.url)
        lifecycle.start("database", engine, None, engine.dispose)
        self.server = EndpointServer.from_config(
            config.http, self.registry, self.health, clock=self.clock
        )
        lifecycle.start("http", self.server, self.server.start, self.server.stop)
        storage.prepare(engine, f"driftwarden db upgrade --config {self.config_path or 'FILE'}")
        self.store = store = storage.Store(engine)
        replayer = kafka.DeadLetterReplayer(config.kafka, store, clock=self.clock)
        lifecycle.start("dead-letter producer", replayer, None, replayer.close)
        assert self.server.api is not None
        self.server.api.actions = database_actions(store, self.clock, replayer)
        self.server.ui.pages = Pages(store, clock=self.clock)
        retention = Retention(
            engine,
            config.retention,
            self.registry,
            clock=self.clock,
            windows_by_index={
                name: model.window.kind == "count" and not model.spread
                for name, model in config.models.items()
            },
        )
        lease = Lease(engine, "database-figures", _instance_name(), LEASE_TTL_MS, self.clock)
        lifecycle.start("lease", lease, lease.renew, lease.release)
        housekeeping = Housekeeping()
        housekeeping.add("driftwarden-retention", retention.run_due)
        housekeeping.add("driftwarden-lease", lease.renew)
        lifecycle.start("housekeeping", housekeeping, housekeeping.start, housekeeping.stop)
        lifecycle.start("retention", retention, None, retention.stop)
        self.alerts = AlertEngine(
            config.alerts,
            window_sizes(config),
            pages_url=config.http.external_url,
            split_versions=split_models(config),
        )
        self.dispatcher = Dispatcher(
            engine,
            config.alerts,
            registry=self.registry,
            clock=self.clock,
            exports_database_figures=lambda: lease.held,
        )
        dispatcher = self.dispatcher
        lifecycle.start("dispatcher", dispatcher, dispatcher.start, lambda: dispatcher.stop(10))
        connection = engine.connect()
        lifecycle.start("connection", connection, None, self._close_connection)
        checkpointer = self.checkpointer = storage.WalCheckpointer(engine)
        lifecycle.start(
            "checkpointer", checkpointer, lambda: checkpointer.start(connection), checkpointer.stop
        )
        helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwarden-join")
        lifecycle.start("join helper", helper, None, helper.shutdown)
        join = LabelJoin(JoinStore(engine.dialect.name), helper)
        self.consumer = kafka.consumer(config.kafka)
        lifecycle.start("consumer", self.consumer, None, self._close_consumer)
        pipeline = build_pipeline(
            config, store, resume=True, join=join, clock=self.clock, spread=self._spread()
        )
        cadence = Cadence(duration_ms(config.storage.checkpoint_interval), EXPIRY_INTERVAL_MS)
        self.runner = BatchRunner(config, pipeline, store, self.alerts, connection, cadence)
        self._publish_start(join.store, connection)
        self._subscribe()
        decoder = self._decoder = ThreadPoolExecutor(
            DECODING_THREADS, thread_name_prefix="driftwarden-decode"
        )
        lifecycle.start("decoder", decoder, None, decoder.shutdown)
        worker = threading.Thread(target=self._work, name="driftwarden-fold", daemon=True)
        lifecycle.start("fold worker", worker, worker.start, lambda: self._drain(worker))

    def _publish_start(self, join_store: JoinStore, connection: Connection) -> None:
        """Gauges known before the first batch: reference performance, labels waiting; and
        alert state brought in line with the configuration (it may have changed while the
        daemon was down)."""
        assert self.runner is not None and self.alerts is not None
        self.alerts.reconcile(self.clock(), connection)
        for name, model in self.runner.pipeline.models.items():
            self.metrics.reference_performance(name, model.profile.outcomes.reference_performance)
            if model.labels is not None and model.labels.detector is not None:
                self.metrics.concept_drift.labels(name, model.labels.detector.name)
        connection.commit()
        self.join_store = join_store

    def _publish_owned(self) -> None:
        """The gauges of the models this instance owns (their events come from partitions
        assigned to it): how fresh each is; the gauges of models it no longer owns go, so
        sums across a fleet count each model once."""
        assert self.runner is not None
        now = self.clock()
        assigned = {(tp.topic, tp.partition) for tp in self._assigned}
        owned = set()
        for name, model in self.runner.pipeline.models.items():
            if model.source in assigned:
                owned.add(name)
                freshness = model.freshness
                self.metrics.owned(name, freshness.age(now), freshness.silence is not None)
        for name in self._owned - owned:
            self.metrics.forget_model(name)
        self._owned = owned

    def _subscribe(self) -> None:
        """Subscribe to the predictions topic, and to the labels topic if any model takes
        labels (once it is known to be partitioned like the predictions topic)."""
        assert self.consumer is not None
        topics = [self.config.kafka.predictions_topic]
        if any(model.labels.enabled for model in self.config.models.values()):
            self._check_copartitioned()
            topics.append(self.config.kafka.labels_topic)
        self.consumer.subscribe(topics, self.assigned, self.revoked)

    def _spread(self) -> Spread | None:
        """Where models with ``spread`` on are spread: the predictions topic, which must
        exist, since their windows close when every one of its partitions has passed them
        (its partition count is read once, at start)."""
        if not any(model.spread for model in self.config.models.values()):
            return None
        assert self.consumer is not None
        topic = self.config.kafka.predictions_topic
        try:
            count = self.consumer.partition_count(topic)
        except ConnectionError as exc:
            raise TopicError(f"cannot read the partition count of {topic}: {exc}") from None
        if count is None:
            raise TopicError(
                f"the predictions topic {topic} does not exist: a model with spread: true "
                "closes a window when every partition of that topic has passed it, so create "
                "the topic (with its partition count) before the daemon starts"
            )
        return Spread(topic, count, self.config.kafka.labels_topic)

    def _check_copartitioned(self) -> None:
        """Refuse to start unless the labels topic has as many partitions as the predictions
        topic: the range assignor gives a model's labels to the instance that holds its
        predictions only then. A topic that does not exist yet is not refused (nothing is
        misrouted before it exists); a warning says what it needs."""
        assert self.consumer is not None
        predictions_topic = self.config.kafka.predictions_topic
        labels_topic = self.config.kafka.labels_topic
        try:
            predictions = self.consumer.partition_count(predictions_topic)
            labels = self.consumer.partition_count(labels_topic)
        except ConnectionError as exc:
            raise TopicError(
                f"cannot read the partition counts of {predictions_topic} and {labels_topic}: {exc}"
            ) from None
        if predictions is not None and labels is not None:
            if predictions != labels:
                raise TopicError(
                    f"the labels topic {labels_topic} has {labels} partitions and the "
                    f"predictions topic {predictions_topic} has {predictions}: a model's labels "
                    "reach the instance that holds its predictions only when both topics have "
                    "the same partition count; give them the same count (or set "
                    "labels.enabled: false on every model)"
                )
            return
        if predictions is not None:
            unchecked = (
                f"the labels topic {labels_topic} does not exist yet: create it with "
                f"{predictions} partitions, as the predictions topic has"
            )
        elif labels is not None:
            unchecked = (
                f"the predictions topic {predictions_topic} does not exist yet: create it with "
                f"{labels} partitions, as the labels topic has"
            )
        else:
            unchecked = (
                f"neither {predictions_topic} nor {labels_topic} exists yet: create both with "
                "the same partition count"
            )
        log.warning(
            "partition counts not checked: %s (a topic the broker creates on a client's "
            "request gets the broker's default count)",
            unchecked,
            extra={"event": "partitions_unchecked"},
        )

    def _drain(self, worker: threading.Thread) -> None:
        """Let the fold worker finish the batch it holds, then write the last checkpoint —
        unless the daemon failed, or its state is not the committed one being read again."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=DRAIN_TIMEOUT)
        worker.join(DRAIN_TIMEOUT)
        if worker.is_alive() or self._failure is not None or self._rewinding:
            return
        try:
            with self._lock:
                self._checkpoint()
        except Exception:
            log.exception("the last checkpoint failed", extra={"event": "checkpoint_failed"})

    def _close_connection(self) -> None:
        if self.runner is not None:
            self.runner.connection.close()

    def _close_consumer(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM stop intake (the current batch finishes and is persisted; a
        second one ends the process at once); SIGHUP reloads alert rules, channels and
        templates."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stop.is_set():
                log.warning("stopping now", extra={"event": "stopped_hard", "signal": name})
                os._exit(128 + signum)
            log.info("stopping", extra={"event": "stopping", "signal": name})
            self.stop()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGHUP, lambda _signum, _frame: self._reload.set())

    def _reload_alerts(self) -> None:
        """Re-read the configuration file and hand its alert section to the fold worker,
        which swaps it in between batches (``_swap_alerts``)."""
        self._reload.clear()
        if self.config_path is None or self.alerts is None or self.dispatcher is None:
            return
        try:
            fresh = configuration.load(self.config_path)
        except DriftwardenError as exc:
            log.error("reload refused", extra={"event": "reload_failed", "error": str(exc)})
            return
        self._hand_over(_Reload(fresh.alerts))
        if fresh.model_dump(exclude={"alerts"}) != self.config.model_dump(exclude={"alerts"}):
            log.warning(
                "only the alerts section was reloaded; other changes need a restart",
                extra={"event": "reload_partial"},
            )

    def _swap_alerts(self, fresh: AlertsConfig) -> None:
        """Swap the alert section in; state is kept, and the incidents it no longer produces
        are resolved before its alerts regroup — after a checkpoint, so the transaction
        holds only that."""
        assert self.runner is not None and self.alerts is not None
        assert self.dispatcher is not None
        self._checkpoint()
        retired = self.alerts.reload(fresh)
        self.alerts.reconcile(self.clock(), self.runner.connection, retired)
        self.runner.connection.commit()
        self.dispatcher.reload(fresh, retired)
        log.info("alerts reloaded", extra={"event": "reloaded"})

    # -- the loop --------------------------------------------------------------------------

    def _work(self) -> None:
        """The fold worker: run polled batches through the batch path, in order."""
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.health.beat("fold")
                continue
            if item is None:
                return
            try:
                if isinstance(item, _Reload):
                    with self._lock:
                        self._swap_alerts(item.alerts)
                else:
                    self._fold(*item)
            except Exception as error:
                if not storage.transient(error):
                    self._fail(error)
                    return
                self._reconnect(error)
            self.health.beat("fold")

    def _fold(self, generation: int, decoding: Future[SourceBatch]) -> None:
        """One polled batch once decoded (waited for outside the lock, so a rebalance need
        not wait for decoding), unless a rebalance or a rewind made it stale."""
        batch = decoding.result()
        with self._lock:
            if generation == self._generation and not self._rewinding:
                self._process(batch)

    def _fail(self, error: BaseException) -> None:
        """An error no retry outlives: log it, drop readiness, stop the daemon (status 1)."""
        log.critical(
            "stopping after an error: %s: %s",
            type(error).__name__,
            error,
            exc_info=error,
            extra={"event": "failed"},
        )
        self._failure = error
        self._ready(False, f"failed: {type(error).__name__}")
        self._stop.set()

    def _reconnect(self, error: BaseException) -> None:
        """The database went away: pause intake, reach it again with backoff, reload the
        committed state, and have the main thread reread from the stored positions."""
        log.warning(
            "database unavailable (%s); retrying",
            error,
            extra={"event": "database_unavailable", "error": str(error)},
        )
        self._ready(False, "database unavailable")
        self._rewinding = True
        attempt = 0
        while not self._stop.is_set():
            try:
                with self._lock:
                    self._reopen()
                break
            except Exception as again:
                if not storage.transient(again):
                    self._fail(again)
                    return
                attempt += 1
                self.health.beat("fold")
                pause = min(RECONNECT_FIRST * 2 ** (attempt - 1), RECONNECT_MAX)
                self._stop.wait(pause * (0.5 + random.random() / 2))
        else:
            return
        log.info("database reachable again", extra={"event": "database_back", "attempts": attempt})
        self._rewind.set()

    def _reopen(self) -> None:
        """A new connection for the batch path, and the committed state reloaded on it (and
        alert state brought in line with the configuration, should a reload have been cut
        short)."""
        assert self.runner is not None and self.checkpointer is not None
        assert self.engine is not None and self.alerts is not None
        with contextlib.suppress(Exception):
            self.runner.connection.invalidate()
            self.runner.connection.close()
        connection = self.engine.connect()
        connection.exec_driver_sql("SELECT 1")
        self.checkpointer.prepare(connection)
        self.runner.connection = connection
        self.runner.reset()
        self.alerts.reconcile(self.clock(), connection)
        connection.commit()

    def _seek_committed(self) -> None:
        """Read every assigned partition again from its stored position (main thread)."""
        try:
            with self._lock:
                self._seek_stored(self._assigned)
                self._generation += 1
                self._rewinding = False
        except Exception as error:
            if not storage.transient(error):
                raise
            log.warning("cannot read the stored positions yet: %s", error)
            return
        self._rewind.clear()
        self._ready(True)

    def _decode(self, records: list[Polled]) -> SourceBatch:
        """A polled batch as the batch path takes it, decoded on a decoding thread while
        the main thread polls the next one and the fold worker folds an earlier one."""
        assert self.runner is not None
        messages, positions = kafka.batches(records)
        by_kind = {self._topics[topic]: batch for topic, batch in messages.items()}
        return self.runner.decode(SourceBatch(by_kind, positions))

    def _process(self, batch: SourceBatch) -> None:
        """One polled batch through the batch path."""
        assert self.runner is not None
        self._positions.update(batch.positions)
        report = self.runner.run(batch, caught_up=self._caught_up())
        if report is not None:
            self._committed(report)

    def _poll_batch(self) -> list[Polled]:
        """Records of several polls, up to ``batch_records`` or ``batch_wait``: one decode and
        one fold per batch, however small the broker's fetches are. An empty poll does not
        end the batch early: the next fetch is usually in flight.

        A rebalance during the later polls discards them: nothing of them was processed,
        and the assignment seeks every partition back to its stored position.
        """
        assert self.consumer is not None
        settings = self.config.kafka
        records = self.consumer.poll(
            settings.poll_timeout.total_seconds(), settings.max_poll_records
        )
        generation = self._generation
        count = sum(len(polled) for polled in records)
        deadline = time.monotonic() + settings.batch_wait.total_seconds()
        while (
            count and count < settings.batch_records and (left := deadline - time.monotonic()) > 0
        ):
            more = self.consumer.poll(left, settings.max_poll_records)
            if generation != self._generation:
                return []
            records += more
            count += sum(len(polled) for polled in more)
        return records if generation == self._generation else []

    def _checkpoint(self) -> None:
        """Commit everything since the last checkpoint now; called under the lock."""
        assert self.runner is not None
        self._committed(self.runner.checkpoint())

    def _committed(self, report: BatchReport) -> None:
        """After a checkpoint: metrics and log lines of what it committed, and its positions
        queued for the advisory Kafka group commit."""
        offsets = {Partition(topic, p): o for (topic, p), o in report.positions.items()}
        with self._offsets_lock:
            self._checkpointed.update(offsets)
        self.metrics.record(report, self.config.models)
        for letter in report.dead_letters:
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
        for model, run in report.skipped:
            log.warning(
                "empty windows skipped",
                extra={
                    "event": "windows_skipped",
                    "model": model,
                    "first_index": run.first,
                    "windows": run.count,
                    "from": format_time(run.start),
                    "to": format_time(run.end),
                },
            )
        for window, records in report.closed:
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

    def _commit_offsets(self) -> None:
        """Commit checkpointed positions to the Kafka group (advisory, for lag tooling)."""
        with self._offsets_lock:
            offsets, self._checkpointed = self._checkpointed, {}
        if offsets and self.consumer is not None:
            try:
                self.consumer.commit(offsets)
            except Exception as exc:  # the group commit is advisory: never fail on it
                log.debug("advisory offset commit failed: %s", exc)

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
            position = self._positions.get(key)
            if highwater is None or position is None:
                continue
            lag = max(highwater - position, 0)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
            if lag == 0:
                caught_up.add(key)
        return caught_up

    # -- rebalances (called inside poll) ---------------------------------------------------

    def revoked(self, partitions: set[Partition]) -> None:
        """Checkpoint before partitions go to another member (if the database allows: what
        is not committed is read again by the next owner)."""
        try:
            with self._lock:
                if not self._rewinding:
                    self._checkpoint()
                self._give_up(set(partitions))
        except Exception as error:
            if not storage.transient(error):
                self._fail(error)
            else:
                log.warning("no checkpoint before the rebalance: %s", error)
                self._rewinding = True
                self._rewind.set()
        self._ready(False, "rebalancing")
        log.info(
            "partitions revoked",
            extra={"event": "rebalance", "revoked": sorted(_names(partitions))},
        )

    def _give_up(self, partitions: set[Partition]) -> None:
        """Partitions this instance no longer reads: their lag is another member's to export."""
        for tp in partitions:
            self.metrics.forget_partition(tp.topic, tp.partition)
        self._assigned -= partitions

    def _ready(self, ready: bool, reason: str = "") -> None:
        """Readiness, as ``/readyz`` answers it and ``driftwarden_ready`` exports it."""
        self.health.set_ready(ready, reason)
        self.metrics.ready.set(int(ready))

    def assigned(self, partitions: set[Partition]) -> None:
        """Reload window state and seek every partition to its stored position."""
        assert self.runner is not None
        try:
            with self._lock:
                self._give_up(self._assigned - set(partitions))
                self._assigned = set(partitions)
                self.runner.reset()
                self._publish_waiting(partitions)
                self._seek_stored(partitions)
                self._generation += 1
                self._rewinding = False
        except Exception as error:
            if not storage.transient(error):
                self._fail(error)
                return
            log.warning("cannot reload the committed state yet: %s", error)
            self._rewinding = True
            self._rewind.set()
            return
        self._ready(True)
        log.info(
            "partitions assigned",
            extra={"event": "rebalance", "assigned": sorted(_names(partitions))},
        )

    def _publish_waiting(self, partitions: set[Partition]) -> None:
        """Predictions waiting for labels, of the models on ``partitions`` (as committed)."""
        assert self.runner is not None
        keys = {(tp.topic, tp.partition) for tp in partitions}
        connection = self.runner.connection
        for name, model in self.runner.pipeline.models.items():
            if model.labels is not None and model.source in keys:
                waiting = sum(
                    self.join_store.label_counts(connection, key)[0] for key in model.keys
                )
                self.metrics.pending.labels(name).set(waiting)
        connection.commit()

    def _seek_stored(self, partitions: set[Partition]) -> None:
        """Seek each partition to its stored position (or where ``start_from`` says)."""
        assert self.store is not None and self.consumer is not None
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


@dataclass(frozen=True)
class _Reload:
    """A reloaded alert section, for the fold worker to swap in between batches."""

    alerts: AlertsConfig


def _instance_name() -> str:
    """This process among a fleet's: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _names(partitions: set[Partition]) -> list[str]:
    return [f"{tp.topic}-{tp.partition}" for tp in partitions]
