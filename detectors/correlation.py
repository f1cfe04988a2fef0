"""Pearson and Spearman correlation with two-sided p-values, one call for many series.

Used over the last N windows (e.g. a feature's drift statistic against a
performance metric, one value per window) and between two importance vectors.
Inputs are ``(R, N)`` (or ``(N,)``, one row) and broadcast against each
other, so one call correlates every feature's series with one metric's. A
pair where either value is NaN (a window without a value) is left out of its
row only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import stdtr

MIN_PAIRS = 3
"""Fewest complete pairs a correlation needs: with two the t test has no degree of freedom."""


@dataclass(frozen=True, slots=True)
class Correlation:
    """One correlation coefficient with its two-sided p-value.

    ``statistic`` and ``p_value`` are ``None`` unless ``status`` is ``"ok"``;
    ``status`` is ``"undefined"`` with fewer than :data:`MIN_PAIRS` complete
    pairs or when either series is constant over them. ``n`` counts the
    complete pairs.
    """

    statistic: float | None
    p_value: float | None
    n: int
    status: Literal["ok", "undefined"] = "ok"

    def __post_init__(self) -> None:
        if (self.status == "ok") != (self.statistic is not None and self.p_value is not None):
            raise ValueError(
                f"status {self.status!r} does not match statistic {self.statistic!r} "
                f"and p_value {self.p_value!r}"
            )


def _pairs(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 ``(R, N)``, NaN wherever either side is missing."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ValueError(f"x and y must have shape (N,) or (R, N), got {a.shape} and {b.shape}")
    try:
        a, b = np.broadcast_arrays(np.atleast_2d(a), np.atleast_2d(b))
    except ValueError:
        raise ValueError(f"x and y do not broadcast: shapes {a.shape} and {b.shape}") from None
    if np.isinf(a).any() or np.isinf(b).any():
        raise ValueError("x and y must be finite or NaN, got an infinite value")
    missing = np.isnan(a) | np.isnan(b)
    return np.where(missing, np.nan, a), np.where(missing, np.nan, b)


def average_ranks(values: object) -> np.ndarray:
    """Ranks from 1 along the last axis, ties sharing their average rank; NaN stays NaN.

    Parameters
    ----------
    values : array_like, shape (N,) or (R, N)
        Values to rank, each row on its own.

    Returns
    -------
    numpy.ndarray of float64, same shape
        The non-NaN values of a row get ranks ``1 .. n`` (``n`` of them);
        equal values get the mean of the ranks they span, as
        ``scipy.stats.rankdata(method="average")``.

    Examples
    --------
    >>> average_ranks([3.0, 1.0, 3.0, np.nan, 2.0])
    array([3.5, 1. , 3.5, nan, 2. ])
    """
    a = np.asarray(values, dtype=np.float64)
    rows = np.atleast_2d(a)
    r, n = rows.shape
    if rows.size == 0:
        return np.full(a.shape, np.nan)
    order = np.argsort(rows, axis=1, kind="stable")  # NaN last
    ordered = np.take_along_axis(rows, order, axis=1)
    starts = np.ones((r, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]  # NaN != NaN: each NaN alone
    flat_starts = np.flatnonzero(starts)
    sizes = np.diff(np.append(flat_starts, r * n))
    group_rank = flat_starts % n + (sizes + 1) / 2.0  # mean of 1-based positions
    ranked = group_rank[np.cumsum(starts.ravel()) - 1].reshape(r, n)
    out = np.empty((r, n))
    np.put_along_axis(out, order, ranked, axis=1)
    out[np.isnan(rows)] = np.nan
    return out.reshape(a.shape)


def _correlate(a: np.ndarray, b: np.ndarray) -> list[Correlation]:
    """Pearson's r and its t-test p-value per row of NaN-aligned ``(R, N)`` arrays."""
    present = ~np.isnan(a)
    n = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        varies = [
            np.max(np.where(present, v, -np.inf), axis=1, initial=-np.inf)
            > np.min(np.where(present, v, np.inf), axis=1, initial=np.inf)
            for v in (a, b)
        ]
        da = np.where(present, a - np.nansum(a, axis=1, keepdims=True) / n[:, None], 0.0)
        db = np.where(present, b - np.nansum(b, axis=1, keepdims=True) / n[:, None], 0.0)
        # normalize first, as scipy.stats.pearsonr, so products neither overflow nor underflow
        da /= np.linalg.norm(da, axis=1, keepdims=True)
        db /= np.linalg.norm(db, axis=1, keepdims=True)
        r = np.clip(np.einsum("ij,ij->i", da, db), -1.0, 1.0)
        dof = n - 2.0
        t = np.abs(r) * np.sqrt(dof / ((1.0 - r) * (1.0 + r)))
        p = np.where(np.abs(r) == 1.0, 0.0, 2.0 * stdtr(dof, -t))
    defined = (n >= MIN_PAIRS) & varies[0] & varies[1]
    return [
        Correlation(float(r[i]), float(p[i]), int(n[i]))
        if defined[i]
        else Correlation(None, None, int(n[i]), "undefined")
        for i in range(r.size)
    ]


