"""One daemon process on kafka-python and on confluent-kafka, with the bare consumers of both
libraries, on the same stream in the same run; and the CPU cost of several instances.

Produces N predictions (bench/throughput.py's events: 20 numeric + 5 categorical features,
one simulated day in hourly windows, or in windows of ``--window-hours``) to a tansu broker
on 127.0.0.1, then, for each of ``--repeats`` rounds, times:
  (a) a bare kafka-python and a bare confluent-kafka group consumer reading the topic and
      doing nothing (first record to last);
  (b) `driftwarden run` with ``kafka.library: kafka-python`` and ``confluent``, from the
      partition assignment until every window is persisted (SQLite, label join disabled).
Prints the medians and the ratios between them. With ``--instances`` (default 1 2 4) it
also runs that many daemons on confluent-kafka in one group (PostgreSQL) over a topic of 4
partitions carrying one model spread over them (``spread: true``, events keyed round-robin),
and reports the CPU-seconds the instances spent together per million events after
start-up: the per-instance cost a fleet on more machines adds up from. On this 2-core
machine, more instances than cores cannot run faster in wall time, so no total throughput
is measured for them. ``--instances-only`` skips the single-process part.

    .venv/bin/python bench/scale.py [--events 1000000] [--repeats 3] [--instances 1 2 4]
                                    [--window-hours 1] [--profile FILE] [--stages FILE]

``--profile FILE`` writes cProfiles of one confluent run's threads; ``--stages FILE`` times
each batch's poll, decoding and fold in one run of each daemon and prints where the time
went (a polling thread waiting for records while the fold worker idles is a starved
daemon: how librdkafka's fetch backoff was found).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import confluent_kafka
import sqlalchemy
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from throughput import CATEGORICAL, NUMERIC, _assigned_at, events, frame

from driftwarden.monitor import storage
from driftwarden.monitor.commands.local_broker import LocalBroker, free_port

GROUP = {
    "kafka-python": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
    "confluent": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 2000},
}
DAY_HOURS = 24
PROFILED = """
import cProfile, pstats, sys, threading
from driftwarden.monitor.commands.cli import main
from driftwarden.monitor.service import daemon
out, sys.argv = sys.argv[1], ["driftwarden", *sys.argv[2:]]
work = daemon.Daemon._work
def profiled(self):
    profile = cProfile.Profile()
    profile.enable()
    try:
        work(self)
    finally:
        profile.disable()
        profile.dump_stats(out + ".fold")
daemon.Daemon._work = profiled
decode, decoding = daemon.Daemon._decode, {}
def decode_profiled(self, records):
    profile = decoding.setdefault(threading.get_ident(), cProfile.Profile())
    profile.enable()
    try:
        return decode(self, records)
    finally:
        profile.disable()
daemon.Daemon._decode = decode_profiled
try:
    cProfile.run("main()", out + ".poll")
finally:
    if decoding:
        pstats.Stats(*decoding.values()).dump_stats(out + ".decode")
"""
"""``driftwarden run`` with cProfile on the polling thread, the decoding threads (one profile
of both) and the fold worker."""
STAGED = """
import atexit, json, sys, time
from driftwarden.monitor.commands.cli import main
from driftwarden.monitor.service import daemon
out, sys.argv = sys.argv[1], ["driftwarden", *sys.argv[2:]]
spans = []
def timed(stage, method):
    def run(self, *args):
        began, cpu = time.perf_counter(), time.thread_time()
        result = method(self, *args)
        count = sum(map(len, result)) if stage == "poll" else 0
        spans.append((stage, began, time.perf_counter(), time.thread_time() - cpu, count))
        return result
    return run
for stage, name in (("poll", "_poll_batch"), ("decode", "_decode"), ("fold", "_process")):
    setattr(daemon.Daemon, name, timed(stage, getattr(daemon.Daemon, name)))
atexit.register(lambda: json.dump(spans, open(out, "w")))
main()
"""
"""``driftwarden run`` timing each polled batch (``_poll_batch``), its decoding and its fold
(``_process``): wall-clock and thread CPU seconds, and how many records each poll returned."""


def produce(bootstrap: str, topic: str, lines: list[bytes], *, spread: bool = False) -> None:
    """``lines`` to a 4-partition topic: all on one partition (keyed by the model), or
    spread round-robin over the four."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262_144)
    for i, line in enumerate(lines):
        if spread:
            producer.send(topic, value=line, partition=i % 4)
        else:
            producer.send(topic, value=line, key=b"bench")
    producer.flush()
    producer.close()


def bare_kafka_python(bootstrap: str, topic: str, n: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"bare-kp-{topic}-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
        **GROUP["kafka-python"],
    )
    consumer.subscribe([topic])
    seen, first = 0, None
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline:
        count = sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        if count and first is None:
            first = time.perf_counter()
        seen += count
    consumer.close()
    assert first is not None and seen == n, (seen, n)
    return time.perf_counter() - first


