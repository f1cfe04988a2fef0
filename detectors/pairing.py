"""Challenger against champion on the same requests (shadow traffic): paired tests.

When both versions score every request, row ``i`` of the champion and of the
challenger is the same request (joined on its id upstream), and the
comparison uses the pairing: for classification the 2×2 table of which
version was right (McNemar's exact test, Newcombe's paired interval), for
regression the per-request difference of losses (the paired t-test). Both
summaries are mergeable counts and moments; both return a
:class:`~driftwarden.detectors.comparison.ComparisonResult`. How often the two
versions agree is read from the summaries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .comparison import (
    DEFAULT_ALPHA,
    ComparisonResult,
    Moments,
    check_finite_values,
    check_levels,
    comparisons,
    metric_names,
    t_test,
    zero_spread,
)
from .intervals import DEFAULT_CONFIDENCE, wilson_interval
from .metric_results import check_count
from .performance_binary import DEFAULT_MIN_LABELED

PAIRED_CLASSIFICATION_METRICS = ("error_rate", "accuracy")
"""Metrics :func:`mcnemar_comparison` reports (the same test, opposite orientations)."""

_COUNTS = (
    "both_correct",
    "champion_only_correct",
    "challenger_only_correct",
    "both_wrong",
    "same_prediction",
)


@dataclass(frozen=True, slots=True)
class PairedClassificationSummary:
    """Mergeable 2×2 table of labelled requests scored by both versions.

    Attributes
    ----------
    both_correct : int
        Both versions predicted the label.
    champion_only_correct : int
        Only the champion did (McNemar's :math:`b`: the challenger's extra errors).
    challenger_only_correct : int
        Only the challenger did (McNemar's :math:`c`: its extra successes).
    both_wrong : int
        Neither did.
    same_prediction : int
        Both predicted the same class (right or wrong).

    Counts add up (``merge``); ``to_state()`` / ``from_state()`` give JSON data.

    Examples
    --------
    >>> from driftwarden.detectors.pairing import PairedClassificationSummary
    >>> s = PairedClassificationSummary.from_arrays(
    ...     ["a", "b", "c", "a", "b"], ["a", "b", "a", "c", "c"], ["a", "c", "c", "b", "c"])
    >>> s.both_correct, s.champion_only_correct, s.challenger_only_correct, s.both_wrong
    (1, 1, 1, 2)
    >>> s.n, s.agreement
    (5, 0.4)
    """

    both_correct: int
    champion_only_correct: int
    challenger_only_correct: int
    both_wrong: int
    same_prediction: int

    def __post_init__(self) -> None:
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        # both right means the same class; different classes need a wrong one
        if not self.both_correct <= self.same_prediction <= self.both_correct + self.both_wrong:
            raise ValueError(
                "same_prediction must lie between both_correct and both_correct + both_wrong, "
                f"got {self.same_prediction} outside [{self.both_correct}, "
                f"{self.both_correct + self.both_wrong}]"
            )

    @property
    def n(self) -> int:
        """Labelled requests scored by both versions."""
        return (
            self.both_correct
            + self.champion_only_correct
            + self.challenger_only_correct
            + self.both_wrong
        )

    @property
    def agreement(self) -> float | None:
        """Share of requests where both versions predicted the same class; ``None`` when empty."""
        return self.same_prediction / self.n if self.n else None

    @classmethod
    def empty(cls) -> PairedClassificationSummary:
        """The summary of no requests."""
        return cls(0, 0, 0, 0, 0)

    @classmethod
    def from_arrays(
        cls, y_true: Any, champion_pred: Any, challenger_pred: Any
    ) -> PairedClassificationSummary:
        """Summarise labelled requests: labels and both versions' predicted classes, row-aligned."""
        columns = {
            "y_true": np.asarray(y_true),
            "champion_pred": np.asarray(champion_pred),
            "challenger_pred": np.asarray(challenger_pred),
        }
        for name, column in columns.items():
            if column.ndim != 1:
                raise ValueError(f"{name} must be 1-D, got shape {column.shape}")
        shapes = {column.shape for column in columns.values()}
        if len(shapes) != 1:
            raise ValueError(f"y_true, champion_pred and challenger_pred differ in shape: {shapes}")
        y, old, new = columns.values()
        old_right = old == y
        new_right = new == y
        both = int(np.count_nonzero(old_right & new_right))
        old_only = int(np.count_nonzero(old_right)) - both
        new_only = int(np.count_nonzero(new_right)) - both
        return cls(
            both_correct=both,
            champion_only_correct=old_only,
            challenger_only_correct=new_only,
            both_wrong=int(y.size) - both - old_only - new_only,
            same_prediction=int(np.count_nonzero(old == new)),
        )

    def merge(self, other: PairedClassificationSummary) -> PairedClassificationSummary:
        """The summary of both sets of requests together."""
        if not isinstance(other, PairedClassificationSummary):
            raise ValueError(f"cannot merge {type(other).__name__} into a classification summary")
        return PairedClassificationSummary(
            *(getattr(self, name) + getattr(other, name) for name in _COUNTS)
        )

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {name: getattr(self, name) for name in _COUNTS}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PairedClassificationSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        return cls(*(int(state[name]) for name in _COUNTS))


@dataclass(frozen=True, slots=True)
class PairedRegressionSummary:
    r"""Mergeable moments of per-request loss differences, and the gap between predictions.

    Attributes
    ----------
    differences : Moments
        Of :math:`d_i = L_i^{challenger} - L_i^{champion}`, the two versions'
        losses on request :math:`i` (count, mean, sum of squared deviations;
        merged without cancellation, see :class:`~driftwarden.detectors.comparison.Moments`).
    prediction_gap : float
        :math:`\sum_i |\hat y_i^{challenger} - \hat y_i^{champion}|`.

    ``merge`` adds up both; ``to_state()`` / ``from_state()`` give JSON data.

    Examples
    --------
    >>> from driftwarden.detectors.pairing import PairedRegressionSummary
    >>> s = PairedRegressionSummary.from_arrays(
    ...     champion_loss=[1.0, 4.0, 0.25], challenger_loss=[0.5, 4.5, 0.0],
    ...     champion_prediction=[2.0, 3.0, 1.5], challenger_prediction=[2.5, 3.0, 1.0])
    >>> s.n, s.differences.mean, s.prediction_gap, s.relative_disagreement(2.0)
    (3, -0.08333333333333333, 1.0, 0.16666666666666666)
    """

    differences: Moments
    prediction_gap: float

    def __post_init__(self) -> None:
        if not isinstance(self.differences, Moments):
            raise ValueError(f"differences must be Moments, got {self.differences!r}")
        gap = self.prediction_gap
        if not isinstance(gap, float) or not math.isfinite(gap) or gap < 0.0:
            raise ValueError(f"prediction_gap must be a finite float >= 0, got {gap!r}")
        if self.differences.n == 0 and gap != 0.0:
            raise ValueError(f"the prediction gap of no requests is 0, got {gap!r}")

    @property
    def n(self) -> int:
        """Requests scored by both versions."""
        return self.differences.n

    @property
    def mean_prediction_gap(self) -> float | None:
        r""":math:`\frac1n \sum |\hat y^{challenger} - \hat y^{champion}|`; ``None`` when empty."""
        return self.prediction_gap / self.n if self.n else None

    def relative_disagreement(self, reference_spread: float) -> float | None:
        """The mean prediction gap in units of ``reference_spread``: agreement for regression.

        ``reference_spread`` is a typical spread of the champion's predictions
        (e.g. their standard deviation on the reference data), so 0 means the
        versions predict alike and 1 that they differ by as much as
        predictions usually differ from each other. ``None`` when empty.
        """
        if (
            isinstance(reference_spread, bool)
            or not isinstance(reference_spread, int | float)
            or not math.isfinite(reference_spread)
            or reference_spread <= 0
        ):
            raise ValueError(
                f"reference_spread must be a finite number > 0, got {reference_spread!r}"
            )
        gap = self.mean_prediction_gap
        return None if gap is None else gap / float(reference_spread)

    @classmethod
    def empty(cls) -> PairedRegressionSummary:
        """The summary of no requests."""
        return cls(Moments.empty(), 0.0)

    @classmethod
    def from_arrays(
        cls,
        *,
        champion_loss: Any,
        challenger_loss: Any,
        champion_prediction: Any,
        challenger_prediction: Any,
    ) -> PairedRegressionSummary:
        """Summarise requests: both versions' per-request losses and predictions, row-aligned."""
        columns = {
            "champion_loss": check_finite_values(champion_loss, "champion_loss"),
            "challenger_loss": check_finite_values(challenger_loss, "challenger_loss"),
            "champion_prediction": check_finite_values(champion_prediction, "champion_prediction"),
            "challenger_prediction": check_finite_values(
                challenger_prediction, "challenger_prediction"
            ),
        }
        shapes = {column.shape for column in columns.values()}
        if len(shapes) != 1:
            raise ValueError(f"losses and predictions differ in shape: {shapes}")
        old_loss, new_loss, old_pred, new_pred = columns.values()
        return cls(
            differences=Moments.from_values(new_loss - old_loss, "loss differences"),
            prediction_gap=float(np.sum(np.abs(new_pred - old_pred))),
        )

    def merge(self, other: PairedRegressionSummary) -> PairedRegressionSummary:
        """The summary of both sets of requests together."""
        if not isinstance(other, PairedRegressionSummary):
            raise ValueError(f"cannot merge {type(other).__name__} into a regression summary")
        return PairedRegressionSummary(
            self.differences.merge(other.differences), self.prediction_gap + other.prediction_gap
        )

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {"differences": self.differences.to_state(), "prediction_gap": self.prediction_gap}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PairedRegressionSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        return cls(Moments.from_state(state["differences"]), float(state["prediction_gap"]))


def mcnemar_comparison(
    summary: PairedClassificationSummary,
    metric: str = "error_rate",
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    min_pairs: int = DEFAULT_MIN_LABELED,
) -> ComparisonResult:
    r"""Paired difference of error rates: exact McNemar test and Newcombe's paired interval.

    Parameters
    ----------
    summary : PairedClassificationSummary
        Labelled requests scored by both versions.
    metric : {"error_rate", "accuracy"}
        Orientation of the difference: error rate (higher is worse) or
        accuracy (higher is better); the test is the same.
    confidence : float, default 0.95
        Coverage of the interval.
    alpha : float, default 0.05
        Significance of the decision.
    min_pairs : int, default 500
        Requests needed (at least 1); fewer give ``insufficient_data``.

    Returns
    -------
    ComparisonResult
        ``method`` ``"mcnemar_exact"``, ``n_pairs`` the requests; no statistic.

    Notes
    -----
    With :math:`b` = ``champion_only_correct``, :math:`c` =
    ``challenger_only_correct`` and :math:`n` requests, the challenger's error
    rate minus the champion's is :math:`\hat\theta = (b - c)/n` (accuracy:
    :math:`-\hat\theta`). Under "equal error rates" each discordant request is
    equally likely to favour either version, so given :math:`b + c`,
    :math:`b \sim \mathrm{Bin}(b + c, 1/2)`; the exact McNemar p-value [1]_ is
    the two-sided binomial test,
    :math:`\min(1, 2 P[\mathrm{Bin}(b + c, 1/2) \le \min(b, c)])`, equal to
    ``scipy.stats.binomtest(b, b + c, 0.5).pvalue`` (1 when :math:`b + c = 0`,
    which scipy rejects).
    Being exact and conditional it is conservative (its size stays below
    ``alpha``, markedly so with few discordant pairs); Fagerland, Lydersen &
    Laake [4]_ prefer its mid-p version for power.

    The interval is Newcombe's hybrid score interval for paired proportions
    [2]_, recommended by Fagerland, Lydersen & Laake [3]_ (their "Newcombe
    square-and-add"). With the error rates :math:`\hat p_1` (challenger),
    :math:`\hat p_0` (champion), their Wilson intervals :math:`(l_i, u_i)` and
    the correlation estimate :math:`\hat\psi` of the two error indicators
    (Newcombe's, with its correction to the numerator :math:`A =`
    ``both_wrong`` × ``both_correct`` :math:`- bc`:
    :math:`\hat\psi = (A - n/2)/\sqrt{D}` if
    :math:`A > n/2`, 0 if :math:`0 \le A \le n/2`, :math:`A / \sqrt{D}` if
    :math:`A < 0`, with :math:`D` the product of the four margins, and 0 when
    a margin is 0):

    .. math::
        L = \hat\theta - \sqrt{(\hat p_1 - l_1)^2 + (u_0 - \hat p_0)^2
            - 2\hat\psi (\hat p_1 - l_1)(u_0 - \hat p_0)}

        U = \hat\theta + \sqrt{(u_1 - \hat p_1)^2 + (\hat p_0 - l_0)^2
            - 2\hat\psi (u_1 - \hat p_1)(\hat p_0 - l_0)}

    It keeps close to nominal coverage where the Wald interval for paired
    proportions, :math:`\hat\theta \pm z \sqrt{b + c - (b - c)^2/n}/n`, is
    too narrow (few discordant pairs) [3]_. The test and the interval are
    different methods and may disagree at the margin; the decision follows the
    p-value. An accuracy interval is the error-rate interval negated.

    References
    ----------
    .. [1] Q. McNemar. "Note on the sampling error of the difference between
       correlated proportions or percentages". Psychometrika 12 (1947),
       pp. 153-157.
    .. [2] R. G. Newcombe. "Improved confidence intervals for the difference
       between binomial proportions based on paired data". Statistics in
       Medicine 17 (1998), pp. 2635-2650.
    .. [3] M. W. Fagerland, S. Lydersen, P. Laake. "Recommended tests and
       confidence intervals for paired binomial proportions". Statistics in
       Medicine 33 (2014), pp. 2850-2875.
    .. [4] M. W. Fagerland, S. Lydersen, P. Laake. "The McNemar test for
       binary matched-pairs data: mid-p and asymptotic are better than exact
       conditional". BMC Medical Research Methodology 13 (2013), 91.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.pairing import (
    ...     PairedClassificationSummary, mcnemar_comparison)
    >>> rng = np.random.default_rng(2)
    >>> y = rng.integers(0, 3, 3000)
    >>> champion = np.where(rng.random(3000) < 0.85, y, (y + 1) % 3)
    >>> challenger = np.where(rng.random(3000) < 0.05, (y + 2) % 3, champion)
    >>> summary = PairedClassificationSummary.from_arrays(y, champion, challenger)
    >>> r = mcnemar_comparison(summary)
    >>> round(r.difference, 4), np.round(r.interval, 4).tolist(), f"{r.p_value:.2g}", r.worse
    (0.0387, [0.0318, 0.0458], '2.4e-35', True)
    >>> round(summary.agreement, 4)
    0.9547
    """
    if metric not in PAIRED_CLASSIFICATION_METRICS:
        raise ValueError(f"metric must be one of {PAIRED_CLASSIFICATION_METRICS}, got {metric!r}")
    if not isinstance(summary, PairedClassificationSummary):
        raise ValueError(f"summary must be a PairedClassificationSummary, got {summary!r}")
    confidence, alpha = check_levels(confidence, alpha)
    minimum = max(check_count("min_pairs", min_pairs), 1)
    n = summary.n
    counts = {"n_pairs": np.array([n])}
    names, directions, _ = metric_names(metric)
    if n < minimum:
        status = np.array(["insufficient_data"])
        return comparisons(
            names, "mcnemar_exact", directions, confidence, alpha, status, {}, counts
        )[0]
    b, c = summary.champion_only_correct, summary.challenger_only_correct
    p_value = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), b + c, 0.5))) if b + c else 1.0
    low, high = newcombe_paired_interval(summary.both_wrong, b, c, summary.both_correct, confidence)
    difference = (b - c) / n
    if metric == "accuracy":
        difference, low, high = -difference, -high, -low
    numbers = {
        "difference": np.array([difference]),
        "ci_low": np.array([low]),
        "ci_high": np.array([high]),
        "p_value": np.array([p_value]),
    }
    status = np.array(["ok"])
    return comparisons(
        names, "mcnemar_exact", directions, confidence, alpha, status, numbers, counts
    )[0]


