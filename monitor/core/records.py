"""The record contract: result records and dead letters, as every part of driftwarden sees them.

A result record is one detector verdict on one window; a dead letter is a
message that could not be used. Their fields are defined here once. The
storage tables, the webhook evidence, ``replay``'s JSON lines and the
field tables of docs/results.md are derived from or checked against these classes, so
adding a field is one edit here plus a database migration.

Field metadata says how a field is stored: ``max_length`` for text that goes
into an indexed or bounded column, ``bits: 32`` for small integers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from driftwarden.core.times import format_optional, parse_time

EventKind = Literal["prediction", "label"]

KINDS = (
    "data_drift",
    "prediction_drift",
    "data_quality",
    "performance",
    "estimated_performance",
    "fairness",
    "concept_drift",
    "multivariate_drift",
    "version_comparison",
    "feature_importance",
    "drift_impact",
    "error_attribution",
    "business_metric",
    "business_correlation",
)
"""The kinds of result record."""

PREDICTION_DISTRIBUTION = "prediction_distribution"
"""The metric of the ``version_comparison`` records of the prediction-drift detectors run
challenger against champion: they say the versions predict differently, not which is
better."""

REASONS = (
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "invalid_timestamp",
    "too_long",
    "non_finite",
    "future_timestamp",
    "too_late",
    "unknown_model",
    "orphan_label",
    "internal_error",
)
"""Why a message became a dead letter; metric label values, so a closed set."""

NAME_LENGTH = 255
"""The longest model name, model version, feature or metric name stored."""


def _text(max_length: int) -> Any:
    return field(metadata={"max_length": max_length})


def _small() -> Any:
    return field(metadata={"bits": 32})


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """The window a result belongs to; times are epoch milliseconds."""

    model: str
    model_version: str | None
    reference_id: str
    index: int
    start: int
    end: int
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One detector verdict on one window; times are epoch milliseconds (UTC).

    ``value`` is ``None`` unless ``status`` is ``ok``; ``drift`` is only ever
    true when it is. ``detected_at`` is set on ``concept_drift`` records only;
    ``champion_version``, ``ci_low`` and ``ci_high`` on ``version_comparison`` ones;
    ``reference_value`` (the reference's own value of the statistic) on
    ``feature_importance`` and ``error_attribution`` ones; ``bucket`` (the feature's range
    or category, as text) on ``error_attribution`` ones.
    ``segment`` (``attribute=value``) names the segment of a model with ``segments`` a
    record measures; it is ``None`` for the whole model.
    """

    model: str = _text(NAME_LENGTH)
    model_version: str | None = _text(NAME_LENGTH)
    reference_id: str = _text(64)
    window_start: int = field()
    window_end: int = field()
    window_index: int = _small()
    kind: str = _text(32)
    detector: str = _text(64)
    feature: str | None = _text(NAME_LENGTH)
    metric: str | None = _text(NAME_LENGTH)
    group_attribute: str | None = _text(NAME_LENGTH)
    value: float | None = field()
    p_value: float | None = field()
    threshold: float | None = field()
    direction: str = _text(8)
    drift: bool = field()
    status: str = _text(32)
    n_reference: int | None = field()
    n_window: int | None = field()
    n_labeled: int | None = field()
    error_bound: float | None = None
    detected_at: int | None = None
    champion_version: str | None = field(default=None, metadata={"max_length": NAME_LENGTH})
    ci_low: float | None = None
    ci_high: float | None = None
    reference_value: float | None = None
    bucket: str | None = field(default=None, metadata={"max_length": NAME_LENGTH})
    segment: str | None = field(default=None, metadata={"max_length": NAME_LENGTH})

    @classmethod
    def of(
        cls,
        window: WindowInfo,
        kind: str,
        detector: str,
        result: Any,
        *,
        feature: str | None = None,
        metric: str | None = None,
        group_attribute: str | None = None,
        detected_at: int | None = None,
        reference_value: float | None = None,
        bucket: str | None = None,
    ) -> ResultRecord:
        """The record of one detector result (a ``DetectorResult``) in ``window``."""
        return cls(
            model=window.model,
            model_version=window.model_version,
            reference_id=window.reference_id,
            window_start=window.start,
            window_end=window.end,
            window_index=window.index,
            kind=kind,
            detector=detector,
            feature=feature,
            metric=metric,
            group_attribute=group_attribute,
            value=result.value,
            p_value=result.p_value,
            threshold=result.threshold,
            direction=result.direction,
            drift=result.drift,
            status=result.status,
            n_reference=result.n_reference,
            n_window=result.n_window,
            n_labeled=result.n_labeled,
            error_bound=result.error_bound,
            detected_at=detected_at,
            reference_value=reference_value,
            bucket=bucket,
            segment=window.segment,
        )

    @property
    def window(self) -> WindowInfo:
        """The window the record belongs to."""
        return WindowInfo(
            self.model,
            self.model_version,
            self.reference_id,
            self.window_index,
            self.window_start,
            self.window_end,
        )

    @property
    def subject(self) -> str:
        """What was measured, for people: the feature, or the metric (and its attribute)."""
        if self.feature is not None:
            return self.feature
        name = self.metric or self.detector
        return f"{name}[{self.group_attribute}]" if self.group_attribute else name

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the record: a re-run or a later label replaces, never duplicates."""
        return tuple("" if (value := getattr(self, name)) is None else value for name in RESULT_KEY)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object of the contract (RFC 3339 ms ``Z`` times)."""
        record = {name: getattr(self, name) for name in RESULT_FIELDS}
        for name in TIME_FIELDS:
            record[name] = format_optional(record[name])
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultRecord:
        """The record of a JSON object written by ``to_json``."""
        values = {name: data.get(name) for name in RESULT_FIELDS}
        for name in TIME_FIELDS:
            if values[name] is not None:
                values[name] = parse_time(values[name])
        return cls(**values)


RESULT_FIELDS = tuple(item.name for item in fields(ResultRecord))
"""The fields of a result record, in the order JSON lines write them."""

RESULT_KEY = (
    "model",
    "window_index",
    "kind",
    "detector",
    "feature",
    "metric",
    "group_attribute",
    "model_version",
    "segment",
)
"""The fields that identify a record (upserts replace by them); ``model_version`` tells
apart the windows of versions monitored separately (``versions.split``), ``segment`` the
records of one segment of a model (``segments``) from the whole model's."""

TIME_FIELDS = ("window_start", "window_end", "detected_at")
"""Fields holding epoch milliseconds, written as RFC 3339 text in JSON."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from: a topic partition and offset, or a file and line."""

    source: str
    partition: int | None
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be used, kept with its bytes, reason and origin."""

    reason: str
    detail: str
    raw: bytes
    origin: Origin
    kind: EventKind
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The dead letter as JSON: reason, detail, origin and the raw bytes (base64)."""
        return {
            "kind": self.kind,
            "reason": self.reason,
            "detail": self.detail,
            "model": self.model,
            "origin": self.origin.as_dict(),
            "raw_base64": base64.b64encode(self.raw).decode(),
        }
