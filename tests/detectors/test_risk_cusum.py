"""Risk-adjusted CUSUM: the plain recursion, the reference's bins, batching, restore, ARL."""

from __future__ import annotations

import bisect
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwarden.detectors.cusum import CUSUM
from driftwarden.detectors.risk_cusum import RiskCUSUM, reference_bins

# Three bands of scores with known error rates: confident, unsure, confident.
BINS = {"edges": [0.2, 0.8], "rates": [0.01, 0.3, 0.02], "shares": [0.45, 0.1, 0.45]}


def draw(rng: np.random.Generator, n: int, flip: float = 0.0) -> np.ndarray:
    """(error, score) rows whose bands and error rates are BINS's; a share ``flip`` of
    labels reversed raises a band's rate p to p + flip (1 - 2p)."""
    band = rng.choice(3, size=n, p=BINS["shares"])
    low = np.array([0.0, 0.2, 0.8])[band]
    scores = low + rng.random(n) * np.array([0.2, 0.6, 0.2])[band]
    p = np.array(BINS["rates"])[band]
    p = p + flip * (1 - 2 * p)
    return np.column_stack([rng.random(n) < p, scores]).astype(float)


# --- a plain per-element implementation, written from the docstring -------------------------


def plain_risk_cusum(rows: np.ndarray, bins: dict, flip: float, detector: RiskCUSUM) -> list[int]:
    """Two charts: the scored chart adds each row's log-likelihood ratio (a share ``flip``
    reversed against its band's rate) rounded to 0.01; the plain chart is CUSUM on the bits
    at the bands' overall rate, with twice the ARL (exact logs: its steps are multiples of its
    lattice unit). An armed chart reaching its threshold is a drift, which disarms both; a
    disarmed chart is capped at its threshold and armed again when it is back at 0."""
    plain = CUSUM(
        sum(r * s for r, s in zip(bins["rates"], bins["shares"], strict=True)),
        odds_ratio=detector.odds_ratio,
        arl=2 * detector.arl,
    )
    p0, p1 = plain.reference_rate, plain.alternative_rate
    plain_steps = (math.log(p1 / p0), math.log((1 - p1) / (1 - p0)))
    heights = (round(detector.thresholds[0] / 0.01), plain.threshold - 1e-9)
    levels, armed, drifts = [0.0, 0.0], [True, True], []
    for i, (error, score) in enumerate(rows.tolist()):
        if math.isnan(score):  # no score: the reference's overall rate
            p = sum(r * s for r, s in zip(bins["rates"], bins["shares"], strict=True))
        else:
            p = bins["rates"][bisect.bisect_right(bins["edges"], score)]
        q = p + flip * (1 - 2 * p)
        weight = math.log(q / p) if error else math.log((1 - q) / (1 - p))
        steps = (round(weight / 0.01), plain_steps[0 if error else 1])
        for k in range(2):
            levels[k] = max(0.0, levels[k] + steps[k])
            if not armed[k]:
                levels[k] = min(levels[k], heights[k])
        if any(armed[k] and levels[k] >= heights[k] for k in range(2)):
            drifts.append(i)
            levels = [min(level, h) for level, h in zip(levels, heights, strict=True)]
            armed = [False, False]
        else:
            armed = [armed[k] or levels[k] == 0.0 for k in range(2)]
    return drifts


def stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([draw(rng, 3000), draw(rng, 1500, flip=0.15), draw(rng, 1500)])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("flip", "arl"), [(0.1, 1e7), (0.3, 1e4)])
def test_rows_match_the_plain_recursion(seed, flip, arl) -> None:
    rows = stream(seed)
    detector = RiskCUSUM(BINS, flip=flip, arl=arl)
    expected = plain_risk_cusum(rows, BINS, flip, detector)
    assert detector.update(rows).drifts.tolist() == expected
    assert expected, "the change at 3,000 is found"


@pytest.mark.parametrize("seed", range(5))
def test_a_change_is_reported_once_while_it_lasts_and_again_after_a_return(seed) -> None:
    rng = np.random.default_rng(100 + seed)
    parts = [draw(rng, 3000), draw(rng, 3000, flip=0.2), draw(rng, 3000), draw(rng, 3000, 0.2)]
    detector = RiskCUSUM(BINS)
    drifts = np.concatenate(
        [detector.update(part).drifts + 3000 * k for k, part in enumerate(parts)]
    )
    assert len(drifts) == 2, drifts
    assert 3000 <= drifts[0] < 3300 and 9000 <= drifts[1] < 9300, drifts
    assert detector.armed == (False, False)


