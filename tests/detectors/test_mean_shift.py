"""Standardized mean shift from moments equals numpy on the raw rows; Welch z p-value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.mean_shift import MeanShift


def test_equals_numpy_on_raw_rows(numeric_pair, draw_column) -> None:
    rng = np.random.default_rng(13)
    kinds = ["normal", "lognormal", "poisson", "student_t"]
    reference = np.stack([draw_column(k, rng, 20_000) + 1e6 for k in kinds])
    window = np.stack([draw_column(k, rng, 3_000, shift=0.2) + 1e6 for k in kinds])
    pair = numeric_pair(reference, window)
    for f, result in enumerate(MeanShift().numeric(pair.ref, pair.win, pair.edges)):
        a, b = reference[f], window[f]
        assert result.value == pytest.approx(abs(b.mean() - a.mean()) / a.std(), rel=1e-6)
        z = (b.mean() - a.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-5, abs=1e-300)
        # the z-test agrees with Welch's t-test at these sizes
        welch = stats.ttest_ind(a, b, equal_var=False)
        assert result.p_value == pytest.approx(welch.pvalue, rel=0.05, abs=1e-12)
        assert result.error_bound == 0.0


def test_edge_cases(numeric_pair) -> None:
    rng = np.random.default_rng(3)
    reference = np.stack([rng.normal(size=300), np.full(300, 2.0), rng.normal(size=300)])
    window = np.stack([np.full(1, 0.1), np.full(5, 2.0)[:1], np.full(1, np.nan)])
    pair = numeric_pair(reference, window)
    results = MeanShift().numeric(pair.ref, pair.win, pair.edges)
    # one row: no variance for the test; constant reference: no standard deviation
    assert [r.status for r in results] == ["insufficient_data"] * 3
    window = np.stack([np.array([0.1, 0.3]), np.array([2.0, 3.0]), np.array([np.nan, 1.0])])
    pair = numeric_pair(reference, window)
    results = MeanShift().numeric(pair.ref, pair.win, pair.edges)
    assert [r.status for r in results] == ["ok", "undefined", "insufficient_data"]
    assert results[0].value == pytest.approx(abs(0.2 - reference[0].mean()) / reference[0].std())
