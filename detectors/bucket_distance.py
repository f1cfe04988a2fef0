"""Distances between the reference's and a window's bucket shares, one value per feature.

The detectors that compare two count vectors and nothing else (PSI, Hellinger, Jensen-Shannon,
total variation, L-infinity) differ only in the distance; the checks, the buckets and the
result records are shared here.
"""

from __future__ import annotations

import numpy as np

from driftwarden.detectors.histogram import (
    CategoricalSummary,
    NumericSummary,
    check_categorical_pair,
    check_numeric_pair,
    coarse_counts,
)
from driftwarden.detectors.multiple_testing import (
    check_bins,
    check_threshold,
    sample_status,
    to_results,
)
from driftwarden.detectors.result import DetectorResult


class CategoryDistance:
    """A distance over each categorical feature's ``V + 2`` buckets; subclasses give
    :meth:`distance`. Exact on the buckets (``error_bound`` 0); ``insufficient_data`` when
    either side has no value for the feature."""

    name: str
    applies_to: tuple[str, ...] = ("categorical",)

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def distance(self, reference_counts: np.ndarray, window_counts: np.ndarray) -> np.ndarray:
        """The distance per row of two ``(F, B)`` count arrays (NaN where a row is empty)."""
        raise NotImplementedError

    def categorical(
        self, reference: CategoricalSummary, window: CategoricalSummary
    ) -> list[DetectorResult]:
        """The distance per categorical feature over its ``V + 2`` buckets."""
        check_categorical_pair(reference, window)
        return self._results(reference.counts, window.counts)

    def _results(self, ref: np.ndarray, win: np.ndarray) -> list[DetectorResult]:
        n_ref, n_win = ref.sum(axis=1), win.sum(axis=1)
        return to_results(
            self.distance(ref, win),
            sample_status(n_ref, n_win),
            self.threshold,
            n_reference=n_ref,
            n_window=n_win,
            error_bound=0.0,
        )


class BucketDistance(CategoryDistance):
    """A :class:`CategoryDistance` that also compares numeric features, on ``bins`` coarse
    groups of about equal reference mass merged from the fine bins (the same groups for every
    detector of this kind)."""

    applies_to = ("numeric", "categorical")

    def __init__(self, threshold: float = 0.1, bins: int = 10) -> None:
        super().__init__(threshold)
        self.bins = check_bins(bins)

    def numeric(
        self, reference: NumericSummary, window: NumericSummary, edges: np.ndarray
    ) -> list[DetectorResult]:
        """The distance per numeric feature on ``bins`` coarse reference-quantile groups."""
        check_numeric_pair(reference, window, edges)
        return self._results(*coarse_counts(reference, window, self.bins))


def shares(counts: np.ndarray) -> np.ndarray:
    """Each row of a count array as proportions (NaN where a row is empty)."""
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return counts / counts.sum(axis=1, keepdims=True)
