"""Data-drift detectors: speed of ours against scipy loops, a numpy kernel and Evidently.

Run by hand (not a test); it prints its figures::

    .venv/bin/python bench/detectors.py                       # the issue's setup
    .venv/bin/python bench/detectors.py --evidently-rows 100000   # Evidently at 100k only
    .venv/bin/python bench/detectors.py --skip-evidently

Setup: a reference and a window of ``--rows`` rows each (default 1,000,000),
20 numeric and 5 categorical features (strings, ~20 categories each); 5
numeric and 1 categorical feature of the window are shifted. Seeded.

(a) ours: fold the window into summaries on the reference's fine bins
    (``NumericSummary.from_columns``; categorical strings mapped to codes with
    polars ``replace_strict`` against the reference vocabulary, then
    ``CategoricalSummary.from_codes``) plus the default detector set on the
    summaries. The reference fit (edges, reference summaries, vocabulary) is
    timed separately: it happens once per reference, not per window.
(b) scipy per feature: ``ks_2samp`` per numeric feature, ``chi2_contingency``
    per categorical feature (window value counts with pandas; reference
    counts precomputed).
(c) a hand-written numpy kernel: PSI (reference deciles), exact KS, normed
    Wasserstein, chi-square and Jensen–Shannon for all features, with the
    reference sorted, its deciles, std and category counts precomputed.
(d) Evidently's ``DataDriftPreset`` on the same data as pandas DataFrames.
(e) 24 panes of rows/24 rows each: building their summaries, then merging
    the 24 summaries and recomputing the default set.

Timings are medians (and minimums) of ``--repeat`` runs of the cheap steps
(at least 25 of (e)'s merge, a few milliseconds that one busy neighbour can
double) and ``--slow-repeat`` runs of (b) and (c); Evidently runs once. This
machine is shared, so compare the ratios printed side by side.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats
from scipy.special import rel_entr

from driftwarden.detectors import (
    DATA_DRIFT_DETECTORS,
    DEFAULT_DATA_DRIFT,
    CategoricalSummary,
    NumericSummary,
    pad_edges,
    quantile_edges,
)

N_NUMERIC = 20
N_CATEGORICAL = 5
N_CATEGORIES = 20
MAX_CATEGORIES = 100
SEED = 20261126


def make_data(rows: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Reference and window columns: ``(20, rows)`` floats and 5 polars String columns each."""
    rng = np.random.default_rng(seed)

    def numeric(shifted: bool) -> np.ndarray:
        out = np.empty((N_NUMERIC, rows))
        for f in range(N_NUMERIC):
            kind = f % 4
            move = 0.5 if shifted and f % 4 == 0 else 0.0  # features 0, 4, 8, 12, 16
            if kind == 0:
                out[f] = rng.normal(loc=move, size=rows)
            elif kind == 1:
                out[f] = rng.lognormal(size=rows)
            elif kind == 2:
                out[f] = rng.poisson(4.0, size=rows)
            else:
                out[f] = rng.uniform(size=rows)
        out[1, rng.random(rows) < 0.01] = np.nan  # some missing values
        return out

    labels = np.array([f"cat_{i:02d}" for i in range(N_CATEGORIES + 1)])
    base = 1.0 / np.arange(1, N_CATEGORIES + 1)
    base /= base.sum()

    def categorical(shifted: bool) -> list[pl.Series]:
        out = []
        for f in range(N_CATEGORICAL):
            if shifted and f == 0:  # mass moves down the tail, plus a never-seen category
                p = np.append(np.sort(base) * 0.95, 0.05)
                codes = rng.choice(N_CATEGORIES + 1, p=p, size=rows)
            else:
                codes = rng.choice(N_CATEGORIES, p=base, size=rows)
            # strings as the decoder hands them over: a polars String column
            out.append(pl.Series(f"c{f}", labels[codes]))
        return out

    return {
        "ref_num": numeric(False),
        "win_num": numeric(True),
        "ref_cat": categorical(False),
        "win_cat": categorical(True),
    }


