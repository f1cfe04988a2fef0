"""The windowed two-proportion test: the z statistic of STEPD, two-sided, exact restore."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from driftwarden.detectors.proportion_test import ProportionTest


def _reference_positions(x: np.ndarray, detector: ProportionTest) -> tuple[list[int], list[int]]:
    """The test written out element by element in plain Python, with scipy's normal quantile."""
    w, tails = detector.window, 2.0 if detector.two_sided else 1.0
    z_drift = norm.ppf(1 - detector.alpha_drift / tails)
    z_warn = norm.ppf(1 - detector.alpha_warning / tails)
    warnings, drifts, run = [], [], []
    for i, value in enumerate(x.tolist()):
        run.append(value)
        n = len(run)
        if n - w < detector.min_reference:
            continue
        r_r, r_o = sum(run[-w:]), sum(run[:-w])
        n_o = n - w
        p = (r_o + r_r) / n
        inverse = 1 / n_o + 1 / w
        if p in (0.0, 1.0):
            continue
        t = (abs(r_o / n_o - r_r / w) - 0.5 * inverse) / math.sqrt(p * (1 - p) * inverse)
        if not detector.two_sided and not r_r / w > r_o / n_o:
            continue
        if t > z_drift:
            drifts.append(i)
            run = []
        elif t > z_warn:
            warnings.append(i)
    return warnings, drifts


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("window", [30, 200])
def test_matches_the_formula_written_out(two_sided, window, error_stream, our_positions) -> None:
    x = error_stream(5, [0.1, 0.3, 0.1, 0.02], 8000)
    detector = ProportionTest(window=window, two_sided=two_sided)
    warnings, drifts = _reference_positions(x, detector)
    ours = our_positions(detector, x, batch=[13, 2000, 2001, 5555])
    np.testing.assert_array_equal(ours[1], drifts)
    np.testing.assert_array_equal(ours[0], warnings)
    assert len(drifts) > 0


def test_one_sided_ignores_a_fall(error_stream, our_positions) -> None:
    x = error_stream(2, [0.3, 0.05], 20_000)
    params = {"window": 500, "min_reference": 500, "alpha_drift": 1e-6, "alpha_warning": 1e-4}
    one = our_positions(ProportionTest(two_sided=False, **params), x)[1]
    two = our_positions(ProportionTest(**params), x)[1]
    assert one.size == 0
    assert two.size == 1 and 10_000 <= two[0] < 11_000


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    window=st.sampled_from([1, 30, 400]),
)
def test_restoring_anywhere_gives_the_same_detections(
    seed, cuts, window, error_stream, our_positions, restored_positions
) -> None:
    x = error_stream(seed, [0.1, 0.5, 0.02, 0.4], 3000)
    one = our_positions(ProportionTest(window=window), x, batch=x.size)
    split = restored_positions(lambda: ProportionTest(window=window), x, cuts)
    np.testing.assert_array_equal(split[1], one[1])
    np.testing.assert_array_equal(split[0], one[0])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"window": 0}, "window"),
        ({"min_reference": 0}, "min_reference"),
        ({"alpha_drift": 0.0}, "alpha_drift"),
        ({"alpha_warning": 0.001}, "alpha_warning must be >= alpha_drift"),
        ({"two_sided": None}, "two_sided"),
    ],
)
def test_bad_hyperparameters_are_named(params, name) -> None:
    with pytest.raises(ValueError, match=name):
        ProportionTest(**params)
