"""Concept-drift detectors: speed and detection quality, ours against River's.

Run by hand (not a test)::

    .venv/bin/python bench/concept.py            # full run: a few minutes here (River's
                                                 # HDDM-A alone takes ~10 s per pass)
    .venv/bin/python bench/concept.py --quick    # 200,000 steps, no HDDM-A in River
    .venv/bin/python bench/concept.py --cusum-only --direct-arl
                                                 # the CUSUM sections only, ~8 min
    .venv/bin/python bench/concept.py --risk-only
                                                 # the scored streams and the risk-adjusted
                                                 # CUSUM's ARL only, ~6 min

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

The calibrated CUSUM (``detectors/cusum.py``) is then compared, in the same
run, with River's ADWIN, EDDM and Page-Hinkley (River's defaults, element by
element) and our default ADWIN (``DEFAULT_CONCEPT_DRIFT``), on
``--cusum-seeds`` (20) seeds of three streams:

* ``abrupt``: the ``changes`` stream above (the first seed is the same stream);
* ``gradual``: 0.10 until 500k, then a linear ramp to 0.25 over 50,000 steps,
  then 0.25;
* ``no change``: 0.10 throughout.

The CUSUM gets ``reference_rate=0.10``, the pre-change rate, as the daemon gets
it from the reference; more rows show an ARL of 1e9, an odds ratio of 3 (the
chart tuned exactly to the 0.10 -> 0.25 rise; the CUSUM being optimal in
Lorden's worst-case sense, Moustakides 1986, no detector finds that rise
sooner at the same ARL), the same at an ARL of 1e9, and the rate estimated from
100,000 simulated reference labels per seed (what an estimated rate costs). The CUSUM
watches rises of the error rate against the reference, so its delays are
measured at the rises (250k: 0.10 -> 0.25, 750k: 0.10 -> 0.30, the start of the
ramp); at the return to 0.10 (500k) it has nothing to report. After a drift it
restarts and, while the rate stays raised, fires again: those re-alarms are
true alarms and are listed apart. Scoring, the same for every detector: a
rise's delay is its first drift before the rate returns; later drifts while the
rate is raised are re-alarms; a drift within 1,000 steps after the return is
counted at the return; every other drift in a stretch at 0.10 is a false
alarm. The ratio printed is the median delay over all rises of all seeds of the
CUSUM over River's ADWIN's (target <= 0.8). With an ARL of 1e7, 20 seeds of
1,000,000 steps of no change hold 2 false alarms on average (P(none) = e^-2 =
0.14): zero is luck, not a property; the arl=1e9 row shows what 100 times
rarer false alarms cost in delay.

Scored streams (``--risk-seeds``, 20). The default detector of a binary classifier,
``risk_cusum`` (``detectors/risk_cusum.py``), reads each error bit with its score, so it
is compared on streams that carry scores: a calibrated model whose logit is N(0, sigma^2),
sigma set so that it errs on 0.10 of rows at the threshold 0.5, each row erring with its
own chance p0 = min(s, 1 - s) while nothing changes. The same rises of the error rate as
above (abrupt 0.10 -> 0.25 -> 0.10 -> 0.30, a ramp 0.10 -> 0.25, and no change) come in
two shapes: ``flip`` reverses a share of labels at every score (p0 + q (1 - 2 p0)), a
changed concept reaching the predictions the model was sure of; ``odds`` multiplies the
odds of an error at every score, which raises errors mostly where it was unsure. Each seed
fits the detector on 100,000 reference rows of the same model. River's detectors, our
ADWIN and the error-bit CUSUM read the same error bits; scoring as above. The ARL check
then simulates the pair's in-control run length with band rates from 10,000,000 and from
100,000 reference rows.

Calibration check. An estimate of an ARL of 1e7 within +-5 % needs some 400
false alarms, i.e. 4e9 simulated events: about 70 s of CPU here for the error
bits (our scan runs at ~60M events/s with the random draws), ~10 min for the
loss chart (~7M/s), over an hour for any per-element Python implementation.
So by default the run simulates targets of 1e5 and 1e6 (400+ alarms each) and
compares them with the exact Markov-chain ARL of the chosen threshold
(``expected_arl``). The chain is exact for every threshold (the same solver,
on the same lattice, only taller at 1e7), so agreement at 1e5 and 1e6 checks
the calibration at 1e7 too; ``--direct-arl`` also simulates the default 1e7
directly (about a minute).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from driftwarden.detectors import DEFAULT_CONCEPT_DRIFT
from driftwarden.detectors.adwin import ADWIN
from driftwarden.detectors.cusum import CUSUM
from driftwarden.detectors.ddm import DDM
from driftwarden.detectors.eddm import EDDM
from driftwarden.detectors.hddm_a import HDDMA
from driftwarden.detectors.loss_cusum import LossCUSUM
from driftwarden.detectors.page_hinkley import PageHinkley
from driftwarden.detectors.proportion_test import ProportionTest
from driftwarden.detectors.risk_cusum import RiskCUSUM


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
    parser.add_argument("--cusum-seeds", type=int, default=20, help="seeds of the CUSUM comparison")
    parser.add_argument("--cusum-only", action="store_true", help="only the CUSUM sections")
    parser.add_argument("--direct-arl", action="store_true", help="also simulate the ARL of 1e7")
    parser.add_argument("--risk-seeds", type=int, default=20, help="seeds of the scored streams")
    parser.add_argument("--risk-only", action="store_true", help="only the scored streams and ARL")
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
    if args.risk_only:
        risk_comparison(args.risk_seeds, steps, args.batch, args.seed)
        risk_arl_check(args.seed)
        return
    if args.cusum_only:
        cusum_comparison(args.cusum_seeds, steps, args.batch, args.seed)
        arl_check(args.seed, args.direct_arl)
        return
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
    if args.cusum_seeds:
        cusum_comparison(args.cusum_seeds, steps, args.batch, args.seed)
    arl_check(args.seed, args.direct_arl)
    if args.risk_seeds:
        risk_comparison(args.risk_seeds, steps, args.batch, args.seed)
        risk_arl_check(args.seed)


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


REFERENCE_RATE = 0.10
RETURN_GRACE = 1_000


def make_ramp(
    steps: int, before: float, after: float, start: int, length: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Error bits at ``before`` until ``start``, then a linear ramp to ``after`` over ``length``."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    p = before + (after - before) * np.clip((t - start) / length, 0.0, 1.0)
    return (rng.random(steps) < p).astype(np.float64), p


def segment_rates(steps: int, rates: list[float]) -> np.ndarray:
    """Per-step error rate of :func:`make_stream`'s equal segments."""
    bounds = [steps * k // len(rates) for k in range(len(rates) + 1)]
    return np.concatenate(
        [np.full(b - a, r) for (a, b), r in zip(itertools.pairwise(bounds), rates, strict=True)]
    )


@dataclass
class Score:
    """How one detector did on one stream (see the module docstring for the rules)."""

    delays: list[int | None]  # per rise
    returns: list[int | None]  # per return to the reference rate
    false_alarms: int
    re_alarms: int


def score_against_reference(drifts: np.ndarray, rates: np.ndarray) -> Score:
    raised = rates > REFERENCE_RATE + 1e-12
    flips = np.flatnonzero(np.diff(raised.astype(np.int8))) + 1
    bounds = [0, *flips.tolist(), rates.size]
    delays: list[int | None] = []
    returns: list[int | None] = []
    false = re_alarms = 0
    for begin, end in itertools.pairwise(bounds):
        inside = drifts[(drifts >= begin) & (drifts < end)] - begin
        if raised[begin]:
            delays.append(int(inside[0]) if inside.size else None)
            re_alarms += max(0, inside.size - 1)
        elif begin > 0:  # a return from a raised stretch
            late = inside[inside < RETURN_GRACE]
            returns.append(int(late[0]) if late.size else None)
            false += inside.size - min(1, late.size)
        else:
            false += inside.size
    return Score(delays, returns, int(false), int(re_alarms))


def baselines(ours: str) -> list[tuple[str, str, Callable[[object], object]]]:
    """Rows of our ADWIN default (run as ``ours``) and River's ADWIN, EDDM and Page-Hinkley
    with River's defaults; each factory ignores its argument."""
    from river import drift

    return [
        (
            "ADWIN delta=0.00002 (the default without scores)",
            ours,
            lambda _: ADWIN(**DEFAULT_CONCEPT_DRIFT["adwin"]),
        ),
        ("River ADWIN (defaults)", "river", lambda _: drift.ADWIN()),
        ("River EDDM (defaults)", "river", lambda _: drift.binary.EDDM()),
        ("River Page-Hinkley (defaults)", "river", lambda _: drift.PageHinkley()),
    ]


def cusum_comparison(n_seeds: int, steps: int, batch: int, seed: int) -> None:
    """The calibrated CUSUM beside River's ADWIN, EDDM, Page-Hinkley and our default ADWIN."""

    ramp_start = steps // 2
    ramp_length = min(50_000, steps // 4)

    def estimated(k: int) -> CUSUM:
        labels = np.random.default_rng(seed + 1000 * k + 7).random(100_000) < REFERENCE_RATE
        return CUSUM(reference_rate=float(labels.mean()))

    rows: list[tuple[str, str, Callable[[int], object]]] = [
        ("CUSUM p0=0.10 (odds ratio 2, arl 1e7)", "ours", lambda k: CUSUM(REFERENCE_RATE)),
        ("CUSUM p0=0.10, arl 1e9", "ours", lambda k: CUSUM(REFERENCE_RATE, arl=1e9)),
        ("CUSUM p0=0.10, odds ratio 3", "ours", lambda k: CUSUM(REFERENCE_RATE, odds_ratio=3.0)),
        (
            "CUSUM p0=0.10, odds ratio 3, arl 1e9",
            "ours",
            lambda k: CUSUM(REFERENCE_RATE, odds_ratio=3.0, arl=1e9),
        ),
        ("CUSUM p0 from 100k reference labels", "ours", estimated),
        *baselines("ours"),
    ]
    results: dict[str, dict[str, list[Score]]] = {
        label: {"abrupt": [], "gradual": [], "none": []} for label, _, _ in rows
    }
    for k in range(n_seeds):
        abrupt = make_stream(steps, [0.10, 0.25, 0.10, 0.30], seed + 1000 * k)[0]
        streams = {
            "abrupt": (abrupt, segment_rates(steps, [0.10, 0.25, 0.10, 0.30])),
            "gradual": make_ramp(steps, 0.10, 0.25, ramp_start, ramp_length, seed + 1000 * k + 1),
            "none": (make_stream(steps, [0.10], seed + 1000 * k + 2)[0], np.full(steps, 0.10)),
        }
        for label, impl, factory in rows:
            for stream, (x, rates) in streams.items():

                def make(factory: Callable[[int], object] = factory, k: int = k) -> object:
                    return factory(k)

                if impl == "ours":
                    found = run_ours(make, x, batch).drifts
                else:
                    found = run_river(make, x).drifts
                results[label][stream].append(score_against_reference(found, rates))

    def shown(values: list[int | None]) -> str:
        return "/".join("-" if v is None else str(v) for v in values)

    print(f"\n### CUSUM against River, first seed ({steps:,} steps per stream)\n")
    print(
        f"| detector | abrupt: delays at {steps // 4:,}/{3 * steps // 4:,} "
        f"| at the return ({steps // 2:,}) "
        "| gradual: delay | false alarms (abrupt/gradual/none) | re-alarms |"
    )
    print("|---|---|---|---:|---:|---:|")
    for label, _, _ in rows:
        a, g, n = (results[label][s][0] for s in ("abrupt", "gradual", "none"))
        print(
            f"| {label} | {shown(a.delays)} | {shown(a.returns)} | {shown(g.delays)} "
            f"| {a.false_alarms}/{g.false_alarms}/{n.false_alarms} "
            f"| {a.re_alarms + g.re_alarms} |"
        )

    print(f"\n### CUSUM against River over {n_seeds} seeds of each stream\n")
    print(
        "| detector | rises found | median delay 0.10->0.25 | 0.10->0.30 | ramp "
        "| median, all rises | largest | false alarms (change streams) | (no change) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    medians: dict[str, float] = {}
    false_total: dict[str, int] = {}
    for label, _, _ in rows:
        runs = results[label]
        first = [s.delays[0] for s in runs["abrupt"]]
        second = [s.delays[1] for s in runs["abrupt"]]
        ramp = [s.delays[0] for s in runs["gradual"]]
        every = [d for d in first + second + ramp if d is not None]
        medians[label] = float(np.median(every)) if every else float("nan")
        false_changes = sum(s.false_alarms for s in runs["abrupt"] + runs["gradual"])
        false_none = sum(s.false_alarms for s in runs["none"])
        false_total[label] = false_changes + false_none

        def median(values: list[int | None]) -> str:
            found = [v for v in values if v is not None]
            return f"{np.median(found):.0f}" if found else "-"

        print(
            f"| {label} | {len(every)}/{3 * n_seeds} | {median(first)} | {median(second)} "
            f"| {median(ramp)} | {medians[label]:.0f} | {max(every, default=0)} "
            f"| {false_changes} | {false_none} |"
        )
    river = "River ADWIN (defaults)"
    reference_steps = n_seeds * (steps + steps // 2 + ramp_start)
    print(
        f"\n{reference_steps:,} steps at the reference rate in all; an ARL of 1e7 expects "
        f"{reference_steps / 1e7:.1f} false alarms there, 1e9 {reference_steps / 1e9:.2f}. "
        f"{river}: {false_total[river]} false alarms."
    )
    for label, _, _ in rows[:5]:
        print(
            f"median delay ratio, {label} / {river}: "
            f"{medians[label] / medians[river]:.2f} (target <= 0.8); "
            f"false alarms {false_total[label]}"
        )


def simulated_arl(detector: object, draw: Callable[[int], np.ndarray], alarms: int) -> np.ndarray:
    """Run lengths of ``detector`` on in-control data until ``alarms`` alarms were seen."""
    lengths: list[np.ndarray] = []
    last, offset, count, chunk = -1, 0, 0, 2_000_000
    while count < alarms:
        drifts = detector.update(draw(chunk)).drifts + offset  # type: ignore[attr-defined]
        if drifts.size:
            lengths.append(np.diff(np.concatenate([[last], drifts])))
            last = int(drifts[-1])
            count += drifts.size
        offset += chunk
    return np.concatenate(lengths)


def arl_check(seed: int, direct: bool) -> None:
    """Simulated in-control ARL against the target and the exact Markov-chain value."""
    rng = np.random.default_rng(seed + 99)
    exponential_knots = -np.log1p(-(np.arange(256) + 0.5) / 256)  # exact quantiles of Exp(1)
    cases: list[tuple[str, object, Callable[[int], np.ndarray], float]] = [
        (
            "CUSUM p0=0.10",
            CUSUM(REFERENCE_RATE, arl=1e5),
            lambda n: rng.random(n) < REFERENCE_RATE,
            1e5,
        ),
        (
            "CUSUM p0=0.10",
            CUSUM(REFERENCE_RATE, arl=1e6),
            lambda n: rng.random(n) < REFERENCE_RATE,
            1e6,
        ),
        (
            "CUSUM p0=0.02, odds ratio 3",
            CUSUM(0.02, odds_ratio=3.0, arl=1e6),
            lambda n: rng.random(n) < 0.02,
            1e6,
        ),
        (
            "LossCUSUM, Exp(1) losses, shift 0.5",
            LossCUSUM(exponential_knots.tolist(), arl=1e5),
            lambda n: rng.exponential(size=n),
            1e5,
        ),
    ]
    if direct:
        cases.append(
            ("CUSUM p0=0.10", CUSUM(REFERENCE_RATE), lambda n: rng.random(n) < REFERENCE_RATE, 1e7)
        )
    print("\n### In-control average run length: simulated against the target\n")
    print("| chart | target | exact chain | simulated (95 % interval) | alarms | ratio |")
    print("|---|---:|---:|---|---:|---:|")
    for label, detector, draw, target in cases:
        lengths = simulated_arl(detector, draw, alarms=400)
        mean = float(lengths.mean())
        half = 1.96 * float(lengths.std(ddof=1)) / np.sqrt(lengths.size)
        exact = detector.expected_arl  # type: ignore[attr-defined]
        print(
            f"| {label} | {target:.0e} | {exact:,.0f} | {mean:,.0f} "
            f"({mean - half:,.0f}-{mean + half:,.0f}) | {lengths.size} | {mean / target:.3f} |"
        )
    default = CUSUM(REFERENCE_RATE)
    print(
        f"\ndefault CUSUM(0.10): threshold h = {default.threshold:.3f} (log-likelihood units), "
        f"p1' = {default.alternative_rate:.4f}, exact in-control ARL {default.expected_arl:,.0f}"
    )


# --- scored streams: error bits with the scores they were made at ----------------------------

REFERENCE_ROWS = 100_000
RATES = [0.10, 0.25, 0.10, 0.30]


def score_spread() -> float:
    """sigma of a calibrated model's logit, N(0, sigma^2), whose error rate is 0.10 at 0.5."""
    z = np.random.default_rng(0).standard_normal(2_000_000)
    return brentq(lambda sigma: float(risk_of(expit(sigma * z)).mean()) - REFERENCE_RATE, 0.5, 50)


def risk_of(scores: np.ndarray) -> np.ndarray:
    """A calibrated model's chance of erring at each score (threshold 0.5)."""
    return np.minimum(scores, 1.0 - scores)


def flipped(p0: np.ndarray, share: np.ndarray) -> np.ndarray:
    """The error rate once a ``share`` of labels is reversed."""
    return p0 + share * (1.0 - 2.0 * p0)


def odds_raised(p0: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """The error rate once the odds of an error are ``ratio`` times the reference's."""
    odds = ratio * p0 / (1.0 - p0)
    return odds / (1.0 + odds)


def odds_for(rate: float, sigma: float) -> float:
    """The odds ratio whose raised errors average ``rate`` over the model's scores."""
    p0 = risk_of(expit(sigma * np.random.default_rng(1).standard_normal(2_000_000)))
    return brentq(lambda r: float(odds_raised(p0, np.float64(r)).mean()) - rate, 1.0, 1e3)


def scored_stream(sigma: float, shape: str, amounts: np.ndarray, seed: int) -> np.ndarray:
    """``(n, 2)`` rows of (error bit, score) of the calibrated model; step t errs at
    ``flipped(p0, amounts[t])`` or ``odds_raised(p0, amounts[t])``, p0 its reference risk."""
    rng = np.random.default_rng(seed)
    scores = expit(sigma * rng.standard_normal(amounts.size))
    p0 = risk_of(scores)
    p = flipped(p0, amounts) if shape == "flip" else odds_raised(p0, amounts)
    return np.column_stack([rng.random(amounts.size) < p, scores]).astype(np.float64)


def read_by(kind: str, rows: np.ndarray) -> np.ndarray:
    """What a detector of ``kind`` reads of (error bit, score) rows: both, or the bits."""
    return rows if kind == "scored" else rows[:, 0]


def risk_comparison(n_seeds: int, steps: int, batch: int, seed: int) -> None:
    """The risk-adjusted CUSUM beside the error-bit detectors, ours and River's, on streams
    that carry scores: a change that reverses a share of labels at every score (``flip``)
    and one that multiplies the odds of an error at every score (``odds``)."""

    sigma = score_spread()
    ramp_start, ramp_length = steps // 2, min(50_000, steps // 4)
    abrupt_rates = segment_rates(steps, RATES)
    t = np.arange(steps)
    ramp = np.clip((t - ramp_start) / ramp_length, 0.0, 1.0)
    ramp_rates = REFERENCE_RATE + (0.25 - REFERENCE_RATE) * ramp
    odds = {rate: odds_for(rate, sigma) for rate in set(RATES) - {REFERENCE_RATE}}
    odds[REFERENCE_RATE] = 1.0
    amounts = {
        ("abrupt", "flip"): (abrupt_rates - REFERENCE_RATE) / (1.0 - 2.0 * REFERENCE_RATE),
        ("gradual", "flip"): (ramp_rates - REFERENCE_RATE) / (1.0 - 2.0 * REFERENCE_RATE),
        ("abrupt", "odds"): segment_rates(steps, [odds[r] for r in RATES]),
        ("gradual", "odds"): 1.0 + (odds[0.25] - 1.0) * ramp,
    }
    nominal = {
        "abrupt": abrupt_rates,
        "gradual": ramp_rates,
        "none": np.full(steps, REFERENCE_RATE),
    }
    print(
        f"\n### Scored streams: calibrated model, logit ~ N(0, {sigma:.3f}^2), "
        f"{REFERENCE_ROWS:,} reference rows per seed, odds ratios "
        f"{odds[0.25]:.2f} (0.25) and {odds[0.30]:.2f} (0.30)\n"
    )

    def references(k: int) -> dict[str, list[float]]:
        rng = np.random.default_rng(seed + 1000 * k + 11)
        scores = expit(sigma * rng.standard_normal(REFERENCE_ROWS))
        errors = (scores >= 0.5) != (rng.random(REFERENCE_ROWS) < scores)
        return {"errors": errors, "scores": scores}

    rows: list[tuple[str, str, Callable[[dict], object]]] = [
        (
            "risk CUSUM, the default (flip 0.1, odds ratio 2, arl 1e9)",
            "scored",
            lambda ref: RiskCUSUM.from_reference(ref["errors"], ref["scores"]),
        ),
        (
            "risk CUSUM, arl 1e7",
            "scored",
            lambda ref: RiskCUSUM.from_reference(ref["errors"], ref["scores"], arl=1e7),
        ),
        (
            "CUSUM p0 from the reference (arl 1e7)",
            "bits",
            lambda ref: CUSUM(reference_rate=float(ref["errors"].mean())),
        ),
        *baselines("bits"),
    ]
    names = [("abrupt", "flip"), ("gradual", "flip"), ("abrupt", "odds"), ("gradual", "odds")]
    results: dict[str, dict[tuple[str, str], list[Score]]] = {
        label: {key: [] for key in [*names, ("none", "")]} for label, _, _ in rows
    }
    for k in range(n_seeds):
        reference = references(k)
        streams = {
            key: scored_stream(sigma, key[1], amounts[key], seed + 1000 * k + 20 + i)
            for i, key in enumerate(names)
        }
        streams[("none", "")] = scored_stream(sigma, "flip", np.zeros(steps), seed + 1000 * k + 29)
        for label, kind, factory in rows:
            for key, x in streams.items():
                make = functools.partial(factory, reference)
                if kind == "river":
                    found = run_river(make, read_by(kind, x)).drifts
                else:
                    found = run_ours(make, read_by(kind, x), batch).drifts
                results[label][key].append(score_against_reference(found, nominal[key[0]]))

    calm = streams[("none", "")]
    speeds = []
    for label, kind, factory in rows[:3]:
        make = functools.partial(factory, reference)
        rate = run_ours(make, read_by(kind, calm), batch, repeats=3).rate
        speeds.append(f"{label}: {rate / 1e6:.1f}M")
    print(f"Updates per CPU second, best of 3, batches of {batch:,}: " + "; ".join(speeds) + "\n")
    reference_steps = n_seeds * (steps + 2 * (steps // 2 + ramp_start))
    print(
        f"Over {n_seeds} seeds; {reference_steps:,} steps at the reference rate in all "
        "(both shapes' change streams and the no-change stream).\n"
    )
    print(
        "| detector | change | rises found | median delay 0.10->0.25 | 0.10->0.30 | ramp "
        "| median, all rises | ratio to River ADWIN | false alarms (change streams) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")

    def median(values: list[int | None]) -> str:
        found = [v for v in values if v is not None]
        return f"{np.median(found):.0f}" if found else "-"

    river = "River ADWIN (defaults)"
    lines: dict[tuple[str, str], tuple[list[int | None], ...]] = {}
    medians: dict[tuple[str, str], float] = {}
    for shape in ("flip", "odds"):
        for label, _, _ in rows:
            abrupt, gradual = results[label][("abrupt", shape)], results[label][("gradual", shape)]
            delays = (
                [s.delays[0] for s in abrupt],
                [s.delays[1] for s in abrupt],
                [s.delays[0] for s in gradual],
            )
            every = [d for values in delays for d in values if d is not None]
            medians[(label, shape)] = float(np.median(every)) if every else float("nan")
            lines[(label, shape)] = delays
    for shape in ("flip", "odds"):
        for label, _, _ in rows:
            first, second, ramps = lines[(label, shape)]
            found = sum(d is not None for d in first + second + ramps)
            ratio = medians[(label, shape)] / medians[(river, shape)]
            false = sum(
                s.false_alarms
                for s in results[label][("abrupt", shape)] + results[label][("gradual", shape)]
            )
            print(
                f"| {label} | {shape} | {found}/{3 * n_seeds} | {median(first)} "
                f"| {median(second)} | {median(ramps)} | {medians[(label, shape)]:.0f} "
                f"| {ratio:.2f} | {false} |"
            )
    print("\n| detector | false alarms, no-change streams | all false alarms |")
    print("|---|---:|---:|")
    for label, _, _ in rows:
        none = sum(s.false_alarms for s in results[label][("none", "")])
        every = sum(s.false_alarms for runs in results[label].values() for s in runs)
        print(f"| {label} | {none} | {every} |")
    for shape in ("flip", "odds"):
        for label, _, _ in rows[:3]:
            print(
                f"median delay ratio ({shape}), {label} / {river}: "
                f"{medians[(label, shape)] / medians[(river, shape)]:.2f} (target <= 0.8)"
            )


def risk_arl_check(seed: int) -> None:
    """The risk-adjusted pair's simulated in-control ARL against its target."""
    sigma = score_spread()
    rng = np.random.default_rng(seed + 98)

    def draw(n: int) -> np.ndarray:
        s = expit(sigma * rng.standard_normal(n))
        return np.column_stack([rng.random(n) < risk_of(s), s]).astype(np.float64)

    print("\n### Risk-adjusted CUSUM: in-control average run length, simulated\n")
    print(
        "The stream errs at each score at the model's true rate; the detector's rates come "
        "from a reference of the given size (the chain is exact for those rates, so a small "
        "reference shows what estimating them costs).\n"
    )
    print("| reference rows | target | exact, each chart | simulated (95 % interval) ", end="")
    print("| alarms | ratio |")
    print("|---:|---:|---|---|---:|---:|")
    for rows, target in ((10_000_000, 1e5), (10_000_000, 1e6), (REFERENCE_ROWS, 1e6)):
        reference = draw(rows)
        detector = RiskCUSUM.from_reference(reference[:, 0], reference[:, 1], arl=target)
        lengths = simulated_arl(detector, draw, alarms=400)
        mean = float(lengths.mean())
        half = 1.96 * float(lengths.std(ddof=1)) / np.sqrt(lengths.size)
        charts = " / ".join(f"{a:,.0f}" for a in detector.chart_arls)
        print(
            f"| {rows:,} | {target:.0e} | {charts} "
            f"| {mean:,.0f} ({mean - half:,.0f}-{mean + half:,.0f}) "
            f"| {lengths.size} | {mean / target:.3f} |"
        )


if __name__ == "__main__":
    main()
