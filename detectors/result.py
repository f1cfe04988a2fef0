"""The result object every detector returns, one per feature or metric."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "insufficient_data", "undefined"]
Direction = Literal["above", "below"]


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """One detector's verdict on one feature or metric of one window.

    Maps one-to-one onto the result record: ``value``, ``p_value``,
    ``threshold``, ``direction``, ``drift``, ``status``, ``n_reference``,
    ``n_window`` and ``n_labeled`` keep their names there. ``error_bound`` is
    the largest possible difference between ``value`` and the statistic on the
    raw rows when ``value`` was computed from binned summaries (0 when exact).
    ``value`` is ``None`` unless ``status`` is ``"ok"``, and ``drift`` is only
    ever true when ``status`` is ``"ok"``.
    """

    value: float | None
    threshold: float | None
    direction: Direction
    drift: bool
    status: Status = "ok"
    p_value: float | None = None
    n_reference: int | None = None
    n_window: int | None = None
    n_labeled: int | None = None
    error_bound: float | None = None

    def __post_init__(self) -> None:
        if self.status != "ok" and (self.value is not None or self.drift):
            raise ValueError(f"a result with status {self.status!r} carries no value and no drift")
        for name in ("value", "p_value", "threshold", "error_bound"):
            number = getattr(self, name)
            if number is not None and not math.isfinite(number):
                raise ValueError(f"{name} must be finite or None, got {number!r}")


def crossed(value: float, threshold: float, direction: Direction) -> bool:
    """Whether ``value`` is past ``threshold`` in the given direction (ties do not cross)."""
    return value > threshold if direction == "above" else value < threshold


def not_ok(
    status: Status,
    threshold: float | None,
    direction: Direction,
    *,
    n_reference: int | None = None,
    n_window: int | None = None,
    n_labeled: int | None = None,
) -> DetectorResult:
    """A result that carries no value: ``insufficient_data`` or ``undefined``."""
    return DetectorResult(
        value=None,
        threshold=threshold,
        direction=direction,
        drift=False,
        status=status,
        n_reference=n_reference,
        n_window=n_window,
        n_labeled=n_labeled,
    )
