"""Replay throughput with a model's versions monitored separately, against the same stream
with them mixed.

The demo's synthetic credit model (10 numeric, 2 categorical features, a group), hourly
windows over one day, ``--events`` predictions split at random between ``--versions``
versions (A/B traffic), with and without ``versions.split``. Prints events/s end to end
(median of ``--repeat`` runs) and the ratio.

    .venv/bin/python bench/versions.py [--events 500000] [--versions 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay

START = 1_795_651_200_000
DAY = 86_400_000


def write_inputs(directory: Path, n: int, versions: int) -> tuple[Path, Path]:
    """The reference, the predictions (versions ``v0`` … at random) and the configuration
    with versions split (the one without is the same file less its last line)."""
    synthetic.reference(50_000).write_parquet(directory / "reference.parquet")
    stream = synthetic.Stream(n=n, start=START, span=DAY, drift_from=START + DAY // 2)
    rng = np.random.default_rng(1)
    names = np.array([f"v{i}" for i in range(versions)])
    events = synthetic.events(stream).with_columns(
        model_version=pl.Series(names[rng.integers(0, versions, n)])
    )
    path = directory / "predictions.jsonl"
    path.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    mixed = directory / "mixed.yaml"
    mixed.write_text(synthetic.config_yaml("reference.parquet", "sqlite://"))
    split = directory / "split.yaml"
    split.write_text(mixed.read_text() + "    versions: {split: true}\n")
    return directory, path


def rate(config: Path, predictions: Path, out: Path, n: int, repeat: int) -> float:
    """Median events/s of ``repeat`` replays."""
    loaded = configuration.load(config)
    seconds = [replay(loaded, predictions, out).seconds for _ in range(repeat)]
    return n / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory, predictions = write_inputs(Path(scratch), args.events, args.versions)
        print(f"{args.events:,} events, {args.versions} versions at random")
        mixed = rate(
            directory / "mixed.yaml", predictions, directory / "out", args.events, args.repeat
        )
        split = rate(
            directory / "split.yaml", predictions, directory / "out", args.events, args.repeat
        )
        print(f"versions mixed : {mixed:>10,.0f} events/s (median of {args.repeat})")
        print(f"versions split : {split:>10,.0f} events/s (median of {args.repeat})")
        print(f"split / mixed  : {split / mixed:.2f}")


if __name__ == "__main__":
    main()
