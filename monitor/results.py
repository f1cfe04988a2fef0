"""Result records: one per (model, window, kind, detector, feature, metric, group attribute)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftwarden.detectors.result import DetectorResult
from driftwarden.monitor.events import format_time, parse_time

KINDS = (
    "data_drift",
    "prediction_drift",
    "data_quality",
    "performance",
    "estimated_performance",
    "fairness",
    "concept_drift",
)

_FIELDS = (
    "model",
    "model_version",
    "reference_id",
    "window_start",
    "window_end",
    "window_index",
    "kind",
    "detector",
    "feature",
    "metric",
    "group_attribute",
    "value",
    "p_value",
    "threshold",
    "direction",
    "drift",
    "status",
    "n_reference",
    "n_window",
    "n_labeled",
    "error_bound",
    "detected_at",
)


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """The window a result belongs to."""

    model: str
    model_version: str | None
    reference_id: str
    index: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """The result-record contract of DESIGN.md; times are epoch milliseconds (UTC)."""

    model: str
    model_version: str | None
    reference_id: str
    window_start: int
    window_end: int
    window_index: int
    kind: str
    detector: str
    feature: str | None
    metric: str | None
    group_attribute: str | None
    value: float | None
    p_value: float | None
    threshold: float | None
    direction: str
    drift: bool
    status: str
    n_reference: int | None
    n_window: int | None
    n_labeled: int | None
    error_bound: float | None = None
    detected_at: int | None = None

    @classmethod
    def of(
        cls,
        window: WindowInfo,
        kind: str,
        detector: str,
        result: DetectorResult,
        *,
        feature: str | None = None,
        metric: str | None = None,
        group_attribute: str | None = None,
        detected_at: int | None = None,
    ) -> ResultRecord:
        """The record of one detector result in ``window``."""
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
        )

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the record: a re-run or a later label replaces, never duplicates."""
        return (
            self.model,
            self.window_index,
            self.kind,
            self.detector,
            self.feature or "",
            self.metric or "",
            self.group_attribute or "",
        )

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object of the contract (RFC 3339 ms ``Z`` times)."""
        record = {name: getattr(self, name) for name in _FIELDS}
        for name in ("window_start", "window_end", "detected_at"):
            if record[name] is not None:
                record[name] = format_time(record[name])
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultRecord:
        """The record of a JSON object written by ``to_json``."""
        values = {name: data.get(name) for name in _FIELDS}
        for name in ("window_start", "window_end", "detected_at"):
            if values[name] is not None:
                values[name] = parse_time(values[name])
        return cls(**values)
