"""DDM: River's detections at numpy speed, a two-sided option, exact restore."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.drift.binary import DDM as RiverDDM

from driftwarden.detectors.ddm import DDM

RATES = [0.1, 0.25, 0.1, 0.3, 0.05]
PARAMS = [
    {},
    {"warm_start": 100, "warning_threshold": 1.5, "drift_threshold": 2.5},
    {"warm_start": 5, "warning_threshold": 2.0, "drift_threshold": 2.2},
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("params", PARAMS)
def test_same_warnings_and_drifts_as_river(
    seed, params, error_stream, river_positions, our_positions
) -> None:
    x = error_stream(seed, RATES, 40_000)
    cuts = np.sort(np.random.default_rng(seed).integers(0, x.size, 25))
    river = river_positions(RiverDDM(**params), x)
    ours = our_positions(DDM(**params), x, batch=list(cuts))
    np.testing.assert_array_equal(ours[1], river[1])
    np.testing.assert_array_equal(ours[0], river[0])
    assert river[1].size > 0


def test_one_sided_misses_a_fall_two_sided_finds_it(error_stream, our_positions) -> None:
    x = error_stream(4, [0.3, 0.05], 40_000)
    one = our_positions(DDM(), x)[1]
    two = our_positions(DDM(two_sided=True), x)[1]
    assert not ((one >= 20_000) & (one < 22_000)).any()
    assert ((two >= 20_000) & (two < 22_000)).any()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    two_sided=st.booleans(),
)
def test_restoring_anywhere_gives_the_same_detections(
    seed, cuts, two_sided, error_stream, our_positions, restored_positions
) -> None:
    x = error_stream(seed, [0.1, 0.6, 0.02, 0.4], 3000)
    params = {"warm_start": 10, "two_sided": two_sided}
    one = our_positions(DDM(**params), x, batch=x.size)
    split = restored_positions(lambda: DDM(**params), x, cuts)
    np.testing.assert_array_equal(split[1], one[1])
    np.testing.assert_array_equal(split[0], one[0])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"warm_start": -1}, "warm_start"),
        ({"warm_start": 2.5}, "warm_start"),
        ({"warning_threshold": 0}, "warning_threshold"),
        ({"drift_threshold": float("nan")}, "drift_threshold"),
        ({"two_sided": "yes"}, "two_sided"),
    ],
)
def test_bad_hyperparameters_are_named(params, name) -> None:
    with pytest.raises(ValueError, match=name):
        DDM(**params)
