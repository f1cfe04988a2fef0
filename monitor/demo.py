"""``driftwarden demo``: the whole path on this machine, with nothing configured.

Starts a local Kafka-protocol broker on a free loopback port, writes the
reference of a synthetic credit model, produces a simulated day of 200,000
predictions in which three features drift after midday, runs the daemon on
them (SQLite, metrics on 127.0.0.1) and reports what it found. It stops by
itself once every window has closed, unless ``--keep-running``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from driftwarden.monitor import config as configuration
from driftwarden.monitor import logs, storage, synthetic
from driftwarden.monitor.daemon import Daemon
from driftwarden.monitor.events import format_time
from driftwarden.monitor.local_broker import LocalBroker, free_port

HOUR_MS = 3_600_000
EVENTS = 200_000
WINDOWS = 24
TOPIC = "predictions"

log = logging.getLogger("driftwarden.demo")


@dataclass(frozen=True)
class DemoPlan:
    """Where the demo's day starts and when its drift begins (epoch ms)."""

    start: int
    drift_from: int

    @classmethod
    def yesterday(cls, now_ms: int) -> DemoPlan:
        start = (now_ms // HOUR_MS - WINDOWS - 1) * HOUR_MS
        return cls(start, start + WINDOWS // 2 * HOUR_MS)


def run_demo(out: Path, *, keep_running: bool = False, port: int | None = None) -> int:
    """Run the demo in ``out``; the exit status."""
    out.mkdir(parents=True, exist_ok=True)
    logs.configure(json_lines=False, level=logging.WARNING)
    plan = DemoPlan.yesterday(int(time.time() * 1000))
    synthetic.reference(50_000, seed=0).write_parquet(out / "reference.parquet")
    database = out / "demo.db"
    database.unlink(missing_ok=True)
    with LocalBroker(log=out / "broker.log") as broker:
        config_path = _write_config(out, broker.bootstrap, database, port or _http_port())
        loaded = configuration.load(config_path)
        storage.upgrade(storage.create(loaded.storage.url))
        daemon = Daemon(loaded, config_hint=f"driftwarden db upgrade --config {config_path}")
        daemon.install_signal_handlers()
        print(f"driftwarden demo: broker {broker.bootstrap}, working directory {out}")
        print(
            f"  producing {EVENTS:,} predictions of {synthetic.MODEL} over "
            f"{format_time(plan.start)} .. {format_time(plan.start + WINDOWS * HOUR_MS)}; "
            f"{', '.join(synthetic.DEFAULT_DRIFT)} drift from {format_time(plan.drift_from)}"
        )
        producer = threading.Thread(target=_produce, args=(broker.bootstrap, plan), daemon=True)
        producer.start()
        watcher = threading.Thread(
            target=_watch, args=(daemon, loaded.storage.url, keep_running), daemon=True
        )
        watcher.start()
        started = time.monotonic()
        status = daemon.run()
        _summarize(loaded.storage.url, time.monotonic() - started, f"127.0.0.1:{loaded.http.port}")
    return status


def _http_port() -> int:
    """9108 when it is free, else any free port."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 9108))
            return 9108
        except OSError:
            return free_port()


def _write_config(out: Path, bootstrap: str, database: Path, port: int) -> Path:
    text = synthetic.config_yaml("reference.parquet", f"sqlite:///{database.resolve()}").replace(
        "allowed_lateness: 5m}", "allowed_lateness: 5m, idle_timeout: 2s}"
    )
    text += (
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  predictions_topic: {TOPIC}\n"
        "  group_id: driftwarden-demo\n"
        "  client: {session_timeout_ms: 6000, heartbeat_interval_ms: 2000}\n"
        f"http:\n  host: 127.0.0.1\n  port: {port}\n"
    )
    path = out / "config.yaml"
    path.write_text(text)
    return path


def _produce(bootstrap: str, plan: DemoPlan) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(TOPIC, 4, 1)])
    admin.close()
    stream = synthetic.Stream(
        n=EVENTS, start=plan.start, span=WINDOWS * HOUR_MS, drift_from=plan.drift_from
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262_144)
    key = synthetic.MODEL.encode()
    for line in synthetic.prediction_lines(synthetic.events(stream)):
        producer.send(TOPIC, value=line, key=key)
    producer.flush()
    producer.close()


def _watch(daemon: Daemon, url: str, keep_running: bool) -> None:
    """Stop the daemon once every window of the day has closed (unless asked to stay up)."""
    engine = storage.create(url)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not keep_running:
        time.sleep(0.5)
        with engine.connect() as connection:
            closed = connection.exec_driver_sql("SELECT count(*) FROM windows").scalar()
        if closed >= WINDOWS:
            break
    engine.dispose()
    if keep_running:
        if daemon.metrics_url:
            print(f"  running; metrics at {daemon.metrics_url}; Ctrl-C to stop")
        return
    daemon.stop()


def _summarize(url: str, seconds: float, metrics_address: str) -> None:
    engine = storage.create(url)
    records = list(storage.Store(engine).results())
    engine.dispose()
    windows = {r.window_index for r in records}
    print(f"  {len(windows)} windows closed in {seconds:.1f} s; {len(records):,} results stored")
    drifted: dict[str, list] = {}
    for record in records:
        if record.drift and record.kind == "data_drift" and record.feature:
            drifted.setdefault(record.feature, []).append(record)
    if not drifted:
        print("  no feature drifted")
    for feature, hits in sorted(drifted.items()):
        first = min(hits, key=lambda r: r.window_start)
        worst = max(hits, key=lambda r: r.value or 0.0)
        print(
            f"  {feature:<14} drifting from {format_time(first.window_start)} "
            f"({len({h.window_index for h in hits})} windows); largest {worst.detector} "
            f"{worst.value:.3f} (threshold {worst.threshold})"
        )
    print(f"  metrics were served at http://{metrics_address}/metrics; results in {url}")
