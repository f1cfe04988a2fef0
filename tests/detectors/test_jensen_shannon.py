"""Jensen–Shannon distance equals scipy's on the same counts (categorical and coarse numeric)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial import distance

from driftwarden.detectors.histogram import coarse_counts
from driftwarden.detectors.jensen_shannon import JensenShannon, jensen_shannon_from_counts

count_rows = (
    st.integers(1, 12)
    .flatmap(
        lambda k: st.tuples(
            arrays(np.int64, k, elements=st.integers(0, 10_000)),
            arrays(np.int64, k, elements=st.integers(0, 10_000)),
        )
    )
    .filter(lambda pair: pair[0].sum() > 0 and pair[1].sum() > 0)
)


@settings(max_examples=150, deadline=None)
@given(count_rows)
def test_equals_scipy_on_the_same_count_vectors(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, win = pair
    value = jensen_shannon_from_counts(ref[None, :], win[None, :])[0]
    assert value == pytest.approx(distance.jensenshannon(ref, win, base=2), abs=1e-9)


def test_categorical_detector_equals_scipy_and_ignores_padding(categorical_pair) -> None:
    ref = np.array([[500, 300, 200, 0, 0, 0], [10, 0, 0, 0, 5, 0]])
    win = np.array([[100, 100, 0, 0, 30, 9], [0, 0, 0, 0, 0, 7]])
    results = JensenShannon().categorical(*categorical_pair(ref, win))
    for f, result in enumerate(results):
        assert result.value == pytest.approx(
            distance.jensenshannon(ref[f], win[f], base=2), abs=1e-9
        )
        assert result.error_bound == 0.0
    assert results[1].value == pytest.approx(1.0)  # only unseen categories: disjoint supports
    assert results[1].drift


def test_numeric_detector_uses_the_coarse_groups(numeric_pair) -> None:
    rng = np.random.default_rng(1)
    pair = numeric_pair(rng.lognormal(size=(2, 30_000)), rng.lognormal(0.2, size=(2, 3_000)))
    ref_coarse, win_coarse = coarse_counts(pair.ref, pair.win, 10)
    for f, result in enumerate(JensenShannon().numeric(pair.ref, pair.win, pair.edges)):
        expected = distance.jensenshannon(ref_coarse[f], win_coarse[f], base=2)
        assert result.value == pytest.approx(expected, abs=1e-9)


def test_edge_cases(categorical_pair, numeric_pair) -> None:
    ref = np.array([[10, 0, 0, 0], [0, 0, 0, 0], [5, 5, 0, 0]])
    win = np.array([[3, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    results = JensenShannon().categorical(*categorical_pair(ref, win))
    assert [r.status for r in results] == ["ok", "insufficient_data", "insufficient_data"]
    assert results[0].value == 0.0
    pair = numeric_pair(np.full((1, 50), 3.0), np.full((1, 1), 3.0))
    [constant] = JensenShannon().numeric(pair.ref, pair.win, pair.edges)
    assert constant.value == 0.0


def test_bad_hyperparameters_raise() -> None:
    with pytest.raises(ValueError, match="bins"):
        JensenShannon(bins=0)
    with pytest.raises(ValueError, match="threshold"):
        JensenShannon(threshold=-1)
