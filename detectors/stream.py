"""Shared machinery of the concept-drift detectors: batch in, positions out, state saved exactly.

Every detector in this family reads a stream of error bits (1 = the model was
wrong) or losses, in arrival order, one whole array per call, and answers with
the positions *within that call* at which a warning was raised and at which a
drift was detected (:class:`Detections`). After a drift the detector starts
afresh from the next element, as River's detectors do on their next update.

``state_dict()`` returns plain JSON data (ints, floats, strings, lists; never
NaN or infinity, which JSON cannot carry: infinities are written as the strings
``"inf"`` / ``"-inf"``) holding the hyperparameters and the private state;
``from_state()`` rebuilds a detector that continues exactly where the saved one
stopped, so splitting a stream anywhere and restoring in between gives the same
detections as one pass. Float values round-trip exactly through JSON (Python
writes the shortest repr that reads back to the same double).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np

STATE_VERSION = 1
# Longest piece of a batch scanned at once: after a drift only the rest of the piece is
# scanned again, so frequent drifts in a huge batch cost O(batch x piece), not O(batch^2).
_MAX_SCAN = 4096


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Positions, within one ``update`` call, where a detector warned and where it fired.

    Attributes
    ----------
    warnings : numpy.ndarray
        int64 positions (ascending) of the elements after which the detector was
        in its warning zone — River's ``warning_detected`` after that element
        (every element of a warning zone is listed, not only its onset).
    drifts : numpy.ndarray
        int64 positions (ascending) of the elements that caused a drift; the
        detector restarted from the next element.
    """

    warnings: np.ndarray
    drifts: np.ndarray

    @classmethod
    def none(cls) -> Detections:
        """No warning and no drift."""
        empty = np.empty(0, dtype=np.int64)
        return cls(empty, empty.copy())


def _empty() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def encode_float(value: float) -> float | str:
    """A float as JSON can carry it: infinities become ``"inf"`` / ``"-inf"``."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        raise ValueError("NaN cannot be stored in a detector state")
    return float(value)


def decode_float(value: float | str) -> float:
    """Inverse of :func:`encode_float`."""
    if isinstance(value, str):
        if value not in ("inf", "-inf"):
            raise ValueError(f"expected a number, 'inf' or '-inf', got {value!r}")
        return math.inf if value == "inf" else -math.inf
    return float(value)


def as_stream(values: Any, *, binary: bool = False, unit: bool = False) -> np.ndarray:
    """Validate one batch of a stream and return it as a 1-D float64 array.

    ``binary`` requires every value to be 0 or 1 (booleans allowed); ``unit``
    requires values in ``[0, 1]``. NaN and infinity are always rejected: a
    detector state must never be poisoned by one bad value.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"values must be a 1-D array, got shape {array.shape}")
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.float64)
    if kind not in "iuf":
        raise ValueError(f"values must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if binary:
        # x (x - 1) == 0 holds for 0 and 1 only (NaN and infinities fail it).
        if (array * (array - 1.0) == 0.0).all():
            return array
    elif unit:
        if ((array >= 0.0) & (array <= 1.0)).all():
            return array
    elif np.isfinite(array).all():
        return array
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"values must be finite, got {float(array[bad])!r} at position {bad}")
    if binary:
        bad = int(np.flatnonzero((array != 0.0) & (array != 1.0))[0])
        raise ValueError(f"values must be 0 or 1, got {float(array[bad])!r} at position {bad}")
    bad = int(np.flatnonzero((array < 0.0) | (array > 1.0))[0])
    raise ValueError(f"values must lie in [0, 1], got {float(array[bad])!r} at position {bad}")


def positions(mask: np.ndarray, offset: int) -> np.ndarray:
    """int64 positions of the true entries of ``mask``, shifted by ``offset``."""
    return np.flatnonzero(mask).astype(np.int64) + offset


