"""Replay throughput and peak memory with a model monitored per segment, against the same
stream without segments.

The demo's synthetic credit model (10 numeric, 2 categorical features) with two more
groups, ``zone`` and ``cohort``, of 10 values each, and a challenger version scoring 30 %
of the champion's requests in shadow (``versions: {split: true}``); ``--events`` champion
predictions over each ``--hours`` count of hourly windows (2 and 24 by default), with
and without ``segments: {attributes: [zone, cohort]}`` (20 segments and two
``__other__``, per version). Folding costs per event, closing per window and segment: a
replay compressing a day of few events per window weighs the closing more than a daemon
at its throughput limit, whose windows hold many events.
Each replay runs in a process of its own so that its peak resident memory
(``ru_maxrss``) is its own, the two configurations taking turns. Prints events/s (all
predictions; median of ``--repeat`` runs), the median peak memory and the ratios.

    .venv/bin/python bench/segments.py [--events 300000] [--repeat 3] [--hours 2 24]
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
HOUR = 3_600_000
ATTRIBUTES = ("zone", "cohort")
VALUES = 10
CHALLENGER = "8"
SHADOW_SHARE = 0.3


def _with_attributes(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``frame`` with ``zone`` and ``cohort`` columns of 10 values each (skewed, so the
    reference's top 10 are all of them)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(VALUES, 0, -1) / np.arange(VALUES, 0, -1).sum()
    return frame.with_columns(
        pl.Series(name, [f"{name}{i}" for i in rng.choice(VALUES, frame.height, p=weights)])
        for name in ATTRIBUTES
    )


def write_inputs(directory: Path, n: int, hours: int) -> tuple[Path, int]:
    """The reference, the predictions and both configurations in ``directory``; the
    predictions' path and number."""
    _with_attributes(synthetic.reference(50_000), 0).write_parquet(directory / "reference.parquet")
    span = hours * HOUR
    stream = synthetic.Stream(n=n, start=START, span=span, drift_from=START + span // 2)
    champion = _with_attributes(synthetic.events(stream), 1)
    rng = np.random.default_rng(2)
    shadow = champion.filter(pl.Series(rng.random(champion.height) < SHADOW_SHARE))
    shadow = shadow.with_columns(model_version=pl.lit(CHALLENGER))
    events = pl.concat([champion, shadow]).sort("ts", maintain_order=True)
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
    plain += "    versions: {split: true}\n"
    (directory / "plain.yaml").write_text(plain)
    segmented = plain + f"    segments: {{attributes: [{', '.join(ATTRIBUTES)}]}}\n"
    (directory / "segments.yaml").write_text(segmented)
    return path, events.height


def run_once(config: Path, predictions: Path, out: Path) -> None:
    """One replay (in this process): prints its seconds and peak memory (MiB) as JSON."""
    seconds = replay(configuration.load(config), predictions, out).seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def run(config: Path, predictions: Path, out: Path) -> dict[str, float]:
    """One replay in a process of its own: its seconds and peak memory."""
    command = [sys.executable, __file__, "--run", str(config), str(predictions), str(out)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def medians(runs: list[dict[str, float]]) -> tuple[float, float]:
    """Median seconds and median peak memory (MiB)."""
    return (
        statistics.median(r["seconds"] for r in runs),
        statistics.median(r["peak_mib"] for r in runs),
    )


def compare(directory: Path, events: int, hours: int, repeat: int) -> None:
    """Replay the stream of ``events`` champion predictions over ``hours`` windows with
    and without segments, taking turns; print the medians and ratios."""
    predictions, total = write_inputs(directory, events, hours)
    print(
        f"{total:,} predictions ({events:,} champion, the rest a shadow version) in {hours} "
        f"hourly windows ({total // hours:,} a window), 2 segment attributes of {VALUES} values"
    )
    out = directory / "out"
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "segments": []}
    for _ in range(repeat):
        for name in runs:
            runs[name].append(run(directory / f"{name}.yaml", predictions, out))
    plain, segmented = medians(runs["plain"]), medians(runs["segments"])
    for name, (seconds, peak) in (("no segments", plain), ("segments", segmented)):
        print(f"  {name:<12}: {total / seconds:>10,.0f} events/s, peak {peak:>7,.0f} MiB (medians)")
    print(f"  throughput segments / none: {plain[0] / segmented[0]:.2f}")
    print(f"  peak memory segments / none: {segmented[1] / plain[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--hours", type=int, nargs="+", default=[2, 24], help="hourly windows of each stream"
    )
    parser.add_argument("--run", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_once(*args.run)
        return
    for hours in args.hours:
        with tempfile.TemporaryDirectory() as scratch:
            compare(Path(scratch), args.events, hours, args.repeat)


if __name__ == "__main__":
    main()
