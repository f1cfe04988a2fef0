"""Normed Wasserstein: exact equals scipy; binned within its proven bound; edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.wasserstein import Wasserstein

KINDS = ["normal", "student_t", "pareto", "poisson", "few_values", "tied", "lognormal"]


@pytest.mark.parametrize(("n", "m"), [(2, 1), (30, 7), (3_000, 1_000), (40_000, 9_000)])
def test_exact_equals_scipy(draw_column, n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    reference = np.stack([draw_column(kind, rng, n) for kind in KINDS])
    window = np.stack([draw_column(kind, rng, m, shift=0.1) for kind in KINDS])
    for f, result in enumerate(Wasserstein().exact(reference, window)):
        if reference[f].min() == reference[f].max():
            assert result.status == "undefined"
            continue
        expected = stats.wasserstein_distance(reference[f], window[f]) / reference[f].std()
        assert result.value == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert result.error_bound == 0.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shift", [0.0, 0.2, 5.0])
@pytest.mark.parametrize(("n", "m"), [(50_000, 5_000), (2_000, 300)])
def test_binned_value_is_within_its_bound_of_the_exact_value(
    numeric_pair, draw_column, kind: str, shift: float, n: int, m: int
) -> None:
    rng = np.random.default_rng(21)
    pair = numeric_pair(
        draw_column(kind, rng, n)[None, :], draw_column(kind, rng, m, shift)[None, :]
    )
    [binned] = Wasserstein().numeric(pair.ref, pair.win, pair.edges)
    [exact] = Wasserstein().exact(pair.reference, pair.window)
    assert abs(binned.value - exact.value) <= binned.error_bound + 1e-12


def test_bound_holds_for_merged_panes(numeric_pair) -> None:
    rng = np.random.default_rng(5)
    reference = rng.lognormal(size=(1, 20_000))
    panes = [rng.lognormal(mean=0.1 * i, size=(1, 1_000)) for i in range(6)]
    pair = numeric_pair(reference, panes[0])
    from driftwarden.detectors.histogram import NumericSummary

    merged = NumericSummary.empty(pair.edges, pair.ref.shift)
    for pane in panes:
        merged = merged.merge(NumericSummary.from_columns(pane, pair.edges, pair.ref.shift))
    [binned] = Wasserstein().numeric(pair.ref, merged, pair.edges)
    [exact] = Wasserstein().exact(reference, np.concatenate(panes, axis=1))
    assert abs(binned.value - exact.value) <= binned.error_bound + 1e-12


def test_bound_is_small_for_continuous_and_zero_ish_for_values_on_edges(numeric_pair) -> None:
    rng = np.random.default_rng(6)
    normal = numeric_pair(rng.normal(size=(1, 50_000)), rng.normal(0.3, size=(1, 10_000)))
    [binned] = Wasserstein().numeric(normal.ref, normal.win, normal.edges)
    assert binned.error_bound < 0.03
    values = numeric_pair(
        rng.choice([1.0, 2.0, 5.0, 9.0], p=[0.5, 0.3, 0.15, 0.05], size=(1, 50_000)),
        rng.choice([1.0, 2.0, 5.0, 9.0], p=[0.4, 0.3, 0.2, 0.1], size=(1, 10_000)),
    )
    assert np.isin(values.window, values.edges).all()  # every value sits on an edge
    [binned] = Wasserstein().numeric(values.ref, values.win, values.edges)
    [exact] = Wasserstein().exact(values.reference, values.window)
    assert binned.error_bound < 1e-6
    assert binned.value == pytest.approx(exact.value, abs=1e-6)


def test_a_pure_shift_reads_in_reference_standard_deviations(numeric_pair) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(scale=2.0, size=(1, 20_000))
    pair = numeric_pair(reference, reference + 1.0)
    [exact] = Wasserstein().exact(pair.reference, pair.window)
    assert exact.value == pytest.approx(1.0 / reference.std(), rel=1e-9)
    [binned] = Wasserstein().numeric(pair.ref, pair.win, pair.edges)
    assert abs(binned.value - exact.value) <= binned.error_bound + 1e-12


def test_edge_cases(numeric_pair) -> None:
    rng = np.random.default_rng(3)
    reference = np.stack(
        [rng.normal(size=500), np.full(500, 2.0), np.full(500, np.nan), rng.normal(size=500)]
    )
    window = np.stack([np.full(1, 0.1), np.full(1, 3.0), np.full(1, 1.0), np.full(1, np.nan)])
    pair = numeric_pair(reference, window)
    expected_status = ["ok", "undefined", "insufficient_data", "insufficient_data"]
    for results in (
        Wasserstein().numeric(pair.ref, pair.win, pair.edges),
        Wasserstein().exact(reference, window),
    ):
        assert [r.status for r in results] == expected_status
        assert all(r.value is None and not r.drift for r in results[1:])
    [exact] = Wasserstein().exact(reference[:1], window[:1])
    expected = stats.wasserstein_distance(reference[0], [0.1]) / reference[0].std()
    assert exact.value == pytest.approx(expected, rel=1e-9)
    empty = Wasserstein().exact(reference, np.empty((4, 0)))
    assert [r.status for r in empty] == ["insufficient_data"] * 4


def test_bad_threshold_raises() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Wasserstein(threshold=float("inf"))
