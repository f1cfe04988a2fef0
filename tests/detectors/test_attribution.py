"""Error attribution: equal to a group-by on the raw rows, merge laws, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from driftwarden.detectors.attribution import ErrorSummary, error_attribution

N_BUCKETS = 6


def rows(seed: int, n: int, regression: bool, shifted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bucket codes (3, n) and per-row losses (NaN = unlabelled, negative code = left out)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, N_BUCKETS, size=(3, n))
    if not shifted:
        codes[1][codes[1] == 4] = 3  # the reference never fills bucket 4 of feature 1
    codes[2, rng.random(n) < 0.05] = -1
    bad = (codes[0] == 2) if shifted else np.zeros(n, dtype=bool)
    if regression:
        loss = rng.exponential(1.0 + 2.0 * bad)
    else:
        loss = (rng.random(n) < 0.1 + 0.3 * bad).astype(np.float64)
    loss[rng.random(n) < 0.2] = np.nan
    return codes, loss


def by_hand(codes: np.ndarray, loss: np.ndarray) -> pl.DataFrame:
    """Labelled rows and summed losses per (feature, bucket), from the raw rows."""
    frames = [
        pl.DataFrame({"feature": f, "bucket": codes[f], "loss": loss})
        for f in range(codes.shape[0])
    ]
    return (
        pl.concat(frames)
        .filter((pl.col("bucket") >= 0) & pl.col("loss").is_not_nan())
        .group_by("feature", "bucket")
        .agg(pl.len().alias("n"), pl.col("loss").sum().alias("errors"))
    )


@pytest.mark.parametrize("regression", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_attribution_equals_a_direct_computation_on_raw_rows(seed: int, regression: bool) -> None:
    ref_codes, ref_loss = rows(seed, 4_000, regression, shifted=False)
    win_codes, win_loss = rows(seed + 100, 1_500, regression, shifted=True)
    ref = ErrorSummary.from_codes(ref_codes, ref_loss, N_BUCKETS)
    win = ErrorSummary.from_codes(win_codes, win_loss, N_BUCKETS)
    result = error_attribution(win, ref, top_k=100)

    reference = {(r["feature"], r["bucket"]): r for r in by_hand(ref_codes, ref_loss).to_dicts()}
    window = {(r["feature"], r["bucket"]): r for r in by_hand(win_codes, win_loss).to_dicts()}
    expected_top = []
    for f in range(3):
        ref_n = sum(r["n"] for key, r in reference.items() if key[0] == f)
        ref_errors = sum(r["errors"] for key, r in reference.items() if key[0] == f)
        overall = ref_errors / ref_n
        excess = {}
        for b in range(N_BUCKETS):
            w = window.get((f, b), {"n": 0, "errors": 0.0})
            r = reference.get((f, b))
            rate = r["errors"] / r["n"] if r else overall
            excess[b] = w["errors"] - w["n"] * rate if w["n"] else 0.0
            assert result.n_window[f, b] == w["n"]
            assert result.n_reference[f, b] == (r["n"] if r else 0)
            assert result.expected_rate[f, b] == pytest.approx(rate, rel=1e-12)
            if w["n"]:
                assert result.window_rate[f, b] == pytest.approx(w["errors"] / w["n"], rel=1e-12)
            else:
                assert math.isnan(result.window_rate[f, b])
            assert math.isnan(result.reference_rate[f, b]) == (r is None)
            assert result.excess[f, b] == pytest.approx(excess[b], rel=1e-9, abs=1e-9)
        positive = sum(max(x, 0.0) for x in excess.values())
        for b in range(N_BUCKETS):
            share = max(excess[b], 0.0) / positive
            assert result.share[f, b] == pytest.approx(share, rel=1e-9, abs=1e-12)
            if excess[b] > 0:
                expected_top.append((-excess[b], f, b))
    assert result.n_reference[1, 4] == 0  # the fallback to the overall rate was exercised
    expected_top.sort()
    assert [(t.feature, t.bucket) for t in result.top] == [(f, b) for _, f, b in expected_top]
    assert result.top[0].feature == 0 and result.top[0].bucket == 2  # the broken bucket
    first = result.top[0]
    assert first.excess == pytest.approx(-expected_top[0][0], rel=1e-9)
    assert first.rate == pytest.approx(result.window_rate[0, 2])
    assert first.share == result.share[0, 2] and first.n == result.n_window[0, 2]


def test_top_k_and_no_excess() -> None:
    codes, loss = rows(5, 2_000, False, shifted=False)
    same = ErrorSummary.from_codes(codes, loss, N_BUCKETS)
    result = error_attribution(same, same, top_k=3)
    np.testing.assert_allclose(result.excess, 0.0, atol=1e-9)
    assert len(result.top) <= 3
    better = ErrorSummary(same.n, np.zeros_like(same.errors))  # no errors at all in the window
    quiet = error_attribution(better, same)
    assert quiet.top == () and np.isnan(quiet.share).all()
    empty_reference = error_attribution(same, ErrorSummary.empty(3, N_BUCKETS))
    assert np.isnan(empty_reference.expected_rate).all() and empty_reference.top == ()


def test_merge_equals_the_concatenation_and_state_round_trips() -> None:
    codes, loss = rows(8, 3_000, True, shifted=True)
    whole = ErrorSummary.from_codes(codes, loss, N_BUCKETS)
    merged = ErrorSummary.empty(3, N_BUCKETS)
    for a, b in [(0, 0), (0, 1), (1, 1_234), (1_234, 3_000)]:
        merged = merged.merge(ErrorSummary.from_codes(codes[:, a:b], loss[a:b], N_BUCKETS))
    np.testing.assert_array_equal(merged.n, whole.n)
    np.testing.assert_allclose(merged.errors, whole.errors, rtol=1e-12)
    restored = ErrorSummary.from_state(json.loads(json.dumps(whole.to_state())))
    np.testing.assert_array_equal(restored.n, whole.n)
    assert restored.errors.tolist() == whole.errors.tolist()
    bits = ErrorSummary.from_codes(codes, ~np.isnan(loss) & (np.nan_to_num(loss) > 1), N_BUCKETS)
    assert bits.n.sum() == 3 * 3_000 - (codes < 0).sum()  # bool errors: every row labelled


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"losses must be >= 0 or NaN, got -1.0 at 1"):
        ErrorSummary.from_codes(np.array([[0, 1]]), [0.0, -1.0], 2)
    with pytest.raises(ValueError, match=r"codes must be below n_buckets=2, got 2 at \(0, 1\)"):
        ErrorSummary.from_codes(np.array([[0, 2]]), [0.0, 1.0], 2)
    with pytest.raises(ValueError, match=r"losses \(n,\)"):
        ErrorSummary.from_codes(np.array([[0, 1]]), [0.0], 2)
    with pytest.raises(ValueError, match="same shape"):
        ErrorSummary.empty(2, 3).merge(ErrorSummary.empty(2, 4))
    with pytest.raises(ValueError, match="one shape"):
        error_attribution(ErrorSummary.empty(2, 3), ErrorSummary.empty(3, 3))
    with pytest.raises(ValueError, match="top_k must be a non-negative integer, got -1"):
        error_attribution(ErrorSummary.empty(2, 3), ErrorSummary.empty(2, 3), top_k=-1)
