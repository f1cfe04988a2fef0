"""Page-Hinkley test (Page 1954), River's variant with a fading factor, batch form."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import lfilter

from .stream import (
    StreamDetector,
    check_positive,
    check_positive_int,
    decode_float,
    encode_float,
)

MODES = ("both", "up", "down")


class PageHinkley(StreamDetector):
    r"""Page-Hinkley change detector on a stream of losses or error bits.

    Identical detections to ``river.drift.PageHinkley`` with the same
    parameters (including its ``mode``), at numpy speed. Two-sided by default,
    as River's (``mode="both"``).

    Parameters
    ----------
    min_instances : int, default 30
        Elements needed after a (re)start before anything is decided (River's default).
    delta : float, default 0.005
        :math:`\delta`, the magnitude of change tolerated (River's default).
    threshold : float, default 50.0
        :math:`\lambda`, the cumulative deviation that is a drift (River's default).
    alpha : float, default 0.9999
        Fading factor of the cumulative sums (River's default ``1 - 0.0001``).
    mode : {"both", "up", "down"}, default "both"
        Watch rises, falls or both.

    Notes
    -----
    With :math:`\bar x_i` the running mean of the current run,
    :math:`U_i = \alpha U_{i-1} + (x_i - \bar x_i) - \delta` and
    :math:`L_i = \alpha L_{i-1} + (x_i - \bar x_i) + \delta`. A rise is
    :math:`U_i - \min_{j \le i} U_j > \lambda`, a fall
    :math:`\max_{j \le i} L_j - L_i > \lambda` (the maximum starts at -1, as in
    River), decided once ``min_instances`` elements were seen [1]_ [2]_.

    The batch form runs the two fading sums through ``scipy.signal.lfilter``
    (a compiled first-order recursion), the extremes through
    ``np.minimum.accumulate`` / ``np.maximum.accumulate``, up to the first
    drift; then it restarts there. Rounding differs from River's in the last
    bits (sum / count instead of an incremental mean, and the recursion's
    addition order), which changes no decision on any stream we tested
    (``tests/quality/test_page_hinkley.py``).

    References
    ----------
    .. [1] E. S. Page. "Continuous Inspection Schemes". Biometrika 41 (1954), pp. 100-115.
    .. [2] River, ``river/drift/page_hinkley.py`` (0.26).

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.page_hinkley import PageHinkley
    >>> rng = np.random.default_rng(7)
    >>> losses = np.concatenate([rng.normal(1.0, 0.2, 3000), rng.normal(1.5, 0.2, 1000)])
    >>> PageHinkley().update(losses).drifts
    array([3077])
    """

    name = "page_hinkley"
    _PARAMS = ("min_instances", "delta", "threshold", "alpha", "mode")

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.min_instances = check_positive_int("min_instances", min_instances, minimum=1)
        self.delta = check_positive("delta", delta, allow_zero=True)
        self.threshold = check_positive("threshold", threshold)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._sum = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = float("inf")
        self._max_decrease = -1.0

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        m = x.size
        n = (self._n + 1 + np.arange(m)).astype(np.float64)
        totals = np.cumsum(np.concatenate(([self._sum], x)))[1:]
        dev = x - totals / n
        a = [1.0, -self.alpha]
        increase = lfilter([1.0], a, dev - self.delta, zi=[self.alpha * self._sum_increase])[0]
        decrease = lfilter([1.0], a, dev + self.delta, zi=[self.alpha * self._sum_decrease])[0]
        min_increase = np.minimum(np.minimum.accumulate(increase), self._min_increase)
        max_decrease = np.maximum(np.maximum.accumulate(decrease), self._max_decrease)
        drift = np.zeros(m, dtype=bool)
        if self.mode != "down":
            drift |= increase - min_increase > self.threshold
        if self.mode != "up":
            drift |= max_decrease - decrease > self.threshold
        drift &= n >= self.min_instances
        hits = np.flatnonzero(drift)
        if hits.size:
            self._drift_detected = True
            return np.empty(0, dtype=np.int64), int(hits[0])
        self._n += m
        self._sum = float(totals[-1])
        self._sum_increase = float(increase[-1])
        self._sum_decrease = float(decrease[-1])
        self._min_increase = float(min_increase[-1])
        self._max_decrease = float(max_decrease[-1])
        return np.empty(0, dtype=np.int64), -1

    def _get_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "sum": self._sum,
            "sum_increase": self._sum_increase,
            "sum_decrease": self._sum_decrease,
            "min_increase": encode_float(self._min_increase),
            "max_decrease": encode_float(self._max_decrease),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._sum = float(state["sum"])
        self._sum_increase = float(state["sum_increase"])
        self._sum_decrease = float(state["sum_decrease"])
        self._min_increase = decode_float(state["min_increase"])
        self._max_decrease = decode_float(state["max_decrease"])
