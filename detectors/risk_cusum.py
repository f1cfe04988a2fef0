"""Risk-adjusted CUSUM: error bits weighed by what the reference says each score's error rate is."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Self

import numpy as np

from .cusum import _NONE, bernoulli_design, calibrate_height, check_arl, lattice_path
from .stream import StreamDetector, as_stream, check_positive, check_positive_int

# Lattice unit of the scored chart, in log-likelihood units: each weight is rounded to it.
UNIT = 0.01
DEFAULT_BINS = 20
MIN_ROWS_PER_BIN = 50
_MAX_FLIP = 0.5


class RiskCUSUM(StreamDetector):
    r"""Concept drift of a binary classifier, from its errors and the scores they were made at.

    The reference tells, for each band of scores, how often the model errs
    there; an error where the model is nearly always right weighs far more than
    one where it is often wrong. Two one-sided CUSUM charts read the stream, and
    either one's alarm is a drift:

    * the *scored* chart, Page's CUSUM of the log-likelihood ratio of each error
      bit under a changed concept (a share ``flip`` of labels no longer follows
      the reference's relation between score and label) against the reference's
      error rate at that score (the risk-adjusted CUSUM of Steiner et al. [1]_);
    * the *plain* chart, :class:`~driftwarden.detectors.cusum.CUSUM` on the error
      bits against the reference's overall error rate, tuned to ``odds_ratio``:
      it guards changes that raise the errors only where the model was already
      unsure, which carry little weight in the scored chart.

    Parameters
    ----------
    reference_bins : mapping
        ``edges`` (:math:`K - 1` increasing scores between the bins), ``rates``
        (:math:`K` error rates in (0, 1), :math:`p_k`) and ``shares`` (:math:`K`
        shares of the reference's rows, summing to 1): :func:`reference_bins`
        computes them from the reference's labelled rows.
    flip : float, default 0.1
        :math:`q` in (0, 0.5): the scored chart is fastest for the concept under
        which a share :math:`q` of labels is reversed, so that a score whose
        reference error rate is :math:`p_k` errs at :math:`p_k + q (1 - 2 p_k)`
        (an overall error rate of 0.10 rises to 0.18 whatever the spread of the
        rates, the rise ``odds_ratio`` 2 is tuned to).
    odds_ratio : float, default 2.0
        The plain chart's alternative (:class:`~driftwarden.detectors.cusum.CUSUM`).
    arl : float, default 1_000_000_000
        In-control average run length of the pair: mean number of labelled
        predictions between false alarms while the model errs at each score as on
        the reference (at 1,000 labels a second, one false alarm in 11.6 days).
        Each chart is calibrated exactly to ``2 * arl``.

    Notes
    -----
    A labelled prediction is the pair (error bit :math:`x_t`, score
    :math:`s_t`); its bin :math:`k` is where :math:`s_t` falls among the edges
    (a score equal to an edge belongs to the bin above it; a row without a score,
    NaN, weighs as the reference's overall error rate says). The scored chart adds
    :math:`W_t = x_t \log(p'_k / p_k) + (1 - x_t) \log((1 - p'_k) / (1 - p_k))`,
    :math:`p'_k = p_k + q (1 - 2 p_k)`, to :math:`S_t = \max(0, S_{t-1} +
    W_t)`, each weight rounded to a multiple of 0.01; a drift is :math:`S_t \ge
    h`.

    *One drift per excursion.* A chart that keeps restarting against a fixed
    reference fires again every few hundred labels while the error rate stays
    raised. Instead, at a drift both charts are *disarmed*: they go on, each
    capped at its threshold, and a disarmed chart is armed again once its
    statistic is back at 0 (the errors look like the reference's again). Only an
    armed chart reaching its threshold is a drift. So a change is reported once,
    and a later one after the model has returned to the reference's errors; a
    concept that stays changed, or changes further, is not reported again until
    then (refit the reference to watch the new concept). While the model errs as
    on the reference, a chart is disarmed only for the few hundred labels its
    statistic takes to fall back after a false alarm, so the ARL below holds.

    While the scores keep the reference's distribution (the shares) and the
    model errs at the reference's rate in each bin, the rounded increments are
    i.i.d. on the lattice, so the chart is a Markov chain whose run length from 0
    is exact (Brook & Evans, :func:`~driftwarden.detectors.cusum.lattice_arl`);
    :math:`h` is the lattice threshold whose ARL is nearest ``2 * arl``. With
    each chart at twice the target and both restarting after either's alarm, the
    pair's in-control ARL is about ``arl``: the run lengths are near-geometric
    and only weakly dependent (simulated 1.04 and 1.01 times targets of 1e5 and
    1e6 with accurate band rates, ``bench/concept.py``;
    ``tests/detectors/test_risk_cusum.py``).

    *Choosing parameters.* ``arl`` as for
    :class:`~driftwarden.detectors.cusum.CUSUM`. ``flip`` is the smallest change
    of concept worth catching fast; larger ones are caught sooner. The scored
    chart's gain over error bits alone is largest when the change reaches the
    confident predictions (an error at a score whose reference rate is 0.001
    moves :math:`S` by :math:`\log 100`, about a quarter of the way to :math:`h`
    at the defaults); a change confined to the scores the model was unsure of is
    the plain chart's to find. When only the scores drift (the model meets other
    inputs but errs at each score as on the reference), the scored chart's
    increments keep a negative mean in every band, so it stays quiet; the plain
    chart sees the overall error rate rise and may fire.

    *Calibration.* The ARL trusts the reference's rate in every bin, smoothed as
    :math:`(e_k + \tfrac12) / (n_k + 1)` so that a bin without errors still has
    a rate; the reference needs 50 labelled rows per bin (repeated scores can
    leave a bin between two of them with fewer, and a small share). Use a
    reference of some 20,000 labelled rows or more (1,000 per bin).

    The batch form maps every score to its bin with ``np.searchsorted``, looks
    up the integer weights and runs both lattice recursions with ``np.cumsum``
    and ``np.minimum.accumulate``
    (:func:`~driftwarden.detectors.cusum.lattice_path`; a disarmed chart as
    :math:`h - S`, whose cap is then a floor), from one arming or drift to the
    next; the saved state is the two integer statistics and whether each chart is
    armed, so restoring continues exactly.

    References
    ----------
    .. [1] S. H. Steiner, R. J. Cook, V. T. Farewell, T. Treasure. "Monitoring
       surgical performance using risk-adjusted cumulative sum charts".
       Biostatistics 1 (2000), pp. 441-452.
    .. [2] D. Brook, D. A. Evans. "An approach to the probability distribution
       of cusum run length". Biometrika 59 (1972), pp. 539-549.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.risk_cusum import RiskCUSUM
    >>> rng = np.random.default_rng(5)
    >>> scores = rng.beta(0.3, 0.3, 50_000)
    >>> errors = (scores >= 0.5) != (rng.random(scores.size) < scores)
    >>> detector = RiskCUSUM.from_reference(errors, scores)
    >>> later = rng.beta(0.3, 0.3, 3_000)
    >>> labels = rng.random(later.size) < later
    >>> labels[2_000:] ^= rng.random(1_000) < 0.2  # a fifth of the labels reverse
    >>> stream = np.column_stack([(later >= 0.5) != labels, later])
    >>> int(detector.update(stream).drifts[0])
    2112
    """

    name = "risk_cusum"
    _PARAMS = ("reference_bins", "flip", "odds_ratio", "arl")
    reads = "scored"

    def __init__(
        self,
        reference_bins: Mapping[str, Any],
        flip: float = 0.1,
        odds_ratio: float = 2.0,
        arl: float = 1_000_000_000,
    ) -> None:
        self._bins = ScoreBins.of(reference_bins)
        self.reference_bins = self._bins.to_json()
        self.flip = check_positive("flip", flip)
        if self.flip >= _MAX_FLIP:
            raise ValueError(f"flip must be a number in (0, {_MAX_FLIP}), got {flip!r}")
        self.odds_ratio = check_positive("odds_ratio", odds_ratio)
        if self.odds_ratio <= 1.0:
            raise ValueError(f"odds_ratio must be a finite number > 1, got {odds_ratio!r}")
        self.arl = check_arl(arl)
        bins = self._bins
        self._scored = _scored_design(bins.edges, bins.rates, bins.shares, self.flip, 2 * self.arl)
        self._plain = bernoulli_design(bins.overall_rate, self.odds_ratio, 2 * self.arl)
        self._edges = np.asarray(bins.edges)
        self._reset()

    @classmethod
    def from_reference(
        cls,
        errors: Any,
        scores: Any,
        flip: float = 0.1,
        odds_ratio: float = 2.0,
        arl: float = 1_000_000_000,
        bins: int = DEFAULT_BINS,
    ) -> Self:
        """The detector for the reference's error bits and scores (:func:`reference_bins`)."""
        return cls(reference_bins(errors, scores, bins), flip=flip, odds_ratio=odds_ratio, arl=arl)

    def _reset(self) -> None:
        super()._reset()
        self._levels = [0, 0]
        self._armed = [True, True]

    def _restart(self) -> None:
        """After a drift the charts go on, disarmed (see Notes): no fresh start."""
        self._drift_detected = False

    def _validate(self, values: Any) -> np.ndarray:
        return as_scored_stream(values)

    @property
    def thresholds(self) -> tuple[float, float]:
        """:math:`h` of the scored and the plain chart, in log-likelihood units."""
        return (
            self._scored.height * UNIT,
            self._plain.height * self._plain.unit,
        )

    @property
    def statistics(self) -> tuple[float, float]:
        """:math:`S_t` of the scored and the plain chart, in log-likelihood units."""
        return (self._levels[0] * UNIT, self._levels[1] * self._plain.unit)

    @property
    def armed(self) -> tuple[bool, bool]:
        """Whether the scored and the plain chart reaching its threshold is a drift now."""
        return (self._armed[0], self._armed[1])

    @property
    def chart_arls(self) -> tuple[float, float]:
        """The exact in-control ARL of each chart (near ``2 * arl``)."""
        return (self._scored.arl, self._plain.arl)

    def _scored_steps(self, x: np.ndarray) -> np.ndarray:
        errors = x[:, 0] > 0.5
        bins = np.searchsorted(self._edges, x[:, 1], side="right")
        bins[np.isnan(x[:, 1])] = self._edges.size + 1  # no score: the overall rate's weights
        return np.where(errors, self._scored.up[bins], self._scored.down[bins])

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        plain = np.where(x[:, 0] > 0.5, self._plain.up, -self._plain.down)
        steps = (self._scored_steps(x), plain)
        heights = (self._scored.height, self._plain.height)
        start = 0
        while start < x.shape[0]:
            paths, events = [], []
            for level, armed, chart, height in zip(
                self._levels, self._armed, steps, heights, strict=True
            ):
                if armed:  # S = max(0, S + W) until it reaches the threshold
                    path, event = lattice_path(level, chart[start:], height)
                else:  # S = min(h, max(0, S + W)) until it returns to 0: h - S from 0 to h
                    path, event = lattice_path(height - level, -chart[start:], height)
                    path = height - path
                paths.append(path)
                events.append(event)
            found = [event for event in events if event >= 0]
            if not found:
                self._levels = [int(path[-1]) for path in paths]
                return _NONE, -1
            at = min(found)
            levels = [int(path[at]) for path in paths]
            alarm = any(a and e == at for a, e in zip(self._armed, events, strict=True))
            levels = [min(max(level, 0), h) for level, h in zip(levels, heights, strict=True)]
            if alarm:
                self._levels = levels
                self._armed = [False, False]
                self._drift_detected = True
                return _NONE, start + at
            self._levels = levels
            self._armed = [a or e == at for a, e in zip(self._armed, events, strict=True)]
            start += at + 1
        return _NONE, -1

    def _get_state(self) -> dict[str, Any]:
        return {"levels": list(self._levels), "armed": list(self._armed)}

    def _set_state(self, state: dict[str, Any]) -> None:
        levels, armed = state["levels"], state["armed"]
        valid = (
            isinstance(levels, list)
            and len(levels) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in levels)
            and isinstance(armed, list)
            and len(armed) == 2
            and all(isinstance(v, bool) for v in armed)
        )
        if not valid:
            raise ValueError(
                "RiskCUSUM state must hold two integer levels >= 0 and two armed flags, "
                f"got {levels!r} and {armed!r}"
            )
        self._levels, self._armed = list(levels), list(armed)

    def __repr__(self) -> str:
        return (
            f"RiskCUSUM(reference_bins=<{len(self._bins.rates)} bins>, flip={self.flip!r}, "
            f"odds_ratio={self.odds_ratio!r}, arl={self.arl!r})"
        )


@dataclass(frozen=True)
class ScoreBins:
    """The reference's error rate in each band of scores, and its share of rows there."""

    edges: tuple[float, ...]
    rates: tuple[float, ...]
    shares: tuple[float, ...]

    @property
    def overall_rate(self) -> float:
        return float(np.dot(self.rates, self.shares))

    def to_json(self) -> dict[str, list[float]]:
        return {"edges": list(self.edges), "rates": list(self.rates), "shares": list(self.shares)}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ScoreBins:
        """Validated bins from their JSON form; a ``ValueError`` names what is wrong."""
        if not isinstance(data, Mapping) or set(data) != {"edges", "rates", "shares"}:
            raise ValueError(
                "reference_bins must be a mapping with exactly edges, rates and shares, "
                f"got {_keys(data)}"
            )
        edges = _numbers("reference_bins.edges", data["edges"])
        rates = _numbers("reference_bins.rates", data["rates"])
        shares = _numbers("reference_bins.shares", data["shares"])
        if edges.size < 1 or (np.diff(edges) <= 0).any():
            raise ValueError(
                "reference_bins.edges must hold at least one score, strictly increasing, "
                f"got {edges.tolist()[:4]}"
            )
        if rates.size != edges.size + 1 or shares.size != edges.size + 1:
            raise ValueError(
                f"reference_bins needs one rate and one share per bin ({edges.size + 1} "
                f"for {edges.size} edges), got {rates.size} rates and {shares.size} shares"
            )
        if not ((rates > 0) & (rates < 1)).all():
            raise ValueError(f"reference_bins.rates must lie in (0, 1), got {rates.tolist()[:4]}")
        if (shares < 0).any() or not math.isclose(shares.sum(), 1.0, abs_tol=1e-9):
            raise ValueError(
                f"reference_bins.shares must be >= 0 and sum to 1, got sum {shares.sum()!r}"
            )
        return cls(tuple(edges.tolist()), tuple(rates.tolist()), tuple(shares.tolist()))


def reference_bins(errors: Any, scores: Any, bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """``reference_bins`` of :class:`RiskCUSUM` from the reference's error bits and scores.

    The edges are the scores' quantiles at :math:`k / K` (the smallest score with
    at least that share of rows at or below it; repeated ones kept once, the
    lowest score dropped, as no score falls below it), each bin's rate is
    :math:`(e_k + \\frac12) / (n_k + 1)` and its share :math:`n_k / n`. Needs 50
    rows per bin (1,000 for the default 20).
    """
    bins = check_positive_int("bins", bins, minimum=2)
    bits = as_stream(errors, binary=True)
    values = as_stream(scores)
    if bits.size != values.size:
        raise ValueError(f"errors and scores differ in length: {bits.size} and {values.size}")
    if values.size < bins * MIN_ROWS_PER_BIN:
        raise ValueError(
            f"reference_bins needs at least {bins * MIN_ROWS_PER_BIN} labelled rows "
            f"({MIN_ROWS_PER_BIN} per bin), got {values.size}"
        )
    edges = np.unique(np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf"))
    edges = edges[edges > values.min()]
    if edges.size == 0:
        raise ValueError("reference_bins needs scores that are not all equal")
    index = np.searchsorted(edges, values, side="right")
    counts = np.bincount(index, minlength=edges.size + 1)
    wrong = np.bincount(index, weights=bits, minlength=edges.size + 1)
    return {
        "edges": edges.tolist(),
        "rates": ((wrong + 0.5) / (counts + 1.0)).tolist(),
        "shares": (counts / values.size).tolist(),
    }


def as_scored_stream(values: Any) -> np.ndarray:
    """One batch of (error bit, score) pairs as an ``(n, 2)`` float64 array, its error bits
    validated (any score places a row in a band; NaN is a row without one)."""
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"values must be an (n, 2) array of error bits and scores, got shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"values must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64)
    try:
        as_stream(array[:, 0], binary=True)
    except ValueError as error:
        raise ValueError(f"error bits: {error}") from None
    return array


@dataclass(frozen=True)
class _ScoredDesign:
    up: np.ndarray  # lattice step of an error, per bin, then for a row without a score
    down: np.ndarray  # lattice step of a correct prediction, likewise
    height: int
    arl: float


@lru_cache(maxsize=64)
def _scored_design(
    edges: tuple[float, ...],
    rates: tuple[float, ...],
    shares: tuple[float, ...],
    flip: float,
    arl: float,
) -> _ScoredDesign:
    """Integer weights per bin and the threshold whose in-control ARL is nearest ``arl``."""
    share = np.asarray(shares)
    p = np.append(rates, np.dot(rates, share))  # the last: a row without a score
    changed = p + flip * (1.0 - 2.0 * p)
    up = np.rint(np.log(changed / p) / UNIT).astype(np.int64)
    down = np.rint(np.log((1.0 - changed) / (1.0 - p)) / UNIT).astype(np.int64)
    steps = np.concatenate([up[:-1], down[:-1]])
    probabilities = np.concatenate([share * p[:-1], share * (1.0 - p[:-1])])
    kept = probabilities > 0
    height, expected = calibrate_height(steps[kept], probabilities[kept], arl)
    return _ScoredDesign(up=up, down=down, height=height, arl=expected)


def _numbers(name: str, value: Any) -> np.ndarray:
    ok = isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise ValueError(f"{name} must be a list of finite numbers, got {str(value)[:60]}")
    return np.asarray(value, dtype=np.float64)


def _keys(data: Any) -> str:
    return sorted(data) if isinstance(data, Mapping) else type(data).__name__
