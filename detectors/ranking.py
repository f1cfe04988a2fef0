"""ROC AUC and average precision: from score histograms with an error bound, or exact.

Binary and multiclass performance and CBPE share one score grid: ``n_bins``
equal bins over [0, 1], bin ``b`` holding scores in ``[b / n_bins, (b + 1) /
n_bins)`` and the last bin also 1.0. Histograms of the scores of the positive
and of the negative rows add up across windows, panes and partitions.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma
from scipy.stats import rankdata

DEFAULT_SCORE_BINS = 1000


def check_scores(scores: np.ndarray, name: str = "y_score") -> np.ndarray:
    """``scores`` as float64, or a ``ValueError`` naming the first value outside [0, 1]."""
    array = np.asarray(scores, dtype=np.float64)
    bad = ~((array >= 0.0) & (array <= 1.0))
    if bad.any():
        where = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got {float(array.ravel()[where])!r} "
            f"at position {int(where)}"
        )
    return array


def check_n_bins(n_bins: int) -> int:
    """``n_bins`` as a positive int, or a ``ValueError`` naming it."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def score_bins(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index on the fixed grid of every score (scores already checked to lie in [0, 1])."""
    return np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)


def roc_auc_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    r"""ROC AUC from score histograms of the positive and negative rows, with its error bound.

    Parameters
    ----------
    positives, negatives : numpy.ndarray
        Counts per bin (ascending scores) of the positive and of the negative rows.

    Returns
    -------
    value, bound : float
        NaN for both when a class is absent. ``|value - exact| <= bound`` for
        the ROC AUC of the raw rows (``sklearn.metrics.roc_auc_score``).

    Notes
    -----
    The Mann-Whitney form of the area under the (trapezoidal) ROC curve:
    :math:`AUC = \sum_b p_b (N_{<b} + n_b / 2) / (P N)`, pairs in one bin
    counting as ties. On the raw rows a pair in one bin counts 0, 1/2 or 1, so
    :math:`|AUC - AUC_{raw}| \le \tfrac12 \sum_b p_b n_b / (P N)`; exact (bound
    0 up to rounding) when every bin holds one distinct score, e.g. scores
    rounded to a grid the bins resolve.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.ranking import roc_auc_from_histograms
    >>> value, bound = roc_auc_from_histograms(np.array([0, 1, 3]), np.array([2, 1, 0]))
    >>> round(value, 4), round(bound, 4)
    (0.9583, 0.0417)
    """
    positives = np.asarray(positives, dtype=np.float64)
    negatives = np.asarray(negatives, dtype=np.float64)
    p, n = positives.sum(), negatives.sum()
    if p == 0 or n == 0:
        return float("nan"), float("nan")
    below = np.cumsum(negatives) - negatives
    value = float(np.dot(positives, below + 0.5 * negatives) / (p * n))
    bound = float(0.5 * np.dot(positives, negatives) / (p * n))
    return value, bound


def average_precision_from_histograms(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[float, float]:
    r"""Average precision from score histograms, with its error bound.

    Parameters
    ----------
    positives, negatives : numpy.ndarray
        Counts per bin (ascending scores) of the positive and of the negative rows.

    Returns
    -------
    value, bound : float
        NaN for both when there is no positive row. ``|value - exact| <=
        bound`` for ``sklearn.metrics.average_precision_score`` on the raw rows.

    Notes
    -----
    With bins as thresholds from the top, :math:`AP = \sum_b (p_b / P)
    (T_b + p_b) / (T_b + F_b + p_b + n_b)` (:math:`T_b, F_b` the positives and
    negatives in higher bins): scikit-learn's step-wise sum
    :math:`\sum_k (R_k - R_{k-1}) P_k` with one threshold per bin. On the raw
    rows each positive of bin :math:`b` scores a precision
    :math:`(T_b + a) / (T_b + F_b + a + c)` for some :math:`1 \le a \le p_b`,
    :math:`0 \le c \le n_b` (ties only raise :math:`a`), so the bin's share
    lies between :math:`\sum_{a=1}^{p_b} (T_b + a) / (T_b + F_b + n_b + a) =
    p_b - (F_b + n_b)(\psi(D + p_b + 1) - \psi(D + 1))` (with :math:`D = T_b +
    F_b + n_b`, all negatives first) and :math:`p_b (T_b + p_b) / (T_b + F_b +
    p_b)`, over :math:`P`; the bound sums the larger gap to the binned share.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.ranking import average_precision_from_histograms
    >>> value, bound = average_precision_from_histograms(np.array([0, 1, 3]), np.array([2, 1, 0]))
    >>> round(value, 4), round(bound, 4)
    (0.95, 0.05)
    """
    positives = np.asarray(positives, dtype=np.float64)[::-1]
    negatives = np.asarray(negatives, dtype=np.float64)[::-1]
    total_p = positives.sum()
    if total_p == 0:
        return float("nan"), float("nan")
    t = np.cumsum(positives) - positives
    f = np.cumsum(negatives) - negatives
    has = positives > 0
    p, n, t, f = positives[has], negatives[has], t[has], f[has]
    binned = p * (t + p) / (t + f + p + n)
    d = t + f + n
    lowest = p - (f + n) * (digamma(d + p + 1.0) - digamma(d + 1.0))
    highest = p * (t + p) / (t + f + p)
    value = float(binned.sum() / total_p)
    bound = float(np.maximum(binned - lowest, highest - binned).clip(min=0.0).sum() / total_p)
    return value, bound


def roc_auc_exact(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC of raw rows (ties count one half, as scikit-learn); NaN with one class.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.ranking import roc_auc_exact
    >>> roc_auc_exact(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y_true = np.asarray(y_true).astype(bool)
    p = int(y_true.sum())
    n = y_true.size - p
    if p == 0 or n == 0:
        return float("nan")
    ranks = rankdata(np.asarray(y_score, dtype=np.float64))
    return float((ranks[y_true].sum() - p * (p + 1) / 2.0) / (p * n))


def average_precision_exact(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision of raw rows (scikit-learn's definition); NaN without positives.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.ranking import average_precision_exact
    >>> round(average_precision_exact(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])), 4)
    0.8333
    """
    y_true = np.asarray(y_true).astype(bool)
    p = int(y_true.sum())
    if p == 0:
        return float("nan")
    scores = np.asarray(y_score, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], y_true[order]
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = np.cumsum(hits)[last].astype(np.float64)
    fp = (last + 1) - tp
    gained = np.diff(np.r_[0.0, tp])
    return float(np.sum(gained / p * tp / (tp + fp)))
