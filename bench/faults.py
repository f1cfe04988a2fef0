"""Faults survived: SIGKILLs at seeded random instants and PostgreSQL restarts mid-stream.

Produces a stream of the synthetic model (six hourly windows, drift in the second half) to a
local broker, computes its results with ``replay``, then:
  (a) runs the daemon on PostgreSQL and kills it with SIGKILL at ``--kills`` random instants
      (seeded), restarting it each time, until every window is stored;
  (b) runs it again on a fresh schema and restarts the PostgreSQL server ``--restarts``
      times while it ingests (at seeded random instants), timing each recovery from the
      restart to ``/readyz`` answering 200 again.
Both runs must store exactly the records ``replay`` computed (statuses and decisions equal,
values within 1e-9 relative). Needs root (``pg_ctlcluster``) and PostgreSQL on 127.0.0.1.

    .venv/bin/python bench/faults.py [--kills 10] [--restarts 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.local_broker import LocalBroker, free_port
from driftwarden.monitor.commands.replay import replay

HOUR = 3_600_000
START = 1_795_046_400_000
WINDOWS = 6
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262_144)
    for line in lines:
        producer.send(topic, value=line, key=synthetic.MODEL.encode())
    producer.flush()
    producer.close()


def fresh_schema() -> str:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    url = f"{ADMIN}?options=-csearch_path%3D{schema}"
    storage.upgrade(storage.create(url))
    return url


def write_config(directory: Path, url: str, bootstrap: str, topic: str, port: int) -> Path:
    text = (
        synthetic.config_yaml("reference.parquet", url)
        .replace("allowed_lateness: 5m}", "allowed_lateness: 5m, idle_timeout: 3s}")
        .replace("storage:\n", "storage:\n  checkpoint_interval: 100ms\n")
    )
    text += (
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  predictions_topic: {topic}\n"
        f"  group_id: {uuid.uuid4().hex}\n"
        "  client: {session_timeout_ms: 6000, heartbeat_interval_ms: 2000}\n"
        "  max_poll_records: 500\n  batch_records: 500\n"
        f"http:\n  port: {port}\nevents:\n  max_future_skew: 3650d\n"
    )
    path = directory / f"{topic}.yaml"
    path.write_text(text)
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "driftwarden.monitor.commands.cli", "run", "--config"]
    return subprocess.Popen(
        [*command, str(config), "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def windows(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT count(*) FROM windows").scalar()
    except sqlalchemy.exc.OperationalError:
        return -1
    finally:
        engine.dispose()


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def compare(url: str, expected: dict) -> tuple[int, int]:
    """Records compared, and how many differ."""
    engine = storage.create(url)
    got = {record.key: record for record in storage.Store(engine).results()}
    engine.dispose()
    differ = len(set(got) ^ set(expected))
    for key in set(got) & set(expected):
        a, b = got[key], expected[key]
        same = (a.status, a.drift, a.n_window) == (b.status, b.drift, b.n_window)
        for name in ("value", "p_value", "threshold"):
            x, y = getattr(a, name), getattr(b, name)
            same &= (x is None) == (y is None) and (
                x is None or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
            )
        differ += not same
    return len(expected), differ


def postgres(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
    )


def run_kills(directory, bootstrap, topic, kills, rng) -> tuple[str, int]:
    url = fresh_schema()
    config = write_config(directory, url, bootstrap, topic, free_port())
    survived = 0
    for _ in range(kills):
        process = start(config, directory / "kills.log")
        time.sleep(rng.uniform(3.0, 8.0))  # the consumer group join takes about 3 s
        process.send_signal(signal.SIGKILL)
        process.wait()
        survived += 1
    process = start(config, directory / "kills.log")
    deadline = time.monotonic() + 300
    while windows(url) < WINDOWS and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    return url, survived


def run_restarts(directory, bootstrap, topic, restarts, rng) -> tuple[str, int, list[float]]:
    url = fresh_schema()
    port = free_port()
    config = write_config(directory, url, bootstrap, topic, port)
    process = start(config, directory / "restarts.log")
    while not ready(port):
        time.sleep(0.1)
    recoveries = []
    for _ in range(restarts):
        time.sleep(rng.uniform(0.5, 3.0))
        began = time.monotonic()
        postgres("restart")
        while not ready(port):
            time.sleep(0.05)
        recoveries.append(time.monotonic() - began)
    deadline = time.monotonic() + 300
    while windows(url) < WINDOWS and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    return url, len(recoveries), recoveries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=60_000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    stream = synthetic.Stream(
        n=args.events, start=START, span=WINDOWS * HOUR, drift_from=START + 3 * HOUR, seed=11
    )
    lines = synthetic.prediction_lines(synthetic.events(stream))
    with tempfile.TemporaryDirectory() as scratch, LocalBroker() as broker:
        directory = Path(scratch)
        os.chdir(directory)
        synthetic.reference(20_000, seed=0).write_parquet(directory / "reference.parquet")
        (directory / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        (directory / "replay.yaml").write_text(
            synthetic.config_yaml("reference.parquet", "sqlite://")
        )
        loaded = configuration.load(directory / "replay.yaml")
        expected = replay(loaded, directory / "events.jsonl", directory / "out").results
        topic_a, topic_b = f"kills-{uuid.uuid4().hex[:6]}", f"restarts-{uuid.uuid4().hex[:6]}"
        produce(broker.bootstrap, topic_a, lines)
        produce(broker.bootstrap, topic_b, lines)
        url, kills = run_kills(directory, broker.bootstrap, topic_a, args.kills, rng)
        compared, differ = compare(url, expected)
        print(f"SIGKILL: {kills} kills survived; {compared} records compared, {differ} differ")
        url, restarts, recoveries = run_restarts(
            directory, broker.bootstrap, topic_b, args.restarts, rng
        )
        compared, differ = compare(url, expected)
        print(
            f"PostgreSQL restarts: {restarts} survived; {compared} records compared, "
            f"{differ} differ; recovery to /readyz 200: median "
            f"{statistics.median(recoveries):.2f} s, max {max(recoveries):.2f} s"
        )


if __name__ == "__main__":
    main()
