r"""Drift impact: one model-level score, each feature's drift weighted by its importance.

A window where a feature nobody's model reads drifts is not the same as one
where the model's main input drifts. :func:`drift_impact` turns the
per-feature drift statistics of one window (any mix of detectors, each
against its own threshold) into one number on one scale, with the features
that make it up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from driftwarden.detectors.result import DetectorResult, Status

DEFAULT_IMPACT_THRESHOLD = 1.0
"""Impact above which a window counts as drifted for the model (see :func:`drift_impact`)."""

DEFAULT_SCORE_CAP = 5.0
"""Most thresholds' worth one feature's drift counts for (see :func:`drift_impact`)."""

DEFAULT_TOP_K = 5
"""Contributors listed in :attr:`DriftImpact.top`."""


@dataclass(frozen=True, eq=False)
class DriftImpact:
    """The importance-weighted drift of one window, and where it comes from.

    Attributes
    ----------
    value : float or None
        The impact; ``None`` unless ``status`` is ``"ok"``.
    threshold : float
        ``drift`` when ``value > threshold``.
    drift : bool
    status : {"ok", "insufficient_data", "undefined"}
        ``undefined`` when no feature has a positive importance,
        ``insufficient_data`` when no weighted feature has a statistic.
    weights : numpy.ndarray, shape (F,)
        Importances normalized to sum 1 (0 for a NaN importance).
    scores : numpy.ndarray, shape (F,)
        Statistic over threshold per feature, uncapped (NaN: no statistic).
    contributions : numpy.ndarray, shape (F,)
        ``weights * min(scores, cap)``, 0 where there is no statistic; they
        add up to ``value``.
    top : tuple of int
        Indices of the features with the largest positive contributions,
        largest first (ties: lower index first), at most ``top_k``.
    coverage : float
        Sum of the weights of the features that have a statistic: the share
        of the importance the impact saw.
    """

    value: float | None
    threshold: float
    drift: bool
    status: Status
    weights: np.ndarray
    scores: np.ndarray
    contributions: np.ndarray
    top: tuple[int, ...]
    coverage: float

    def to_result(
        self, n_reference: int | None = None, n_window: int | None = None
    ) -> DetectorResult:
        """The impact as a result record (direction ``"above"``, exact: ``error_bound`` 0)."""
        return DetectorResult(
            value=self.value,
            threshold=self.threshold,
            direction="above",
            drift=self.drift,
            status=self.status,
            n_reference=n_reference,
            n_window=n_window,
            error_bound=0.0 if self.status == "ok" else None,
        )


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def drift_impact(
    statistics: np.ndarray,
    thresholds: np.ndarray | float,
    importances: np.ndarray,
    *,
    threshold: float = DEFAULT_IMPACT_THRESHOLD,
    cap: float | None = DEFAULT_SCORE_CAP,
    top_k: int = DEFAULT_TOP_K,
) -> DriftImpact:
    r"""Importance-weighted drift of a window: how far past threshold the features that matter are.

    Parameters
    ----------
    statistics : numpy.ndarray, shape (F,) or (D, F)
        Drift statistic per feature (``DetectorResult.value``; NaN where the
        detector gave none), one row per detector when several ran. Each is
        an effect size that drifts *above* its threshold (PSI, KS, normed
        Wasserstein, Jensen–Shannon, ...), so it must be >= 0.
    thresholds : float or numpy.ndarray, broadcastable to ``statistics``
        The threshold each statistic is judged against (> 0).
    importances : numpy.ndarray, shape (F,)
        Importance per feature, >= 0 or NaN (no weight): by default the
        reference's (``mutual_information(reference.counts, "miller-madow")``
        of the reference
        :class:`~driftwarden.detectors.importance.ImportanceSummary`, which
        leaves features the model ignores near 0 rather than at the plug-in
        bias), or importances configured by the model owner.
    threshold : float, default 1.0
        Impact above which ``drift`` is true.
    cap : float or None, default 5.0
        Largest score one feature counts with; ``None``: no cap.
    top_k : int, default 5
        Contributors listed in ``top``.

    Returns
    -------
    DriftImpact

    Notes
    -----
    Per feature ``f``, the score :math:`s_f = \max_d x_{df} / t_{df}` over
    the detectors ``d`` that gave a statistic :math:`x_{df}` with threshold
    :math:`t_{df}`: how many thresholds' worth the feature drifted, so
    statistics on different scales (PSI 0.2, KS 0.1, ...) are comparable;
    a score above 1 means some detector's effect size is past its threshold
    (p-values, where a detector has one, play no part here). Weights
    :math:`w_f = I_f / \sum_g I_g` (NaN importances count as 0). Then

    .. math:: \text{impact} = \sum_f w_f \min(s_f, c),

    summed over the features that have a score; a feature without one
    contributes nothing and its weight is missing from ``coverage``. The
    weights are not renormalized over the features seen, so the scale of the
    impact does not change from window to window with which features had
    data; it can only underestimate.

    What 1.0 means: the importance-weighted average feature sits at its drift
    threshold — every feature exactly at its threshold, or the features
    holding half the importance at twice theirs. An irrelevant feature
    (weight near 0) moves the impact by almost nothing however far it
    drifts; a feature crosses 1.0 alone only if
    :math:`w_f \min(s_f, c) > 1`. The cap bounds one feature's
    contribution by :math:`c\,w_f`: bounded statistics stop at a few
    thresholds anyway (KS <= 1 is at most 10 of its 0.1), but PSI grows
    without bound (on unseen categories, say), and without a cap a
    feature with 2 % of the importance and a PSI of 10 (50 thresholds) would
    page alone. With ``c = 5`` a feature needs more than 20 % of the
    importance to cross 1.0 on its own; others need company. Per-feature
    drift is still reported by each detector; the impact ranks and
    summarizes, it does not replace them.

    Examples
    --------
    >>> importances = np.array([0.40, 0.20, 0.05, 0.001])  # e.g. reference MI, nats
    >>> psi = np.array([0.5, 0.05, 0.3, 8.0])              # feature 3 is irrelevant
    >>> impact = drift_impact(psi, 0.2, importances)
    >>> round(impact.value, 3), impact.drift, impact.top
    (1.736, True, (0, 2, 1, 3))
    >>> impact.contributions.round(3).tolist()
    [1.536, 0.077, 0.115, 0.008]
    """
    threshold = _positive("threshold", threshold)
    cap_value = np.inf if cap is None else _positive("cap", cap)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
    stats = np.asarray(statistics, dtype=np.float64)
    if stats.ndim not in (1, 2):
        raise ValueError(f"statistics must have shape (F,) or (D, F), got {stats.shape}")
    table = np.atleast_2d(stats)
    try:
        limits = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), table.shape)
    except ValueError:
        raise ValueError(
            f"thresholds of shape {np.shape(thresholds)} do not broadcast to {table.shape}"
        ) from None
    if not (np.isfinite(limits) & (limits > 0)).all():
        bad = float(limits[~(np.isfinite(limits) & (limits > 0))][0])
        raise ValueError(f"thresholds must be finite and > 0, got {bad!r}")
    if ((table < 0) | np.isinf(table)).any():
        bad = float(table[(table < 0) | np.isinf(table)][0])
        raise ValueError(f"statistics must be finite and >= 0 or NaN, got {bad!r}")
    weight = np.asarray(importances, dtype=np.float64)
    if weight.shape != (table.shape[1],):
        raise ValueError(f"importances must have shape ({table.shape[1]},), got {weight.shape}")
    if ((weight < 0) | np.isinf(weight)).any():
        bad = float(weight[(weight < 0) | np.isinf(weight)][0])
        raise ValueError(f"importances must be finite and >= 0 or NaN, got {bad!r}")

    scores = np.fmax.reduce(table / limits, axis=0)  # NaN only where every detector is NaN
    weight = np.nan_to_num(weight, nan=0.0)
    total = weight.sum()
    n_features = weight.size
    if total <= 0:
        empty = np.zeros(n_features)
        return DriftImpact(None, threshold, False, "undefined", empty, scores, empty, (), 0.0)
    weights = weight / total
    seen = ~np.isnan(scores)
    contributions = np.where(seen, weights * np.minimum(np.nan_to_num(scores), cap_value), 0.0)
    coverage = float(weights[seen].sum())
    if not (seen & (weights > 0)).any():
        return DriftImpact(
            None, threshold, False, "insufficient_data", weights, scores, contributions, (), 0.0
        )
    value = float(contributions.sum())
    positive = np.flatnonzero(contributions > 0)
    order = positive[np.lexsort((positive, -contributions[positive]))]
    return DriftImpact(
        value=value,
        threshold=threshold,
        drift=value > threshold,
        status="ok",
        weights=weights,
        scores=scores,
        contributions=contributions,
        top=tuple(int(f) for f in order[:top_k]),
        coverage=coverage,
    )
