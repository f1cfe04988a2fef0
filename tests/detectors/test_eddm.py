"""EDDM: River's warnings and drifts, vectorised over the errors of a batch, exact restore."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.drift.binary import EDDM as RiverEDDM

from driftwarden.detectors.eddm import EDDM

PARAMS = [{}, {"warm_start": 100, "alpha": 0.9, "beta": 0.8}, {"warm_start": 5}]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("params", PARAMS)
def test_same_warnings_and_drifts_as_river(
    seed, params, error_stream, river_positions, our_positions
) -> None:
    x = error_stream(seed, [0.1, 0.25, 0.1, 0.3, 0.02], 40_000)
    cuts = np.sort(np.random.default_rng(seed).integers(0, x.size, 25))
    river = river_positions(RiverEDDM(**params), x)
    ours = our_positions(EDDM(**params), x, batch=list(cuts))
    np.testing.assert_array_equal(ours[1], river[1])
    np.testing.assert_array_equal(ours[0], river[0])
    assert river[1].size > 0 and river[0].size > 0


def test_warning_holds_between_errors() -> None:
    # River changes the warning flag only at an error: it persists over the correct elements.
    x = np.random.default_rng(8).random(20_000) < np.repeat([0.05, 0.2], 10_000)
    found = EDDM().update(x)
    assert found.warnings.size > 0
    gaps = np.diff(found.warnings)
    assert (gaps == 1).mean() > 0.5


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_restoring_anywhere_gives_the_same_detections(
    seed, cuts, error_stream, our_positions, restored_positions
) -> None:
    x = error_stream(seed, [0.05, 0.5, 0.02, 0.4], 3000)
    one = our_positions(EDDM(warm_start=5), x, batch=x.size)
    split = restored_positions(lambda: EDDM(warm_start=5), x, cuts)
    np.testing.assert_array_equal(split[1], one[1])
    np.testing.assert_array_equal(split[0], one[0])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"warm_start": -3}, "warm_start"),
        ({"alpha": 1.0}, "alpha"),
        ({"beta": 0.0}, "beta"),
        ({"alpha": 0.8, "beta": 0.9}, "alpha must be >= beta"),
    ],
)
def test_bad_hyperparameters_are_named(params, name) -> None:
    with pytest.raises(ValueError, match=name):
        EDDM(**params)
