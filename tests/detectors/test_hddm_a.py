"""HDDM-A: River's warnings and drifts, one- and two-sided, vectorised, exact restore."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.drift.binary import HDDMA as RiverHDDMA

from driftwarden.detectors.hddm_a import HDDMA

PARAMS = [
    ({}, {}),
    ({"two_sided": True}, {"two_sided_test": True}),
    (
        {"drift_confidence": 0.01, "warning_confidence": 0.05, "two_sided": True},
        {"drift_confidence": 0.01, "warning_confidence": 0.05, "two_sided_test": True},
    ),
]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("ours", "theirs"), PARAMS)
def test_same_warnings_and_drifts_as_river(
    seed, ours, theirs, error_stream, river_positions, our_positions
) -> None:
    x = error_stream(seed, [0.1, 0.25, 0.1, 0.3], 16_000)
    cuts = np.sort(np.random.default_rng(seed).integers(0, x.size, 20))
    river = river_positions(RiverHDDMA(**theirs), x)
    mine = our_positions(HDDMA(**ours), x, batch=list(cuts))
    np.testing.assert_array_equal(mine[1], river[1])
    np.testing.assert_array_equal(mine[0], river[0])
    assert river[1].size > 0


def test_only_two_sided_sees_a_fall(error_stream, our_positions) -> None:
    x = error_stream(3, [0.3, 0.1], 20_000)
    assert our_positions(HDDMA(), x)[1].size == 0
    assert our_positions(HDDMA(two_sided=True), x)[1].size > 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    two_sided=st.booleans(),
    real=st.booleans(),
)
def test_restoring_anywhere_gives_the_same_detections(
    seed, cuts, two_sided, real, error_stream, our_positions, restored_positions
) -> None:
    if real:
        x = np.random.default_rng(seed).beta(2, np.repeat([8.0, 3.0, 12.0], 1000))
    else:
        x = error_stream(seed, [0.1, 0.6, 0.02, 0.4], 3000)
    params = {"two_sided": two_sided, "drift_confidence": 0.01, "warning_confidence": 0.05}
    one = our_positions(HDDMA(**params), x, batch=x.size)
    split = restored_positions(lambda: HDDMA(**params), x, cuts)
    np.testing.assert_array_equal(split[1], one[1])
    np.testing.assert_array_equal(split[0], one[0])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"drift_confidence": 0.0}, "drift_confidence"),
        ({"warning_confidence": 1.0}, "warning_confidence"),
        ({"two_sided": 1}, "two_sided"),
    ],
)
def test_bad_hyperparameters_are_named(params, name) -> None:
    with pytest.raises(ValueError, match=name):
        HDDMA(**params)
