"""DDM: the Drift Detection Method of Gama et al. (2004), batch form."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .stream import (
    StreamDetector,
    check_positive,
    check_positive_int,
    decode_float,
    encode_float,
)


class DDM(StreamDetector):
    r"""Drift Detection Method on a stream of error bits.

    Identical detections to ``river.drift.binary.DDM`` with the same
    parameters (one-sided, the default), at numpy speed.

    Parameters
    ----------
    warm_start : int, default 30
        Elements needed after a (re)start before anything is decided (River's default).
    warning_threshold : float, default 2.0
        :math:`w_l`, in minimum standard deviations (Gama et al.: 95 % level).
    drift_threshold : float, default 3.0
        :math:`d_l`, in minimum standard deviations (Gama et al.: 99 % level).
    two_sided : bool, default False
        ``False`` watches only rises of the error rate, exactly as River and the
        paper do. ``True`` also watches falls, mirroring the rule (our
        extension): the point where :math:`p_i - s_i` was largest gives
        :math:`p_{max}, s_{max}`, and :math:`p_i - s_i < p_{max} - d_l s_{max}`
        is a drift (:math:`w_l` a warning).

    Notes
    -----
    After element :math:`i` of the current run, :math:`p_i` is the error rate and
    :math:`s_i = \sqrt{p_i (1 - p_i) / i}`. Once :math:`i >` ``warm_start``, the
    point of smallest :math:`p_i + s_i` (ties: the later one) gives
    :math:`p_{min}, s_{min}`; :math:`p_i + s_i > p_{min} + w_l s_{min}` is a
    warning and :math:`p_i + s_i > p_{min} + d_l s_{min}` a drift, after which the
    detector restarts from the next element [1]_.

    The batch form computes :math:`p_i` as (errors / count) from exact integer
    counts, the running minimum with ``np.minimum.accumulate`` and its arg-point
    with ``np.maximum.accumulate`` over the positions of new minima, up to the
    first drift; then it restarts there. River's running mean differs from
    errors / count by a few ulps, which changes no decision on any stream we
    tested (``tests/quality/test_ddm.py``).

    References
    ----------
    .. [1] J. Gama, P. Medas, G. Castillo, P. Rodrigues. "Learning with Drift
       Detection". SBIA 2004, LNCS 3171, pp. 286-295.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.ddm import DDM
    >>> rng = np.random.default_rng(42)
    >>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(2000) < 0.3])
    >>> ddm = DDM()
    >>> found = ddm.update(errors)
    >>> found.drifts
    array([2500])
    >>> found.warnings[:3], found.warnings.size
    (array([85, 86, 87]), 1326)
    """

    name = "ddm"
    _PARAMS = ("warm_start", "warning_threshold", "drift_threshold", "two_sided")
    reads = "binary"

    def __init__(
        self,
        warm_start: int = 30,
        warning_threshold: float = 2.0,
        drift_threshold: float = 3.0,
        two_sided: bool = False,
    ) -> None:
        self.warm_start = check_positive_int("warm_start", warm_start, minimum=0)
        self.warning_threshold = check_positive("warning_threshold", warning_threshold)
        self.drift_threshold = check_positive("drift_threshold", drift_threshold)
        if not isinstance(two_sided, bool):
            raise ValueError(f"two_sided must be a bool, got {two_sided!r}")
        self.two_sided = two_sided
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0
        self._errors = 0
        self._p_min = math.nan
        self._s_min = math.nan
        self._ps_min = math.inf
        self._p_max = math.nan
        self._s_max = math.nan
        self._ps_max = -math.inf

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        m = x.size
        index = np.arange(m)
        n = (self._n + 1 + index).astype(np.float64)
        k = self._errors + np.cumsum(x)
        p = k / n
        s = np.sqrt(p * (1 - p) / n)
        active = n > self.warm_start

        up = p + s
        p_ref, s_ref, last_min = _running_extreme(
            np.where(active, up, np.inf), p, s, self._ps_min, self._p_min, self._s_min, lower=True
        )
        warn = active & (up > p_ref + self.warning_threshold * s_ref)
        drift = active & (up > p_ref + self.drift_threshold * s_ref)
        if self.two_sided:
            down = p - s
            q_ref, t_ref, last_max = _running_extreme(
                np.where(active, down, -np.inf),
                p,
                s,
                self._ps_max,
                self._p_max,
                self._s_max,
                lower=False,
            )
            warn |= active & (down < q_ref - self.warning_threshold * t_ref)
            drift |= active & (down < q_ref - self.drift_threshold * t_ref)

        hits = np.flatnonzero(drift)
        if hits.size:
            at = int(hits[0])
            self._drift_detected = True
            self._warning_detected = False
            return np.flatnonzero(warn[:at]), at
        self._n += m
        self._errors = int(k[-1])
        if last_min >= 0:
            self._p_min, self._s_min = float(p[last_min]), float(s[last_min])
            self._ps_min = float(up[last_min])
        if self.two_sided and last_max >= 0:
            self._p_max, self._s_max = float(p[last_max]), float(s[last_max])
            self._ps_max = float((p - s)[last_max])
        self._warning_detected = bool(warn[-1])
        return np.flatnonzero(warn), -1

    def _get_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "errors": self._errors,
            "p_min": _opt(self._p_min),
            "s_min": _opt(self._s_min),
            "ps_min": encode_float(self._ps_min),
            "p_max": _opt(self._p_max),
            "s_max": _opt(self._s_max),
            "ps_max": encode_float(self._ps_max),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._errors = int(state["errors"])
        self._p_min = _unopt(state["p_min"])
        self._s_min = _unopt(state["s_min"])
        self._ps_min = decode_float(state["ps_min"])
        self._p_max = _unopt(state["p_max"])
        self._s_max = _unopt(state["s_max"])
        self._ps_max = decode_float(state["ps_max"])


def _running_extreme(
    values: np.ndarray,
    p: np.ndarray,
    s: np.ndarray,
    start_value: float,
    start_p: float,
    start_s: float,
    *,
    lower: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``p`` and ``s`` at the running minimum (or maximum) of ``values``, ties to the later.

    Element ``i`` is a new extreme when ``values[i] <= min(start, values[:i])``
    (``>=`` for the maximum), as DDM's ``if p_i + s_i <= ps_min`` update. Returns
    the per-element ``p`` and ``s`` of the current extreme and the position of
    the last new extreme (-1 if none).
    """
    accumulate = np.minimum.accumulate if lower else np.maximum.accumulate
    before = np.empty_like(values)
    before[0] = start_value
    if values.size > 1:
        before[1:] = accumulate(values[:-1])
        before[1:] = (
            np.minimum(before[1:], start_value) if lower else np.maximum(before[1:], start_value)
        )
    is_new = values <= before if lower else values >= before
    is_new &= np.isfinite(values)
    where = np.maximum.accumulate(np.where(is_new, np.arange(values.size), -1))
    has = where >= 0
    safe = np.where(has, where, 0)
    return (
        np.where(has, p[safe], start_p),
        np.where(has, s[safe], start_s),
        int(where[-1]),
    )


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _unopt(value: float | None) -> float:
    return math.nan if value is None else float(value)
