"""Bernoulli CUSUM on error bits, its threshold set by the exact in-control average run length."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.linalg import solve_banded
from scipy.optimize import brentq
from scipy.special import logsumexp

from .stream import StreamDetector, check_open_unit, check_positive

_NONE = np.empty(0, dtype=np.int64)
# Largest step of the threshold, in log-likelihood units: a step of 0.05 changes
# the run length by about 5 %, so the chosen threshold is within 2.5 % of the target.
_MAX_UNIT = 0.05
# Largest relative error of the integer ratio (error step) / (correct step).
_RATIO_TOLERANCE = 0.005
# The exact calibration solves a banded system of (threshold / unit) states; keep it small.
_MAX_STATES = 200_000
_MAX_ARL = 1e12


class CUSUM(StreamDetector):
    r"""One-sided Bernoulli CUSUM of the error rate against the reference's, calibrated by ARL.

    Page's cumulative sum of the log-likelihood ratio of each error bit under
    an increased error rate :math:`p_1` against the reference rate
    :math:`p_0`, with its threshold set so that, while the error rate stays at
    :math:`p_0`, false alarms come on average once every ``arl`` events.

    Parameters
    ----------
    reference_rate : float
        :math:`p_0`, the error rate of the reference (required: the detector is
        calibrated on it).
    odds_ratio : float, default 2.0
        :math:`R > 1`: the chart is tuned to detect fastest the error rate
        :math:`p_1` whose odds are :math:`R` times the reference odds,
        :math:`p_1 = R p_0 / (1 - p_0 + R p_0)` (0.10 -> 0.18, 0.02 -> 0.039,
        0.5 -> 0.67).
    arl : float, default 10_000_000
        In-control average run length: mean number of events between false
        alarms while the error rate is :math:`p_0`.

    Notes
    -----
    An error bit :math:`x_t` adds :math:`W_t = x_t \log R - \log(1 - p_0 + R
    p_0)`, the log-likelihood ratio of :math:`p_1` against :math:`p_0`, to the
    statistic :math:`S_t = \max(0, S_{t-1} + W_t)`, :math:`S_0 = 0`; a drift is
    :math:`S_t \ge h`, after which :math:`S` restarts at 0 [1]_ [2]_. This is the
    risk-adjusted CUSUM of Steiner et al. [3]_ with a constant risk; the odds
    ratio 2 ("the odds of an error doubled") is the alternative they design
    for. It watches rises only: a fall of the error rate is an improvement, not
    an alarm.

    *Exact calibration.* :math:`S` moves by :math:`+a = \log R - \log(1 - p_0 +
    R p_0)` on an error and by :math:`-b = -\log(1 - p_0 + R p_0)` otherwise. The
    ratio :math:`a / b` is replaced by the nearest fraction :math:`u / d` (the
    smallest :math:`d` with a relative error under 0.5 % and :math:`b / d \le
    0.05`), so :math:`S` lives on the integers: :math:`+u` per error, :math:`-d`
    per correct prediction. That chart is exactly the Bernoulli CUSUM for the
    slightly different :math:`p_1'` whose ratio is :math:`u / d`
    (``alternative_rate``; Reynolds & Stoumbos [2]_ also evaluate the
    Bernoulli CUSUM exactly on such a lattice). On the integers it is a Markov
    chain on :math:`0 .. H - 1` (Brook & Evans [4]_), whose run length from 0
    solves :math:`(I - Q) L = 1`, a banded system; :math:`H` is the integer
    threshold whose ARL under :math:`p_0` is nearest ``arl`` (searched by
    Newton steps on :math:`\log L`, which grows like :math:`\theta H`,
    :math:`\theta = b' / d` the lattice unit). The ARL is exact, not an
    approximation: simulated run lengths agree within their
    sampling error (``tests/detectors/test_cusum.py``; ``bench/concept.py``).

    *Choosing parameters.* ``arl`` is the false-alarm budget: at 1,000 labelled
    events a second, the default 1e7 is one false alarm in about three hours
    per model; the threshold, hence the delay, grows only with :math:`\log`
    ``arl`` (about :math:`\log(10) / K` more events per factor of 10, :math:`K`
    the Kullback-Leibler drift below). ``odds_ratio`` is the smallest rise worth
    catching fast: the delay after a change to a rate :math:`p` is about
    :math:`h / K` with :math:`K = p a - (1 - p) b`, and is shortest for
    :math:`p = p_1`; larger rises are still caught quickly (at :math:`p_0 =
    0.1`, a rise to 0.25 takes a median 158 events at the default, 134 with
    :math:`R = 3`, tuned to it exactly: ``bench/concept.py``), smaller ones
    and slow ramps late. The calibration trusts :math:`p_0`: if the
    in-control rate is really :math:`p_0 (1 + \varepsilon)`, the ARL is
    multiplied by about :math:`\exp(-\varepsilon h (p_1 - p_0) / ((1 - p_0)
    K_1))`, :math:`K_1 = p_1 a - (1 - p_1) b` (from Wald's adjustment
    coefficient; [5]_ studies estimated parameters). At :math:`p_0 = 0.1` and
    the defaults the factor in the exponent is 36: :math:`\varepsilon = +1\,\%`
    gives 0.73 times the ARL, :math:`+5\,\%` 0.22 (exact chain). Holding the
    ARL within 20 % needs :math:`p_0` within about 0.5 %, i.e. some 30,000
    reference errors; with fewer, raise ``arl`` to keep a margin.
    :math:`h / b` grows as :math:`1 / p_0`, so small reference rates cost more
    to calibrate (1 s at :math:`p_0 = 0.001`, once per parameter set: it is
    cached); rates that would need more than 200,000 states are refused.

    The batch form has no per-element loop: with :math:`C_t = S_0 + \sum_{i \le
    t} W_i` (integers), :math:`S_t = C_t - \min(0, \min_{i \le t} C_i)`
    (``np.cumsum``, ``np.minimum.accumulate``) up to the first drift, then it
    restarts there. Integer arithmetic makes it identical to the per-element
    recursion and its saved state exact.

    References
    ----------
    .. [1] E. S. Page. "Continuous Inspection Schemes". Biometrika 41 (1954), pp. 100-115.
    .. [2] M. R. Reynolds Jr., Z. G. Stoumbos. "A CUSUM Chart for Monitoring a
       Proportion When Inspecting Continuously". Journal of Quality Technology
       31 (1999), pp. 87-108.
    .. [3] S. H. Steiner, R. J. Cook, V. T. Farewell, T. Treasure. "Monitoring
       surgical performance using risk-adjusted cumulative sum charts".
       Biostatistics 1 (2000), pp. 441-452.
    .. [4] D. Brook, D. A. Evans. "An approach to the probability distribution
       of cusum run length". Biometrika 59 (1972), pp. 539-549.
    .. [5] L. A. Jones, C. W. Champ, S. E. Rigdon. "The Run Length
       Distribution of the CUSUM with Estimated Parameters". Journal of Quality
       Technology 36 (2004), pp. 95-108.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.cusum import CUSUM
    >>> rng = np.random.default_rng(1)
    >>> errors = np.concatenate([rng.random(5000) < 0.1, rng.random(500) < 0.3])
    >>> detector = CUSUM(reference_rate=0.1)
    >>> detector.update(errors).drifts
    array([5139, 5214, 5394, 5468])
    >>> round(detector.threshold, 2), round(detector.alternative_rate, 4)
    (12.23, 0.1828)

    The rate stays above the reference's after the change, so the detector,
    restarted after each drift, fires again: every drift is a true alarm.
    """

    name = "cusum"
    _PARAMS = ("reference_rate", "odds_ratio", "arl")
    reads = "binary"

    def __init__(
        self, reference_rate: float, odds_ratio: float = 2.0, arl: float = 10_000_000
    ) -> None:
        self.reference_rate = check_open_unit("reference_rate", reference_rate)
        odds_ratio = check_positive("odds_ratio", odds_ratio)
        if odds_ratio <= 1.0:
            raise ValueError(f"odds_ratio must be a finite number > 1, got {odds_ratio!r}")
        self.odds_ratio = odds_ratio
        self.arl = check_arl(arl)
        self._design = bernoulli_design(self.reference_rate, self.odds_ratio, self.arl)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._level = 0

    @property
    def alternative_rate(self) -> float:
        r""":math:`p_1'`, the error rate the integer chart is exactly the CUSUM for."""
        return self._design.alternative_rate

    @property
    def threshold(self) -> float:
        """:math:`h`, the threshold in log-likelihood units."""
        return self._design.height * self._design.unit

    @property
    def statistic(self) -> float:
        """:math:`S_t`, the current statistic in log-likelihood units."""
        return self._level * self._design.unit

    @property
    def expected_arl(self) -> float:
        """The exact in-control ARL of the chosen threshold (near ``arl``)."""
        return self._design.arl

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        design = self._design
        steps = np.where(x > 0.5, design.up, -design.down)
        level, drift_at = scan_lattice(self._level, steps, design.height)
        if drift_at >= 0:
            self._drift_detected = True
        self._level = level
        return _NONE, drift_at

    def _get_state(self) -> dict[str, Any]:
        return {"level": self._level}

    def _set_state(self, state: dict[str, Any]) -> None:
        level = state["level"]
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError(f"CUSUM state level must be an integer >= 0, got {level!r}")
        self._level = level


def check_arl(value: Any) -> float:
    """``value`` as a float in ``(1, 1e12]``, or a ``ValueError`` naming ``arl``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and 1.0 < value <= _MAX_ARL
    )
    if not ok:
        raise ValueError(f"arl must be a number in (1, {_MAX_ARL:g}], got {value!r}")
    return float(value)