class Ours:
    """The reference fit, the window fold and the default set, as the daemon runs them."""

    def __init__(self, ref_num: np.ndarray, ref_cat: list[pl.Series]) -> None:
        self.edges = pad_edges([quantile_edges(column) for column in ref_num])
        self.shift = np.nanmean(ref_num, axis=1)
        self.ref_num = NumericSummary.from_columns(ref_num, self.edges, self.shift)
        self.mappings: list[dict[str, int]] = []
        for column in ref_cat:
            counts = column.value_counts(sort=True)
            vocabulary = counts[:, 0].to_list()[:MAX_CATEGORIES]
            self.mappings.append({value: code for code, value in enumerate(vocabulary)})
        self.width = max(len(m) for m in self.mappings)
        self.ref_cat = self.fold_categorical(ref_cat)
        self.numeric = [
            DATA_DRIFT_DETECTORS[name](**kwargs)
            for name, kwargs in DEFAULT_DATA_DRIFT["numeric"].items()
        ]
        self.categorical = [
            DATA_DRIFT_DETECTORS[name](**kwargs)
            for name, kwargs in DEFAULT_DATA_DRIFT["categorical"].items()
        ]

    def fold_numeric(self, columns: np.ndarray) -> NumericSummary:
        return NumericSummary.from_columns(columns, self.edges, self.shift)

    def fold_categorical(self, columns: list[pl.Series]) -> CategoricalSummary:
        codes = np.empty((len(columns), len(columns[0])), dtype=np.int64)
        unseen = self.width + 1
        for f, column in enumerate(columns):
            series = column.replace_strict(self.mappings[f], default=unseen, return_dtype=pl.Int64)
            codes[f] = series.fill_null(-1).to_numpy()
        return CategoricalSummary.from_codes(codes, self.width)

    def detect(self, window_num: NumericSummary, window_cat: CategoricalSummary) -> dict:
        out = {}
        for detector in self.numeric:
            out[f"num:{detector.name}"] = detector.numeric(self.ref_num, window_num, self.edges)
        for detector in self.categorical:
            out[f"cat:{detector.name}"] = detector.categorical(self.ref_cat, window_cat)
        return out


def scipy_loop(data: dict, ref_counts: list[pd.Series]) -> list[float]:
    p_values = []
    for f in range(N_NUMERIC):
        ref, win = data["ref_num"][f], data["win_num"][f]
        p_values.append(stats.ks_2samp(ref[~np.isnan(ref)], win[~np.isnan(win)]).pvalue)
    for f in range(N_CATEGORICAL):
        win_counts = data["win_cat_pd"][f].value_counts()
        table = pd.concat([ref_counts[f], win_counts], axis=1).fillna(0).to_numpy().T
        p_values.append(stats.chi2_contingency(table, correction=False).pvalue)
    return p_values


