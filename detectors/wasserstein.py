"""Normed Wasserstein-1 distance: from fine-bin summaries (bounded) and exact from raw rows."""

from __future__ import annotations

import numpy as np

from driftwarden.detectors.histogram import NumericSummary, check_numeric_pair, finite_edge_count
from driftwarden.detectors.ks import Columns, _as_columns, _pool_samples
from driftwarden.detectors.multiple_testing import (
    UNDEFINED,
    check_threshold,
    sample_status,
    to_results,
)
from driftwarden.detectors.result import DetectorResult


def _interpolated_abs_integral(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Integral over [0, 1] of |linear function from ``start`` to ``end``|."""
    same_sign = start * end >= 0.0
    total = np.abs(start) + np.abs(end)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = (start * start + end * end) / (2.0 * total)
    return np.where(same_sign, total / 2.0, crossing)


SUM_ROUNDING = 1e-9
"""Allowance for floating-point error in the summaries' sums, relative to ``sum |x - shift|``."""


def _displacement(summary: NumericSummary, anchor: np.ndarray, sign: float) -> np.ndarray:
    """Mean of ``sign * (x - anchor(bin of x))`` over a summary's values, plus a rounding allowance.

    ``anchor`` ``(F, B)`` is each bin's left end (``sign = 1``) or right end
    (``sign = -1``); every value lies on the same side of its anchor, so the
    mean displacement follows from the sum of the values, exactly but for
    floating-point rounding, which the allowance covers.
    """
    counts = summary.counts.astype(np.float64)
    n = counts.sum(axis=1)
    offset = np.where(counts > 0, anchor - summary.shift[:, None], 0.0)
    anchored = (counts * offset).sum(axis=1)
    moved = sign * (summary.shifted_sum - anchored)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(n * summary.shifted_sum_sq) + (counts * np.abs(offset)).sum(axis=1)
        return (np.maximum(moved, 0.0) + SUM_ROUNDING * scale) / n


def _binned_wasserstein(
    reference: NumericSummary, window: NumericSummary, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """W1 per feature from summaries (not normed) and its error bound, NaN where a side is empty.

    See :class:`Wasserstein` for the estimate and the bound.
    """
    ref = reference.counts.astype(np.float64)
    win = window.counts.astype(np.float64)
    n, m = ref.sum(axis=1), win.sum(axis=1)
    n_features, n_bins = ref.shape
    k = finite_edge_count(edges)
    beyond = np.arange(n_bins)[None, :] > k[:, None]
    # bin j spans [left[j], right[j]): the edges, closed by the observed extremes at both ends.
    left = np.full((n_features, n_bins), np.inf)
    right = np.full((n_features, n_bins), np.inf)
    left[:, 1:] = edges
    left[:, 0] = np.fmin(reference.minimum, window.minimum)
    right[:, :-1] = edges
    right[np.arange(n_features), np.minimum(k, n_bins - 1)] = np.fmax(
        reference.maximum, window.maximum
    )
    left[beyond] = right[beyond] = np.inf
    with np.errstate(invalid="ignore"):
        width = right - left
    width = np.where(np.isfinite(width) & (width > 0.0), width, 0.0)
    ref_cum, win_cum = np.cumsum(ref, axis=1), np.cumsum(win, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_end, win_end = ref_cum / n[:, None], win_cum / m[:, None]
        ref_start, win_start = (ref_cum - ref) / n[:, None], (win_cum - win) / m[:, None]
        # counts only: interpolated estimate inside [lower, upper]
        estimate = width * _interpolated_abs_integral(ref_start - win_start, ref_end - win_end)
        upper = width * np.maximum(ref_end - win_start, win_end - ref_start)
        lower = width * np.maximum(0.0, np.maximum(ref_start - win_end, win_start - ref_end))
        # moments: every value moved to its bin's left (right) end
        gap = np.abs(ref_end - win_end)
        down = (width * gap).sum(axis=1)
        up = (np.concatenate([width[:, 1:], np.zeros((n_features, 1))], axis=1) * gap).sum(axis=1)
        down_slack = _displacement(reference, left, 1.0) + _displacement(window, left, 1.0)
        up_slack = _displacement(reference, right, -1.0) + _displacement(window, right, -1.0)
    low = np.maximum.reduce([lower.sum(axis=1), down - down_slack, up - up_slack])
    high = np.minimum.reduce([upper.sum(axis=1), down + down_slack, up + up_slack])
    low, high = np.minimum(low, high), np.maximum(low, high)
    value = np.clip(estimate.sum(axis=1), low, high)
    return value, np.maximum(value - low, high - value)


class Wasserstein:
    """Wasserstein-1 distance divided by the reference standard deviation ("normed").

    Parameters
    ----------
    threshold : float, default 0.1
        Drift when the normed distance exceeds it (Evidently's default for
        its ``wasserstein`` test).

    Notes
    -----
    ``W1 = integral |F_ref(x) - F_win(x)| dx`` (the earth mover's distance in
    one dimension; Ramdas, Garcia Trillos and Cuturi, 2017), reported as
    ``W1 / sigma_ref`` with ``sigma_ref`` the population standard deviation
    of the reference (``numpy.std``), as Evidently's ``wasserstein`` test
    does. It reads as "how many reference standard deviations the window's
    mass moved on average"; a pure shift of ``delta`` gives ``|delta| /
    sigma_ref``.

    From summaries (:meth:`numeric`). Bin ``j`` spans ``[e_{j-1}, e_j)``;
    the open end bins are closed with the observed extremes of both sides
    (``min(ref_min, win_min)`` below, ``max(ref_max, win_max)`` above). On a
    bin of width ``w`` both distribution functions are known at its ends
    (``a_ref -> b_ref``, ``a_win -> b_win``). The estimate interpolates both
    linearly inside every bin (values spread uniformly) and integrates
    ``|F_ref - F_win|`` exactly: ``w (|d0| + |d1|) / 2`` when ``d0 = a_ref -
    a_win`` and ``d1 = b_ref - b_win`` have the same sign, ``w (d0^2 + d1^2) /
    (2 (|d0| + |d1|))`` otherwise. Bound: inside the bin ``|F_ref - F_win|``
    is at most ``max(b_ref - a_win, b_win - a_ref)`` and at least ``max(0,
    a_ref - b_win, a_win - b_ref)``; both are reached in the limit by moving
    the bin's values to its ends, and the bins are independent given their
    counts, so the counts alone allow any raw ``W1`` in ``[L, U] = [sum w
    lo_j, sum w hi_j]``.

    The sums tighten this. Moving every value down to its bin's left end
    moves it by ``x - left(x) >= 0``; the mean move of a sample, ``s``, is
    known exactly from its sum and counts (``s = (sum x - sum_j c_j left_j)
    / n``). W1 is 1-Lipschitz in such moves (``W1(F, F') <=`` mean move), so
    the raw ``W1`` is within ``s_ref + s_win`` of ``W1`` between the two
    moved-down samples, which the counts give exactly (``sum_j w_j |b_ref -
    b_win|``); the same holds moving every value up to its bin's right end.
    The raw ``W1`` lies in the intersection of the three intervals; the
    reported value is the interpolated estimate clipped into it and
    ``error_bound = max(value - low, high - value) / sigma_ref``
    (``sigma_ref`` is exact from the moments). A relative allowance of 1e-9
    of ``sum |x - shift|`` (bounded through the sum of squares) covers
    floating-point error in the sums. Values sitting on the edges (discrete
    data) make the moves 0 and the value exact; for continuous data the
    bound is about a fine bin's mass times the range; window mass outside the
    reference range, or the sparse extreme bins of a heavy tail, widen it
    (they are where the summaries cannot say where the values are).

    Exact (:meth:`exact`): ``scipy.stats.wasserstein_distance(ref, win) /
    ref.std()`` for all features at once (same arithmetic, different
    summation order: equal to about 1e-12).

    Statuses: ``insufficient_data`` when the reference or the window has no
    value; ``undefined`` when the reference is constant (``sigma_ref = 0``:
    the norm does not exist, whatever the window holds).

    Examples
    --------
    >>> from driftwarden.detectors.histogram import pad_edges, quantile_edges
    >>> rng = np.random.default_rng(42)
    >>> reference = rng.normal(size=(2, 20_000))
    >>> window = rng.normal(loc=[[0.0], [0.5]], size=(2, 5_000))
    >>> edges = pad_edges([quantile_edges(column) for column in reference])
    >>> shift = reference.mean(axis=1)
    >>> ref = NumericSummary.from_columns(reference, edges, shift)
    >>> win = NumericSummary.from_columns(window, edges, shift)
    >>> [(round(r.value, 4), round(r.error_bound, 4), r.drift)
    ...  for r in Wasserstein().numeric(ref, win, edges)]
    [(0.018, 0.0164, False), (0.4641, 0.0172, True)]
    >>> [round(r.value, 4) for r in Wasserstein().exact(reference, window)]
    [0.0178, 0.4615]
    """

    name = "wasserstein"
    applies_to = ("numeric",)

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = check_threshold(threshold)

    def numeric(
        self, reference: NumericSummary, window: NumericSummary, edges: np.ndarray
    ) -> list[DetectorResult]:
        """Normed W1 per numeric feature from fine-bin summaries, with its error bound."""
        check_numeric_pair(reference, window, edges)
        n, m = reference.n, window.n
        distance, bound = _binned_wasserstein(reference, window, edges)
        sigma = np.sqrt(reference.variance)
        status = sample_status(n, m)
        status[(status == "ok") & (reference.minimum == reference.maximum)] = UNDEFINED
        with np.errstate(divide="ignore", invalid="ignore"):
            value, bound = distance / sigma, bound / sigma
        return to_results(
            value, status, self.threshold, n_reference=n, n_window=m, error_bound=bound
        )

    def exact(self, reference: Columns, window: Columns) -> list[DetectorResult]:
        """Normed W1 per feature on raw values (NaN and ±inf are missing and dropped)."""
        ref, win = _as_columns(reference), _as_columns(window)
        pooled = _pool_samples(ref, win)
        n, m = pooled.n_reference, pooled.n_window
        values = pooled.values
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.abs(
                pooled.reference_at[:, :-1] / n[:, None] - pooled.window_at[:, :-1] / m[:, None]
            )
            deltas = np.diff(values, axis=1)
            step = np.where(pooled.valid[:, 1:], gap * deltas, 0.0)
            distance = step.sum(axis=1)
            centred = ref - (np.nansum(ref, axis=1) / n)[:, None]
            sigma = np.sqrt(np.nansum(centred * centred, axis=1) / n)
        status = sample_status(n, m)
        constant = np.fmin.reduce(ref, axis=1, initial=np.inf) == np.fmax.reduce(
            ref, axis=1, initial=-np.inf
        )
        status[(status == "ok") & constant] = UNDEFINED
        with np.errstate(divide="ignore", invalid="ignore"):
            value = distance / sigma
        return to_results(value, status, self.threshold, n_reference=n, n_window=m, error_bound=0.0)
