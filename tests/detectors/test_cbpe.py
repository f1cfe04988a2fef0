"""CBPE against NannyML on its car-loan dataset (fixture from bench/cbpe_reference.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from driftwarden.detectors.cbpe import CBPE, CBPE_METRICS, ScoreHistogram

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def car_loan() -> dict[str, np.ndarray | dict]:
    with gzip.open(FIXTURES / "cbpe_car_loan.csv.gz", "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", skiprows=1, dtype=str)
    reference = table[:, 0] == "reference"
    return {
        "reference": reference,
        "score": table[:, 1].astype(np.int64) / 100,
        "pred": table[:, 2].astype(np.int64),
        "true": table[:, 3].astype(np.int64),
        "nannyml": json.loads((FIXTURES / "cbpe_car_loan_nannyml.json").read_text()),
    }


@pytest.fixture(scope="module")
def fitted(car_loan) -> CBPE:
    ref = car_loan["reference"]
    cbpe = CBPE()
    cbpe.fit(car_loan["true"][ref], car_loan["score"][ref], car_loan["pred"][ref])
    return cbpe


def _chunks(car_loan):
    ana = ~car_loan["reference"]
    score, pred = car_loan["score"][ana], car_loan["pred"][ana]
    for chunk in car_loan["nannyml"]["chunks"]:
        a, b = chunk["start"], chunk["end"]
        yield chunk, ScoreHistogram.from_arrays(score[a:b], pred[a:b])


def test_estimates_within_0_01_of_nannyml_in_every_chunk(car_loan, fitted) -> None:
    assert car_loan["nannyml"]["needs_calibration"]
    chunks = list(_chunks(car_loan))
    assert len(chunks) == 10
    for chunk, window in chunks:
        assert window.n == 5000
        results = fitted.estimate(window)
        for metric in CBPE_METRICS:
            nannyml = chunk[metric]["estimate"]
            assert results[metric].status == "ok"
            assert abs(results[metric].value - nannyml) <= 0.01, (chunk["start"], metric)
            # The scores are on a 0.01 grid the 1,000 bins resolve: the same numbers, up to
            # NannyML rounding its cumulative counts to 5 decimals for ROC AUC.
            assert results[metric].value == pytest.approx(nannyml, abs=1e-6)
            assert results[metric].n_reference == 50_000 and results[metric].n_labeled is None


def test_sampling_errors_match_nannyml(car_loan, fitted) -> None:
    for chunk, window in _chunks(car_loan):
        errors = fitted.sampling_errors(window.n)
        for metric in CBPE_METRICS:
            expected = chunk[metric]["sampling_error"]
            # ROC AUC: ties within a bin are spread evenly where NannyML orders them arbitrarily.
            tolerance = 0.01 if metric == "roc_auc" else 1e-9
            assert errors[metric] == pytest.approx(expected, rel=tolerance), metric


def test_estimates_track_realized_performance(car_loan, fitted) -> None:
    for chunk, window in _chunks(car_loan):
        results = fitted.estimate(window)
        for metric in CBPE_METRICS:
            assert abs(results[metric].value - chunk[metric]["realized"]) < 0.03


def test_merged_panes_estimate_like_the_whole_window(car_loan, fitted) -> None:
    windows = [w for _, w in _chunks(car_loan)]
    merged = windows[0]
    for w in windows[1:5]:
        merged = merged.merge(w)
    ana = ~car_loan["reference"]
    whole = ScoreHistogram.from_arrays(
        car_loan["score"][ana][:25_000], car_loan["pred"][ana][:25_000]
    )
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert ScoreHistogram.from_state(json.loads(json.dumps(whole.to_state()))).counts.tolist() == (
        whole.counts.tolist()
    )


def test_band_requires_the_confidence_band_past_the_threshold(car_loan, fitted) -> None:
    _, window = next(iter(_chunks(car_loan)))
    value = fitted.estimate(window)["accuracy"].value
    error = fitted.sampling_errors(window.n)["accuracy"]
    just_above = value + error
    assert fitted.estimate(window, {"accuracy": just_above})["accuracy"].drift
    banded = CBPE.from_state(
        {**fitted.state_dict(), "params": {**fitted.state_dict()["params"], "band": 3.0}}
    )
    assert not banded.estimate(window, {"accuracy": just_above})["accuracy"].drift
    assert banded.estimate(window, {"accuracy": value + 3.5 * error})["accuracy"].drift


def test_state_round_trips(car_loan, fitted) -> None:
    state = json.loads(json.dumps(fitted.state_dict(), allow_nan=False))
    restored = CBPE.from_state(state)
    _, window = next(iter(_chunks(car_loan)))
    assert restored.estimate(window) == fitted.estimate(window)
    assert restored.sampling_errors(5000) == fitted.sampling_errors(5000)
    unfitted = CBPE.from_state(json.loads(json.dumps(CBPE().state_dict())))
    assert not unfitted.fitted
    with pytest.raises(ValueError, match="not fitted"):
        unfitted.estimate(window)


def test_edge_windows(fitted) -> None:
    empty = fitted.estimate(ScoreHistogram.empty(), {"roc_auc": 0.9})
    assert all(r.status == "insufficient_data" for r in empty.values())
    assert empty["roc_auc"].threshold == 0.9
    all_negative = ScoreHistogram.from_arrays(np.full(1000, 0.1), np.zeros(1000))
    results = fitted.estimate(all_negative)
    assert results["precision"].status == "undefined"
    # One score bin: the expected ROC curve is the diagonal.
    assert results["roc_auc"].value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="bins"):
        fitted.estimate(ScoreHistogram.empty(10))


def test_uncalibrated_and_one_class_references() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(10_000)
    label = rng.random(10_000) < score
    raw = CBPE(n_bins=100, calibrate=False)
    raw.fit(label, score)
    assert np.abs(raw.calibration - (np.arange(100) + 0.5) / 100).max() < 0.006
    one = CBPE(n_bins=100)
    one.fit(np.zeros(1000), rng.random(1000))
    assert one.sampling_errors(1000)["recall"] is None
    with pytest.raises(ValueError, match="band"):
        CBPE(band=-1)


def test_expected_errors_are_the_sum_of_each_rows_error_probability() -> None:
    """Scores on the bin centres and ``calibrate=False``: each bin's probability is its
    score, so a row is wrong with probability ``s`` below the threshold, ``1 - s`` above."""
    rng = np.random.default_rng(4)
    centres = (np.arange(100) + 0.5) / 100
    reference = rng.choice(centres, 5_000)
    identity = CBPE(n_bins=100, calibrate=False)
    identity.fit(rng.random(5_000) < reference, reference)
    assert identity.calibration == pytest.approx(centres, abs=1e-12)
    scores = rng.choice(centres, 3_000)
    errors = identity.expected_errors(ScoreHistogram.from_arrays(scores, n_bins=100))
    assert errors.n == scores.size
    assert errors.expected == pytest.approx(np.where(scores >= 0.5, 1 - scores, scores).sum())
    assert errors.variance == pytest.approx((scores * (1 - scores)).sum())
    with pytest.raises(ValueError, match="bins"):
        identity.expected_errors(ScoreHistogram.empty(10))
