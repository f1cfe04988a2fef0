"""What alerting reads from a result record, and what an alert keeps of it as evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from driftwarden.core.times import format_optional


class Result(Protocol):
    """A result record (DESIGN.md "Results"); times are epoch milliseconds, UTC.

    ``driftwarden.core.records.ResultRecord`` satisfies it.
    """

    @property
    def model(self) -> str: ...
    @property
    def model_version(self) -> str | None: ...
    @property
    def reference_id(self) -> str: ...
    @property
    def window_start(self) -> int: ...
    @property
    def window_end(self) -> int: ...
    @property
    def window_index(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def detector(self) -> str: ...
    @property
    def feature(self) -> str | None: ...
    @property
    def metric(self) -> str | None: ...
    @property
    def group_attribute(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def p_value(self) -> float | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def direction(self) -> str: ...
    @property
    def drift(self) -> bool: ...
    @property
    def status(self) -> str: ...
    @property
    def n_reference(self) -> int | None: ...
    @property
    def n_window(self) -> int | None: ...
    @property
    def n_labeled(self) -> int | None: ...
    @property
    def error_bound(self) -> float | None: ...
    @property
    def detected_at(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Evidence:
    """The last result an alert saw: the value against the threshold the rule applied.

    ``threshold`` and ``direction`` are the rule's when it sets ``above`` or
    ``below``, the detector's otherwise.
    """

    kind: str
    detector: str
    feature: str | None
    metric: str | None
    group_attribute: str | None
    value: float | None
    threshold: float | None
    direction: str
    p_value: float | None
    drift: bool
    window_start: int
    window_end: int
    window_index: int
    model_version: str | None
    reference_id: str
    n_reference: int | None
    n_window: int | None
    n_labeled: int | None
    detected_at: int | None

    @classmethod
    def of(cls, result: Result, threshold: float | None, direction: str) -> Evidence:
        """The evidence of ``result`` judged against ``threshold`` in ``direction``."""
        return cls(
            kind=result.kind,
            detector=result.detector,
            feature=result.feature,
            metric=result.metric,
            group_attribute=result.group_attribute,
            value=result.value,
            threshold=threshold,
            direction=direction,
            p_value=result.p_value,
            drift=result.drift,
            window_start=result.window_start,
            window_end=result.window_end,
            window_index=result.window_index,
            model_version=result.model_version,
            reference_id=result.reference_id,
            n_reference=result.n_reference,
            n_window=result.n_window,
            n_labeled=result.n_labeled,
            detected_at=result.detected_at,
        )

    @property
    def subject(self) -> str:
        """What was measured, for people: the feature, or the metric (and its attribute)."""
        if self.feature is not None:
            return self.feature
        name = self.metric or self.detector
        return f"{name}[{self.group_attribute}]" if self.group_attribute else name

    def to_state(self) -> dict[str, Any]:
        """The evidence as stored in the alert table (times as epoch milliseconds)."""
        return asdict(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Evidence:
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """The evidence as the payload contracts carry it (RFC 3339 times)."""
        data = asdict(self)
        for name in ("window_start", "window_end", "detected_at"):
            data[name] = format_optional(data[name])
        return data
