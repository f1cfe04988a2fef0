"""A model's detectors as its configuration names them, built and validated.

Detectors validate their own hyperparameters (a bad one raises ``ValueError``
or ``TypeError`` in the constructor); this module names the key path of the
setting that was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftwarden.detectors import (
    CALIBRATED_CONCEPT_DRIFT,
    CONCEPT_DRIFT_DETECTORS,
    DATA_DRIFT_DETECTORS,
    DATA_QUALITY_DETECTORS,
    DEFAULT_CONCEPT_DRIFT,
    DEFAULT_DATA_DRIFT,
    DEFAULT_DATA_QUALITY,
    FAIRNESS_METRICS,
    PERFORMANCE_METRICS,
    DataQuality,
    StreamDetector,
)
from driftwarden.detectors.loss_cusum import DEFAULT_KNOTS
from driftwarden.detectors.risk_cusum import DEFAULT_BINS, MIN_ROWS_PER_BIN
from driftwarden.monitor.config.sections import ConceptDriftConfig, ModelConfig
from driftwarden.monitor.errors import ConfigError


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
    concept = model.concept_drift
    if concept.detector is None:  # the default fits every task (default_concept_detector)
        if concept.params is not None:
            raise ConfigError(
                "params need a detector: the default one depends on the reference (risk_cusum "
                "for a binary classifier whose reference has scores and labels, else adwin)",
                f"{path}.concept_drift.params",
            )
        return
    detector = build_concept_detector(concept, f"{path}.concept_drift", STAND_IN_REFERENCE)
    if model.task == "regression" and detector.reads != "real":
        raise ConfigError(
            f"{detector.name} reads error bits; a regression model's error stream is its "
            "absolute errors (use adwin, page_hinkley or loss_cusum)",
            f"{path}.concept_drift.detector",
        )
    if model.task != "binary_classification" and detector.reads == "scored":
        raise ConfigError(
            f"{detector.name} reads a binary classifier's errors with their scores; this "
            f"model's task is {model.task} (use cusum)",
            f"{path}.concept_drift.detector",
        )
    if model.task != "regression" and detector.name == "loss_cusum":
        raise ConfigError(
            "loss_cusum reads losses; a classifier's error stream is its error bits (use cusum)",
            f"{path}.concept_drift.detector",
        )


def build_concept_detector(
    config: ConceptDriftConfig, path: str, reference: Mapping[str, Any]
) -> StreamDetector:
    """The streaming detector a model's error stream runs through.

    ``reference`` is what the reference's labelled rows say (``OutcomeProfile.error_reference``):
    a calibrated detector (``cusum``, ``risk_cusum``, ``loss_cusum``) takes its
    ``reference_rate``, ``reference_bins`` or ``reference_quantiles`` from it unless its
    params set them, and a model that names no detector gets
    :func:`default_concept_detector`'s.
    """
    name = config.detector or default_concept_detector(reference)
    cls = CONCEPT_DRIFT_DETECTORS.get(name)
    if cls is None:
        known = ", ".join(sorted(CONCEPT_DRIFT_DETECTORS))
        raise ConfigError(f"unknown detector (known: {known})", f"{path}.detector")
    params = dict(
        config.params if config.params is not None else DEFAULT_CONCEPT_DRIFT.get(name, {})
    )
    setting = CALIBRATED_CONCEPT_DRIFT.get(name)
    if setting is not None and setting not in params:
        if setting not in reference:
            raise ConfigError(
                f"{name} is calibrated on the reference's errors: the reference "
                f"needs a label column with labelled rows (at least {DEFAULT_KNOTS} for "
                f"loss_cusum, {DEFAULT_BINS * MIN_ROWS_PER_BIN} with scores not all equal "
                f"for risk_cusum), or set params.{setting}",
                f"{path}.detector",
            )
        params[setting] = reference[setting]
    return _construct(cls, params, f"{path}.params")


def default_concept_detector(reference: Mapping[str, Any]) -> str:
    """The detector of a model that names none: ``risk_cusum`` where the reference's labelled
    rows give error rates per band of scores (binary classifiers, 1,000 rows on), ``adwin``
    elsewhere (see docs/detectors.md)."""
    return "risk_cusum" if "reference_bins" in reference else "adwin"


STAND_IN_REFERENCE: dict[str, Any] = {
    "reference_rate": 0.1,
    "reference_quantiles": [float(i) for i in range(DEFAULT_KNOTS)],
    "reference_bins": {"edges": [0.5], "rates": [0.1, 0.1], "shares": [0.5, 0.5]},
}
"""A reference to check a calibrated detector's other settings before any profile exists."""
