"""Helpers shared by the model-quality tests (as fixtures: tests/ has no packages)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

Positions = tuple[np.ndarray, np.ndarray]


def _river_positions(detector: Any, values: np.ndarray) -> Positions:
    """Warning and drift positions of a River detector fed element by element."""
    warnings, drifts = [], []
    has_warning = hasattr(detector, "warning_detected")
    for i, value in enumerate(values.tolist()):
        detector.update(value)
        if has_warning and detector.warning_detected:
            warnings.append(i)
        if detector.drift_detected:
            drifts.append(i)
    return np.asarray(warnings, dtype=np.int64), np.asarray(drifts, dtype=np.int64)


def _our_positions(
    detector: Any, values: np.ndarray, batch: int | Sequence[int] = 1000
) -> Positions:
    """Warning and drift positions of one of ours fed in batches (a size or the cut points)."""
    cuts = list(range(batch, values.size, batch)) if isinstance(batch, int) else list(batch)
    warnings, drifts = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    start = 0
    for stop in [*cuts, values.size]:
        found = detector.update(values[start:stop])
        assert found.warnings.dtype == np.int64 and found.drifts.dtype == np.int64
        warnings.append(found.warnings + start)
        drifts.append(found.drifts + start)
        start = stop
    return np.concatenate(warnings), np.concatenate(drifts)


def _restored_positions(
    factory: Callable[[], Any], values: np.ndarray, cuts: Sequence[int]
) -> Positions:
    """Positions when the detector is saved to JSON and rebuilt at every cut point."""
    detector = factory()
    cls = type(detector)
    warnings, drifts = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    start = 0
    for stop in [*sorted(cuts), values.size]:
        found = detector.update(values[start:stop])
        warnings.append(found.warnings + start)
        drifts.append(found.drifts + start)
        start = stop
        state = json.loads(json.dumps(detector.state_dict(), allow_nan=False))
        restored = cls.from_state(state)
        assert restored.drift_detected == detector.drift_detected
        assert restored.state_dict() == detector.state_dict()
        detector = restored
    return np.concatenate(warnings), np.concatenate(drifts)


def _error_stream(seed: int, rates: Sequence[float], length: int) -> np.ndarray:
    """Seeded Bernoulli error bits: equal segments at the given rates."""
    rng = np.random.default_rng(seed)
    p = np.repeat(np.asarray(rates, dtype=np.float64), length // len(rates))
    return (rng.random(p.size) < p).astype(np.int64)


@pytest.fixture
def river_positions() -> Callable[[Any, np.ndarray], Positions]:
    return _river_positions


@pytest.fixture
def our_positions() -> Callable[..., Positions]:
    return _our_positions


@pytest.fixture
def restored_positions() -> Callable[..., Positions]:
    return _restored_positions


@pytest.fixture
def error_stream() -> Callable[..., np.ndarray]:
    return _error_stream