def newcombe_paired_interval(
    both: Any,
    first_only: Any,
    second_only: Any,
    neither: Any,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Newcombe's hybrid score interval of :math:`p_1 - p_2` for paired binary data, vectorised.

    Parameters
    ----------
    both, first_only, second_only, neither : array_like of int
        The paired 2×2 table: outcome in both members, only in the first, only
        in the second, in neither; :math:`p_1 = (both + first\_only)/n`,
        :math:`p_2 = (both + second\_only)/n`.
    confidence : float, default 0.95
        Coverage.

    Returns
    -------
    low, high : numpy.ndarray
        Bounds (NaN for an empty table); the formula is in
        :func:`mcnemar_comparison`.

    Notes
    -----
    The example is the paired table of Cavo et al. (complete response
    before and after consolidation therapy) worked in M. W. Fagerland,
    S. Lydersen, P. Laake, *Statistical Analysis of Contingency Tables*
    (CRC, 2017), chapter 8, whose interval, -0.1186 to -0.0046, it reproduces.

    Examples
    --------
    >>> from driftwarden.detectors.pairing import newcombe_paired_interval
    >>> low, high = newcombe_paired_interval(59, 6, 16, 80)
    >>> round(float(low), 4), round(float(high), 4)
    (-0.1186, -0.0046)
    """
    counts = [np.asarray(v, dtype=np.float64) for v in (both, first_only, second_only, neither)]
    a, b, c, d = np.broadcast_arrays(*counts)
    if np.any(a < 0) or np.any(b < 0) or np.any(c < 0) or np.any(d < 0):
        raise ValueError("the counts of a paired table must be >= 0")
    n = a + b + c + d
    first, second = a + b, a + c
    low1, high1 = wilson_interval(first, n, confidence)
    low2, high2 = wilson_interval(second, n, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = first / n, second / n
        margins = first * (c + d) * second * (b + d)
        crossed = a * d - b * c
        numerator = np.where(crossed > n / 2, crossed - n / 2, np.minimum(crossed, 0.0))
        psi = np.where(margins > 0, numerator / np.sqrt(margins), 0.0)
        down1, up2 = p1 - low1, high2 - p2
        up1, down2 = high1 - p1, p2 - low2
        low = (p1 - p2) - np.sqrt(down1**2 + up2**2 - 2.0 * psi * down1 * up2)
        high = (p1 - p2) + np.sqrt(up1**2 + down2**2 - 2.0 * psi * up1 * down2)
    return low, high


def paired_t_comparison(
    summary: PairedRegressionSummary | Sequence[PairedRegressionSummary],
    metric: str | Sequence[str] = "loss",
    *,
    higher_is_better: bool | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    min_pairs: int = DEFAULT_MIN_LABELED,
) -> ComparisonResult | list[ComparisonResult]:
    r"""Mean paired difference of losses: the paired t-test and its interval.

    Parameters
    ----------
    summary : PairedRegressionSummary or sequence of them
        Per-request loss differences (challenger − champion); one per metric
        when ``metric`` is a sequence (e.g. squared and absolute error).
    metric : str or sequence of str, default "loss"
        The loss's name.
    higher_is_better : bool, optional
        Its direction; by default looked up by name (``"loss"``: false).
    confidence : float, default 0.95
        Coverage of the interval.
    alpha : float, default 0.05
        Significance of the decision.
    min_pairs : int, default 500
        Requests needed (at least 2); fewer give ``insufficient_data``.

    Returns
    -------
    ComparisonResult or list of ComparisonResult
        One result for a single name, a list for a sequence; ``method``
        ``"paired_t"``, ``statistic`` the t statistic, ``df`` :math:`n - 1`.

    Notes
    -----
    With :math:`\bar d` and :math:`s_d` the mean and standard deviation of
    :math:`d_i = L_i^{challenger} - L_i^{champion}` over :math:`n` requests,
    "Student's" paired test [1]_: :math:`t = \bar d / (s_d/\sqrt n)` on
    :math:`n - 1` degrees of freedom, p-value :math:`2 F_{n-1}(-|t|)`,
    interval :math:`\bar d \pm t_{n-1, (1+c)/2}\, s_d/\sqrt n`: the numbers
    of ``scipy.stats.ttest_rel(challenger_loss, champion_loss)`` and its
    ``confidence_interval``. Pairing removes the variation the two versions
    share (hard requests are hard for both), so it detects far smaller
    differences than :func:`~driftwarden.detectors.comparison.welch_comparison`
    on the same rows. When :math:`s_d` is 0 (within :math:`64\epsilon` of
    :math:`|\bar d|`: identical losses, or a constant difference) the test is
    ``undefined``.

    References
    ----------
    .. [1] Student. "The probable error of a mean". Biometrika 6 (1908),
       pp. 1-25.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.pairing import PairedRegressionSummary, paired_t_comparison
    >>> rng = np.random.default_rng(4)
    >>> y = rng.normal(50, 10, 2000)
    >>> champion = y + rng.normal(0, 2.0, 2000)
    >>> challenger = y + 0.98 * (champion - y) + rng.normal(0, 0.3, 2000)
    >>> summary = PairedRegressionSummary.from_arrays(
    ...     champion_loss=(champion - y) ** 2, challenger_loss=(challenger - y) ** 2,
    ...     champion_prediction=champion, challenger_prediction=challenger)
    >>> r = paired_t_comparison(summary, "squared_error")
    >>> round(r.difference, 4), np.round(r.interval, 4).tolist(), round(r.p_value, 4), r.better
    (-0.0521, [-0.1054, 0.0013], 0.0556, False)
    >>> round(summary.relative_disagreement(float(np.std(champion))), 4)
    0.0236
    """
    metrics, directions, single = metric_names(metric, higher_is_better)
    confidence, alpha = check_levels(confidence, alpha)
    minimum = max(check_count("min_pairs", min_pairs), 2)
    items = _summaries(summary, len(metrics), single)
    n = np.array([item.n for item in items], dtype=np.int64)
    mean = np.array([item.differences.mean for item in items], dtype=np.float64)
    m2 = np.array([item.differences.m2 for item in items], dtype=np.float64)
    status = np.where(n >= minimum, "ok", "insufficient_data")
    dof = np.where(status == "ok", n - 1, 1).astype(np.float64)
    variance = m2 / dof
    status[(status == "ok") & zero_spread(variance, mean)] = "undefined"
    ok = status == "ok"
    se = np.sqrt(np.where(ok, variance, 1.0) / (dof + 1.0))
    statistic, p_value, low, high = t_test(mean, se, dof, confidence)
    numbers = {
        "difference": mean,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "statistic": statistic,
        "df": dof,
    }
    results = comparisons(
        metrics, "paired_t", directions, confidence, alpha, status, numbers, {"n_pairs": n}
    )
    return results[0] if single else results


def _summaries(summary: Any, count: int, single: bool) -> list[PairedRegressionSummary]:
    if single:
        if not isinstance(summary, PairedRegressionSummary):
            raise ValueError(f"summary must be one summary for a single metric, got {summary!r}")
        return [summary]
    if not isinstance(summary, Sequence) or len(summary) != count:
        raise ValueError(f"summary must be a sequence of {count} summaries, one per metric")
    for item in summary:
        if not isinstance(item, PairedRegressionSummary):
            raise ValueError(f"summary must hold PairedRegressionSummary, got {item!r}")
    return list(summary)