def bare_confluent(bootstrap: str, topic: str, n: int) -> float:
    """Seconds a bare confluent-kafka consumer takes, first record to last. It drains
    librdkafka's local queue faster than the broker fills it, so it fetches again after 10
    ms rather than librdkafka's default second (``fetch.queue.backoff.ms``): with the
    default, it waited on its next fetch for about a second in most runs, and read 150k
    events/s where it otherwise reads about 600k."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bare-ck-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            **GROUP["confluent"],
        }
    )
    consumer.subscribe([topic])
    seen, first = 0, None
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline:
        messages = consumer.consume(5000, 0.5)
        if messages and first is None:
            first = time.perf_counter()
        seen += sum(1 for m in messages if m.error() is None)
    consumer.close()
    assert first is not None and seen == n, (seen, n)
    return time.perf_counter() - first


def config_text(
    url: str, bootstrap: str, topic: str, group: str, library: str, spread: bool, hours: int = 1
) -> str:
    client = ", ".join(f"{k}: {v}" for k, v in GROUP[library].items())
    idle = ", idle_timeout: 2s" if spread else ""
    window = f"{{kind: time, size: {hours}h{idle}}}"
    return f"""storage: {{url: "{url}"}}
http: {{port: {free_port()}}}
events: {{max_future_skew: 3650d}}
kafka:
  bootstrap_servers: {bootstrap}
  predictions_topic: {topic}
  group_id: {group}
  library: {library}
  client: {{{client}}}
models:
  bench:
    task: binary_classification
    reference: reference.parquet
    features:
      numeric: [{", ".join(NUMERIC)}]
      categorical: [{", ".join(CATEGORICAL)}]
    window: {window}
    labels: {{enabled: false}}
    spread: {str(spread).lower()}
