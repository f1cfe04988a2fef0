"""Realized performance of a multiclass classifier from a mergeable window summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metric_results import check_count, check_thresholds, insufficient, metric_result
from .performance_binary import DEFAULT_MIN_LABELED
from .ranking import (
    DEFAULT_SCORE_BINS,
    check_n_bins,
    check_scores,
    roc_auc_exact,
    roc_auc_from_histograms,
    score_bins,
)
from .result import DetectorResult

MULTICLASS_METRICS = ("accuracy", "macro_f1", "weighted_f1", "roc_auc")
"""Metric names of multiclass performance; per-class recalls add ``recall_<class>``."""


def encode_labels(values: Any, classes: Sequence[Any], name: str) -> np.ndarray:
    """Class labels as codes ``0..K-1`` in ``classes`` order; an unknown label is an error.

    Labels compare as given when they and ``classes`` are both numbers or both
    strings, else as strings.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    known_classes = np.asarray(classes)
    numeric = "iufb"
    if (array.dtype.kind in numeric) != (known_classes.dtype.kind in numeric) or (
        array.dtype.kind not in numeric + "U"
    ):
        array, known_classes = array.astype(str), known_classes.astype(str)
    order = np.argsort(known_classes, kind="stable")
    sorted_classes = known_classes[order]
    where = np.clip(np.searchsorted(sorted_classes, array), 0, len(classes) - 1)
    known = sorted_classes[where] == array
    if not known.all():
        bad = int(np.flatnonzero(~known)[0])
        raise ValueError(
            f"{name} holds {array[bad].item()!r} at {bad}, not one of the classes "
            f"{tuple(str(c) for c in classes)}"
        )
    return order[where]


@dataclass(frozen=True, eq=False)
class MulticlassPerformanceSummary:
    """Mergeable summary of the labelled rows of a multiclass classifier in one window.

    Attributes
    ----------
    classes : tuple of str
        The class labels (as strings), fixed for the model; their order is the
        order of the arrays below.
    confusion : numpy.ndarray
        ``(K, K)`` int64 counts, ``confusion[true, predicted]``.
    positives, totals : numpy.ndarray or None
        With per-class scores: ``(K, n_bins)`` int64 histograms, on the fixed
        grid over [0, 1], of class ``k``'s score over the rows of class ``k``
        and over all rows (one-vs-rest ROC AUC, with a bound).

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.performance_multiclass import MulticlassPerformanceSummary
    >>> s = MulticlassPerformanceSummary.from_arrays(["a", "b", "b"], ["a", "a", "b"], ("a", "b"))
    >>> s.confusion
    array([[1, 0],
           [1, 1]])
    """

    classes: tuple[str, ...]
    confusion: np.ndarray
    positives: np.ndarray | None = None
    totals: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Labelled rows summarised."""
        return int(self.confusion.sum())

    @property
    def n_bins(self) -> int | None:
        """Bins of the score grid (None without scores)."""
        return None if self.positives is None else int(self.positives.shape[1])

    @classmethod
    def empty(
        cls, classes: Sequence[Any], n_bins: int | None = DEFAULT_SCORE_BINS
    ) -> MulticlassPerformanceSummary:
        """The summary of no rows (``n_bins=None``: no score histograms)."""
        names = _check_classes(classes)
        k = len(names)
        confusion = np.zeros((k, k), dtype=np.int64)
        if n_bins is None:
            return cls(names, confusion)
        n_bins = check_n_bins(n_bins)
        return cls(
            names, confusion, np.zeros((k, n_bins), np.int64), np.zeros((k, n_bins), np.int64)
        )

    @classmethod
    def from_arrays(
        cls,
        y_true: Any,
        y_pred: Any,
        classes: Sequence[Any],
        scores: Any = None,
        n_bins: int = DEFAULT_SCORE_BINS,
    ) -> MulticlassPerformanceSummary:
        """Summarise labelled rows; ``scores``: ``(n, K)`` probabilities in ``classes`` order."""
        names = _check_classes(classes)
        k = len(names)
        t = encode_labels(y_true, list(classes), "y_true")
        p = encode_labels(y_pred, list(classes), "y_pred")
        if t.shape != p.shape:
            raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
        confusion = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        if scores is None:
            return cls(names, confusion)
        n_bins = check_n_bins(n_bins)
        s = check_scores(scores, "scores")
        if s.shape != (t.size, k):
            raise ValueError(f"scores must have shape {(t.size, k)}, got {s.shape}")
        bins = score_bins(s, n_bins) + (np.arange(k) * n_bins)[None, :]
        totals = np.bincount(bins.ravel(), minlength=k * n_bins).reshape(k, n_bins)
        own = bins[np.arange(t.size), t]
        positives = np.bincount(own, minlength=k * n_bins).reshape(k, n_bins)
        return cls(names, confusion, positives, totals)

    def merge(self, other: MulticlassPerformanceSummary) -> MulticlassPerformanceSummary:
        """The summary of both windows' rows together."""
        if other.classes != self.classes or other.n_bins != self.n_bins:
            raise ValueError("only summaries over the same classes and score grid can be merged")
        if self.positives is None or other.positives is None:
            return MulticlassPerformanceSummary(self.classes, self.confusion + other.confusion)
        return MulticlassPerformanceSummary(
            self.classes,
            self.confusion + other.confusion,
            self.positives + other.positives,
            self.totals + other.totals,  # type: ignore[operator]
        )

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        state: dict[str, Any] = {
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
        }
        if self.positives is not None:
            state["positives"] = self.positives.tolist()
            state["totals"] = self.totals.tolist()  # type: ignore[union-attr]
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MulticlassPerformanceSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        names = _check_classes(state["classes"])
        confusion = np.asarray(state["confusion"], dtype=np.int64).reshape(len(names), len(names))
        if "positives" not in state:
            return cls(names, confusion)
        positives = np.asarray(state["positives"], dtype=np.int64)
        totals = np.asarray(state["totals"], dtype=np.int64)
        if positives.shape != totals.shape or positives.shape[0] != len(names):
            raise ValueError("score histograms must be (classes, n_bins) and alike")
        return cls(names, confusion, positives, totals)


