"""CUSUM on error bits and on losses: the plain recursion, batching, exact restore, ARL."""

from __future__ import annotations

import bisect
import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from driftwarden.detectors.cusum import CUSUM, calibrate_height, lattice_arl
from driftwarden.detectors.loss_cusum import RESOLUTION, LossCUSUM

NORMAL = NormalDist()


# --- plain per-element implementations, written from the docstrings -----------------------


def plain_cusum(bits: np.ndarray, p0: float, p1: float, h: float) -> list[int]:
    """S = max(0, S + log-likelihood ratio of p1 against p0); alarm at S >= h, restart at 0."""
    up = math.log(p1 / p0)
    down = math.log((1 - p1) / (1 - p0))
    s, drifts = 0.0, []
    for i, bit in enumerate(bits.tolist()):
        s = max(0.0, s + (up if bit else down))
        # S is a multiple of the lattice unit (~0.02): 1e-9 only absorbs rounding.
        if s >= h - 1e-9:
            drifts.append(i)
            s = 0.0
    return drifts


def plain_score(x: float, knots: list[float]) -> float:
    """Normal score of one loss against the reference quantiles at levels (i + 0.5) / m."""
    m = len(knots)
    lo, hi = bisect.bisect_left(knots, x), bisect.bisect_right(knots, x)

    def density_at(level: float) -> float:
        return 0.0 if level in (0.0, 1.0) else NORMAL.pdf(NORMAL.inv_cdf(level))

    if hi - lo == 1:
        return NORMAL.inv_cdf((lo + 0.5) / m)
    if hi - lo > 1:
        return (density_at(lo / m) - density_at(hi / m)) * m / (hi - lo)
    epsilon = 0.5 / m
    if lo == 0:
        return -density_at(epsilon) / epsilon
    if lo == m:
        return density_at(epsilon) / epsilon
    fraction = (x - knots[lo - 1]) / (knots[lo] - knots[lo - 1])
    return NORMAL.inv_cdf((lo - 0.5 + fraction) / m)


def plain_loss_cusum(losses: np.ndarray, knots: list[float], shift: float, h: float) -> list[int]:
    """S = max(0, S + z - shift / 2), increments rounded to 1/32; alarm at S >= h."""
    height = round(h * RESOLUTION)
    s, drifts = 0, []
    for i, x in enumerate(losses.tolist()):
        s = max(0, s + round(RESOLUTION * (plain_score(x, knots) - shift / 2)))
        if s >= height:
            drifts.append(i)
            s = 0
    return drifts


# --- helpers -------------------------------------------------------------------------------


def positions(detector, values: np.ndarray, cuts) -> np.ndarray:
    """Drift positions when ``values`` is fed in pieces split at ``cuts``."""
    found, start = [], 0
    for stop in [*sorted(cuts), values.size]:
        result = detector.update(values[start:stop])
        assert result.warnings.size == 0 and result.drifts.dtype == np.int64
        found.append(result.drifts + start)
        start = stop
    return np.concatenate(found)


def restored_positions(factory, values: np.ndarray, cuts) -> np.ndarray:
    """Drift positions when the detector goes through JSON and back at every cut."""
    detector, found, start = factory(), [], 0
    for stop in [*sorted(cuts), values.size]:
        found.append(detector.update(values[start:stop]).drifts + start)
        start = stop
        state = json.loads(json.dumps(detector.state_dict(), allow_nan=False))
        restored = type(detector).from_state(state)
        assert restored.state_dict() == detector.state_dict()
        assert restored.statistic == detector.statistic
        detector = restored
    return np.concatenate(found)


