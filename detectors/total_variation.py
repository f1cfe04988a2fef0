"""Total variation distance between category proportions."""

from __future__ import annotations

import numpy as np

from driftwarden.detectors.bucket_distance import CategoryDistance, shares


class TotalVariation(CategoryDistance):
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
    >>> from driftwarden.detectors.histogram import CategoricalSummary
    >>> rng = np.random.default_rng(3)
    >>> ref = CategoricalSummary.from_codes(rng.choice(3, p=[0.5, 0.3, 0.2], size=(1, 20_000)), 3)
    >>> win = CategoricalSummary.from_codes(rng.choice(3, p=[0.3, 0.3, 0.4], size=(1, 5_000)), 3)
    >>> [(round(r.value, 4), r.drift) for r in TotalVariation().categorical(ref, win)]
    [(0.2079, True)]
    """

    name = "total_variation"

    def distance(self, reference_counts: np.ndarray, window_counts: np.ndarray) -> np.ndarray:
        """Half the summed absolute gaps between the two sides' shares, per feature."""
        return np.abs(shares(reference_counts) - shares(window_counts)).sum(axis=1) / 2.0
