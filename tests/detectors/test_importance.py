"""Importance: mutual information against scikit-learn, merge laws, attributions, changes."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mutual_info_score

from driftwarden.detectors import importance
from driftwarden.detectors.importance import (
    AttributionSummary,
    ImportanceSummary,
    categorical_bucket_codes,
    compare_importances,
    mutual_information,
    numeric_bucket_codes,
    quantile_bucket_edges,
)


def dataset(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Bucket codes of 3 numeric and 2 categorical features and a prediction bucket per row.

    The prediction depends on two of the features; some values and some
    predictions are missing (negative codes: left out).
    """
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(3, rows))
    numeric[1, rng.random(rows) < 0.05] = np.nan
    categories = rng.integers(-1, 6, size=(2, rows))  # -1 missing, 4 rare, 5 unseen (V = 4)
    score = 1 / (1 + np.exp(-(1.5 * np.nan_to_num(numeric[0]) + 0.3 * categories[1])))
    n_pred = int(rng.integers(2, 12))
    prediction = np.minimum((score * n_pred).astype(np.int64), n_pred - 1)
    prediction[rng.random(rows) < 0.02] = -1
    edges = quantile_bucket_edges(numeric, int(rng.integers(2, 11)))
    numeric_codes = numeric_bucket_codes(numeric, edges)  # K + 2 buckets
    categorical_codes = categorical_bucket_codes(categories, 4)  # V + 3 = 7 buckets
    categorical_codes[0, rng.random(rows) < 0.01] = -1  # values left out on purpose
    width = max(edges.shape[1] + 2, 7)
    return np.vstack([numeric_codes, categorical_codes]), prediction, width, n_pred


@pytest.mark.parametrize("seed", range(6))
def test_mutual_information_equals_scikit_learn_on_the_bucketed_rows(seed: int) -> None:
    rows = [50, 400, 3_000, 20_000, 7, 1_000][seed]
    codes, prediction, width, n_pred = dataset(seed, rows)
    summary = ImportanceSummary.from_codes(codes, prediction, width, n_pred)
    ours = mutual_information(summary.counts)
    for f in range(codes.shape[0]):
        keep = (codes[f] >= 0) & (prediction >= 0)
        expected = mutual_info_score(codes[f][keep], prediction[keep])
        assert ours[f] == pytest.approx(expected, rel=1e-10, abs=1e-14)
        assert summary.n[f] == keep.sum()


@pytest.mark.parametrize("pair_cells", [0, 10**9])
@pytest.mark.parametrize("negatives", [False, True])
@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_joint_counts_equal_a_plain_count_whether_features_share_cells_or_not(
    monkeypatch: pytest.MonkeyPatch, pair_cells: int, negatives: bool, n_features: int
) -> None:
    monkeypatch.setattr(importance, "PAIR_CELLS", pair_cells)
    rng = np.random.default_rng(n_features)
    codes = rng.integers(-1 if negatives else 0, 200, size=(n_features, 500)).astype(np.int16)
    prediction = rng.integers(-1 if negatives else 0, 3, size=500)
    summary = ImportanceSummary.from_codes(codes, prediction, 200, 3)
    expected = np.zeros((n_features, 200, 3), dtype=np.int64)
    for f in range(n_features):
        for code, pred in zip(codes[f].tolist(), prediction.tolist(), strict=True):
            if code >= 0 and pred >= 0:
                expected[f, code, pred] += 1
    np.testing.assert_array_equal(summary.counts, expected)
    assert summary.counts.dtype == np.int64 and summary.counts.flags.c_contiguous
    if not negatives:  # any integer dtype counts the same
        for dtype in (np.uint8, np.int64, np.uint64):
            other = ImportanceSummary.from_codes(
                codes.astype(np.int64).clip(0, 199).astype(dtype), prediction.astype(dtype), 200, 3
            )
            np.testing.assert_array_equal(other.counts, expected)


def test_mutual_information_edge_cases() -> None:
    counts = np.zeros((4, 3, 2), dtype=np.int64)
    counts[1, 0] = [5, 7]  # one feature bucket only: 0
    counts[2, :, 1] = [1, 2, 3]  # one prediction bucket only: 0
    counts[3] = [[4, 0], [0, 4], [0, 0]]  # perfect dependence: ln 2
    mi = mutual_information(counts)
    assert math.isnan(mi[0])
    assert mi[1] == 0.0 and mi[2] == 0.0
    assert mi[3] == pytest.approx(math.log(2.0), rel=1e-15)
    # padding with empty buckets on either axis changes nothing
    padded = np.zeros((4, 6, 5), dtype=np.int64)
    padded[:, :3, :2] = counts
    np.testing.assert_array_equal(mutual_information(padded), mi)


