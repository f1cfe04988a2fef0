"""Group fairness of a binary classifier from mergeable per-group counts (as Fairlearn)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .intervals import DEFAULT_CONFIDENCE, wilson_interval
from .metric_results import check_count, check_thresholds, insufficient, metric_result
from .result import DetectorResult, not_ok

FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "disparate_impact",
)
"""Metric names of fairness, as used in result records (one set per group attribute)."""

DEFAULT_MIN_GROUP_SIZE = 100
"""Rows a group needs to take part in a decision (see :func:`fairness_metrics`)."""

DEFAULT_FAIRNESS_THRESHOLDS: Mapping[str, float] = {"disparate_impact": 0.8}
"""The four-fifths rule (US EEOC Uniform Guidelines, 29 CFR 1607.4(D)); others: none."""

_LABEL_METRICS = ("equal_opportunity_difference", "equalized_odds_difference")


@dataclass(frozen=True, eq=False)
class FairnessSummary:
    """Mergeable per-group counts of one group attribute in one window.

    Attributes
    ----------
    groups : tuple of str
        The attribute's values seen, sorted (values are compared as strings).
    n : numpy.ndarray
        Predictions per group.
    selected : numpy.ndarray
        Positive predictions per group.
    tp, fp, tn, fn : numpy.ndarray
        Confusion counts per group over the rows with a label.

    ``merge`` takes the union of the groups and adds the counts, so panes sum
    to windows; ``to_state()`` / ``from_state()`` give JSON data.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.fairness import FairnessSummary
    >>> s = FairnessSummary.from_arrays(["F", "M", "F"], [1, 0, 0], y_true=[1, 1, 0])
    >>> s.groups, s.n.tolist(), s.selected.tolist(), s.tp.tolist(), s.fn.tolist()
    (('F', 'M'), [2, 1], [1, 0], [1, 0], [0, 1])
    """

    groups: tuple[str, ...]
    n: np.ndarray
    selected: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @property
    def n_labeled(self) -> np.ndarray:
        """Labelled rows per group."""
        return self.tp + self.fp + self.tn + self.fn

    @classmethod
    def empty(cls) -> FairnessSummary:
        """The summary of no rows."""
        zero = np.zeros(0, dtype=np.int64)
        return cls((), zero, zero, zero, zero, zero, zero)

    @classmethod
    def from_arrays(
        cls,
        groups: Any,
        y_pred: Any,
        y_true: Any = None,
        labeled: Any = None,
    ) -> FairnessSummary:
        """Count predictions per group value; labels where known.

        ``y_pred`` holds predicted classes (0/1), ``y_true`` labels (0/1) and
        ``labeled`` (bool, default: every row when ``y_true`` is given) which
        rows have one.
        """
        names, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        return cls.from_codes(codes, tuple(names.tolist()), y_pred, y_true, labeled)

    @classmethod
    def from_codes(
        cls,
        codes: Any,
        groups: tuple[str, ...],
        y_pred: Any,
        y_true: Any = None,
        labeled: Any = None,
    ) -> FairnessSummary:
        """Like :meth:`from_arrays` with the group values already coded ``0..G-1``."""
        codes = np.asarray(codes, dtype=np.int64).ravel()
        g = len(groups)
        if codes.size and (codes.min() < 0 or codes.max() >= g):
            raise ValueError(f"group codes must lie in [0, {g}), got {codes.min()}..{codes.max()}")
        if len(set(groups)) != g:
            raise ValueError(f"groups must be distinct, got {groups}")
        predicted = _binary(y_pred, "y_pred", codes.size)
        if y_true is None:
            truth = np.zeros(codes.size, dtype=bool)
            has = np.zeros(codes.size, dtype=bool)
        else:
            truth = _binary(y_true, "y_true", codes.size, allow_missing=labeled is not None)
            has = np.ones(codes.size, bool) if labeled is None else _mask(labeled, codes.size)
            truth &= has
        # One bincount: group x predicted x (no label | label 0 | label 1).
        cell = (codes * 2 + predicted) * 3 + np.where(has, 1 + truth, 0)
        counts = np.bincount(cell, minlength=g * 6).reshape(g, 2, 3)
        order = np.argsort(np.asarray(groups, dtype=str), kind="stable")
        counts = counts[order]
        return cls(
            groups=tuple(groups[i] for i in order),
            n=counts.sum(axis=(1, 2)),
            selected=counts[:, 1].sum(axis=1),
            tp=counts[:, 1, 2],
            fp=counts[:, 1, 1],
            tn=counts[:, 0, 1],
            fn=counts[:, 0, 2],
        )

    def merge(self, other: FairnessSummary) -> FairnessSummary:
        """The summary of both windows' rows together (union of the groups)."""
        names = tuple(sorted(set(self.groups) | set(other.groups)))
        index = {name: i for i, name in enumerate(names)}
        fields = {}
        for field in ("n", "selected", "tp", "fp", "tn", "fn"):
            out = np.zeros(len(names), dtype=np.int64)
            for part in (self, other):
                np.add.at(out, [index[name] for name in part.groups], getattr(part, field))
            fields[field] = out
        return FairnessSummary(groups=names, **fields)

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {
            "groups": list(self.groups),
            "counts": np.stack(
                [self.n, self.selected, self.tp, self.fp, self.tn, self.fn]
            ).T.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FairnessSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        groups = tuple(str(g) for g in state["groups"])
        counts = np.asarray(state["counts"], dtype=np.int64).reshape(len(groups), 6)
        if list(groups) != sorted(groups) or len(set(groups)) != len(groups):
            raise ValueError("groups must be distinct and sorted")
        n, selected, tp, fp, tn, fn = counts.T
        return cls(groups, n, selected, tp, fp, tn, fn)


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson interval; all None when its denominator is 0."""

    value: float | None
    low: float | None
    high: float | None
    successes: int
    trials: int


@dataclass(frozen=True)
class GroupStats:
    """What one group value looks like in a window.

    ``decides`` is false for a group below the minimum size: it is reported
    but never takes part in a fairness metric. ``tpr`` needs labelled
    positives and ``fpr`` labelled negatives in the group.
    """

    group: str
    n: int
    n_labeled: int
    decides: bool
    selection_rate: Rate
    tpr: Rate
    fpr: Rate
    accuracy: Rate


def group_stats(
    summary: FairnessSummary,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[GroupStats, ...]:
    """Per-group count, selection rate, TPR, FPR and accuracy, with Wilson intervals.

    Examples
    --------
    >>> from driftwarden.detectors.fairness import FairnessSummary, group_stats
    >>> s = FairnessSummary.from_arrays(["F"] * 150 + ["M"] * 50, [1] * 60 + [0] * 110 + [1] * 30)
    >>> [(g.group, g.n, g.decides, round(g.selection_rate.value, 3)) for g in group_stats(s)]
    [('F', 150, True, 0.4), ('M', 50, False, 0.6)]
    >>> rate = group_stats(s)[0].selection_rate
    >>> round(rate.low, 4), round(rate.high, 4)
    (0.325, 0.48)
    """
    check_count("min_group_size", min_group_size)
    labeled = summary.n_labeled
    rates = {
        "selection_rate": (summary.selected, summary.n),
        "tpr": (summary.tp, summary.tp + summary.fn),
        "fpr": (summary.fp, summary.fp + summary.tn),
        "accuracy": (summary.tp + summary.tn, labeled),
    }
    columns = {name: (k, n, *wilson_interval(k, n, confidence)) for name, (k, n) in rates.items()}
    out = []
    for i, group in enumerate(summary.groups):
        built = {}
        for name, (k, n, low, high) in columns.items():
            if n[i] == 0:
                built[name] = Rate(None, None, None, int(k[i]), 0)
            else:
                built[name] = Rate(
                    float(k[i] / n[i]), float(low[i]), float(high[i]), int(k[i]), int(n[i])
                )
        out.append(
            GroupStats(
                group=group,
                n=int(summary.n[i]),
                n_labeled=int(labeled[i]),
                decides=bool(summary.n[i] >= min_group_size),
                **built,
            )
        )
    return tuple(out)


def fairness_metrics(
    summary: FairnessSummary,
    thresholds: Mapping[str, float] | None = None,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    reference_group: str | None = None,
    n_window: int | None = None,
) -> dict[str, DetectorResult]:
    r"""Demographic parity, equal opportunity, equalized odds and disparate impact.

    Parameters
    ----------
    summary : FairnessSummary
        Per-group counts of one group attribute in the window.
    thresholds : mapping of str to float, optional
        Alert threshold per metric name; ``None`` means
        ``DEFAULT_FAIRNESS_THRESHOLDS`` (disparate impact below 0.8, the
        four-fifths rule), a mapping replaces it. Differences cross *above*,
        ratios *below*.
    min_group_size : int, default 100
        Rows a group needs to decide (labelled rows, for the label-based
        metrics). Below it a group is reported (:func:`group_stats`) but left
        out; with fewer than two deciding groups a metric is
        ``insufficient_data``. At 100 rows a 95 % Wilson interval on a rate
        is at most about ±0.1 wide, the size of the gaps these metrics flag.
    reference_group : str, optional
        Disparate impact relative to this group (e.g. the privileged one);
        default: the group with the highest selection rate, as the EEOC rule.
    n_window : int, optional
        Predictions in the window, for the record; defaults to the summary's count.

    Returns
    -------
    dict of str to DetectorResult
        One result per metric in ``FAIRNESS_METRICS``.

    Notes
    -----
    Over the deciding groups :math:`g` with selection rate :math:`s_g`, true
    positive rate :math:`TPR_g` and false positive rate :math:`FPR_g`
    (Fairlearn's ``between_groups`` definitions, the largest gap):

    * demographic parity difference :math:`\max_g s_g - \min_g s_g`, ratio
      :math:`\min_g s_g / \max_g s_g`;
    * equal opportunity difference :math:`\max_g TPR_g - \min_g TPR_g`;
    * equalized odds difference: the larger of the TPR and the FPR gap;
    * disparate impact :math:`\min_g s_g / s_{ref}` with the highest-rate
      group (or ``reference_group``) as reference.

    Equal to ``fairlearn.metrics`` on the same rows when every group decides
    and has labelled positives and negatives. Where a group has no labelled
    positive (negative), Fairlearn counts its TPR (FPR) as 0; here that rate
    is ``undefined`` and the group is left out of that gap. A ratio whose
    largest rate is 0 is ``undefined``.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.fairness import FairnessSummary, fairness_metrics
    >>> rng = np.random.default_rng(4)
    >>> group = rng.choice(["a", "b"], 4000)
    >>> y = rng.random(4000) < 0.5
    >>> pred = rng.random(4000) < np.where(group == "a", 0.5, 0.35)
    >>> results = fairness_metrics(FairnessSummary.from_arrays(group, pred, y))
    >>> r = results["disparate_impact"]
    >>> round(r.value, 4), r.threshold, r.direction, r.drift
    (0.6876, 0.8, 'below', True)
    >>> round(results["demographic_parity_difference"].value, 4)
    0.1554
    """
    thresholds = check_thresholds(
        DEFAULT_FAIRNESS_THRESHOLDS if thresholds is None else thresholds, FAIRNESS_METRICS
    )
    check_count("min_group_size", min_group_size)
    n_labeled = int(summary.n_labeled.sum())
    counts = {"n_window": int(summary.n.sum()) if n_window is None else n_window}
    counts["n_labeled"] = n_labeled

    def result(metric: str, value: float | None) -> DetectorResult:
        return metric_result(metric, value, thresholds, error_bound=0.0, **counts)

    out: dict[str, DetectorResult] = {}
    big = summary.n >= max(min_group_size, 1)
    if big.sum() < 2:
        out.update(insufficient(FAIRNESS_METRICS[:2], thresholds, **counts))
        out["disparate_impact"] = insufficient(("disparate_impact",), thresholds, **counts)[
            "disparate_impact"
        ]
    else:
        rate = summary.selected[big] / summary.n[big]
        top = rate.max()
        out["demographic_parity_difference"] = result(
            "demographic_parity_difference", float(top - rate.min())
        )
        out["demographic_parity_ratio"] = result(
            "demographic_parity_ratio", float(rate.min() / top) if top > 0 else None
        )
        out["disparate_impact"] = _disparate_impact(
            summary, big, reference_group, result, thresholds, counts
        )

    labeled_big = summary.n_labeled >= max(min_group_size, 1)
    if labeled_big.sum() < 2:
        out.update(insufficient(_LABEL_METRICS, thresholds, **counts))
    else:
        tpr_gap = _gap(summary.tp, summary.tp + summary.fn, labeled_big)
        fpr_gap = _gap(summary.fp, summary.fp + summary.tn, labeled_big)
        out["equal_opportunity_difference"] = result("equal_opportunity_difference", tpr_gap)
        both = None if tpr_gap is None or fpr_gap is None else max(tpr_gap, fpr_gap)
        out["equalized_odds_difference"] = result("equalized_odds_difference", both)
    return {metric: out[metric] for metric in FAIRNESS_METRICS}


def _disparate_impact(
    summary: FairnessSummary,
    big: np.ndarray,
    reference_group: str | None,
    result: Any,
    thresholds: Mapping[str, float],
    counts: dict[str, int],
) -> DetectorResult:
    rate = summary.selected[big] / summary.n[big]
    if reference_group is None:
        top = rate.max()
        return result("disparate_impact", float(rate.min() / top) if top > 0 else None)
    names = [g for g, b in zip(summary.groups, big, strict=True) if b]
    if reference_group not in names:
        return not_ok("insufficient_data", thresholds.get("disparate_impact"), "below", **counts)
    ref = rate[names.index(reference_group)]
    others = np.delete(rate, names.index(reference_group))
    return result("disparate_impact", float(others.min() / ref) if ref > 0 else None)


def _gap(successes: np.ndarray, trials: np.ndarray, eligible: np.ndarray) -> float | None:
    """Largest minus smallest rate over eligible groups with a nonzero denominator."""
    keep = eligible & (trials > 0)
    if keep.sum() < 2:
        return None
    rate = successes[keep] / trials[keep]
    return float(rate.max() - rate.min())


def _binary(values: Any, name: str, size: int, allow_missing: bool = False) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {array.shape}")
    if array.dtype == np.bool_:
        return array
    numeric = array.astype(np.float64)
    bad = (numeric != 0) & (numeric != 1)
    if allow_missing:
        bad &= ~np.isnan(numeric)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must hold 0 or 1, got {array[where].item()!r} at {where}")
    return numeric == 1


def _mask(values: Any, size: int) -> np.ndarray:
    array = np.asarray(values, dtype=bool)
    if array.shape != (size,):
        raise ValueError(f"labeled must have shape ({size},), got {array.shape}")
    return array
