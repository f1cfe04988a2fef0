"""HDDM-A: drift detection with Hoeffding's bound on moving averages (Frías-Blanco et al. 2015)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .stream import StreamDetector, check_open_unit, decode_float, encode_float


class HDDMA(StreamDetector):
    r"""HDDM with the A-test (averages) on a stream of error bits or values in [0, 1].

    Identical detections to ``river.drift.binary.HDDMA`` with the same
    parameters (``two_sided`` is River's ``two_sided_test``), vectorised.

    Parameters
    ----------
    drift_confidence : float, default 0.001
        Significance of a drift (River; the paper's :math:`\alpha_D`).
    warning_confidence : float, default 0.005
        Significance of a warning (River; the paper's :math:`\alpha_W`).
    two_sided : bool, default False
        ``False`` watches only rises of the mean (River's default); ``True``
        also watches falls, exactly as River's ``two_sided_test=True``.

    Notes
    -----
    With :math:`\bar z_n` the mean of the current run and
    :math:`\epsilon(n) = \sqrt{\ln(1/\alpha_D) / 2n}`, the cut point
    :math:`c` is the latest :math:`n` minimising :math:`\bar z_n + \epsilon(n)`
    (and, for falls, maximising :math:`\bar z_n - \epsilon(n)`). A rise at
    confidence :math:`\alpha` is
    :math:`\bar z_n - \bar z_c \ge \sqrt{\frac{n - c}{2 c n} \ln \frac{2}{\alpha}}`
    (Hoeffding's inequality for the difference of the two means) [1]_; a drift
    restarts the detector from the next element.

    The batch form takes the running means from sums, the cut points as
    running arg-extremes (``np.minimum.accumulate``), and tests every element
    up to the first drift at once. Rounding differs from River's incremental
    mean in the last bits, which changes no decision on any stream we tested
    (``tests/quality/test_hddm_a.py``).

    References
    ----------
    .. [1] I. Frías-Blanco, J. del Campo-Ávila, G. Ramos-Jiménez, R. Morales-Bueno,
       A. Ortiz-Díaz, Y. Caballero-Mota. "Online and Non-Parametric Drift Detection
       Methods Based on Hoeffding's Bounds". IEEE TKDE 27(3), 2015, pp. 810-823.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.hddm_a import HDDMA
    >>> rng = np.random.default_rng(5)
    >>> errors = np.concatenate([rng.random(3000) < 0.1, rng.random(1000) < 0.3])
    >>> HDDMA().update(errors).drifts
    array([3130])
    """

    name = "hddm_a"
    _PARAMS = ("drift_confidence", "warning_confidence", "two_sided")
    reads = "unit"

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided: bool = False,
    ) -> None:
        self.drift_confidence = check_open_unit("drift_confidence", drift_confidence)
        self.warning_confidence = check_open_unit("warning_confidence", warning_confidence)
        if not isinstance(two_sided, bool):
            raise ValueError(f"two_sided must be a bool, got {two_sided!r}")
        self.two_sided = two_sided
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._sum = 0.0
        self._min_n = 0
        self._min_mean = 0.0
        self._max_n = 0
        self._max_mean = 0.0
        # The cut points' bounded means, kept as River recomputes them.
        self._min_bound = math.inf
        self._max_bound = -math.inf

    def _epsilon(self, n: np.ndarray) -> np.ndarray:
        return np.sqrt(1.0 / (2 * n) * math.log(1.0 / self.drift_confidence))

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        m = x.size
        n = (self._n + 1 + np.arange(m)).astype(np.float64)
        totals = np.cumsum(np.concatenate(([self._sum], x)))[1:]
        z = totals / n
        eps = self._epsilon(n)

        min_n, min_mean, last_min = _cut_points(
            z + eps, n, z, self._min_bound, self._min_n, self._min_mean, lower=True
        )
        incr_drift = _significant(z - min_mean, n, min_n, self.drift_confidence)
        incr_warn = _significant(z - min_mean, n, min_n, self.warning_confidence)
        drift = incr_drift
        warn = ~incr_drift & incr_warn
        last_max = -1
        if self.two_sided:
            max_n, max_mean, last_max = _cut_points(
                z - eps, n, z, self._max_bound, self._max_n, self._max_mean, lower=False
            )
            decr_drift = _significant(max_mean - z, n, max_n, self.drift_confidence)
            decr_warn = _significant(max_mean - z, n, max_n, self.warning_confidence)
            warn = warn | (~decr_drift & decr_warn)
            drift = drift | decr_drift

        hits = np.flatnonzero(drift)
        if hits.size:
            at = int(hits[0])
            self._drift_detected = True
            self._warning_detected = bool(warn[at])
            return np.flatnonzero(warn[: at + 1]), at
        self._n += m
        self._sum = float(totals[-1])
        if last_min >= 0:
            self._min_n, self._min_mean = int(n[last_min]), float(z[last_min])
            self._min_bound = float(z[last_min] + eps[last_min])
        if last_max >= 0:
            self._max_n, self._max_mean = int(n[last_max]), float(z[last_max])
            self._max_bound = float(z[last_max] - eps[last_max])
        self._warning_detected = bool(warn[-1])
        return np.flatnonzero(warn), -1

    def _get_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "sum": self._sum,
            "min_n": self._min_n,
            "min_mean": self._min_mean,
            "min_bound": encode_float(self._min_bound),
            "max_n": self._max_n,
            "max_mean": self._max_mean,
            "max_bound": encode_float(self._max_bound),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._sum = float(state["sum"])
        self._min_n = int(state["min_n"])
        self._min_mean = float(state["min_mean"])
        self._min_bound = decode_float(state["min_bound"])
        self._max_n = int(state["max_n"])
        self._max_mean = float(state["max_mean"])
        self._max_bound = decode_float(state["max_bound"])


def _cut_points(
    bound: np.ndarray,
    n: np.ndarray,
    z: np.ndarray,
    start_bound: float,
    start_n: int,
    start_mean: float,
    *,
    lower: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Count and mean at the cut point after every element, and the last new cut point.

    Element ``i`` becomes the cut point when its bounded mean is ``<=`` (for the
    minimum; ``>=`` for the maximum) every earlier one, River's
    ``if x_min.mean + eps(x_min.n) >= z.mean + eps(z.n)``.
    """
    extreme = np.minimum if lower else np.maximum
    before = np.empty_like(bound)
    before[0] = start_bound
    if bound.size > 1:
        before[1:] = extreme(extreme.accumulate(bound[:-1]), start_bound)
    is_new = bound <= before if lower else bound >= before
    where = np.maximum.accumulate(np.where(is_new, np.arange(bound.size), -1))
    has = where >= 0
    safe = np.where(has, where, 0)
    return (
        np.where(has, n[safe], float(start_n)),
        np.where(has, z[safe], start_mean),
        int(where[-1]),
    )


def _significant(
    difference: np.ndarray, n: np.ndarray, cut_n: np.ndarray, confidence: float
) -> np.ndarray:
    """Hoeffding test of a difference of means between the cut point and now (River's order)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (n - cut_n) / cut_n * (1.0 / n)
        eps = np.sqrt(m / 2 * math.log(2.0 / confidence))
    return (cut_n != n) & (difference >= eps)
