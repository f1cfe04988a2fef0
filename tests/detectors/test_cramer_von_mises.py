"""Cramér–von Mises: equals scipy without ties, the integral form with ties; binned bound."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.cramer_von_mises import CramerVonMises, cvm_asymptotic_p_value


def statistic_of(value: float, n: int, m: int) -> float:
    return value**2 * n * m / (n + m)


def integral_form(x: np.ndarray, y: np.ndarray) -> float:
    """T = n m / N^2 sum over pooled values (with multiplicity) of (F_x - F_y)^2, plainly."""
    pooled = np.concatenate([x, y])
    f = np.array([np.mean(x <= z) for z in pooled])
    g = np.array([np.mean(y <= z) for z in pooled])
    n, m = x.size, y.size
    return n * m / (n + m) ** 2 * float(np.sum((f - g) ** 2))


@pytest.mark.parametrize(("n", "m"), [(2, 2), (12, 9), (300, 200), (6_000, 2_500)])
def test_exact_equals_scipy_without_ties(draw_column, n: int, m: int) -> None:
    rng = np.random.default_rng(n * m)
    kinds = ["normal", "student_t", "lognormal"]
    reference = np.stack([draw_column(kind, rng, n) for kind in kinds])
    window = np.stack([draw_column(kind, rng, m, shift=0.2) for kind in kinds])
    for f, result in enumerate(CramerVonMises().exact(reference, window)):
        expected = stats.cramervonmises_2samp(reference[f], window[f], method="asymptotic")
        assert statistic_of(result.value, n, m) == pytest.approx(
            expected.statistic, rel=1e-9, abs=1e-12
        )
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
        assert result.error_bound == 0.0


@pytest.mark.parametrize("kind", ["tied", "few_values", "poisson"])
def test_exact_with_ties_is_the_integral_form(draw_column, kind: str) -> None:
    rng = np.random.default_rng(4)
    x, y = draw_column(kind, rng, 400), draw_column(kind, rng, 150)
    [result] = CramerVonMises().exact(x[None, :], y[None, :])
    assert statistic_of(result.value, 400, 150) == pytest.approx(integral_form(x, y), rel=1e-9)
    assert not result.drift  # one distribution: no alarm (scipy's midrank T would be inflated)


def test_scipy_midranks_inflate_ties_and_we_do_not() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.poisson(1, size=5_000), rng.poisson(1, size=2_000)
    assert stats.cramervonmises_2samp(a, b).pvalue < 1e-6  # the documented scipy behaviour
    [result] = CramerVonMises().exact([a], [b])
    assert result.p_value > 0.05
    [same] = CramerVonMises().exact([np.ones(100)], [np.ones(30)])
    assert same.value == 0.0 and same.p_value == 1.0


@pytest.mark.parametrize("kind", ["normal", "lognormal", "poisson", "student_t", "few_values"])
@pytest.mark.parametrize("shift", [0.0, 0.3, 4.0])
def test_binned_value_is_within_its_bound(numeric_pair, draw_column, kind: str, shift: float):
    rng = np.random.default_rng(3)
    pair = numeric_pair(
        draw_column(kind, rng, 8_000)[None, :], draw_column(kind, rng, 1_500, shift)[None, :]
    )
    [binned] = CramerVonMises().numeric(pair.ref, pair.win, pair.edges)
    [exact] = CramerVonMises().exact(pair.reference, pair.window)
    assert abs(binned.value - exact.value) <= binned.error_bound + 1e-12
    # the binned value is the exact statistic of the data with bins as ties
    ref_bins = np.searchsorted(pair.edges[0], pair.reference[0], side="right").astype(float)
    win_bins = np.searchsorted(pair.edges[0], pair.window[0], side="right").astype(float)
    [on_bins] = CramerVonMises().exact(ref_bins[None, :], win_bins[None, :])
    assert binned.value == pytest.approx(on_bins.value, rel=1e-9, abs=1e-12)
    assert binned.p_value == pytest.approx(on_bins.p_value, rel=1e-9, abs=1e-12)


def test_asymptotic_p_value_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    for shift in (0.0, 0.1, 0.3, 1.0):
        a, b = rng.normal(size=400), rng.normal(shift, size=150)
        expected = stats.cramervonmises_2samp(a, b, method="asymptotic")
        p = cvm_asymptotic_p_value(np.array([expected.statistic]), np.array([400]), np.array([150]))
        assert p[0] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-15)


def test_edge_cases(numeric_pair) -> None:
    rng = np.random.default_rng(2)
    reference = np.stack([rng.normal(size=100), np.full(100, 1.0), np.full(100, 1.0)])
    window = np.stack([np.array([0.5, np.nan]), np.array([1.0, 1.0]), np.array([2.0, 2.0])])
    pair = numeric_pair(reference, window)
    for results in (
        CramerVonMises().numeric(pair.ref, pair.win, pair.edges),
        CramerVonMises().exact(reference, window),
    ):
        assert [r.status for r in results] == ["insufficient_data", "ok", "ok"]
        assert results[1].value == 0.0 and results[1].p_value == 1.0
        assert results[2].value == pytest.approx(np.sqrt(100 / 102))  # gap 1 on the reference
    empty = CramerVonMises().exact(reference, np.empty((3, 0)))
    assert [r.status for r in empty] == ["insufficient_data"] * 3
    with pytest.raises(ValueError, match="threshold"):
        CramerVonMises(threshold=-0.01)
