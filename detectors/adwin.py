"""ADWIN: adaptive windowing (Bifet & Gavaldà 2007), River's variant, batch form."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .stream import StreamDetector, check_open_unit, check_positive_int

# Check times evaluated together; bounds the (check times x buckets) work arrays.
_CHECKS_PER_BLOCK = 1024
_NONE = np.empty(0, dtype=np.int64)
_ZERO_INT = np.zeros(1, dtype=np.int64)
_ZERO_FLOAT = np.zeros(1, dtype=np.float64)


class ADWIN(StreamDetector):
    r"""ADaptive WINdowing on a stream of losses or error bits.

    Same detections as ``river.drift.ADWIN`` with the same parameters: River
    checks for a change every ``clock`` elements, and so do we, at the same
    elements, against the same exponential-histogram window.

    Parameters
    ----------
    delta : float, default 0.002
        Significance :math:`\delta` of a cut (River's default).
    clock : int, default 32
        Check for a change every ``clock`` elements (River's default).
    max_buckets : int, default 5
        Buckets of each size kept before two are merged, :math:`M` (River's default;
        at least 2 here).
    min_window_length : int, default 5
        Smallest sub-window a cut may leave on either side (River's default).
    grace_period : int, default 10
        No check until the window holds more than this many elements (River's default).

    Notes
    -----
    The window is an exponential histogram: row :math:`r` holds up to :math:`M`
    buckets of :math:`2^r` elements, the two oldest of a row merging into the
    next row when it overflows [1]_. At a check, every bucket boundary but the
    newest splits the window into an older part :math:`W_0` (:math:`n_0`
    elements, mean :math:`\hat\mu_0`) and a newer part :math:`W_1`; with
    :math:`n` the window length, :math:`\sigma^2` its variance,
    :math:`\delta' = \ln(2 \ln n / \delta)` and
    :math:`m^{-1} = 1/(n_0 - l + 1) + 1/(n_1 - l + 1)` (:math:`l` =
    ``min_window_length``), the cut is a change when

    .. math::
        |\hat\mu_0 - \hat\mu_1| > \sqrt{2 m^{-1} \sigma^2 \delta'} + \tfrac{2}{3} \delta' m^{-1}.

    As River (0.26) does, a change restarts the detector with an empty window
    from the next element.

    The batch form has no per-element loop. Since a window is only ever cut by
    a drift, after which it restarts, its bucket layout is a function of its
    length :math:`t` alone: :math:`E_r(t) = \max(0, \lfloor (t - (M-1)(2^r-1))
    / 2^r \rfloor)` buckets have entered row :math:`r`, row :math:`r` holds
    :math:`E_r - 2 E_{r+1}`, and its :math:`k`-th oldest bucket ends at
    :math:`2^{r+1} E_{r+1} + (k+1) 2^r`. So every check of a batch is laid out
    at once as a (checks x buckets) array, and a bucket needs to store only the
    running total at its end (the older part's sum :math:`u_0`). A cheap
    necessary condition, :math:`|u_0 - n_0 u/n| > \sqrt{2 \sigma^2 \delta'
    n_0 n_1 / n} + \tfrac23 \delta'` (as :math:`m^{-1} \ge n / n_0 n_1`),
    screens the cuts; River's test runs, operation for operation, on the
    checks that pass. The window variance follows River's incremental update
    term by term (``np.cumsum`` adds in the same order); older sums come from
    the running total instead of River's sum of bucket totals: identical for
    error bits, last-bit differences for real values
    (``tests/quality/test_adwin.py``).

    References
    ----------
    .. [1] A. Bifet, R. Gavaldà. "Learning from Time-Changing Data with
       Adaptive Windowing". SIAM International Conference on Data Mining, 2007,
       pp. 443-448.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.adwin import ADWIN
    >>> rng = np.random.default_rng(1)
    >>> errors = np.concatenate([rng.random(5000) < 0.1, rng.random(2000) < 0.3])
    >>> ADWIN().update(errors).drifts
    array([5183])
    """

    name = "adwin"
    _PARAMS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = check_open_unit("delta", delta)
        self.clock = check_positive_int("clock", clock)
        self.max_buckets = check_positive_int("max_buckets", max_buckets, minimum=2)
        self.min_window_length = check_positive_int("min_window_length", min_window_length)
        self.grace_period = check_positive_int("grace_period", grace_period, minimum=0)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # Running total at the end of every bucket, oldest bucket first (their ends follow
        # from the width, see _layout), after the start of the window (position 0, total 0).
        self._ends = np.zeros(1, dtype=np.int64)
        self._totals = np.zeros(1, dtype=np.float64)
        self._total = 0.0
        self._variance = 0.0
        self._width = 0

    @property
    def width(self) -> int:
        """Number of elements in the window."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the window (0 when empty, as River)."""
        return self._total / self._width if self._width else 0.0

    def _scan(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._scan_batch(x)

    def _scan_batch(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        m = x.size
        width0 = self._width
        totals = np.empty(m + 1)
        totals[0] = self._total
        totals[1:] = x
        totals.cumsum(out=totals)
        # River's incremental variance, term by term and in its order of operations
        # ((w - 1) d d / w with d = x - total / (w - 1)); np.cumsum adds in River's order.
        before = np.arange(width0, width0 + m, dtype=np.float64)
        step = np.divide(totals[:-1], before)
        np.subtract(x, step, out=step)
        increment = before * step
        increment *= step
        before += 1.0
        increment /= before
        if width0 == 0:
            increment[0] = 0.0
        variances = np.empty(m + 1)
        variances[0] = self._variance
        variances[1:] = increment
        variances.cumsum(out=variances)
        totals = totals[1:]
        variances = variances[1:]

        # River checks when its tick (= the width: both restart together) is a multiple
        # of the clock and the width exceeds the grace period. The final width rides
        # along as the last row, to lay out the window kept for the next batch.
        clock = self.clock
        first = max(width0 + 1, self.grace_period + 1)
        first += -first % clock
        n_checks = max(0, (width0 + m - first) // clock + 1)
        for begin in range(0, max(n_checks, 1), _CHECKS_PER_BLOCK):
            k = min(_CHECKS_PER_BLOCK, n_checks - begin)
            last = begin + _CHECKS_PER_BLOCK >= n_checks
            at = np.empty(k + 1 if last else k, dtype=np.int64)
            at[:k] = np.arange(first + begin * clock, first + (begin + k) * clock, clock)
            if last:
                at[k] = width0 + m
            ends, counts = self._layout(at)
            older = totals.take(ends - (width0 + 1), mode="clip")
            old = ends <= width0
            older[old] = self._totals.take(self._ends.searchsorted(ends[old]))
            if k:
                fired = self._first_change(at[:k], ends[:k], older[:k], totals, variances, width0)
                if fired >= 0:
                    self._drift_detected = True
                    return _NONE, int(at[fired] - width0) - 1
        present = (_slots(self.max_buckets) <= counts[-1][:, None]).reshape(-1)
        self._ends = np.concatenate((_ZERO_INT, ends[-1][present]))
        self._totals = np.concatenate((_ZERO_FLOAT, older[-1][present]))
        self._width += m
        self._total = float(totals[-1])
        self._variance = float(variances[-1])
        return _NONE, -1

    def _layout(self, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End positions of every bucket slot, oldest first, for windows of the given widths.

        Row ``r`` is listed with ``max_buckets`` slots; an empty slot repeats the end of
        the row's newest bucket (or of the rows above it), so every entry is a bucket
        boundary and empty slots merely repeat a cut. Also returns the bucket counts
        per listed row.
        """
        big_m = self.max_buckets
        n_rows = max(1, (int(widths[-1]) + big_m - 1) // big_m).bit_length()
        base, shift, power_up, slots, size = _geometry(big_m, n_rows)
        # Buckets entered into rows n_rows..0 (oldest first): max(0, (t - base_r) >> r).
        entered = widths[:, None] - base
        entered >>= shift
        np.maximum(entered, 0, out=entered)
        above = entered[:, :-1]
        counts = entered[:, 1:] - 2 * above
        ends = np.minimum(slots, counts[:, :, None])
        ends *= size
        ends += (above * power_up)[:, :, None]
        return ends.reshape(widths.size, -1), counts

    def _first_change(
        self,
        widths: np.ndarray,
        ends: np.ndarray,
        older: np.ndarray,
        totals: np.ndarray,
        variances: np.ndarray,
        width0: int,
    ) -> int:
        """Index into ``widths`` of the first check with a cut that fires (or -1)."""
        at = widths - (width0 + 1)
        width = widths.astype(np.float64)[:, None]
        total = totals[at][:, None]
        variance = variances[at][:, None]
        delta_prime = np.log(2.0 * np.log(width) / self.delta)
        n0 = ends.astype(np.float64)
        n1 = width - n0
        # Necessary condition: with B = u0 - n0 u / n, |mu0 - mu1| = B n / (n0 n1) and
        # m_recip >= n / (n0 n1) (min_window_length >= 1), so a cut can only fire if
        # |B| > sqrt(2 (var / n) delta' n0 n1 / n) + 2/3 delta'; a margin covers rounding.
        margin = 1.0 - 1e-9
        scale = (2.0 * (variance / width) * delta_prime / width) * (margin * margin)
        bound = n0 * n1
        bound *= scale
        np.sqrt(bound, out=bound)
        bound += (2.0 / 3.0 * margin) * delta_prime
        deviation = n0 * (total / width)
        np.subtract(older, deviation, out=deviation)
        np.abs(deviation, out=deviation)
        maybe = deviation > bound
        if not maybe.any():
            return -1
        rows = np.flatnonzero(maybe.any(axis=1))
        # River's test, operation for operation, on the checks that may fire.
        n0, n1, width = n0[rows], n1[rows], width[rows]
        total, variance, older = total[rows], variance[rows], older[rows]
        mwl = float(self.min_window_length)
        delta_prime = delta_prime[rows]
        delta_mean = older / n0 - (total - older) / n1
        m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0)
        epsilon = np.sqrt(2.0 * m_recip * (variance / width) * delta_prime) + (
            2.0 / 3.0 * delta_prime * m_recip
        )
        cut = (n0 >= mwl) & (n1 >= mwl) & (np.abs(delta_mean) > epsilon)
        hits = np.flatnonzero(cut.any(axis=1))
        return int(rows[hits[0]]) if hits.size else -1

    def _get_state(self) -> dict[str, Any]:
        return {
            "totals": self._totals[1:].tolist(),
            "total": self._total,
            "variance": self._variance,
            "width": self._width,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._width = int(state["width"])
        self._total = float(state["total"])
        self._variance = float(state["variance"])
        self._totals = np.concatenate(([0.0], np.asarray(state["totals"], dtype=np.float64)))
        if self._width:
            ends, counts = self._layout(np.array([self._width], dtype=np.int64))
            present = (_slots(self.max_buckets) <= counts[-1][:, None]).ravel()
            ends = ends[-1][present]
        else:
            ends = np.empty(0, dtype=np.int64)
        self._ends = np.concatenate(([0], ends))
        if self._ends.size != self._totals.size:
            raise ValueError(
                f"ADWIN state is inconsistent: a window of {self._width} elements has "
                f"{self._ends.size} buckets, the state holds {self._totals.size} totals"
            )


@lru_cache(maxsize=64)
def _slots(max_buckets: int) -> np.ndarray:
    """Bucket numbers ``1..M`` within a row."""
    return np.arange(1, max_buckets + 1, dtype=np.int64)


@lru_cache(maxsize=256)
def _geometry(max_buckets: int, n_rows: int) -> tuple[np.ndarray, ...]:
    """Constants of the layout of rows ``n_rows - 1 .. 0``, listed oldest (highest) first.

    ``base`` and ``shift`` for rows ``n_rows .. 0``: :math:`(M - 1)(2^r - 1)` and
    :math:`r`; for the listed rows, ``power_up`` :math:`2^{r+1}` and ``size``
    :math:`2^r` (shaped to broadcast over slots); ``slots`` the bucket numbers ``1..M``.
    """
    r = np.arange(n_rows, -1, -1, dtype=np.int64)
    power = np.int64(1) << r
    base = (max_buckets - 1) * (power - 1)
    slots = np.arange(1, max_buckets + 1, dtype=np.int64)
    return base, r, power[:-1], slots, power[1:, None]