def scan_lattice(level: int, steps: np.ndarray, height: int) -> tuple[int, int]:
    """Run :math:`S_t = \\max(0, S_{t-1} + y_t)` from ``level`` until :math:`S_t \\ge H`.

    Parameters
    ----------
    level : int
        :math:`S_0 \\ge 0`.
    steps : numpy.ndarray of int64
        The increments :math:`y_t`, in arrival order.
    height : int
        The alarm threshold :math:`H`.

    Returns
    -------
    tuple of (int, int)
        :math:`S` after the last element (or at the first alarm), and the
        position of the first alarm or -1.

    Examples
    --------
    >>> scan_lattice(0, np.array([2, -5, 3, 3, -1, 4]), 9)
    (9, 5)
    """
    path, hit = lattice_path(level, steps, height)
    return int(path[hit]), hit


def lattice_path(level: int, steps: np.ndarray, height: int) -> tuple[np.ndarray, int]:
    """:math:`S_t = \\max(0, S_{t-1} + y_t)` from ``level`` at every element, and the position
    of its first :math:`S_t \\ge H` or -1 (the path is :func:`scan_lattice`'s up to there).

    Examples
    --------
    >>> lattice_path(0, np.array([2, -5, 3, 3, -1, 4]), 9)
    (array([2, 0, 3, 6, 5, 9]), 5)
    """
    path = np.cumsum(steps)
    path += level
    floor = np.minimum.accumulate(path)
    np.minimum(floor, 0, out=floor)
    path -= floor
    hits = np.flatnonzero(path >= height)
    return path, int(hits[0]) if hits.size else -1