class Kernel:
    """Hand-written numpy: exact KS and Wasserstein, decile PSI and JS, chi-square."""

    def __init__(self, ref_num: np.ndarray, ours: Ours) -> None:
        self.sorted_ref = [np.sort(c[~np.isnan(c)]) for c in ref_num]
        self.std = [s.std() for s in self.sorted_ref]
        self.deciles = [np.quantile(s, np.linspace(0, 1, 11)[1:-1]) for s in self.sorted_ref]
        self.ref_decile_counts = [
            np.diff(np.searchsorted(s, d, side="left"), prepend=0, append=s.size)
            for s, d in zip(self.sorted_ref, self.deciles, strict=True)
        ]
        self.ours = ours  # for the string -> code mapping only
        self.ref_cat_counts = ours.ref_cat.counts

    @staticmethod
    def _psi_js(p_counts: np.ndarray, q_counts: np.ndarray) -> tuple[float, float, float]:
        p, q = p_counts / p_counts.sum(), q_counts / q_counts.sum()
        ps, qs = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
        psi = float(np.sum((qs - ps) * np.log(qs / ps)))
        mid = (p + q) / 2
        js = float(np.sqrt((rel_entr(p, mid).sum() + rel_entr(q, mid).sum()) / 2 / np.log(2)))
        table = np.stack([p_counts, q_counts])
        table = table[:, table.sum(axis=0) > 0]
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
        chi2 = float(((table - expected) ** 2 / expected).sum())
        return psi, js, chi2

    def run(self, win_num: np.ndarray, win_cat: list[pl.Series]) -> list[tuple]:
        out = []
        for f, column in enumerate(win_num):
            ref = self.sorted_ref[f]
            win = np.sort(column[~np.isnan(column)])
            pooled = np.sort(np.concatenate([ref, win]))
            cdf_ref = np.searchsorted(ref, pooled, side="right") / ref.size
            cdf_win = np.searchsorted(win, pooled, side="right") / win.size
            gap = np.abs(cdf_ref - cdf_win)
            ks = float(gap.max())
            wasserstein = float(np.dot(gap[:-1], np.diff(pooled))) / self.std[f]
            win_deciles = np.diff(
                np.searchsorted(win, self.deciles[f], side="left"), prepend=0, append=win.size
            )
            psi, js, _ = self._psi_js(self.ref_decile_counts[f], win_deciles)
            out.append((ks, wasserstein, psi, js))
        counts = self.ours.fold_categorical(win_cat).counts
        for f in range(len(win_cat)):
            out.append(self._psi_js(self.ref_cat_counts[f], counts[f]))
        return out