def multiclass_performance(
    summary: MulticlassPerformanceSummary,
    thresholds: Mapping[str, float] | None = None,
    *,
    min_labeled: int = DEFAULT_MIN_LABELED,
    n_window: int | None = None,
    exact: tuple[Any, Any] | None = None,
) -> dict[str, DetectorResult]:
    r"""Accuracy, macro and weighted F1, per-class recall and one-vs-rest macro ROC AUC.

    Parameters
    ----------
    summary : MulticlassPerformanceSummary
        The window's labelled rows.
    thresholds : mapping of str to float, optional
        Alert threshold per metric name (``accuracy``, ``macro_f1``,
        ``weighted_f1``, ``roc_auc``, ``recall_<class>``); all cross *below*.
    min_labeled : int, default 500
        Labelled rows needed; fewer give ``insufficient_data`` for every metric.
    n_window : int, optional
        Predictions in the window, for the record; defaults to the labelled count.
    exact : (y_true, scores), optional
        The raw rows behind ``summary``: ROC AUC is then exact (``error_bound`` 0).

    Returns
    -------
    dict of str to DetectorResult
        ``accuracy``, ``macro_f1``, ``weighted_f1``, ``roc_auc`` (only with
        scores) and ``recall_<class>`` for every class.

    Notes
    -----
    Per class :math:`F_1 = 2TP/(2TP + FP + FN)`; the macro mean runs over the
    classes present among the labels or the predictions and the weighted mean
    weighs by support, as scikit-learn's ``f1_score(average=...)`` with its
    default labels (exact). A class absent from the labels has an
    ``undefined`` recall. ROC AUC is the mean over classes of the binary AUC
    of class :math:`k`'s score, class :math:`k` against the rest, from the
    histograms with the mean of their bounds; scikit-learn's
    ``roc_auc_score(multi_class="ovr")`` equals it when every class occurs,
    and refuses a window where one does not, where this averages the classes
    present (``undefined`` if none has both positives and negatives).

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.performance_multiclass import (
    ...     MulticlassPerformanceSummary, multiclass_performance)
    >>> rng = np.random.default_rng(2)
    >>> y = rng.integers(0, 3, 3000)
    >>> scores = rng.dirichlet(np.ones(3), 3000) + 0.5 * np.eye(3)[y]
    >>> scores /= scores.sum(axis=1, keepdims=True)
    >>> summary = MulticlassPerformanceSummary.from_arrays(
    ...     y, scores.argmax(axis=1), classes=(0, 1, 2), scores=scores)
    >>> results = multiclass_performance(summary, {"macro_f1": 0.9})
    >>> round(results["macro_f1"].value, 4), results["macro_f1"].drift
    (0.7489, True)
    >>> sorted(results)
    ['accuracy', 'macro_f1', 'recall_0', 'recall_1', 'recall_2', 'roc_auc', 'weighted_f1']
    """
    names = [*MULTICLASS_METRICS, *(f"recall_{c}" for c in summary.classes)]
    if summary.positives is None:
        names.remove("roc_auc")
    thresholds = check_thresholds(thresholds, tuple(names))
    min_labeled = check_count("min_labeled", min_labeled)
    n = summary.n
    counts = {"n_window": n if n_window is None else n_window, "n_labeled": n}
    if n < max(min_labeled, 1):
        return insufficient(names, thresholds, **counts)
    confusion = summary.confusion.astype(np.float64)
    tp = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    denominator = support + predicted
    present = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=present)
    values: dict[str, tuple[float | None, float]] = {
        "accuracy": (float(tp.sum() / n), 0.0),
        "macro_f1": (float(f1[present].mean()), 0.0),
        "weighted_f1": (float(np.dot(f1, support) / support.sum()), 0.0),
    }
    if summary.positives is not None:
        values["roc_auc"] = _ovr_auc(summary, exact)
    for k, label in enumerate(summary.classes):
        values[f"recall_{label}"] = (float(tp[k] / support[k]) if support[k] else None, 0.0)
    return {
        metric: metric_result(metric, value, thresholds, error_bound=bound, **counts)
        for metric, (value, bound) in values.items()
    }


def _ovr_auc(
    summary: MulticlassPerformanceSummary, exact: tuple[Any, Any] | None
) -> tuple[float | None, float]:
    aucs, bounds = [], []
    codes = scores = None
    if exact is not None:
        codes = encode_labels(exact[0], summary.classes, "y_true")
        scores = check_scores(exact[1], "scores")
    for k in range(len(summary.classes)):
        positives = summary.positives[k]  # type: ignore[index]
        negatives = summary.totals[k] - positives  # type: ignore[index]
        if codes is not None and scores is not None:
            value, bound = roc_auc_exact(codes == k, scores[:, k]), 0.0
        else:
            value, bound = roc_auc_from_histograms(positives, negatives)
        if np.isfinite(value):
            aucs.append(value)
            bounds.append(bound)
    if not aucs:
        return None, 0.0
    return float(np.mean(aucs)), float(np.mean(bounds))


def _check_classes(classes: Sequence[Any]) -> tuple[str, ...]:
    names = tuple(str(c) for c in classes)
    if len(names) < 2:
        raise ValueError(f"classes must name at least two classes, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"classes must be distinct, got {names}")
    return names
