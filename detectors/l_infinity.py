"""L-infinity distance between category proportions."""

from __future__ import annotations

import numpy as np

from driftwarden.detectors.histogram import CategoricalSummary, check_categorical_pair
from driftwarden.detectors.multiple_testing import check_threshold, sample_status, to_results
from driftwarden.detectors.result import DetectorResult


class LInfinity:
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
    >>> rng = np.random.default_rng(3)
    >>> ref = CategoricalSummary.from_codes(rng.choice(3, p=[0.5, 0.3, 0.2], size=(1, 20_000)), 3)
    >>> win = CategoricalSummary.from_codes(rng.choice(3, p=[0.3, 0.3, 0.4], size=(1, 5_000)), 3)
    >>> [(round(r.value, 4), r.drift) for r in LInfinity().categorical(ref, win)]
    [(0.2079, True)]
    """

    name = "l_infinity"
    applies_to = ("categorical",)

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def categorical(
        self, reference: CategoricalSummary, window: CategoricalSummary
    ) -> list[DetectorResult]:
        """L-infinity distance per categorical feature."""
        check_categorical_pair(reference, window)
        ref = reference.counts.astype(np.float64)
        win = window.counts.astype(np.float64)
        n_ref, n_win = reference.n, window.n
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.abs(ref / n_ref[:, None] - win / n_win[:, None]).max(axis=1, initial=0.0)
        return to_results(
            value,
            sample_status(n_ref, n_win),
            self.threshold,
            n_reference=n_ref,
            n_window=n_win,
            error_bound=0.0,
        )
