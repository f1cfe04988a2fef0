"""Outcomes: what labels say about a model — reference performance, CBPE calibration,
and the label summaries of panes that realized performance and fairness read."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import polars as pl

from driftwarden.detectors.attribution import ErrorSummary
from driftwarden.detectors.cbpe import CBPE
from driftwarden.detectors.fairness import FairnessSummary
from driftwarden.detectors.loss_cusum import DEFAULT_KNOTS
from driftwarden.detectors.performance_binary import BinaryPerformanceSummary, binary_performance
from driftwarden.detectors.performance_multiclass import (
    MulticlassPerformanceSummary,
    multiclass_performance,
)
from driftwarden.detectors.performance_regression import (
    RegressionPerformanceSummary,
    regression_performance,
)
from driftwarden.detectors.result import DetectorResult
from driftwarden.detectors.risk_cusum import DEFAULT_BINS, MIN_ROWS_PER_BIN, reference_bins
from driftwarden.monitor.windows.vocabulary import (
    Vocabulary,
    category_texts,
    fit_vocabulary,
    vocabulary_from_json,
    vocabulary_json,
)

if TYPE_CHECKING:
    from driftwarden.monitor.config import ModelConfig


@dataclass(frozen=True)
class OutcomeProfile:
    """What the reference says about outcomes: classes, groups, reference performance, and
    the CBPE calibration (binary classifiers whose reference has labels)."""

    decision_threshold: float = 0.5
    classes: tuple[str, ...] = ()
    groups: tuple[Vocabulary, ...] = ()
    reference_performance: dict[str, float] = field(default_factory=dict)
    cbpe: dict[str, Any] | None = None
    label_shift: float = 0.0
    error_reference: dict[str, Any] = field(default_factory=dict)
    """What calibrated concept-drift detectors take from the reference's labelled rows:
    ``reference_rate`` (classifiers: the error rate), ``reference_bins`` (binary
    classifiers: ``risk_cusum``'s error rate per band of scores, from 1,000 rows on) and
    ``reference_quantiles`` (regression: ``loss_cusum``'s 256 quantiles of the absolute
    errors, from 256 rows on)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_threshold": self.decision_threshold,
            "classes": list(self.classes),
            "groups": [vocabulary_json(v) for v in self.groups],
            "reference_performance": self.reference_performance,
            "cbpe": self.cbpe,
            "label_shift": self.label_shift,
            "error_reference": self.error_reference,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutcomeProfile:
        return cls(
            decision_threshold=data["decision_threshold"],
            classes=tuple(data["classes"]),
            groups=tuple(vocabulary_from_json(v) for v in data["groups"]),
            reference_performance=data["reference_performance"],
            cbpe=data["cbpe"],
            label_shift=data["label_shift"],
            error_reference=data.get("error_reference", {}),
        )


def fit_outcomes(model: ModelConfig, frame: pl.DataFrame) -> OutcomeProfile:
    """Classes, group vocabularies, and — where the reference has labels — its performance
    and the CBPE calibration."""
    groups = tuple(
        fit_vocabulary(category_texts(frame[name]), model.profile.max_categories)
        for name in model.groups
    )
    classes: tuple[str, ...] = ()
    if model.task == "multiclass_classification":
        values = category_texts(frame["prediction"]).drop_nulls()
        if "label" in frame.columns:
            values = pl.concat([values, category_texts(frame["label"]).drop_nulls()])
        classes = tuple(sorted(set(values.to_list())))
    outcomes = OutcomeProfile(decision_threshold=model.threshold, classes=classes, groups=groups)
    if "label" not in frame.columns:
        return outcomes
    return reference_outcomes(model, frame, outcomes)


def reference_outcomes(
    model: ModelConfig, frame: pl.DataFrame, outcomes: OutcomeProfile
) -> OutcomeProfile:
    """Reference performance and, for binary classifiers, the fitted CBPE."""
    rows = labelled_rows(frame)
    if rows.height == 0:
        return outcomes
    label_shift = 0.0
    if model.task == "regression":
        label_shift = float(rows["label"].cast(pl.Float64).mean())
    outcomes = replace(
        outcomes,
        label_shift=label_shift,
        error_reference=error_reference(
            model.task, outcomes.decision_threshold, rows["prediction"], rows["label"]
        ),
    )
    performance = performance_summary(outcomes, model.task, rows["prediction"], rows["label"])
    results = task_performance(model.task, performance, {}, min_labeled=1)
    reference = {name: r.value for name, r in results.items() if r.value is not None}
    cbpe = None
    if model.task == "binary_classification":
        estimator = CBPE()
        estimator.fit(
            rows["label"].cast(pl.Float64).to_numpy(),
            rows["prediction"].cast(pl.Float64).to_numpy(),
            decision_threshold=outcomes.decision_threshold,
        )
        cbpe = estimator.state_dict()
    return replace(outcomes, reference_performance=reference, cbpe=cbpe)


def labelled_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The reference rows with both a prediction and a label."""
    return frame.filter(pl.col("label").is_not_null() & pl.col("prediction").is_not_null())


def error_stream(
    task: str, decision_threshold: float, prediction: pl.Series, label: pl.Series
) -> np.ndarray:
    """The concept-drift stream of labelled rows: error bits of classifiers (``prediction``
    on the wrong side of the threshold, or the wrong class), absolute errors of regressors."""
    if task == "binary_classification":
        predicted = prediction.cast(pl.Float64) >= decision_threshold
        errors = (predicted != (label.cast(pl.Float64) >= 0.5)).cast(pl.Float64)
    elif task == "multiclass_classification":
        errors = (prediction != label).cast(pl.Float64)
    else:
        errors = (prediction.cast(pl.Float64) - label.cast(pl.Float64)).abs()
    return errors.to_numpy()


def detector_stream(reads: str, errors: np.ndarray, scores: pl.Series | None) -> np.ndarray:
    """What a concept-drift detector reads of labelled rows: their errors, or for a detector
    that reads ``scored`` rows each error beside its score (binary classifiers' predictions;
    NaN for errors kept without one, as spread instances of earlier releases handed in)."""
    if reads != "scored":
        return errors
    if scores is None:
        return np.column_stack([errors, np.full(errors.size, np.nan)])
    return np.column_stack([errors, scores.cast(pl.Float64).to_numpy()])


def error_reference(
    task: str, decision_threshold: float, prediction: pl.Series, label: pl.Series
) -> dict[str, Any]:
    """The reference's error rate (and per band of scores), or its loss quantiles (see
    ``OutcomeProfile``)."""
    if task == "multiclass_classification":  # classes compare as text, as the reference's
        prediction, label = category_texts(prediction), category_texts(label)
    errors = error_stream(task, decision_threshold, prediction, label)
    if task != "regression":
        found: dict[str, Any] = {"reference_rate": float(errors.mean())}
        if task == "binary_classification" and errors.size >= DEFAULT_BINS * MIN_ROWS_PER_BIN:
            with suppress(ValueError):  # every score equal: no bands to tell apart
                found["reference_bins"] = reference_bins(errors, prediction.cast(pl.Float64))
        return found
    if errors.size < DEFAULT_KNOTS:
        return {}
    levels = (np.arange(DEFAULT_KNOTS) + 0.5) / DEFAULT_KNOTS
    return {"reference_quantiles": np.quantile(errors, levels).tolist()}


PerformanceSummary = (
    BinaryPerformanceSummary | MulticlassPerformanceSummary | RegressionPerformanceSummary
)


def performance_summary(
    outcomes: OutcomeProfile, task: str, prediction: pl.Series, label: pl.Series
) -> PerformanceSummary:
    """The performance summary of labelled rows (prediction and label columns)."""
    if task == "binary_classification":
        return BinaryPerformanceSummary.from_arrays(
            label.cast(pl.Float64).to_numpy(),
            prediction.cast(pl.Float64).to_numpy(),
            decision_threshold=outcomes.decision_threshold,
        )
    if task == "multiclass_classification":
        known = category_texts(label).is_in(outcomes.classes) & category_texts(prediction).is_in(
            outcomes.classes
        )
        return MulticlassPerformanceSummary.from_arrays(
            category_texts(label).filter(known).to_list(),
            category_texts(prediction).filter(known).to_list(),
            outcomes.classes,
            n_bins=None,
        )
    return RegressionPerformanceSummary.from_arrays(
        label.cast(pl.Float64).to_numpy(),
        prediction.cast(pl.Float64).to_numpy(),
        shift=outcomes.label_shift,
    )


def empty_performance(outcomes: OutcomeProfile, task: str) -> PerformanceSummary:
    if task == "binary_classification":
        return BinaryPerformanceSummary.empty(outcomes.decision_threshold)
    if task == "multiclass_classification":
        return MulticlassPerformanceSummary.empty(outcomes.classes, n_bins=None)
    return RegressionPerformanceSummary.empty(outcomes.label_shift)


def task_performance(
    task: str,
    summary: PerformanceSummary,
    thresholds: dict[str, float],
    *,
    min_labeled: int,
    n_window: int | None = None,
) -> dict[str, DetectorResult]:
    """The task's realized performance metrics from a summary."""
    if task == "binary_classification":
        assert isinstance(summary, BinaryPerformanceSummary)
        return binary_performance(summary, thresholds, min_labeled=min_labeled, n_window=n_window)
    if task == "multiclass_classification":
        assert isinstance(summary, MulticlassPerformanceSummary)
        return multiclass_performance(
            summary, thresholds, min_labeled=min_labeled, n_window=n_window
        )
    assert isinstance(summary, RegressionPerformanceSummary)
    return regression_performance(summary, thresholds, min_labeled=min_labeled, n_window=n_window)


