"""KS: exact from raw rows equals scipy; binned value within its bound; p-values; edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.ks import KS, ks_asymptotic_p_value, smirnov_sf

KINDS = ["normal", "student_t", "pareto", "poisson", "few_values", "tied", "lognormal"]


@pytest.mark.parametrize(
    ("n", "m"), [(30, 7), (400, 400), (3_000, 1_000), (12_000, 11_000), (25_000, 5_000)]
)
def test_exact_equals_scipy_ks_2samp(draw_column, n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    kinds = ["normal", "student_t", "poisson", "tied"]
    reference = np.stack([draw_column(kind, rng, n) for kind in kinds])
    window = np.stack([draw_column(kind, rng, m, shift=0.05 * f) for f, kind in enumerate(kinds)])
    results = KS().exact(reference, window)
    for f, result in enumerate(results):
        expected = stats.ks_2samp(reference[f], window[f])
        assert abs(result.value - expected.statistic) <= 1e-12
        assert abs(result.p_value - expected.pvalue) <= 1e-12
        assert result.error_bound == 0.0


def test_exact_drops_missing_values_and_accepts_ragged_columns() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=50), rng.normal(size=30)
    padded_ref = np.stack([np.append(a, [np.nan, np.inf]), np.append(b, np.full(22, np.nan))])
    [first, second] = KS().exact(padded_ref, [a[:20], b[:10]])
    assert first.value == pytest.approx(stats.ks_2samp(a, a[:20]).statistic, abs=1e-12)
    assert second.p_value == pytest.approx(stats.ks_2samp(b, b[:10]).pvalue, abs=1e-12)
    assert (first.n_reference, first.n_window) == (50, 20)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shift", [0.0, 0.2, 5.0])
@pytest.mark.parametrize(("n", "m"), [(50_000, 5_000), (2_000, 300)])
def test_binned_value_is_within_its_bound_of_the_exact_value(
    numeric_pair, draw_column, kind: str, shift: float, n: int, m: int
) -> None:
    rng = np.random.default_rng(11)
    pair = numeric_pair(
        draw_column(kind, rng, n)[None, :], draw_column(kind, rng, m, shift)[None, :]
    )
    [binned] = KS().numeric(pair.ref, pair.win, pair.edges)
    exact = stats.ks_2samp(pair.reference[0], pair.window[0]).statistic
    assert binned.value <= exact + 1e-12  # the binned value is a lower bound
    assert abs(binned.value - exact) <= binned.error_bound + 1e-12
    assert binned.error_bound <= 1.0


def test_binned_bound_is_about_one_fine_bin_for_continuous_data(numeric_pair) -> None:
    rng = np.random.default_rng(2)
    pair = numeric_pair(rng.normal(size=(1, 50_000)), rng.normal(size=(1, 10_000)))
    [binned] = KS().numeric(pair.ref, pair.win, pair.edges)
    assert binned.error_bound < 0.004


def test_binned_value_is_exact_when_values_sit_on_the_edges(numeric_pair) -> None:
    rng = np.random.default_rng(4)
    pair = numeric_pair(
        rng.poisson(3.0, size=(1, 20_000)).astype(float),
        rng.poisson(3.3, size=(1, 4_000)).astype(float),
    )
    [binned] = KS().numeric(pair.ref, pair.win, pair.edges)
    exact = stats.ks_2samp(pair.reference[0], pair.window[0]).statistic
    assert binned.value == pytest.approx(exact, abs=1e-12)


def test_binned_p_value_is_scipys_asymptotic_p_value_of_the_value(numeric_pair) -> None:
    rng = np.random.default_rng(8)
    pair = numeric_pair(rng.normal(size=(2, 30_000)), rng.normal(0.05, size=(2, 3_000)))
    for result in KS().numeric(pair.ref, pair.win, pair.edges):
        en = 30_000 * 3_000 / 33_000
        assert result.p_value == pytest.approx(stats.kstwo.sf(result.value, round(en)), rel=1e-12)


def test_asymptotic_p_value_matches_scipy_asymp_method() -> None:
    rng = np.random.default_rng(9)
    for n, m in [(20, 13), (500, 50), (7_000, 2_000)]:
        a, b = rng.normal(size=n), rng.normal(0.2, size=m)
        expected = stats.ks_2samp(a, b, method="asymp")
        p = ks_asymptotic_p_value(np.array([expected.statistic]), np.array([n]), np.array([m]))
        assert p[0] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)


def test_decision_uses_effect_size_and_adjusted_p(numeric_pair) -> None:
    rng = np.random.default_rng(10)
    # feature 0: huge sample, tiny shift: significant but below the effect-size threshold
    # feature 1: large shift; feature 2: no shift
    reference = rng.normal(size=(3, 50_000))
    window = rng.normal(loc=[[0.05], [1.0], [0.0]], size=(3, 50_000))
    pair = numeric_pair(reference, window)
    results = KS().numeric(pair.ref, pair.win, pair.edges)
    assert results[0].p_value < 1e-6 and not results[0].drift
    assert results[1].drift and not results[2].drift
    # a threshold of 0 leaves the decision to the adjusted p-value
    strict = KS(threshold=0.0, correction="bonferroni").numeric(pair.ref, pair.win, pair.edges)
    assert [r.drift for r in strict] == [True, True, False]


def test_edge_cases(numeric_pair) -> None:
    rng = np.random.default_rng(3)
    reference = np.stack(
        [rng.normal(size=500), np.full(500, 2.0), np.full(500, np.nan), np.full(500, 2.0)]
    )
    window = np.stack([np.full(1, 0.1), np.full(1, 2.0), np.full(1, 1.0), np.full(1, 3.0)])
    pair = numeric_pair(reference, window)
    for results in (
        KS().numeric(pair.ref, pair.win, pair.edges),
        KS().exact(reference, window),
    ):
        assert [r.status for r in results] == ["ok", "ok", "insufficient_data", "ok"]
        assert results[1].value == 0.0 and results[3].value == 1.0  # constant, same / moved
        assert all(0.0 <= r.p_value <= 1.0 for r in results if r.status == "ok")
    exact = KS().exact(reference, window)
    assert exact[0].value == pytest.approx(stats.ks_2samp(reference[0], [0.1]).statistic)
    empty = KS().numeric(pair.ref, numeric_pair(reference, np.empty((4, 0))).win, pair.edges)
    assert [r.status for r in empty] == ["insufficient_data"] * 4
    assert [r.status for r in KS().exact(reference, np.empty((4, 0)))] == ["insufficient_data"] * 4
    one_each = KS().exact(np.array([[1.0]]), np.array([[2.0]]))
    assert one_each[0].value == 1.0 and one_each[0].p_value == stats.ks_2samp([1.0], [2.0]).pvalue


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"threshold": 2j}, "threshold"),
        ({"alpha": 0.0}, "alpha"),
        ({"correction": "BH"}, "correction"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        KS(**kwargs)


@pytest.mark.parametrize("n", [150, 1_000, 4_000, 5_000, 30_000])
@pytest.mark.parametrize("z", [0.5, 1.2, 1.49, 2.0, 4.0, 12.0, 19.0])
def test_fast_p_value_matches_kstwo(n: int, z: float) -> None:
    d = np.array([z / np.sqrt(n)])
    # two samples of 2n values: the effective size is n
    fast = ks_asymptotic_p_value(d, np.array([2 * n]), np.array([2 * n]))
    expected = stats.kstwo.sf(d, n)
    assert fast[0] == pytest.approx(expected[0], rel=1e-9, abs=1e-300)


def test_smirnov_sf_matches_scipy_special() -> None:
    from scipy.special import smirnov

    for n, z in [(500, 2.0), (4_096, 1.6), (20_000, 3.0), (60_000, 1.5)]:
        x = z / np.sqrt(n)
        assert smirnov_sf(n, x) == pytest.approx(smirnov(n, x), rel=2e-10)