def test_the_plain_chart_alone_finds_a_rise_where_the_model_was_unsure() -> None:
    """Errors rise only in the unsure band: the plain chart's alarm is a drift too."""
    rng = np.random.default_rng(4)
    rows = draw(rng, 4000)
    unsure = rows[:, 1] >= 0.2
    unsure &= rows[:, 1] < 0.8
    later = np.arange(rows.shape[0]) >= 2000
    rows[:, 0] = np.where(unsure & later, rng.random(rows.shape[0]) < 0.9, rows[:, 0])
    detector = RiskCUSUM(BINS)
    drifts = detector.update(rows).drifts
    assert drifts.tolist() == plain_risk_cusum(rows, BINS, 0.1, detector)
    assert drifts.size and drifts[0] >= 2000


def positions(factory, rows: np.ndarray, cuts, restore: bool) -> list[int]:
    detector, found, start = factory(), [], 0
    for stop in [*sorted(cuts), rows.shape[0]]:
        found += (detector.update(rows[start:stop]).drifts + start).tolist()
        start = stop
        if restore:
            state = json.loads(json.dumps(detector.state_dict(), allow_nan=False))
            restored = RiskCUSUM.from_state(state)
            assert restored.state_dict() == detector.state_dict()
            assert restored.statistics == detector.statistics
            detector = restored
    return found


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("restore", [False, True])
def test_batching_and_restoring_anywhere_do_not_change_detections(seed, restore) -> None:
    rows = stream(10 + seed)
    whole = RiskCUSUM(BINS).update(rows).drifts.tolist()
    cuts = np.random.default_rng(seed).choice(np.arange(1, rows.shape[0]), 12, replace=False)
    assert positions(lambda: RiskCUSUM(BINS), rows, cuts, restore) == whole
    assert whole


def test_reference_bins_are_the_error_rate_of_each_band_of_quantiles() -> None:
    rng = np.random.default_rng(8)
    scores = rng.beta(0.5, 0.5, 5000)
    errors = rng.random(5000) < np.minimum(scores, 1 - scores)
    bins = reference_bins(errors, scores, bins=10)
    edges = np.sort(scores)[np.ceil(np.arange(1, 10) / 10 * 5000).astype(int) - 1]
    assert bins["edges"] == pytest.approx(edges.tolist(), abs=0)
    for k in range(10):
        low = -np.inf if k == 0 else edges[k - 1]
        high = np.inf if k == 9 else edges[k]
        inside = (scores >= low) & (scores < high)
        assert bins["shares"][k] == pytest.approx(inside.mean(), abs=1e-15)
        rate = (errors[inside].sum() + 0.5) / (inside.sum() + 1)
        assert bins["rates"][k] == pytest.approx(rate, rel=1e-12)


def test_reference_bins_keep_a_repeated_score_once() -> None:
    scores = np.repeat([0.1, 0.9], [3000, 1000])
    errors = np.arange(4000) % 10 == 0
    bins = reference_bins(errors, scores)
    assert bins["edges"] == [0.9]
    assert bins["shares"] == [0.75, 0.25]


