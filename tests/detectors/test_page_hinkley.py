"""Page-Hinkley: River's detections at numpy speed (two-sided by default), exact restore."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.drift import PageHinkley as RiverPageHinkley

from driftwarden.detectors.page_hinkley import PageHinkley

PARAMS = [
    {},
    {"mode": "up", "threshold": 20.0},
    {"mode": "down", "threshold": 20.0, "delta": 0.01},
    {"min_instances": 100, "alpha": 1.0, "threshold": 30.0},
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("params", PARAMS)
def test_same_drifts_as_river_on_error_bits(
    seed, params, error_stream, river_positions, our_positions
) -> None:
    x = error_stream(seed, [0.1, 0.25, 0.1, 0.3], 60_000)
    cuts = np.sort(np.random.default_rng(seed).integers(0, x.size, 30))
    river = river_positions(RiverPageHinkley(**params), x)
    ours = our_positions(PageHinkley(**params), x, batch=list(cuts))
    np.testing.assert_array_equal(ours[1], river[1])
    assert river[1].size > 0 and ours[0].size == 0


@pytest.mark.parametrize("seed", range(3))
def test_same_drifts_as_river_on_losses(seed, river_positions, our_positions) -> None:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(1.0, 0.5, 20_000), rng.normal(1.3, 0.5, 20_000)]) ** 2
    river = river_positions(RiverPageHinkley(threshold=20.0), x)
    ours = our_positions(PageHinkley(threshold=20.0), x, batch=777)
    np.testing.assert_array_equal(ours[1], river[1])
    assert river[1].size > 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    mode=st.sampled_from(["both", "up", "down"]),
    real=st.booleans(),
)
def test_restoring_anywhere_gives_the_same_detections(
    seed, cuts, mode, real, error_stream, our_positions, restored_positions
) -> None:
    if real:
        rng = np.random.default_rng(seed)
        x = rng.normal(np.repeat([0.0, 1.0, -0.5], 1000), 1.0)
    else:
        x = error_stream(seed, [0.1, 0.6, 0.02, 0.4], 3000)
    params = {"mode": mode, "threshold": 5.0, "min_instances": 10}
    one = our_positions(PageHinkley(**params), x, batch=x.size)
    split = restored_positions(lambda: PageHinkley(**params), x, cuts)
    np.testing.assert_array_equal(split[1], one[1])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"min_instances": 0}, "min_instances"),
        ({"delta": -0.1}, "delta"),
        ({"threshold": 0}, "threshold"),
        ({"alpha": 1.5}, "alpha"),
        ({"mode": "sideways"}, "mode"),
    ],
)
def test_bad_hyperparameters_are_named(params, name) -> None:
    with pytest.raises(ValueError, match=name):
        PageHinkley(**params)
