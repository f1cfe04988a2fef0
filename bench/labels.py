"""The label join at scale: 5,000,000 waiting predictions on SQLite and PostgreSQL.

In one run: the rate at which predictions are stored as waiting and at which labels join
them (through the daemon's own join code, in checkpoint-sized transactions), the database
size, the rate of a bare kafka-python consumer reading the same kind of events from the
local broker, and the daemon's ingestion rate with labels enabled and disabled. Labels
join (under the default ``policy: first``) in random order (each looks its prediction up
on a page of its own: the worst case) and in the order of their predictions (as labels
with similar delays arrive). Both with ids that grow with time ("p-1234") and with random
ids (16 hex digits, as UUIDs are). And how long the in-memory id index takes to load
from the table (as on the first batch after a start).

    .venv/bin/python bench/labels.py [--pending 5000000] [--ids sequential random]
        [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import sqlalchemy

sys.path.insert(0, str(Path(__file__).parent))
import throughput

from driftwarden.detectors.stream import StreamDetector
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.local_broker import LocalBroker
from driftwarden.monitor.config.detectors import build_concept_detector
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages
from driftwarden.monitor.labels.join import ModelLabels
from driftwarden.monitor.labels.waiting import WaitingPredictions
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.windows.profile import fit, read_reference

BATCH = 20_000
SHAPES = ["sequential", "random"]
HOUR = 3_600_000


def model_labels(directory: Path, url: str) -> tuple[ModelLabels, sqlalchemy.Engine]:
    reference = directory / "reference.parquet"
    synthetic.reference(20_000).write_parquet(reference)
    loaded = configuration.parse(synthetic.config_yaml(str(reference), url), environ={})
    model = loaded.models[synthetic.MODEL]
    frame, content = read_reference(model.reference)
    profile = fit(synthetic.MODEL, model, frame, content)
    engine = storage.create(url)
    storage.upgrade(engine)
    detector: StreamDetector = build_concept_detector(model.concept_drift, "concept_drift")
    labels = ModelLabels(synthetic.MODEL, model, profile, detector, JoinStore(engine.dialect.name))
    return labels, engine


def identifiers(numbers: np.ndarray, shape: str) -> np.ndarray:
    """Prediction ``numbers`` as ids: "sequential" ("p-1234") or "random" (a bijective hash)."""
    if shape == "sequential":
        return np.char.add("p-", numbers.astype(str))
    mixed = (numbers.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(
        0xBF58476D1CE4E5B9
    )
    mixed ^= mixed >> np.uint64(31)
    return np.char.mod("%016x", mixed)


def predictions(n: int, start: int, rng: np.random.Generator, ids: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_row": np.arange(n),
            "id": identifiers(np.arange(start, start + n), ids),
            "ts": 1_795_046_400_000 + np.arange(start, start + n, dtype=np.int64) * 10,
            "prediction": rng.random(n).round(6),
            "grp:sex": rng.choice(["F", "M"], n),
        }
    )


def join_store(url: str, pending: int, directory: Path, ids: str) -> dict[str, float]:
    labels, engine = model_labels(directory, url)
    rng = np.random.default_rng(0)
    stored_seconds = 0.0
    with (
        engine.connect() as connection,
        storage.WalCheckpointer(engine).start(connection),
    ):
        for start in range(0, pending, BATCH):
            frame = predictions(min(BATCH, pending - start), start, rng, ids)
            began = time.perf_counter()
            with labels.storing(connection, frame, frame["ts"] // HOUR * HOUR, 0):
                pass
            connection.commit()
            stored_seconds += time.perf_counter() - began
        order = rng.permutation(pending)
        fifth = pending // 5
        messages = Messages([b""] * BATCH, "labels", 0, np.arange(BATCH))
        joined = {
            "random": join_labels(labels, connection, order[:fifth], messages, rng, ids),
            "in time": join_labels(
                labels, connection, np.sort(order[fifth : 2 * fifth]), messages, rng, ids
            ),
        }
        began = time.perf_counter()
        WaitingPredictions(labels.store, labels.name).find(connection, pl.Series(["p-0"]))
        loaded = time.perf_counter() - began
    size = database_size(engine, url)
    engine.dispose()
    print(
        f"{engine.dialect.name}, {ids} ids: stored in {stored_seconds:.1f} s, joined in "
        + ", ".join(f"{seconds:.1f} s ({kind})" for kind, seconds in joined.items())
        + f"; id index loaded in {loaded:.1f} s",
        flush=True,
    )
    return {
        "stored/s": pending / stored_seconds,
        "joined/s random": fifth / joined["random"],
        "joined/s in time": fifth / joined["in time"],
        "index load s": loaded,
        "MiB": size / 2**20,
        "bytes/row": size / pending,
    }


def join_labels(
    labels: ModelLabels,
    connection: sqlalchemy.Connection,
    chosen: np.ndarray,
    messages: Messages,
    rng: np.random.Generator,
    ids: str,
) -> float:
    """Seconds to join labels of the ``chosen`` predictions, in batches, in that order."""
    seconds = 0.0
    for start in range(0, len(chosen), BATCH):
        part = chosen[start : start + BATCH]
        frame = pl.DataFrame(
            {
                "_row": np.arange(len(part)),
                "id": identifiers(part, ids),
                "ts": 1_795_046_400_000 + part.astype(np.int64) * 10 + 60_000,
                "label": (rng.random(len(part)) < 0.3).astype(np.float64),
            }
        )
        began = time.perf_counter()
        labels.add_labels(connection, frame, DecodedBatch(messages, {}), 0)
        labels.flush(connection)
        connection.commit()
        seconds += time.perf_counter() - began
    return seconds


def database_size(engine: sqlalchemy.Engine, url: str) -> float:
    if engine.dialect.name == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with engine.connect() as connection:
        return float(
            connection.exec_driver_sql("SELECT pg_total_relation_size('label_join')").scalar()
        )


def on_postgres(server: str, pending: int, directory: Path, ids: str) -> dict[str, float]:
    """``join_store`` in a schema of its own, dropped afterwards."""
    schema = f"bench_labels_{ids}_{int(time.time())}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"{server}?options=-csearch_path%3D{schema}"
        return join_store(url, pending, directory, ids)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=5_000_000)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--ids", choices=["sequential", "random"], nargs="+", default=SHAPES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        rows = {}
        for ids in args.ids:
            url = f"sqlite:///{directory / f'join-{ids}.db'}"
            rows[f"SQLite, {ids} ids"] = join_store(url, args.pending, directory, ids)
        for ids in args.ids:
            row = on_postgres(args.postgres, args.pending, directory, ids)
            rows[f"PostgreSQL, {ids} ids"] = row
        with LocalBroker() as broker:
            os.chdir(directory)
            throughput.frame(200_000, 0).write_parquet(directory / "reference.parquet")
            lines = throughput.events(args.events)
            topic = "labels-bench"
            throughput.produce(broker.bootstrap, topic, lines)
            bare = args.events / throughput.bare_consumer(broker.bootstrap, topic, len(lines))
            rates = {}
            for enabled in (False, True):
                seconds, _, _ = throughput.run_daemon(
                    directory, broker.bootstrap, topic, labels=enabled
                )
                rates[enabled] = args.events / seconds
    print(
        f"join store, {args.pending:,} waiting predictions; labels for a fifth of them in "
        "random order, then for another fifth in the order of their predictions"
    )
    print(
        f"{'database':<30} {'stored/s':>10} {'joined/s random':>16} {'joined/s in time':>17} "
        f"{'index load s':>13} {'MiB':>8} {'bytes/row':>10}"
    )
    for name, row in rows.items():
        print(
            f"{name:<30} {row['stored/s']:>10,.0f} {row['joined/s random']:>16,.0f} "
            f"{row['joined/s in time']:>17,.0f} {row['index load s']:>13.1f} "
            f"{row['MiB']:>8,.0f} {row['bytes/row']:>10,.0f}"
        )
    print(f"bare kafka-python consumer, same run: {bare:,.0f} events/s")
    print(
        f"daemon ingestion, {args.events:,} events: labels off {rates[False]:,.0f}/s, "
        f"labels on {rates[True]:,.0f}/s ({rates[True] / rates[False]:.0%} of off)"
    )


if __name__ == "__main__":
    main()
