"""Performance thresholds of a model: what the configuration sets reaches the metrics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from sklearn.metrics import recall_score

from driftwarden.detectors import PERFORMANCE_METRICS, MulticlassPerformanceSummary
from driftwarden.monitor import config
from driftwarden.monitor.evaluation.outcome_results import thresholds_for
from driftwarden.monitor.windows.outcomes import task_performance

MULTICLASS = """
models:
  router:
    task: multiclass_classification
    reference: ref.parquet
    features: {numeric: [x]}
    performance: {thresholds: {recall_2: 0.9, macro_f1: 0.5}}
"""


def test_a_per_class_recall_threshold_decides_that_class() -> None:
    model = config.parse(MULTICLASS, environ={}).models["router"]
    profile = SimpleNamespace(outcomes=SimpleNamespace(reference_performance={}))
    task = "multiclass_classification"
    thresholds = thresholds_for(profile, model, PERFORMANCE_METRICS[task])
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 2000)
    predicted = np.where(rng.random(2000) < 0.7, y, rng.integers(0, 3, 2000))
    summary = MulticlassPerformanceSummary.from_arrays(y, predicted, classes=(0, 1, 2))
    results = task_performance(task, summary, thresholds, min_labeled=1, n_window=2000)
    recall = recall_score(y, predicted, labels=[2], average=None)[0]
    assert results["recall_2"].value == recall
    assert results["recall_2"].threshold == 0.9
    assert results["recall_2"].drift is bool(recall < 0.9)
    assert results["recall_0"].threshold is None
