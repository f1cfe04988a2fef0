"""Pearson and Spearman against scipy.stats, row by row, with missing pairs and undefined cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.correlation import average_ranks, pearson, spearman


@pytest.mark.parametrize("n", [3, 4, 7, 12, 30, 200])
@pytest.mark.parametrize("strength", [0.0, 0.4, 0.95])
def test_pearson_equals_scipy(n: int, strength: float) -> None:
    rng = np.random.default_rng(n * 10 + int(strength * 100))
    x = rng.normal(loc=3.0, scale=0.01, size=n)
    y = strength * (x - 3.0) / 0.01 + rng.normal(size=n) + 1e6
    [ours] = pearson(x, y)
    theirs = stats.pearsonr(x, y)
    assert ours.status == "ok" and ours.n == n
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("n", [3, 5, 10, 25, 100])
def test_spearman_equals_scipy_with_ties(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, size=n).astype(float)  # many ties
    y = x + rng.integers(0, 3, size=n)
    x[0], x[-1] = 0.0, 3.0  # not constant
    [ours] = spearman(x, y)
    theirs = stats.spearmanr(x, y)
    if np.isnan(theirs.statistic):
        assert ours.status == "undefined"
        return
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-10, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-8, abs=1e-300)


def test_rows_broadcast_and_missing_pairs_are_left_out_per_row() -> None:
    rng = np.random.default_rng(4)
    metric = rng.normal(size=20)  # one metric over 20 windows
    statistics = metric * rng.uniform(-1, 1, size=(5, 1)) + rng.normal(size=(5, 20))
    statistics[1, [2, 5]] = np.nan  # windows without a value for that feature
    metric_gaps = metric.copy()
    metric_gaps[7] = np.nan  # a window without the metric: out of every row
    for method, reference in ((pearson, stats.pearsonr), (spearman, stats.spearmanr)):
        results = method(statistics, metric_gaps)
        assert len(results) == 5
        for row, result in zip(statistics, results, strict=True):
            keep = ~np.isnan(row) & ~np.isnan(metric_gaps)
            theirs = reference(row[keep], metric_gaps[keep])
            assert result.n == keep.sum()
            assert result.statistic == pytest.approx(theirs.statistic, rel=1e-10)
            assert result.p_value == pytest.approx(theirs.pvalue, rel=1e-8)
    assert [r.n for r in pearson(statistics, metric_gaps)] == [19, 17, 19, 19, 19]


def test_undefined_and_extreme_cases() -> None:
    for method in (pearson, spearman):
        assert method([], [])[0].status == "undefined"
        assert method([1.0, 2.0], [2.0, 1.0])[0].status == "undefined"  # N < 3
        assert method([1.0, 2.0, np.nan, 4.0], [1.0, 3.0, 2.0, np.nan])[0].n == 2
        assert method([0.1, 0.1, 0.1, 0.1], [1.0, 2.0, 3.0, 4.0])[0].status == "undefined"
        assert method([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])[0].status == "undefined"
        assert method([np.nan] * 4, [1.0, 2.0, 3.0, 4.0])[0].status == "undefined"
        perfect = method([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0])[0]
        assert perfect.statistic == pytest.approx(1.0, abs=1e-15) and perfect.p_value < 1e-12
        inverse = method([1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0])[0]
        assert inverse.statistic == -1.0 and inverse.p_value == 0.0
        undefined = method([1.0], [1.0])[0]
        assert undefined.statistic is None and undefined.p_value is None and undefined.n == 1
    # a constant series of inexact floats is still constant
    assert pearson(np.full(10, 0.1), np.arange(10.0))[0].status == "undefined"


def test_validation() -> None:
    with pytest.raises(ValueError, match="do not broadcast"):
        pearson(np.zeros((2, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="infinite"):
        spearman([1.0, np.inf, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(R, N\)"):
        pearson(np.zeros((1, 2, 3)), np.zeros(3))


def test_average_ranks_equal_scipy_rankdata() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 5, size=(4, 30)).astype(float)
    values[2, ::4] = np.nan
    ranks = average_ranks(values)
    for row, ranked in zip(values, ranks, strict=True):
        keep = ~np.isnan(row)
        np.testing.assert_array_equal(ranked[keep], stats.rankdata(row[keep], method="average"))
        assert np.isnan(ranked[~keep]).all()
    assert average_ranks(np.zeros((2, 0))).shape == (2, 0)
