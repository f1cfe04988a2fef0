"""PSI: from the definition on the same coarse bins, categorical buckets, smoothing, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftwarden.detectors.histogram import coarse_counts
from driftwarden.detectors.psi import PSI


def psi_by_hand(reference_counts: list[int], window_counts: list[int], epsilon: float) -> float:
    """PSI written plainly: proportions, zero replaced by epsilon, sum of (q - p) ln(q / p)."""
    n, m = sum(reference_counts), sum(window_counts)
    total = 0.0
    for r, w in zip(reference_counts, window_counts, strict=True):
        if r == 0 and w == 0:
            continue
        p = r / n if r else epsilon
        q = w / m if w else epsilon
        total += (q - p) * math.log(q / p)
    return total


@pytest.mark.parametrize("kind", ["normal", "lognormal", "poisson", "few_values", "student_t"])
@pytest.mark.parametrize("shift", [0.0, 0.3, 3.0])
def test_numeric_psi_equals_the_definition_on_the_coarse_bins(
    numeric_pair, draw_column, kind: str, shift: float
) -> None:
    rng = np.random.default_rng(7)
    pair = numeric_pair(
        np.stack([draw_column(kind, rng, 20_000)]),
        np.stack([draw_column(kind, rng, 4_000, shift)]),
    )
    ref_coarse, win_coarse = coarse_counts(pair.ref, pair.win, 10)
    # the coarse bins are exact merges of the fine bins and hold ~10% of the reference each
    assert ref_coarse.sum() == 20_000 and win_coarse.sum() == 4_000
    if kind in ("normal", "lognormal", "student_t"):
        np.testing.assert_allclose(ref_coarse / 20_000, 0.1, atol=0.003)
    [result] = PSI().numeric(pair.ref, pair.win, pair.edges)
    expected = psi_by_hand(ref_coarse[0].tolist(), win_coarse[0].tolist(), 1e-4)
    assert result.value == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert result.error_bound == 0.0 and result.status == "ok" and result.p_value is None
    assert result.drift == (expected > 0.2)


def test_categorical_psi_equals_the_definition_and_padding_adds_nothing(categorical_pair) -> None:
    ref_counts = np.array([[500, 300, 150, 0, 50, 0], [900, 100, 0, 0, 0, 0]])
    win_counts = np.array([[100, 300, 0, 0, 80, 20], [0, 10, 0, 0, 0, 40]])
    results = PSI(epsilon=1e-3).categorical(*categorical_pair(ref_counts, win_counts))
    for f, result in enumerate(results):
        expected = psi_by_hand(ref_counts[f].tolist(), win_counts[f].tolist(), 1e-3)
        assert result.value == pytest.approx(expected, rel=1e-12)
    # wider vocabulary padding (zeros on both sides) leaves every value unchanged
    pad = np.zeros((2, 7), dtype=np.int64)
    wide = PSI(epsilon=1e-3).categorical(
        *categorical_pair(
            np.concatenate([ref_counts[:, :4], pad, ref_counts[:, 4:]], axis=1),
            np.concatenate([win_counts[:, :4], pad, win_counts[:, 4:]], axis=1),
        )
    )
    assert [r.value for r in wide] == [r.value for r in results]


def test_only_unseen_categories_is_finite(categorical_pair) -> None:
    [result] = PSI().categorical(*categorical_pair([[600, 400, 0, 0]], [[0, 0, 0, 25]]))
    expected = psi_by_hand([600, 400, 0, 0], [0, 0, 0, 25], 1e-4)
    assert result.status == "ok" and result.value == pytest.approx(expected) and result.drift


def test_identical_distributions_give_zero(categorical_pair) -> None:
    [result] = PSI().categorical(*categorical_pair([[10, 30, 0, 0]], [[100, 300, 0, 0]]))
    assert result.value == 0.0 and not result.drift


def test_edge_cases(numeric_pair) -> None:
    rng = np.random.default_rng(3)
    reference = np.stack(
        [
            rng.normal(size=1_000),
            np.full(1_000, 4.0),
            np.full(1_000, np.nan),
            rng.normal(size=1_000),
        ]
    )
    window = np.stack([np.full(1, 0.3), np.full(1, 4.0), rng.normal(size=1), np.full(1, np.nan)])
    pair = numeric_pair(reference, window)
    results = PSI().numeric(pair.ref, pair.win, pair.edges)
    assert [r.status for r in results] == ["ok", "ok", "insufficient_data", "insufficient_data"]
    # one row in one coarse group: the nine empty ones dominate (small windows are the
    # monitor's min_samples job)
    assert results[0].value == pytest.approx(
        psi_by_hand([100] * 10, [0] * 4 + [1] + [0] * 5, 1e-4), rel=1e-2
    )
    assert results[1].value == 0.0  # constant feature, window on the constant
    assert [r.n_window for r in results] == [1, 1, 1, 0]
    assert all(r.value is None for r in results[2:])
    # constant window off a constant reference: all mass in the open end group
    pair = numeric_pair(np.full((1, 100), 4.0), np.full((1, 10), 9.0))
    [moved] = PSI().numeric(pair.ref, pair.win, pair.edges)
    assert moved.status == "ok" and moved.value == 0.0  # one group holds everything on both sides


def test_empty_window(numeric_pair) -> None:
    pair = numeric_pair(np.random.default_rng(0).normal(size=(2, 100)), np.empty((2, 0)))
    results = PSI().numeric(pair.ref, pair.win, pair.edges)
    assert [r.status for r in results] == ["insufficient_data"] * 2
    assert all(not r.drift and r.value is None for r in results)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"threshold": -0.1}, "threshold"),
        ({"bins": 1}, "bins"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word) as error:
        PSI(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(error.value)


def test_hyperparameters_are_public_attributes() -> None:
    detector = PSI(threshold=0.1, bins=20, epsilon=1e-3)
    assert (detector.threshold, detector.bins, detector.epsilon) == (0.1, 20, 1e-3)
    assert PSI.name == "psi" and set(PSI.applies_to) == {"numeric", "categorical"}


def test_mismatched_shapes_raise(numeric_pair, categorical_pair) -> None:
    pair = numeric_pair(np.zeros((2, 5)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="shape"):
        PSI().numeric(pair.ref, pair.win, pair.edges[:1])
    with pytest.raises(ValueError, match="shape"):
        PSI().categorical(*categorical_pair([[1, 2, 0, 0]], [[1, 2, 0]]))
