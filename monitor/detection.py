"""Running a model's detectors on a closed window: one call per detector for all features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from driftwarden.detectors import (
    CBPE,
    CBPE_METRICS,
    CONCEPT_DRIFT_DETECTORS,
    DATA_DRIFT_DETECTORS,
    DATA_QUALITY_DETECTORS,
    DEFAULT_CONCEPT_DRIFT,
    DEFAULT_DATA_DRIFT,
    DEFAULT_DATA_QUALITY,
    FAIRNESS_METRICS,
    PERFORMANCE_METRICS,
    DataQuality,
    FairnessSummary,
    StreamDetector,
    fairness_metrics,
)
from driftwarden.detectors.result import DetectorResult, not_ok
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.outcomes import task_performance, thresholds_for
from driftwarden.monitor.results import ResultRecord, WindowInfo

if TYPE_CHECKING:
    from driftwarden.monitor.config import ConceptDriftConfig, ModelConfig
    from driftwarden.monitor.outcomes import LabelSummary
    from driftwarden.monitor.profile import Profile
    from driftwarden.monitor.summary import WindowSummary


@dataclass(frozen=True)
class DetectorSet:
    """A model's detectors: data drift per feature type, and data quality."""

    numeric: tuple[Any, ...]
    categorical: tuple[Any, ...]
    quality: DataQuality


def build_detectors(spec: Mapping[str, Mapping[str, Any]] | None, path: str) -> DetectorSet:
    """The detectors of a model's ``detectors`` section (the default set where omitted).

    A configured section replaces the default drift detectors; each runs on
    the feature types it applies to. ``data_quality`` always runs.
    """
    quality = DataQuality(**DEFAULT_DATA_QUALITY["data_quality"])
    if spec is None:
        numeric = [_build(n, p, path) for n, p in DEFAULT_DATA_DRIFT["numeric"].items()]
        categorical = [_build(n, p, path) for n, p in DEFAULT_DATA_DRIFT["categorical"].items()]
        return DetectorSet(tuple(numeric), tuple(categorical), quality)
    numeric, categorical = [], []
    for name, params in spec.items():
        if name == "data_quality":
            quality = _build(name, params, path, DATA_QUALITY_DETECTORS)
            continue
        detector = _build(name, params, path)
        if "numeric" in detector.applies_to:
            numeric.append(detector)
        if "categorical" in detector.applies_to:
            categorical.append(detector)
    return DetectorSet(tuple(numeric), tuple(categorical), quality)


def _build(
    name: str,
    params: Mapping[str, Any] | None,
    path: str,
    known: Mapping[str, type] = DATA_DRIFT_DETECTORS,
) -> Any:
    cls = known.get(name)
    if cls is None:
        names = ", ".join(sorted([*DATA_DRIFT_DETECTORS, *DATA_QUALITY_DETECTORS]))
        raise ConfigError(f"unknown detector (known: {names})", f"{path}.{name}")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError("expected a mapping of detector settings", f"{path}.{name}")
    return _construct(cls, params or {}, f"{path}.{name}")


def _construct(cls: type, params: Mapping[str, Any], path: str) -> Any:
    """A detector from its settings; a bad setting is a configuration error at ``path``."""
    try:
        return cls(**dict(params))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), path) from None


def evaluate(
    profile: Profile,
    summary: WindowSummary,
    window: WindowInfo,
    config: ModelConfig,
    detectors: DetectorSet,
) -> list[ResultRecord]:
    """All results of one window: data drift, prediction drift and data quality."""
    enough = summary.n_events >= config.window.min_samples
    records: list[ResultRecord] = []
    if profile.numeric:
        for detector in detectors.numeric:
            results = detector.numeric(profile.numeric_reference, summary.numeric, profile.edges)
            records += _records(
                window, "data_drift", detector.name, profile.numeric, results, enough
            )
    if profile.categorical:
        for detector in detectors.categorical:
            results = detector.categorical(profile.categorical_reference, summary.categorical)
            records += _records(
                window, "data_drift", detector.name, profile.categorical, results, enough
            )
    records += _prediction_drift(profile, summary, window, detectors, enough)
    records += _quality(profile, summary, window, detectors.quality, enough)
    return records


def _quality(
    profile: Profile,
    summary: WindowSummary,
    window: WindowInfo,
    quality: DataQuality,
    enough: bool,
) -> list[ResultRecord]:
    features = profile.features
    reference_rows = np.full(len(features), profile.n_rows, dtype=np.int64)
    window_rows = np.full(len(features), summary.n_events, dtype=np.int64)
    unusable = summary.missing + summary.type_errors
    checks = [
        (
            "missing_rate",
            features,
            quality.missing_rate(profile.missing, reference_rows, unusable, window_rows),
        ),
        (
            "type_error_rate",
            features,
            quality.type_error_rate(
                np.zeros(len(features), dtype=np.int64),
                reference_rows,
                summary.type_errors,
                window_rows,
            ),
        ),
    ]
    if profile.numeric:
        checks.append(
            (
                "out_of_range_rate",
                profile.numeric,
                quality.out_of_range_rate(
                    profile.numeric_reference, summary.numeric, profile.edges
                ),
            )
        )
    if profile.categorical:
        checks.append(
            (
                "unseen_category_rate",
                profile.categorical,
                quality.unseen_category_rate(profile.categorical_reference, summary.categorical),
            )
        )
    return [
        ResultRecord.of(
            window,
            "data_quality",
            quality.name,
            _gate(result, enough),
            feature=feature,
            metric=metric,
        )
        for metric, names, results in checks
        for feature, result in zip(names, results, strict=True)
    ]


