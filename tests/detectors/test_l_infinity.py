"""L-infinity distance over the category buckets."""

from __future__ import annotations

import numpy as np
import pytest

from driftwarden.detectors.l_infinity import LInfinity


def test_equals_the_largest_share_change(categorical_pair) -> None:
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 1_000, size=(5, 8))
    win = rng.integers(0, 1_000, size=(5, 8))
    for f, result in enumerate(LInfinity().categorical(*categorical_pair(ref, win))):
        expected = np.max(np.abs(ref[f] / ref[f].sum() - win[f] / win[f].sum()))
        assert result.value == pytest.approx(expected, abs=1e-12)
        assert result.drift == (expected > 0.1)


def test_edge_cases(categorical_pair) -> None:
    results = LInfinity().categorical(
        *categorical_pair([[5, 0, 0], [0, 0, 0], [6, 0, 0]], [[1, 0, 0], [2, 0, 0], [0, 0, 2]])
    )
    assert results[0].value == 0.0
    assert results[1].status == "insufficient_data"
    assert results[2].value == 1.0 and results[2].drift  # only unseen categories
    with pytest.raises(ValueError, match="threshold"):
        LInfinity(threshold=-0.5)
