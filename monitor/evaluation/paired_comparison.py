"""A challenger's window against the champion on the requests both scored (shadow): how
often they agree, and the paired test of their errors once labelled (exact McNemar for
classifiers, the paired t-test of absolute errors for regressors)."""

from __future__ import annotations

import dataclasses

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors.comparison import ComparisonResult
from driftwarden.detectors.pairing import (
    PairedRegressionSummary,
    mcnemar_comparison,
    paired_t_comparison,
)
from driftwarden.detectors.result import DetectorResult
from driftwarden.monitor.evaluation.version_comparison import KIND, comparison_record
from driftwarden.monitor.labels.pairs import PairSummary
from driftwarden.monitor.windows.profile import Profile

AGREEMENT = "agreement"
"""The detector of the agreement record."""


def paired_records(
    window: WindowInfo,
    champion_version: str | None,
    pairs: PairSummary,
    n_window: int | None,
    min_labeled: int,
    spread: float | None,
) -> list[ResultRecord]:
    """The comparison record of the challenger's ``window`` from its pairs (``n_reference``
    the pairs, ``n_labeled`` the labelled ones) and its agreement record."""
    labelled = pairs.labelled
    result: ComparisonResult
    if isinstance(labelled, PairedRegressionSummary):
        paired = paired_t_comparison(labelled, "absolute_error", min_pairs=max(min_labeled, 2))
        assert isinstance(paired, ComparisonResult)
        result = paired
    else:
        result = mcnemar_comparison(labelled, "error_rate", min_pairs=max(min_labeled, 1))
    record = comparison_record(window, champion_version, result, n_window)
    record = dataclasses.replace(record, n_reference=pairs.n, n_labeled=labelled.n)
    return [record, _agreement(window, champion_version, pairs, n_window, spread)]


def _agreement(
    window: WindowInfo,
    champion_version: str | None,
    pairs: PairSummary,
    n_window: int | None,
    spread: float | None,
) -> ResultRecord:
    metric, value = pairs.agreement(spread)
    verdict = DetectorResult(
        value=value,
        threshold=None,
        direction="below" if metric == "agreement" else "above",
        drift=False,
        status="ok" if value is not None else "undefined",
        n_reference=pairs.n,
        n_window=n_window,
    )
    record = ResultRecord.of(window, KIND, AGREEMENT, verdict, metric=metric)
    return dataclasses.replace(record, champion_version=champion_version)


def prediction_spread(profile: Profile) -> float | None:
    """The standard deviation of the reference's predictions (regressors), the unit of
    their relative disagreement; ``None`` when unknown or 0."""
    summary = profile.prediction_reference
    if summary is None:
        return None
    n = float(summary.counts[0].sum())
    if n < 2:
        return None
    mean = float(summary.shifted_sum[0]) / n
    variance = (float(summary.shifted_sum_sq[0]) - n * mean**2) / (n - 1)
    spread = float(np.sqrt(max(variance, 0.0)))
    return spread if spread > 0 else None