def pearson(x: object, y: object) -> list[Correlation]:
    r"""Pearson's correlation coefficient and its two-sided p-value per row.

    Parameters
    ----------
    x, y : array_like, shape (N,) or (R, N)
        Paired series (e.g. one value per window over the last N windows),
        broadcast against each other; NaN marks a missing value, and the pair
        is left out of that row. Infinite values are an error.

    Returns
    -------
    list of Correlation
        One per row of the broadcast inputs (one for two 1-D inputs).

    Notes
    -----
    Over the ``n`` complete pairs,
    :math:`r = \sum (x_i - \bar x)(y_i - \bar y) / \sqrt{\sum (x_i - \bar x)^2
    \sum (y_i - \bar y)^2}`. Under the null hypothesis of no correlation for
    bivariate normal data, :math:`t = r \sqrt{(n - 2) / (1 - r^2)}` follows
    Student's t distribution with ``n - 2`` degrees of freedom; the p-value
    is :math:`2\,P(T_{n-2} \le -|t|)` (``scipy.special.stdtr``), 0 when
    :math:`|r| = 1`. This is the exact test of ``scipy.stats.pearsonr``
    (which writes it as a beta distribution of ``r``). ``undefined`` with
    fewer than 3 pairs (``scipy`` gives ``p = 1`` at ``n = 2``, where ``r``
    is always ±1 and carries no evidence) or a constant series.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> drift = rng.uniform(0.0, 0.3, size=12)
    >>> accuracy = 0.9 - 0.2 * drift + rng.normal(0.0, 0.01, size=12)
    >>> [c] = pearson(drift, accuracy)
    >>> round(c.statistic, 4), f"{c.p_value:.2e}", c.n
    (-0.9364, '7.36e-06', 12)
    >>> pearson([1.0, 2.0], [3.0, 1.0])[0].status
    'undefined'
    """
    return _correlate(*_pairs(x, y))


def spearman(x: object, y: object) -> list[Correlation]:
    r"""Spearman's rank correlation and its two-sided p-value per row.

    Parameters
    ----------
    x, y : array_like, shape (N,) or (R, N)
        Paired values (e.g. two importance vectors over the same features, or
        series over the last N windows), broadcast against each other; a pair
        with a NaN on either side is left out of its row.

    Returns
    -------
    list of Correlation
        One per row of the broadcast inputs.

    Notes
    -----
    Pearson's r of the average ranks (:func:`average_ranks`; ties share
    their mean rank) of the complete pairs, as ``scipy.stats.spearmanr``.
    The p-value uses the same t approximation with ``n - 2`` degrees of
    freedom as ``scipy.stats.spearmanr`` (Kendall & Stuart, *The Advanced
    Theory of Statistics*, vol. 2); it is not exact for small ``n`` with
    ties. ``undefined`` with fewer than 3 pairs or when every rank of one
    side is tied.

    Examples
    --------
    >>> rng = np.random.default_rng(8)
    >>> reference = rng.gamma(1.0, size=8)
    >>> window = reference * rng.uniform(0.5, 1.5, size=8)
    >>> [c] = spearman(window, reference)
    >>> round(c.statistic, 4), round(c.p_value, 4)
    (0.9524, 0.0003)
    """
    a, b = _pairs(x, y)
    return _correlate(average_ranks(a), average_ranks(b))
