"""Multiple testing across a window's features, and the drift decision built on it.

Every data-drift detector decides the same way: the effect size must cross the
threshold and, where the detector has a p-value, the p-value adjusted across
the features of that one call must be below ``alpha``. This module holds the
adjustments (vectorized, NaN-aware), the validation of the decision
hyperparameters shared by every detector, and the step that turns per-feature
arrays into :class:`DetectorResult` records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import numpy as np

from driftwarden.detectors.result import DetectorResult

CORRECTIONS = ("benjamini-hochberg", "bonferroni", "none")

OK = "ok"
INSUFFICIENT_DATA = "insufficient_data"
UNDEFINED = "undefined"


def _as_p_values(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    p = np.array(p_values, dtype=np.float64, copy=True)
    if p.ndim != 1:
        raise ValueError(f"p-values must be one-dimensional, got shape {p.shape}")
    present = ~np.isnan(p)
    if np.any((p[present] < 0.0) | (p[present] > 1.0)):
        bad = p[present][(p[present] < 0.0) | (p[present] > 1.0)][0]
        raise ValueError(f"p-values must lie in [0, 1] or be NaN, got {bad!r}")
    return p


def benjamini_hochberg(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), ignoring NaN.

    Parameters
    ----------
    p_values : array_like, shape (m,)
        Raw p-values in ``[0, 1]``; NaN marks a test that was not run (a
        feature without a result) and is left out of the family.

    Returns
    -------
    numpy.ndarray, shape (m,)
        Adjusted p-values in the input order; NaN where the input is NaN.

    Notes
    -----
    With the ``k`` non-NaN p-values sorted ascending, ``p_(1) <= ... <= p_(k)``,
    the adjusted value of rank ``i`` is ``min(1, min_{j >= i} p_(j) * k / j)``
    (Benjamini and Hochberg, 1995, step-up procedure expressed as adjusted
    p-values; the same form as R's ``p.adjust(method="BH")``). Rejecting where
    the adjusted value is below ``alpha`` controls the false discovery rate at
    ``alpha`` for independent or positively dependent tests. The arithmetic
    follows ``scipy.stats.false_discovery_control(method="bh")``, which
    returns the same numbers when there is no NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(6)
    >>> p = np.round(rng.uniform(size=5) ** 4, 4)
    >>> p
    array([0.0839, 0.0139, 0.0186, 0.0197, 0.9507])
    >>> benjamini_hochberg(np.append(p, np.nan)).round(4)
    array([0.1049, 0.0328, 0.0328, 0.0328, 0.9507,    nan])
    """
    p = _as_p_values(p_values)
    present = ~np.isnan(p)
    m = int(present.sum())
    if m == 0:
        return p
    ps = p[present]
    order = np.argsort(ps, kind="stable")
    ranked = ps[order]
    ranked *= m / np.arange(1, m + 1, dtype=np.float64)
    np.minimum.accumulate(ranked[::-1], out=ranked[::-1])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = ranked
    p[present] = np.clip(adjusted, 0.0, 1.0)
    return p


