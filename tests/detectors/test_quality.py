"""Data-quality rates: missing, type errors, out of range, unseen categories."""

from __future__ import annotations

import numpy as np
import pytest

from driftwarden.detectors.quality import DataQuality


def test_missing_rate_against_the_reference_rate() -> None:
    results = DataQuality(tolerance=0.05).missing_rate(
        [100, 0, 500, 0], [1_000, 1_000, 1_000, 0], [40, 60, 549, 3], [200, 1_000, 1_000, 10]
    )
    assert [r.value for r in results[:3]] == [0.2, 0.06, 0.549]
    assert [r.threshold for r in results] == pytest.approx([0.15, 0.05, 0.55, 0.05])
    assert [r.drift for r in results] == [True, True, False, False]
    assert results[3].status == "insufficient_data"  # no reference rows
    assert (results[0].n_reference, results[0].n_window) == (1_000, 200)


def test_type_error_rate_and_empty_window() -> None:
    results = DataQuality().type_error_rate([0, 0], [100, 100], [0, 30], [0, 100])
    assert results[0].status == "insufficient_data" and results[1].value == 0.3 and results[1].drift


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (([1], [10], [11], [10]), "exceed"),
        (([1, 2], [10, 10], [1], [10]), "one entry per feature"),
        (([-1], [10], [1], [10]), ">= 0"),
        (([0.5], [10], [1], [10]), "integer"),
    ],
)
def test_bad_counts_raise(args: tuple, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        DataQuality().missing_rate(*args)


def test_out_of_range_rate(numeric_pair) -> None:
    rng = np.random.default_rng(1)
    reference = np.stack([rng.uniform(0, 1, 1_000), rng.uniform(0, 1, 1_000), np.full(1_000, 3.0)])
    window = np.stack(
        [
            np.concatenate([rng.uniform(0, 1, 90), [-1.0] * 5, [2.0] * 5]),
            np.concatenate([rng.uniform(0, 1, 98), [5.0, np.nan]]),
            np.full(100, 4.0),
        ]
    )
    pair = numeric_pair(reference, window)
    results = DataQuality().out_of_range_rate(pair.ref, pair.win, pair.edges)
    assert [r.value for r in results] == pytest.approx([0.1, 1 / 99, 1.0])
    assert [r.threshold for r in results] == [0.05] * 3  # the reference's own rate is 0
    assert [r.drift for r in results] == [True, False, True]
    assert results[1].n_window == 99


def test_unseen_category_rate(categorical_pair) -> None:
    results = DataQuality().unseen_category_rate(
        *categorical_pair([[50, 50, 0, 0], [10, 0, 0, 0]], [[9, 0, 0, 1], [0, 0, 0, 0]])
    )
    assert results[0].value == 0.1 and results[0].drift
    assert results[1].status == "insufficient_data"


def test_tolerance_is_validated() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        DataQuality(tolerance=-0.05)
    assert DataQuality(0.1).tolerance == 0.1
