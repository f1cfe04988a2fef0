"""A closed window's feature importance against the reference's: ``feature_importance`` records."""

from __future__ import annotations

import math

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors.importance import ImportanceChange, compare_importances
from driftwarden.detectors.result import DetectorResult, not_ok
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.evaluation.window_results import gate
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary

MUTUAL_INFORMATION = "mutual_information"
"""The detector name of importances measured as mutual information with the prediction."""


def importance_records(
    profile: Profile, summary: WindowSummary, window: WindowInfo, config: ModelConfig
) -> list[ResultRecord]:
    """One record per feature: its mutual information with the prediction in the window,
    the reference's, and whether it moved by more than the thresholds."""
    if profile.importance is None or summary.importance is None:
        return []
    settings = config.importance
    correction = settings.correction
    reference = profile.importance.reference
    reference_importance = reference.importance(correction)
    changes = compare_importances(
        summary.importance.importance(correction),
        reference_importance,
        relative_threshold=settings.relative_threshold,
        absolute_threshold=settings.absolute_threshold,
        n_window=summary.importance.n,
        n_reference=reference.n,
        min_rows=settings.min_rows,
    )
    enough = summary.n_events >= config.window.min_samples
    return [
        ResultRecord.of(
            window,
            "feature_importance",
            MUTUAL_INFORMATION,
            gate(importance_result(change), enough),
            feature=feature,
            reference_value=_finite(reference_value),
        )
        for feature, change, reference_value in zip(
            profile.features, changes, reference_importance.tolist(), strict=True
        )
    ]


def importance_result(change: ImportanceChange) -> DetectorResult:
    """A change of importance as a result: ``value`` the window's importance, ``threshold``
    the edge of the reference's band it must leave (``reference ± max(absolute, relative ×
    reference)``), ``above`` for an increase and ``below`` for a decrease. A lower edge at or
    below 0 cannot be crossed: its threshold is ``None``."""
    margin = max(change.absolute_threshold, change.relative_threshold * (change.reference or 0.0))
    direction = "below" if change.direction == "decrease" else "above"
    if change.status != "ok" or change.value is None or change.reference is None:
        return not_ok(
            change.status,
            None,
            "above",
            n_reference=change.n_reference,
            n_window=change.n_window,
        )
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


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
