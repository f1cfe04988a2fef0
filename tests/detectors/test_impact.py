"""Drift impact: important drift ranks first, irrelevant drift alone stays quiet; the definition."""

from __future__ import annotations

import re

import numpy as np
import pytest

from driftwarden.detectors.histogram import NumericSummary, pad_edges, quantile_edges
from driftwarden.detectors.impact import drift_impact
from driftwarden.detectors.importance import (
    ImportanceSummary,
    mutual_information,
    numeric_bucket_codes,
    quantile_bucket_edges,
)
from driftwarden.detectors.ks import KS
from driftwarden.detectors.psi import PSI

ROWS = 20_000


def model(x: np.ndarray) -> np.ndarray:
    """Scores of a model that reads features 0 (strongly) and 2 (a little), never 1 or 3."""
    return 1.0 / (1.0 + np.exp(-(2.0 * x[0] + 0.3 * x[2])))


@pytest.fixture(scope="module")
def monitored() -> dict:
    rng = np.random.default_rng(31)
    reference = rng.normal(size=(4, ROWS))
    score = model(reference)
    edges = quantile_bucket_edges(reference)
    pred = numeric_bucket_codes(score[None], quantile_bucket_edges(score))[0]
    summary = ImportanceSummary.from_codes(numeric_bucket_codes(reference, edges), pred, 11, 11)
    fine = pad_edges([quantile_edges(column) for column in reference])
    shift = reference.mean(axis=1)
    return {
        "rng": rng,
        "importance": mutual_information(summary.counts),
        "fine": fine,
        "shift": shift,
        "ref": NumericSummary.from_columns(reference, fine, shift),
    }


def window_statistics(monitored: dict, moves: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """PSI and KS values (2, F) and thresholds (2, 1) of a window with the given mean shifts."""
    window = monitored["rng"].normal(size=(4, 5_000)) + np.array(moves)[:, None]
    win = NumericSummary.from_columns(window, monitored["fine"], monitored["shift"])
    values = []
    thresholds = []
    for detector in (PSI(), KS()):
        results = detector.numeric(monitored["ref"], win, monitored["fine"])
        values.append([np.nan if r.value is None else r.value for r in results])
        thresholds.append([detector.threshold])
    return np.array(values), np.array(thresholds)


def test_the_important_feature_ranks_first_and_irrelevant_drift_alone_stays_below(
    monitored: dict,
) -> None:
    importance = monitored["importance"]
    assert importance[0] > 10 * importance[2] > 10 * max(importance[1], importance[3])

    values, thresholds = window_statistics(monitored, [0.5, 0.5, 0.0, 0.0])
    both = drift_impact(values, thresholds, importance)
    assert both.status == "ok" and both.drift and both.value > 1.0
    assert both.top[0] == 0
    # the irrelevant feature drifted just as far by its own detectors ...
    assert both.scores[1] == pytest.approx(both.scores[0], rel=0.3) and both.scores[1] > 1
    # ... and contributes almost nothing
    assert both.contributions[1] < 0.01 * both.contributions[0]

    values, thresholds = window_statistics(monitored, [0.0, 3.0, 0.0, 0.0])  # far, irrelevant
    alone = drift_impact(values, thresholds, importance)
    assert alone.scores[1] > 5  # past the cap
    assert alone.status == "ok" and not alone.drift and alone.value < 0.2
    assert alone.contributions[1] == pytest.approx(5.0 * alone.weights[1])

    # the same move of the important feature alone does cross
    values, thresholds = window_statistics(monitored, [0.5, 0.0, 0.0, 0.0])
    assert drift_impact(values, thresholds, importance).drift


def test_value_is_the_definition() -> None:
    rng = np.random.default_rng(2)
    statistics = rng.uniform(0.0, 0.6, size=(3, 8))
    statistics[0, 1] = np.nan
    statistics[:, 5] = np.nan  # no detector gave feature 5 a value
    thresholds = np.array([[0.2], [0.1], [0.1]])
    importances = rng.gamma(1.0, size=8)
    importances[7] = np.nan
    result = drift_impact(statistics, thresholds, importances, cap=3.0, top_k=3)
    weights = np.nan_to_num(importances) / np.nansum(importances)
    expected = 0.0
    for f in range(8):
        ratios = [s / t for s, t in zip(statistics[:, f], thresholds[:, 0], strict=True)]
        ratios = [r for r in ratios if not np.isnan(r)]
        if ratios:
            expected += weights[f] * min(max(ratios), 3.0)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.contributions.sum() == pytest.approx(result.value, rel=1e-12)
    np.testing.assert_allclose(result.weights, weights, rtol=1e-12)
    assert np.isnan(result.scores[5]) and result.contributions[5] == 0.0
    assert result.coverage == pytest.approx(1.0 - weights[5], rel=1e-12)
    ranked = sorted(range(8), key=lambda f: (-result.contributions[f], f))
    assert list(result.top) == [f for f in ranked if result.contributions[f] > 0][:3]
    uncapped = drift_impact(statistics, thresholds, importances, cap=None)
    assert uncapped.value >= result.value
    record = result.to_result(n_window=500)
    assert (record.value, record.threshold, record.direction) == (result.value, 1.0, "above")
    assert record.drift == (result.value > 1.0) and record.n_window == 500


def test_threshold_is_crossed_strictly_and_statuses() -> None:
    at = drift_impact(np.array([0.2, 0.1]), np.array([0.2, 0.1]), np.array([1.0, 3.0]))
    assert at.value == pytest.approx(1.0) and not at.drift  # every feature at its threshold
    none = drift_impact(np.array([0.5, 0.5]), 0.2, np.array([0.0, np.nan]))
    assert none.status == "undefined" and none.value is None and not none.drift
    blind = drift_impact(np.array([np.nan, 0.5]), 0.2, np.array([1.0, 0.0]))
    assert blind.status == "insufficient_data" and blind.value is None and blind.coverage == 0.0
    assert blind.to_result().status == "insufficient_data"


def test_validation() -> None:
    with pytest.raises(ValueError, match=re.escape("thresholds must be finite and > 0, got 0.0")):
        drift_impact(np.array([0.1]), 0.0, np.array([1.0]))
    with pytest.raises(
        ValueError, match=re.escape("statistics must be finite and >= 0 or NaN, got -0.1")
    ):
        drift_impact(np.array([-0.1]), 0.2, np.array([1.0]))
    with pytest.raises(
        ValueError, match=re.escape("importances must be finite and >= 0 or NaN, got -1.0")
    ):
        drift_impact(np.array([0.1]), 0.2, np.array([-1.0]))
    with pytest.raises(ValueError, match=r"importances must have shape \(2,\)"):
        drift_impact(np.array([0.1, 0.2]), 0.2, np.array([1.0]))
    with pytest.raises(ValueError, match="do not broadcast"):
        drift_impact(np.zeros((2, 3)), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="cap must be a finite number > 0, got 0"):
        drift_impact(np.array([0.1]), 0.2, np.array([1.0]), cap=0)
    with pytest.raises(
        ValueError, match=re.escape("top_k must be a non-negative integer, got 1.5")
    ):
        drift_impact(np.array([0.1]), 0.2, np.array([1.0]), top_k=1.5)
