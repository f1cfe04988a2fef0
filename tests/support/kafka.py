"""A real Kafka-protocol broker (tansu) and daemon processes for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlalchemy
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftwarden.monitor.commands.local_broker import free_port

LIBRARIES = ("kafka-python", "confluent")
"""The client libraries ``kafka.library`` offers; daemon tests run on each."""
FAST_GROUP = {
    "kafka-python": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
    "confluent": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 2000},
}
"""Group settings that notice a departed member within seconds, in each library's names."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def labels_topic(bootstrap: str, predictions: str) -> str:
    """``labels-<predictions>``, created with as many partitions as ``predictions`` (as
    docs/scaling.md asks) unless it exists or ``predictions`` does not exist yet."""
    name = f"labels-{predictions}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        if predictions in existing and name not in existing:
            (described,) = admin.describe_topics([predictions])
            admin.create_topics([NewTopic(name, len(described["partitions"]), 1)])
    finally:
        admin.close()
    return name


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    *,
    key: bytes | None = None,
    partition: Callable[[int], int] | None = None,
) -> int:
    """Send ``values`` in order; returns how many were sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262_144)
    count = 0
    try:
        for i, value in enumerate(values):
            producer.send(
                topic, value=value, key=key, partition=None if partition is None else partition(i)
            )
            count += 1
        producer.flush()
    finally:
        producer.close()
    return count


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def count_rows(url: str, table: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()
    except sqlalchemy.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def daemon_config(
    reference: Path,
    storage_url: str,
    bootstrap: str,
    topic: str,
    group: str,
    *,
    models: dict[str, str] | None = None,
    extra: str = "",
    max_poll_records: int = 5000,
    batch_records: int = 20_000,
    checkpoint_interval: str = "1s",
    library: str = "kafka-python",
    labels: str | None = None,
) -> str:
    """A configuration for the synthetic model(s) on the test broker, reading labels from
    ``labels`` (by default a topic of the predictions topic's own, partitioned like it)."""
    from driftwarden.monitor.commands import synthetic

    model_names = models or {synthetic.MODEL: synthetic.MODEL}
    base = (
        synthetic.config_yaml(str(reference), storage_url)
        .replace("allowed_lateness: 5m}", "allowed_lateness: 5m, idle_timeout: 3s}")
        .replace("storage:\n", f"storage:\n  checkpoint_interval: {checkpoint_interval}\n")
    )
    head, model_block = base.split("models:\n", 1)
    blocks = "".join(
        model_block.replace(f"  {synthetic.MODEL}:", f"  {name}:", 1) for name in model_names
    )
    client = ", ".join(f"{k}: {v}" for k, v in FAST_GROUP[library].items())
    return (
        f"{head}models:\n{blocks}"
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  predictions_topic: {topic}\n"
        f"  labels_topic: {labels or labels_topic(bootstrap, topic)}\n"
        f"  group_id: {group}\n  library: {library}\n  client: {{{client}}}\n"
        f"  poll_timeout: 200ms\n  max_poll_records: {max_poll_records}\n"
        f"  batch_records: {batch_records}\n"
        f"http:\n  port: {free_port()}\n"
        f"events:\n  max_future_skew: 3650d\n{extra}"
    )


class DaemonProcess:
    """``driftwarden run`` in a subprocess; logs go to a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftwarden.monitor.commands.cli",
                "run",
                "--config",
                str(self.config),
                "--log-format",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
            env=env,
        )
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        """The exit status of a daemon that ends by itself."""
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        if self.alive():
            self.kill()
