"""Challenger against champion on the same requests: McNemar's exact test, the paired t-test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.comparison import Moments, welch_comparison
from driftwarden.detectors.pairing import (
    PairedClassificationSummary,
    PairedRegressionSummary,
    mcnemar_comparison,
    newcombe_paired_interval,
    paired_t_comparison,
)


def wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's bounds: the roots in p of (k/n - p)^2 = z^2 p (1 - p) / n."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    a = 1 + z * z / n
    b = -(2 * k / n + z * z / n)
    c = (k / n) ** 2
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def newcombe_paired(table: list[list[int]], confidence: float) -> tuple[float, float]:
    """Newcombe (1998, Stat Med 17:2635) for p1 - p2 of [[n11, n12], [n21, n22]].

    Rows: first member has the outcome (yes, no); columns: second member
    (yes, no); p1 = row-1 share, p2 = column-1 share. The correlation uses
    Newcombe's corrected numerator, as in Fagerland, Lydersen & Laake (2014).
    """
    (n11, n12), (n21, n22) = table
    n = n11 + n12 + n21 + n22
    r1, r2, c1, c2 = n11 + n12, n21 + n22, n11 + n21, n12 + n22
    p1, p2 = r1 / n, c1 / n
    l1, u1 = wilson(r1, n, confidence)
    l2, u2 = wilson(c1, n, confidence)
    if 0 in (r1, r2, c1, c2):
        phi = 0.0
    else:
        a = n11 * n22 - n12 * n21
        if a > n / 2:
            a -= n / 2
        elif a >= 0:
            a = 0
        phi = a / math.sqrt(r1 * r2 * c1 * c2)
    e1, e2 = p1 - l1, u2 - p2  # towards the lower bound of p1 - p2
    f1, f2 = u1 - p1, p2 - l2  # towards the upper bound
    low = (p1 - p2) - math.sqrt(e1 * e1 - 2 * phi * e1 * e2 + e2 * e2)
    high = (p1 - p2) + math.sqrt(f1 * f1 - 2 * phi * f1 * f2 + f2 * f2)
    return low, high


def summary_of(both_correct: int, champion_only: int, challenger_only: int, both_wrong: int):
    return PairedClassificationSummary(
        both_correct, champion_only, challenger_only, both_wrong, both_correct + both_wrong
    )


# --- the paired classification summary --------------------------------------------------


def test_classification_summary_counts_and_merges() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 3000)
    champion = np.where(rng.random(3000) < 0.8, y, rng.integers(0, 4, 3000))
    challenger = np.where(rng.random(3000) < 0.8, y, rng.integers(0, 4, 3000))
    s = PairedClassificationSummary.from_arrays(y, champion, challenger)
    old, new = champion == y, challenger == y
    assert s.both_correct == np.sum(old & new)
    assert s.champion_only_correct == np.sum(old & ~new)
    assert s.challenger_only_correct == np.sum(~old & new)
    assert s.both_wrong == np.sum(~old & ~new)
    assert s.same_prediction == np.sum(champion == challenger)
    assert s.n == 3000
    assert s.agreement == pytest.approx(np.mean(champion == challenger))
    merged = PairedClassificationSummary.empty()
    for part in np.array_split(np.arange(3000), 7):
        merged = merged.merge(
            PairedClassificationSummary.from_arrays(y[part], champion[part], challenger[part])
        )
    assert merged == s
    assert PairedClassificationSummary.from_state(json.loads(json.dumps(s.to_state()))) == s
    assert PairedClassificationSummary.empty().agreement is None


def test_classification_summary_validation() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        PairedClassificationSummary.from_arrays([1, 0], [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="champion_pred must be 1-D"):
        PairedClassificationSummary.from_arrays([1], [[1]], [1])
    with pytest.raises(ValueError, match="both_wrong must be a non-negative int, got -1"):
        PairedClassificationSummary(1, 2, 3, -1, 0)
    with pytest.raises(ValueError, match=r"same_prediction must lie between .* got 0 outside"):
        PairedClassificationSummary(2, 0, 0, 1, 0)
    with pytest.raises(ValueError, match="cannot merge"):
        PairedClassificationSummary.empty().merge(PairedRegressionSummary.empty())


# --- McNemar's exact test and Newcombe's paired interval --------------------------------


@pytest.mark.parametrize(
    ("b", "c"),
    [(0, 5), (5, 0), (3, 3), (1, 2), (10, 25), (25, 10), (40, 41), (400, 470), (2000, 2300)],
)
def test_mcnemar_p_value_equals_scipy_binomtest(b: int, c: int) -> None:
    s = summary_of(5000, b, c, 700)
    r = mcnemar_comparison(s)
    assert r.method == "mcnemar_exact"
    assert r.n_pairs == s.n
    assert r.statistic is None
    assert r.p_value == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)
    assert r.difference == pytest.approx((b - c) / s.n, abs=1e-16)


@pytest.mark.parametrize(
    "cells", [(5000, 10, 25, 700), (80, 6, 16, 59), (12, 1, 7, 1), (0, 3, 0, 9), (50, 0, 0, 50)]
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_newcombe_interval_equals_textbook(cells, confidence: float) -> None:
    both_correct, b, c, both_wrong = cells
    r = mcnemar_comparison(summary_of(*cells), confidence=confidence, min_pairs=1)
    # error indicators: rows = challenger wrong (yes, no), columns = champion wrong (yes, no)
    table = [[both_wrong, b], [c, both_correct]]
    low, high = newcombe_paired(table, confidence)
    assert r.ci_low == pytest.approx(low, abs=1e-12)
    assert r.ci_high == pytest.approx(high, abs=1e-12)
    assert r.ci_low <= r.difference <= r.ci_high
    accuracy = mcnemar_comparison(
        summary_of(*cells), "accuracy", confidence=confidence, min_pairs=1
    )
    assert accuracy.difference == -r.difference
    assert accuracy.interval == (-r.ci_high, -r.ci_low)
    assert accuracy.p_value == r.p_value


def test_newcombe_paired_interval_reproduces_a_published_example() -> None:
    # Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables,
    # ch. 8: Cavo et al., complete response before/after therapy, [[59, 6], [16, 80]]
    low, high = newcombe_paired_interval(59, 6, 16, 80)
    assert (round((6 - 16) / 161, 4), round(float(low), 4), round(float(high), 4)) == (
        -0.0621,
        -0.1186,
        -0.0046,
    )
    low, high = newcombe_paired_interval([59, 0], [6, 0], [16, 0], [80, 0])
    assert math.isnan(low[1]) and math.isnan(high[1])


def test_newcombe_paired_interval_covers_near_nominal() -> None:
    rng = np.random.default_rng(6)
    probabilities = [0.04, 0.09, 0.05, 0.82]  # both wrong, challenger only, champion only, none
    tables = rng.multinomial(120, probabilities, size=20_000)
    low, high = newcombe_paired_interval(*tables.T)
    theta = (probabilities[0] + probabilities[1]) - (probabilities[0] + probabilities[2])
    covered = np.mean((low <= theta) & (theta <= high))
    assert 0.935 <= covered <= 0.965


def test_mcnemar_decision_status_and_validation() -> None:
    worse = mcnemar_comparison(summary_of(800, 60, 25, 115))
    assert worse.p_value < 0.05
    assert (worse.worse, worse.better, worse.higher_is_better) == (True, False, False)
    # the same requests in the accuracy orientation: a drop, still worse
    accuracy = mcnemar_comparison(summary_of(800, 60, 25, 115), "accuracy")
    assert (accuracy.worse, accuracy.better, accuracy.higher_is_better) == (True, False, True)
    assert accuracy.difference < 0
    assert mcnemar_comparison(summary_of(800, 25, 60, 115), "accuracy").better
    # no discordant pair: the versions are equally right on every request
    same = mcnemar_comparison(summary_of(800, 0, 0, 115))
    assert (same.status, same.difference, same.p_value, same.worse) == ("ok", 0.0, 1.0, False)
    assert same.ci_low < 0 < same.ci_high
    few = mcnemar_comparison(summary_of(400, 20, 5, 74))
    assert (few.status, few.difference, few.n_pairs) == ("insufficient_data", None, 499)
    assert mcnemar_comparison(summary_of(400, 20, 5, 74), min_pairs=499).status == "ok"
    assert mcnemar_comparison(PairedClassificationSummary.empty(), min_pairs=0).status == (
        "insufficient_data"
    )
    with pytest.raises(ValueError, match="metric must be one of"):
        mcnemar_comparison(summary_of(1, 1, 1, 1), "f1")
    with pytest.raises(ValueError, match="summary must be a PairedClassificationSummary"):
        mcnemar_comparison((1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"confidence must be a number in \(0, 1\)"):
        mcnemar_comparison(summary_of(1, 1, 1, 1), confidence=1.0)


# --- the paired regression summary and the paired t-test --------------------------------


def _regression(rng: np.random.Generator, n: int, shift: float = 0.0, offset: float = 0.0):
    y = rng.normal(20, 5, n)
    champion = y + rng.normal(0, 1.0, n)
    challenger = y + 0.9 * (champion - y) + rng.normal(shift, 0.3, n)
    return {
        "champion_loss": (champion - y) ** 2 + offset,
        "challenger_loss": (challenger - y) ** 2 + offset,
        "champion_prediction": champion,
        "challenger_prediction": challenger,
    }


@pytest.mark.parametrize("n", [2, 3, 30, 2000])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.999])
def test_paired_t_equals_scipy_ttest_rel(n: int, confidence: float) -> None:
    rows = _regression(np.random.default_rng(n), n)
    summary = PairedRegressionSummary.from_arrays(**rows)
    r = paired_t_comparison(summary, confidence=confidence, min_pairs=2)
    expected = stats.ttest_rel(rows["challenger_loss"], rows["champion_loss"])
    interval = expected.confidence_interval(confidence_level=confidence)
    assert (r.method, r.n_pairs, r.metric) == ("paired_t", n, "loss")
    assert r.difference == pytest.approx(
        np.mean(rows["challenger_loss"] - rows["champion_loss"]), rel=1e-12
    )
    assert r.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert r.df == expected.df == n - 1
    assert r.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert r.ci_low == pytest.approx(interval.low, rel=1e-9)
    assert r.ci_high == pytest.approx(interval.high, rel=1e-9)


def test_paired_summary_merges_and_round_trips() -> None:
    rows = _regression(np.random.default_rng(1), 3000)
    whole = PairedRegressionSummary.from_arrays(**rows)
    merged = PairedRegressionSummary.empty()
    for part in np.array_split(np.arange(3000), 11):
        merged = merged.merge(
            PairedRegressionSummary.from_arrays(**{k: v[part] for k, v in rows.items()})
        )
    assert merged.n == whole.n == 3000
    assert merged.differences.mean == pytest.approx(whole.differences.mean, rel=1e-12)
    assert merged.differences.m2 == pytest.approx(whole.differences.m2, rel=1e-12)
    assert merged.prediction_gap == pytest.approx(whole.prediction_gap, rel=1e-12)
    gap = np.abs(rows["challenger_prediction"] - rows["champion_prediction"])
    assert whole.mean_prediction_gap == pytest.approx(gap.mean(), rel=1e-12)
    spread = float(np.std(rows["champion_prediction"]))
    assert whole.relative_disagreement(spread) == pytest.approx(gap.mean() / spread, rel=1e-12)
    state = json.loads(json.dumps(merged.to_state()))
    assert PairedRegressionSummary.from_state(state) == merged
    assert PairedRegressionSummary.empty().relative_disagreement(1.0) is None


def test_paired_summary_validation() -> None:
    rows = _regression(np.random.default_rng(2), 5)
    with pytest.raises(ValueError, match="differ in shape"):
        PairedRegressionSummary.from_arrays(**{**rows, "champion_loss": rows["champion_loss"][1:]})
    with pytest.raises(ValueError, match="challenger_prediction must be finite, got inf at 0"):
        PairedRegressionSummary.from_arrays(**{**rows, "challenger_prediction": [np.inf] * 5})
    with pytest.raises(ValueError, match="reference_spread must be a finite number > 0"):
        PairedRegressionSummary.from_arrays(**rows).relative_disagreement(0.0)
    with pytest.raises(ValueError, match="prediction_gap must be a finite float >= 0"):
        PairedRegressionSummary(Moments.from_values([1.0]), -1.0)
    with pytest.raises(ValueError, match="the prediction gap of no requests is 0"):
        PairedRegressionSummary(Moments.empty(), 1.0)


def test_paired_t_around_large_offsets() -> None:
    rng = np.random.default_rng(3)
    # losses near 1e6 with a small paired difference: d itself is small
    rows = _regression(rng, 20_000, shift=0.01, offset=1e6)
    summary = PairedRegressionSummary.empty()
    for part in np.array_split(np.arange(20_000), 500):
        summary = summary.merge(
            PairedRegressionSummary.from_arrays(**{k: v[part] for k, v in rows.items()})
        )
    r = paired_t_comparison(summary)
    expected = stats.ttest_rel(rows["challenger_loss"], rows["champion_loss"])
    assert r.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert r.p_value == pytest.approx(expected.pvalue, rel=1e-8)
    assert r.ci_low == pytest.approx(expected.confidence_interval().low, rel=1e-9)
    # a difference that is itself near 1e6, with a tiny spread, over many panes
    champion_loss = rng.uniform(0, 1, 20_000)
    challenger_loss = champion_loss + 1e6 + rng.normal(0, 1e-3, 20_000)
    d = challenger_loss - champion_loss
    summary = PairedRegressionSummary.empty()
    for part in np.array_split(np.arange(20_000), 1000):
        summary = summary.merge(
            PairedRegressionSummary.from_arrays(
                champion_loss=champion_loss[part],
                challenger_loss=challenger_loss[part],
                champion_prediction=champion_loss[part],
                challenger_prediction=champion_loss[part],
            )
        )
    centred = d - 1e6  # exact (Sterbenz): the reference without rounding in the mean
    assert summary.differences.variance == pytest.approx(np.var(centred, ddof=1), rel=1e-11)
    r = paired_t_comparison(summary, min_pairs=2)
    expected = stats.ttest_1samp(centred, -1e6)
    assert r.statistic == pytest.approx(expected.statistic, rel=1e-9)
    interval = stats.ttest_1samp(centred, 0.0).confidence_interval()
    # bounds near 1e6 are stored to 1.2e-10 (one unit in the last place)
    assert r.ci_low == pytest.approx(1e6 + interval.low, abs=3e-10)
    assert r.ci_high == pytest.approx(1e6 + interval.high, abs=3e-10)
    assert summary.relative_disagreement(1.0) == 0.0


def test_paired_t_undefined_insufficient_and_decisions() -> None:
    rng = np.random.default_rng(4)
    loss = rng.uniform(0, 1, 800)
    prediction = rng.normal(size=800)
    same = PairedRegressionSummary.from_arrays(
        champion_loss=loss,
        challenger_loss=loss,
        champion_prediction=prediction,
        challenger_prediction=prediction,
    )
    r = paired_t_comparison(same)
    assert (r.status, r.difference, r.worse, r.better, r.n_pairs) == (
        "undefined",
        None,
        False,
        False,
        800,
    )
    shifted = PairedRegressionSummary.from_arrays(
        champion_loss=loss,
        challenger_loss=loss + 0.1,
        champion_prediction=prediction,
        challenger_prediction=prediction,
    )
    assert paired_t_comparison(shifted).status == "undefined"  # constant up to rounding
    rows = _regression(rng, 499, shift=0.05)
    assert paired_t_comparison(PairedRegressionSummary.from_arrays(**rows)).status == (
        "insufficient_data"
    )
    rows = _regression(rng, 5000, shift=0.05)
    summary = PairedRegressionSummary.from_arrays(**rows)
    r = paired_t_comparison(summary, "squared_error")
    assert r.difference < 0 and r.better and not r.worse
    flipped = paired_t_comparison(summary, "gain", higher_is_better=True)
    assert flipped.worse and not flipped.better
    # pairing removes the variation both versions share: Welch on the same rows sees less
    welch = welch_comparison(
        Moments.from_values(rows["champion_loss"]), Moments.from_values(rows["challenger_loss"])
    )
    assert welch.difference == pytest.approx(r.difference, rel=1e-9)
    assert welch.ci_high - welch.ci_low > 3 * (r.ci_high - r.ci_low)


def test_paired_t_vectorized_and_validated() -> None:
    rng = np.random.default_rng(5)
    summaries = [PairedRegressionSummary.from_arrays(**_regression(rng, n)) for n in (600, 300)]
    results = paired_t_comparison(summaries, ["squared_error", "absolute_error"])
    assert [r.status for r in results] == ["ok", "insufficient_data"]
    assert results[0] == paired_t_comparison(summaries[0], "squared_error")
    with pytest.raises(ValueError, match="summary must be one summary"):
        paired_t_comparison(summaries)
    with pytest.raises(ValueError, match="summary must be a sequence of 3 summaries"):
        paired_t_comparison(summaries, ["loss"] * 3)
    with pytest.raises(ValueError, match="summary must hold PairedRegressionSummary"):
        paired_t_comparison([summaries[0], 1.0], ["loss", "loss"])
    with pytest.raises(ValueError, match="unknown direction of metric 'pinball'"):
        paired_t_comparison(summaries[0], "pinball")
    with pytest.raises(ValueError, match="min_pairs must be a non-negative integer"):
        paired_t_comparison(summaries[0], min_pairs=2.5)
