"""Wilson intervals against scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from driftwarden.detectors.intervals import wilson_interval


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_matches_scipy_wilson(confidence) -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 500, 60)
    k = rng.integers(0, n + 1)
    k[:3] = [0, n[1], 1]
    low, high = wilson_interval(k, n, confidence)
    for i in range(n.size):
        expected = binomtest(int(k[i]), int(n[i])).proportion_ci(confidence, "wilson")
        assert low[i] == pytest.approx(expected.low, abs=1e-12)
        assert high[i] == pytest.approx(expected.high, abs=1e-12)


def test_empty_groups_give_nan_and_bad_input_is_rejected() -> None:
    low, high = wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
