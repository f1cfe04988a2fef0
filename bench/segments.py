"""Replay throughput and peak memory with a model monitored per segment, against the same
stream without segments.

The demo's synthetic credit model (10 numeric, 2 categorical features) with two more
groups, ``zone`` and ``cohort``, of 10 values each; hourly windows over one day,
``--events`` predictions, with and without ``segments: {attributes: [zone, cohort]}``
(20 segments and two ``__other__``). Each replay runs in a process of its own so that its
peak resident memory (``ru_maxrss``) is its own. Prints events/s (median of ``--repeat``
runs), the median peak memory and the ratios.

    .venv/bin/python bench/segments.py [--events 300000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay

START = 1_795_651_200_000
DAY = 86_400_000
ATTRIBUTES = ("zone", "cohort")
VALUES = 10


def _with_attributes(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``frame`` with ``zone`` and ``cohort`` columns of 10 values each (skewed, so the
    reference's top 10 are all of them)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(VALUES, 0, -1) / np.arange(VALUES, 0, -1).sum()
    return frame.with_columns(
        pl.Series(name, [f"{name}{i}" for i in rng.choice(VALUES, frame.height, p=weights)])
        for name in ATTRIBUTES
    )


def write_inputs(directory: Path, n: int) -> Path:
    """The reference, the predictions and both configurations in ``directory``."""
    _with_attributes(synthetic.reference(50_000), 0).write_parquet(directory / "reference.parquet")
    stream = synthetic.Stream(n=n, start=START, span=DAY, drift_from=START + DAY // 2)
    events = _with_attributes(synthetic.events(stream), 1)
    groups = [*synthetic.GROUPS, *ATTRIBUTES]
    lines = events.select(
        "model",
        "model_version",
        "id",
        "ts",
        pl.struct(*synthetic.NUMERIC, *synthetic.CATEGORICAL).alias("features"),
        "prediction",
        pl.struct(groups).alias("groups"),
    ).write_ndjson()
    path = directory / "predictions.jsonl"
    path.write_text(lines)
    plain = synthetic.config_yaml("reference.parquet", "sqlite://").replace(
        f"    groups: [{', '.join(synthetic.GROUPS)}]", f"    groups: [{', '.join(groups)}]"
    )
    (directory / "plain.yaml").write_text(plain)
    segmented = plain + f"    segments: {{attributes: [{', '.join(ATTRIBUTES)}]}}\n"
    (directory / "segments.yaml").write_text(segmented)
    return path


def run_once(config: Path, predictions: Path, out: Path) -> None:
    """One replay (in this process): prints its seconds and peak memory (MiB) as JSON."""
    seconds = replay(configuration.load(config), predictions, out).seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def measure(config: Path, predictions: Path, out: Path, repeat: int) -> tuple[float, float]:
    """Median seconds and median peak memory (MiB) of ``repeat`` replays, each in a
    process of its own."""
    runs = []
    for _ in range(repeat):
        command = [sys.executable, __file__, "--run", str(config), str(predictions), str(out)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    seconds = statistics.median(run["seconds"] for run in runs)
    return seconds, statistics.median(run["peak_mib"] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_once(*args.run)
        return
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        predictions = write_inputs(directory, args.events)
        print(f"{args.events:,} events, 2 segment attributes of {VALUES} values each")
        out = directory / "out"
        plain = measure(directory / "plain.yaml", predictions, out, args.repeat)
        segmented = measure(directory / "segments.yaml", predictions, out, args.repeat)
        for name, (seconds, peak) in (("no segments", plain), ("segments", segmented)):
            rate = args.events / seconds
            print(f"{name:<12}: {rate:>10,.0f} events/s, peak {peak:>7,.0f} MiB (medians)")
        print(f"throughput segments / none: {plain[0] / segmented[0]:.2f}")
        print(f"peak memory segments / none: {segmented[1] / plain[1]:.2f}")


if __name__ == "__main__":
    main()
