"""Data-quality rates of a window against the reference: missing, type errors, out of range."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftwarden.detectors.histogram import (
    CategoricalSummary,
    NumericSummary,
    check_categorical_pair,
    check_numeric_pair,
    finite_edge_count,
)
from driftwarden.detectors.multiple_testing import check_threshold, sample_status, to_results
from driftwarden.detectors.result import DetectorResult

Counts = np.ndarray | Sequence[int]


def _counts(name: str, values: Counts) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer) or (array.size == 0 and array.dtype == float)
    ):
        raise ValueError(f"{name} must be a 1-D array of integer counts, got {values!r}")
    if np.any(array < 0):
        raise ValueError(f"{name} must be counts >= 0, got {values!r}")
    return array.astype(np.int64)


class DataQuality:
    """Per-feature data-quality rates of a window, flagged when they exceed the reference's.

    Parameters
    ----------
    tolerance : float, default 0.05
        A rate is flagged when the window's exceeds the reference's by more
        than this (absolute, a rate of 0..1): ``value > threshold`` with
        ``value`` the window rate and ``threshold = reference rate +
        tolerance``, so the record carries both.

    Notes
    -----
    The four metrics (the ``metric`` of a ``data_quality`` result record):

    - ``missing_rate = missing / rows``: ``rows`` counts every row of the
      window (or reference), ``missing`` the rows where the feature has no
      usable value — null, absent, or of the wrong type (by the event
      contract a type error also counts as missing). So ``rows = present +
      missing`` and type errors are inside ``missing``.
    - ``type_error_rate = type_errors / rows``, same ``rows``.
    - ``out_of_range_rate``: numeric, the share of present values below the
      reference minimum or above the reference maximum (fine bins 0 and
      ``k_f``). The reference's own rate is 0 by construction, so the
      threshold is ``tolerance``.
    - ``unseen_category_rate``: categorical, the share of present values in
      categories never seen in the reference (the last bucket). 0 for the
      reference by construction.

    Rates are exact (``error_bound`` 0); no p-value (a shift in data quality
    is a fact about the window, not a sample of it).

    Statuses: ``insufficient_data`` when the window or the reference has no
    rows (no present values for the two distribution-based rates).

    Examples
    --------
    >>> rng = np.random.default_rng(11)
    >>> window_missing = rng.binomial(1_000, [0.02, 0.20])
    >>> window_missing
    array([ 15, 205])
    >>> results = DataQuality().missing_rate([100, 100], [10_000, 10_000], window_missing,
    ...                                      [1_000, 1_000])
    >>> [(r.value, round(r.threshold, 2), r.drift) for r in results]
    [(0.015, 0.06, False), (0.205, 0.06, True)]
    """

    name = "data_quality"
    metrics = ("missing_rate", "type_error_rate", "out_of_range_rate", "unseen_category_rate")
    applies_to = ("numeric", "categorical")

    def __init__(self, tolerance: float = 0.05) -> None:
        self.tolerance = check_threshold(tolerance, "tolerance")

    def missing_rate(
        self,
        reference_missing: Counts,
        reference_rows: Counts,
        window_missing: Counts,
        window_rows: Counts,
    ) -> list[DetectorResult]:
        """``missing_rate`` per feature; ``missing`` includes type errors, ``rows`` all rows."""
        return self._rates(
            "missing", reference_missing, reference_rows, window_missing, window_rows
        )

    def type_error_rate(
        self,
        reference_errors: Counts,
        reference_rows: Counts,
        window_errors: Counts,
        window_rows: Counts,
    ) -> list[DetectorResult]:
        """``type_error_rate`` per feature: values of the wrong type over all rows."""
        return self._rates(
            "type errors", reference_errors, reference_rows, window_errors, window_rows
        )

    def out_of_range_rate(
        self, reference: NumericSummary, window: NumericSummary, edges: np.ndarray
    ) -> list[DetectorResult]:
        """``out_of_range_rate`` per numeric feature: present values outside the reference range."""
        check_numeric_pair(reference, window, edges)
        top = np.minimum(finite_edge_count(edges), reference.counts.shape[1] - 1)
        rows = np.arange(reference.counts.shape[0])

        def outside(counts: np.ndarray) -> np.ndarray:
            return np.where(top > 0, counts[:, 0] + counts[rows, top], counts[:, 0])

        return self._from_counts(
            outside(reference.counts), reference.n, outside(window.counts), window.n
        )

    def unseen_category_rate(
        self, reference: CategoricalSummary, window: CategoricalSummary
    ) -> list[DetectorResult]:
        """``unseen_category_rate`` per categorical feature: present values never seen before."""
        check_categorical_pair(reference, window)
        return self._from_counts(reference.unseen, reference.n, window.unseen, window.n)

    def _rates(
        self,
        label: str,
        reference_part: Counts,
        reference_rows: Counts,
        window_part: Counts,
        window_rows: Counts,
    ) -> list[DetectorResult]:
        arrays = [
            _counts(f"reference {label}", reference_part),
            _counts("reference rows", reference_rows),
            _counts(f"window {label}", window_part),
            _counts("window rows", window_rows),
        ]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(
                "all counts must have one entry per feature, "
                f"got shapes {[a.shape for a in arrays]}"
            )
        for part, rows, side in (
            (arrays[0], arrays[1], "reference"),
            (arrays[2], arrays[3], "window"),
        ):
            if np.any(part > rows):
                raise ValueError(
                    f"{side} {label} exceed its rows: {part.tolist()} > {rows.tolist()}"
                )
        return self._from_counts(*arrays)

    def _from_counts(
        self,
        reference_part: np.ndarray,
        reference_total: np.ndarray,
        window_part: np.ndarray,
        window_total: np.ndarray,
    ) -> list[DetectorResult]:
        with np.errstate(divide="ignore", invalid="ignore"):
            reference_rate = reference_part / reference_total
            window_rate = window_part / window_total
        threshold = np.where(np.isfinite(reference_rate), reference_rate, 0.0) + self.tolerance
        return to_results(
            window_rate,
            sample_status(reference_total, window_total),
            threshold,
            n_reference=reference_total,
            n_window=window_total,
            error_bound=0.0,
        )
