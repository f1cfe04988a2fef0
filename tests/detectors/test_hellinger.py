"""Hellinger distance: the definition, the Bhattacharyya form, and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from driftwarden.detectors.hellinger import Hellinger, hellinger_from_counts
from driftwarden.detectors.histogram import coarse_counts

count_rows = (
    st.integers(1, 12)
    .flatmap(
        lambda k: st.tuples(
            arrays(np.int64, k, elements=st.integers(0, 10_000)),
            arrays(np.int64, k, elements=st.integers(0, 10_000)),
        )
    )
    .filter(lambda pair: pair[0].sum() > 0 and pair[1].sum() > 0)
)


def hellinger_by_hand(ref: list[int], win: list[int]) -> float:
    n, m = sum(ref), sum(win)
    return math.sqrt(
        sum((math.sqrt(r / n) - math.sqrt(w / m)) ** 2 for r, w in zip(ref, win, strict=True)) / 2
    )


@settings(max_examples=150, deadline=None)
@given(count_rows)
def test_equals_the_definition_and_the_bhattacharyya_form(pair) -> None:
    ref, win = pair
    value = hellinger_from_counts(ref[None, :], win[None, :])[0]
    assert value == pytest.approx(hellinger_by_hand(ref.tolist(), win.tolist()), abs=1e-12)
    p, q = ref / ref.sum(), win / win.sum()
    bhattacharyya = np.sum(np.sqrt(p * q))
    assert value == pytest.approx(np.sqrt(max(0.0, 1.0 - bhattacharyya)), abs=1e-7)
    assert 0.0 <= value <= 1.0


def test_detectors(categorical_pair, numeric_pair) -> None:
    ref = np.array([[500, 300, 200, 0, 0], [10, 0, 0, 5, 0]])
    win = np.array([[100, 100, 0, 30, 9], [0, 0, 0, 0, 7]])
    results = Hellinger().categorical(*categorical_pair(ref, win))
    assert results[0].value == pytest.approx(hellinger_by_hand(ref[0].tolist(), win[0].tolist()))
    assert results[1].value == 1.0 and results[1].drift  # disjoint supports
    rng = np.random.default_rng(2)
    pair = numeric_pair(rng.normal(size=(1, 20_000)), rng.normal(0.5, size=(1, 2_000)))
    ref_coarse, win_coarse = coarse_counts(pair.ref, pair.win, 10)
    [numeric] = Hellinger().numeric(pair.ref, pair.win, pair.edges)
    assert numeric.value == pytest.approx(
        hellinger_by_hand(ref_coarse[0].tolist(), win_coarse[0].tolist()), abs=1e-12
    )


def test_edge_cases(categorical_pair) -> None:
    results = Hellinger().categorical(
        *categorical_pair([[4, 0, 0], [0, 0, 0]], [[9, 0, 0], [0, 0, 3]])
    )
    assert results[0].value == 0.0 and results[1].status == "insufficient_data"
