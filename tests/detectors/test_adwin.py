"""ADWIN: River's detections (same checks, same window), vectorised, exact restore.

River's ADWIN checks for a change only every ``clock`` elements, so "the same
detections within its clock" is what a batch form could be held to. Ours
checks at exactly the same elements (River's tick, which restarts with the
window) against exactly the same bucket layout, and so reports the same
positions, not merely the same clock period:

* error bits: every running sum is an exact integer, so every quantity River
  computes is computed bit for bit (the window variance term by term in
  River's order); identical positions are asserted below.
* real values: the older sub-window's sum is the running total at the cut
  (one rounding chain) where River adds bucket totals (another). The two
  differ in the last bits, which could only flip a cut whose statistic equals
  its bound to ~1e-15; on the seeded real-valued streams below no position
  differs, and the test asserts equality.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.drift import ADWIN as RiverADWIN

from driftwarden.detectors.adwin import ADWIN

PARAMS = [
    {},
    {"delta": 0.01, "clock": 1},
    {"delta": 0.0001, "clock": 7, "max_buckets": 2, "min_window_length": 1},
    {"max_buckets": 3, "min_window_length": 20, "grace_period": 300},
]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("params", PARAMS)
def test_same_drifts_as_river_on_error_bits(
    seed, params, error_stream, river_positions, our_positions
) -> None:
    length = 12_000 if params.get("clock") == 1 else 60_000
    x = error_stream(seed, [0.1, 0.25, 0.1, 0.3], length)
    cuts = np.sort(np.random.default_rng(seed).integers(0, x.size, 25))
    river = river_positions(RiverADWIN(**params), x)
    ours = our_positions(ADWIN(**params), x, batch=list(cuts))
    np.testing.assert_array_equal(ours[1], river[1])
    assert river[1].size >= 3


@pytest.mark.parametrize("seed", range(3))
def test_same_drifts_as_river_on_real_values(seed, river_positions, our_positions) -> None:
    rng = np.random.default_rng(seed)
    shift = np.repeat([0.0, 0.3, -0.2, 0.5], 8_000)
    x = rng.lognormal(shift, 0.7)
    river = river_positions(RiverADWIN(), x)
    ours = our_positions(ADWIN(), x, batch=999)
    np.testing.assert_array_equal(ours[1], river[1])
    assert river[1].size >= 2


def test_window_restarts_after_a_drift_as_river() -> None:
    x = np.concatenate([np.zeros(3000), np.ones(3000)])
    ours, river = ADWIN(), RiverADWIN()
    found = ours.update(x)
    for value in x.tolist():
        river.update(value)
    assert found.drifts.size >= 1
    assert ours.width == river.width
    assert ours.estimation == river.estimation


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
    clock=st.sampled_from([1, 5, 32]),
    real=st.booleans(),
)
def test_restoring_anywhere_gives_the_same_detections(
    seed, cuts, clock, real, error_stream, our_positions, restored_positions
) -> None:
    if real:
        x = np.random.default_rng(seed).normal(np.repeat([0.0, 1.0, 0.2, -1.0], 1000), 1.0)
    else:
        x = error_stream(seed, [0.1, 0.5, 0.05, 0.4], 4000)
    one = our_positions(ADWIN(clock=clock), x, batch=x.size)
    split = restored_positions(lambda: ADWIN(clock=clock), x, cuts)
    np.testing.assert_array_equal(split[1], one[1])


def test_inconsistent_state_is_rejected() -> None:
    detector = ADWIN()
    detector.update(np.zeros(100))
    state = detector.state_dict()
    state["state"]["width"] = 1000
    with pytest.raises(ValueError, match="inconsistent"):
        ADWIN.from_state(state)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"delta": 0.0}, "delta"),
        ({"clock": 0}, "clock"),
        ({"max_buckets": 1}, "max_buckets"),
        ({"min_window_length": 0}, "min_window_length"),
        ({"grace_period": -1}, "grace_period"),
    ],
)
def test_bad_hyperparameters_are_named(params, name) -> None:
    with pytest.raises(ValueError, match=name):
        ADWIN(**params)
