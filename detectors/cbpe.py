"""CBPE: confidence-based performance estimation of a binary classifier without labels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy.optimize import isotonic_regression

from .comparison import ExpectedCount
from .metric_results import check_count, check_thresholds, insufficient, metric_result
from .performance_binary import DEFAULT_MIN_LABELED, check_labels
from .ranking import (
    DEFAULT_SCORE_BINS,
    check_n_bins,
    check_scores,
    roc_auc_from_histograms,
    score_bins,
)
from .result import DetectorResult

CBPE_METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")
"""Metrics CBPE estimates, as named in result records (kind ``estimated_performance``)."""

STATE_VERSION = 1


@dataclass(frozen=True, eq=False)
class ScoreHistogram:
    """Mergeable histogram of a window's scores, split by predicted class.

    ``counts[c, b]`` counts the rows predicted ``c`` (0 or 1) whose score
    falls in bin ``b`` of the fixed grid of ``n_bins`` equal bins over [0, 1].
    The predicted class is kept apart from the score because a model's class
    need not be its score against one threshold. Counts add up (``merge``).

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.cbpe import ScoreHistogram
    >>> h = ScoreHistogram.from_arrays(np.array([0.1, 0.7, 0.95]), n_bins=10)
    >>> h.counts
    array([[0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 0, 1, 0, 1]])
    """

    counts: np.ndarray

    @property
    def n_bins(self) -> int:
        """Bins of the score grid."""
        return int(self.counts.shape[1])

    @property
    def n(self) -> int:
        """Rows summarised."""
        return int(self.counts.sum())

    @classmethod
    def empty(cls, n_bins: int = DEFAULT_SCORE_BINS) -> ScoreHistogram:
        """The histogram of no rows."""
        return cls(np.zeros((2, check_n_bins(n_bins)), dtype=np.int64))

    @classmethod
    def from_arrays(
        cls,
        y_score: Any,
        y_pred: Any = None,
        decision_threshold: float = 0.5,
        n_bins: int = DEFAULT_SCORE_BINS,
    ) -> ScoreHistogram:
        """Histogram of positive-class probabilities (``y_pred`` default: score >= threshold)."""
        n_bins = check_n_bins(n_bins)
        scores = check_scores(y_score)
        if scores.ndim != 1:
            raise ValueError(f"y_score must be 1-D, got shape {scores.shape}")
        predicted = (
            scores >= decision_threshold if y_pred is None else check_labels(y_pred, "y_pred")
        )
        if predicted.shape != scores.shape:
            raise ValueError(
                f"y_pred and y_score differ in shape: {predicted.shape} vs {scores.shape}"
            )
        cells = score_bins(scores, n_bins) + np.where(predicted, n_bins, 0)
        return cls(np.bincount(cells, minlength=2 * n_bins).reshape(2, n_bins))

    def merge(self, other: ScoreHistogram) -> ScoreHistogram:
        """The histogram of both windows' rows together."""
        if other.counts.shape != self.counts.shape:
            raise ValueError(
                f"only histograms on one grid merge: {self.n_bins} vs {other.n_bins} bins"
            )
        return ScoreHistogram(self.counts + other.counts)

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {"counts": self.counts.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ScoreHistogram:
        """Rebuild a histogram from :meth:`to_state` output."""
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.ndim != 2 or counts.shape[0] != 2:
            raise ValueError(f"counts must have shape (2, n_bins), got {counts.shape}")
        return cls(counts)


class CBPE:
    r"""Confidence-based performance estimation (CBPE) of a binary classifier.

    Estimates ROC AUC, F1, precision, recall and accuracy of a window from its
    scores alone, as NannyML's ``CBPE`` does per chunk, but from a mergeable
    :class:`ScoreHistogram`, with a sampling error per metric.

    Parameters
    ----------
    n_bins : int, default 1000
        Bins of the score grid over [0, 1] (window histograms must use the same).
    calibrate : bool, default True
        Fit isotonic regression of the labels on the scores of the reference
        (NannyML's default calibrator). ``False`` takes the scores as calibrated.
    band : float, default 0.0
        Sampling errors by which an estimate must be past its threshold to
        count as crossed: 0 decides on the estimate itself (as NannyML's
        alerts), 3 requires NannyML's whole confidence band to be past it.

    Notes
    -----
    With :math:`\hat p(s)` the calibrated probability that a row of score
    :math:`s` is positive, the expected confusion counts of a window are
    :math:`E[TP] = \sum_{\hat y = 1} \hat p`, :math:`E[FP] = \sum_{\hat y = 1}
    (1 - \hat p)`, :math:`E[FN] = \sum_{\hat y = 0} \hat p`,
    :math:`E[TN] = \sum_{\hat y = 0} (1 - \hat p)`, giving accuracy, precision,
    recall and :math:`F_1 = TP / (TP + (FP + FN)/2)`; ROC AUC is the area
    under the curve traced by the expected TP and FP counts with the rows
    sorted by score [1]_ [2]_. Here :math:`\hat p` is one value per bin:
    isotonic regression (PAVA, ``scipy.optimize.isotonic_regression``) of the
    reference's positive rate per bin, weighted by its count, linearly
    interpolated (and clipped, as scikit-learn's ``IsotonicRegression``) over
    bins the reference left empty. When scores are rounded to a grid the bins
    resolve (e.g. 0.01 with 1,000 bins), this equals NannyML's calibration and
    estimates exactly; otherwise it differs by the within-bin variation of the
    calibration curve. Differences from NannyML: calibration is always applied
    (NannyML skips it when a cross-validated check finds the scores already
    calibrated), and a metric with a zero expected denominator is
    ``undefined`` (NannyML: 0).

    Sampling errors follow NannyML's formulas from the reference
    (``nannyml.sampling_error.binary_classification``): the standard deviation
    :math:`\sigma` of the per-row contribution on the reference, divided by
    :math:`\sqrt{n f}` for a window of :math:`n` rows where :math:`f` is the
    reference fraction of relevant rows (e.g. predicted positives for
    precision). For ROC AUC, :math:`\sigma` is the deviation of the positives'
    placements among the negatives (minority class as positive); rows tied in
    one bin are spread evenly, where NannyML orders ties arbitrarily.

    References
    ----------
    .. [1] NannyML, "Confidence-based Performance Estimation (CBPE)",
       https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html
    .. [2] NannyML 0.13, ``nannyml/performance_estimation/confidence_based/metrics.py``.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwarden.detectors.cbpe import CBPE, ScoreHistogram
    >>> rng = np.random.default_rng(6)
    >>> score = rng.beta(1, 1, 20_000)
    >>> label = rng.random(20_000) < score
    >>> cbpe = CBPE()
    >>> cbpe.fit(label, score)
    >>> window = ScoreHistogram.from_arrays(rng.beta(1, 1, 5000))
    >>> results = cbpe.estimate(window, {"accuracy": 0.7})
    >>> round(results["accuracy"].value, 3), results["accuracy"].drift
    (0.749, False)
    >>> round(cbpe.sampling_errors(5000)["accuracy"], 4)
    0.0061
    """

    name = "cbpe"
    _PARAMS = ("n_bins", "calibrate", "band")

    def __init__(self, n_bins: int = DEFAULT_SCORE_BINS, calibrate: bool = True, band: float = 0.0):
        self.n_bins = check_n_bins(n_bins)
        if not isinstance(calibrate, bool):
            raise ValueError(f"calibrate must be a bool, got {calibrate!r}")
        self.calibrate = calibrate
        if isinstance(band, bool) or not isinstance(band, int | float) or not 0 <= band < math.inf:
            raise ValueError(f"band must be a finite number >= 0, got {band!r}")
        self.band = float(band)
        self._reset()

    def _reset(self) -> None:
        self._calibration: np.ndarray | None = None
        self._components: dict[str, list[float | None]] = {}
        self._n_reference = 0

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_state`) has run."""
        return self._calibration is not None

    @property
    def calibration(self) -> np.ndarray:
        """Calibrated probability of the positive class per bin of the grid."""
        if self._calibration is None:
            raise ValueError("CBPE is not fitted: call fit() on the reference first")
        return self._calibration.copy()

    def fit(
        self,
        y_true: Any,
        y_score: Any,
        y_pred: Any = None,
        decision_threshold: float = 0.5,
    ) -> None:
        """Fit calibration and sampling-error components on the labelled reference rows."""
        y = check_labels(y_true)
        scores = check_scores(y_score)
        if scores.shape != y.shape:
            raise ValueError(f"y_true and y_score differ in shape: {y.shape} vs {scores.shape}")
        if y.size == 0:
            raise ValueError("the reference holds no rows")
        predicted = (
            scores >= decision_threshold if y_pred is None else check_labels(y_pred, "y_pred")
        )
        if predicted.shape != y.shape:
            raise ValueError(f"y_pred and y_true differ in shape: {predicted.shape} vs {y.shape}")
        bins = score_bins(scores, self.n_bins)
        total = np.bincount(bins, minlength=self.n_bins).astype(np.float64)
        positive = np.bincount(bins, weights=y, minlength=self.n_bins)
        score_sum = np.bincount(bins, weights=scores, minlength=self.n_bins)
        self._calibration = self._fit_calibration(total, positive, score_sum)
        self._n_reference = int(y.size)
        self._components = _components(y, predicted, positive, total - positive)

    def _fit_calibration(
        self, total: np.ndarray, positive: np.ndarray, score_sum: np.ndarray
    ) -> np.ndarray:
        centre = (np.arange(self.n_bins) + 0.5) / self.n_bins
        seen = total > 0
        x = score_sum[seen] / total[seen]
        if not self.calibrate or positive.sum() in (0.0, total.sum()):
            # Scores taken as probabilities: a bin's mean reference score, else its centre.
            out = centre.copy()
            out[seen] = x
            return out
        fitted = isotonic_regression(positive[seen] / total[seen], weights=total[seen]).x
        out = np.interp(centre, x, fitted)
        out[seen] = fitted
        return np.clip(out, 0.0, 1.0)

    def estimate(
        self,
        window: ScoreHistogram,
        thresholds: Mapping[str, float] | None = None,
        *,
        min_samples: int = DEFAULT_MIN_LABELED,
        n_window: int | None = None,
    ) -> dict[str, DetectorResult]:
        """Estimated ROC AUC, F1, precision, recall and accuracy of a window.

        Parameters
        ----------
        window : ScoreHistogram
            The window's scores (same ``n_bins``).
        thresholds : mapping of str to float, optional
            Alert threshold per metric (all cross *below*); with ``band`` > 0 the
            estimate must be that many sampling errors below.
        min_samples : int, default 500
            Rows needed; fewer give ``insufficient_data`` (the window's ``min_samples``
            in the daemon).
        n_window : int, optional
            Predictions in the window, for the record; defaults to the histogram's count.

        Returns
        -------
        dict of str to DetectorResult
            One result per metric in ``CBPE_METRICS``; ``n_labeled`` is None
            (no labels are used) and ``n_reference`` the reference's rows.
        """
        calibration = self.calibration
        if window.n_bins != self.n_bins:
            raise ValueError(f"window histogram has {window.n_bins} bins, CBPE {self.n_bins}")
        thresholds = check_thresholds(thresholds, CBPE_METRICS)
        check_count("min_samples", min_samples)
        n = window.n
        counts = {"n_window": n if n_window is None else n_window, "n_reference": self._n_reference}
        if n < max(min_samples, 1):
            return insufficient(CBPE_METRICS, thresholds, **counts)
        negative_pred, positive_pred = window.counts.astype(np.float64)
        tp = float(positive_pred @ calibration)
        fp = float(positive_pred.sum()) - tp
        fn = float(negative_pred @ calibration)
        tn = float(negative_pred.sum()) - fn
        rows = negative_pred + positive_pred
        expected = rows * calibration
        auc, _ = roc_auc_from_histograms(expected, rows - expected)
        values = {
            "roc_auc": auc,
            "f1": tp / (tp + 0.5 * (fp + fn)) if tp + fp + fn > 0 else None,
            "precision": tp / (tp + fp) if positive_pred.sum() > 0 else None,
            "recall": tp / (tp + fn) if tp + fn > 0 else None,
            "accuracy": (tp + tn) / n,
        }
        errors = self.sampling_errors(n)
        return {
            metric: metric_result(
                metric,
                value,
                thresholds,
                margin=self.band * (errors[metric] or 0.0),
                **counts,
            )
            for metric, value in values.items()
        }

    def expected_errors(self, window: ScoreHistogram) -> ExpectedCount:
        """The window's errors (predictions on the wrong side of the label) in expectation:
        each row is wrong with probability :math:`1 - \\hat p` when predicted positive,
        :math:`\\hat p` when predicted negative, so their count is Poisson-binomial with
        variance :math:`\\sum \\hat p (1 - \\hat p)` over the rows."""
        calibration = self.calibration
        if window.n_bins != self.n_bins:
            raise ValueError(f"window histogram has {window.n_bins} bins, CBPE {self.n_bins}")
        negative_pred, positive_pred = window.counts.astype(np.float64)
        expected = float(negative_pred @ calibration + positive_pred @ (1.0 - calibration))
        variance = float((negative_pred + positive_pred) @ (calibration * (1.0 - calibration)))
        return ExpectedCount(window.n, min(max(expected, 0.0), window.n), variance)

    def sampling_errors(self, n: int) -> dict[str, float | None]:
        """NannyML's sampling error of each estimated metric for a window of ``n`` rows."""
        if not self.fitted:
            raise ValueError("CBPE is not fitted: call fit() on the reference first")
        out: dict[str, float | None] = {}
        for metric in CBPE_METRICS:
            std, fraction = self._components[metric]
            if std is None or fraction is None or n <= 0 or fraction <= 0:
                out[metric] = None
            else:
                out[metric] = std / math.sqrt(n * fraction)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and the fitted calibration and components, as JSON data."""
        return {
            "detector": self.name,
            "version": STATE_VERSION,
            "params": {name: getattr(self, name) for name in self._PARAMS},
            "calibration": None if self._calibration is None else self._calibration.tolist(),
            "components": self._components,
            "n_reference": self._n_reference,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild an estimator from :meth:`state_dict` output."""
        if state.get("detector") != cls.name or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"not a CBPE state: {state.get('detector')!r} v{state.get('version')!r}"
            )
        estimator = cls(**state["params"])
        if state["calibration"] is not None:
            calibration = np.asarray(state["calibration"], dtype=np.float64)
            if calibration.shape != (estimator.n_bins,):
                raise ValueError(f"calibration must hold {estimator.n_bins} values")
            estimator._calibration = calibration
            estimator._components = {k: list(v) for k, v in state["components"].items()}
            estimator._n_reference = int(state["n_reference"])
        return estimator

    def __repr__(self) -> str:
        return f"CBPE(n_bins={self.n_bins!r}, calibrate={self.calibrate!r}, band={self.band!r})"


def _components(
    y: np.ndarray, predicted: np.ndarray, positives: np.ndarray, negatives: np.ndarray
) -> dict[str, list[float | None]]:
    """NannyML's sampling-error components ``[std, fraction]`` per metric, from the reference."""
    n = y.size
    tp = float(np.count_nonzero(y & predicted))
    fp = float(np.count_nonzero(predicted)) - tp
    fn = float(np.count_nonzero(y)) - tp
    tn = n - tp - fp - fn

    def bernoulli(successes: float, trials: float) -> float | None:
        if trials <= 0:
            return None
        q = successes / trials
        return math.sqrt(q * (1.0 - q))

    relevant = tp + fn + fp
    f1_std = None
    if relevant > 0:
        correction = relevant / (0.5 * (fn + fp) + tp)
        f1_std = correction * bernoulli(tp, relevant)  # type: ignore[operator]
    return {
        "accuracy": [bernoulli(tp + tn, n), 1.0],
        "precision": [bernoulli(tp, tp + fp), (tp + fp) / n],
        "recall": [bernoulli(tp, tp + fn), (tp + fn) / n],
        "f1": [f1_std, relevant / n],
        "roc_auc": _auc_component(positives, negatives, n),
    }


def _auc_component(positives: np.ndarray, negatives: np.ndarray, n: int) -> list[float | None]:
    """Deviation of the minority class's placements among the other class, and its fraction."""
    p, q = positives.astype(np.float64), negatives.astype(np.float64)
    if p.sum() > q.sum():  # NannyML flips labels and scores when positives are the majority.
        p, q = q[::-1], p[::-1]
    big_p, big_n = p.sum(), q.sum()
    if big_p == 0 or big_n == 0:
        return [None, None]
    start = (np.cumsum(q) - q) / big_n
    width = q / big_n
    middle = start + width / 2.0
    mean = float(np.dot(p, middle) / big_p)
    variance = float(np.dot(p, (middle - mean) ** 2 + width * width / 12.0) / big_p)
    return [math.sqrt(variance), big_p / n]
