"""Cramér's V between reference and window categories, as a pure effect size."""

from __future__ import annotations

from driftwarden.detectors.chi_square import chi_square_test
from driftwarden.detectors.histogram import CategoricalSummary, check_categorical_pair
from driftwarden.detectors.multiple_testing import check_threshold, sample_status, to_results
from driftwarden.detectors.result import DetectorResult


class CramersV:
    """Cramér's V of the 2 x k reference-vs-window table, deciding on the effect size alone.

    Parameters
    ----------
    threshold : float, default 0.1
        Drift when V exceeds it (Cohen's "small" effect, w = 0.1, for tables
        with one degree of freedom in the smaller dimension).

    Notes
    -----
    ``V = sqrt(chi2 / (N (min(2, k) - 1))) = sqrt(chi2 / N)`` for ``k >= 2``
    buckets non-empty on at least one side, with Pearson's ``chi2`` of the
    homogeneity table (Cramér, *Mathematical Methods of Statistics*, 1946);
    equal to ``scipy.stats.contingency.association(table, method="cramer")``.
    ``V = 0`` when both sides hold one and the same category (scipy: NaN).
    The same number :class:`ChiSquare` reports as its value; this detector
    has no p-value, so the threshold alone decides. Exact: ``error_bound`` 0.

    Statuses: ``insufficient_data`` when the reference or the window has no
    value for the feature.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> ref = CategoricalSummary.from_codes(rng.choice(3, p=[0.5, 0.3, 0.2], size=(1, 20_000)), 3)
    >>> win = CategoricalSummary.from_codes(rng.choice(3, p=[0.3, 0.3, 0.4], size=(1, 5_000)), 3)
    >>> [(round(r.value, 4), r.drift) for r in CramersV().categorical(ref, win)]
    [(0.2087, True)]
    """

    name = "cramers_v"
    applies_to = ("categorical",)

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def categorical(
        self, reference: CategoricalSummary, window: CategoricalSummary
    ) -> list[DetectorResult]:
        """Cramér's V per categorical feature."""
        check_categorical_pair(reference, window)
        outcome = chi_square_test(reference.counts, window.counts)
        return to_results(
            outcome.cramers_v,
            sample_status(outcome.n_reference, outcome.n_window),
            self.threshold,
            n_reference=outcome.n_reference,
            n_window=outcome.n_window,
            error_bound=0.0,
        )
