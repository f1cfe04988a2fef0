"""Challenger against champion on separate traffic: result, moments, two rates, Welch's t."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.comparison import (
    ComparisonResult,
    ExpectedCount,
    Moments,
    expected_rate_comparison,
    higher_is_better_of,
    two_proportion_comparison,
    welch_comparison,
)


def wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's bounds: the roots in p of (k/n - p)^2 = z^2 p (1 - p) / n."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    a = 1 + z * z / n
    b = -(2 * k / n + z * z / n)
    c = (k / n) ** 2
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def newcombe_independent(k0: int, n0: int, k1: int, n1: int, confidence: float):
    """Newcombe (1998) method 10 for p1 - p0."""
    p0, p1 = k0 / n0, k1 / n1
    l0, u0 = wilson(k0, n0, confidence)
    l1, u1 = wilson(k1, n1, confidence)
    d = p1 - p0
    return d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt(
        (u1 - p1) ** 2 + (p0 - l0) ** 2
    )


def pooled_z(k0: int, n0: int, k1: int, n1: int) -> tuple[float, float]:
    """The pooled two-proportion z statistic and its two-sided p-value."""
    p = (k0 + k1) / (n0 + n1)
    z = (k1 / n1 - k0 / n0) / math.sqrt(p * (1 - p) * (1 / n0 + 1 / n1))
    return z, math.erfc(abs(z) / math.sqrt(2))


# --- the result -------------------------------------------------------------------------


def test_result_validation() -> None:
    common = {"metric": "loss", "method": "welch_t", "higher_is_better": False}
    levels = {"confidence": 0.95, "alpha": 0.05}
    ok = ComparisonResult(
        **common, **levels, difference=0.1, ci_low=0.0, ci_high=0.2, p_value=0.04, worse=True
    )
    assert ok.interval == (0.0, 0.2)
    with pytest.raises(ValueError, match="carries no numbers"):
        ComparisonResult(**common, **levels, status="undefined", difference=0.1)
    with pytest.raises(ValueError, match="carries no numbers"):
        ComparisonResult(**common, **levels, status="insufficient_data", worse=True)
    with pytest.raises(ValueError, match="needs p_value"):
        ComparisonResult(**common, **levels, difference=0.1, ci_low=0.0, ci_high=0.2)
    with pytest.raises(ValueError, match="ci_high must be finite"):
        ComparisonResult(
            **common, **levels, difference=0.1, ci_low=0.0, ci_high=math.inf, p_value=0.5
        )
    with pytest.raises(ValueError, match=r"p_value must lie in \[0, 1\], got 1.5"):
        ComparisonResult(**common, **levels, difference=0.1, ci_low=0.0, ci_high=0.2, p_value=1.5)
    with pytest.raises(ValueError, match="both worse and better"):
        ComparisonResult(
            **common,
            **levels,
            difference=0.1,
            ci_low=0.0,
            ci_high=0.2,
            p_value=0.01,
            worse=True,
            better=True,
        )


def test_directions() -> None:
    assert higher_is_better_of("error_rate") is False
    assert higher_is_better_of("loss") is False
    assert higher_is_better_of("log_loss") is False
    assert higher_is_better_of("accuracy") is True
    assert higher_is_better_of("roc_auc") is True
    assert higher_is_better_of("recall_spam") is True
    assert higher_is_better_of("latency", higher_is_better=False) is False
    with pytest.raises(ValueError, match="unknown direction of metric 'latency'"):
        higher_is_better_of("latency")
    with pytest.raises(ValueError, match="higher_is_better must be a bool"):
        higher_is_better_of("loss", higher_is_better=1)
    with pytest.raises(ValueError, match="metric must be a non-empty string"):
        higher_is_better_of("")


# --- mergeable moments ------------------------------------------------------------------


def test_moments_of_values_and_merge_equal_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 0.3, 5003)
    whole = Moments.from_values(x)
    assert whole.n == x.size
    assert whole.mean == pytest.approx(x.mean(), rel=1e-14)
    assert whole.variance == pytest.approx(x.var(ddof=1), rel=1e-13)
    merged = Moments.empty()
    for part in np.array_split(x, 17):
        merged = merged.merge(Moments.from_values(part))
    assert merged.n == whole.n
    assert merged.mean == pytest.approx(whole.mean, rel=1e-14)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-13)
    # either order, and the empty summary is neutral
    a, b = Moments.from_values(x[:100]), Moments.from_values(x[100:])
    assert b.merge(a).m2 == pytest.approx(a.merge(b).m2, rel=1e-13)
    assert a.merge(Moments.empty()) == a
    assert Moments.empty().merge(a) == a
    assert Moments.from_values([]) == Moments.empty()
    assert Moments.from_values([2.5]).variance is None


@pytest.mark.parametrize("sd", [1e-2, 1e-3, 1e-5])
def test_moments_keep_their_digits_around_a_large_offset(sd: float) -> None:
    rng = np.random.default_rng(1)
    x = 1e6 + rng.normal(0, sd, 20_000)
    exact = np.var(x - np.median(x), ddof=1)  # centred first: numpy keeps every digit
    merged = Moments.empty()
    for part in np.array_split(x, 1000):
        merged = merged.merge(Moments.from_values(part))
    assert merged.variance == pytest.approx(exact, rel=1e-11)
    assert merged.mean == pytest.approx(x.mean(), rel=1e-15)
    # raw sums lose every digit; shifted sums keep them
    naive = Moments.from_sums(x.size, float(x.sum()), float(np.dot(x, x)))
    assert abs(naive.variance / exact - 1) > 0.01
    c = 1e6
    shifted = Moments.from_sums(x.size, float(np.sum(x - c)), float(np.dot(x - c, x - c)), c)
    assert shifted.variance == pytest.approx(exact, rel=1e-9)
    assert shifted.mean == pytest.approx(x.mean(), rel=1e-15)


def test_moments_state_round_trip_and_validation() -> None:
    rng = np.random.default_rng(2)
    m = Moments.from_values(rng.normal(3.0, 1.0, 50)).merge(Moments.from_values([9.0, 1.5]))
    state = json.loads(json.dumps(m.to_state()))
    assert Moments.from_state(state) == m
    with pytest.raises(ValueError, match=r"values must be finite, got nan at 1"):
        Moments.from_values([1.0, np.nan])
    with pytest.raises(ValueError, match="losses must be 1-D"):
        Moments.from_values([[1.0]], "losses")
    with pytest.raises(ValueError, match="m2 must be >= 0"):
        Moments.from_state({"n": 3, "shift": 0.0, "shifted_mean": 1.0, "m2": -1.0})
    with pytest.raises(ValueError, match="moments of no rows"):
        Moments(0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        Moments(-1, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="total_sq must be >= 0"):
        Moments.from_sums(3, 1.0, -2.0)
    with pytest.raises(ValueError, match="shift must be a finite number"):
        Moments.from_sums(3, 1.0, 2.0, shift=math.nan)
    with pytest.raises(ValueError, match="only Moments merge"):
        m.merge((1, 2.0, 3.0))


# --- two independent rates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("k0", "n0", "k1", "n1"),
    [(48, 80, 56, 70), (1, 34, 7, 34), (120, 4000, 171, 3100), (0, 600, 3, 500), (9, 10, 1, 12)],
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_two_proportions_equal_textbook_formulas(k0, n0, k1, n1, confidence) -> None:
    r = two_proportion_comparison(k0, n0, k1, n1, "accuracy", confidence=confidence, min_per_arm=1)
    assert r.method == "two_proportion_z"
    assert (r.n_champion, r.n_challenger) == (n0, n1)
    assert r.difference == pytest.approx(k1 / n1 - k0 / n0, abs=1e-15)
    z, p = pooled_z(k0, n0, k1, n1)
    assert r.statistic == pytest.approx(z, rel=1e-12)
    assert r.p_value == pytest.approx(p, rel=1e-10, abs=1e-300)
    # the pooled z-test is Pearson's chi-squared test without continuity correction
    table = [[k0, n0 - k0], [k1, n1 - k1]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert r.p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    low, high = newcombe_independent(k0, n0, k1, n1, confidence)
    assert r.ci_low == pytest.approx(low, abs=1e-12)
    assert r.ci_high == pytest.approx(high, abs=1e-12)
    assert -1.0 <= r.ci_low <= r.difference <= r.ci_high <= 1.0


def test_two_proportions_reproduce_published_intervals() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a), method 10
    r = two_proportion_comparison(48, 80, 56, 70, "accuracy", min_per_arm=1)
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (0.0524, 0.3339)
    # Fagerland, Lydersen & Laake (2017), ch. 4: Perondi et al., 7/34 against 1/34
    r = two_proportion_comparison(1, 34, 7, 34, "accuracy", min_per_arm=1)
    assert (round(r.difference, 4), round(r.ci_low, 4), round(r.ci_high, 4)) == (
        0.1765,
        0.0189,
        0.3404,
    )


def test_two_proportions_decision_follows_direction_and_alpha() -> None:
    worse = two_proportion_comparison(100, 1000, 150, 1000)  # error rate up
    assert worse.higher_is_better is False
    assert worse.p_value < 0.05
    assert (worse.worse, worse.better) == (True, False)
    better = two_proportion_comparison(100, 1000, 150, 1000, "accuracy")  # accuracy up
    assert (better.worse, better.better) == (False, True)
    assert better.p_value == worse.p_value
    strict = two_proportion_comparison(100, 1000, 150, 1000, alpha=worse.p_value / 2)
    assert (strict.worse, strict.better) == (False, False)
    assert strict.status == "ok"


def test_two_proportions_edge_cases() -> None:
    r = two_proportion_comparison(10, 499, 10, 800)
    assert r.status == "insufficient_data"
    assert (r.difference, r.p_value, r.worse, r.n_champion, r.n_challenger) == (
        None,
        None,
        False,
        499,
        800,
    )
    # no error in either arm: the rates are equal, p = 1, the interval still has width
    r = two_proportion_comparison(0, 600, 0, 700)
    assert (r.status, r.difference, r.p_value, r.statistic) == ("ok", 0.0, 1.0, 0.0)
    assert r.ci_low < 0.0 < r.ci_high
    assert r.ci_low == pytest.approx(newcombe_independent(0, 600, 0, 700, 0.95)[0], abs=1e-15)
    r = two_proportion_comparison(600, 600, 700, 700)
    assert (r.status, r.difference, r.p_value) == ("ok", 0.0, 1.0)


def test_two_proportions_vectorized_equal_one_by_one() -> None:
    k0, n0 = np.array([30, 0, 5, 200]), np.array([600, 600, 100, 1000])
    k1, n1 = np.array([45, 2, 5, 150]), np.array([500, 550, 700, 1000])
    names = ["error_rate", "recall_spam", "abstention", "accuracy"]
    with pytest.raises(ValueError, match="unknown direction of metric 'abstention'"):
        two_proportion_comparison(k0, n0, k1, n1, names, min_per_arm=1)
    results = two_proportion_comparison(k0, n0, k1, n1, names, higher_is_better=False)
    assert [r.metric for r in results] == names
    assert [r.status for r in results] == ["ok", "ok", "insufficient_data", "ok"]
    for i, r in enumerate(results):
        one = two_proportion_comparison(
            int(k0[i]), int(n0[i]), int(k1[i]), int(n1[i]), names[i], higher_is_better=False
        )
        assert r == one


def test_two_proportions_validation() -> None:
    with pytest.raises(ValueError, match="champion_successes must not exceed champion_trials"):
        two_proportion_comparison(11, 10, 1, 10)
    with pytest.raises(ValueError, match=r"challenger_trials must hold counts >= 0, got -3"):
        two_proportion_comparison(1, 10, 0, -3)
    with pytest.raises(ValueError, match=r"champion_successes must hold counts >= 0, got 2.5"):
        two_proportion_comparison(2.5, 10, 1, 10)
    with pytest.raises(ValueError, match="must hold integer counts"):
        two_proportion_comparison(True, 10, 1, 10)
    with pytest.raises(ValueError, match="champion_successes must be a single value"):
        two_proportion_comparison([1, 2], [10, 10], 1, 10)
    with pytest.raises(ValueError, match="2 values, one per metric"):
        two_proportion_comparison(1, 10, 1, 10, ["error_rate", "accuracy"])
    with pytest.raises(ValueError, match=r"confidence must be a number in \(0, 1\), got 95"):
        two_proportion_comparison(1, 10, 1, 10, confidence=95)
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\), got 0"):
        two_proportion_comparison(1, 10, 1, 10, alpha=0)
    with pytest.raises(ValueError, match="min_per_arm must be a non-negative integer"):
        two_proportion_comparison(1, 10, 1, 10, min_per_arm=-1)
    with pytest.raises(ValueError, match="non-empty sequence of names"):
        two_proportion_comparison([], [], [], [], [])


def test_newcombe_interval_covers_near_nominal() -> None:
    rng = np.random.default_rng(8)
    size, n0, n1, p0, p1 = 20_000, 60, 45, 0.1, 0.2
    k0, k1 = rng.binomial(n0, p0, size), rng.binomial(n1, p1, size)
    results = two_proportion_comparison(
        k0, np.full(size, n0), k1, np.full(size, n1), ["error_rate"] * size, min_per_arm=1
    )
    covered = np.mean([r.ci_low <= p1 - p0 <= r.ci_high for r in results])
    assert 0.935 <= covered <= 0.965
    # the z-test holds its level when the rates are equal
    k1 = rng.binomial(n1, p0, size)
    results = two_proportion_comparison(
        k0, np.full(size, n0), k1, np.full(size, n1), ["error_rate"] * size, min_per_arm=1
    )
    assert np.mean([r.worse or r.better for r in results]) < 0.065


# --- Welch's t-test ---------------------------------------------------------------------


def _welch_matches_scipy(champion: np.ndarray, challenger: np.ndarray, confidence: float, rel):
    r = welch_comparison(
        Moments.from_values(champion),
        Moments.from_values(challenger),
        confidence=confidence,
        min_per_arm=2,
    )
    expected = stats.ttest_ind(challenger, champion, equal_var=False)
    interval = expected.confidence_interval(confidence_level=confidence)
    assert r.method == "welch_t"
    assert (r.n_champion, r.n_challenger) == (champion.size, challenger.size)
    assert r.statistic == pytest.approx(expected.statistic, rel=rel)
    assert r.df == pytest.approx(expected.df, rel=rel)
    assert r.p_value == pytest.approx(expected.pvalue, rel=rel, abs=1e-300)
    assert r.ci_low == pytest.approx(interval.low, rel=rel)
    assert r.ci_high == pytest.approx(interval.high, rel=rel)
    return r


@pytest.mark.parametrize(("n0", "n1"), [(2, 3), (12, 40), (900, 700), (5000, 8000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.999])
def test_welch_equals_scipy(n0: int, n1: int, confidence: float) -> None:
    rng = np.random.default_rng(n0 + n1)
    champion = rng.gamma(2.0, 0.5, n0)
    challenger = rng.gamma(2.0, 0.45, n1) * rng.uniform(0.5, 2.0)
    _welch_matches_scipy(champion, challenger, confidence, rel=1e-9)


def test_welch_from_merged_panes_around_a_large_offset() -> None:
    rng = np.random.default_rng(9)
    champion = 1e6 + rng.normal(0, 1e-3, 30_000)
    challenger = 1e6 + 3e-5 + rng.normal(0, 1.2e-3, 20_000)

    def panes(x: np.ndarray) -> Moments:
        merged = Moments.empty()
        for part in np.array_split(x, 300):
            merged = merged.merge(Moments.from_values(part))
        return merged

    r = welch_comparison(panes(champion), panes(challenger))
    assert r.worse
    # x - 1e6 is exact (Sterbenz), so scipy on the centred rows is the exact reference
    exact = stats.ttest_ind(challenger - 1e6, champion - 1e6, equal_var=False)
    interval = exact.confidence_interval()
    assert r.statistic == pytest.approx(exact.statistic, rel=1e-9)
    assert r.p_value == pytest.approx(exact.pvalue, rel=1e-8)
    assert r.df == pytest.approx(exact.df, rel=1e-9)
    difference = (
        math.fsum(challenger - 1e6) / challenger.size - math.fsum(champion - 1e6) / champion.size
    )
    assert r.difference == pytest.approx(difference, rel=1e-9)
    assert r.ci_low == pytest.approx(interval.low, rel=1e-9)
    assert r.ci_high == pytest.approx(interval.high, rel=1e-9)
    # scipy on the raw rows: each mean near 1e6 carries a rounding of ~1e-10
    raw = stats.ttest_ind(challenger, champion, equal_var=False)
    assert r.statistic == pytest.approx(raw.statistic, rel=1e-5)
    assert r.ci_low == pytest.approx(raw.confidence_interval().low, abs=3e-10)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_welch_zero_variance() -> None:
    rng = np.random.default_rng(10)
    noisy = rng.normal(1.0, 0.2, 600)
    # one constant arm: the test still stands on the other's variance, as scipy's
    r = _welch_matches_scipy(np.full(600, 1.05), noisy, 0.95, rel=1e-9)
    assert r.df == pytest.approx(599.0)
    # two constant arms: no variance to test against
    r = welch_comparison(
        Moments.from_values(np.full(600, 0.3)), Moments.from_values(np.full(700, 0.1))
    )
    assert (r.status, r.difference, r.worse, r.better) == ("undefined", None, False, False)
    assert (r.n_champion, r.n_challenger) == (600, 700)
    # a constant that sums with rounding error is still constant
    r = welch_comparison(
        Moments.from_values(np.full(999, 0.1)), Moments.from_values(np.full(501, 1e6 / 3))
    )
    assert r.status == "undefined"


def test_welch_insufficient_vectorized_and_validated() -> None:
    rng = np.random.default_rng(11)
    arms = [Moments.from_values(rng.normal(size=n)) for n in (600, 700, 499, 800)]
    results = welch_comparison(arms[:2], arms[2:], ["log_loss", "brier"])
    assert [r.status for r in results] == ["insufficient_data", "ok"]
    assert results[1] == welch_comparison(arms[1], arms[3], "brier")
    assert welch_comparison(arms[0], arms[1], min_per_arm=0).status == "ok"
    assert welch_comparison(Moments.from_values([1.0]), arms[1], min_per_arm=0).status == (
        "insufficient_data"
    )
    with pytest.raises(ValueError, match="champion must be one Moments"):
        welch_comparison(arms[:2], arms[0])
    with pytest.raises(ValueError, match="challenger must be a sequence of 2 Moments"):
        welch_comparison(arms[:2], arms[0], ["loss", "loss"])
    with pytest.raises(ValueError, match="champion must hold Moments"):
        welch_comparison([arms[0], 1.0], arms[:2], ["loss", "loss"])


# --- expected rates (CBPE) -----------------------------------------------------------------


def _expected(probabilities: np.ndarray) -> ExpectedCount:
    """An arm whose rows err with ``probabilities``."""
    return ExpectedCount(
        probabilities.size,
        float(probabilities.sum()),
        float((probabilities * (1 - probabilities)).sum()),
    )


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_expected_rates_equal_the_normal_approximation(confidence: float) -> None:
    rng = np.random.default_rng(12)
    q0, q1 = rng.beta(1, 6, 2_000), rng.beta(1, 5, 1_500)
    r = expected_rate_comparison(_expected(q0), _expected(q1), confidence=confidence)
    difference = q1.mean() - q0.mean()
    se = math.sqrt((q1 * (1 - q1)).sum() / q1.size**2 + (q0 * (1 - q0)).sum() / q0.size**2)
    z = stats.norm.ppf(0.5 + confidence / 2)
    assert (r.method, r.metric, r.higher_is_better) == (
        "poisson_binomial_z",
        "estimated_error_rate",
        False,
    )
    assert r.difference == pytest.approx(difference, abs=1e-15)
    assert r.interval == pytest.approx((difference - z * se, difference + z * se), abs=1e-15)
    assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(difference / se)), rel=1e-12)
    assert r.worse == (r.p_value < 0.05 and difference > 0)
    assert (r.n_champion, r.n_challenger) == (2_000, 1_500)


def test_expected_rate_interval_covers_the_realized_difference_near_nominal() -> None:
    """Errors drawn row by row with the arms' probabilities: the realized difference of
    error rates lies in the interval about 95% of the time."""
    rng = np.random.default_rng(13)
    q0, q1 = rng.beta(1, 6, 800), rng.beta(2, 7, 600)
    r = expected_rate_comparison(_expected(q0), _expected(q1), min_per_arm=1)
    draws = 4_000
    realized = (rng.random((draws, q1.size)) < q1).mean(axis=1) - (
        rng.random((draws, q0.size)) < q0
    ).mean(axis=1)
    covered = ((realized >= r.ci_low) & (realized <= r.ci_high)).mean()
    assert 0.94 <= covered <= 0.96


def test_expected_rate_edge_cases_and_validation() -> None:
    certain = ExpectedCount(600, 60.0, 0.0)
    small = expected_rate_comparison(certain, ExpectedCount(10, 1.0, 0.9))
    assert (small.status, small.difference, small.worse) == ("insufficient_data", None, False)
    assert small.n_challenger == 10
    undefined = expected_rate_comparison(certain, ExpectedCount(600, 90.0, 0.0))
    assert (undefined.status, undefined.p_value) == ("undefined", None)
    one_sided = expected_rate_comparison(certain, ExpectedCount(600, 90.0, 45.0))
    assert one_sided.status == "ok" and one_sided.worse
    with pytest.raises(ValueError, match="challenger is not a count"):
        expected_rate_comparison(certain, ExpectedCount(600, 700.0, 1.0))
    with pytest.raises(ValueError, match="champion must be an ExpectedCount"):
        expected_rate_comparison((600, 60.0, 0.0), certain)  # type: ignore[arg-type]
