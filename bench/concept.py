"""Concept-drift detectors: speed and detection quality, ours against River's.

Run by hand (not a test)::

    .venv/bin/python bench/concept.py            # full run: a few minutes here (River's
                                                 # HDDM-A alone takes ~10 s per pass)
    .venv/bin/python bench/concept.py --quick    # 200,000 steps, no HDDM-A in River

Streams (seeded, ``np.random.default_rng``): Bernoulli error bits, fed in
arrays of ``--batch`` (1,000) elements.

* ``changes``: 1,000,000 steps, error rate 0.10 -> 0.25 -> 0.10 -> 0.30 with
  changes at 250k, 500k and 750k;
* ``no change``: 1,000,000 steps at 0.10 throughout.

For every change the first drift at or after it (and before the next change)
is its detection; its delay is the distance in steps. Every other drift is a
false alarm. River's detectors are fed element by element, as River is used;
ours get whole arrays. Rates are updates per second of CPU time
(``time.process_time``, steadier than wall time on a shared machine), best of
``--repeats`` runs for both sides; ``speedup`` is ours / River's rate in the
same run. ``--seeds N`` then checks the default detector, and River's ADWIN
defaults, on N more seeds of both streams.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driftwarden.detectors import DEFAULT_CONCEPT_DRIFT
from driftwarden.detectors.adwin import ADWIN
from driftwarden.detectors.ddm import DDM
from driftwarden.detectors.eddm import EDDM
from driftwarden.detectors.hddm_a import HDDMA
from driftwarden.detectors.page_hinkley import PageHinkley
from driftwarden.detectors.proportion_test import ProportionTest


@dataclass
class Outcome:
    rate: float
    drifts: np.ndarray


def make_stream(steps: int, rates: list[float], seed: int) -> tuple[np.ndarray, list[int]]:
    """Bernoulli error bits with equal-length segments of the given rates."""
    rng = np.random.default_rng(seed)
    bounds = [steps * k // len(rates) for k in range(len(rates) + 1)]
    p = np.concatenate(
        [np.full(b - a, r) for (a, b), r in zip(itertools.pairwise(bounds), rates, strict=True)]
    )
    return (rng.random(steps) < p).astype(np.float64), bounds[1:-1]


def run_ours(factory: Callable[[], object], x: np.ndarray, batch: int, repeats: int = 1) -> Outcome:
    best = np.inf
    for _ in range(repeats):
        detector = factory()
        found = []
        start = time.process_time()
        for begin in range(0, x.size, batch):
            drifts = detector.update(x[begin : begin + batch]).drifts  # type: ignore[attr-defined]
            if drifts.size:
                found.append(drifts + begin)
        best = min(best, time.process_time() - start)
    drifts = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
    return Outcome(x.size / best, drifts)


def run_river(factory: Callable[[], object], x: np.ndarray, repeats: int = 1) -> Outcome:
    values = x.astype(int).tolist()
    best = np.inf
    for _ in range(repeats):
        detector = factory()
        found = []
        update = detector.update  # type: ignore[attr-defined]
        start = time.process_time()
        for i, v in enumerate(values):
            update(v)
            if detector.drift_detected:  # type: ignore[attr-defined]
                found.append(i)
        best = min(best, time.process_time() - start)
    return Outcome(x.size / best, np.asarray(found, dtype=np.int64))


def score(drifts: np.ndarray, changes: list[int], steps: int) -> tuple[list[int | None], int]:
    """Delay per change (None if missed) and the number of false alarms."""
    edges = [*changes, steps]
    delays: list[int | None] = []
    true = 0
    for change, end in itertools.pairwise(edges):
        inside = drifts[(drifts >= change) & (drifts < end)]
        delays.append(int(inside[0] - change) if inside.size else None)
        true += int(inside.size > 0)
    return delays, int(drifts.size - true)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--quick", action="store_true", help="200k steps, skip River's HDDM-A")
    parser.add_argument("--no-river", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings per side")
    parser.add_argument("--seeds", type=int, default=10, help="extra seeds for the default")
    args = parser.parse_args()
    steps = 200_000 if args.quick else args.steps

    from river import drift

    rows: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        ("ADWIN", ADWIN, drift.ADWIN),
        ("DDM", DDM, drift.binary.DDM),
        ("EDDM", EDDM, drift.binary.EDDM),
        ("HDDM-A", HDDMA, None if args.quick else drift.binary.HDDMA),
        ("Page-Hinkley", PageHinkley, drift.PageHinkley),
        ("DDM two-sided", lambda: DDM(two_sided=True), None),
        ("HDDM-A two-sided", lambda: HDDMA(two_sided=True), None),
        ("proportion test (STEPD defaults)", ProportionTest, None),
        (
            "proportion test w=1000 a=1e-7",
            lambda: ProportionTest(
                window=1000, min_reference=1000, alpha_drift=1e-7, alpha_warning=1e-4
            ),
            None,
        ),
        ("ADWIN delta=0.0002", lambda: ADWIN(delta=0.0002), None),
        ("ADWIN delta=0.00002 (default)", lambda: ADWIN(**DEFAULT_CONCEPT_DRIFT["adwin"]), None),
    ]
    streams = {
        "changes": make_stream(steps, [0.10, 0.25, 0.10, 0.30], args.seed),
        "no change": make_stream(steps, [0.10], args.seed + 1),
    }
    for name, (x, changes) in streams.items():
        print(f"\n### {name}: {steps:,} steps, batches of {args.batch:,}\n")
        header = "| detector | impl | updates/s | speedup | drifts | delays | false alarms |"
        print(header)
        print("|---|---|---:|---:|---:|---|---:|")
        for label, ours, river in rows:
            mine = run_ours(ours, x, args.batch, args.repeats)
            results = [("ours", mine)]
            if river is not None and not args.no_river:
                results.append(("River", run_river(river, x, args.repeats)))
            for impl, outcome in results:
                delays, false = score(outcome.drifts, changes, steps)
                shown = "/".join("miss" if d is None else str(d) for d in delays) or "-"
                speedup = (
                    f"{mine.rate / results[1][1].rate:.1f}x"
                    if impl == "ours" and len(results) > 1
                    else ""
                )
                print(
                    f"| {label} | {impl} | {outcome.rate / 1e6:.2f}M | {speedup} "
                    f"| {outcome.drifts.size} | {shown} | {false} |"
                )
            if len(results) > 1 and not np.array_equal(results[0][1].drifts, results[1][1].drifts):
                print(f"| {label} | positions differ from River's | | | | | |")

    if args.seeds:
        seed_check(args.seeds, steps, args.batch, args.seed)


def seed_check(n_seeds: int, steps: int, batch: int, seed: int) -> None:
    """The default and River's ADWIN defaults over more seeds of both streams."""
    print(f"\n### {n_seeds} more seeds of both streams\n")
    print("| detector | changes found | largest delay | false alarms (changes) | (no change) |")
    print("|---|---:|---:|---:|---:|")
    candidates = [
        ("ADWIN delta=0.002 (River's default)", ADWIN),
        ("ADWIN delta=0.00002 (default)", lambda: ADWIN(**DEFAULT_CONCEPT_DRIFT["adwin"])),
    ]
    for label, factory in candidates:
        found = largest = false_changes = false_none = 0
        for k in range(1, n_seeds + 1):
            x, changes = make_stream(steps, [0.10, 0.25, 0.10, 0.30], seed + 100 * k)
            delays, false = score(run_ours(factory, x, batch).drifts, changes, steps)
            found += sum(d is not None for d in delays)
            largest = max([largest, *(d for d in delays if d is not None)])
            false_changes += false
            x, _ = make_stream(steps, [0.10], seed + 100 * k + 1)
            false_none += run_ours(factory, x, batch).drifts.size
        print(f"| {label} | {found}/{3 * n_seeds} | {largest} | {false_changes} | {false_none} |")


if __name__ == "__main__":
    main()
