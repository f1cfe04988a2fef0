"""A closed window's feature importance against the reference's: ``feature_importance`` records.

Two measures, each its own detector: ``mutual_information`` of each feature with the
prediction (always), and the mean absolute ``attribution`` (when events or the reference
carry attributions). Each gives one record per feature and one ``rank_correlation`` record:
Spearman's correlation of the window's ranking of the features with the reference's.
"""

from __future__ import annotations

import math

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors.impact import drift_impact
from driftwarden.detectors.importance import (
    ImportanceChange,
    compare_importances,
    rank_correlation,
)
from driftwarden.detectors.result import DetectorResult, not_ok
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.evaluation.window_results import gate
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary

MUTUAL_INFORMATION = "mutual_information"
"""The detector name of importances measured as mutual information with the prediction."""

ATTRIBUTION = "attribution"
"""The detector name of importances measured as mean absolute attribution."""

IMPACT = "importance_weighted"
"""The detector name of ``drift_impact`` records."""

CONTRIBUTION = "contribution"
"""The metric of a ``drift_impact`` record that gives one feature's share of the impact."""

RANK_CORRELATION = "rank_correlation"
"""The metric of the record comparing the window's ranking of the features with the reference's."""


def importance_records(
    profile: Profile, summary: WindowSummary, window: WindowInfo, config: ModelConfig
) -> list[ResultRecord]:
    """Mutual-information records of every feature, and attribution records when either
    side has attributions."""
    if profile.importance is None or summary.importance is None:
        return []
    settings = config.importance
    enough = summary.n_events >= config.window.min_samples
    reference = profile.importance.reference
    records = _records(
        window,
        MUTUAL_INFORMATION,
        profile.features,
        summary.importance.importance(settings.correction),
        reference.importance(settings.correction),
        summary.importance.n,
        reference.n,
        settings.absolute_threshold,
        config,
        enough,
    )
    window_attributions = summary.attributions
    reference_attributions = profile.importance.attributions
    if window_attributions is None:
        return records
    if reference_attributions is None and not window_attributions.count.any():
        return records
    n_features = len(profile.features)
    records += _records(
        window,
        ATTRIBUTION,
        profile.features,
        window_attributions.mean_abs,
        np.full(n_features, np.nan)
        if reference_attributions is None
        else reference_attributions.mean_abs,
        window_attributions.count,
        None if reference_attributions is None else reference_attributions.count,
        settings.attribution_absolute_threshold,
        config,
        enough,
    )
    return records


def _records(
    window: WindowInfo,
    detector: str,
    features: tuple[str, ...],
    values: np.ndarray,
    reference: np.ndarray,
    n_window: np.ndarray,
    n_reference: np.ndarray | None,
    absolute_threshold: float,
    config: ModelConfig,
    enough: bool,
) -> list[ResultRecord]:
    """One record per feature and the ranking's record, of one detector."""
    settings = config.importance
    changes = compare_importances(
        values,
        reference,
        relative_threshold=settings.relative_threshold,
        absolute_threshold=absolute_threshold,
        n_window=n_window,
        n_reference=n_reference,
        min_rows=settings.min_rows,
    )
    records = [
        ResultRecord.of(
            window,
            "feature_importance",
            detector,
            gate(importance_result(change), enough),
            feature=feature,
            reference_value=_finite(reference_value),
        )
        for feature, change, reference_value in zip(
            features, changes, reference.tolist(), strict=True
        )
    ]
    ranking = gate(ranking_result(changes), enough)
    records.append(
        ResultRecord.of(window, "feature_importance", detector, ranking, metric=RANK_CORRELATION)
    )
    return records


