"""Replay throughput: 1,000,000 JSON-lines prediction events through `driftwarden replay`.

20 numeric and 5 categorical features (~400-byte events), hourly windows over one day,
5 numeric and 1 categorical feature shifted in the second half. Prints events/s end to end
(reading, decoding, windows, detectors, SQLite) and the decode-only rate of the same file.

    .venv/bin/python bench/replay.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.files import read_events

NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
START = 1_795_651_200_000
DAY = 86_400_000


def columns(n: int, rng: np.random.Generator, shifted: bool) -> dict[str, np.ndarray]:
    data = {}
    for i, name in enumerate(NUMERIC):
        values = rng.normal(0.0, 1.0, n)
        if shifted and i < 5:
            values = values * 1.2 + 0.5
        data[name] = values.round(5)
    for i, name in enumerate(CATEGORICAL):
        p = np.full(20, 0.05)
        if shifted and i == 0:
            p = np.r_[np.full(10, 0.02), np.full(10, 0.08)]
        data[name] = np.char.add("v", rng.choice(20, n, p=p).astype(str))
    return data


def write_inputs(directory: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    reference = pl.DataFrame({**columns(200_000, rng, False), "prediction": rng.random(200_000)})
    reference.write_parquet(directory / "reference.parquet")
    half = n // 2
    parts = [columns(half, rng, False), columns(n - half, rng, True)]
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    frame = pl.DataFrame(
        {
            "model": ["bench"] * n,
            "id": np.char.add("p-", np.arange(n).astype(str)),
            "ts": START + np.arange(n, dtype=np.int64) * DAY // n,
            **data,
            "prediction": rng.random(n).round(6),
        }
    )
    events = frame.select(
        "model", "id", "ts", pl.struct(NUMERIC + CATEGORICAL).alias("features"), "prediction"
    )
    path = directory / "predictions.jsonl"
    events.write_ndjson(path)
    config = directory / "config.yaml"
    config.write_text(
        f"""models:
  bench:
    task: binary_classification
    reference: reference.parquet
    features:
      numeric: [{", ".join(NUMERIC)}]
      categorical: [{", ".join(CATEGORICAL)}]
    window: {{kind: time, size: 1h}}
"""
    )
    return config, path


def write_demo_inputs(directory: Path, n: int) -> tuple[Path, Path]:
    """The demo's synthetic credit model: 10 numeric, 2 categorical features and a group."""
    synthetic.reference(50_000).write_parquet(directory / "reference.parquet")
    stream = synthetic.Stream(n=n, start=START, span=DAY, drift_from=START + DAY // 2)
    path = directory / "predictions.jsonl"
    path.write_bytes(b"\n".join(synthetic.prediction_lines(synthetic.events(stream))) + b"\n")
    config = directory / "config.yaml"
    config.write_text(synthetic.config_yaml("reference.parquet", "sqlite://"))
    return config, path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--shape",
        choices=("wide", "demo"),
        default="wide",
        help="wide: 20 numeric + 5 categorical (~430 bytes); demo: the demo model (~330 bytes)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        if args.shape == "wide":
            config_path, predictions = write_inputs(directory, args.events)
        else:
            config_path, predictions = write_demo_inputs(directory, args.events)
        size = predictions.stat().st_size
        print(f"{args.events:,} events, {size / args.events:.0f} bytes each")
        loaded = configuration.load(config_path)
        decode = decoder(loaded, "prediction")
        decode_times, replay_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            for messages in read_events(predictions, loaded, "prediction"):
                decode.decode(messages)
            decode_times.append(time.perf_counter() - started)
            outcome = replay(loaded, predictions, directory / "out")
            replay_times.append(outcome.seconds)
        decode_rate = args.events / statistics.median(decode_times)
        replay_rate = args.events / statistics.median(replay_times)
        print(f"read + decode only : {decode_rate:>10,.0f} events/s (median of {args.repeat})")
        print(f"replay end to end  : {replay_rate:>10,.0f} events/s (median of {args.repeat})")
        print(
            f"windows {outcome.windows}, results {len(outcome.results)}, "
            f"drifted {sorted({r.feature for r in outcome.results.values() if r.drift})}"
        )


if __name__ == "__main__":
    main()