"""


def run_daemons(
    directory: Path,
    bootstrap: str,
    topic: str,
    library: str,
    instances: int = 1,
    spread: bool = False,
    instrument: tuple[str, Path] | None = None,
    postgres: str | None = None,
    hours: int = 1,
) -> tuple[float, float]:
    """Start ``instances`` daemons in one group; seconds from the first assignment until all
    windows are stored, and the CPU-seconds the daemons spent in all after starting up
    (imports, reference profiles: a fixed cost per process)."""
    name = f"{topic}-{library}-{instances}-{time.monotonic_ns()}"
    url = f"sqlite:///{directory / f'{name}.db'}" if postgres is None else _schema(postgres)
    engine = sqlalchemy.create_engine(url)
    storage.upgrade(storage.create(url))
    command = [sys.executable]
    if instrument is not None:
        script, out = instrument
        command += ["-c", script, str(out)]
    else:
        command += ["-m", "driftwarden.monitor.commands.cli"]
    command += ["run", "--log-format", "json"]
    processes, logs = [], []
    for i in range(instances):
        config = directory / f"{name}-{i}.yaml"
        group = f"daemon-{name}"
        config.write_text(config_text(url, bootstrap, topic, group, library, spread, hours))
        logs.append(directory / f"{name}-{i}.log")
        processes.append(
            subprocess.Popen([*command, "--config", str(config)], stderr=logs[-1].open("wb"))
        )
    launched = time.time()
    cpu = 0.0
    started: dict[int, float] = {}
    try:
        while time.time() - launched < 900:
            time.sleep(0.1)
            for i, process in enumerate(processes):
                if i not in started and b'"started"' in logs[i].read_bytes():
                    started[i] = _cpu_seconds(process.pid)
            with engine.connect() as connection:
                windows = connection.exec_driver_sql("SELECT count(*) FROM windows").scalar()
            cpu = sum(_cpu_seconds(p.pid) for p in processes) - sum(started.values())
            if windows >= DAY_HOURS // hours:
                break
        done = time.time()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
        engine.dispose()
    first = min(_assigned_at(log) for log in logs if b'"assigned"' in log.read_bytes())
    return done - first, cpu


def _schema(server: str) -> str:
    """A fresh schema on the PostgreSQL server, as a database URL."""
    schema = f"bench_{time.monotonic_ns()}"
    engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    return f"{server}?options=-csearch_path%3D{schema}"


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def single(
    args: argparse.Namespace, bootstrap: str, topic: str, directory: Path, lines: list[bytes]
) -> None:
    """One process on each library, with the bare consumers, in ``args.repeats`` rounds."""
    n = len(lines)
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        rates.setdefault("bare kafka-python", []).append(n / bare_kafka_python(bootstrap, topic, n))
        rates.setdefault("bare confluent", []).append(n / bare_confluent(bootstrap, topic, n))
        for library in ("kafka-python", "confluent"):
            seconds, spent = run_daemons(
                directory, bootstrap, topic, library, hours=args.window_hours
            )
            rates.setdefault(f"daemon {library}", []).append(n / seconds)
            cpu.setdefault(library, []).append(spent / n * 1e6)
    median = {what: statistics.median(values) for what, values in rates.items()}
    size = sum(map(len, lines)) / n
    windows = DAY_HOURS // args.window_hours
    print(f"{n:,} events of {size:.0f} bytes in {windows} windows, {args.repeats} rounds")
    for what, values in rates.items():
        runs = " ".join(f"{v:,.0f}" for v in values)
        print(f"  {what:<20} median {median[what]:>10,.0f} events/s   ({runs})")
    print(
        "  daemon confluent / daemon kafka-python: "
        f"{median['daemon confluent'] / median['daemon kafka-python']:.2f}\n"
        "  daemon confluent / bare confluent:      "
        f"{median['daemon confluent'] / median['bare confluent']:.2f}\n"
        "  daemon kafka-python / bare kafka-python: "
        f"{median['daemon kafka-python'] / median['bare kafka-python']:.2f}"
    )
    for library, values in cpu.items():
        print(
            f"  daemon {library:<13} median {statistics.median(values):5.1f} CPU-s per "
            "million events after start-up"
        )
    if args.profile is not None:
        run_daemons(directory, bootstrap, topic, "confluent", instrument=(PROFILED, args.profile))
        print(f"  profile of one confluent run: {args.profile}.poll, .decode, .fold")
    if args.stages is not None:
        for library in ("kafka-python", "confluent"):
            out = args.stages.with_name(f"{args.stages.name}.{library}")
            run_daemons(directory, bootstrap, topic, library, instrument=(STAGED, out))
            print_stages(library, out)


def print_stages(library: str, spans_file: Path) -> None:
    """Where one daemon's time went, from the first poll that returned records to the end of
    the last fold: each stage's wall-clock and CPU seconds (decoding runs on two threads),
    the polls that waited for records, and the fold worker's time without a batch."""
    spans = json.loads(spans_file.read_text())
    start = min(began for stage, began, _, _, count in spans if stage == "poll" and count)
    end = max(ended for stage, _, ended, _, _ in spans if stage == "fold")
    within = [  # (stage, wall seconds within the run, CPU seconds)
        (stage, min(ended, end) - max(began, start), cpu)
        for stage, began, ended, cpu, _ in spans
        if ended > start and began < end
    ]
    print(f"  stages of the {library} daemon over {end - start:.2f} s (seconds):")
    for name in ("poll", "decode", "fold"):
        of = [span for span in within if span[0] == name]
        wall = sum(span[1] for span in of)
        cpu = sum(span[2] for span in of)
        print(f"    {name:<7} {len(of):4d} calls  wall {wall:6.2f}  CPU {cpu:6.2f}")
    waits = [wall for stage, wall, cpu in within if stage == "poll" and cpu < wall / 10]
    folding = sum(wall for stage, wall, _ in within if stage == "fold")
    print(
        f"    {len(waits)} polls mostly waited for records (CPU under a tenth of their wall "
        f"time): {sum(waits):.2f} s; the fold worker had no batch for {end - start - folding:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--instances", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="the server the instances share (several processes need PostgreSQL)",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of one confluent run")
    parser.add_argument(
        "--stages",
        type=Path,
        help="time each batch's poll, decoding and fold in one run of each daemon: writes "
        "FILE.kafka-python and FILE.confluent and prints where the time went",
    )
    parser.add_argument("--instances-only", action="store_true")
    parser.add_argument(
        "--window-hours",
        type=int,
        default=1,
        choices=[h for h in range(1, DAY_HOURS + 1) if DAY_HOURS % h == 0],
        help="the window size of the single-process runs: the day's events in fewer, larger "
        "windows cost less closing per event",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, LocalBroker() as broker:
        directory = Path(scratch)
        os.chdir(directory)
        frame(200_000, 0).write_parquet(directory / "reference.parquet")
        lines = events(args.events)
        topic = "predictions"
        produce(broker.bootstrap, topic, lines)
        if not args.instances_only:
            single(args, broker.bootstrap, topic, directory, lines)
        if args.instances:
            instances(args, broker.bootstrap, topic, directory, lines)


def instances(
    args: argparse.Namespace, bootstrap: str, topic: str, directory: Path, lines: list[bytes]
) -> None:
    """CPU-seconds per million events of 1, 2, 4 instances on one model spread over four
    partitions, beside one instance on the model unspread (on one partition), in
    ``args.repeats`` rounds."""
    n = len(lines)
    spread = "predictions-spread"
    produce(bootstrap, spread, lines, spread=True)
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        _, cpu = run_daemons(directory, bootstrap, topic, "confluent", postgres=args.postgres)
        runs.setdefault("1 instance, not spread", []).append(cpu / n * 1e6)
        for count in args.instances:
            _, cpu = run_daemons(
                directory,
                bootstrap,
                spread,
                "confluent",
                count,
                spread=True,
                postgres=args.postgres,
            )
            runs.setdefault(f"{count} instance(s), spread", []).append(cpu / n * 1e6)
    print(
        "confluent, PostgreSQL, one model (spread: over 4 partitions): CPU-seconds per "
        f"million events after start-up (median of {args.repeats})"
    )
    for what, values in runs.items():
        print(
            f"  {what:<24} {statistics.median(values):6.1f}   "
            f"({' '.join(f'{v:.1f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