def error_bits(seed: int, rates: list[float], length: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.repeat(np.asarray(rates), length // len(rates))
    return (rng.random(p.size) < p).astype(np.int64)


def shifted_losses(seed: int, scales: list[float], length: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.exponential(np.repeat(np.asarray(scales), length // len(scales)))


EXPONENTIAL_KNOTS = stats.expon.ppf((np.arange(256) + 0.5) / 256).tolist()


# --- the recursion ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("p0", "odds_ratio", "rates"),
    [
        (0.1, 2.0, [0.1, 0.25, 0.1, 0.3]),
        (0.02, 3.0, [0.02, 0.05, 0.02]),
        (0.4, 1.5, [0.4, 0.55]),
        (0.9, 2.0, [0.9, 0.97]),
    ],
)
def test_error_bits_match_the_plain_recursion(seed, p0, odds_ratio, rates) -> None:
    x = error_bits(seed, rates, 40_000)
    detector = CUSUM(p0, odds_ratio=odds_ratio, arl=1e5)
    plain = plain_cusum(x, p0, detector.alternative_rate, detector.threshold)
    ours = positions(detector, x, cuts=[])
    np.testing.assert_array_equal(ours, plain)
    assert len(plain) > 3


@pytest.mark.parametrize("seed", range(3))
def test_losses_match_the_plain_recursion(seed) -> None:
    x = shifted_losses(seed, [1.0, 1.6, 1.0, 2.0], 20_000)
    detector = LossCUSUM(EXPONENTIAL_KNOTS, shift=0.5, arl=1e5)
    np.testing.assert_allclose(
        detector.scores(x[:2000]), [plain_score(v, EXPONENTIAL_KNOTS) for v in x[:2000]], atol=1e-12
    )
    plain = plain_loss_cusum(x, EXPONENTIAL_KNOTS, 0.5, detector.threshold)
    np.testing.assert_array_equal(positions(detector, x, cuts=[]), plain)
    assert len(plain) > 3


def test_tied_losses_and_losses_outside_the_reference_match_the_plain_scores() -> None:
    rng = np.random.default_rng(5)
    reference = np.where(rng.random(50_000) < 0.3, 0.0, rng.exponential(size=50_000))
    reference = np.round(reference, 1)  # point masses at 0.0, 0.1, ...
    detector = LossCUSUM.from_reference(reference, knots=64)
    knots = detector.reference_quantiles
    x = np.concatenate([[-1.0, 0.0, 0.05, 100.0], knots, np.round(rng.exponential(size=500), 1)])
    np.testing.assert_allclose(detector.scores(x), [plain_score(v, knots) for v in x], atol=1e-12)
    # The scores of the reference losses themselves average 0: ties pool to conditional means.
    assert abs(detector.scores(reference).mean()) < 0.02


# --- batching and restoring --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_batching_does_not_change_detections(seed) -> None:
    rng = np.random.default_rng(seed)
    bits = error_bits(seed, [0.05, 0.2, 0.05, 0.15], 30_000)
    losses = shifted_losses(seed, [1.0, 1.8, 1.0], 30_000)
    for factory, x in [
        (lambda: CUSUM(0.05, arl=1e4), bits),
        (lambda: LossCUSUM(EXPONENTIAL_KNOTS, shift=1.0, arl=1e4), losses),
    ]:
        one = positions(factory(), x, cuts=[])
        for n_cuts in (1, 7, 300):
            cuts = rng.integers(0, x.size, n_cuts)
            np.testing.assert_array_equal(positions(factory(), x, cuts), one)
        np.testing.assert_array_equal(positions(factory(), x, range(1, x.size, 997)), one)
        assert one.size > 2


@pytest.mark.parametrize("seed", range(6))
def test_restoring_anywhere_gives_the_same_detections(seed) -> None:
    rng = np.random.default_rng(100 + seed)
    bits = error_bits(seed, [0.1, 0.3, 0.1], 9_000)
    losses = shifted_losses(seed, [1.0, 2.0, 1.0], 9_000)
    for factory, x in [
        (lambda: CUSUM(0.1, odds_ratio=2.5, arl=2e4), bits),
        (lambda: LossCUSUM(EXPONENTIAL_KNOTS, arl=2e4), losses),
    ]:
        one = positions(factory(), x, cuts=[])
        cuts = rng.integers(0, x.size, rng.integers(1, 12))
        np.testing.assert_array_equal(restored_positions(factory, x, cuts), one)
        # Right after a drift (the state is saved with the drift flag set) too.
        at_drifts = np.concatenate([one, one + 1])
        np.testing.assert_array_equal(restored_positions(factory, x, at_drifts), one)


def test_state_is_plain_json() -> None:
    detector = LossCUSUM(EXPONENTIAL_KNOTS, shift=0.75, arl=1e6)
    detector.update(shifted_losses(0, [1.0], 1000))
    state = detector.state_dict()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state["params"]["reference_quantiles"] == EXPONENTIAL_KNOTS
    assert "256 values" in repr(detector)
    cusum = CUSUM(0.1)
    assert cusum.state_dict()["params"] == {"reference_rate": 0.1, "odds_ratio": 2.0, "arl": 1e7}
    with pytest.raises(ValueError, match="level"):
        CUSUM.from_state({**cusum.state_dict(), "state": {"level": -3}})


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name", "value"),
    [
        ({"reference_rate": 0.0}, "reference_rate", "0.0"),
        ({"reference_rate": 1.5}, "reference_rate", "1.5"),
        ({"reference_rate": 0.1, "odds_ratio": 1.0}, "odds_ratio", "1.0"),
        ({"reference_rate": 0.1, "odds_ratio": -2}, "odds_ratio", "-2"),
        ({"reference_rate": 0.1, "odds_ratio": math.inf}, "odds_ratio", "inf"),
        ({"reference_rate": 0.1, "arl": 1}, "arl", "1"),
        ({"reference_rate": 0.1, "arl": 1e13}, "arl", "10000000000000"),
        ({"reference_rate": 0.1, "arl": math.nan}, "arl", "nan"),
        ({"reference_rate": True}, "reference_rate", "True"),
    ],
)
def test_bad_cusum_parameters_are_named(params, name, value) -> None:
    with pytest.raises(ValueError, match=rf"{name}.*{value}"):
        CUSUM(**params)


@pytest.mark.parametrize(
    ("params", "name", "value"),
    [
        ({"reference_quantiles": [1.0, 2.0]}, "reference_quantiles", "shape"),
        ({"reference_quantiles": [1.0] * 20}, "reference_quantiles", "1.0"),
        ({"reference_quantiles": list(range(20, 0, -1))}, "reference_quantiles", "20"),
        ({"reference_quantiles": [*range(19), math.nan]}, "reference_quantiles", "non-decreasing"),
        ({"shift": 0}, "shift", "0"),
        ({"shift": 3.5}, "shift", "3.5"),
        ({"arl": 0.5}, "arl", "0.5"),
    ],
)
def test_bad_loss_cusum_parameters_are_named(params, name, value) -> None:
    with pytest.raises(ValueError, match=rf"{name}.*{value}"):
        LossCUSUM(**{"reference_quantiles": EXPONENTIAL_KNOTS, **params})


def test_bad_reference_losses_are_named() -> None:
    with pytest.raises(ValueError, match="knots=256"):
        LossCUSUM.from_reference(np.arange(100.0))
    with pytest.raises(ValueError, match="knots"):
        LossCUSUM.from_reference(np.arange(100.0), knots=4)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match=r"0 or 1, got 0\.5"):
        CUSUM(0.1).update([0, 0.5])
    with pytest.raises(ValueError, match="finite"):
        LossCUSUM(EXPONENTIAL_KNOTS).update([1.0, math.inf])


# --- calibration ---------------------------------------------------------------------------------


def test_lattice_arl_matches_a_closed_form() -> None:
    # +1 / -1 walk reflected at 0: E[N] from 0 to H is sum over k < H of the mean time
    # from k to k + 1, t_k = 1 / p + (q / p) t_{k-1}, t_0 = 1 / p (gambler's ruin).
    p, q, height = 0.3, 0.7, 12
    t, total = 1 / p, 1 / p
    for _ in range(1, height):
        t = 1 / p + (q / p) * t
        total += t
    assert lattice_arl(np.array([1, -1]), np.array([p, q]), height) == pytest.approx(total)


@pytest.mark.parametrize("p0", [0.5, 0.1, 0.02, 0.003])
def test_threshold_is_the_nearest_to_the_target(p0) -> None:
    detector = CUSUM(p0)
    assert detector.expected_arl == pytest.approx(1e7, rel=0.03)
    design = detector._design
    steps, probabilities = np.array([design.up, -design.down]), np.array([p0, 1 - p0])
    below = lattice_arl(steps, probabilities, design.height - 1)
    above = lattice_arl(steps, probabilities, design.height + 1)
    assert below < 1e7 < above
    assert p0 < detector.alternative_rate < 2.05 * p0


def test_calibrate_height_refuses_a_drift_that_is_not_negative() -> None:
    with pytest.raises(ValueError, match="negative mean"):
        calibrate_height(np.array([1, -1]), np.array([0.5, 0.5]), 100.0)


def measured_arl(detector, draw, total: int, chunk: int = 200_000) -> tuple[float, int]:
    """Mean run length between alarms over ``total`` in-control elements, and the alarm count."""
    last, lengths = -1, []
    for begin in range(0, total, chunk):
        drifts = detector.update(draw(chunk)).drifts + begin
        lengths.extend(np.diff(np.concatenate([[last], drifts])).tolist())
        if drifts.size:
            last = int(drifts[-1])
    return float(np.mean(lengths)), len(lengths)


@pytest.mark.parametrize(("p0", "odds_ratio"), [(0.1, 2.0), (0.02, 3.0)])
def test_simulated_arl_of_error_bits_is_within_20_percent_of_the_target(p0, odds_ratio) -> None:
    target = 5_000.0
    rng = np.random.default_rng(20261126)
    detector = CUSUM(p0, odds_ratio=odds_ratio, arl=target)
    arl, alarms = measured_arl(detector, lambda n: rng.random(n) < p0, 3_000_000)
    assert alarms > 400  # relative standard error about 1 / sqrt(alarms) < 5 %
    assert abs(arl / target - 1) < 0.2, arl


@pytest.mark.parametrize("shift", [0.5, 1.5])
def test_simulated_arl_of_losses_is_within_20_percent_of_the_target(shift) -> None:
    target = 5_000.0
    rng = np.random.default_rng(7)
    detector = LossCUSUM(EXPONENTIAL_KNOTS, shift=shift, arl=target)
    arl, alarms = measured_arl(detector, lambda n: rng.exponential(size=n), 3_000_000)
    assert alarms > 400
    assert abs(arl / target - 1) < 0.2, arl


def test_ties_make_the_loss_chart_conservative() -> None:
    # Poisson counts as losses: the scores are discrete, their variance below 1.
    rng = np.random.default_rng(11)
    detector = LossCUSUM.from_reference(rng.poisson(3.0, 1_000_000), shift=0.5, arl=5_000)
    arl, _ = measured_arl(detector, lambda n: rng.poisson(3.0, n), 3_000_000)
    assert arl > 0.8 * 5_000
