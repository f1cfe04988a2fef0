"""A challenger version's window against the champion's window of the same bounds: from
the label summaries of both (A/B: the versions score different requests), and, needing no
labels, from their window summaries (prediction distributions, estimated error rates)."""

from __future__ import annotations

import dataclasses

import numpy as np

from driftwarden.core.records import PREDICTION_DISTRIBUTION, ResultRecord, WindowInfo
from driftwarden.detectors.cbpe import CBPE
from driftwarden.detectors.comparison import (
    ComparisonResult,
    Moments,
    expected_rate_comparison,
    two_proportion_comparison,
    welch_comparison,
)
from driftwarden.detectors.performance_binary import BinaryPerformanceSummary
from driftwarden.detectors.performance_multiclass import MulticlassPerformanceSummary
from driftwarden.detectors.performance_regression import RegressionPerformanceSummary
from driftwarden.detectors.result import DetectorResult
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.config.detectors import DetectorSet
from driftwarden.monitor.evaluation.window_results import prediction_drift
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary

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


def unlabelled_records(
    window: WindowInfo,
    champion_version: str | None,
    profile: Profile,
    config: ModelConfig,
    detectors: DetectorSet,
    champion: WindowSummary,
    challenger: WindowSummary,
) -> list[ResultRecord]:
    """The comparison records of the challenger's ``window`` that need no labels: its
    prediction distribution against the champion's, and (binary classifiers with CBPE) its
    estimated error rate against the champion's."""
    records = distribution_records(
        window, champion_version, profile, config, detectors, champion, challenger
    )
    cbpe = profile.outcomes.cbpe
    scored = champion.scores is not None and challenger.scores is not None
    if config.performance.estimated and cbpe is not None and scored:
        assert champion.scores is not None and challenger.scores is not None
        estimator = CBPE.from_state(cbpe)
        result = expected_rate_comparison(
            estimator.expected_errors(champion.scores),
            estimator.expected_errors(challenger.scores),
            min_per_arm=config.window.min_samples,
        )
        records.append(comparison_record(window, champion_version, result, challenger.n_events))
    return records


def distribution_records(
    window: WindowInfo,
    champion_version: str | None,
    profile: Profile,
    config: ModelConfig,
    detectors: DetectorSet,
    champion: WindowSummary,
    challenger: WindowSummary,
) -> list[ResultRecord]:
    """The model's prediction-drift detectors on the challenger's predictions, with the
    champion's predictions of the window as the reference (both binned on ``profile``);
    each version needs ``window.min_samples`` predictions."""
    reference = dataclasses.replace(
        profile,
        prediction_reference=champion.prediction_numeric,
        prediction_categorical_reference=champion.prediction_categorical,
    )
    enough = min(champion.n_events, challenger.n_events) >= config.window.min_samples
    return [
        dataclasses.replace(
            record,
            kind=KIND,
            feature=None,
            metric=PREDICTION_DISTRIBUTION,
            champion_version=champion_version,
        )
        for record in prediction_drift(reference, challenger, window, detectors, enough)
    ]


def comparison_record(
    window: WindowInfo,
    champion_version: str | None,
    result: ComparisonResult,
    n_window: int | None,
) -> ResultRecord:
    """The record of one comparison of the challenger's ``window`` (``n_reference`` the
    champion's rows, ``n_labeled`` the challenger's)."""
    worse_above = not result.higher_is_better
    verdict = DetectorResult(
        value=result.difference,
        threshold=result.alpha,
        direction="above" if worse_above else "below",
        drift=result.worse,
        status=result.status,
        p_value=result.p_value,
        n_reference=result.n_champion,
        n_window=n_window,
        n_labeled=result.n_challenger,
    )
    record = ResultRecord.of(window, KIND, result.method, verdict, metric=result.metric)
    return dataclasses.replace(
        record, champion_version=champion_version, ci_low=result.ci_low, ci_high=result.ci_high
    )
