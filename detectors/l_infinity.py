"""L-infinity distance between category proportions."""

from __future__ import annotations

import numpy as np

from driftwarden.detectors.bucket_distance import CategoryDistance, shares


class LInfinity(CategoryDistance):
    """Largest change of one category's share, ``max_i |p_i - q_i|``, over the ``V + 2`` buckets.

    Parameters
    ----------
    threshold : float, default 0.1
        Drift when the distance exceeds it.

    Notes
    -----
    The Chebyshev (L-infinity) distance between the proportion vectors; in
    ``[0, 1]``, at most the total variation distance, exact on the buckets
    (``error_bound`` 0). It answers "did any one category gain or lose more
    than ``threshold`` of the traffic", the check TensorFlow Data Validation
    runs on categorical features (``infinity_norm`` drift comparator).

    Statuses: ``insufficient_data`` when the reference or the window has no
    value for the feature.

    Examples
    --------
    >>> from driftwarden.detectors.histogram import CategoricalSummary
    >>> rng = np.random.default_rng(3)
    >>> ref = CategoricalSummary.from_codes(rng.choice(3, p=[0.5, 0.3, 0.2], size=(1, 20_000)), 3)
    >>> win = CategoricalSummary.from_codes(rng.choice(3, p=[0.3, 0.3, 0.4], size=(1, 5_000)), 3)
    >>> [(round(r.value, 4), r.drift) for r in LInfinity().categorical(ref, win)]
    [(0.2079, True)]
    """

    name = "l_infinity"

    def distance(self, reference_counts: np.ndarray, window_counts: np.ndarray) -> np.ndarray:
        """The largest absolute gap between the two sides' shares, per feature."""
        gap = np.abs(shares(reference_counts) - shares(window_counts))
        return gap.max(axis=1, initial=0.0)
