"""ROC AUC and average precision: histogram values within their bounds of scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from driftwarden.detectors.ranking import (
    average_precision_exact,
    average_precision_from_histograms,
    check_scores,
    roc_auc_exact,
    roc_auc_from_histograms,
    score_bins,
)


def _histograms(y: np.ndarray, s: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    b = score_bins(s, n_bins)
    return np.bincount(b[y], minlength=n_bins), np.bincount(b[~y], minlength=n_bins)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    n_bins=st.sampled_from([1, 2, 7, 50, 1000]),
    rounding=st.sampled_from([None, 1, 2]),
)
def test_histogram_values_lie_within_their_bounds(seed, n, n_bins, rounding) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rng.uniform(0.05, 0.95)
    if y.all() or not y.any():
        y[0] = not y[0]
    s = np.clip(rng.beta(2, 2, n) + 0.3 * y * rng.random(), 0, 1)
    if rounding is not None:
        s = np.round(s, rounding)
    pos, neg = _histograms(y, s, n_bins)
    value, bound = roc_auc_from_histograms(pos, neg)
    assert abs(value - roc_auc_score(y, s)) <= bound + 1e-12
    value, bound = average_precision_from_histograms(pos, neg)
    assert abs(value - average_precision_score(y, s)) <= bound + 1e-12


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 500), ties=st.booleans())
def test_exact_versions_equal_scikit_learn(seed, n, ties) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    if y.all() or not y.any():
        y[0] = not y[0]
    s = rng.random(n)
    if ties:
        s = np.round(s, 1)
    assert roc_auc_exact(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision_exact(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_grid_scores_make_histograms_exact() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(50_000) < 0.3
    s = np.round(np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, y.size), 0, 1), 2)
    pos, neg = _histograms(y, s, 1000)
    value, bound = roc_auc_from_histograms(pos, neg)
    assert bound > 0  # ties between classes within a score, counted 1/2 as scikit-learn does
    assert value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision_from_histograms(pos, neg)[0] == pytest.approx(
        average_precision_score(y, s), abs=1e-12
    )


def test_bounds_shrink_with_finer_bins() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(100_000) < 0.2
    s = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, y.size), 0, 1)
    bounds = [roc_auc_from_histograms(*_histograms(y, s, b))[1] for b in (10, 100, 1000)]
    assert bounds[0] > bounds[1] > bounds[2]
    assert bounds[2] < 1e-3


def test_one_class_is_undefined_not_a_number() -> None:
    assert np.isnan(roc_auc_from_histograms(np.array([0, 0]), np.array([1, 2]))[0])
    assert np.isnan(average_precision_from_histograms(np.array([0, 0]), np.array([1, 2]))[0])
    assert np.isnan(roc_auc_exact(np.array([1, 1]), np.array([0.2, 0.4])))
    assert np.isnan(average_precision_exact(np.array([0, 0]), np.array([0.2, 0.4])))


def test_scores_outside_the_unit_interval_are_named() -> None:
    with pytest.raises(ValueError, match=r"got 1\.5 at position 1"):
        check_scores(np.array([0.2, 1.5]))
    with pytest.raises(ValueError, match="nan"):
        check_scores(np.array([np.nan]))
