"""A challenger version's window against the champion's window of the same bounds (A/B:
the versions score different requests), from the label summaries of both."""

from __future__ import annotations

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors.comparison import (
    ComparisonResult,
    Moments,
    two_proportion_comparison,
    welch_comparison,
)
from driftwarden.detectors.performance_binary import BinaryPerformanceSummary
from driftwarden.detectors.performance_multiclass import MulticlassPerformanceSummary
from driftwarden.detectors.performance_regression import RegressionPerformanceSummary
from driftwarden.monitor.windows.outcomes import LabelSummary

KIND = "version_comparison"


def comparison_records(
    window: WindowInfo,
    champion_version: str | None,
    champion: LabelSummary,
    challenger: LabelSummary,
    n_window: int | None,
    min_labeled: int,
) -> list[ResultRecord]:
    """The comparison records of the challenger's ``window`` (its records carry the
    challenger's version): error rate for classifiers, absolute error for regressors."""
    result = _compare(champion.performance, challenger.performance, min_labeled)
    return [comparison_record(window, champion_version, result, n_window)]


def _compare(champion: object, challenger: object, min_labeled: int) -> ComparisonResult:
    if isinstance(champion, RegressionPerformanceSummary):
        assert isinstance(challenger, RegressionPerformanceSummary)
        result = welch_comparison(
            _absolute_errors(champion),
            _absolute_errors(challenger),
            "absolute_error",
            min_per_arm=max(min_labeled, 2),
        )
    else:
        errors_0, n_0 = _errors(champion)
        errors_1, n_1 = _errors(challenger)
        result = two_proportion_comparison(
            errors_0, n_0, errors_1, n_1, "error_rate", min_per_arm=min_labeled
        )
    assert isinstance(result, ComparisonResult)
    return result


def _absolute_errors(summary: RegressionPerformanceSummary) -> Moments:
    """Count, mean and spread of the rows' absolute errors: ``sq_error`` is the sum of
    their squares."""
    return Moments.from_sums(summary.n, summary.abs_error, summary.sq_error)


def _errors(summary: object) -> tuple[int, int]:
    """Wrong predictions and labelled rows of a classifier's summary."""
    if isinstance(summary, BinaryPerformanceSummary):
        n = summary.tp + summary.fp + summary.tn + summary.fn
        return summary.fp + summary.fn, n
    assert isinstance(summary, MulticlassPerformanceSummary)
    n = int(summary.confusion.sum())
    return n - int(np.trace(summary.confusion)), n


def comparison_record(
    window: WindowInfo,
    champion_version: str | None,
    result: ComparisonResult,
    n_window: int | None,
) -> ResultRecord:
    worse_above = not result.higher_is_better
    return ResultRecord(
        model=window.model,
        model_version=window.model_version,
        reference_id=window.reference_id,
        window_start=window.start,
        window_end=window.end,
        window_index=window.index,
        kind=KIND,
        detector=result.method,
        feature=None,
        metric=result.metric,
        group_attribute=None,
        value=result.difference,
        p_value=result.p_value,
        threshold=result.alpha,
        direction="above" if worse_above else "below",
        drift=result.worse,
        status=result.status,
        n_reference=result.n_champion,
        n_window=n_window,
        n_labeled=result.n_challenger,
        champion_version=champion_version,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
    )
