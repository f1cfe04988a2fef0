"""Realized performance of a regression model from a mergeable window summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metric_results import check_count, check_thresholds, insufficient, metric_result
from .performance_binary import DEFAULT_MIN_LABELED
from .result import DetectorResult

REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
"""Metric names of regression performance, as used in result records."""


@dataclass(frozen=True)
class RegressionPerformanceSummary:
    r"""Mergeable sums over the labelled rows of a regression model in one window.

    Attributes
    ----------
    n : int
        Labelled rows.
    abs_error : float
        :math:`\sum |y - \hat y|`.
    sq_error : float
        :math:`\sum (y - \hat y)^2`.
    ape : float
        :math:`\sum |y - \hat y| / |y|` over the rows with :math:`y \ne 0`.
    n_ape : int
        Rows in ``ape`` (targets not zero); ``n - n_ape`` targets were 0.
    shift : float
        A constant :math:`c` near the mean target (the reference's), so the
        sums below stay accurate; only summaries with the same shift merge.
    y : float
        :math:`\sum (y - c)`.
    y_sq : float
        :math:`\sum (y - c)^2`.

    Examples
    --------
    >>> from driftwarden.detectors.performance_regression import RegressionPerformanceSummary
    >>> s = RegressionPerformanceSummary.from_arrays([1.0, 2.0, 0.0], [1.5, 2.0, 0.5])
    >>> s.n, s.abs_error, s.n_ape
    (3, 1.0, 2)
    """

    n: int
    abs_error: float
    sq_error: float
    ape: float
    n_ape: int
    shift: float
    y: float
    y_sq: float

    @classmethod
    def empty(cls, shift: float = 0.0) -> RegressionPerformanceSummary:
        """The summary of no rows."""
        return cls(0, 0.0, 0.0, 0.0, 0, _check_finite("shift", shift), 0.0, 0.0)

    @classmethod
    def from_arrays(
        cls, y_true: Any, y_pred: Any, shift: float = 0.0
    ) -> RegressionPerformanceSummary:
        """Summarise labelled rows (finite targets and predictions)."""
        t = _finite_column(y_true, "y_true")
        p = _finite_column(y_pred, "y_pred")
        if t.shape != p.shape:
            raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
        shift = _check_finite("shift", shift)
        error = np.abs(t - p)
        nonzero = t != 0
        centred = t - shift
        return cls(
            n=int(t.size),
            abs_error=float(error.sum()),
            sq_error=float(np.dot(error, error)),
            ape=float(np.sum(error[nonzero] / np.abs(t[nonzero]))),
            n_ape=int(np.count_nonzero(nonzero)),
            shift=shift,
            y=float(centred.sum()),
            y_sq=float(np.dot(centred, centred)),
        )

    def merge(self, other: RegressionPerformanceSummary) -> RegressionPerformanceSummary:
        """The summary of both windows' rows together."""
        if other.shift != self.shift:
            raise ValueError(
                f"only summaries with the same shift merge: {self.shift} vs {other.shift}"
            )
        return RegressionPerformanceSummary(
            n=self.n + other.n,
            abs_error=self.abs_error + other.abs_error,
            sq_error=self.sq_error + other.sq_error,
            ape=self.ape + other.ape,
            n_ape=self.n_ape + other.n_ape,
            shift=self.shift,
            y=self.y + other.y,
            y_sq=self.y_sq + other.y_sq,
        )

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {
            "n": self.n,
            "abs_error": self.abs_error,
            "sq_error": self.sq_error,
            "ape": self.ape,
            "n_ape": self.n_ape,
            "shift": self.shift,
            "y": self.y,
            "y_sq": self.y_sq,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RegressionPerformanceSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        return cls(
            n=int(state["n"]),
            abs_error=float(state["abs_error"]),
            sq_error=float(state["sq_error"]),
            ape=float(state["ape"]),
            n_ape=int(state["n_ape"]),
            shift=float(state["shift"]),
            y=float(state["y"]),
            y_sq=float(state["y_sq"]),
        )


def regression_performance(
    summary: RegressionPerformanceSummary,
    thresholds: Mapping[str, float] | None = None,
    *,
    min_labeled: int = DEFAULT_MIN_LABELED,
    n_window: int | None = None,
) -> dict[str, DetectorResult]:
    r"""MAE, RMSE, MAPE and R² from sums, exactly.

    Parameters
    ----------
    summary : RegressionPerformanceSummary
        The window's labelled rows.
    thresholds : mapping of str to float, optional
        Alert threshold per metric name; ``mae``, ``rmse``, ``mape`` cross
        *above*, ``r2`` *below*.
    min_labeled : int, default 500
        Labelled rows needed; fewer give ``insufficient_data`` for every metric.
    n_window : int, optional
        Predictions in the window, for the record; defaults to the labelled count.

    Returns
    -------
    dict of str to DetectorResult
        ``mae``, ``rmse``, ``mape``, ``r2``.

    Notes
    -----
    :math:`MAE = \sum|e|/n`, :math:`RMSE = \sqrt{\sum e^2 / n}`,
    :math:`R^2 = 1 - \sum e^2 / (\sum (y-c)^2 - (\sum (y-c))^2/n)`: equal to
    scikit-learn's on the same rows. MAPE (a fraction, as scikit-learn's)
    leaves out rows whose target is 0, where scikit-learn divides by machine
    epsilon and reports values near :math:`10^{15}`; it is ``undefined`` when
    every target is 0. R² is ``undefined`` when the targets are constant,
    where scikit-learn reports 1.0 or 0.0.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.performance_regression import (
    ...     RegressionPerformanceSummary, regression_performance)
    >>> rng = np.random.default_rng(3)
    >>> y = rng.normal(10, 2, 2000)
    >>> guess = y + rng.normal(0, 1, 2000)
    >>> summary = RegressionPerformanceSummary.from_arrays(y, guess, shift=10.0)
    >>> results = regression_performance(summary, {"rmse": 0.9, "r2": 0.5})
    >>> round(results["rmse"].value, 4), results["rmse"].drift, round(results["r2"].value, 4)
    (1.0103, True, 0.741)
    """
    thresholds = check_thresholds(thresholds, REGRESSION_METRICS)
    min_labeled = check_count("min_labeled", min_labeled)
    n = summary.n
    counts = {"n_window": n if n_window is None else n_window, "n_labeled": n}
    if n < max(min_labeled, 1):
        return insufficient(REGRESSION_METRICS, thresholds, **counts)
    total_sq = summary.y_sq - summary.y * summary.y / n
    values = {
        "mae": summary.abs_error / n,
        "rmse": float(np.sqrt(summary.sq_error / n)),
        "mape": summary.ape / summary.n_ape if summary.n_ape else None,
        "r2": 1.0 - summary.sq_error / total_sq if total_sq > 0 and n > 1 else None,
    }
    return {
        metric: metric_result(metric, value, thresholds, error_bound=0.0, **counts)
        for metric, value in values.items()
    }


def _finite_column(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite, got {float(array[where])!r} at {where}")
    return array


def _check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
