"""Cost of the importance joint counts on top of the window fold, per batch.

Run by hand (not a test); it prints its figures::

    .venv/bin/python bench/importance.py                  # 20,000-row batches, 101 rounds
    .venv/bin/python bench/importance.py --rows 100000 --repeat 21
    .venv/bin/python bench/importance.py --buckets 5      # quintiles instead of deciles

Setup: 20 numeric features (normal, lognormal, Poisson, uniform; one with 1 %
missing) and 5 categorical features (~20 categories each, as codes against a
reference vocabulary), a positive-class score per row, an error bit per row.
Edges are fitted once on a reference batch of the same size (not timed).

(a) base: the fold of the existing window summaries at the detectors level,
    ``NumericSummary.from_columns`` on the 500 fine bins +
    ``CategoricalSummary.from_codes``.
(b) base + importance: (a), then the bucket codes (reference deciles + missing
    for numeric features, categories + missing for categorical ones, score
    deciles for the prediction) and one ``ImportanceSummary.from_codes``
    (one ``bincount``) per feature type: numeric (20, 11, 11) and categorical
    (5, 23, 11).
(c) for the record, on top of (b): ``ErrorSummary.from_codes`` on the same
    bucket codes, and ``AttributionSummary.from_values`` of 25 attributions a
    row; the daemon folds these only when labels or attributions arrive.

Each round runs (a), (b) and (c) back to back (the order rotating from round
to round), so a busy neighbour slows all three alike. Times are CPU seconds
(``time.process_time``); the figures are medians over ``--repeat`` rounds,
and the extra cost of (b) is the median over rounds of (b) minus (a) in the
same round, as a percentage of (a)'s median (the issue's target: at most
25 %).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from driftwarden.detectors.attribution import ErrorSummary
from driftwarden.detectors.histogram import (
    CategoricalSummary,
    NumericSummary,
    pad_edges,
    quantile_edges,
)
from driftwarden.detectors.importance import (
    AttributionSummary,
    ImportanceSummary,
    categorical_bucket_codes,
    numeric_bucket_codes,
    quantile_bucket_edges,
)

N_NUMERIC = 20
N_CATEGORICAL = 5
N_CATEGORIES = 20
SEED = 20261201


def make_batch(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """One batch: numeric columns (20, rows), category codes (5, rows), scores, errors."""
    numeric = np.empty((N_NUMERIC, rows))
    for f in range(N_NUMERIC):
        kind = f % 4
        if kind == 0:
            numeric[f] = rng.normal(size=rows)
        elif kind == 1:
            numeric[f] = rng.lognormal(size=rows)
        elif kind == 2:
            numeric[f] = rng.poisson(4.0, size=rows)
        else:
            numeric[f] = rng.uniform(size=rows)
    numeric[1, rng.random(rows) < 0.01] = np.nan
    p = 1.0 / np.arange(1, N_CATEGORIES + 1)
    codes = rng.choice(N_CATEGORIES, p=p / p.sum(), size=(N_CATEGORICAL, rows))
    codes[0, rng.random(rows) < 0.01] = -1  # missing
    score = 1.0 / (1.0 + np.exp(-(numeric[0] + 0.5 * np.nan_to_num(numeric[1]) - 1.0)))
    return {
        "numeric": numeric,
        "codes": codes,
        "score": score,
        "error": (rng.random(rows) < 0.1).astype(np.float64),
        "shap": rng.normal(size=(N_NUMERIC + N_CATEGORICAL, rows)),
    }


def time_steps(steps: dict[str, Callable[[], object]], repeat: int) -> dict[str, np.ndarray]:
    """CPU seconds of every step in every round.

    The steps of a round run back to back, in an order rotated from round to
    round, so none always finds the caches as the previous one left them.
    """
    names = list(steps)
    times = {name: np.empty(repeat) for name in names}
    for step in steps.values():  # warm-up
        step()
    for i in range(repeat):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.process_time()
            steps[name]()
            times[name][i] = time.process_time() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=101)
    parser.add_argument("--buckets", type=int, default=10, help="numeric and score buckets")
    args = parser.parse_args()

    rng = np.random.default_rng(SEED)
    reference = make_batch(rng, args.rows)
    batch = make_batch(rng, args.rows)

    fine_edges = pad_edges([quantile_edges(column) for column in reference["numeric"]])
    shift = np.nanmean(reference["numeric"], axis=1)
    deciles = quantile_bucket_edges(reference["numeric"], args.buckets)  # (20, 9): 11 buckets
    score_edges = quantile_bucket_edges(reference["score"], args.buckets)  # (1, 9): 11 buckets
    vocabulary = N_CATEGORIES
    numeric_width = deciles.shape[1] + 2  # 11: deciles + missing
    categorical_width = vocabulary + 3  # 23: categories + rare + unseen + missing
    n_pred = score_edges.shape[1] + 2

    def base() -> object:
        return (
            NumericSummary.from_columns(batch["numeric"], fine_edges, shift),
            CategoricalSummary.from_codes(batch["codes"], vocabulary),
        )

    def bucket_codes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            numeric_bucket_codes(batch["numeric"], deciles),
            categorical_bucket_codes(batch["codes"], vocabulary),
            numeric_bucket_codes(batch["score"][None], score_edges)[0],
        )

    def joint() -> object:
        numeric, categorical, pred = bucket_codes()
        return (
            ImportanceSummary.from_codes(numeric, pred, numeric_width, n_pred),
            ImportanceSummary.from_codes(categorical, pred, categorical_width, n_pred),
        )

    def with_importance() -> object:
        return base(), joint()

    def with_everything() -> object:
        numeric, categorical, pred = bucket_codes()
        return (
            base(),
            ImportanceSummary.from_codes(numeric, pred, numeric_width, n_pred),
            ImportanceSummary.from_codes(categorical, pred, categorical_width, n_pred),
            ErrorSummary.from_codes(numeric, batch["error"], numeric_width),
            ErrorSummary.from_codes(categorical, batch["error"], categorical_width),
            AttributionSummary.from_values(batch["shap"]),
        )

    timed = time_steps({"a": base, "b": with_importance, "c": with_everything}, args.repeat)
    base_time = float(np.median(timed["a"]))

    def row(label: str, key: str) -> str:
        median, fastest = float(np.median(timed[key])), float(timed[key].min())
        extra = 100.0 * float(np.median(timed[key] - timed["a"])) / base_time
        return f"| {label} | {median * 1e3:.2f} | {fastest * 1e3:.2f} | {extra:+.1f} % |"

    print(
        f"\n### importance fold: {args.rows:,} rows, {N_NUMERIC} numeric + "
        f"{N_CATEGORICAL} categorical features, {args.repeat} rounds\n"
    )
    print("| work per batch | median (ms) | min (ms) | extra over (a) |")
    print("|---|---:|---:|---:|")
    print(row("(a) window summaries (fine bins + categories)", "a"))
    print(row("(b) (a) + bucket codes + joint counts", "b"))
    print(row("(c) (b) + error summaries + attribution summary", "c"))
    fastest = 100.0 * (timed["b"].min() / timed["a"].min() - 1.0)
    print(
        "\nCPU time (time.process_time). Extra: median over rounds of the step's time "
        "minus (a)'s in the same round, over the median of (a).\n"
        f"(b) over (a) by their minimums (the least disturbed runs): {fastest:+.1f} %"
    )
    print(
        f"joint counts: ({N_NUMERIC}, {numeric_width}, {n_pred}) numeric and "
        f"({N_CATEGORICAL}, {categorical_width}, {n_pred}) categorical"
    )


if __name__ == "__main__":
    main()
