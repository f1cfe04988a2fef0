"""Chi-square homogeneity test equals scipy.stats.chi2_contingency; Cramér's V decides."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from driftwarden.detectors.chi_square import ChiSquare, chi_square_test

count_rows = (
    st.integers(2, 12)
    .flatmap(
        lambda k: st.tuples(
            arrays(np.int64, k, elements=st.integers(0, 5_000) | st.just(0)),
            arrays(np.int64, k, elements=st.integers(0, 5_000) | st.just(0)),
        )
    )
    .filter(lambda pair: pair[0].sum() > 0 and pair[1].sum() > 0)
)


def scipy_on_present_columns(ref: np.ndarray, win: np.ndarray):
    table = np.stack([ref, win])
    return stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)


@settings(max_examples=150, deadline=None)
@given(count_rows)
def test_equals_scipy_chi2_contingency(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, win = pair
    outcome = chi_square_test(ref[None, :], win[None, :])
    expected = scipy_on_present_columns(ref, win)
    assert outcome.statistic[0] == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert outcome.p_value[0] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    assert outcome.dof[0] == expected.dof


def test_detector_reports_cramers_v_and_the_raw_p_value(categorical_pair) -> None:
    rng = np.random.default_rng(3)
    ref = np.stack([rng.multinomial(20_000, [0.5, 0.3, 0.2, 0, 0]) for _ in range(3)])
    win = np.stack(
        [
            rng.multinomial(2_000, [0.5, 0.3, 0.2, 0, 0]),
            rng.multinomial(2_000, [0.3, 0.3, 0.3, 0, 0.1]),
            rng.multinomial(2_000, [0.47, 0.3, 0.23, 0, 0]),
        ]
    )
    results = ChiSquare().categorical(*categorical_pair(ref, win))
    for f, result in enumerate(results):
        expected = scipy_on_present_columns(ref[f], win[f])
        v = np.sqrt(expected.statistic / (ref[f].sum() + win[f].sum()))
        assert result.value == pytest.approx(v, rel=1e-9)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert [r.drift for r in results] == [False, True, False]
    # feature 2 is significant but a small effect: the effect size keeps it quiet
    assert results[2].p_value < 0.05 and results[2].value < 0.1


def test_unseen_categories_stay_finite(categorical_pair) -> None:
    results = ChiSquare().categorical(
        *categorical_pair([[700, 300, 0, 0], [700, 300, 0, 0]], [[0, 0, 0, 50], [60, 30, 0, 10]])
    )
    assert all(r.status == "ok" and np.isfinite(r.value) for r in results)
    assert results[0].value == pytest.approx(1.0) and results[0].drift
    test = ChiSquare().test(
        *categorical_pair([[700, 300, 0, 0], [700, 300, 0, 0]], [[0, 0, 0, 50], [60, 30, 0, 10]])
    )
    assert test.dof.tolist() == [2, 2]


def test_one_shared_category_is_no_change(categorical_pair) -> None:
    [result] = ChiSquare().categorical(*categorical_pair([[40, 0, 0]], [[7, 0, 0]]))
    expected = stats.chi2_contingency(np.array([[40], [7]]), correction=False)
    assert (result.value, result.p_value) == (0.0, expected.pvalue) == (0.0, 1.0)
    assert ChiSquare().test(*categorical_pair([[40, 0, 0]], [[7, 0, 0]])).dof.tolist() == [0]


def test_binary_feature_has_no_yates_correction(categorical_pair) -> None:
    [result] = ChiSquare().categorical(*categorical_pair([[90, 10, 0, 0]], [[80, 20, 0, 0]]))
    plain = stats.chi2_contingency(np.array([[90, 10], [80, 20]]), correction=False)
    yates = stats.chi2_contingency(np.array([[90, 10], [80, 20]]))
    assert result.p_value == pytest.approx(plain.pvalue) and result.p_value != yates.pvalue


def test_edge_cases(categorical_pair) -> None:
    results = ChiSquare().categorical(
        *categorical_pair([[5, 5, 0], [0, 0, 0], [3, 0, 0]], [[0, 0, 0], [4, 0, 0], [0, 1, 0]])
    )
    assert [r.status for r in results] == ["insufficient_data", "insufficient_data", "ok"]
    assert results[2].value == pytest.approx(1.0)  # one row each, disjoint
    outcome = ChiSquare().test(*categorical_pair([[5, 5, 0]], [[0, 0, 0]]))
    assert np.isnan(outcome.statistic[0]) and outcome.dof[0] == -1


def test_bad_hyperparameters_raise() -> None:
    with pytest.raises(ValueError, match="alpha"):
        ChiSquare(alpha=2)
    with pytest.raises(ValueError, match="correction"):
        ChiSquare(correction=None)
