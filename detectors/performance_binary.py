"""Realized performance of a binary classifier from a mergeable window summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metric_results import check_count, check_thresholds, insufficient, metric_result
from .ranking import (
    DEFAULT_SCORE_BINS,
    average_precision_exact,
    average_precision_from_histograms,
    check_n_bins,
    check_scores,
    roc_auc_exact,
    roc_auc_from_histograms,
    score_bins,
)
from .result import DetectorResult

BINARY_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
)
"""Metric names of binary performance, as used in result records."""

DEFAULT_MIN_LABELED = 500
"""Labelled rows a window needs before its performance is reported (``labels.min_labeled``
in the daemon)."""

_EPS = float(np.finfo(np.float64).eps)


def check_labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    """Binary labels (0/1 or booleans) as a bool array, or a ``ValueError`` naming a bad one."""
    array = np.asarray(y_true)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must hold 0/1 labels, got dtype {array.dtype}")
    bad = (array != 0) & (array != 1)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must hold 0 or 1, got {array[where].item()!r} at {where}")
    return array.astype(bool)


@dataclass(frozen=True, eq=False)
class BinaryPerformanceSummary:
    """Mergeable summary of the labelled rows of a binary classifier in one window.

    Attributes
    ----------
    decision_threshold : float
        A score at or above it is a positive prediction.
    tp, fp, tn, fn : int
        Confusion counts at ``decision_threshold``.
    positives, negatives : numpy.ndarray
        int64 histograms, on the fixed grid of ``n_bins`` equal bins over
        [0, 1], of the scores of the positive and of the negative rows
        (ROC AUC and average precision, with a bound).
    log_loss_sum : float
        :math:`-\\sum [y \\ln p + (1 - y) \\ln (1 - p)]`, with :math:`p` clipped
        to :math:`[\\epsilon, 1 - \\epsilon]` as scikit-learn does.
    brier_sum : float
        :math:`\\sum (p - y)^2`.

    Counts and sums add up (``merge``), so panes sum to windows and partial
    summaries from several partitions sum to one. ``to_state()`` /
    ``from_state()`` give JSON data for the daemon's storage.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.performance_binary import BinaryPerformanceSummary
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random(1000) < 0.3
    >>> score = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 1000), 0, 1)
    >>> a = BinaryPerformanceSummary.from_arrays(y[:600], score[:600])
    >>> b = BinaryPerformanceSummary.from_arrays(y[600:], score[600:])
    >>> whole = a.merge(b)
    >>> whole.n, whole.tp == BinaryPerformanceSummary.from_arrays(y, score).tp
    (1000, True)
    """

    decision_threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    positives: np.ndarray
    negatives: np.ndarray
    log_loss_sum: float
    brier_sum: float

    @property
    def n_bins(self) -> int:
        """Bins of the score grid."""
        return int(self.positives.size)

    @property
    def n(self) -> int:
        """Labelled rows summarised."""
        return self.tp + self.fp + self.tn + self.fn

    @classmethod
    def empty(
        cls, decision_threshold: float = 0.5, n_bins: int = DEFAULT_SCORE_BINS
    ) -> BinaryPerformanceSummary:
        """The summary of no rows."""
        n_bins = check_n_bins(n_bins)
        _check_threshold(decision_threshold)
        zeros = np.zeros(n_bins, dtype=np.int64)
        return cls(float(decision_threshold), 0, 0, 0, 0, zeros, zeros.copy(), 0.0, 0.0)

    @classmethod
    def from_arrays(
        cls,
        y_true: Any,
        y_score: Any,
        decision_threshold: float = 0.5,
        n_bins: int = DEFAULT_SCORE_BINS,
    ) -> BinaryPerformanceSummary:
        """Summarise labelled rows: 0/1 labels and positive-class probabilities."""
        n_bins = check_n_bins(n_bins)
        _check_threshold(decision_threshold)
        y = check_labels(y_true)
        p = check_scores(y_score)
        if p.shape != y.shape:
            raise ValueError(f"y_true and y_score differ in shape: {y.shape} vs {p.shape}")
        predicted = p >= decision_threshold
        tp = int(np.count_nonzero(predicted & y))
        fp = int(np.count_nonzero(predicted)) - tp
        fn = int(np.count_nonzero(y)) - tp
        tn = y.size - tp - fp - fn
        bins = score_bins(p, n_bins) + np.where(y, n_bins, 0)
        both = np.bincount(bins, minlength=2 * n_bins)
        # scikit-learn's log_loss: the probability of the true class, clipped to [eps, 1 - eps].
        likelihood = np.clip(np.where(y, p, 1.0 - p), _EPS, 1 - _EPS)
        log_loss_sum = -float(np.sum(np.log(likelihood)))
        residual = p - y
        return cls(
            decision_threshold=float(decision_threshold),
            tp=tp,
            fp=fp,
            tn=tn,
            fn=fn,
            positives=both[n_bins:],
            negatives=both[:n_bins],
            log_loss_sum=log_loss_sum,
            brier_sum=float(np.dot(residual, residual)),
        )

    def merge(self, other: BinaryPerformanceSummary) -> BinaryPerformanceSummary:
        """The summary of both windows' rows together."""
        if other.decision_threshold != self.decision_threshold or other.n_bins != self.n_bins:
            raise ValueError(
                "only summaries with the same decision_threshold and n_bins can be merged, got "
                f"({self.decision_threshold}, {self.n_bins}) and "
                f"({other.decision_threshold}, {other.n_bins})"
            )
        return BinaryPerformanceSummary(
            decision_threshold=self.decision_threshold,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            tn=self.tn + other.tn,
            fn=self.fn + other.fn,
            positives=self.positives + other.positives,
            negatives=self.negatives + other.negatives,
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
            brier_sum=self.brier_sum + other.brier_sum,
        )

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {
            "decision_threshold": self.decision_threshold,
            "confusion": [self.tp, self.fp, self.tn, self.fn],
            "positives": self.positives.tolist(),
            "negatives": self.negatives.tolist(),
            "log_loss_sum": self.log_loss_sum,
            "brier_sum": self.brier_sum,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> BinaryPerformanceSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        tp, fp, tn, fn = (int(v) for v in state["confusion"])
        positives = np.asarray(state["positives"], dtype=np.int64)
        negatives = np.asarray(state["negatives"], dtype=np.int64)
        if positives.shape != negatives.shape or positives.ndim != 1:
            raise ValueError("positives and negatives must be histograms of one length")
        if positives.sum() != tp + fn or negatives.sum() != fp + tn:
            raise ValueError("histograms do not add up to the confusion counts")
        return cls(
            float(state["decision_threshold"]),
            tp,
            fp,
            tn,
            fn,
            positives,
            negatives,
            float(state["log_loss_sum"]),
            float(state["brier_sum"]),
        )


def binary_performance(
    summary: BinaryPerformanceSummary,
    thresholds: Mapping[str, float] | None = None,
    *,
    min_labeled: int = DEFAULT_MIN_LABELED,
    n_window: int | None = None,
    exact: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, DetectorResult]:
    r"""Accuracy, precision, recall, F1, ROC AUC, average precision, log loss and Brier score.

    Parameters
    ----------
    summary : BinaryPerformanceSummary
        The window's labelled rows.
    thresholds : mapping of str to float, optional
        Alert threshold per metric name (``BINARY_METRICS``); a metric without
        one is reported and never drifts. Quality metrics cross *below* their
        threshold, ``log_loss`` and ``brier`` *above*.
    min_labeled : int, default 500
        Labelled rows needed; fewer give ``insufficient_data`` for every metric.
    n_window : int, optional
        Predictions in the window (labelled or not), for the record; defaults
        to the labelled count.
    exact : (y_true, y_score), optional
        The raw rows behind ``summary``: ROC AUC and average precision are
        then computed exactly (``error_bound`` 0) instead of from the histograms.

    Returns
    -------
    dict of str to DetectorResult
        One result per metric, keyed by its record name.

    Notes
    -----
    From the confusion counts: accuracy :math:`(TP + TN)/n`, precision
    :math:`TP/(TP + FP)`, recall :math:`TP/(TP + FN)`, F1
    :math:`2TP/(2TP + FP + FN)`; from the sums, log loss and Brier score as
    means. These equal scikit-learn's on the same rows (``error_bound`` 0),
    except that a ratio with a zero denominator is ``undefined`` where
    scikit-learn substitutes 0 (``zero_division``). ROC AUC and average
    precision come from the score histograms with the bound of
    :func:`~driftwarden.detectors.ranking.roc_auc_from_histograms` and
    :func:`~driftwarden.detectors.ranking.average_precision_from_histograms`
    (``undefined`` with one class / no positive).

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.performance_binary import (
    ...     BinaryPerformanceSummary, binary_performance)
    >>> rng = np.random.default_rng(1)
    >>> y = rng.random(5000) < 0.4
    >>> score = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, 5000), 0, 1)
    >>> results = binary_performance(
    ...     BinaryPerformanceSummary.from_arrays(y, score), {"accuracy": 0.92, "log_loss": 0.5})
    >>> r = results["accuracy"]
    >>> round(r.value, 4), r.threshold, r.direction, r.drift, r.status
    (0.9012, 0.92, 'below', True, 'ok')
    >>> round(results["roc_auc"].value, 4), results["roc_auc"].error_bound < 1e-3
    (0.9631, True)
    """
    thresholds = check_thresholds(thresholds, BINARY_METRICS)
    min_labeled = check_count("min_labeled", min_labeled)
    n = summary.n
    n_window = n if n_window is None else n_window
    counts = {"n_window": n_window, "n_labeled": n}
    if n < max(min_labeled, 1):
        return insufficient(BINARY_METRICS, thresholds, **counts)
    tp, fp, tn, fn = summary.tp, summary.fp, summary.tn, summary.fn
    if exact is not None:
        y_true, y_score = exact
        auc, auc_bound = roc_auc_exact(y_true, y_score), 0.0
        ap, ap_bound = average_precision_exact(y_true, y_score), 0.0
    else:
        auc, auc_bound = roc_auc_from_histograms(summary.positives, summary.negatives)
        ap, ap_bound = average_precision_from_histograms(summary.positives, summary.negatives)
    values = {
        "accuracy": ((tp + tn) / n, 0.0),
        "precision": (_ratio(tp, tp + fp), 0.0),
        "recall": (_ratio(tp, tp + fn), 0.0),
        "f1": (_ratio(2 * tp, 2 * tp + fp + fn), 0.0),
        "roc_auc": (auc, auc_bound),
        "average_precision": (ap, ap_bound),
        "log_loss": (summary.log_loss_sum / n, 0.0),
        "brier": (summary.brier_sum / n, 0.0),
    }
    return {
        metric: metric_result(metric, value, thresholds, error_bound=bound, **counts)
        for metric, (value, bound) in values.items()
    }


def binary_performance_from_arrays(
    y_true: Any,
    y_score: Any,
    thresholds: Mapping[str, float] | None = None,
    *,
    decision_threshold: float = 0.5,
    min_labeled: int = DEFAULT_MIN_LABELED,
    n_window: int | None = None,
) -> dict[str, DetectorResult]:
    """:func:`binary_performance` of raw rows, with exact ROC AUC and average precision.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.performance_binary import binary_performance_from_arrays
    >>> rng = np.random.default_rng(1)
    >>> y = rng.random(5000) < 0.4
    >>> score = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, 5000), 0, 1)
    >>> r = binary_performance_from_arrays(y, score)["roc_auc"]
    >>> round(r.value, 4), r.error_bound
    (0.9631, 0.0)
    """
    summary = BinaryPerformanceSummary.from_arrays(y_true, y_score, decision_threshold)
    return binary_performance(
        summary,
        thresholds,
        min_labeled=min_labeled,
        n_window=n_window,
        exact=(check_labels(y_true), check_scores(y_score)),
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _check_threshold(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"decision_threshold must be a number in [0, 1], got {value!r}")
