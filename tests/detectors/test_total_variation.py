"""Total variation distance over the category buckets."""

from __future__ import annotations

import numpy as np
import pytest

from driftwarden.detectors.total_variation import TotalVariation


def test_equals_half_the_l1_distance(categorical_pair) -> None:
    rng = np.random.default_rng(4)
    ref = rng.integers(0, 1_000, size=(5, 8))
    win = rng.integers(0, 1_000, size=(5, 8))
    win[0] = 0
    win[0, -1] = 3  # only unseen categories
    for f, result in enumerate(TotalVariation().categorical(*categorical_pair(ref, win))):
        expected = 0.5 * np.abs(ref[f] / ref[f].sum() - win[f] / win[f].sum()).sum()
        assert result.value == pytest.approx(expected, abs=1e-12)
        assert result.error_bound == 0.0 and result.drift == (expected > 0.1)
    assert TotalVariation().categorical(*categorical_pair(ref, win))[0].value == pytest.approx(
        1.0 - ref[0, -1] / ref[0].sum()
    )


def test_edge_cases(categorical_pair) -> None:
    results = TotalVariation(threshold=0.0).categorical(
        *categorical_pair([[5, 0, 0], [0, 0, 0], [1, 1, 0]], [[1, 0, 0], [2, 0, 0], [0, 0, 0]])
    )
    assert results[0].value == 0.0 and not results[0].drift
    assert [r.status for r in results[1:]] == ["insufficient_data"] * 2
    with pytest.raises(ValueError, match="threshold"):
        TotalVariation(threshold=None)
