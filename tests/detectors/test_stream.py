"""The shared machinery of the concept-drift detectors: input checks, JSON state, Detections."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from driftwarden.detectors.adwin import ADWIN
from driftwarden.detectors.ddm import DDM
from driftwarden.detectors.eddm import EDDM
from driftwarden.detectors.hddm_a import HDDMA
from driftwarden.detectors.page_hinkley import PageHinkley
from driftwarden.detectors.proportion_test import ProportionTest
from driftwarden.detectors.stream import (
    Detections,
    as_stream,
    decode_float,
    encode_float,
)

ALL = [ADWIN, DDM, EDDM, HDDMA, PageHinkley, ProportionTest]
BINARY = [DDM, EDDM, ProportionTest]


def test_detections_are_frozen_int64_positions() -> None:
    found = DDM().update(np.zeros(10))
    assert isinstance(found, Detections)
    assert found.warnings.dtype == np.int64 and found.drifts.dtype == np.int64
    with pytest.raises(AttributeError):
        found.drifts = np.array([1])  # type: ignore[misc]


@pytest.mark.parametrize("cls", ALL)
def test_empty_batch_changes_nothing(cls: type) -> None:
    detector = cls()
    before = detector.state_dict()
    found = detector.update(np.empty(0))
    assert found.warnings.size == 0 and found.drifts.size == 0
    assert detector.state_dict() == before


@pytest.mark.parametrize("cls", ALL)
def test_update_returns_detections_not_self(cls: type) -> None:
    assert isinstance(cls().update([0, 1, 0]), Detections)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([0.0, np.nan]), "finite"),
        (np.array([0.0, np.inf]), "finite"),
        (np.zeros((2, 2)), "1-D"),
        (np.array(["a", "b"]), "numeric"),
    ],
)
def test_bad_values_are_rejected_with_the_value(
    cls: type, values: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls().update(values)


@pytest.mark.parametrize("cls", BINARY)
def test_binary_detectors_reject_other_values(cls: type) -> None:
    with pytest.raises(ValueError, match=r"0 or 1, got 0\.5 at position 2"):
        cls().update(np.array([0, 1, 0.5]))


def test_hddm_a_takes_values_in_the_unit_interval() -> None:
    HDDMA().update(np.array([0.0, 0.25, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\], got 1\.5"):
        HDDMA().update(np.array([0.0, 1.5]))


def test_booleans_are_error_bits() -> None:
    x = np.random.default_rng(0).random(3000) < np.repeat([0.1, 0.6], 1500)
    a, b = DDM(), DDM()
    np.testing.assert_array_equal(a.update(x).drifts, b.update(x.astype(np.int64)).drifts)


@pytest.mark.parametrize("cls", ALL)
def test_state_is_strict_json_and_names_its_detector(cls: type) -> None:
    detector = cls()
    detector.update(np.random.default_rng(1).random(500) < 0.3)
    state = detector.state_dict()
    text = json.dumps(state, allow_nan=False)
    assert json.loads(text) == state
    assert state["detector"] == cls.name
    assert set(state["params"]) == set(cls._PARAMS)
    other = next(c for c in ALL if c is not cls)
    with pytest.raises(ValueError, match="state is for detector"):
        other.from_state(state)


@pytest.mark.parametrize("cls", ALL)
def test_from_state_restores_hyperparameters(cls: type) -> None:
    detector = cls()
    restored = cls.from_state(json.loads(json.dumps(detector.state_dict())))
    for name in cls._PARAMS:
        assert getattr(restored, name) == getattr(detector, name)
    assert repr(restored) == repr(detector)


def test_infinities_travel_as_strings() -> None:
    assert encode_float(math.inf) == "inf" and encode_float(-math.inf) == "-inf"
    assert decode_float("inf") == math.inf and decode_float(0.1) == 0.1
    with pytest.raises(ValueError, match="NaN"):
        encode_float(math.nan)
    with pytest.raises(ValueError, match="'nope'"):
        decode_float("nope")


def test_as_stream_keeps_floats_exact() -> None:
    x = np.array([0.1, 0.2, 0.7])
    assert as_stream(x) is x or np.array_equal(as_stream(x), x)


def test_drift_detected_describes_the_last_element() -> None:
    x = np.concatenate([np.zeros(2000), np.ones(200)])
    detector = PageHinkley()
    found = detector.update(x)
    assert found.drifts.size
    last = int(found.drifts[-1])
    head = PageHinkley()
    head.update(x[: last + 1])
    assert head.drift_detected
    head.update(x[last + 1 : last + 2])
    assert not head.drift_detected


@pytest.mark.parametrize("cls", ALL)
def test_huge_batches_are_scanned_in_pieces_with_the_same_result(cls: type) -> None:
    x = (np.random.default_rng(9).random(30_000) < np.repeat([0.05, 0.5, 0.1], 10_000)).astype(
        float
    )
    whole = cls().update(x)
    pieces = cls()
    parts = [pieces.update(x[a : a + 700]) for a in range(0, x.size, 700)]
    drifts = np.concatenate([p.drifts + 700 * i for i, p in enumerate(parts)])
    warnings = np.concatenate([p.warnings + 700 * i for i, p in enumerate(parts)])
    np.testing.assert_array_equal(whole.drifts, drifts)
    np.testing.assert_array_equal(whole.warnings, warnings)