class StreamDetector(abc.ABC):
    """Base of the concept-drift detectors (River's ``DriftDetector``, batch form).

    Subclasses store every constructor argument as a public attribute of the
    same name (listed in ``_PARAMS``), rebuild their private state in
    ``_reset()`` (which ``_restart()`` calls after a drift, unless a detector
    goes on otherwise), scan a batch in ``_scan()`` and describe their private
    state in ``_get_state()`` / ``_set_state()``.
    """

    name: ClassVar[str]
    _PARAMS: ClassVar[tuple[str, ...]]
    reads: ClassVar[Literal["binary", "unit", "real", "scored"]] = "real"
    """What the stream may hold: error bits, values in [0, 1], any finite losses, or rows of
    (error bit, score) pairs."""

    _drift_detected: bool
    _warning_detected: bool

    def _reset(self) -> None:
        self._drift_detected = False
        self._warning_detected = False

    def _restart(self) -> None:
        """Start again after a drift, before the next element (River's detectors: afresh)."""
        self._reset()

    @property
    def drift_detected(self) -> bool:
        """Whether the last element processed caused a drift (as River's property)."""
        return self._drift_detected

    @property
    def warning_detected(self) -> bool:
        """Whether the detector was in its warning zone after the last element processed."""
        return self._warning_detected

    def _validate(self, values: Any) -> np.ndarray:
        return as_stream(values, binary=self.reads == "binary", unit=self.reads == "unit")

    def update(self, values: Any) -> Detections:
        """Feed a batch of the stream, in arrival order.

        Parameters
        ----------
        values : array_like
            1-D array of the next values of the stream (for ``reads == "scored"``
            an ``(n, 2)`` array of error bits and scores).

        Returns
        -------
        Detections
            Positions within ``values`` of warnings and drifts.
        """
        x = self._validate(values)
        n = x.shape[0]
        if n == 0:
            return Detections.none()
        warnings: list[np.ndarray] = []
        drifts: list[int] = []
        start = 0
        while start < n:
            if self._drift_detected:
                self._restart()
            stop = min(n, start + _MAX_SCAN)
            found_warnings, drift_at = self._scan(x[start:stop])
            if found_warnings.size:
                warnings.append(found_warnings + start)
            if drift_at < 0:
                start = stop
            else:
                drifts.append(start + drift_at)
                start += drift_at + 1
        return Detections(
            warnings=np.concatenate(warnings).astype(np.int64, copy=False)
            if warnings
            else _empty(),
            drifts=np.asarray(drifts, dtype=np.int64),
        )

    @abc.abstractmethod
    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Process ``x`` up to and including its first drift (or to its end).

        Returns the positions (within ``x``) where the warning flag was set, and
        the position of the first drift or -1. On a drift the state is left with
        ``_drift_detected`` set (the caller resets before the next element);
        otherwise the state has absorbed all of ``x``.
        """

    @abc.abstractmethod
    def _get_state(self) -> dict[str, Any]:
        """The private state as JSON data."""

    @abc.abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore the private state written by :meth:`_get_state`."""

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and private state as plain JSON data (see the module docstring)."""
        return {
            "detector": self.name,
            "version": STATE_VERSION,
            "params": {name: getattr(self, name) for name in self._PARAMS},
            "drift_detected": self._drift_detected,
            "warning_detected": self._warning_detected,
            "state": self._get_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state_dict` output; it continues exactly."""
        if state.get("detector") != cls.name:
            raise ValueError(f"state is for detector {state.get('detector')!r}, not {cls.name!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        detector = cls(**state["params"])
        detector._set_state(state["state"])
        detector._drift_detected = bool(state["drift_detected"])
        detector._warning_detected = bool(state["warning_detected"])
        return detector

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._PARAMS)
        return f"{type(self).__name__}({params})"


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``, or a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_open_unit(name: str, value: Any) -> float:
    """``value`` as a float in ``(0, 1)``, or a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0), or a ``ValueError`` naming it."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)