def group_codes(
    outcomes: OutcomeProfile, attributes: tuple[str, ...], frame: pl.DataFrame
) -> list[tuple[np.ndarray, tuple[str, ...]]]:
    """Per group attribute: each row's group code (-1 = missing) and the group names.

    Values outside the reference's most frequent ones share the group ``(other)``,
    so fairness state stays bounded whatever the cardinality.
    """
    coded = []
    for attribute, vocabulary in zip(attributes, outcomes.groups, strict=True):
        other = len(vocabulary.top)
        column = pl.col(f"grp:{attribute}")
        codes = frame.select(
            pl.when(column.is_null())
            .then(-1)
            .otherwise(
                column.replace_strict(
                    {name: i for i, name in enumerate(vocabulary.top)},
                    default=other,
                    return_dtype=pl.Int64,
                )
            )
        ).to_series()
        coded.append((codes.to_numpy(), (*vocabulary.top, OTHER_GROUP)))
    return coded


def selection_summaries(
    outcomes: OutcomeProfile, attributes: tuple[str, ...], frame: pl.DataFrame
) -> tuple[FairnessSummary, ...]:
    """Per group attribute: predictions and positive predictions per group (binary)."""
    predicted = frame["prediction"].to_numpy() >= outcomes.decision_threshold
    out = []
    for codes, names in group_codes(outcomes, attributes, frame):
        present = codes >= 0
        out.append(FairnessSummary.from_codes(codes[present], names, predicted[present]))
    return tuple(out)


