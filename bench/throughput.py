"""Daemon throughput against the local broker, side by side with a bare kafka-python consumer.

Produces N predictions (20 numeric + 5 categorical features, ~400 bytes, one simulated day in
hourly windows) to a tansu broker on 127.0.0.1, then times in the same run:
  (a) a bare kafka-python group consumer reading the topic and doing nothing;
  (b) `driftwarden run` from start until every window is closed and persisted (SQLite),
      with the label join disabled (predictions only) and enabled (every prediction also
      stored to wait for its label).
Also reports the daemon's peak RSS, for N and N/4 events, to show it does not grow with volume.

    .venv/bin/python bench/throughput.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import sqlalchemy
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftwarden.monitor import storage
from driftwarden.monitor.commands.local_broker import LocalBroker, free_port

NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
HOUR = 3_600_000
START = 1_795_046_400_000  # a past day, so no event is in the future
GROUP_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000}


def frame(n: int, seed: int, shifted: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        values = rng.normal(0.0, 1.0, n)
        data[name] = (values * 1.2 + 0.5 if shifted and i < 5 else values).round(5)
    for name in CATEGORICAL:
        data[name] = np.char.add("v", rng.integers(0, 20, n).astype(str))
    return pl.DataFrame({**data, "prediction": rng.random(n).round(6)})


def events(n: int) -> list[bytes]:
    half = n // 2
    data = pl.concat([frame(half, 1), frame(n - half, 2, shifted=True)])
    data = data.with_columns(
        pl.lit("bench").alias("model"),
        pl.Series("id", np.char.add("p-", np.arange(n).astype(str))),
        pl.Series("ts", START + np.arange(n, dtype=np.int64) * 24 * HOUR // n),
    )
    out = data.select(
        "model", "id", "ts", pl.struct(NUMERIC + CATEGORICAL).alias("features"), "prediction"
    )
    lines = [line for line in out.write_ndjson().encode().split(b"\n") if line]
    # One event a day later moves the watermark past the last window, so it closes.
    sentinel = out.tail(1).with_columns(
        pl.lit(START + 48 * HOUR).alias("ts"), pl.lit("end").alias("id")
    )
    return [*lines, sentinel.write_ndjson().encode().strip()]


def produce(bootstrap: str, topic: str, lines: list[bytes]) -> float:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    started = time.perf_counter()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262_144)
    for line in lines:  # keyed by model: one model's events stay in order on one partition
        producer.send(topic, value=line, key=b"bench")
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def bare_consumer(bootstrap: str, topic: str, n: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"bare-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
        **GROUP_SETTINGS,
    )
    consumer.subscribe([topic])
    seen, first = 0, None
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline:
        records = consumer.poll(timeout_ms=500)
        count = sum(len(batch) for batch in records.values())
        if count and first is None:
            first = time.perf_counter()
        seen += count
    consumer.close()
    assert first is not None and seen == n, (seen, n)
    return time.perf_counter() - first


def run_daemon(
    directory: Path, bootstrap: str, topic: str, labels: bool = True
) -> tuple[float, float, int]:
    """Seconds from the first event folded until all 24 windows are stored; peak RSS in bytes."""
    url = f"sqlite:///{directory / f'{topic}-{labels}.db'}"
    storage.upgrade(storage.create(url))
    config = directory / f"{topic}-{labels}.yaml"
    client = ", ".join(f"{k}: {v}" for k, v in GROUP_SETTINGS.items())
    config.write_text(
        f"""storage: {{url: "{url}"}}
http: {{port: {free_port()}}}
events: {{max_future_skew: 3650d}}
kafka:
  bootstrap_servers: {bootstrap}
  predictions_topic: {topic}
  group_id: daemon-{topic}-{labels}
  client: {{{client}}}
models:
  bench:
    task: binary_classification
    reference: reference.parquet
    features:
      numeric: [{", ".join(NUMERIC)}]
      categorical: [{", ".join(CATEGORICAL)}]
    window: {{kind: time, size: 1h}}
    labels: {{enabled: {"true" if labels else "false"}}}
"""
    )
    engine = sqlalchemy.create_engine(url)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driftwarden.monitor.commands.cli",
            "run",
            "--config",
            str(config),
            "--log-format",
            "json",
        ],
        stderr=(directory / f"{topic}-{labels}.log").open("wb"),
    )
    launched = time.time()
    peak = 0
    try:
        while time.time() - launched < 900:
            time.sleep(0.1)
            peak = max(peak, _rss(process.pid))
            with engine.connect() as connection:
                windows = connection.exec_driver_sql("SELECT count(*) FROM windows").scalar()
            if windows >= 24:
                break
        done = time.time()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        engine.dispose()
    assigned = _assigned_at(directory / f"{topic}-{labels}.log")
    return done - assigned, done - launched, peak


def _assigned_at(log: Path) -> float:
    """When the daemon got its partitions (it starts fetching right after)."""
    for line in log.read_bytes().splitlines():
        entry = orjson.loads(line)
        if entry.get("event") == "rebalance" and "assigned" in entry:
            return datetime.fromisoformat(entry["ts"]).timestamp()
    raise AssertionError(f"no assignment in {log}")


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return 0
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, LocalBroker() as broker:
        directory = Path(scratch)
        os.chdir(directory)
        frame(200_000, 0).write_parquet(directory / "reference.parquet")
        rows = []
        for n in (args.events // 4, args.events):
            lines = events(n)
            topic = f"predictions-{n}"
            seconds = produce(broker.bootstrap, topic, lines)
            size = sum(map(len, lines)) / n
            bare = bare_consumer(broker.bootstrap, topic, len(lines))
            for labels in (False, True):
                daemon, total, peak = run_daemon(directory, broker.bootstrap, topic, labels)
                rows.append((n, size, n / seconds, n / bare, labels, n / daemon, total, peak))
        print(
            f"{'events':>10} {'bytes':>6} {'produce/s':>10} {'bare/s':>10} {'labels':>6} "
            f"{'daemon/s':>10} {'ratio':>6} {'wall s':>7} {'peak RSS MiB':>13}"
        )
        for n, size, produced, bare, labels, daemon, total, peak in rows:
            print(
                f"{n:>10,} {size:>6.0f} {produced:>10,.0f} {bare:>10,.0f} "
                f"{'on' if labels else 'off':>6} {daemon:>10,.0f} {daemon / bare:>6.2f} "
                f"{total:>7.1f} {peak / 2**20:>13.0f}"
            )
        print(
            "bare/s: first record to last; daemon/s: partition assignment until all 24 "
            "windows are persisted; wall s includes start-up and the consumer group join; "
            "labels: the label join disabled or enabled (no labels are produced)."
        )


if __name__ == "__main__":
    main()
