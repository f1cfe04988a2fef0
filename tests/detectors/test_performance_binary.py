"""Binary performance from summaries: scikit-learn's values, exact or within the stated bound."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from driftwarden.detectors.performance_binary import (
    BINARY_METRICS,
    BinaryPerformanceSummary,
    binary_performance,
    binary_performance_from_arrays,
)


def _rows(seed: int, n: int = 20_000, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rate
    score = np.clip(0.3 + 0.35 * y + rng.normal(0, 0.2, n), 0, 1)
    return y, score


def _sklearn(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    pred = score >= threshold
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, score),
        "average_precision": skm.average_precision_score(y, score),
        "log_loss": skm.log_loss(y, score),
        "brier": skm.brier_score_loss(y, score),
    }


@pytest.mark.parametrize(("seed", "threshold"), [(0, 0.5), (1, 0.3), (2, 0.71)])
def test_count_and_sum_metrics_equal_scikit_learn(seed, threshold) -> None:
    y, score = _rows(seed)
    results = binary_performance(BinaryPerformanceSummary.from_arrays(y, score, threshold))
    expected = _sklearn(y, score, threshold)
    assert set(results) == set(BINARY_METRICS)
    for metric in ("accuracy", "precision", "recall", "f1", "log_loss", "brier"):
        assert results[metric].value == pytest.approx(expected[metric], abs=1e-12), metric
        assert results[metric].error_bound == 0.0
    # Within the stated bound; at 1,000 bins and 20,000 rows that is < 1e-3 for ROC AUC and
    # < 1e-2 for average precision (its bound is loose in the few top bins).
    for metric, largest in (("roc_auc", 1e-3), ("average_precision", 1e-2)):
        r = results[metric]
        assert abs(r.value - expected[metric]) <= r.error_bound
        assert 0 < r.error_bound < largest


def test_raw_arrays_give_exact_ranking_metrics() -> None:
    y, score = _rows(4)
    results = binary_performance_from_arrays(y, score)
    expected = _sklearn(y, score, 0.5)
    for metric in BINARY_METRICS:
        assert results[metric].value == pytest.approx(expected[metric], abs=1e-12), metric
        assert results[metric].error_bound == 0.0


def test_log_loss_clips_like_scikit_learn() -> None:
    y = np.array([1, 0, 1, 0] * 200)
    score = np.array([0.0, 1.0, 1.0, 0.0] * 200)
    result = binary_performance(BinaryPerformanceSummary.from_arrays(y, score))["log_loss"]
    assert result.value == pytest.approx(skm.log_loss(y, score), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 3000), max_size=5))
def test_panes_merge_to_the_window(seed, cuts) -> None:
    y, score = _rows(seed, 3000)
    edges = [0, *sorted(cuts), y.size]
    merged = BinaryPerformanceSummary.empty()
    for a, b in itertools.pairwise(edges):
        merged = merged.merge(BinaryPerformanceSummary.from_arrays(y[a:b], score[a:b]))
    whole = BinaryPerformanceSummary.from_arrays(y, score)
    assert (merged.tp, merged.fp, merged.tn, merged.fn) == (whole.tp, whole.fp, whole.tn, whole.fn)
    np.testing.assert_array_equal(merged.positives, whole.positives)
    np.testing.assert_array_equal(merged.negatives, whole.negatives)
    assert merged.log_loss_sum == pytest.approx(whole.log_loss_sum, rel=1e-12)
    assert merged.brier_sum == pytest.approx(whole.brier_sum, rel=1e-12)


def test_state_round_trips_through_json() -> None:
    y, score = _rows(5, 2000)
    summary = BinaryPerformanceSummary.from_arrays(y, score, 0.4, n_bins=50)
    state = json.loads(json.dumps(summary.to_state(), allow_nan=False))
    back = BinaryPerformanceSummary.from_state(state)
    assert back.to_state() == summary.to_state()
    state["confusion"][0] += 1
    with pytest.raises(ValueError, match="add up"):
        BinaryPerformanceSummary.from_state(state)


def test_one_class_window_has_undefined_roc_auc() -> None:
    y = np.zeros(1000, dtype=int)
    score = np.random.default_rng(0).random(1000)
    results = binary_performance(BinaryPerformanceSummary.from_arrays(y, score), {"roc_auc": 0.7})
    for metric in ("roc_auc", "average_precision", "recall"):
        r = results[metric]
        assert (r.status, r.value, r.drift) == ("undefined", None, False)
    assert results["roc_auc"].threshold == 0.7
    assert results["accuracy"].status == "ok"
    assert results["precision"].status == "ok" and results["precision"].value == 0.0


def test_no_positive_prediction_leaves_precision_undefined() -> None:
    y = np.array([0, 1] * 300)
    score = np.full(600, 0.2)
    results = binary_performance(BinaryPerformanceSummary.from_arrays(y, score))
    assert results["precision"].status == "undefined"
    assert results["recall"].value == 0.0 and results["f1"].value == 0.0


def test_small_and_empty_windows_are_insufficient() -> None:
    y, score = _rows(6, 100)
    for summary in (
        BinaryPerformanceSummary.from_arrays(y, score),
        BinaryPerformanceSummary.empty(),
    ):
        results = binary_performance(summary, {"accuracy": 0.9}, n_window=5000)
        for r in results.values():
            assert r.status == "insufficient_data" and r.value is None and not r.drift
        assert results["accuracy"].threshold == 0.9
        assert results["accuracy"].n_window == 5000
    assert binary_performance(BinaryPerformanceSummary.empty(), min_labeled=0)[
        "accuracy"
    ].status == ("insufficient_data")


def test_directions_and_decisions() -> None:
    y, score = _rows(7, 5000)
    results = binary_performance(
        BinaryPerformanceSummary.from_arrays(y, score),
        {"accuracy": 0.99, "log_loss": 0.01, "brier": 0.9},
        n_window=9000,
    )
    assert results["accuracy"].direction == "below" and results["accuracy"].drift
    assert results["log_loss"].direction == "above" and results["log_loss"].drift
    assert not results["brier"].drift
    assert results["accuracy"].n_window == 9000 and results["accuracy"].n_labeled == 5000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 2], "y_score": [0.1, 0.2]}, "0 or 1"),
        ({"y_true": [0, 1], "y_score": [0.1, 1.2]}, "1.2"),
        ({"y_true": [0, 1], "y_score": [0.1]}, "shape"),
        ({"y_true": [0, 1], "y_score": [0.1, 0.2], "n_bins": 0}, "n_bins"),
        ({"y_true": [0, 1], "y_score": [0.1, 0.2], "decision_threshold": 2}, "decision_threshold"),
    ],
)
def test_bad_rows_are_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        BinaryPerformanceSummary.from_arrays(**kwargs)


def test_bad_thresholds_and_mismatched_merges_are_named() -> None:
    summary = BinaryPerformanceSummary.empty()
    with pytest.raises(ValueError, match="mae"):
        binary_performance(summary, {"mae": 1.0})
    with pytest.raises(ValueError, match="finite"):
        binary_performance(summary, {"accuracy": float("nan")})
    with pytest.raises(ValueError, match="merged"):
        summary.merge(BinaryPerformanceSummary.empty(0.6))
