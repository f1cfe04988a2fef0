"""Challenger against champion on separate traffic (A/B): rates and mean losses.

Every comparison of a challenger model version with the champion returns a
:class:`ComparisonResult` per metric: the difference *challenger − champion*
in the metric's own units, its confidence interval, a two-sided p-value and a
``worse`` / ``better`` decision at ``alpha``. This module holds that result,
the mergeable :class:`Moments` of a per-row loss, and the two unpaired tests,
for versions that score different requests: :func:`two_proportion_comparison`
(rates from counts) and :func:`welch_comparison` (mean losses). The paired
tests, for versions that score the same requests (shadow traffic), are in
:mod:`driftwarden.detectors.pairing`.

Each test needs a minimum of rows (per arm) or of pairs, by default the 500
labelled rows a window needs before its performance is reported
(``DEFAULT_MIN_LABELED``), and never fewer than the test can use (1 for a
rate, 2 for a t-test): below it the result is ``insufficient_data``. A
t-test on data without spread (identical losses) is ``undefined``. Neither
carries numbers or a decision, as with
:class:`~driftwarden.detectors.result.DetectorResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import ndtr

from .intervals import DEFAULT_CONFIDENCE, wilson_interval
from .metric_results import METRIC_DIRECTIONS, check_count
from .performance_binary import DEFAULT_MIN_LABELED
from .result import Status
from .stream import check_open_unit

DEFAULT_ALPHA = 0.05
"""Significance of a ``worse`` or ``better`` decision."""

COMPARISON_DIRECTIONS: Mapping[str, bool] = {
    "error_rate": False,
    "loss": False,
    "squared_error": False,
    "absolute_error": False,
    "estimated_error_rate": False,
}
"""Whether higher is better, for metric names of comparisons beyond ``METRIC_DIRECTIONS``."""

_ZERO_SPREAD = 64.0 * float(np.finfo(np.float64).eps)


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """The challenger against the champion on one metric of one window.

    Attributes
    ----------
    metric : str
        The metric compared (``"error_rate"``, ``"log_loss"``, ...).
    method : str
        ``"mcnemar_exact"``, ``"paired_t"``, ``"two_proportion_z"`` or ``"welch_t"``.
    higher_is_better : bool
        The metric's direction: false for error rates and losses.
    confidence : float
        Coverage of ``(ci_low, ci_high)``.
    alpha : float
        Significance of the decision.
    difference : float or None
        Challenger − champion, in the metric's own orientation.
    ci_low, ci_high : float or None
        Confidence interval of ``difference``.
    p_value : float or None
        Two-sided p-value of "no difference".
    statistic : float or None
        The z or t statistic (``None`` for McNemar's exact test).
    df : float or None
        Degrees of freedom of a t statistic.
    worse, better : bool
        ``p_value < alpha`` and ``difference`` points the bad (good) way for
        the metric's direction; never both.
    status : {"ok", "insufficient_data", "undefined"}
        As :class:`~driftwarden.detectors.result.DetectorResult`: a result that
        is not ``ok`` carries no numbers and no decision.
    n_pairs : int or None
        Requests scored by both versions (paired tests).
    n_champion, n_challenger : int or None
        Rows per arm (unpaired tests).
    """

    metric: str
    method: str
    higher_is_better: bool
    confidence: float
    alpha: float
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    statistic: float | None = None
    df: float | None = None
    worse: bool = False
    better: bool = False
    status: Status = "ok"
    n_pairs: int | None = None
    n_champion: int | None = None
    n_challenger: int | None = None

    def __post_init__(self) -> None:
        numbers = ("difference", "ci_low", "ci_high", "p_value", "statistic", "df")
        if self.status != "ok":
            if self.worse or self.better or any(getattr(self, f) is not None for f in numbers):
                raise ValueError(
                    f"a comparison with status {self.status!r} carries no numbers and no decision"
                )
            return
        for name in ("difference", "ci_low", "ci_high", "p_value"):
            if getattr(self, name) is None:
                raise ValueError(f"an ok comparison needs {name}")
        for name in numbers:
            number = getattr(self, name)
            if number is not None and not math.isfinite(number):
                raise ValueError(f"{name} must be finite or None, got {number!r}")
        if not 0.0 <= self.p_value <= 1.0:
            raise ValueError(f"p_value must lie in [0, 1], got {self.p_value!r}")
        if self.worse and self.better:
            raise ValueError("a comparison cannot be both worse and better")

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """``(ci_low, ci_high)``."""
        return self.ci_low, self.ci_high


@dataclass(frozen=True, slots=True)
class Moments:
    r"""Mergeable count, mean and sum of squared deviations of one per-row quantity.

    Attributes
    ----------
    n : int
        Rows.
    shift : float
        A constant :math:`c` near the mean, so that ``shifted_mean`` is small
        and exact to its last digits.
    shifted_mean : float
        :math:`\bar x - c` (0 when ``n`` is 0).
    m2 : float
        :math:`\sum (x - \bar x)^2`.

    Notes
    -----
    Two summaries merge by the pairwise update of Chan, Golub & LeVeque [1]_:
    with :math:`\delta = \bar x_b - \bar x_a`,

    .. math::
        \bar x = \bar x_a + \delta\, n_b / n, \qquad
        M_2 = M_{2,a} + M_{2,b} + \delta^2 n_a n_b / n,

    a sum of non-negative terms. Raw sums :math:`\sum x`, :math:`\sum x^2`
    would lose every digit of the variance of losses around :math:`10^6`
    with a standard deviation of :math:`10^{-3}`; and a mean stored alone
    carries a rounding of :math:`\epsilon |\bar x|` into every
    :math:`\delta` (about :math:`10^{-8}` of such a variance over a thousand
    panes). The mean is therefore kept as ``shift`` + ``shifted_mean``:
    :meth:`from_values` takes ``shift`` = the rounded mean and
    ``shifted_mean`` = the mean of :math:`x - c` (the rounding left over),
    with the corrected two-pass :math:`M_2` [1]_; a merge keeps the left
    summary's shift and moves the right one's mean onto it,
    :math:`(c_b - c_a) + (\bar x_b - c_b)`, a difference of nearby numbers
    that is exact (Sterbenz). Merging is associative and commutative up to
    rounding, so panes add up to windows and partitions to one summary;
    ``to_state()`` / ``from_state()`` give JSON data.

    References
    ----------
    .. [1] T. F. Chan, G. H. Golub, R. J. LeVeque. "Algorithms for Computing
       the Sample Variance: Analysis and Recommendations". The American
       Statistician 37 (1983), pp. 242-247.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.comparison import Moments
    >>> rng = np.random.default_rng(5)
    >>> loss = 1e6 + rng.normal(0, 1e-3, 10_000)
    >>> whole = Moments.empty()
    >>> for part in np.array_split(loss, 1000):
    ...     whole = whole.merge(Moments.from_values(part))
    >>> whole.n, bool(abs(whole.variance / np.var(loss, ddof=1) - 1) < 1e-12)
    (10000, True)
    """

    n: int
    shift: float
    shifted_mean: float
    m2: float

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise ValueError(f"n must be a non-negative int, got {self.n!r}")
        for name in ("shift", "shifted_mean", "m2"):
            value = getattr(self, name)
            if not isinstance(value, float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite float, got {value!r}")
        if self.m2 < 0.0:
            raise ValueError(f"m2 must be >= 0, got {self.m2!r}")
        if self.n == 0 and (self.shifted_mean != 0.0 or self.m2 != 0.0):
            raise ValueError(
                f"moments of no rows have shifted_mean 0 and m2 0, got {self.shifted_mean}, "
                f"{self.m2}"
            )

    @classmethod
    def empty(cls, shift: float = 0.0) -> Moments:
        """The summary of no rows."""
        return cls(0, _check_number("shift", shift), 0.0, 0.0)

    @classmethod
    def from_values(cls, values: Any, name: str = "values") -> Moments:
        """Summarise a 1-D array of finite values (``name`` appears in errors)."""
        x = check_finite_values(values, name)
        if x.size == 0:
            return cls.empty()
        shift = float(np.mean(x))
        residual = x - shift
        total = float(np.sum(residual))
        m2 = float(np.dot(residual, residual)) - total * total / x.size
        return cls(int(x.size), shift, total / x.size, max(m2, 0.0))

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float, shift: float = 0.0) -> Moments:
        r"""From :math:`n`, :math:`\sum (x - c)` and :math:`\sum (x - c)^2` with shift :math:`c`.

        The variance keeps about :math:`-\log_{10}(\epsilon\, m / s^2)`
        digits, :math:`m` the mean of :math:`(x - c)^2` and :math:`s^2` the
        variance: sums are only as good as their shift is near the mean (as
        the shifted sums of
        :class:`~driftwarden.detectors.performance_regression.RegressionPerformanceSummary`).
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        total = _check_number("total", total)
        total_sq = _check_number("total_sq", total_sq)
        shift = _check_number("shift", shift)
        if n == 0:
            if total != 0 or total_sq != 0:
                raise ValueError(f"sums of no rows must be 0, got {total!r}, {total_sq!r}")
            return cls.empty(shift)
        if total_sq < 0:
            raise ValueError(f"total_sq must be >= 0, got {total_sq!r}")
        return cls(n, shift, total / n, max(total_sq - total * total / n, 0.0))

    @property
    def mean(self) -> float:
        """:math:`\bar x` (0 when empty)."""
        return self.shift + self.shifted_mean if self.n else 0.0

    @property
    def variance(self) -> float | None:
        """Unbiased variance :math:`M_2 / (n - 1)`; ``None`` below two rows."""
        return self.m2 / (self.n - 1) if self.n > 1 else None

    def merge(self, other: Moments) -> Moments:
        """The summary of both sets of rows together (with this summary's shift)."""
        if not isinstance(other, Moments):
            raise ValueError(f"only Moments merge with Moments, got {type(other).__name__}")
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        other_mean = (other.shift - self.shift) + other.shifted_mean
        delta = other_mean - self.shifted_mean
        shifted_mean = self.shifted_mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.n * (other.n / n))
        return Moments(n, self.shift, shifted_mean, m2)

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {
            "n": self.n,
            "shift": self.shift,
            "shifted_mean": self.shifted_mean,
            "m2": self.m2,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Moments:
        """Rebuild a summary from :meth:`to_state` output."""
        return cls(
            int(state["n"]),
            float(state["shift"]),
            float(state["shifted_mean"]),
            float(state["m2"]),
        )


def higher_is_better_of(metric: str, higher_is_better: bool | None = None) -> bool:
    """The direction of ``metric``: ``higher_is_better`` if given, else looked up by name.

    Names of ``COMPARISON_DIRECTIONS`` and of the result records'
    ``METRIC_DIRECTIONS`` are known (a metric that crosses its threshold
    *below* is one where higher is better; ``recall_<class>`` too); any other
    name needs ``higher_is_better``.
    """
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric must be a non-empty string, got {metric!r}")
    if higher_is_better is not None:
        if not isinstance(higher_is_better, bool):
            raise ValueError(f"higher_is_better must be a bool or None, got {higher_is_better!r}")
        return higher_is_better
    if metric in COMPARISON_DIRECTIONS:
        return COMPARISON_DIRECTIONS[metric]
    if metric.startswith("recall_"):
        return True
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric] == "below"
    raise ValueError(f"unknown direction of metric {metric!r}: pass higher_is_better")


