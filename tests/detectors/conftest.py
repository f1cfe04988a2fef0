"""Builders shared by the data-drift detector tests (as fixtures: tests/ has no packages)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
