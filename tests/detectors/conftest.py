"""Builders shared by the detector tests: binned summaries of drawn columns, and the
positions River's and our streaming detectors report (as fixtures)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from driftwarden.detectors.histogram import (
    CategoricalSummary,
    NumericSummary,
    pad_edges,
    quantile_edges,
)


@dataclass(frozen=True)
class NumericPair:
    """Raw columns, the edges fitted on the reference, and both summaries."""

    reference: np.ndarray
    window: np.ndarray
    edges: np.ndarray
    ref: NumericSummary
    win: NumericSummary


def build_numeric(reference: np.ndarray, window: np.ndarray, n_bins: int = 500) -> NumericPair:
    """Fit edges on ``reference`` (F, n) and summarize both sides (NaN = missing)."""
    reference = np.asarray(reference, dtype=np.float64)
    window = np.asarray(window, dtype=np.float64)
    edges = pad_edges([quantile_edges(column, n_bins) for column in reference])
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(reference)).sum(axis=1)
        shift = np.where(counts > 0, np.nansum(reference, axis=1) / np.maximum(counts, 1), 0.0)
    return NumericPair(
        reference=reference,
        window=window,
        edges=edges,
        ref=NumericSummary.from_columns(reference, edges, shift),
        win=NumericSummary.from_columns(window, edges, shift),
    )


def build_categorical(
    reference_counts: np.ndarray, window_counts: np.ndarray
) -> tuple[CategoricalSummary, CategoricalSummary]:
    """Summaries straight from ``(F, V + 2)`` count arrays."""
    return (
        CategoricalSummary(np.asarray(reference_counts, dtype=np.int64)),
        CategoricalSummary(np.asarray(window_counts, dtype=np.int64)),
    )


@pytest.fixture
def numeric_pair() -> Callable[..., NumericPair]:
    return build_numeric


@pytest.fixture
def categorical_pair() -> Callable[..., tuple[CategoricalSummary, CategoricalSummary]]:
    return build_categorical


def draw(kind: str, rng: np.random.Generator, size: int, shift: float = 0.0) -> np.ndarray:
    """One column of a named distribution, optionally shifted (in its own units)."""
    if kind == "normal":
        values = rng.normal(size=size)
    elif kind == "lognormal":
        values = rng.lognormal(sigma=1.0, size=size)
    elif kind == "student_t":
        values = rng.standard_t(1.5, size=size)
    elif kind == "pareto":
        values = rng.pareto(1.5, size=size)
    elif kind == "poisson":
        values = rng.poisson(3.0, size=size).astype(np.float64)
    elif kind == "few_values":
        values = rng.choice([1.0, 2.0, 5.0], p=[0.7, 0.2, 0.1], size=size)
    elif kind == "tied":
        values = np.round(rng.normal(size=size), 1)
    else:
        raise ValueError(kind)
    return values + shift


@pytest.fixture
def draw_column() -> Callable[..., np.ndarray]:
    return draw


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