def test_miller_madow_subtracts_the_entropy_corrections() -> None:
    codes, prediction, width, n_pred = dataset(3, 800)
    summary = ImportanceSummary.from_codes(codes, prediction, width, n_pred)
    corrected = mutual_information(summary.counts, "miller-madow")
    for f, c in enumerate(summary.counts):
        n = c.sum()

        def entropy(counts: np.ndarray, n: int = n) -> float:
            p = counts[counts > 0] / n
            return float(-(p * np.log(p)).sum() + (p.size - 1) / (2 * n))

        expected = entropy(c.sum(axis=1)) + entropy(c.sum(axis=0)) - entropy(c.ravel())
        assert corrected[f] == pytest.approx(max(expected, 0.0), rel=1e-10, abs=1e-14)


def test_merge_equals_the_counts_of_the_concatenation() -> None:
    codes, prediction, width, n_pred = dataset(4, 5_000)
    whole = ImportanceSummary.from_codes(codes, prediction, width, n_pred)
    cuts = [0, 1, 1_700, 1_700, 5_000]  # includes an empty part
    parts = [
        ImportanceSummary.from_codes(codes[:, a:b], prediction[a:b], width, n_pred)
        for a, b in itertools.pairwise(cuts)
    ]
    merged = ImportanceSummary.empty(codes.shape[0], width, n_pred)
    for part in parts:
        merged = merged.merge(part)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.counts.dtype == np.int64
    restored = ImportanceSummary.from_state(json.loads(json.dumps(whole.to_state())))
    np.testing.assert_array_equal(restored.counts, whole.counts)
    with pytest.raises(ValueError, match="same shape"):
        whole.merge(ImportanceSummary.empty(codes.shape[0], width + 1, n_pred))


@pytest.mark.parametrize("n_buckets", [2, 10, 100])  # 100: 99 edges, binary search
def test_bucket_codes_equal_a_plain_search(n_buckets: int) -> None:
    rng = np.random.default_rng(12)
    values = np.round(rng.normal(size=(2, 300)), 1)
    values[0, ::17] = np.nan
    values[1, :3] = [np.inf, -np.inf, 99.0]
    edges = quantile_bucket_edges(values, n_buckets)
    edges[1, -1] = np.inf  # padding
    codes = numeric_bucket_codes(values, edges)
    assert codes.dtype == np.int8  # up to 125 edges
    for f in range(2):
        row = edges[f].tolist()
        for value, code in zip(values[f].tolist(), codes[f].tolist(), strict=True):
            expected = len(row) + 1 if math.isnan(value) else bisect.bisect_right(row, value)
            assert code == expected
    # deciles hold about a tenth of continuous values each
    smooth = rng.normal(size=(1, 10_000))
    share = np.bincount(numeric_bucket_codes(smooth, quantile_bucket_edges(smooth))[0]) / 10_000
    np.testing.assert_allclose(share, 0.1, atol=1e-3)
    # a feature without reference values puts everything in bucket 0
    empty_edges = quantile_bucket_edges(np.full((1, 5), np.nan), 4)
    assert np.isinf(empty_edges).all() and empty_edges.shape == (1, 3)
    assert numeric_bucket_codes(np.array([[1.0, np.nan]]), empty_edges).tolist() == [[0, 4]]
    assert categorical_bucket_codes(np.array([[-1, 0, 4, 5]]), 4).tolist() == [[6, 0, 4, 5]]


def test_from_codes_validates() -> None:
    with pytest.raises(ValueError, match=r"codes must be below n_buckets=3, got 3 at \(1, 2\)"):
        ImportanceSummary.from_codes(np.array([[0, 1, 2], [0, 0, 3]]), [0, 1, 0], 3, 2)
    with pytest.raises(ValueError, match="predictions must be below n_buckets=2, got 5"):
        ImportanceSummary.from_codes(np.array([[0, 1, 2]]), [0, 5, 0], 3, 2)
    with pytest.raises(ValueError, match=r"predictions \(n,\)"):
        ImportanceSummary.from_codes(np.array([[0, 1, 2]]), [0, 1], 3, 2)
    with pytest.raises(ValueError, match="n_prediction_buckets must be an integer >= 1, got 0"):
        ImportanceSummary.from_codes(np.array([[0]]), [0], 3, 0)
    with pytest.raises(ValueError, match=re.escape("codes must be below V + 2 = 6, got 200")):
        categorical_bucket_codes(np.array([[0, 200]]), 4)
    with pytest.raises(ValueError, match="codes must be integers, got dtype float64"):
        ImportanceSummary.from_codes(np.array([[0.0, 1.0]]), [0, 1], 3, 2)
    with pytest.raises(ValueError, match="correction must be"):
        mutual_information(np.zeros((1, 2, 2)), "bias")
    with pytest.raises(ValueError, match="n_buckets must be an integer >= 1, got 0"):
        quantile_bucket_edges(np.zeros((1, 3)), 0)


