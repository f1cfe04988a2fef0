"""A closed window's data drift, prediction drift, data quality and multivariate drift: one
call per detector for all features."""

from __future__ import annotations

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors import DataQuality
from driftwarden.detectors.reconstruction import reconstruction_drift
from driftwarden.detectors.result import DetectorResult, not_ok
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.config.detectors import DetectorSet
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary


def evaluate(
    profile: Profile,
    summary: WindowSummary,
    window: WindowInfo,
    config: ModelConfig,
    detectors: DetectorSet,
) -> list[ResultRecord]:
    """All results of one window: data drift, prediction drift, data quality and
    multivariate drift."""
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
    records += prediction_drift(profile, summary, window, detectors, enough)
    records += _quality(profile, summary, window, detectors.quality, enough)
    records += _multivariate(profile, summary, window, config, enough)
    return records


MULTIVARIATE_DETECTOR = "reconstruction_error"
"""The detector name of ``multivariate_drift`` records."""


def _multivariate(
    profile: Profile,
    summary: WindowSummary,
    window: WindowInfo,
    config: ModelConfig,
    enough: bool,
) -> list[ResultRecord]:
    """The window's mean PCA reconstruction error against the reference's band."""
    if profile.multivariate is None or summary.reconstruction is None:
        return []
    errors = summary.reconstruction
    band = profile.multivariate.band(errors.count, config.multivariate_drift.sigmas)
    result = reconstruction_drift(errors, band)
    return [
        ResultRecord.of(window, "multivariate_drift", MULTIVARIATE_DETECTOR, gate(result, enough))
    ]


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
            gate(result, enough),
            feature=feature,
            metric=metric,
        )
        for metric, names, results in checks
        for feature, result in zip(names, results, strict=True)
    ]


def prediction_drift(
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
        ResultRecord.of(window, kind, detector, gate(result, enough), feature=feature)
        for feature, result in zip(features, results, strict=True)
    ]


def gate(result: DetectorResult, enough: bool) -> DetectorResult:
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
