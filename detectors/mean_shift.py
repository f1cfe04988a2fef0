"""Standardized mean shift from the summaries' moments, with a Welch z-test p-value."""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftwarden.detectors.histogram import NumericSummary, check_numeric_pair
from driftwarden.detectors.multiple_testing import (
    UNDEFINED,
    check_alpha,
    check_correction,
    check_threshold,
    sample_status,
    to_results,
)
from driftwarden.detectors.result import DetectorResult


class MeanShift:
    """``|mean_window - mean_reference| / std_reference`` with a Welch z-test p-value.

    Parameters
    ----------
    threshold : float, default 0.1
        Drift when the standardized shift exceeds it (a tenth of a reference
        standard deviation; Cohen's "small" effect is d = 0.2) and the
        adjusted p-value is below ``alpha``.
    alpha : float, default 0.05
        Level for the adjusted p-value.
    correction : {"benjamini-hochberg", "bonferroni", "none"}
        Adjustment of the p-values across the features of one call.

    Notes
    -----
    ``value = |mu_w - mu_r| / sigma_r`` with ``sigma_r`` the population
    standard deviation of the reference: Glass's delta (Glass, 1976), the
    shift in reference standard deviations, read from the summaries' sums
    (exact up to rounding: ``error_bound`` 0). The p-value is the two-sided
    Welch z-test ``2 Phi(-|mu_w - mu_r| / sqrt(s_r^2 / n + s_w^2 / m))``
    with unbiased variances ``s^2`` (Welch, 1947, with the normal limit that
    window sizes here justify). Only the mean is watched: a change of spread
    or shape with the same mean is :class:`KS`'s or :class:`Wasserstein`'s.

    Statuses: ``insufficient_data`` when the reference or the window has fewer
    than 2 values (no variance for the test); ``undefined`` when the reference
    is constant (``sigma_r = 0``).

    Examples
    --------
    >>> from driftwarden.detectors.histogram import pad_edges, quantile_edges
    >>> rng = np.random.default_rng(42)
    >>> reference = rng.normal(size=(2, 20_000))
    >>> window = rng.normal(loc=[[0.0], [0.5]], size=(2, 5_000))
    >>> edges = pad_edges([quantile_edges(column) for column in reference])
    >>> shift = reference.mean(axis=1)
    >>> ref = NumericSummary.from_columns(reference, edges, shift)
    >>> win = NumericSummary.from_columns(window, edges, shift)
    >>> [(round(r.value, 4), r.drift) for r in MeanShift().numeric(ref, win, edges)]
    [(0.0128, False), (0.4615, True)]
    """

    name = "mean_shift"
    applies_to = ("numeric",)

    def __init__(
        self, threshold: float = 0.1, alpha: float = 0.05, correction: str = "benjamini-hochberg"
    ) -> None:
        self.threshold = check_threshold(threshold)
        self.alpha = check_alpha(alpha)
        self.correction = check_correction(correction)

    def numeric(
        self, reference: NumericSummary, window: NumericSummary, edges: np.ndarray
    ) -> list[DetectorResult]:
        """Standardized mean shift and Welch p-value per numeric feature."""
        check_numeric_pair(reference, window, edges)
        n, m = reference.n, window.n
        status = sample_status(n, m, minimum=2)
        status[(status == "ok") & (reference.minimum == reference.maximum)] = UNDEFINED
        # sums centred on the reference mean: the difference of means loses no digits
        with np.errstate(divide="ignore", invalid="ignore"):
            difference = (window.shift - reference.shift) + (
                window.shifted_sum / m - reference.shifted_sum / n
            )
            value = np.abs(difference) / np.sqrt(reference.variance)
            unbiased_ref = reference.variance * n / (n - 1)
            unbiased_win = window.variance * m / (m - 1)
            z = np.abs(difference) / np.sqrt(unbiased_ref / n + unbiased_win / m)
            p_value = 2.0 * stats.norm.sf(z)
        return to_results(
            value,
            status,
            self.threshold,
            n_reference=n,
            n_window=m,
            error_bound=0.0,
            p_values=p_value,
            alpha=self.alpha,
            correction=self.correction,
        )
