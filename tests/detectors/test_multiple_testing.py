"""Benjamini–Hochberg and Bonferroni adjustments, validation, and the drift decision."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from driftwarden.detectors.multiple_testing import (
    adjust,
    benjamini_hochberg,
    bonferroni,
    check_alpha,
    check_bins,
    check_correction,
    check_threshold,
    decide,
    to_results,
)

p_value_arrays = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(0.0, 1.0, allow_nan=False) | st.sampled_from([0.0, 0.01, 0.5, 1.0]),
)


@settings(max_examples=150, deadline=None)
@given(p_value_arrays)
def test_benjamini_hochberg_equals_scipy(p: np.ndarray) -> None:
    expected = stats.false_discovery_control(p, method="bh")
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=0, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(p_value_arrays, st.data())
def test_benjamini_hochberg_ignores_nan(p: np.ndarray, data: st.DataObject) -> None:
    holes = data.draw(arrays(bool, p.size))
    with_nan = np.where(holes, np.nan, p)
    adjusted = benjamini_hochberg(with_nan)
    assert np.array_equal(np.isnan(adjusted), holes)
    if (~holes).any():
        expected = stats.false_discovery_control(p[~holes], method="bh")
        np.testing.assert_allclose(adjusted[~holes], expected, rtol=0, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(p_value_arrays, st.data())
def test_bonferroni_from_the_definition(p: np.ndarray, data: st.DataObject) -> None:
    holes = data.draw(arrays(bool, p.size))
    with_nan = np.where(holes, np.nan, p)
    family = int((~holes).sum())
    expected = [
        np.nan if h else min(1.0, value * family) for value, h in zip(p, holes, strict=True)
    ]
    np.testing.assert_array_equal(bonferroni(with_nan), np.array(expected))


def test_adjust_dispatches_and_none_copies() -> None:
    p = np.array([0.01, 0.02, np.nan, 0.9])
    np.testing.assert_array_equal(adjust(p, "none"), p)
    assert adjust(p, "none") is not p
    np.testing.assert_array_equal(adjust(p, "bonferroni"), bonferroni(p))
    np.testing.assert_array_equal(adjust(p, "benjamini-hochberg"), benjamini_hochberg(p))


def test_empty_and_all_nan() -> None:
    assert benjamini_hochberg([]).size == 0
    assert np.isnan(benjamini_hochberg([np.nan, np.nan])).all()
    assert np.isnan(bonferroni([np.nan])).all()


@pytest.mark.parametrize("bad", [[-0.1], [1.5], [[0.1, 0.2]], [np.inf]])
def test_invalid_p_values_raise(bad: list) -> None:
    with pytest.raises(ValueError, match="p-values"):
        benjamini_hochberg(bad)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "0.1", True, None])
def test_check_threshold_names_the_value(bad: object) -> None:
    with pytest.raises(ValueError, match="threshold") as error:
        check_threshold(bad)
    assert repr(bad) in str(error.value)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "0.05", False])
def test_check_alpha_names_the_value(bad: object) -> None:
    with pytest.raises(ValueError, match="alpha") as error:
        check_alpha(bad)
    assert repr(bad) in str(error.value)


def test_check_correction_and_bins() -> None:
    assert check_correction("bonferroni") == "bonferroni"
    with pytest.raises(ValueError, match="'holm'"):
        check_correction("holm")
    assert check_bins(np.int64(10)) == 10
    for bad in (1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="bins"):
            check_bins(bad)


def test_decide_requires_effect_and_adjusted_p() -> None:
    values = np.array([0.2, 0.2, 0.05, 0.2, 0.1])
    status = np.array(["ok", "ok", "ok", "insufficient_data", "ok"], dtype=object)
    p = np.array([0.001, 0.2, 0.0, np.nan, 0.0])
    drift = decide(values, 0.1, status, p, alpha=0.05, correction="benjamini-hochberg")
    # 5th: value equals the threshold: ties do not cross
    assert drift.tolist() == [True, False, False, False, False]
    assert decide(values, 0.1, status).tolist() == [True, True, False, False, False]


def test_adjustment_only_over_ok_features() -> None:
    # the insufficient feature's p-value must not enlarge the family
    values = np.full(3, 1.0)
    status = np.array(["ok", "ok", "undefined"], dtype=object)
    p = np.array([0.03, 0.04, 0.0])
    drift = decide(values, 0.1, status, p, alpha=0.05, correction="bonferroni")
    assert drift.tolist() == [False, False, False]  # 0.03 * 2, 0.04 * 2
    drift = decide(values, 0.1, status, p, alpha=0.05, correction="benjamini-hochberg")
    assert drift.tolist() == [True, True, False]  # both 0.04 after BH over two tests


def test_to_results_never_carries_non_finite_numbers() -> None:
    results = to_results(
        np.array([np.nan, np.inf, 0.5, 0.5]),
        np.array(["ok", "ok", "ok", "insufficient_data"], dtype=object),
        0.1,
        n_reference=np.array([1, 1, 1, 1]),
        n_window=np.array([1, 1, 1, 0]),
        p_values=np.array([0.5, 0.5, np.nan, np.nan]),
        error_bound=0.0,
    )
    assert [r.status for r in results] == ["undefined"] * 3 + ["insufficient_data"]
    assert all(r.value is None and r.p_value is None and not r.drift for r in results)
