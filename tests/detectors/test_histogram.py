"""Coarse groups over fine bins, and the merge laws of the summaries (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from driftwarden.detectors.histogram import (
    CategoricalSummary,
    NumericSummary,
    coarse_counts,
    coarse_groups,
    coarsen,
    finite_edge_count,
    pad_edges,
    quantile_edges,
)

RNG = np.random.default_rng(2024)
REFERENCE = np.stack([RNG.normal(size=2_000), RNG.poisson(2.0, size=2_000).astype(float)])
EDGES = pad_edges([quantile_edges(column, 50) for column in REFERENCE])
SHIFT = REFERENCE.mean(axis=1)


def test_coarse_groups_equal_mass_on_continuous_data() -> None:
    values = np.random.default_rng(0).normal(size=(1, 50_000))
    edges = pad_edges([quantile_edges(values[0])])
    summary = NumericSummary.from_columns(values, edges, values.mean(axis=1))
    groups = coarse_groups(summary.counts, 10)
    assert np.all(np.diff(groups, axis=1) >= 0)
    coarse = coarsen(summary.counts, groups, 10)
    np.testing.assert_allclose(coarse / 50_000, 0.1, atol=0.002)
    # fine bins are merged whole: each fine bin belongs to exactly one group
    assert coarse.sum() == summary.counts.sum()


def test_coarse_groups_out_of_range_bins_join_the_end_groups() -> None:
    counts = np.array([[0, 10, 10, 10, 10, 0, 0, 0]])  # bin 0, 4 real bins, bin k_f, 2 padding
    groups = coarse_groups(counts, 2)
    assert groups.tolist() == [[0, 0, 0, 1, 1, 1, 1, 1]]


def test_coarse_groups_heavy_tie_keeps_its_own_group() -> None:
    counts = np.array([[0, 70, 20, 10, 0]])
    groups = coarse_groups(counts, 10)
    assert groups.tolist() == [[3, 3, 8, 9, 9]]
    assert coarsen(counts, groups, 10).tolist() == [[0, 0, 0, 70, 0, 0, 0, 0, 20, 10]]


def test_coarse_groups_of_an_empty_reference() -> None:
    groups = coarse_groups(np.zeros((2, 5), dtype=np.int64), 4)
    assert groups.tolist() == [[0] * 5] * 2


def test_coarse_counts_are_sums_of_panes() -> None:
    rng = np.random.default_rng(1)
    ref = NumericSummary.from_columns(REFERENCE, EDGES, SHIFT)
    a = NumericSummary.from_columns(rng.normal(size=(2, 300)), EDGES, SHIFT)
    b = NumericSummary.from_columns(rng.normal(size=(2, 700)) + 1.0, EDGES, SHIFT)
    _, merged = coarse_counts(ref, a.merge(b), 10)
    _, first = coarse_counts(ref, a, 10)
    _, second = coarse_counts(ref, b, 10)
    np.testing.assert_array_equal(merged, first + second)


def test_finite_edge_count() -> None:
    assert finite_edge_count(pad_edges([np.array([1.0, 2.0]), np.empty(0)])).tolist() == [2, 0]


values = st.floats(-1e6, 1e6, allow_nan=False) | st.just(np.nan) | st.sampled_from([0.0, 1.0, 2.0])
columns = st.integers(0, 30).flatmap(lambda n: arrays(np.float64, (2, n), elements=values))


def _numeric(chunk: np.ndarray) -> NumericSummary:
    return NumericSummary.from_columns(chunk, EDGES, SHIFT)


def _assert_same(a: NumericSummary, b: NumericSummary) -> None:
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.minimum, b.minimum)
    np.testing.assert_array_equal(a.maximum, b.maximum)
    np.testing.assert_allclose(a.shifted_sum, b.shifted_sum, rtol=1e-9, atol=1e-3)
    np.testing.assert_allclose(a.shifted_sum_sq, b.shifted_sum_sq, rtol=1e-9, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(columns, columns, columns)
def test_numeric_merge_is_associative_commutative_and_concatenation(
    x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> None:
    a, b, c = _numeric(x), _numeric(y), _numeric(z)
    _assert_same(a.merge(b), b.merge(a))
    _assert_same(a.merge(b).merge(c), a.merge(b.merge(c)))
    _assert_same(a.merge(b).merge(c), _numeric(np.concatenate([x, y, z], axis=1)))
    empty = NumericSummary.empty(EDGES, SHIFT)
    _assert_same(a.merge(empty), a)


codes = st.integers(0, 30).flatmap(lambda n: arrays(np.int64, (3, n), elements=st.integers(-1, 6)))


@settings(max_examples=60, deadline=None)
@given(codes, codes, codes)
def test_categorical_merge_is_associative_commutative_and_concatenation(
    x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> None:
    a, b, c = (CategoricalSummary.from_codes(chunk, 5) for chunk in (x, y, z))
    np.testing.assert_array_equal(a.merge(b).counts, b.merge(a).counts)
    np.testing.assert_array_equal(a.merge(b).merge(c).counts, a.merge(b.merge(c)).counts)
    together = CategoricalSummary.from_codes(np.concatenate([x, y, z], axis=1), 5)
    np.testing.assert_array_equal(a.merge(b).merge(c).counts, together.counts)
    assert a.merge(CategoricalSummary.empty(3, 5)).counts.tolist() == a.counts.tolist()


def test_count_bins_refuses_indices_past_its_bins() -> None:
    from driftwarden.detectors.histogram import count_bins

    indices = np.array([[0, 2, -1], [1, 1, 0]])
    np.testing.assert_array_equal(count_bins(indices, 3), [[1, 0, 1], [1, 2, 0]])
    with pytest.raises(ValueError, match="bin index 3 is out of range for 3 bins"):
        count_bins(np.array([[0, 3]]), 3)
    with pytest.raises(ValueError, match="features, rows"):
        count_bins(np.array([0, 1]), 3)