def test_attribution_summary_means_and_merge() -> None:
    rng = np.random.default_rng(21)
    phi = rng.normal(scale=[[1.0], [0.1], [3.0]], size=(3, 2_000))
    phi[1, rng.random(2_000) < 0.3] = np.nan
    phi[2] = np.nan  # a feature never attributed
    whole = AttributionSummary.from_values(phi)
    present = ~np.isnan(phi)
    assert whole.count.tolist() == present.sum(axis=1).tolist()
    np.testing.assert_allclose(
        whole.mean_abs[:2], [np.abs(phi[f][present[f]]).mean() for f in range(2)], rtol=1e-12
    )
    assert math.isnan(whole.mean_abs[2])
    merged = AttributionSummary.empty(3)
    for part in np.array_split(phi, [5, 900], axis=1):
        merged = merged.merge(AttributionSummary.from_values(part))
    assert merged.count.tolist() == whole.count.tolist()
    np.testing.assert_allclose(merged.abs_sum, whole.abs_sum, rtol=1e-12)
    restored = AttributionSummary.from_state(json.loads(json.dumps(whole.to_state())))
    assert restored.count.tolist() == whole.count.tolist()
    assert restored.abs_sum.tolist() == whole.abs_sum.tolist()
    with pytest.raises(ValueError, match="infinite"):
        AttributionSummary.from_values(np.array([[np.inf]]))
    with pytest.raises(ValueError, match="same features"):
        whole.merge(AttributionSummary.empty(2))


def test_compare_importances_needs_both_thresholds() -> None:
    reference = np.array([0.40, 0.40, 0.010, 0.000, 0.030, 0.10])
    window = np.array([0.15, 0.55, 0.040, 0.025, 0.030, np.nan])
    changes = compare_importances(window, reference)
    #          -0.25 (62 %), +0.15 (38 %), +0.03 (300 %), +0.025 from 0, none, NaN
    assert [c.drift for c in changes] == [True, False, True, True, False, False]
    assert [c.direction for c in changes] == [
        "decrease",
        "increase",
        "increase",
        "increase",
        None,
        None,
    ]
    first = changes[0]
    assert first.value == 0.15 and first.reference == 0.40
    assert first.change == pytest.approx(-0.25) and first.relative_change == pytest.approx(-0.625)
    assert (first.relative_threshold, first.absolute_threshold) == (0.5, 0.02)
    assert changes[3].relative_change is None  # from 0: infinitely relative
    assert changes[5].status == "undefined" and changes[5].value is None
    # relative alone or absolute alone is not enough
    [small] = compare_importances(np.array([0.003]), np.array([0.001]))  # +200 %, 0.002 nats
    [big] = compare_importances(np.array([1.3]), np.array([1.0]))  # 0.3 nats, +30 %
    assert not small.drift and not big.drift
    # a tie does not cross
    [tie] = compare_importances(np.array([0.07]), np.array([0.05]), relative_threshold=0.0)
    assert tie.change == pytest.approx(0.02) and tie.drift == (0.07 - 0.05 > 0.02)


def test_compare_importances_statuses_and_validation() -> None:
    changes = compare_importances(
        np.array([0.5, 0.5]),
        np.array([0.1, 0.1]),
        n_window=np.array([1_999, 2_000]),
        n_reference=np.array([50_000, 50_000]),
    )
    assert [c.status for c in changes] == ["insufficient_data", "ok"]
    assert changes[0].value is None and not changes[0].drift
    assert (changes[1].n_window, changes[1].n_reference) == (2_000, 50_000)
    assert compare_importances(np.array([0.5]), np.array([0.1]), n_window=[10], min_rows=10)[
        0
    ].drift
    with pytest.raises(ValueError, match="relative_threshold must be a finite number >= 0, got -1"):
        compare_importances(np.zeros(1), np.zeros(1), relative_threshold=-1)
    with pytest.raises(ValueError, match=re.escape("importances must be >= 0 or NaN, got -0.5")):
        compare_importances(np.array([-0.5]), np.zeros(1))
    with pytest.raises(ValueError, match="vectors of one length"):
        compare_importances(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"n_window must have shape \(2,\)"):
        compare_importances(np.zeros(2), np.zeros(2), n_window=[1])


@pytest.mark.parametrize("seed", range(20))
def test_rank_correlation_equals_scipys_spearman_with_ties_and_missing_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = rng.integers(0, 4, 15).astype(float)  # many ties
    reference = np.round(rng.normal(size=15), 1)
    window[rng.random(15) < 0.2] = np.nan
    both = ~np.isnan(window)
    expected = stats.spearmanr(window[both], reference[both]).statistic
    assert importance.rank_correlation(window, reference) == pytest.approx(
        expected, rel=1e-12, abs=1e-12
    )


def test_rank_correlation_is_none_without_two_rankable_features() -> None:
    assert importance.rank_correlation(np.array([0.1, np.nan]), np.array([0.2, 0.3])) is None
    assert importance.rank_correlation(np.array([0.1, 0.1, 0.1]), np.array([0.2, 0.3, 0.4])) is None
    with pytest.raises(ValueError, match="vectors of one length"):
        importance.rank_correlation(np.zeros(2), np.zeros(3))
