"""Turning model-quality metric values into result records: directions, thresholds, status.

Shared by performance (realized and estimated) and fairness. A metric whose
value cannot be computed is ``undefined`` (e.g. ROC AUC of a window with one
class, precision with no predicted positive) and one on too few rows
``insufficient_data``: never a crash and never a stand-in number such as
scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .result import DetectorResult, Direction, crossed, not_ok

METRIC_DIRECTIONS: dict[str, Direction] = {
    # performance, realized and estimated: lower is worse
    "accuracy": "below",
    "precision": "below",
    "recall": "below",
    "f1": "below",
    "roc_auc": "below",
    "average_precision": "below",
    "macro_f1": "below",
    "weighted_f1": "below",
    "r2": "below",
    # losses and errors: higher is worse
    "log_loss": "above",
    "brier": "above",
    "mae": "above",
    "rmse": "above",
    "mape": "above",
    # fairness gaps: higher is worse; ratios: lower is worse
    "demographic_parity_difference": "above",
    "demographic_parity_ratio": "below",
    "equal_opportunity_difference": "above",
    "equalized_odds_difference": "above",
    "disparate_impact": "below",
}
"""The direction in which each metric crosses its threshold (``recall_<class>``: below)."""


def direction_of(metric: str) -> Direction:
    """The crossing direction of a metric name (per-class recalls are ``below``)."""
    if metric.startswith("recall_"):
        return "below"
    try:
        return METRIC_DIRECTIONS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}") from None


def check_thresholds(
    thresholds: Mapping[str, float] | None, allowed: tuple[str, ...] | None = None
) -> dict[str, float]:
    """Thresholds by metric name as floats; unknown names and non-finite values are errors."""
    out: dict[str, float] = {}
    for metric, value in (thresholds or {}).items():
        direction_of(metric)
        if allowed is not None and metric not in allowed and not metric.startswith("recall_"):
            raise ValueError(f"no threshold can apply to {metric!r} here; metrics: {allowed}")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"threshold for {metric!r} must be a finite number, got {value!r}")
        out[metric] = float(value)
    return out


def check_count(name: str, value: int) -> int:
    """A non-negative int hyperparameter, or a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def metric_result(
    metric: str,
    value: float | None,
    thresholds: Mapping[str, float],
    *,
    n_reference: int | None = None,
    n_window: int | None = None,
    n_labeled: int | None = None,
    error_bound: float | None = None,
    margin: float = 0.0,
) -> DetectorResult:
    """An ``ok`` result when ``value`` is a finite number, ``undefined`` otherwise.

    ``drift`` means the value crossed the metric's threshold (if one is given)
    by more than ``margin`` (e.g. a multiple of a sampling error).
    """
    threshold = thresholds.get(metric)
    direction = direction_of(metric)
    if value is None or not math.isfinite(value):
        return not_ok(
            "undefined",
            threshold,
            direction,
            n_reference=n_reference,
            n_window=n_window,
            n_labeled=n_labeled,
        )
    shifted = value - margin if direction == "above" else value + margin
    return DetectorResult(
        value=float(value),
        threshold=threshold,
        direction=direction,
        drift=threshold is not None and crossed(shifted, threshold, direction),
        status="ok",
        n_reference=n_reference,
        n_window=n_window,
        n_labeled=n_labeled,
        error_bound=error_bound,
    )


def insufficient(
    metrics: tuple[str, ...] | list[str],
    thresholds: Mapping[str, float],
    *,
    n_reference: int | None = None,
    n_window: int | None = None,
    n_labeled: int | None = None,
) -> dict[str, DetectorResult]:
    """``insufficient_data`` results for every metric."""
    return {
        metric: not_ok(
            "insufficient_data",
            thresholds.get(metric),
            direction_of(metric),
            n_reference=n_reference,
            n_window=n_window,
            n_labeled=n_labeled,
        )
        for metric in metrics
    }
