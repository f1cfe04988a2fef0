"""Multiclass performance from summaries against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from driftwarden.detectors.performance_multiclass import (
    MulticlassPerformanceSummary,
    multiclass_performance,
)

CLASSES = ("cat", "dog", "eel", "fox")


def _rows(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    scores = rng.dirichlet(np.ones(4), n) + 0.6 * np.eye(4)[codes]
    scores /= scores.sum(axis=1, keepdims=True)
    labels = np.asarray(CLASSES)
    return labels[codes], labels[scores.argmax(axis=1)], scores


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_scikit_learn(seed) -> None:
    y, pred, scores = _rows(seed)
    summary = MulticlassPerformanceSummary.from_arrays(y, pred, CLASSES, scores)
    results = multiclass_performance(summary)
    assert results["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert results["macro_f1"].value == pytest.approx(
        skm.f1_score(y, pred, average="macro"), abs=1e-12
    )
    assert results["weighted_f1"].value == pytest.approx(
        skm.f1_score(y, pred, average="weighted"), abs=1e-12
    )
    recalls = skm.recall_score(y, pred, average=None, labels=list(CLASSES))
    for label, expected in zip(CLASSES, recalls, strict=True):
        assert results[f"recall_{label}"].value == pytest.approx(expected, abs=1e-12)
    auc = skm.roc_auc_score(y, scores, multi_class="ovr", labels=list(CLASSES))
    r = results["roc_auc"]
    assert abs(r.value - auc) <= r.error_bound and 0 < r.error_bound < 2e-3
    exact = multiclass_performance(summary, exact=(y, scores))["roc_auc"]
    assert exact.value == pytest.approx(auc, abs=1e-12) and exact.error_bound == 0.0


def test_a_class_missing_from_the_window() -> None:
    y, pred, scores = _rows(2, 4000)
    keep = y != "fox"
    y, pred, scores = y[keep], pred[keep], scores[keep]
    summary = MulticlassPerformanceSummary.from_arrays(y, pred, CLASSES, scores)
    results = multiclass_performance(summary)
    assert results["recall_fox"].status == "undefined"
    # scikit-learn's default labels (those present) give the same F1 means.
    assert results["macro_f1"].value == pytest.approx(
        skm.f1_score(y, pred, average="macro"), abs=1e-12
    )
    # OvR AUC averages the classes with positives and negatives; scikit-learn refuses this window.
    present = [c for c in CLASSES if c != "fox"]
    expected = np.mean([skm.roc_auc_score(y == c, scores[:, CLASSES.index(c)]) for c in present])
    assert abs(results["roc_auc"].value - expected) <= results["roc_auc"].error_bound


def test_without_scores_there_is_no_roc_auc() -> None:
    y, pred, _ = _rows(3, 2000)
    results = multiclass_performance(MulticlassPerformanceSummary.from_arrays(y, pred, CLASSES))
    assert "roc_auc" not in results and results["accuracy"].status == "ok"


def test_merge_and_state() -> None:
    y, pred, scores = _rows(4, 3000)
    a = MulticlassPerformanceSummary.from_arrays(y[:1000], pred[:1000], CLASSES, scores[:1000])
    b = MulticlassPerformanceSummary.from_arrays(y[1000:], pred[1000:], CLASSES, scores[1000:])
    whole = MulticlassPerformanceSummary.from_arrays(y, pred, CLASSES, scores)
    assert a.merge(b).to_state() == whole.to_state()
    state = json.loads(json.dumps(whole.to_state()))
    assert MulticlassPerformanceSummary.from_state(state).to_state() == whole.to_state()
    with pytest.raises(ValueError, match="merged"):
        whole.merge(MulticlassPerformanceSummary.empty(CLASSES, n_bins=None))


def test_empty_and_small_windows_are_insufficient() -> None:
    results = multiclass_performance(MulticlassPerformanceSummary.empty(CLASSES), {"accuracy": 0.5})
    assert all(r.status == "insufficient_data" for r in results.values())
    assert results["accuracy"].threshold == 0.5


def test_unknown_labels_are_named() -> None:
    with pytest.raises(ValueError, match="'gnu'"):
        MulticlassPerformanceSummary.from_arrays(["cat", "gnu"], ["cat", "dog"], CLASSES)
    with pytest.raises(ValueError, match="at least two"):
        MulticlassPerformanceSummary.empty(["cat"])
