"""Cramér's V equals scipy's association(method="cramer")."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats.contingency import association

from driftwarden.detectors.cramers_v import CramersV


def test_equals_scipy_association(categorical_pair) -> None:
    rng = np.random.default_rng(12)
    ref = rng.integers(0, 500, size=(6, 7))
    win = rng.integers(0, 500, size=(6, 7))
    ref[:, 3] = win[:, 3] = 0  # a padded bucket, dropped from the table
    win[0, :-1] = 0  # only unseen categories in the window
    win[0, -1] = 20
    for f, result in enumerate(CramersV().categorical(*categorical_pair(ref, win))):
        table = np.stack([ref[f], win[f]])
        table = table[:, table.sum(axis=0) > 0]
        assert result.value == pytest.approx(association(table, method="cramer"), rel=1e-9)
        assert result.p_value is None and result.drift == (result.value > 0.1)


def test_edge_cases(categorical_pair) -> None:
    results = CramersV().categorical(
        *categorical_pair([[9, 0, 0], [0, 0, 0]], [[1, 0, 0], [1, 0, 0]])
    )
    assert results[0].value == 0.0 and results[0].status == "ok"
    assert results[1].status == "insufficient_data"
    with pytest.raises(ValueError, match="threshold"):
        CramersV(threshold="0.1")