def bonferroni(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Bonferroni adjusted p-values (family-wise error rate), ignoring NaN.

    Parameters
    ----------
    p_values : array_like, shape (m,)
        Raw p-values in ``[0, 1]``; NaN marks a test that was not run.

    Returns
    -------
    numpy.ndarray, shape (m,)
        ``min(1, p * k)`` where ``k`` counts the non-NaN p-values; NaN stays NaN.

    Notes
    -----
    Rejecting where ``min(1, k p) < alpha`` is rejecting where ``p < alpha / k``
    (Bonferroni; Dunn, 1961), which bounds the probability of any false
    rejection by ``alpha`` whatever the dependence between tests.

    Examples
    --------
    >>> rng = np.random.default_rng(6)
    >>> p = np.round(rng.uniform(size=5) ** 4, 4)
    >>> bonferroni(np.append(p, np.nan))
    array([0.4195, 0.0695, 0.093 , 0.0985, 1.    ,    nan])
    """
    p = _as_p_values(p_values)
    m = int((~np.isnan(p)).sum())
    return np.minimum(p * m, 1.0)


def adjust(p_values: np.ndarray | Sequence[float], correction: str) -> np.ndarray:
    """Adjust p-values with one of :data:`CORRECTIONS` (``"none"`` returns a copy).

    Parameters
    ----------
    p_values : array_like, shape (m,)
        Raw p-values; NaN marks a test that was not run.
    correction : {"benjamini-hochberg", "bonferroni", "none"}
        The adjustment.

    Returns
    -------
    numpy.ndarray, shape (m,)
        Adjusted p-values; NaN where the input is NaN.

    Notes
    -----
    :func:`benjamini_hochberg` controls the false discovery rate (the
    default: with many features some true drifts are worth a few false
    alarms); :func:`bonferroni` the family-wise error rate; ``"none"`` tests
    each feature at ``alpha`` on its own.

    Examples
    --------
    >>> rng = np.random.default_rng(6)
    >>> p = np.round(rng.uniform(size=3) ** 4, 4)
    >>> adjust(p, "none"), adjust(p, "bonferroni")
    (array([0.0839, 0.0139, 0.0186]), array([0.2517, 0.0417, 0.0558]))
    """
    check_correction(correction)
    if correction == "benjamini-hochberg":
        return benjamini_hochberg(p_values)
    if correction == "bonferroni":
        return bonferroni(p_values)
    return _as_p_values(p_values)


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """Validate ``threshold``: a finite real number >= 0 (not a bool).

    Parameters
    ----------
    threshold : object
        The hyperparameter as given.
    name : str
        Its name in the error message.

    Returns
    -------
    float
        The value, converted.

    Raises
    ------
    ValueError
        Naming the hyperparameter and the bad value.

    Examples
    --------
    >>> check_threshold(0.2)
    0.2
    """
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ValueError(f"{name} must be a finite number >= 0, got {threshold!r}")
    value = float(threshold)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {threshold!r}")
    return value


def check_alpha(alpha: object) -> float:
    """Validate ``alpha``: a real number in ``(0, 1]``.

    Parameters
    ----------
    alpha : object
        The hyperparameter as given.

    Returns
    -------
    float
        The value, converted.

    Raises
    ------
    ValueError
        Naming the hyperparameter and the bad value.

    Examples
    --------
    >>> check_alpha(0.05)
    0.05
    """
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    return float(alpha)


def check_correction(correction: object) -> str:
    """Validate ``correction``: one of :data:`CORRECTIONS`.

    Parameters
    ----------
    correction : object
        The hyperparameter as given.

    Returns
    -------
    str
        The correction, unchanged.

    Raises
    ------
    ValueError
        Naming the bad value and the allowed ones.

    Examples
    --------
    >>> check_correction("bonferroni")
    'bonferroni'
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    return correction  # type: ignore[return-value]


def check_bins(bins: object) -> int:
    """Validate ``bins``: an integer >= 2.

    Parameters
    ----------
    bins : object
        The hyperparameter as given.

    Returns
    -------
    int
        The value, converted.

    Raises
    ------
    ValueError
        Naming the hyperparameter and the bad value.

    Examples
    --------
    >>> check_bins(10)
    10
    """
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def decide(
    values: np.ndarray,
    thresholds: np.ndarray | float,
    status: np.ndarray,
    p_values: np.ndarray | None = None,
    alpha: float = 0.05,
    correction: str = "benjamini-hochberg",
) -> np.ndarray:
    """Drift per feature: status ``ok``, value above threshold, adjusted p below ``alpha``.

    Parameters
    ----------
    values : numpy.ndarray, shape (F,)
        Effect sizes (direction "above": larger means more drift).
    thresholds : float or numpy.ndarray, shape (F,)
        Crossing means ``value > threshold`` (ties do not cross, as
        :func:`~driftwarden.detectors.result.crossed`).
    status : numpy.ndarray of str, shape (F,)
        Only features whose status is ``"ok"`` can drift, and only their
        p-values form the family that is adjusted.
    p_values : numpy.ndarray, shape (F,), optional
        Raw p-values; without them the effect size alone decides.
    alpha : float
        Level for the adjusted p-values.
    correction : {"benjamini-hochberg", "bonferroni", "none"}
        Adjustment across the ``ok`` features of this call.

    Returns
    -------
    numpy.ndarray of bool, shape (F,)

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> values = np.round(rng.uniform(0.0, 0.3, size=3), 3)
    >>> values
    array([0.026, 0.071, 0.24 ])
    >>> decide(values, 0.1, np.array(["ok", "ok", "ok"]), np.array([0.5, 0.01, 0.02]))
    array([False, False,  True])
    """
    ok = status == OK
    with np.errstate(invalid="ignore"):
        drift = ok & (np.where(ok, values, -np.inf) > thresholds)
    if p_values is not None:
        adjusted = adjust(np.where(ok, p_values, np.nan), correction)
        drift &= np.where(ok, adjusted, np.inf) < alpha
    return drift


def to_results(
    values: np.ndarray,
    status: np.ndarray,
    thresholds: np.ndarray | float,
    *,
    n_reference: np.ndarray,
    n_window: np.ndarray,
    error_bound: np.ndarray | float | None = None,
    p_values: np.ndarray | None = None,
    alpha: float = 0.05,
    correction: str = "benjamini-hochberg",
) -> list[DetectorResult]:
    """Per-feature arrays to :class:`DetectorResult` records, one per feature in order.

    Parameters
    ----------
    values : numpy.ndarray, shape (F,)
        Effect sizes; ignored where the status is not ``ok``.
    status : numpy.ndarray of str, shape (F,)
        ``ok``, ``insufficient_data`` or ``undefined`` per feature.
    thresholds : float or numpy.ndarray, shape (F,)
        One threshold, or one per feature.
    n_reference, n_window : numpy.ndarray of int, shape (F,)
        Sample sizes reported with each result.
    error_bound : float or numpy.ndarray, optional
        0 for exact statistics, the bound for binned ones, None if unknown.
    p_values : numpy.ndarray, shape (F,), optional
        Raw p-values (reported as they are; adjusted for the decision).
    alpha : float
        Level for the adjusted p-values.
    correction : {"benjamini-hochberg", "bonferroni", "none"}
        Adjustment across the ``ok`` features.

    Returns
    -------
    list of DetectorResult
        One per feature, in feature order.

    Notes
    -----
    A feature whose status is ``ok`` but whose value, p-value or error bound
    is not finite is reported as ``undefined``: a result never carries NaN
    or infinity. The decision is :func:`decide`.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> values = np.round(rng.uniform(0.0, 0.3, size=2), 3)
    >>> [r.drift for r in to_results(values, np.array(["ok", "ok"]), 0.1,
    ...                              n_reference=np.array([10, 10]),
    ...                              n_window=np.array([5, 5]))]
    [True, True]
    """
    n_features = len(status)
    values = np.asarray(values, dtype=np.float64)
    status = np.asarray(status, dtype=object).copy()
    thresholds_arr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_features,))
    bounds = (
        None
        if error_bound is None
        else np.broadcast_to(np.asarray(error_bound, dtype=np.float64), (n_features,))
    )
    finite = np.isfinite(values)
    if p_values is not None:
        finite &= np.isfinite(p_values)
    if bounds is not None:
        finite &= np.isfinite(bounds)
    status[(status == OK) & ~finite] = UNDEFINED
    drift = decide(values, thresholds_arr, status, p_values, alpha, correction)
    none = [None] * n_features
    value_list = values.tolist()
    p_list = np.asarray(p_values, dtype=np.float64).tolist() if p_values is not None else none
    bound_list = bounds.tolist() if bounds is not None else none
    return [
        DetectorResult(
            value=value_list[f] if ok else None,
            threshold=threshold,
            direction="above",
            drift=flag,
            status=state,
            p_value=p_list[f] if ok else None,
            n_reference=n_ref,
            n_window=n_win,
            error_bound=bound_list[f] if ok else None,
        )
        for f, (state, ok, flag, threshold, n_ref, n_win) in enumerate(
            zip(
                status.tolist(),
                (status == OK).tolist(),
                drift.tolist(),
                thresholds_arr.tolist(),
                np.asarray(n_reference, dtype=np.int64).tolist(),
                np.asarray(n_window, dtype=np.int64).tolist(),
                strict=True,
            )
        )
    ]


def sample_status(n_reference: np.ndarray, n_window: np.ndarray, minimum: int = 1) -> np.ndarray:
    """``insufficient_data`` where either side has fewer than ``minimum`` values, else ``ok``.

    Parameters
    ----------
    n_reference, n_window : numpy.ndarray of int, shape (F,)
        Non-missing values per feature on each side.
    minimum : int
        Fewest values the statistic needs on each side.

    Returns
    -------
    numpy.ndarray of str (object), shape (F,)

    Examples
    --------
    >>> sample_status(np.array([100, 100, 0]), np.array([1, 0, 5])).tolist()
    ['ok', 'insufficient_data', 'insufficient_data']
    """
    enough = (np.asarray(n_reference) >= minimum) & (np.asarray(n_window) >= minimum)
    return np.where(enough, OK, INSUFFICIENT_DATA).astype(object)
