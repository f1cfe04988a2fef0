"""CUSUM on losses: normal scores against the reference's loss quantiles, calibrated by ARL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Self

import numpy as np
from scipy.special import ndtr, ndtri

from .cusum import _NONE, calibrate_height, check_arl, scan_lattice
from .stream import StreamDetector, check_positive, check_positive_int

# Lattice resolution: increments are rounded to 1/32 of a standard deviation of the score.
RESOLUTION = 32
DEFAULT_KNOTS = 256
_MAX_SHIFT = 3.0


class LossCUSUM(StreamDetector):
    r"""One-sided CUSUM of a rise of the losses, distribution-free, calibrated by ARL.

    Each loss (an absolute error, a log loss: any real value) is turned into
    its normal score against the reference losses, which is standard normal
    while the losses keep the reference's distribution whatever that
    distribution is; a Gaussian mean-shift CUSUM on the scores then has the
    in-control average run length ``arl``.

    Parameters
    ----------
    reference_quantiles : list of float
        Quantiles :math:`q_0 \le \dots \le q_{m-1}` of the reference losses at
        levels :math:`l_i = (i + \tfrac12) / m` (:meth:`from_reference` computes
        them; :math:`m \ge 16`, not all equal).
    shift : float, default 0.5
        :math:`\delta`, the rise of the mean score, in standard deviations,
        detected fastest (:math:`0 < \delta \le 3`). 0.5 is the median loss moving
        to the reference's 69th percentile.
    arl : float, default 10_000_000
        In-control average run length: mean number of losses between false alarms.

    Notes
    -----
    *Score.* A loss :math:`x` between two distinct knots gets the level
    :math:`u` interpolated linearly between their levels and the score
    :math:`z = \Phi^{-1}(u)`; a loss equal to a knot shared by the knots
    :math:`a .. b - 1` (a point mass of the reference, such as exact zeros)
    gets :math:`E[\Phi^{-1}(U) \mid a/m < U < b/m] = (\varphi(\Phi^{-1}(a/m)) -
    \varphi(\Phi^{-1}(b/m))) m / (b - a)`, and a loss below :math:`q_0` or above
    :math:`q_{m-1}` the mean of the outer tail of mass :math:`\varepsilon = 1 /
    2m`, :math:`\mp \varphi(c) / \varepsilon`, :math:`c = \Phi^{-1}(1 -
    \varepsilon)` (3.2 at :math:`m = 256`). For continuous losses drawn from the
    reference distribution, :math:`z` is standard normal on :math:`(-c, c)`
    with masses :math:`\varepsilon` at the two tail means: the normal scores of
    the probability integral transform, a placement (precedence) statistic
    [3]_. Its influence is bounded: one outlier adds at most 3.2 - k.

    *Chart.* :math:`S_t = \max(0, S_{t-1} + z_t - k)`, :math:`k = \delta / 2`,
    drift when :math:`S_t \ge h` [1]_; the increment is rounded to
    :math:`1/32`, so :math:`S` is an integer multiple of :math:`1/32` and the
    chart is a Markov chain on the lattice, whose in-control run length
    (Brook & Evans [2]_; :func:`~driftwarden.detectors.cusum.lattice_arl`,
    exact for the score distribution above) sets :math:`h`. Siegmund's
    corrected approximation [4]_, :math:`\text{ARL} \approx (e^{2 k h'} - 2 k h'
    - 1) / 2k^2` with :math:`h' = h + 1.166`, agrees with it within a few
    percent. Ties in the losses make the scores of a point mass equal to its
    conditional mean: the mean stays 0, the variance drops, and the chart gets
    more conservative (longer in-control run lengths).

    *Choosing parameters.* ``arl`` as for :class:`~driftwarden.detectors.cusum.CUSUM`.
    ``shift``: the delay for a rise of the mean score by :math:`\Delta \ge k`
    is about :math:`(h + 1.166) / (\Delta - k)` (:math:`h \approx 27` at the
    defaults: about 110 losses for :math:`\Delta = 0.5`, 36 for 1); smaller
    shifts need a smaller :math:`\delta` and a larger :math:`h`. The reference
    must represent the in-control losses: with :math:`n` reference losses the
    in-control mean score is off by about :math:`1/\sqrt n`, which moves the ARL
    by a factor of about :math:`e^{\pm 2 h / \sqrt n}` (1.2 at :math:`n =
    10^5`, :math:`h = 27`): use a large reference [5]_.

    The batch form computes every score with ``np.searchsorted`` and
    ``scipy.special.ndtri``, rounds the increments to integers and runs the
    lattice recursion with ``np.cumsum`` and ``np.minimum.accumulate``
    (:func:`~driftwarden.detectors.cusum.scan_lattice`); restoring a saved
    state continues exactly.

    References
    ----------
    .. [1] E. S. Page. "Continuous Inspection Schemes". Biometrika 41 (1954), pp. 100-115.
    .. [2] D. Brook, D. A. Evans. "An approach to the probability distribution
       of cusum run length". Biometrika 59 (1972), pp. 539-549.
    .. [3] S. Chakraborti, P. van der Laan, S. T. Bakir. "Nonparametric Control
       Charts: An Overview and Some Results". Journal of Quality Technology 33
       (2001), pp. 304-315.
    .. [4] D. Siegmund. "Sequential Analysis: Tests and Confidence Intervals".
       Springer, 1985.
    .. [5] L. A. Jones, C. W. Champ, S. E. Rigdon. "The Run Length
       Distribution of the CUSUM with Estimated Parameters". Journal of Quality
       Technology 36 (2004), pp. 95-108.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.loss_cusum import LossCUSUM
    >>> rng = np.random.default_rng(3)
    >>> reference = np.abs(rng.normal(0.0, 1.0, 100_000))
    >>> detector = LossCUSUM.from_reference(reference)
    >>> losses = np.abs(np.concatenate([rng.normal(0, 1, 5000), rng.normal(0, 1.5, 300)]))
    >>> detector.update(losses).drifts
    array([5107, 5197, 5283])
    >>> detector.threshold
    26.9375
    """

    name = "loss_cusum"
    _PARAMS = ("reference_quantiles", "shift", "arl")
    reads = "real"

    def __init__(
        self,
        reference_quantiles: list[float],
        shift: float = 0.5,
        arl: float = 10_000_000,
    ) -> None:
        knots = np.asarray(reference_quantiles, dtype=np.float64)
        if knots.ndim != 1 or knots.size < 16:
            raise ValueError(
                "reference_quantiles must be a list of at least 16 numbers, "
                f"got shape {knots.shape}"
            )
        if not np.isfinite(knots).all() or (np.diff(knots) < 0).any() or knots[0] == knots[-1]:
            raise ValueError(
                "reference_quantiles must be finite, non-decreasing and not all equal, "
                f"got {_abridged(knots)}"
            )
        self.reference_quantiles = knots.tolist()
        self.shift = check_positive("shift", shift)
        if self.shift > _MAX_SHIFT:
            raise ValueError(f"shift must be a number in (0, {_MAX_SHIFT}], got {shift!r}")
        self.arl = check_arl(arl)
        self._table = _ScoreTable.build(knots)
        self._design = _normal_design(knots.size, self.shift, self.arl)
        self._reset()

    @classmethod
    def from_reference(
        cls,
        losses: Any,
        shift: float = 0.5,
        arl: float = 10_000_000,
        knots: int = DEFAULT_KNOTS,
    ) -> Self:
        """Build the detector from the reference losses (their ``knots`` quantiles are kept).

        Parameters
        ----------
        losses : array_like
            1-D finite reference losses, at least ``knots`` of them.
        shift, arl : float
            As in the constructor.
        knots : int, default 256
            Number of quantiles kept, :math:`m`.

        Returns
        -------
        LossCUSUM
        """
        knots = check_positive_int("knots", knots, minimum=16)
        values = np.asarray(losses, dtype=np.float64)
        if values.ndim != 1 or values.size < knots or not np.isfinite(values).all():
            raise ValueError(
                f"losses must be a 1-D array of at least knots={knots} finite values, "
                f"got shape {values.shape}"
            )
        levels = (np.arange(knots) + 0.5) / knots
        return cls(np.quantile(values, levels).tolist(), shift=shift, arl=arl)

    def _reset(self) -> None:
        super()._reset()
        self._level = 0

    @property
    def threshold(self) -> float:
        """:math:`h`, in standard deviations of the score."""
        return self._design.height / RESOLUTION

    @property
    def statistic(self) -> float:
        """:math:`S_t`, in standard deviations of the score."""
        return self._level / RESOLUTION

    @property
    def expected_arl(self) -> float:
        """The exact in-control ARL of the chosen threshold (near ``arl``)."""
        return self._design.arl

    def scores(self, values: Any) -> np.ndarray:
        """Normal scores :math:`z` of losses against the reference (see Notes)."""
        return self._table.scores(self._validate(values))

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        z = self._table.scores(x)
        z -= self.shift / 2.0
        z *= RESOLUTION
        steps = np.rint(z).astype(np.int64)
        level, drift_at = scan_lattice(self._level, steps, self._design.height)
        if drift_at >= 0:
            self._drift_detected = True
        self._level = level
        return _NONE, drift_at

    def _get_state(self) -> dict[str, Any]:
        return {"level": self._level}

    def _set_state(self, state: dict[str, Any]) -> None:
        level = state["level"]
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError(f"LossCUSUM state level must be an integer >= 0, got {level!r}")
        self._level = level

    def __repr__(self) -> str:
        return (
            f"LossCUSUM(reference_quantiles=<{len(self.reference_quantiles)} values>, "
            f"shift={self.shift!r}, arl={self.arl!r})"
        )


def _abridged(values: np.ndarray) -> str:
    shown = ", ".join(f"{v!r}" for v in values[:4].tolist())
    return f"[{shown}{', ...' if values.size > 4 else ''}] ({values.size} values)"


def _density_at_quantile(levels: np.ndarray) -> np.ndarray:
    """:math:`\\varphi(\\Phi^{-1}(l))` (0 at the levels 0 and 1)."""
    z = ndtri(levels)
    with np.errstate(over="ignore"):
        return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class _ScoreTable:
    values: np.ndarray  # distinct knots
    first_level: np.ndarray  # level of the first knot of each distinct value
    last_level: np.ndarray  # level of its last knot
    exact: np.ndarray  # score of a loss equal to the value
    tail: float  # score magnitude beyond the outer knots

    @classmethod
    def build(cls, knots: np.ndarray) -> _ScoreTable:
        m = knots.size
        values, first, counts = np.unique(knots, return_index=True, return_counts=True)
        stop = first + counts
        first_level = (first + 0.5) / m
        last_level = (stop - 0.5) / m
        with np.errstate(divide="ignore", invalid="ignore"):
            mass = counts / m
            pooled = (_density_at_quantile(first / m) - _density_at_quantile(stop / m)) / mass
        exact = np.where(counts == 1, ndtri(first_level), pooled)
        epsilon = 0.5 / m
        tail = float(_density_at_quantile(np.array([epsilon]))[0] / epsilon)
        return cls(values, first_level, last_level, exact, tail)

    def scores(self, x: np.ndarray) -> np.ndarray:
        values = self.values
        j = np.searchsorted(values, x, side="right") - 1
        inner = np.clip(j, 0, values.size - 2)
        left, right = values[inner], values[inner + 1]
        fraction = (x - left) / (right - left)
        start = self.last_level[inner]
        level = start + fraction * (self.first_level[inner + 1] - start)
        z = ndtri(np.clip(level, self.first_level[0], self.last_level[-1]))
        exact = (j >= 0) & (values[np.maximum(j, 0)] == x)
        z[exact] = self.exact[j[exact]]
        z[j < 0] = -self.tail
        z[(j == values.size - 1) & ~exact] = self.tail
        return z


@dataclass(frozen=True)
class _Design:
    height: int
    arl: float


@lru_cache(maxsize=64)
def _normal_design(knots: int, shift: float, arl: float) -> _Design:
    """Threshold of the lattice chart for the in-control score law at ``knots`` quantiles."""
    epsilon = 0.5 / knots
    c = -float(ndtri(epsilon))
    tail = float(_density_at_quantile(np.array([epsilon]))[0] / epsilon)
    k = shift / 2.0
    tails = np.rint(RESOLUTION * (np.array([-tail, tail]) - k)).astype(np.int64)
    steps = np.arange(min(tails[0], math.floor(RESOLUTION * (-c - k))), tails[1] + 1)
    # The continuous part, N(0, 1) on (-c, c); the bounds clip to it (empty cells get 0).
    upper = np.minimum((steps + 0.5) / RESOLUTION + k, c)
    lower = np.maximum((steps - 0.5) / RESOLUTION + k, -c)
    probabilities = np.maximum(ndtr(upper) - ndtr(lower), 0.0)
    probabilities[tails - steps[0]] += epsilon
    keep = probabilities > 0.0
    height, expected = calibrate_height(steps[keep], probabilities[keep], arl)
    return _Design(height=height, arl=expected)
