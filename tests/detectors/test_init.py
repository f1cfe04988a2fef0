"""The public namespace: name mappings, the default set, and properties every detector shares."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import driftwarden.detectors as detectors
from driftwarden.detectors import (
    DATA_DRIFT_DETECTORS,
    DATA_QUALITY_DETECTORS,
    DEFAULT_DATA_DRIFT,
    DEFAULT_DATA_QUALITY,
    CategoricalSummary,
    NumericSummary,
)

NUMERIC = [name for name, cls in DATA_DRIFT_DETECTORS.items() if "numeric" in cls.applies_to]
CATEGORICAL = [
    name for name, cls in DATA_DRIFT_DETECTORS.items() if "categorical" in cls.applies_to
]


def test_all_names_resolve() -> None:
    for name in detectors.__all__:
        assert hasattr(detectors, name), name


def test_mappings_name_their_classes() -> None:
    for name, cls in DATA_DRIFT_DETECTORS.items():
        assert cls.name == name
        assert set(cls.applies_to) <= {"numeric", "categorical"}
        for kind in ("numeric", "categorical"):
            assert hasattr(cls, kind) == (kind in cls.applies_to), (name, kind)
    for name, cls in DATA_QUALITY_DETECTORS.items():
        assert cls.name == name
        assert all(callable(getattr(cls, metric)) for metric in cls.metrics)


def test_defaults_build_with_their_thresholds() -> None:
    for kind, chosen in DEFAULT_DATA_DRIFT.items():
        for name, kwargs in chosen.items():
            detector = DATA_DRIFT_DETECTORS[name](**kwargs)
            assert kind in detector.applies_to
            assert detector.threshold == kwargs["threshold"]
    assert DEFAULT_DATA_DRIFT["numeric"].keys() == {"psi", "ks", "wasserstein"}
    assert DEFAULT_DATA_DRIFT["categorical"].keys() == {"psi", "chi_square", "jensen_shannon"}
    for name, kwargs in DEFAULT_DATA_QUALITY.items():
        DATA_QUALITY_DETECTORS[name](**kwargs)


def _categorical(rng: np.random.Generator, probabilities: np.ndarray, size: int) -> np.ndarray:
    return rng.choice(probabilities.size, p=probabilities, size=size)


def _zipf(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1)
    return weights / weights.sum()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("window_size", [5_000, 20_000])
def test_a_window_from_the_reference_distribution_is_not_flagged(
    numeric_pair, draw_column, seed: int, window_size: int
) -> None:
    kinds = ["normal", "lognormal", "poisson", "few_values", "tied"]
    reference_rng = np.random.default_rng(1_000 + seed)
    window_rng = np.random.default_rng(2_000 + seed)
    pair = numeric_pair(
        np.stack([draw_column(kind, reference_rng, 50_000) for kind in kinds]),
        np.stack([draw_column(kind, window_rng, window_size) for kind in kinds]),
    )
    for name, kwargs in DEFAULT_DATA_DRIFT["numeric"].items():
        results = DATA_DRIFT_DETECTORS[name](**kwargs).numeric(pair.ref, pair.win, pair.edges)
        assert [r.status for r in results] == ["ok"] * len(kinds)
        assert not any(r.drift for r in results), (name, [r.value for r in results])
    probabilities = [_zipf(5), _zipf(50)]
    width = 50
    ref_codes = np.stack([_categorical(reference_rng, p, 50_000) for p in probabilities])
    win_codes = np.stack([_categorical(window_rng, p, window_size) for p in probabilities])
    ref = CategoricalSummary.from_codes(ref_codes, width)
    win = CategoricalSummary.from_codes(win_codes, width)
    for name, kwargs in DEFAULT_DATA_DRIFT["categorical"].items():
        results = DATA_DRIFT_DETECTORS[name](**kwargs).categorical(ref, win)
        assert not any(r.drift for r in results), (name, [r.value for r in results])


def test_default_detectors_flag_a_real_shift(numeric_pair) -> None:
    rng = np.random.default_rng(9)
    pair = numeric_pair(rng.normal(size=(1, 50_000)), rng.normal(0.5, size=(1, 5_000)))
    for name, kwargs in DEFAULT_DATA_DRIFT["numeric"].items():
        [result] = DATA_DRIFT_DETECTORS[name](**kwargs).numeric(pair.ref, pair.win, pair.edges)
        assert result.drift, name
    ref = CategoricalSummary.from_codes(rng.choice(5, p=_zipf(5), size=(1, 50_000)), 5)
    win = CategoricalSummary.from_codes(rng.choice(5, size=(1, 5_000)), 5)
    for name, kwargs in DEFAULT_DATA_DRIFT["categorical"].items():
        [result] = DATA_DRIFT_DETECTORS[name](**kwargs).categorical(ref, win)
        assert result.drift, name


REFERENCE_RNG = np.random.default_rng(77)
REFERENCE = np.stack([REFERENCE_RNG.normal(size=3_000), REFERENCE_RNG.poisson(2, 3_000)])
REFERENCE_CODES = REFERENCE_RNG.choice(6, size=(2, 3_000))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 400))
def test_results_do_not_depend_on_row_order(seed: int, size: int) -> None:
    from driftwarden.detectors.histogram import pad_edges, quantile_edges

    rng = np.random.default_rng(seed)
    window = np.stack([rng.normal(0.2, size=size), rng.poisson(2.5, size=size).astype(float)])
    window[0, rng.random(size) < 0.1] = np.nan
    shuffled = window[:, rng.permutation(size)]
    edges = pad_edges([quantile_edges(column) for column in REFERENCE])
    shift = REFERENCE.mean(axis=1)
    ref = NumericSummary.from_columns(REFERENCE, edges, shift)
    summaries = [NumericSummary.from_columns(w, edges, shift) for w in (window, shuffled)]
    codes = rng.integers(-1, 8, size=(2, size))
    ref_cat = CategoricalSummary.from_codes(REFERENCE_CODES, 6)
    cat = [CategoricalSummary.from_codes(c, 6) for c in (codes, codes[:, rng.permutation(size)])]
    for name in NUMERIC:
        detector = DATA_DRIFT_DETECTORS[name]()
        first, second = (detector.numeric(ref, s, edges) for s in summaries)
        _assert_same_results(first, second)
        if hasattr(detector, "exact"):
            _assert_same_results(
                detector.exact(REFERENCE, window), detector.exact(REFERENCE, shuffled)
            )
    for name in CATEGORICAL:
        detector = DATA_DRIFT_DETECTORS[name]()
        _assert_same_results(
            detector.categorical(ref_cat, cat[0]), detector.categorical(ref_cat, cat[1])
        )


def _assert_same_results(first: list, second: list) -> None:
    for a, b in zip(first, second, strict=True):
        assert (a.status, a.drift, a.n_window) == (b.status, b.drift, b.n_window)
        for field in ("value", "p_value", "error_bound"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                assert x == pytest.approx(y, rel=1e-9, abs=1e-12)


EDGE_REFERENCE = np.stack(
    [
        np.random.default_rng(1).normal(size=200),  # ordinary
        np.full(200, 3.0),  # constant
        np.full(200, np.nan),  # all null
        np.random.default_rng(2).normal(size=200),  # window will be all null
    ]
)
EDGE_WINDOWS = {
    "empty": np.empty((4, 0)),
    "one row": np.array([[0.5], [3.0], [1.0], [np.nan]]),
    "constant elsewhere": np.array(
        [[9.0, 9.0, 9.0], [4.0, 4.0, 4.0], [1.0, 1.0, 1.0], [np.nan] * 3]
    ),
    "few rows": np.array([[0.1, -0.3, 2.0], [3.0, 3.0, 3.0], [1.0, 2.0, 3.0], [np.nan] * 3]),
}


@pytest.mark.parametrize("window_name", EDGE_WINDOWS)
@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_edge_cases_give_defined_statuses(numeric_pair, name: str, window_name: str):
    window = EDGE_WINDOWS[window_name]
    pair = numeric_pair(EDGE_REFERENCE, window)
    detector = DATA_DRIFT_DETECTORS[name]()
    runs = [detector.numeric(pair.ref, pair.win, pair.edges)]
    if hasattr(detector, "exact"):
        runs.append(detector.exact(EDGE_REFERENCE, window))
    for results in runs:
        assert len(results) == 4
        assert results[2].status == "insufficient_data"  # all-null reference
        assert results[3].status == "insufficient_data"  # all-null window
        if window_name == "empty":
            assert all(r.status == "insufficient_data" for r in results)
        for result in results:
            assert result.status in ("ok", "insufficient_data", "undefined")
            assert (result.value is None) == (result.status != "ok")
            assert result.direction == "above" and result.threshold is not None
        if name in ("wasserstein", "mean_shift") and window_name != "empty":
            assert results[1].status in ("undefined", "insufficient_data")  # constant reference


@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_edge_cases_give_defined_statuses(name: str) -> None:
    ref = CategoricalSummary(np.array([[600, 300, 100, 0, 0], [50, 0, 0, 0, 0], [0, 0, 0, 0, 0]]))
    windows = {
        "only unseen": np.array([[0, 0, 0, 0, 40], [0, 0, 0, 0, 1], [0, 0, 0, 0, 3]]),
        "one row": np.array([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]),
        "empty": np.zeros((3, 5), dtype=np.int64),
    }
    detector = DATA_DRIFT_DETECTORS[name]()
    for window_name, counts in windows.items():
        results = detector.categorical(ref, CategoricalSummary(counts))
        assert results[2].status == "insufficient_data"
        if window_name == "empty":
            assert all(r.status == "insufficient_data" for r in results)
        else:
            assert results[0].status == "ok" and results[1].status == "ok"
        if window_name == "only unseen":
            assert results[0].drift and np.isfinite(results[0].value)
        if window_name == "one row":
            assert results[1].value == 0.0  # the constant feature stayed on its category