def check_levels(confidence: float, alpha: float) -> tuple[float, float]:
    """``confidence`` and ``alpha`` as floats in ``(0, 1)``, or a ``ValueError`` naming one."""
    return check_open_unit("confidence", confidence), check_open_unit("alpha", alpha)


def check_finite_values(values: Any, name: str) -> np.ndarray:
    """A 1-D float64 array of finite values, or a ``ValueError`` naming the first bad one."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite, got {float(array[where])!r} at {where}")
    return array


def metric_names(
    metric: str | Sequence[str], higher_is_better: bool | None = None
) -> tuple[list[str], list[bool], bool]:
    """The names of one call, whether higher is better for each, and whether one name was given."""
    single = isinstance(metric, str)
    names = [metric] if single else list(metric)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"metric must be a name or a non-empty sequence of names, got {metric!r}")
    return names, [higher_is_better_of(name, higher_is_better) for name in names], single


def zero_spread(variance: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Whether a variance is rounding noise: a standard deviation within 64 ε of ``|mean|``."""
    return np.sqrt(variance) <= _ZERO_SPREAD * np.abs(mean)


def t_test(
    difference: np.ndarray, se: np.ndarray, df: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(t, p_value, low, high)`` of ``difference / se`` on ``df`` degrees of freedom.

    Two-sided: :math:`p = 2 F_{df}(-|t|)`; the interval is
    ``difference ± t_{df, (1 + confidence)/2} se``. Inputs must have
    ``se > 0`` and ``df > 0``.
    """
    statistic = difference / se
    p_value = 2.0 * stats.t.sf(np.abs(statistic), df)
    half = stats.t.ppf(0.5 + confidence / 2.0, df) * se
    return statistic, np.minimum(p_value, 1.0), difference - half, difference + half


def comparisons(
    metrics: Sequence[str],
    method: str,
    directions: Sequence[bool],
    confidence: float,
    alpha: float,
    status: np.ndarray,
    numbers: Mapping[str, np.ndarray],
    counts: Mapping[str, np.ndarray],
) -> list[ComparisonResult]:
    """One :class:`ComparisonResult` per metric from per-metric arrays, with the decision.

    ``numbers`` holds arrays named as the result's fields (``difference``,
    ``ci_low``, ``ci_high``, ``p_value``, optionally ``statistic`` and
    ``df``), read only where ``status`` is ``"ok"``; ``counts`` the
    ``n_pairs`` or ``n_champion`` / ``n_challenger`` arrays; ``directions``
    whether higher is better, per metric.
    """
    results = []
    for i, metric in enumerate(metrics):
        higher = directions[i]
        common: dict[str, Any] = {key: int(value[i]) for key, value in counts.items()}
        if status[i] != "ok":
            results.append(
                ComparisonResult(
                    metric, method, higher, confidence, alpha, status=str(status[i]), **common
                )
            )
            continue
        values = {key: float(value[i]) for key, value in numbers.items()}
        significant = values["p_value"] < alpha
        difference = values["difference"]
        improved = difference > 0.0 if higher else difference < 0.0
        degraded = difference < 0.0 if higher else difference > 0.0
        results.append(
            ComparisonResult(
                metric,
                method,
                higher,
                confidence,
                alpha,
                worse=significant and degraded,
                better=significant and improved,
                **values,
                **common,
            )
        )
    return results


def two_proportion_comparison(
    champion_successes: Any,
    champion_trials: Any,
    challenger_successes: Any,
    challenger_trials: Any,
    metric: str | Sequence[str] = "error_rate",
    *,
    higher_is_better: bool | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    min_per_arm: int = DEFAULT_MIN_LABELED,
) -> ComparisonResult | list[ComparisonResult]:
    r"""Difference of two independent rates: pooled z-test and Newcombe's hybrid score interval.

    Parameters
    ----------
    champion_successes, champion_trials : int or array_like of int
        The champion's count :math:`k_0` (errors, for an error rate) out of
        :math:`n_0` rows; one value per metric when ``metric`` is a sequence.
    challenger_successes, challenger_trials : int or array_like of int
        The challenger's :math:`k_1` out of :math:`n_1`, on other rows.
    metric : str or sequence of str, default "error_rate"
        The rate's name; a sequence compares several rates at once.
    higher_is_better : bool, optional
        The rates' direction; by default looked up by name (:func:`higher_is_better_of`).
    confidence : float, default 0.95
        Coverage of the interval.
    alpha : float, default 0.05
        Significance of the decision.
    min_per_arm : int, default 500
        Rows each arm needs (at least 1); fewer give ``insufficient_data``.

    Returns
    -------
    ComparisonResult or list of ComparisonResult
        One result for a single name, a list (in order) for a sequence;
        ``method`` is ``"two_proportion_z"``.

    Notes
    -----
    With :math:`\hat p_i = k_i/n_i`, the difference is :math:`\hat\theta =
    \hat p_1 - \hat p_0`. The p-value is that of the pooled z-test,
    :math:`2\Phi(-|z|)` with

    .. math::
        z = \hat\theta \Big/ \sqrt{\bar p (1 - \bar p)(1/n_0 + 1/n_1)},
        \qquad \bar p = (k_0 + k_1)/(n_0 + n_1),

    the score test of equal rates (Pearson's :math:`\chi^2` without
    continuity correction, :math:`z^2 = \chi^2`). When :math:`\bar p` is 0 or
    1 both rates are equal, :math:`\hat\theta = 0`, and the p-value is 1.

    The interval is Newcombe's hybrid score interval (method 10 of [1]_),
    from the Wilson intervals :math:`(l_i, u_i)` of both rates:

    .. math::
        \hat\theta - \sqrt{(\hat p_1 - l_1)^2 + (u_0 - \hat p_0)^2}, \quad
        \hat\theta + \sqrt{(u_1 - \hat p_1)^2 + (\hat p_0 - l_0)^2}.

    Unlike the Wald interval it stays in :math:`[-1, 1]` and keeps close to
    nominal coverage for small arms and rates near 0 or 1, which is why
    Fagerland, Lydersen & Laake [2]_ recommend it. Test and interval are
    different methods: near the margin one may exclude 0 while the other does
    not; the decision follows the p-value.

    References
    ----------
    .. [1] R. G. Newcombe. "Interval estimation for the difference between
       independent proportions: comparison of eleven methods". Statistics in
       Medicine 17 (1998), pp. 873-890.
    .. [2] M. W. Fagerland, S. Lydersen, P. Laake. "Recommended confidence
       intervals for two independent binomial proportions". Statistical
       Methods in Medical Research 24 (2015), pp. 224-254.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.comparison import two_proportion_comparison
    >>> rng = np.random.default_rng(7)
    >>> champion_errors = int((rng.random(4000) < 0.10).sum())
    >>> challenger_errors = int((rng.random(3000) < 0.13).sum())
    >>> r = two_proportion_comparison(champion_errors, 4000, challenger_errors, 3000)
    >>> round(r.difference, 4), np.round(r.interval, 4).tolist(), f"{r.p_value:.2g}"
    (0.0296, [0.0146, 0.0449], '9.9e-05')
    >>> r.worse, r.better, r.n_champion, r.n_challenger
    (True, False, 4000, 3000)
    """
    metrics, directions, single = metric_names(metric, higher_is_better)
    confidence, alpha = check_levels(confidence, alpha)
    minimum = max(check_count("min_per_arm", min_per_arm), 1)
    k0, n0 = _rate_counts("champion", champion_successes, champion_trials, len(metrics), single)
    k1, n1 = _rate_counts(
        "challenger", challenger_successes, challenger_trials, len(metrics), single
    )
    status = np.where((n0 >= minimum) & (n1 >= minimum), "ok", "insufficient_data")
    ok = status == "ok"
    # placeholders where an arm is empty keep the arithmetic warning-free; never reported
    n0f = np.where(ok, n0, 1).astype(np.float64)
    n1f = np.where(ok, n1, 1).astype(np.float64)
    k0f = np.where(ok, k0, 0).astype(np.float64)
    k1f = np.where(ok, k1, 0).astype(np.float64)
    p0, p1 = k0f / n0f, k1f / n1f
    difference = p1 - p0
    pooled = (k0f + k1f) / (n0f + n1f)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n0f + 1.0 / n1f))
    statistic = np.where(se > 0, difference / np.where(se > 0, se, 1.0), 0.0)
    p_value = np.minimum(2.0 * ndtr(-np.abs(statistic)), 1.0)
    low0, high0 = wilson_interval(k0f, n0f, confidence)
    low1, high1 = wilson_interval(k1f, n1f, confidence)
    numbers = {
        "difference": difference,
        "ci_low": difference - np.hypot(p1 - low1, high0 - p0),
        "ci_high": difference + np.hypot(high1 - p1, p0 - low0),
        "p_value": p_value,
        "statistic": statistic,
    }
    results = comparisons(
        metrics,
        "two_proportion_z",
        directions,
        confidence,
        alpha,
        status,
        numbers,
        {"n_champion": n0, "n_challenger": n1},
    )
    return results[0] if single else results


def welch_comparison(
    champion: Moments | Sequence[Moments],
    challenger: Moments | Sequence[Moments],
    metric: str | Sequence[str] = "loss",
    *,
    higher_is_better: bool | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    min_per_arm: int = DEFAULT_MIN_LABELED,
) -> ComparisonResult | list[ComparisonResult]:
    r"""Difference of two independent mean losses: Welch's t-test and its interval.

    Parameters
    ----------
    champion, challenger : Moments or sequence of Moments
        Per-row loss (or any per-row quantity) of each arm, on different rows;
        one per metric when ``metric`` is a sequence.
    metric : str or sequence of str, default "loss"
        The quantity's name; a sequence compares several at once.
    higher_is_better : bool, optional
        Its direction; by default looked up by name (``"loss"``: false).
    confidence : float, default 0.95
        Coverage of the interval.
    alpha : float, default 0.05
        Significance of the decision.
    min_per_arm : int, default 500
        Rows each arm needs (at least 2); fewer give ``insufficient_data``.

    Returns
    -------
    ComparisonResult or list of ComparisonResult
        One result for a single name, a list for a sequence; ``method`` is
        ``"welch_t"``, ``statistic`` the t statistic and ``df`` the
        Welch–Satterthwaite degrees of freedom.

    Notes
    -----
    With means :math:`\bar x_i`, unbiased variances :math:`s_i^2` and
    :math:`v_i = s_i^2/n_i`, Welch [1]_:

    .. math::
        t = \frac{\bar x_1 - \bar x_0}{\sqrt{v_0 + v_1}}, \qquad
        \nu = \frac{(v_0 + v_1)^2}{v_0^2/(n_0 - 1) + v_1^2/(n_1 - 1)},

    the p-value :math:`2 F_\nu(-|t|)` and the interval
    :math:`\bar x_1 - \bar x_0 \pm t_{\nu, (1+c)/2} \sqrt{v_0 + v_1}`
    (Satterthwaite's [2]_ degrees of freedom): the numbers of
    ``scipy.stats.ttest_ind(challenger, champion, equal_var=False)`` and its
    ``confidence_interval``, from mergeable moments. A standard deviation
    within :math:`64\epsilon` of its mean's magnitude is rounding noise and
    counts as 0; when both arms have none the test is ``undefined``.

    References
    ----------
    .. [1] B. L. Welch. "The generalization of 'Student's' problem when
       several different population variances are involved". Biometrika 34
       (1947), pp. 28-35.
    .. [2] F. E. Satterthwaite. "An approximate distribution of estimates of
       variance components". Biometrics Bulletin 2 (1946), pp. 110-114.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.comparison import Moments, welch_comparison
    >>> rng = np.random.default_rng(3)
    >>> champion = Moments.from_values(rng.gamma(2.0, 0.25, 5000))
    >>> challenger = Moments.from_values(rng.gamma(2.0, 0.24, 4000))
    >>> r = welch_comparison(champion, challenger, "log_loss")
    >>> round(r.difference, 4), np.round(r.interval, 4).tolist(), round(r.p_value, 4), r.better
    (-0.0153, [-0.0298, -0.0007], 0.0395, True)
    """
    metrics, directions, single = metric_names(metric, higher_is_better)
    confidence, alpha = check_levels(confidence, alpha)
    minimum = max(check_count("min_per_arm", min_per_arm), 2)
    n0, shift0, offset0, m2_0 = _stack(_moments_list("champion", champion, len(metrics), single))
    n1, shift1, offset1, m2_1 = _stack(
        _moments_list("challenger", challenger, len(metrics), single)
    )
    mean0, mean1 = shift0 + offset0, shift1 + offset1
    status = np.where((n0 >= minimum) & (n1 >= minimum), "ok", "insufficient_data")
    ok = status == "ok"
    dof0 = np.where(ok, n0 - 1, 1).astype(np.float64)
    dof1 = np.where(ok, n1 - 1, 1).astype(np.float64)
    var0 = np.where(zero_spread(m2_0 / dof0, mean0), 0.0, m2_0 / dof0)
    var1 = np.where(zero_spread(m2_1 / dof1, mean1), 0.0, m2_1 / dof1)
    status[ok & (var0 == 0.0) & (var1 == 0.0)] = "undefined"
    ok = status == "ok"
    v0 = np.where(ok, var0 / (dof0 + 1.0), 1.0)
    v1 = np.where(ok, var1 / (dof1 + 1.0), 1.0)
    se = np.sqrt(v0 + v1)
    df = (v0 + v1) ** 2 / (v0 * v0 / dof0 + v1 * v1 / dof1)
    # the shifts are near each other: their difference is exact, the offsets small
    difference = (shift1 - shift0) + (offset1 - offset0)
    statistic, p_value, low, high = t_test(difference, se, df, confidence)
    numbers = {
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "statistic": statistic,
        "df": df,
    }
    results = comparisons(
        metrics,
        "welch_t",
        directions,
        confidence,
        alpha,
        status,
        numbers,
        {"n_champion": n0, "n_challenger": n1},
    )
    return results[0] if single else results


@dataclass(frozen=True, slots=True)
class ExpectedCount:
    """A count known only in expectation: the sum of independent Bernoulli rows (a
    Poisson-binomial count), as its ``n`` rows, ``expected`` value and ``variance``."""

    n: int
    expected: float
    variance: float


def expected_rate_comparison(
    champion: ExpectedCount,
    challenger: ExpectedCount,
    metric: str = "estimated_error_rate",
    *,
    higher_is_better: bool | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    min_per_arm: int = DEFAULT_MIN_LABELED,
) -> ComparisonResult:
    r"""Difference of two rates known in expectation (e.g. CBPE's expected error rates).

    Parameters
    ----------
    champion, challenger : ExpectedCount
        Each arm's rows :math:`n_i`, expected count :math:`E_i` and its variance
        :math:`V_i = \sum p_j (1 - p_j)` over the arm's rows.
    metric : str, default "estimated_error_rate"
        The rate's name.
    higher_is_better : bool, optional
        The rate's direction; by default looked up by name.
    confidence : float, default 0.95
        Coverage of the interval.
    alpha : float, default 0.05
        Significance of the decision.
    min_per_arm : int, default 500
        Rows each arm needs (at least 1); fewer give ``insufficient_data``.

    Returns
    -------
    ComparisonResult
        ``method`` is ``"poisson_binomial_z"``; ``undefined`` when both variances are 0.

    Notes
    -----
    The difference is :math:`\hat\theta = E_1/n_1 - E_0/n_0`, with the normal
    approximation of the two independent Poisson-binomial counts: standard error
    :math:`s = \sqrt{V_1/n_1^2 + V_0/n_0^2}`, interval :math:`\hat\theta \pm
    z_{(1+c)/2}\, s` and p-value :math:`2\Phi(-|\hat\theta|/s)`. It is the
    uncertainty of the rates the labels will show if the probabilities are
    calibrated; the calibration's own error is not in it.
    """
    metrics, directions, _ = metric_names(metric, higher_is_better)
    confidence, alpha = check_levels(confidence, alpha)
    minimum = max(check_count("min_per_arm", min_per_arm), 1)
    for name, arm in (("champion", champion), ("challenger", challenger)):
        if not isinstance(arm, ExpectedCount):
            raise ValueError(f"{name} must be an ExpectedCount, got {type(arm).__name__}")
        if arm.n < 0 or not 0.0 <= arm.expected <= max(arm.n, 0) or arm.variance < 0.0:
            raise ValueError(f"{name} is not a count of {arm.n} rows: {arm!r}")
    n0, n1 = champion.n, challenger.n
    status = "ok" if min(n0, n1) >= minimum else "insufficient_data"
    if status == "ok" and champion.variance == 0.0 and challenger.variance == 0.0:
        status = "undefined"
    numbers: dict[str, np.ndarray] = {}
    if status == "ok":
        difference = challenger.expected / n1 - champion.expected / n0
        se = math.sqrt(challenger.variance / n1**2 + champion.variance / n0**2)
        statistic = difference / se
        half = float(stats.norm.ppf(0.5 + confidence / 2.0)) * se
        numbers = {
            "difference": np.array([difference]),
            "ci_low": np.array([difference - half]),
            "ci_high": np.array([difference + half]),
            "p_value": np.array([2.0 * float(ndtr(-abs(statistic)))]),
            "statistic": np.array([statistic]),
        }
    (result,) = comparisons(
        metrics,
        "poisson_binomial_z",
        directions,
        confidence,
        alpha,
        np.array([status]),
        numbers,
        {"n_champion": np.array([n0]), "n_challenger": np.array([n1])},
    )
    return result


def _per_metric(values: Any, name: str, count: int, single: bool) -> np.ndarray:
    """``values`` as an array of ``count`` entries: a scalar for one name, else 1-D."""
    array = np.asarray(values)
    expected: tuple[int, ...] = () if single else (count,)
    if array.shape != expected:
        what = "a single value for a single metric" if single else f"{count} values, one per metric"
        raise ValueError(f"{name} must be {what}, got shape {array.shape}")
    return array.reshape(count)


def _rate_counts(
    arm: str, successes: Any, trials: Any, count: int, single: bool
) -> tuple[np.ndarray, np.ndarray]:
    k = _per_metric(successes, f"{arm}_successes", count, single)
    n = _per_metric(trials, f"{arm}_trials", count, single)
    for name, array in ((f"{arm}_successes", k), (f"{arm}_trials", n)):
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must hold integer counts, got dtype {array.dtype}")
        bad = ~np.isfinite(array) | (array < 0) | (array != np.round(array))
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must hold counts >= 0, got {array[where].item()!r}")
    over = k > n
    if over.any():
        where = int(np.flatnonzero(over)[0])
        raise ValueError(
            f"{arm}_successes must not exceed {arm}_trials, got {k[where].item()!r} > "
            f"{n[where].item()!r}"
        )
    return k.astype(np.int64), n.astype(np.int64)


def _moments_list(name: str, arm: Any, count: int, single: bool) -> list[Moments]:
    if single:
        if not isinstance(arm, Moments):
            raise ValueError(f"{name} must be one Moments for a single metric, got {arm!r}")
        return [arm]
    if not isinstance(arm, Sequence) or len(arm) != count:
        raise ValueError(f"{name} must be a sequence of {count} Moments, one per metric")
    for item in arm:
        if not isinstance(item, Moments):
            raise ValueError(f"{name} must hold Moments, got {item!r}")
    return list(arm)


def _stack(items: list[Moments]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = np.array([m.n for m in items], dtype=np.int64)
    shift = np.array([m.shift for m in items], dtype=np.float64)
    shifted_mean = np.array([m.shifted_mean for m in items], dtype=np.float64)
    m2 = np.array([m.m2 for m in items], dtype=np.float64)
    return n, shift, shifted_mean, m2


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