@pytest.mark.parametrize(
    ("errors", "scores", "message"),
    [
        (np.zeros(999), np.linspace(0, 1, 999), "at least 1000 labelled rows"),
        (np.zeros(2000), np.full(2000, 0.3), "not all equal"),
        (np.zeros(2000), np.zeros(1999), "differ in length"),
        (np.full(2000, 2.0), np.linspace(0, 1, 2000), "0 or 1"),
    ],
)
def test_bad_reference_rows_are_named(errors, scores, message) -> None:
    with pytest.raises(ValueError, match=message):
        reference_bins(errors, scores)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"reference_bins": [0.5]}, "mapping with exactly edges, rates and shares"),
        ({"reference_bins": {**BINS, "edges": [0.8, 0.2]}}, "strictly increasing"),
        ({"reference_bins": {**BINS, "rates": [0.1, 0.2]}}, "one rate and one share per bin"),
        ({"reference_bins": {**BINS, "rates": [0.0, 0.3, 0.02]}}, r"rates must lie in \(0, 1\)"),
        ({"reference_bins": {**BINS, "shares": [0.5, 0.5, 0.5]}}, "sum to 1"),
        ({"reference_bins": {**BINS, "edges": ["0.5", 0.8]}}, "edges must be a list of finite"),
        ({"reference_bins": BINS, "flip": 0.5}, r"flip must be a number in \(0, 0.5\)"),
        ({"reference_bins": BINS, "odds_ratio": 1.0}, "odds_ratio must be a finite number > 1"),
        ({"reference_bins": BINS, "arl": 0.5}, "arl must be a number"),
    ],
)
def test_bad_parameters_are_named(params, message) -> None:
    with pytest.raises(ValueError, match=message):
        RiskCUSUM(**params)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros(5), r"\(n, 2\) array"),
        (
            np.array([[0.0, 0.5], [0.5, 0.5]]),
            "error bits: values must be 0 or 1, got 0.5 at position 1",
        ),
        (
            np.array([[0.0, 0.5], [np.nan, 0.5]]),
            "error bits: values must be finite, got nan at position 1",
        ),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_bad_rows_are_refused(values, message) -> None:
    detector = RiskCUSUM(BINS)
    with pytest.raises(ValueError, match=message):
        detector.update(values)
    assert detector.statistics == (0.0, 0.0)


def test_the_pair_s_simulated_arl_is_within_20_percent_of_the_target() -> None:
    """Each chart is exact at twice the target; the pair, restarted after either's alarm,
    has about the target (the bands' rates are exactly the stream's here)."""
    target = 5_000.0
    rng = np.random.default_rng(20261205)
    detector = RiskCUSUM(BINS, arl=target)
    assert all(abs(arl / (2 * target) - 1) < 0.03 for arl in detector.chart_arls)
    last, lengths = -1, []
    for begin in range(0, 4_000_000, 200_000):
        drifts = detector.update(draw(rng, 200_000)).drifts + begin
        lengths += np.diff(np.concatenate([[last], drifts])).tolist()
        last = int(drifts[-1]) if drifts.size else last
    assert len(lengths) > 600  # relative standard error about 1 / sqrt(alarms) < 4 %
    assert abs(np.mean(lengths) / target - 1) < 0.2, np.mean(lengths)


def test_a_change_reaching_confident_scores_is_found_sooner_than_from_the_bits_alone() -> None:
    """The same rise of the error rate, a share of labels reversed at every score: the
    scored chart finds it in a fraction of the plain CUSUM's delay, at the same ARL."""
    ours, bits = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        rows = np.concatenate([draw(rng, 2000), draw(rng, 3000, flip=0.1)])
        rate = sum(r * s for r, s in zip(BINS["rates"], BINS["shares"], strict=True))
        found = RiskCUSUM(BINS, arl=1e7).update(rows).drifts
        plain = CUSUM(rate, arl=1e7).update(rows[:, 0]).drifts
        ours.append(found[found >= 2000][0] - 2000)
        bits.append(plain[plain >= 2000][0] - 2000)
    assert np.median(ours) < 0.5 * np.median(bits), (np.median(ours), np.median(bits))


ROW = st.tuples(
    st.sampled_from([0.0, 1.0, 1.0, 0.5, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(ROW, max_size=40), min_size=1, max_size=6))
def test_any_batches_give_the_plain_recursion_or_a_named_refusal(batches) -> None:
    """Whole batches of arbitrary rows: a batch with a bad error bit is refused, naming it,
    and leaves the statistics as they were; any score places a row (NaN: none, the overall
    rate), and the good batches give the plain recursion's drifts."""
    detector = RiskCUSUM(BINS, flip=0.3, arl=50.0)
    good: list[np.ndarray] = []
    found: list[int] = []
    for batch in batches:
        rows = np.array(batch, dtype=float).reshape(-1, 2)
        bad = ~np.isin(rows[:, 0], [0.0, 1.0])
        before = detector.statistics
        if bad.any():
            with pytest.raises(ValueError, match=r"^error bits: values must be"):
                detector.update(rows)
            assert detector.statistics == before
            continue
        offset = sum(len(g) for g in good)
        found += (detector.update(rows).drifts + offset).tolist()
        good.append(rows)
    if good:
        every = np.concatenate(good)
        assert found == plain_risk_cusum(every, BINS, 0.3, RiskCUSUM(BINS, flip=0.3, arl=50.0))
