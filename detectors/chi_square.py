"""Chi-square test of homogeneity (reference vs window) with Cramér's V as its effect size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from driftwarden.detectors.histogram import CategoricalSummary, check_categorical_pair
from driftwarden.detectors.multiple_testing import (
    check_alpha,
    check_correction,
    check_threshold,
    sample_status,
    to_results,
)
from driftwarden.detectors.result import DetectorResult


@dataclass(frozen=True)
class ChiSquareTest:
    """Per-feature outcome of the 2 x k homogeneity test (NaN where a side is empty).

    ``statistic`` is Pearson's chi-square, ``dof`` its degrees of freedom
    (``k - 1`` for the ``k`` buckets non-empty on at least one side),
    ``p_value`` its upper tail, ``cramers_v`` the effect size
    ``sqrt(statistic / N)``, ``n_reference`` / ``n_window`` the two row sums.
    """

    statistic: np.ndarray
    p_value: np.ndarray
    dof: np.ndarray
    cramers_v: np.ndarray
    n_reference: np.ndarray
    n_window: np.ndarray


def chi_square_test(reference_counts: np.ndarray, window_counts: np.ndarray) -> ChiSquareTest:
    """Chi-square homogeneity test per row of two count arrays, all rows at once.

    Parameters
    ----------
    reference_counts, window_counts : numpy.ndarray, shape (F, B)
        Counts per bucket (category) on each side.

    Returns
    -------
    ChiSquareTest
        Statistic, p-value, degrees of freedom and Cramér's V per row (NaN,
        and ``dof = -1``, where a side is empty).

    Notes
    -----
    The 2 x k table of the buckets non-empty on at least one side; ``chi2 =
    sum (O - E)^2 / E``, ``E = row total x column total / N``, ``k - 1``
    degrees of freedom, no continuity correction: equal to
    ``scipy.stats.chi2_contingency(table, correction=False)``. ``k = 1``
    gives ``chi2 = 0``, ``p = 1``, ``dof = 0``. See :class:`ChiSquare`.

    Examples
    --------
    >>> test = chi_square_test(np.array([[60, 40, 0]]), np.array([[45, 55, 0]]))
    >>> test.statistic.round(4), test.p_value.round(4), test.dof
    (array([4.5113]), array([0.0337]), array([1]))
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    win = np.asarray(window_counts, dtype=np.float64)
    n, m = ref.sum(axis=1), win.sum(axis=1)
    total = n + m
    column = ref + win
    used = column > 0
    dof = used.sum(axis=1) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_ref = n[:, None] * column / total[:, None]
        expected_win = m[:, None] * column / total[:, None]
        terms = (ref - expected_ref) ** 2 / expected_ref + (win - expected_win) ** 2 / expected_win
        statistic = np.where(used, terms, 0.0).sum(axis=1)
        p_value = np.where(dof > 0, stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
        cramers_v = np.minimum(np.sqrt(statistic / total), 1.0)
    empty = (n == 0) | (m == 0)
    for array in (statistic, p_value, cramers_v):
        array[empty] = np.nan
    return ChiSquareTest(
        statistic=statistic,
        p_value=p_value,
        dof=np.where(empty, -1, dof),
        cramers_v=cramers_v,
        n_reference=ref.sum(axis=1).astype(np.int64),
        n_window=win.sum(axis=1).astype(np.int64),
    )


class ChiSquare:
    """Chi-square homogeneity test deciding on Cramér's V and the adjusted p-value.

    Parameters
    ----------
    threshold : float, default 0.1
        Drift when Cramér's V exceeds it (Cohen's "small" effect for a table
        with one degree of freedom in the smaller dimension: w = 0.1) and the
        adjusted p-value is below ``alpha``.
    alpha : float, default 0.05
        Level for the adjusted p-value.
    correction : {"benjamini-hochberg", "bonferroni", "none"}
        Adjustment of the p-values across the features of one call.

    Notes
    -----
    The table has two rows (reference, window) and one column per bucket that
    holds a value on at least one side (of the ``V + 2`` buckets of
    :class:`CategoricalSummary`). ``chi2 = sum (O - E)^2 / E`` with ``E =
    row total x column total / N`` (Pearson, 1900), ``k - 1`` degrees of
    freedom, no continuity correction (``scipy.stats.chi2_contingency``
    applies Yates' correction when ``dof = 1`` by default; we match it with
    ``correction=False``, so a binary feature is treated like any other). A
    category never seen in the reference is simply a column with a zero in
    the reference row: the statistic stays finite (unlike a goodness-of-fit
    test against reference proportions, such as Evidently's ``chisquare``,
    which divides by a zero expected count).

    The reported ``value`` is Cramér's V, ``sqrt(chi2 / (N (min(2, k) - 1)))
    = sqrt(chi2 / N)`` (Cramér, 1946), the effect size that does not grow
    with the window, in ``[0, 1]``; ``p_value`` is the test's raw p-value.
    The statistic and the degrees of freedom are available from
    :meth:`test`. A feature whose reference and window hold one and the same
    category (``k = 1``) has ``chi2 = 0``, ``p = 1``, ``dof = 0`` as in scipy,
    and ``V = 0`` (identical distributions; scipy's
    ``contingency.association`` returns NaN from 0/0 there).

    Statuses: ``insufficient_data`` when the reference or the window has no
    value for the feature. Exact: ``error_bound`` 0.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> ref = CategoricalSummary.from_codes(rng.choice(3, p=[0.5, 0.3, 0.2], size=(1, 20_000)), 3)
    >>> win = CategoricalSummary.from_codes(rng.choice(3, p=[0.3, 0.3, 0.4], size=(1, 5_000)), 3)
    >>> [(round(r.value, 4), r.drift) for r in ChiSquare().categorical(ref, win)]
    [(0.2087, True)]
    >>> ChiSquare().test(ref, win).dof
    array([2])
    """

    name = "chi_square"
    applies_to = ("categorical",)

    def __init__(
        self, threshold: float = 0.1, alpha: float = 0.05, correction: str = "benjamini-hochberg"
    ) -> None:
        self.threshold = check_threshold(threshold)
        self.alpha = check_alpha(alpha)
        self.correction = check_correction(correction)

    def test(self, reference: CategoricalSummary, window: CategoricalSummary) -> ChiSquareTest:
        """The test itself: statistic, p-value, degrees of freedom and Cramér's V per feature."""
        check_categorical_pair(reference, window)
        return chi_square_test(reference.counts, window.counts)

    def categorical(
        self, reference: CategoricalSummary, window: CategoricalSummary
    ) -> list[DetectorResult]:
        """Cramér's V and the chi-square p-value per categorical feature."""
        outcome = self.test(reference, window)
        return to_results(
            outcome.cramers_v,
            sample_status(outcome.n_reference, outcome.n_window),
            self.threshold,
            n_reference=outcome.n_reference,
            n_window=outcome.n_window,
            error_bound=0.0,
            p_values=outcome.p_value,
            alpha=self.alpha,
            correction=self.correction,
        )
