"""Wilson score intervals for proportions (selection rates, TPR, FPR, accuracy)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

DEFAULT_CONFIDENCE = 0.95


def wilson_interval(
    successes: np.ndarray | int,
    trials: np.ndarray | int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Wilson score interval of a binomial proportion, vectorised.

    Parameters
    ----------
    successes : array_like of int
        Successes :math:`k` (e.g. predicted positives of a group).
    trials : array_like of int
        Trials :math:`n` (e.g. members of the group); 0 gives a NaN interval.
    confidence : float, default 0.95
        Coverage of the interval.

    Returns
    -------
    low, high : numpy.ndarray
        Bounds of the interval, NaN where ``trials`` is 0.

    Notes
    -----
    With :math:`\hat p = k/n` and :math:`z = \Phi^{-1}(1 - (1 - c)/2)`,

    .. math::
        \frac{\hat p + z^2/2n \pm z \sqrt{\hat p (1 - \hat p)/n + z^2/4n^2}}{1 + z^2/n}

    (Wilson 1927, without continuity correction; scipy's
    ``BinomTestResult.proportion_ci(method="wilson")``). Unlike the Wald
    interval it stays inside [0, 1] and is sensible for rates near 0 or 1 and
    for small groups, which is why fairness reports use it.

    References
    ----------
    .. [1] E. B. Wilson. "Probable Inference, the Law of Succession, and
       Statistical Inference". JASA 22 (1927), pp. 209-212.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.intervals import wilson_interval
    >>> low, high = wilson_interval(np.array([8, 0]), np.array([20, 10]))
    >>> np.round(low, 4), np.round(high, 4)
    (array([0.2188, 0.    ]), array([0.6134, 0.2775]))
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(k < 0) or np.any(n < k):
        raise ValueError("successes must satisfy 0 <= successes <= trials")
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1.0 + z2 / n
        centre = (p + z2 / (2.0 * n)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    low = np.where(n > 0, np.maximum(centre - half, 0.0), np.nan)
    high = np.where(n > 0, np.minimum(centre + half, 1.0), np.nan)
    return low, high
