"""Windowed two-proportion test: the recent error rate against the rate before it (STEPD)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

from .stream import StreamDetector, check_open_unit, check_positive_int


class ProportionTest(StreamDetector):
    r"""Two-proportion z-test of the last ``window`` error bits against all earlier ones.

    The statistical test of equal proportions of STEPD (Nishida & Yamauchi
    2007), two-sided by default. After every element, once the run holds
    ``window + min_reference`` elements, the error rate of the last ``window``
    elements is compared with the error rate of the elements before them (since
    the last drift).

    Parameters
    ----------
    window : int, default 30
        Recent elements tested (STEPD's :math:`W = 30`).
    min_reference : int, default 30
        Earlier elements needed before testing (defaults to STEPD's :math:`W`).
    alpha_drift : float, default 0.003
        Significance of a drift (STEPD's :math:`\alpha_d`).
    alpha_warning : float, default 0.05
        Significance of a warning (STEPD's :math:`\alpha_w`).
    two_sided : bool, default True
        ``True`` fires on a rise or a fall of the error rate (the significance
        split between both tails); ``False`` only on a rise, as STEPD does.

    Notes
    -----
    With :math:`r_o` errors in :math:`n_o` earlier elements, :math:`r_r` in the
    :math:`n_r` recent ones and :math:`\hat p = (r_o + r_r) / (n_o + n_r)`, the
    continuity-corrected statistic is

    .. math::
        T = \frac{|r_o/n_o - r_r/n_r| - \tfrac12 (1/n_o + 1/n_r)}
                 {\sqrt{\hat p (1 - \hat p) (1/n_o + 1/n_r)}}

    and a drift is :math:`T > z_{1 - \alpha_d/2}` (two-sided) or
    :math:`T > z_{1 - \alpha_d}` with :math:`r_r/n_r > r_o/n_o` (one-sided)
    [1]_. After a drift the test restarts from the next element. Counts are
    exact integers (running sums over the batch), so restoring a saved state
    gives bit-identical decisions. The state keeps the last ``window`` bits.

    With one test per element the false-alarm rate per element is far above
    ``alpha_drift`` times anything useful over long streams; for a daemon, pick
    a large ``window`` and a small ``alpha_drift`` (see ``bench/concept.py``).

    References
    ----------
    .. [1] K. Nishida, K. Yamauchi. "Detecting Concept Drift Using Statistical
       Testing". Discovery Science 2007, LNCS 4755, pp. 264-269.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.proportion_test import ProportionTest
    >>> rng = np.random.default_rng(11)
    >>> errors = np.concatenate([rng.random(5000) < 0.1, rng.random(2000) < 0.3])
    >>> ProportionTest(window=500, alpha_drift=1e-6, alpha_warning=1e-4).update(errors).drifts
    array([5203])
    """

    name = "proportion_test"
    _PARAMS = ("window", "min_reference", "alpha_drift", "alpha_warning", "two_sided")
    reads = "binary"

    def __init__(
        self,
        window: int = 30,
        min_reference: int = 30,
        alpha_drift: float = 0.003,
        alpha_warning: float = 0.05,
        two_sided: bool = True,
    ) -> None:
        self.window = check_positive_int("window", window)
        self.min_reference = check_positive_int("min_reference", min_reference)
        self.alpha_drift = check_open_unit("alpha_drift", alpha_drift)
        self.alpha_warning = check_open_unit("alpha_warning", alpha_warning)
        if self.alpha_warning < self.alpha_drift:
            raise ValueError(
                f"alpha_warning must be >= alpha_drift, got {alpha_warning!r} < {alpha_drift!r}"
            )
        if not isinstance(two_sided, bool):
            raise ValueError(f"two_sided must be a bool, got {two_sided!r}")
        self.two_sided = two_sided
        tails = 2.0 if two_sided else 1.0
        self._z_drift = float(ndtri(1.0 - self.alpha_drift / tails))
        self._z_warning = float(ndtri(1.0 - self.alpha_warning / tails))
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._errors = 0
        self._recent = np.empty(0, dtype=np.float64)

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        m = x.size
        tail = self._recent
        sums = np.cumsum(np.concatenate(([0.0], tail, x)))
        offset = tail.size + 1  # sums[offset + i] = errors of tail + x[: i + 1]
        stop = offset + np.arange(m)
        start = np.maximum(stop - self.window, 0)
        recent = sums[stop] - sums[start]
        n = self._n + 1 + np.arange(m)
        errors = self._errors + sums[stop] - sums[offset - 1]
        n_old = (n - self.window).astype(np.float64)
        ready = n_old >= self.min_reference
        with np.errstate(divide="ignore", invalid="ignore"):
            p_old = (errors - recent) / n_old
            p_recent = recent / self.window
            inverse = 1.0 / n_old + 1.0 / self.window
            pooled = errors / n
            scale = np.sqrt(pooled * (1.0 - pooled) * inverse)
            statistic = (np.abs(p_old - p_recent) - 0.5 * inverse) / scale
        statistic = np.where(ready & (scale > 0), statistic, -np.inf)
        if not self.two_sided:
            statistic = np.where(p_recent > p_old, statistic, -np.inf)
        drift = statistic > self._z_drift
        warn = (statistic > self._z_warning) & ~drift
        hits = np.flatnonzero(drift)
        if hits.size:
            at = int(hits[0])
            self._drift_detected = True
            self._warning_detected = False
            return np.flatnonzero(warn[:at]), at
        self._n += m
        self._errors = int(errors[-1])
        keep = np.concatenate((tail, x))[-self.window :]
        self._recent = keep
        self._warning_detected = bool(warn[-1])
        return np.flatnonzero(warn), -1

    def _get_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "errors": self._errors,
            "recent": [int(v) for v in self._recent],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._errors = int(state["errors"])
        self._recent = np.asarray(state["recent"], dtype=np.float64)
        if self._recent.size > self.window or self._recent.size > self._n:
            raise ValueError("proportion_test state keeps more recent bits than its window")
