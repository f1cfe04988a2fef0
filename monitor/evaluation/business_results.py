"""A closed window's business metrics (count, sum and mean of the business values its labels
carry) and, over the last windows, each metric's correlation with the model's main
performance metric and with drift impact."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors.correlation import pearson
from driftwarden.detectors.result import DetectorResult, Direction, crossed, not_ok
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.windows.outcomes import BusinessSummary

BUSINESS = "business_metric"
CORRELATION = "business_correlation"
MEAN, SUM, PEARSON = "mean", "sum", "pearson"
"""Detector names: a business metric's ``mean`` (judged against its bounds) and ``sum``, and
the ``pearson`` correlation."""

MAIN_METRIC = {
    "binary_classification": "roc_auc",
    "multiclass_classification": "accuracy",
    "regression": "mae",
}
"""The performance metric a business metric is correlated with, per task."""

DRIFT_IMPACT = "drift_impact"
CORRELATED_KINDS = (BUSINESS, "performance", DRIFT_IMPACT)
"""The record kinds a correlation reads."""


def business_records(
    config: ModelConfig, window: WindowInfo, business: BusinessSummary, n_window: int
) -> list[ResultRecord]:
    """Per configured business metric: its mean (flagged outside ``min``/``max``; reported
    from ``labels.min_labeled`` values on) and its sum; ``n_labeled`` counts the values."""
    records = []
    for name in config.business.names:
        count = business.count(name)
        mean = business.mean(name)
        direction, threshold = _bound(config, name, mean)
        total = business.sum(name)
        if mean is None or count < config.labels.min_labeled:
            result = not_ok(
                "insufficient_data", threshold, direction, n_window=n_window, n_labeled=count
            )
        elif not math.isfinite(total):  # finite values whose sum overflows
            result = not_ok("undefined", threshold, direction, n_window=n_window, n_labeled=count)
        else:
            drift = threshold is not None and crossed(mean, threshold, direction)
            result = DetectorResult(
                mean, threshold, direction, drift, n_window=n_window, n_labeled=count
            )
        summed = (
            DetectorResult(total, None, "above", False, n_window=n_window, n_labeled=count)
            if math.isfinite(total)
            else not_ok("undefined", None, "above", n_window=n_window, n_labeled=count)
        )
        records += [
            ResultRecord.of(window, BUSINESS, MEAN, result, metric=name),
            ResultRecord.of(window, BUSINESS, SUM, summed, metric=name),
        ]
    return records


def _bound(config: ModelConfig, name: str, mean: float | None) -> tuple[Direction, float | None]:
    """The bound a mean is judged against: ``max`` when it is the only one or the mean is
    above it, else ``min``."""
    bounds = config.business.metrics[name]
    above = mean is not None and bounds.max is not None and mean > bounds.max
    if bounds.max is not None and (bounds.min is None or above):
        return "above", bounds.max
    return "below", bounds.min


def correlation_records(
    config: ModelConfig, window: WindowInfo, records: Iterable[ResultRecord]
) -> list[ResultRecord]:
    """Each business metric's Pearson correlation, over the windows of ``records`` (those
    of the last ``correlation_windows`` up to ``window``) holding both values, with the
    main performance metric (``group_attribute``: its name) and with drift impact
    (``drift_impact``). ``n_window`` counts the windows paired; ``insufficient_data``
    below ``min_windows``."""
    settings, task = config.business, config.task
    first = window.index - settings.correlation_windows + 1
    indexes = np.arange(first, window.index + 1)
    series: dict[tuple[str, str | None], np.ndarray] = {}
    for record in records:
        if not first <= record.window_index <= window.index or record.value is None:
            continue
        subject = _subject(record, task)
        if subject is not None:
            values = series.setdefault(subject, np.full(indexes.size, np.nan))
            values[record.window_index - first] = record.value
    missing = np.full(indexes.size, np.nan)
    out = []
    for name in settings.names:
        mean = series.get((BUSINESS, name), missing)
        for against, kind in ((MAIN_METRIC[task], "performance"), (DRIFT_IMPACT, DRIFT_IMPACT)):
            other = series.get((kind, None), missing)
            paired = int((~np.isnan(mean) & ~np.isnan(other)).sum())
            [correlation] = pearson(mean, other)
            if paired < settings.min_windows:
                result = not_ok("insufficient_data", None, "above", n_window=paired)
            elif correlation.status != "ok":
                result = not_ok("undefined", None, "above", n_window=paired)
            else:
                result = DetectorResult(
                    correlation.statistic,
                    None,
                    "above",
                    False,
                    p_value=correlation.p_value,
                    n_window=paired,
                )
            out.append(
                ResultRecord.of(
                    window, CORRELATION, PEARSON, result, metric=name, group_attribute=against
                )
            )
    return out


def _subject(record: ResultRecord, task: str) -> tuple[str, str | None] | None:
    """Which series a record belongs to: a business mean, the main metric, drift impact."""
    if record.kind == BUSINESS and record.detector == MEAN:
        return BUSINESS, record.metric
    if record.kind == "performance" and record.metric == MAIN_METRIC[task]:
        return "performance", None
    if record.kind == DRIFT_IMPACT and record.feature is None and record.metric is None:
        return DRIFT_IMPACT, None
    return None