def importance_result(change: ImportanceChange) -> DetectorResult:
    """A change of importance as a result: ``value`` the window's importance, ``threshold``
    the edge of the reference's band it must leave (``reference ± max(absolute, relative ×
    reference)``), ``above`` for an increase and ``below`` for a decrease. A lower edge at or
    below 0 cannot be crossed: its threshold is ``None``."""
    if change.status != "ok" or change.value is None or change.reference is None:
        return not_ok(
            change.status,
            None,
            "above",
            n_reference=change.n_reference,
            n_window=change.n_window,
        )
    margin = max(change.absolute_threshold, change.relative_threshold * change.reference)
    direction = "below" if change.direction == "decrease" else "above"
    threshold: float | None = change.reference + margin
    if direction == "below":
        threshold = change.reference - margin if change.reference > margin else None
    return DetectorResult(
        value=change.value,
        threshold=threshold,
        direction=direction,
        drift=change.drift,
        n_reference=change.n_reference,
        n_window=change.n_window,
    )


def ranking_result(changes: list[ImportanceChange]) -> DetectorResult:
    """Spearman's correlation of the window's importances with the reference's, over the
    features whose comparison is ``ok``; a report, never a decision (``threshold`` null).
    ``insufficient_data`` when any feature lacked rows, ``undefined`` when fewer than two
    features or a ranking of ties remain. ``n_window`` is the fewest rows of a feature."""
    counts = [change.n_window for change in changes if change.n_window is not None]
    n_window = min(counts) if counts else None
    if any(change.status == "insufficient_data" for change in changes):
        return not_ok("insufficient_data", None, "below", n_window=n_window)
    ok = [change for change in changes if change.status == "ok"]
    value = rank_correlation(
        np.array([change.value for change in ok], dtype=np.float64),
        np.array([change.reference for change in ok], dtype=np.float64),
    )
    if value is None:
        return not_ok("undefined", None, "below", n_window=n_window)
    return DetectorResult(value, None, "below", drift=False, n_window=n_window)


def impact_records(
    profile: Profile,
    summary: WindowSummary,
    window: WindowInfo,
    config: ModelConfig,
    results: list[ResultRecord],
) -> list[ResultRecord]:
    """The window's drift impact: each feature's data drift (its largest statistic over
    threshold among the detectors that drift upwards) weighted by its importance, one record
    for the model and one per top contributor (``metric: contribution``, largest first)."""
    if profile.importance is None:
        return []
    settings = config.importance
    features = profile.features
    if settings.impact_weights is None:
        importances = profile.importance.reference.importance(settings.correction)
    else:
        importances = np.array([settings.impact_weights.get(name, 0.0) for name in features])
    statistics, thresholds = _drift_table(features, results)
    impact = drift_impact(
        statistics,
        thresholds,
        importances,
        threshold=settings.impact_threshold,
        cap=settings.impact_cap,
        top_k=settings.impact_contributors,
    )
    enough = summary.n_events >= config.window.min_samples
    result = gate(impact.to_result(n_reference=profile.n_rows, n_window=summary.n_events), enough)
    records = [ResultRecord.of(window, "drift_impact", IMPACT, result)]
    if result.status != "ok":
        return records
    for f in impact.top:
        contribution = DetectorResult(
            value=float(impact.contributions[f]),
            threshold=None,
            direction="above",
            drift=False,
            n_reference=profile.n_rows,
            n_window=summary.n_events,
        )
        records.append(
            ResultRecord.of(
                window,
                "drift_impact",
                IMPACT,
                contribution,
                feature=features[f],
                metric=CONTRIBUTION,
            )
        )
    return records


def _drift_table(
    features: tuple[str, ...], results: list[ResultRecord]
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics and thresholds ``(D, F)`` of the window's data-drift records whose
    detectors drift upwards from a positive threshold (effect sizes); NaN elsewhere."""
    column = {name: f for f, name in enumerate(features)}
    usable = [
        r
        for r in results
        if r.kind == "data_drift"
        and r.feature in column
        and r.direction == "above"
        and r.value is not None
        and r.value >= 0
        and r.threshold is not None
        and r.threshold > 0
    ]
    detectors = sorted({r.detector for r in usable})
    row = {name: d for d, name in enumerate(detectors)}
    statistics = np.full((max(len(detectors), 1), len(features)), np.nan)
    thresholds = np.ones_like(statistics)
    for r in usable:
        statistics[row[r.detector], column[r.feature]] = r.value
        thresholds[row[r.detector], column[r.feature]] = r.threshold
    return statistics, thresholds


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
