"""PCA reconstruction error: scikit-learn's numbers, mergeable summaries, correlation drift."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from driftwarden.detectors.reconstruction import (
    ErrorBand,
    ErrorSummary,
    ReconstructionModel,
    error_edges,
    reconstruction_drift,
    reference_band,
)


def mixed_data(seed: int, n: int, unseen: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Four correlated numeric features (5 % missing) and two categorical ones (-1 missing)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(2, n))
    numeric = np.stack(
        [
            base[0],
            0.8 * base[0] + 0.6 * rng.normal(size=n),
            3.0 + 2.0 * base[1],
            rng.lognormal(size=n) + base[1],
        ]
    )
    numeric[rng.random(numeric.shape) < 0.05] = np.nan
    first = np.clip(np.round(base[0] + 2 + 0.5 * rng.normal(size=n)), 0, 4).astype(np.int64)
    second = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    codes = np.stack([first, second])
    codes[rng.random(codes.shape) < 0.03] = -1
    if unseen:
        codes[0, :50] = 7
    return numeric, codes


def sklearn_errors(reference, analysis, variance: float) -> tuple[np.ndarray, int]:
    """NannyML's recipe written with scikit-learn: impute, frequency-encode, scale, PCA."""
    ref_num, ref_codes = reference
    num, codes = analysis
    mean_imputer = SimpleImputer(strategy="mean").fit(ref_num.T)
    mode_imputer = SimpleImputer(missing_values=-1, strategy="most_frequent").fit(ref_codes.T)
    ref_cat = mode_imputer.transform(ref_codes.T).astype(int)
    cat = mode_imputer.transform(codes.T).astype(int)
    frequency_columns = []
    for column in range(ref_cat.shape[1]):
        values, counts = np.unique(ref_cat[:, column], return_counts=True)
        share = dict(zip(values.tolist(), (counts / ref_cat.shape[0]).tolist(), strict=True))
        frequency_columns.append(share)

    def encode(numeric_rows, code_rows):
        encoded = [
            [share.get(v, 0.0) for v in code_rows[:, c]]
            for c, share in enumerate(frequency_columns)
        ]
        return np.hstack([numeric_rows, np.asarray(encoded).T])

    x_ref = encode(mean_imputer.transform(ref_num.T), ref_cat)
    x = encode(mean_imputer.transform(num.T), cat)
    scaler = StandardScaler().fit(x_ref)
    pca = PCA(n_components=variance, random_state=16).fit(scaler.transform(x_ref))
    z = scaler.transform(x)
    return np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1), pca.n_components_


@pytest.mark.parametrize("variance", [0.65, 0.3, 0.9])
def test_errors_equal_scikit_learn(variance) -> None:
    reference = mixed_data(0, 20_000)
    analysis = mixed_data(1, 5_000, unseen=True)
    model = ReconstructionModel.fit(*reference, variance=variance)
    expected, n_components = sklearn_errors(reference, analysis, variance)
    np.testing.assert_allclose(model.errors(*analysis), expected, rtol=1e-9, atol=1e-12)
    assert model.components.shape == (n_components, 6)


def test_numeric_only_and_categorical_only_models() -> None:
    numeric, codes = mixed_data(2, 4_000)
    complete = np.nan_to_num(numeric, nan=0.0)
    model = ReconstructionModel.fit(complete)
    scaler = StandardScaler().fit(complete.T)
    pca = PCA(n_components=0.65).fit(scaler.transform(complete.T))
    z = scaler.transform(complete.T)
    expected = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)
    np.testing.assert_allclose(model.errors(complete), expected, rtol=1e-9, atol=1e-12)
    only_codes = ReconstructionModel.fit(codes=codes)
    assert only_codes.errors(codes=codes).shape == (4_000,)


def test_model_state_round_trips_through_json() -> None:
    reference = mixed_data(3, 5_000)
    model = ReconstructionModel.fit(*reference)
    state = json.loads(json.dumps(model.to_state(), allow_nan=False))
    restored = ReconstructionModel.from_state(state)
    analysis = mixed_data(4, 1_000, unseen=True)
    np.testing.assert_array_equal(restored.errors(*analysis), model.errors(*analysis))
    numeric_only = ReconstructionModel.fit(np.nan_to_num(reference[0]))
    again = ReconstructionModel.from_state(json.loads(json.dumps(numeric_only.to_state())))
    np.testing.assert_array_equal(
        again.errors(np.nan_to_num(analysis[0])), numeric_only.errors(np.nan_to_num(analysis[0]))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"numeric": np.zeros((1, 10))}, "at least 2 features"),
        ({"numeric": np.zeros(10)}, "shape"),
        ({"numeric": np.full((2, 10), np.nan)}, "no value"),
        ({"numeric": np.array([[1.0, np.inf], [0.0, 1.0]])}, "finite"),
        ({"codes": np.zeros((2, 5)) + 0.5}, "integers"),
        ({"numeric": np.zeros((2, 5)), "codes": np.zeros((1, 6), dtype=int)}, "rows"),
        ({"numeric": np.zeros((2, 5)), "variance": 1.0}, "variance.*1.0"),
        ({}, "give numeric"),
    ],
)
def test_bad_inputs_are_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ReconstructionModel.fit(**kwargs)


def test_errors_refuse_other_features() -> None:
    model = ReconstructionModel.fit(*mixed_data(5, 1_000))
    with pytest.raises(ValueError, match="expected 4 numeric and 2 categorical"):
        model.errors(np.zeros((3, 10)), np.zeros((2, 10), dtype=int))