def lattice_arl(steps: np.ndarray, probabilities: np.ndarray, height: int) -> float:
    r"""Average run length from 0 of an integer CUSUM with i.i.d. increments (Brook & Evans).

    Parameters
    ----------
    steps : numpy.ndarray of int
        Possible increments :math:`j` of :math:`S_t = \max(0, S_{t-1} + Y_t)`.
    probabilities : numpy.ndarray
        :math:`P(Y = j)` for each step.
    height : int
        Alarm when :math:`S_t \ge H`.

    Returns
    -------
    float
        :math:`E[N]` from :math:`S_0 = 0`: the first element of the solution of
        :math:`(I - Q) L = 1` over the transient states :math:`0 .. H - 1`,
        where :math:`Q_{s, \max(0, s + j)} \mathrel{+}= P(Y = j)` when
        :math:`\max(0, s + j) < H`. The system is banded (one band per step),
        solved by LAPACK's banded LU.

    Examples
    --------
    >>> round(lattice_arl(np.array([1, -1]), np.array([0.25, 0.75]), 5), 3)
    716.0
    """
    steps = np.asarray(steps, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    lower = max(0, -int(steps.min()))
    upper = max(0, int(steps.max()))
    bands = np.zeros((lower + upper + 1, height))
    bands[upper] = 1.0
    for step, p in zip(steps.tolist(), probabilities.tolist(), strict=True):
        # Q[s, s + step] for 1 <= s + step < H sits in band row (upper - step).
        first, stop = max(1, step), min(height, height + step)
        if first < stop:
            bands[upper - step, first:stop] -= p
    # Q[s, 0] = P(Y <= -s) for s = 0 .. lower: every move to or below 0 lands on 0.
    rows = np.arange(min(height, lower + 1))
    to_zero = (probabilities[None, :] * (steps[None, :] <= -rows[:, None])).sum(axis=1)
    bands[upper + rows, 0] -= to_zero
    run = solve_banded((lower, upper), bands, np.ones(height), check_finite=False)
    return float(run[0])


def calibrate_height(
    steps: np.ndarray, probabilities: np.ndarray, arl: float, max_states: int = _MAX_STATES
) -> tuple[int, float]:
    r"""The integer threshold :math:`H` whose in-control ARL is nearest ``arl`` (in log).

    Parameters
    ----------
    steps, probabilities : numpy.ndarray
        The in-control distribution of the integer increments (negative mean).
    arl : float
        Target average run length.
    max_states : int, default 200_000
        Refuse thresholds above this many states (``ValueError``).

    Returns
    -------
    tuple of (int, float)
        :math:`H` and its exact ARL (:func:`lattice_arl`).

    Notes
    -----
    :math:`\log L(H)` grows like :math:`\theta H`, where :math:`\theta > 0`
    solves :math:`E[e^{\theta Y}] = 1` (Wald's adjustment coefficient; for a
    log-likelihood ratio in lattice units it is the unit itself). Newton steps
    :math:`H \leftarrow H + \mathrm{round}((\log \text{arl} - \log L(H)) / \theta)`
    from :math:`e^{\theta H} = \text{arl} \cdot \theta |E[Y]|` reach the
    target in a few solves; the neighbours of the last one settle the choice.

    Examples
    --------
    >>> height, arl = calibrate_height(np.array([1, -1]), np.array([0.25, 0.75]), 1000.0)
    >>> height, round(arl, 3)
    (5, 716.0)
    """
    steps = np.asarray(steps, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    drift = float(probabilities @ steps)
    if not drift < 0 or not (steps > 0).any():
        raise ValueError("the in-control increments must have a negative mean and a positive step")
    log_p = np.log(probabilities)

    def cumulant(theta: float) -> float:
        return float(logsumexp(log_p + theta * steps))

    high = 1.0 / float(steps.max())
    while cumulant(high) <= 0.0:
        high *= 2.0
    low = high
    while cumulant(low) >= 0.0:
        low /= 2.0
    theta = brentq(cumulant, low, high, xtol=1e-14, rtol=1e-12)
    target = math.log(arl)

    def arl_at(height: int) -> float:
        if height > max_states:
            raise ValueError(
                f"calibrating arl={arl:g} needs more than {max_states} states: "
                "the reference rate is too small or arl too large"
            )
        return lattice_arl(steps, probabilities, height)

    height = max(1, math.ceil((target + math.log(theta * -drift)) / theta))
    seen: dict[int, float] = {}
    for _ in range(40):
        seen[height] = arl_at(height)
        move = round((target - math.log(seen[height])) / theta)
        if move == 0 or height + move in seen:
            break
        height = max(1, height + move)
    for near in (height - 1, height + 1):
        if near >= 1 and near not in seen:
            seen[near] = arl_at(near)
    best = min(seen, key=lambda h: (abs(math.log(seen[h]) - target), h))
    return best, seen[best]


@dataclass(frozen=True)
class BernoulliDesign:
    up: int
    down: int
    unit: float
    height: int
    arl: float
    alternative_rate: float


@lru_cache(maxsize=256)
def bernoulli_design(p0: float, odds_ratio: float, arl: float) -> BernoulliDesign:
    """Integer steps, lattice unit, threshold and effective alternative of the chart."""
    b = math.log1p((odds_ratio - 1.0) * p0)
    a = math.log(odds_ratio) - b
    ratio = a / b
    limit = (1.0 - p0) / p0  # a / b tends to it as the odds ratio tends to 1
    down = max(1, math.ceil(b / _MAX_UNIT))
    while True:
        up = max(1, round(down * ratio))
        if abs(up / (down * ratio) - 1.0) <= _RATIO_TOLERANCE and up / down < limit:
            break
        down += 1

    # The odds ratio R' = 1 + e whose steps are exactly in the ratio up / down: the
    # mismatch is positive near e = 0 (as up / down < limit) and negative for large e.
    def mismatch(e: float) -> float:
        b_e = math.log1p(e * p0)
        return down * (math.log1p(e) - b_e) - up * b_e

    high = odds_ratio - 1.0
    while mismatch(high) > 0.0:
        high *= 2.0
    low = high
    while mismatch(low) <= 0.0:
        low /= 2.0
    effective = 1.0 + brentq(mismatch, low, high, xtol=1e-15, rtol=1e-14)
    b_eff = math.log1p((effective - 1.0) * p0)
    steps = np.array([up, -down], dtype=np.int64)
    height, expected = calibrate_height(steps, np.array([p0, 1.0 - p0]), arl)
    return BernoulliDesign(
        up=up,
        down=down,
        unit=b_eff / down,
        height=height,
        arl=expected,
        alternative_rate=effective * p0 / (1.0 - p0 + effective * p0),
    )
