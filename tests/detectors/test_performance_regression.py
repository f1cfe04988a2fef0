"""Regression performance from sums against scikit-learn; zero targets in MAPE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from driftwarden.detectors.performance_regression import (
    RegressionPerformanceSummary,
    regression_performance,
)


@pytest.mark.parametrize(("seed", "shift"), [(0, 0.0), (1, 1000.0), (2, 1234.5)])
def test_equals_scikit_learn(seed, shift) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(1000.0, 3.0, 50_000)
    pred = y + rng.normal(0.5, 2.0, y.size)
    results = regression_performance(RegressionPerformanceSummary.from_arrays(y, pred, shift))
    assert results["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert results["rmse"].value == pytest.approx(skm.root_mean_squared_error(y, pred), rel=1e-12)
    assert results["mape"].value == pytest.approx(
        skm.mean_absolute_percentage_error(y, pred), rel=1e-12
    )
    # R² from sums: exact when the shift is near the mean (the reference's), as the daemon uses.
    tolerance = 1e-12 if shift else 1e-9
    assert results["r2"].value == pytest.approx(skm.r2_score(y, pred), abs=tolerance)
    assert all(r.error_bound == 0.0 for r in results.values())


def test_zero_targets_are_left_out_of_mape() -> None:
    y = np.array([0.0, 2.0, 4.0, 0.0] * 150)
    pred = np.array([1.0, 1.0, 5.0, 0.0] * 150)
    summary = RegressionPerformanceSummary.from_arrays(y, pred)
    assert summary.n_ape == 300
    assert regression_performance(summary)["mape"].value == pytest.approx(0.375)
    assert skm.mean_absolute_percentage_error(y, pred) > 1e14  # divides by machine epsilon
    zeros = RegressionPerformanceSummary.from_arrays(np.zeros(600), np.ones(600))
    results = regression_performance(zeros)
    assert results["mape"].status == "undefined" and results["r2"].status == "undefined"
    assert results["mae"].value == 1.0


def test_merge_state_and_edges() -> None:
    rng = np.random.default_rng(3)
    y, pred = rng.normal(5, 1, 3000), rng.normal(5, 1, 3000)
    a = RegressionPerformanceSummary.from_arrays(y[:1234], pred[:1234], 5.0)
    b = RegressionPerformanceSummary.from_arrays(y[1234:], pred[1234:], 5.0)
    merged, whole = a.merge(b), RegressionPerformanceSummary.from_arrays(y, pred, 5.0)
    for name in ("n", "n_ape"):
        assert getattr(merged, name) == getattr(whole, name)
    for name in ("abs_error", "sq_error", "ape", "y", "y_sq"):
        assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    state = json.loads(json.dumps(whole.to_state(), allow_nan=False))
    assert RegressionPerformanceSummary.from_state(state) == whole
    with pytest.raises(ValueError, match="shift"):
        a.merge(RegressionPerformanceSummary.empty(0.0))
    with pytest.raises(ValueError, match="finite"):
        RegressionPerformanceSummary.from_arrays([1.0, np.nan], [1.0, 2.0])
    empty = regression_performance(RegressionPerformanceSummary.empty(), {"mae": 1.0})
    assert empty["mae"].status == "insufficient_data" and empty["mae"].threshold == 1.0
    assert empty["r2"].direction == "below" and empty["mae"].direction == "above"