def evidently_run(data: dict, rows: int) -> float:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [f"n{f}" for f in range(N_NUMERIC)]
    categorical = [f"c{f}" for f in range(N_CATEGORICAL)]

    def frame(prefix: str) -> pd.DataFrame:
        columns = {name: data[f"{prefix}_num"][f][:rows] for f, name in enumerate(numeric)}
        columns |= {
            name: data[f"{prefix}_cat"][f][:rows].to_numpy() for f, name in enumerate(categorical)
        }
        return pd.DataFrame(columns)

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    reference = Dataset.from_pandas(frame("ref"), data_definition=definition)
    current = Dataset.from_pandas(frame("win"), data_definition=definition)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Report([DataDriftPreset()]).run(current, reference)
    return time.perf_counter() - start


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Median and minimum wall time of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of the cheap steps")
    parser.add_argument("--slow-repeat", type=int, default=3, help="runs of (b) and (c)")
    parser.add_argument(
        "--evidently-rows", type=int, nargs="*", default=[1_000_000, 100_000], metavar="N"
    )
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--panes", type=int, default=24)
    args = parser.parse_args()

    print(
        f"setup: {args.rows:,} reference + {args.rows:,} window rows, {N_NUMERIC} numeric + "
        f"{N_CATEGORICAL} categorical features, seed={SEED}; load average at start: "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    data = make_data(args.rows)
    rows: list[tuple[str, float, float]] = []  # label, median, minimum

    fit_time, _, ours = timed(lambda: Ours(data["ref_num"], data["ref_cat"]), 1)
    rows.append(("reference fit (once per reference; not in (a))", fit_time, fit_time))

    def run_ours() -> dict:
        return ours.detect(
            ours.fold_numeric(data["win_num"]), ours.fold_categorical(data["win_cat"])
        )

    window_num, window_cat = (
        ours.fold_numeric(data["win_num"]),
        ours.fold_categorical(data["win_cat"]),
    )
    for label, step in (
        ("  window fold, numeric (20 x rows)", lambda: ours.fold_numeric(data["win_num"])),
        (
            "  window fold, categorical (5 x rows, strings -> codes)",
            lambda: ours.fold_categorical(data["win_cat"]),
        ),
        ("  default detector set on the summaries", lambda: ours.detect(window_num, window_cat)),
    ):
        rows.append((label, *timed(step, args.repeat)[:2]))
    a_median, a_min, results = timed(run_ours, args.repeat)

    data["win_cat_pd"] = [pd.Series(c.to_numpy()) for c in data["win_cat"]]
    ref_counts = [pd.Series(c.to_numpy()).value_counts() for c in data["ref_cat"]]
    b_median, b_min, _ = timed(lambda: scipy_loop(data, ref_counts), args.slow_repeat)
    kernel = Kernel(data["ref_num"], ours)
    c_median, c_min, _ = timed(
        lambda: kernel.run(data["win_num"], data["win_cat"]), args.slow_repeat
    )

    # (e) panes
    bounds = np.linspace(0, args.rows, args.panes + 1).astype(int)
    pieces = list(itertools.pairwise(bounds))

    def build_panes() -> list[tuple[NumericSummary, CategoricalSummary]]:
        return [
            (
                ours.fold_numeric(data["win_num"][:, lo:hi]),
                ours.fold_categorical([c[lo:hi] for c in data["win_cat"]]),
            )
            for lo, hi in pieces
        ]

    build_median, build_min, panes = timed(build_panes, args.repeat)

    def merge_and_detect() -> dict:
        num = functools.reduce(NumericSummary.merge, (p[0] for p in panes))
        cat = functools.reduce(CategoricalSummary.merge, (p[1] for p in panes))
        return ours.detect(num, cat)

    merge_median, merge_min, merged_results = timed(merge_and_detect, max(args.repeat, 25))

    evidently: list[tuple[int, float]] = []
    if not args.skip_evidently:
        for count in args.evidently_rows:
            count = min(count, args.rows)
            print(f"running Evidently DataDriftPreset at {count:,} rows ...", flush=True)
            evidently.append((count, evidently_run(data, count)))

    flagged = {key: [f for f, r in enumerate(found) if r.drift] for key, found in results.items()}
    same = all(
        np.allclose(_values(results[k]), _values(merged_results[k]), rtol=1e-9, equal_nan=True)
        for k in results
    )
    print()
    print("drift flagged (feature indices), ours:")
    for key, features in flagged.items():
        print(f"  {key:22s} {features}")
    print(f"  merged panes give the same values as the whole window: {same}")
    print()
    print(f"{'step':58s} {'median s':>9s} {'min s':>9s}  ratio of medians (of minimums)")
    for label, median, minimum in rows:
        print(f"{label:58s} {median:9.4f} {minimum:9.4f}")

    def line(label: str, median: float, minimum: float, ratio: str = "") -> None:
        print(f"{label:58s} {median:9.3f} {minimum:9.3f}  {ratio}")

    line("(a) ours: fold + default set", a_median, a_min, "1.0")
    line(
        "(b) scipy loop: ks_2samp x20 + chi2_contingency x5",
        b_median,
        b_min,
        f"(b)/(a) = {b_median / a_median:.1f}x ({b_min / a_min:.1f}x)   target >= 3x",
    )
    line(
        "(c) numpy kernel: PSI, exact KS, W1, chi2, JS",
        c_median,
        c_min,
        f"(c)/(a) = {c_median / a_median:.1f}x ({c_min / a_min:.1f}x)",
    )
    for count, seconds in evidently:
        note = "   target >= 100x" if count == args.rows else "   (less data than (a))"
        line(
            f"(d) Evidently 0.7 DataDriftPreset, {count:,} rows (1 run)",
            seconds,
            seconds,
            f"(d)/(a) = {seconds / a_median:.0f}x ({seconds / a_min:.0f}x){note}",
        )
    line(
        f"(e) build {args.panes} pane summaries of {args.rows // args.panes:,} rows",
        build_median,
        build_min,
    )
    print(
        f"{f'(e) merge {args.panes} panes + default set':58s} {merge_median:9.5f} "
        f"{merge_min:9.5f}  merge/build = {100 * merge_median / build_median:.2f}% "
        f"({100 * merge_min / build_min:.2f}%)   target < 1%"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _values(found: list) -> np.ndarray:
    return np.array([np.nan if r.value is None else r.value for r in found])


if __name__ == "__main__":
    main()
