"""Total variation distance between category proportions."""

from __future__ import annotations

import numpy as np

from driftwarden.detectors.histogram import CategoricalSummary, check_categorical_pair
from driftwarden.detectors.multiple_testing import check_threshold, sample_status, to_results
from driftwarden.detectors.result import DetectorResult


class TotalVariation:
    """Total variation distance ``1/2 sum_i |p_i - q_i|`` over the ``V + 2`` category buckets.

    Parameters
    ----------
    threshold : float, default 0.1
        Drift when the distance exceeds it.

    Notes
    -----
    The largest difference in probability the two distributions give to any
    set of categories (Levin, Peres and Wilmer, *Markov chains and mixing
    times*, Prop. 4.2); in ``[0, 1]``, exact on the buckets (``error_bound``
    0). Evidently's ``TVD`` test decides on a permutation p-value instead.

    Statuses: ``insufficient_data`` when the reference or the window has no
    value for the feature.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> ref = CategoricalSummary.from_codes(rng.choice(3, p=[0.5, 0.3, 0.2], size=(1, 20_000)), 3)
    >>> win = CategoricalSummary.from_codes(rng.choice(3, p=[0.3, 0.3, 0.4], size=(1, 5_000)), 3)
    >>> [(round(r.value, 4), r.drift) for r in TotalVariation().categorical(ref, win)]
    [(0.2079, True)]
    """

    name = "total_variation"
    applies_to = ("categorical",)

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def categorical(
        self, reference: CategoricalSummary, window: CategoricalSummary
    ) -> list[DetectorResult]:
        """Total variation distance per categorical feature."""
        check_categorical_pair(reference, window)
        ref = reference.counts.astype(np.float64)
        win = window.counts.astype(np.float64)
        n_ref, n_win = reference.n, window.n
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.abs(ref / n_ref[:, None] - win / n_win[:, None])
            value = gap.sum(axis=1) / 2.0
        return to_results(
            value,
            sample_status(n_ref, n_win),
            self.threshold,
            n_reference=n_ref,
            n_window=n_win,
            error_bound=0.0,
        )
