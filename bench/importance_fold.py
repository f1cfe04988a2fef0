"""Cost of feature importance in the daemon's fold: ``summarize`` with and without it.

Run by hand (not a test); it prints its figures::

    .venv/bin/python bench/importance_fold.py                  # 20,000-row batches, 51 rounds
    .venv/bin/python bench/importance_fold.py --rows 100000 --repeat 21

Setup: a binary classifier with 20 numeric features (normal, lognormal,
Poisson, uniform; one with 1 % missing) and 5 categorical features (~20
categories each), a score per row; its profile fitted on a reference of
``--rows`` rows with the default settings (importance on, deciles), and one
batch of ``--rows`` events decoded by the daemon's decoder (not timed).

(a) ``summarize`` on the profile without its importance part: the fold of
    every other window summary (fine bins, categories, scores, versions).
(b) ``summarize`` on the profile as fitted: (a) plus the bucket codes and
    the joint counts of feature and prediction buckets.

Each round runs (a) and (b) back to back, in alternating order. Times are CPU
seconds (``time.process_time``); the figures are medians over ``--repeat``
rounds, and the extra cost is the median over rounds of (b) minus (a) in
the same round, as a percentage of (a)'s median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.windows.profile import fit, read_reference
from driftwarden.monitor.windows.summary import summarize

N_NUMERIC = 20
N_CATEGORICAL = 5
N_CATEGORIES = 20
SEED = 20261204
START = 1_795_651_200_000


def rows(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """Features of four numeric shapes, categories with skewed frequencies, and a score."""
    columns: dict[str, np.ndarray] = {}
    for f in range(N_NUMERIC):
        shape = f % 4
        if shape == 0:
            values = rng.normal(size=n)
        elif shape == 1:
            values = rng.lognormal(size=n)
        elif shape == 2:
            values = rng.poisson(3.0, size=n).astype(np.float64)
        else:
            values = rng.uniform(size=n)
        if f == 0:
            values[rng.random(n) < 0.01] = np.nan
        columns[f"n{f}"] = values
    weights = 1.0 / np.arange(1, N_CATEGORIES + 1)
    for c in range(N_CATEGORICAL):
        codes = rng.choice(N_CATEGORIES, size=n, p=weights / weights.sum())
        columns[f"c{c}"] = np.array([f"v{code}" for code in codes], dtype=object)
    logit = columns["n1"] - 1.5 + 0.5 * columns["n4"]
    columns["prediction"] = 1.0 / (1.0 + np.exp(-logit))
    return pl.DataFrame(columns)


def setup(directory: Path, n: int) -> tuple:
    """The fitted profile and one decoded batch of ``n`` events."""
    rng = np.random.default_rng(SEED)
    reference = directory / "reference.parquet"
    rows(n, rng).write_parquet(reference)
    numeric = [f"n{f}" for f in range(N_NUMERIC)]
    categorical = [f"c{c}" for c in range(N_CATEGORICAL)]
    config = configuration.parse(
        f"""
models:
  bench:
    task: binary_classification
    reference: {reference}
    features: {{numeric: {numeric}, categorical: {categorical}}}
""",
        environ={},
    )
    model = config.models["bench"]
    frame, content = read_reference(reference)
    profile = fit("bench", model, frame, content)
    window = rows(n, rng)
    lines = [
        orjson.dumps(
            {
                "model": "bench",
                "id": f"e-{i}",
                "ts": START + i,
                "features": {
                    k: (None if isinstance(v, float) and np.isnan(v) else v)
                    for k, v in row.items()
                    if k != "prediction"
                },
                "prediction": row["prediction"],
            }
        )
        for i, row in enumerate(window.iter_rows(named=True))
    ]
    messages = Messages(lines, "bench", 0, np.arange(len(lines), dtype=np.int64))
    decoded = decoder(config, "prediction").decode(messages).frames["bench"]
    return profile, decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=51)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        profile, frame = setup(Path(directory), args.rows)
    without = replace(profile, importance=None)
    assert summarize(profile, frame).importance is not None
    assert summarize(without, frame).importance is None
    base, full, extra = [], [], []
    for round_ in range(args.repeat):
        times = {}
        order = [("a", without), ("b", profile)]
        for name, chosen in order if round_ % 2 == 0 else order[::-1]:
            started = time.process_time()
            summarize(chosen, frame)
            times[name] = time.process_time() - started
        base.append(times["a"])
        full.append(times["b"])
        extra.append(times["b"] - times["a"])
    a, b = statistics.median(base), statistics.median(full)
    print(f"\n### summarize: {args.rows:,} decoded events, 20 numeric + 5 categorical features,")
    print(f"### binary classifier, {args.repeat} rounds\n")
    print("| fold per batch | median (ms) | min (ms) |")
    print("|---|---:|---:|")
    print(f"| (a) without importance | {a * 1e3:.2f} | {min(base) * 1e3:.2f} |")
    print(f"| (b) with importance | {b * 1e3:.2f} | {min(full) * 1e3:.2f} |")
    print(
        f"\nextra of (b) over (a): {100 * statistics.median(extra) / a:+.1f} % (median of "
        f"per-round differences); by minimums {100 * (min(full) / min(base) - 1):+.1f} %"
    )


if __name__ == "__main__":
    main()
