"""What folding the PCA reconstruction errors adds to the fold of a batch.

Run by hand (not a test); it prints its figures::

    .venv/bin/python bench/reconstruction_fold.py
    .venv/bin/python bench/reconstruction_fold.py --rows 20000 --repeat 15

Setup (seeded): a regression model with 20 numeric features (standard normal,
pairs correlated at 0.6, 1 % missing) and 5 categorical ones (20 categories
each, Zipf-like frequencies, 1 % missing); a reference of ``--reference``
rows (50,000) and a batch of ``--rows`` rows (100,000) of events, decoded
once by the daemon's decoder. Timed, on the same decoded batch, alternately
and ``--repeat`` times each: ``summarize`` (the whole fold of a batch into a
window summary) on the profile without multivariate drift, ``summarize`` on
the profile with it, and the reconstruction step alone
(``MultivariateProfile.fold``). Printed: medians and minimums, and the share
of the fold with multivariate drift that the reconstruction errors take,
``(with - without) / with`` (target: at most 25 %). Regression is the
cheapest fold (no score histogram or fairness summaries), so the share is the
largest of the three tasks. Timings are process CPU time on a shared machine:
compare the ratios printed side by side. Run it with ``OPENBLAS_NUM_THREADS=1``
(as the container image sets) and without: OpenBLAS's extra threads multiply
the CPU time of the small matrix products.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.windows.profile import Profile, fit, read_reference
from driftwarden.monitor.windows.summary import summarize

NUMERIC = [f"n{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
MODEL = "bench"


def rows(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """Feature columns and a prediction (see the module docstring)."""
    base = rng.normal(size=(10, n))
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        value = 0.6 * base[i // 2] + 0.8 * rng.normal(size=n)
        value[rng.random(n) < 0.01] = np.nan
        columns[name] = value
    weights = 1.0 / np.arange(1, 21)
    for name in CATEGORICAL:
        codes = rng.choice(20, size=n, p=weights / weights.sum())
        text = np.char.add("v", codes.astype(str)).astype(object)
        text[rng.random(n) < 0.01] = None
        columns[name] = text
    frame = pl.DataFrame(
        {
            **{name: pl.Series(columns[name], nan_to_null=True) for name in NUMERIC},
            **{name: pl.Series(columns[name], dtype=pl.String) for name in CATEGORICAL},
        }
    )
    return frame.with_columns(prediction=pl.Series(rng.normal(size=n)))


def config_text(reference: Path, enabled: bool) -> str:
    return f"""\
storage:
  url: "sqlite://"
models:
  {MODEL}:
    task: regression
    reference: {reference}
    features:
      numeric: [{", ".join(NUMERIC)}]
      categorical: [{", ".join(CATEGORICAL)}]
    multivariate_drift: {{enabled: {"true" if enabled else "false"}}}
"""


def profile_of(directory: Path, reference: Path, enabled: bool) -> tuple[Profile, object]:
    path = directory / f"config-{enabled}.yaml"
    path.write_text(config_text(reference, enabled))
    loaded = configuration.load(path)
    model = loaded.models[MODEL]
    frame, content = read_reference(model.reference)
    return fit(MODEL, model, frame, content), loaded


def decoded_batch(loaded: object, batch: pl.DataFrame) -> pl.DataFrame:
    n = batch.height
    events = batch.select(
        pl.lit(MODEL).alias("model"),
        pl.format("e-{}", pl.int_range(n)).alias("id"),
        (1_795_651_200_000 + pl.int_range(n, dtype=pl.Int64)).alias("ts"),
        pl.struct(NUMERIC + CATEGORICAL).alias("features"),
        "prediction",
    )
    lines = [line for line in events.write_ndjson().encode().split(b"\n") if line]
    messages = Messages(lines, "bench", 0, np.arange(len(lines), dtype=np.int64))
    return decoder(loaded, "prediction").decode(messages).frames[MODEL]  # type: ignore[arg-type]


def cpu_seconds(call: Callable[[], object]) -> float:
    started = time.process_time()
    call()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="reconstruction-fold-") as scratch:
        directory = Path(scratch)
        reference = directory / "reference.parquet"
        rows(args.reference, rng).write_parquet(reference)
        started = time.process_time()
        with_mv, loaded = profile_of(directory, reference, True)
        fit_with = time.process_time() - started
        started = time.process_time()
        without, _ = profile_of(directory, reference, False)
        fit_without = time.process_time() - started
        batch = decoded_batch(loaded, rows(args.rows, rng))
    assert with_mv.multivariate is not None
    multivariate = with_mv.multivariate
    numeric = batch.select([f"num:{name}" for name in NUMERIC]).to_numpy().T.copy()
    codes = np.stack(
        [
            batch.select(f"cat:{name}")
            .to_series()
            .replace_strict(
                with_mv.category_maps[i],
                default=with_mv.vocabulary_width + 1,
                return_dtype=pl.Int64,
            )
            .fill_null(-1)
            .to_numpy()
            for i, name in enumerate(CATEGORICAL)
        ]
    )
    timings: dict[str, list[float]] = {"without": [], "with": [], "errors alone": []}
    for _ in range(args.repeat):
        timings["without"].append(cpu_seconds(lambda: summarize(without, batch)))
        timings["with"].append(cpu_seconds(lambda: summarize(with_mv, batch)))
        timings["errors alone"].append(cpu_seconds(lambda: multivariate.fold(numeric, codes)))
    print(
        f"\n{args.rows:,} rows, {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical features, "
        f"reference {args.reference:,} rows; {multivariate.model.components.shape[0]} of "
        f"{multivariate.model.components.shape[1]} axes kept; "
        f"OMP/OPENBLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}\n"
    )
    print("| fold | median CPU s | min CPU s | rows/s (median) |")
    print("|---|---:|---:|---:|")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.4f} | {min(values):.4f} | {args.rows / median:,.0f} |")
    with_median = statistics.median(timings["with"])
    added = with_median - statistics.median(timings["without"])
    print(
        f"\nshare of the fold taken by the reconstruction errors, (with - without) / with: "
        f"{added / with_median:.1%} (target <= 25 %); errors alone / with: "
        f"{statistics.median(timings['errors alone']) / with_median:.1%}"
    )
    print(f"reference fit: {fit_with:.2f} s with multivariate drift, {fit_without:.2f} s without")


if __name__ == "__main__":
    main()