# --- summaries -------------------------------------------------------------------------------


def test_merged_summaries_equal_the_summary_of_the_concatenation() -> None:
    rng = np.random.default_rng(6)
    reference = rng.gamma(2.0, size=10_000)
    edges = error_edges(reference)
    parts = [rng.gamma(2.0, size=n) * 1.2 for n in (0, 1, 333, 5_000, 17)]
    merged = ErrorSummary.empty(edges)
    for part in parts:
        merged = merged.merge(ErrorSummary.from_errors(part, edges))
    whole = ErrorSummary.from_errors(np.concatenate(parts), edges)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.count == whole.count == 5_351
    assert merged.total == pytest.approx(whole.total, rel=1e-13)
    assert merged.total_sq == pytest.approx(whole.total_sq, rel=1e-13)
    assert merged.mean == pytest.approx(np.concatenate(parts).mean(), rel=1e-13)
    assert merged.std == pytest.approx(np.concatenate(parts).std(ddof=1), rel=1e-9)
    # Open-ended: errors below and above the reference range land in the outer bins.
    outside = ErrorSummary.from_errors(np.array([-1.0, 1e9]), edges)
    assert outside.counts[0] == 1 and outside.counts[-1] == 1
    state = json.loads(json.dumps(merged.to_state(), allow_nan=False))
    restored = ErrorSummary.from_state(state)
    np.testing.assert_array_equal(restored.counts, merged.counts)
    assert (restored.count, restored.total, restored.total_sq) == (
        merged.count,
        merged.total,
        merged.total_sq,
    )
    with pytest.raises(ValueError, match="same edges"):
        merged.merge(ErrorSummary.empty(edges[:-1]))


def test_band_is_mean_plus_minus_three_population_std_of_chunk_means() -> None:
    rng = np.random.default_rng(7)
    errors = rng.gamma(4.0, size=10_250)
    band = reference_band(errors, 500)
    means = errors[:10_000].reshape(20, 500).mean(axis=1)
    assert band.n_chunks == 20 and band.chunk_size == 500
    assert band.center == pytest.approx(means.mean())
    assert band.upper == pytest.approx(means.mean() + 3 * np.std(means))
    assert band.lower == pytest.approx(means.mean() - 3 * np.std(means))
    with pytest.raises(ValueError, match="chunk_size=600"):
        reference_band(errors[:1000], 600)
    with pytest.raises(ValueError, match="sigmas"):
        reference_band(errors, 500, sigmas=0)


def test_results_need_enough_rows_and_face_the_nearest_edge() -> None:
    band = ErrorBand(center=1.0, spread=0.1, lower=0.7, upper=1.3, chunk_size=100, n_chunks=50)
    edges = np.array([1.0])
    few = reconstruction_drift(ErrorSummary.from_errors(np.full(99, 5.0), edges), band)
    assert few.status == "insufficient_data" and few.value is None and not few.drift
    low = reconstruction_drift(ErrorSummary.from_errors(np.full(100, 0.5), edges), band)
    assert (low.value, low.threshold, low.direction, low.drift) == (0.5, 0.7, "below", True)
    inside = reconstruction_drift(ErrorSummary.from_errors(np.full(10, 1.1), edges), band, 10)
    assert (inside.threshold, inside.direction, inside.drift) == (1.3, "above", False)
    no_floor = ErrorBand(center=0.2, spread=0.1, lower=None, upper=0.5, chunk_size=1, n_chunks=9)
    below = reconstruction_drift(ErrorSummary.from_errors(np.array([0.0]), edges), no_floor)
    assert below.threshold is None and not below.drift


# --- drift in the joint distribution -----------------------------------------------------------


def correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Three features: a standard-normal pair with correlation ``rho``, and independent noise."""
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return np.stack([x, y, rng.normal(size=n)])


def window_results(model, band, rows: np.ndarray, size: int) -> list:
    errors = model.errors(rows)
    edges = error_edges(model.errors(rows[:, :size]))
    return [
        reconstruction_drift(ErrorSummary.from_errors(errors[i : i + size], edges), band)
        for i in range(0, errors.size, size)
    ]


def test_a_correlation_flip_with_unchanged_marginals_is_flagged() -> None:
    rng = np.random.default_rng(8)
    reference = correlated(rng, 50_000, 0.8)
    model = ReconstructionModel.fit(reference)
    band = reference_band(model.errors(reference), 1_000)
    before, after = correlated(rng, 10_000, 0.8), correlated(rng, 10_000, -0.8)
    # The marginals stay standard normal: every feature's mean and spread unchanged.
    np.testing.assert_allclose(after.mean(axis=1), 0.0, atol=0.05)
    np.testing.assert_allclose(after.std(axis=1), 1.0, atol=0.05)
    results = window_results(model, band, np.hstack([before, after]), 1_000)
    assert [r.drift for r in results] == [False] * 10 + [True] * 10
    assert all(r.direction == "above" for r in results[10:])


def test_a_stationary_correlated_dataset_is_not_flagged_over_100_windows() -> None:
    # A stationary window leaves mean +- 3 std of 50 reference chunk means with probability
    # about 0.3 % (0.3 expected flags in 100 windows); the seed fixes the draw.
    rng = np.random.default_rng(9)
    reference = correlated(rng, 50_000, 0.8)
    model = ReconstructionModel.fit(reference)
    band = reference_band(model.errors(reference), 1_000)
    results = window_results(model, band, correlated(rng, 100_000, 0.8), 1_000)
    assert len(results) == 100
    assert not any(r.drift for r in results)
    assert all(r.status == "ok" for r in results)