def _prediction_drift(
    profile: Profile,
    summary: WindowSummary,
    window: WindowInfo,
    detectors: DetectorSet,
    enough: bool,
) -> list[ResultRecord]:
    """The data-drift detectors of the prediction's type, on the prediction column."""
    records: list[ResultRecord] = []
    if profile.prediction_reference is not None:
        assert summary.prediction_numeric is not None
        for detector in detectors.numeric:
            results = detector.numeric(
                profile.prediction_reference, summary.prediction_numeric, profile.prediction_edges
            )
            records += _records(
                window, "prediction_drift", detector.name, ("prediction",), results, enough
            )
    elif profile.prediction_categorical_reference is not None:
        assert summary.prediction_categorical is not None
        for detector in detectors.categorical:
            results = detector.categorical(
                profile.prediction_categorical_reference, summary.prediction_categorical
            )
            records += _records(
                window, "prediction_drift", detector.name, ("prediction",), results, enough
            )
    return records


def _records(
    window: WindowInfo,
    kind: str,
    detector: str,
    features: tuple[str, ...],
    results: list[DetectorResult],
    enough: bool,
) -> list[ResultRecord]:
    return [
        ResultRecord.of(window, kind, detector, _gate(result, enough), feature=feature)
        for feature, result in zip(features, results, strict=True)
    ]


def _gate(result: DetectorResult, enough: bool) -> DetectorResult:
    """A window below ``min_samples`` reports its sizes but never a value or a decision."""
    if enough:
        return result
    return not_ok(
        "insufficient_data",
        result.threshold,
        result.direction,
        n_reference=result.n_reference,
        n_window=result.n_window,
    )


def check_quality_settings(model: ModelConfig, path: str) -> None:
    """Validate the metric names, thresholds and concept-drift detector of a model."""
    metrics = PERFORMANCE_METRICS[model.task]
    for metric in model.performance.thresholds:
        if metric not in metrics and not metric.startswith("recall_"):
            raise ConfigError(
                f"unknown {model.task} metric (known: {', '.join(metrics)})",
                f"{path}.performance.thresholds.{metric}",
            )
    for metric in model.fairness.thresholds or {}:
        if metric not in FAIRNESS_METRICS:
            raise ConfigError(
                f"unknown fairness metric (known: {', '.join(FAIRNESS_METRICS)})",
                f"{path}.fairness.thresholds.{metric}",
            )
    detector = build_concept_detector(model.concept_drift, f"{path}.concept_drift")
    if model.task == "regression" and detector.reads != "real":
        raise ConfigError(
            f"{detector.name} reads error bits; a regression model's error stream is its "
            "absolute errors (use adwin or page_hinkley)",
            f"{path}.concept_drift.detector",
        )


def build_concept_detector(config: ConceptDriftConfig, path: str) -> StreamDetector:
    """The streaming detector a model's error stream runs through."""
    cls = CONCEPT_DRIFT_DETECTORS.get(config.detector)
    if cls is None:
        known = ", ".join(sorted(CONCEPT_DRIFT_DETECTORS))
        raise ConfigError(f"unknown detector (known: {known})", f"{path}.detector")
    params = (
        config.params
        if config.params is not None
        else DEFAULT_CONCEPT_DRIFT.get(config.detector, {})
    )
    return _construct(cls, params, f"{path}.params")


def outcome_records(
    profile: Profile,
    config: ModelConfig,
    window: WindowInfo,
    summary: WindowSummary,
    labels: LabelSummary,
) -> list[ResultRecord]:
    """Realized and estimated performance and fairness of one window."""
    task = profile.task
    thresholds = thresholds_for(profile, config, PERFORMANCE_METRICS[task])
    realized = task_performance(
        task,
        labels.performance,
        thresholds,
        min_labeled=config.labels.min_labeled,
        n_window=summary.n_events,
    )
    records = [
        ResultRecord.of(window, "performance", "realized", result, metric=metric)
        for metric, result in realized.items()
    ]
    enough = summary.n_events >= config.window.min_samples
    outcomes = profile.outcomes
    if config.performance.estimated and outcomes.cbpe is not None and summary.scores is not None:
        estimated = CBPE.from_state(outcomes.cbpe).estimate(
            summary.scores,
            {m: t for m, t in thresholds.items() if m in CBPE_METRICS},
            min_samples=config.window.min_samples,
            n_window=summary.n_events,
        )
        records += [
            ResultRecord.of(window, "estimated_performance", "cbpe", result, metric=metric)
            for metric, result in estimated.items()
        ]
    for attribute, selection, labeled in zip(
        profile.groups, summary.selection, labels.fairness, strict=False
    ):
        results = fairness_metrics(
            combine_fairness(selection, labeled),
            config.fairness.thresholds,
            min_group_size=config.fairness.min_group_size,
            n_window=summary.n_events,
        )
        records += [
            ResultRecord.of(
                window,
                "fairness",
                "fairness",
                _gate(result, enough),
                metric=metric,
                group_attribute=attribute,
            )
            for metric, result in results.items()
        ]
    return records


def combine_fairness(selection: FairnessSummary, labeled: FairnessSummary) -> FairnessSummary:
    """Group sizes and selections from the predictions, confusion counts from the labels."""
    groups = tuple(sorted(set(selection.groups) | set(labeled.groups)))
    index = {group: i for i, group in enumerate(groups)}

    def spread(summary: FairnessSummary, name: str) -> np.ndarray:
        out = np.zeros(len(groups), dtype=np.int64)
        out[[index[g] for g in summary.groups]] = getattr(summary, name)
        return out

    return FairnessSummary(
        groups=groups,
        n=spread(selection, "n"),
        selected=spread(selection, "selected"),
        tp=spread(labeled, "tp"),
        fp=spread(labeled, "fp"),
        tn=spread(labeled, "tn"),
        fn=spread(labeled, "fn"),
    )