@dataclass(frozen=True)
class BusinessSummary:
    """Per business name (sorted): how many labels carried a value, and their sum. Adds up
    across panes; summaries of different names align by name."""

    names: tuple[str, ...]
    n: np.ndarray
    total: np.ndarray

    @classmethod
    def empty(cls, names: tuple[str, ...]) -> BusinessSummary:
        size = len(names)
        return cls(names, np.zeros(size, np.int64), np.zeros(size))

    @classmethod
    def of_rows(cls, names: tuple[str, ...], rows: pl.DataFrame) -> BusinessSummary:
        """Summarize the ``biz:<name>`` columns of ``rows`` (null: no value)."""
        if not names:
            return cls.empty(names)
        values = rows.select(pl.col(f"biz:{name}").cast(pl.Float64) for name in names)
        return cls(
            names,
            values.select(pl.all().count()).to_numpy()[0].astype(np.int64),
            values.select(pl.all().sum()).to_numpy()[0].astype(np.float64),
        )

    def mean(self, name: str) -> float | None:
        """The mean value of ``name``; ``None`` without values."""
        if name not in self.names:
            return None
        at = self.names.index(name)
        return float(self.total[at] / self.n[at]) if self.n[at] > 0 else None

    def count(self, name: str) -> int:
        return int(self.n[self.names.index(name)]) if name in self.names else 0

    def sum(self, name: str) -> float:
        return float(self.total[self.names.index(name)]) if name in self.names else 0.0

    def merge(self, other: BusinessSummary) -> BusinessSummary:
        if other.names == self.names:
            return BusinessSummary(self.names, self.n + other.n, self.total + other.total)
        names = tuple(sorted(set(self.names) | set(other.names)))
        return self._on(names).merge(other._on(names))

    def _on(self, names: tuple[str, ...]) -> BusinessSummary:
        """The same counts over ``names`` (a superset of this summary's)."""
        at = [names.index(name) for name in self.names]
        out = BusinessSummary.empty(names)
        out.n[at], out.total[at] = self.n, self.total
        return out

    def negated(self) -> BusinessSummary:
        return BusinessSummary(self.names, -self.n, -self.total)

    def to_state(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "n": self.n.tolist(),
            "total": self.total.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BusinessSummary:
        return cls(
            tuple(state["names"]),
            np.asarray(state["n"], dtype=np.int64),
            np.asarray(state["total"], dtype=np.float64),
        )


@dataclass(frozen=True)
class LabelSummary:
    """The labelled rows of a pane: performance counts, per group attribute the
    confusion counts fairness needs, and (``errors``, when the model has feature
    importance) its errors per feature bucket for error attribution, the labels' business
    values, and (``segments``, when the model has segments) the summary of each segment's
    rows. Adds up across panes; ``negated`` takes rows back out (a label replaced under
    ``policy: last``)."""

    n_labeled: int
    performance: PerformanceSummary
    fairness: tuple[FairnessSummary, ...]
    errors: ErrorSummary | None = None
    business: BusinessSummary = field(default_factory=lambda: BusinessSummary.empty(()))
    segments: tuple[LabelSummary, ...] = ()

    @classmethod
    def empty(
        cls,
        outcomes: OutcomeProfile,
        task: str,
        error_shape: tuple[int, int] | None = None,
        business: tuple[str, ...] = (),
    ) -> LabelSummary:
        """The summary of no rows; ``error_shape`` (features, buckets) adds error counts,
        ``business`` the names of business values."""
        fairness = tuple(FairnessSummary.empty() for _ in outcomes.groups)
        errors = None if error_shape is None else ErrorSummary.empty(*error_shape)
        return cls(
            0, empty_performance(outcomes, task), fairness, errors, BusinessSummary.empty(business)
        )

    @classmethod
    def of_rows(
        cls,
        outcomes: OutcomeProfile,
        task: str,
        attributes: tuple[str, ...],
        rows: pl.DataFrame,
        buckets: tuple[np.ndarray, int] | None = None,
        business: tuple[str, ...] = (),
        segments: tuple[np.ndarray, int] | None = None,
    ) -> LabelSummary:
        """Summarize joined rows: ``prediction``, ``label``, ``grp:*`` and ``biz:<name>``
        (each of ``business``) columns; ``buckets`` (the rows' ``(F, n)`` feature bucket
        codes, -1 none, and the number of buckets) adds their errors per bucket;
        ``segments`` (the rows' ``(A, n)`` segment positions and the number of segments)
        the performance and business values of each segment's rows."""
        performance = performance_summary(outcomes, task, rows["prediction"], rows["label"])
        fairness: tuple[FairnessSummary, ...] = ()
        if task == "binary_classification":
            predicted = (
                rows["prediction"].cast(pl.Float64).to_numpy() >= outcomes.decision_threshold
            )
            truth = rows["label"].cast(pl.Float64).to_numpy() >= 0.5
            fairness = tuple(
                FairnessSummary.from_codes(
                    codes[codes >= 0], names, predicted[codes >= 0], truth[codes >= 0]
                )
                for codes, names in group_codes(outcomes, attributes, rows)
            )
        else:
            fairness = tuple(FairnessSummary.empty() for _ in outcomes.groups)
        errors = None
        if buckets is not None:
            codes, n_buckets = buckets
            prediction, label = rows["prediction"], rows["label"]
            if task == "multiclass_classification":
                prediction, label = category_texts(prediction), category_texts(label)
            losses = error_stream(task, outcomes.decision_threshold, prediction, label)
            errors = ErrorSummary.from_codes(codes, losses, n_buckets)
        by_segment: tuple[LabelSummary, ...] = ()
        if segments is not None:
            by_segment = _segment_summaries(outcomes, task, business, rows, *segments)
        values = BusinessSummary.of_rows(business, rows)
        return cls(rows.height, performance, fairness, errors, values, by_segment)

    @classmethod
    def of_panes(
        cls,
        outcomes: OutcomeProfile,
        task: str,
        panes: Mapping[int, LabelSummary],
        error_shape: tuple[int, int] | None = None,
        business: tuple[str, ...] = (),
    ) -> LabelSummary:
        """A window's labels: its panes' summaries added up in pane order (error counts
        only when every pane has them)."""
        summary = cls.empty(outcomes, task, error_shape, business)
        for pane in sorted(panes):
            summary = summary.merge(panes[pane])
        return summary

    def merge(self, other: LabelSummary) -> LabelSummary:
        errors = None
        both = self.errors is not None and other.errors is not None
        if both and self.errors.n.shape == other.errors.n.shape:  # type: ignore[union-attr]
            errors = self.errors.merge(other.errors)  # type: ignore[union-attr,arg-type]
        return LabelSummary(
            self.n_labeled + other.n_labeled,
            self.performance.merge(other.performance),  # type: ignore[arg-type]
            tuple(a.merge(b) for a, b in zip(self.fairness, other.fairness, strict=True)),
            errors,
            self.business.merge(other.business),
            _merge_segments(self.segments, other.segments),
        )

    def negated(self) -> LabelSummary:
        """The same counts with the opposite sign: merging it removes these rows."""
        errors = None
        if self.errors is not None:
            errors = ErrorSummary(-self.errors.n, -self.errors.errors)
        return LabelSummary(
            -self.n_labeled,
            _negate(self.performance),
            tuple(_negate(summary) for summary in self.fairness),
            errors,
            self.business.negated(),
            tuple(summary.negated() for summary in self.segments),
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(self._state(), option=orjson.OPT_SERIALIZE_NUMPY)

    def _state(self) -> dict[str, Any]:
        return {
            "n_labeled": self.n_labeled,
            "kind": type(self.performance).__name__,
            "performance": self.performance.to_state(),
            "fairness": [summary.to_state() for summary in self.fairness],
            "errors": None if self.errors is None else self.errors.to_state(),
            "segments": [summary._state() for summary in self.segments],
            "business": self.business.to_state(),
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelSummary:
        return cls._from_state(orjson.loads(data))

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> LabelSummary:
        kind = _SUMMARIES[state["kind"]]
        errors = state.get("errors")  # absent from panes stored before error attribution
        business = state.get("business")  # absent from panes stored before business values
        return cls(
            state["n_labeled"],
            kind.from_state(state["performance"]),
            tuple(FairnessSummary.from_state(f) for f in state["fairness"]),
            None if errors is None else ErrorSummary.from_state(errors),
            BusinessSummary.empty(()) if business is None else BusinessSummary.from_state(business),
            tuple(cls._from_state(part) for part in state.get("segments", ())),
        )


def _segment_summaries(
    outcomes: OutcomeProfile,
    task: str,
    business: tuple[str, ...],
    rows: pl.DataFrame,
    positions: np.ndarray,
    count: int,
) -> tuple[LabelSummary, ...]:
    """The performance and business values of each segment's rows (``positions``: each
    row's segment per attribute)."""
    out = []
    for segment in range(count):
        part = rows.filter(pl.Series((positions == segment).any(axis=0)))
        performance = performance_summary(outcomes, task, part["prediction"], part["label"])
        values = BusinessSummary.of_rows(business, part)
        out.append(LabelSummary(part.height, performance, (), None, values))
    return tuple(out)


def _merge_segments(
    ours: tuple[LabelSummary, ...], theirs: tuple[LabelSummary, ...]
) -> tuple[LabelSummary, ...]:
    """Segment summaries added up; a pane without them (stored before segments) adds
    nothing, and panes of different segments (the setting changed) keep none."""
    if not ours or not theirs:
        return ours or theirs
    if len(ours) != len(theirs):
        return ()
    return tuple(a.merge(b) for a, b in zip(ours, theirs, strict=True))


OTHER_GROUP = "(other)"
_SUMMARIES: dict[str, Any] = {
    "BinaryPerformanceSummary": BinaryPerformanceSummary,
    "MulticlassPerformanceSummary": MulticlassPerformanceSummary,
    "RegressionPerformanceSummary": RegressionPerformanceSummary,
}


def _negate(summary: Any) -> Any:
    """A summary dataclass with every count and sum negated (settings kept)."""
    changes = {}
    for item in fields(summary):
        value = getattr(summary, item.name)
        if item.name in _SETTINGS or isinstance(value, str | tuple):
            continue
        if isinstance(value, np.ndarray | int | float) and not isinstance(value, bool):
            changes[item.name] = -value
    return replace(summary, **changes)


_SETTINGS = {"decision_threshold", "shift", "classes", "groups"}
