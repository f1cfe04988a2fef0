"""Feature importance: the reference's coarse buckets, and each batch's joint counts on them.

Every feature is bucketed coarsely — numeric ones on the reference's
quantiles plus a missing bucket, categorical ones on their vocabulary codes
(pooled rare, unseen, missing included) — and so is the prediction (the
reference's score quantiles plus missing, or the predicted class). Windows
keep the joint counts of feature bucket and prediction bucket
(``detectors/importance.py``); the mutual information between each feature
and the prediction computed from them is the feature's importance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from driftwarden.detectors.attribution import ErrorSummary
from driftwarden.detectors.importance import (
    AttributionSummary,
    ImportanceSummary,
    categorical_bucket_codes,
    mutual_information,
    numeric_bucket_codes,
    quantile_bucket_edges,
)


@dataclass(frozen=True)
class ImportanceCounts:
    """Joint counts of a pane or window: numeric features, then categorical ones."""

    numeric: ImportanceSummary
    categorical: ImportanceSummary

    def merge(self, other: ImportanceCounts) -> ImportanceCounts:
        """The counts of both inputs' rows together."""
        return ImportanceCounts(
            self.numeric.merge(other.numeric), self.categorical.merge(other.categorical)
        )

    @property
    def n(self) -> np.ndarray:
        """Rows counted per feature (numeric then categorical)."""
        return np.concatenate([self.numeric.n, self.categorical.n])

    def importance(self, correction: Literal["none", "miller-madow"]) -> np.ndarray:
        """Mutual information (nats) of each feature with the prediction; NaN without rows."""
        return np.concatenate(
            [
                mutual_information(self.numeric.counts, correction),
                mutual_information(self.categorical.counts, correction),
            ]
        )

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The counts to store under ``prefix``."""
        return {
            f"{prefix}.numeric": self.numeric.counts,
            f"{prefix}.categorical": self.categorical.counts,
        }

    @classmethod
    def restore(cls, prefix: str, arrays: dict[str, np.ndarray]) -> ImportanceCounts | None:
        """The counts stored by ``arrays`` (``None`` when none were)."""
        if f"{prefix}.numeric" not in arrays:
            return None
        return cls(
            ImportanceSummary(arrays[f"{prefix}.numeric"]),
            ImportanceSummary(arrays[f"{prefix}.categorical"]),
        )


@dataclass(frozen=True)
class ImportanceProfile:
    """How the reference buckets features and predictions, and the reference's own counts.

    ``numeric_edges`` are the interior quantile edges of each numeric feature
    (``buckets`` buckets, plus one for missing values); categorical features
    use their codes at ``vocabulary_width`` (``width + 3`` buckets).
    ``prediction_edges`` bucket a numeric prediction the same way; ``None``
    for a multiclass model, whose predicted class codes (``prediction_width``
    classes) are its buckets. ``attributions`` summarizes the reference's own
    attributions (its ``attribution.<feature>`` columns), ``None`` without any.
    """

    numeric_edges: np.ndarray
    vocabulary_width: int
    prediction_edges: np.ndarray | None
    prediction_width: int
    reference: ImportanceCounts
    attributions: AttributionSummary | None = None
    errors: ErrorSummary | None = None
    """The reference's labelled rows and errors (or losses) per feature bucket, for error
    attribution; ``None`` when the reference has no labels."""

    @classmethod
    def fit(
        cls,
        numeric: np.ndarray,
        codes: np.ndarray,
        vocabulary_width: int,
        prediction: np.ndarray,
        prediction_width: int | None,
        buckets: int,
        attributions: np.ndarray | None = None,
    ) -> ImportanceProfile:
        """Fit on the reference's numeric ``(F, n)`` (NaN missing), category codes ``(C, n)``
        and prediction: scores ``(n,)`` (NaN missing) when ``prediction_width`` is ``None``,
        else class codes ``(n,)`` at that width; ``attributions`` ``(F + C, n)`` are its
        per-row attributions (NaN none), if it has any."""
        prediction_edges = None
        if prediction_width is None:
            prediction_edges = quantile_bucket_edges(prediction, buckets)
        unfitted = cls(
            numeric_edges=quantile_bucket_edges(numeric, buckets),
            vocabulary_width=vocabulary_width,
            prediction_edges=prediction_edges,
            prediction_width=prediction_width or 0,
            reference=ImportanceCounts(
                ImportanceSummary.empty(numeric.shape[0], 1, 1),
                ImportanceSummary.empty(codes.shape[0], 1, 1),
            ),
            attributions=None
            if attributions is None
            else AttributionSummary.from_values(attributions),
        )
        return replace(unfitted, reference=unfitted.fold(numeric, codes, prediction))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Numeric features, numeric buckets, categorical buckets, prediction buckets."""
        if self.prediction_edges is None:
            prediction_buckets = self.prediction_width + 3
        else:
            prediction_buckets = self.prediction_edges.shape[1] + 2
        return (
            self.numeric_edges.shape[0],
            self.numeric_edges.shape[1] + 2,
            self.vocabulary_width + 3,
            prediction_buckets,
        )

    @property
    def n_buckets(self) -> int:
        """Buckets per feature in :meth:`bucket_codes` (numeric and categorical alike)."""
        _, numeric_buckets, categorical_buckets, _ = self.shape
        return max(numeric_buckets, categorical_buckets)

    def bucket_codes(self, numeric: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Each row's bucket per feature, numeric features then categorical ones, ``(F, n)``
        of int16: the buckets error attribution counts on."""
        return np.concatenate(
            [
                numeric_bucket_codes(numeric, self.numeric_edges).astype(np.int16),
                categorical_bucket_codes(codes, self.vocabulary_width).astype(np.int16),
            ]
        )

    def bucket_label(self, feature: int, bucket: int, vocabulary: tuple[str, ...]) -> str:
        """A bucket as people read it: ``> 84000``, ``(52000, 84000]``, ``= red``, ``missing``.

        ``feature`` indexes numeric features then categorical ones; ``vocabulary`` is the
        categorical feature's reference categories (ignored for a numeric one).
        """
        n_numeric = self.numeric_edges.shape[0]
        if feature < n_numeric:
            edges = self.numeric_edges[feature]
            edges = edges[np.isfinite(edges)]
            if bucket == self.numeric_edges.shape[1] + 1:
                return "missing"
            if edges.size == 0:
                return "any value"
            low = _number(edges[bucket - 1]) if 0 < bucket <= edges.size else None
            high = _number(edges[bucket]) if bucket < edges.size else None
            if low is None:
                return f"< {high}"
            if high is None:
                return f">= {low}"
            return f"[{low}, {high})"
        width = self.vocabulary_width
        if bucket < len(vocabulary):
            return f"= {vocabulary[bucket]}"
        return {width: "rare category", width + 1: "unseen category", width + 2: "missing"}.get(
            bucket, "no category"
        )

    def empty(self) -> ImportanceCounts:
        """The counts of no rows."""
        n_numeric, numeric_buckets, categorical_buckets, prediction_buckets = self.shape
        n_categorical = self.reference.categorical.counts.shape[0]
        return ImportanceCounts(
            ImportanceSummary.empty(n_numeric, numeric_buckets, prediction_buckets),
            ImportanceSummary.empty(n_categorical, categorical_buckets, prediction_buckets),
        )

    def fold(
        self, numeric: np.ndarray, codes: np.ndarray, prediction: np.ndarray
    ) -> ImportanceCounts:
        """The joint counts of a batch, in ``fit``'s layout (one ``bincount`` per feature type)."""
        _, numeric_buckets, categorical_buckets, prediction_buckets = self.shape
        if self.prediction_edges is None:
            predicted = categorical_bucket_codes(prediction[None], self.prediction_width)[0]
        else:
            predicted = numeric_bucket_codes(prediction[None], self.prediction_edges)[0]
        return ImportanceCounts(
            _counts(
                numeric_bucket_codes(numeric, self.numeric_edges),
                predicted,
                numeric_buckets,
                prediction_buckets,
            ),
            _counts(
                categorical_bucket_codes(codes, self.vocabulary_width),
                predicted,
                categorical_buckets,
                prediction_buckets,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The widths as plain JSON (the arrays are stored apart)."""
        return {
            "vocabulary_width": self.vocabulary_width,
            "prediction_width": self.prediction_width,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store beside ``to_json``."""
        arrays = {"importance.numeric_edges": self.numeric_edges}
        if self.prediction_edges is not None:
            arrays["importance.prediction_edges"] = self.prediction_edges
        arrays.update(attribution_arrays("importance.attribution", self.attributions))
        if self.errors is not None:
            arrays["importance.errors_n"] = self.errors.n
            arrays["importance.errors_sum"] = self.errors.errors
        return {**arrays, **self.reference.arrays("importance.reference")}

    @classmethod
    def restore(
        cls, state: dict[str, Any] | None, arrays: dict[str, np.ndarray]
    ) -> ImportanceProfile | None:
        """The profile saved as ``to_json`` plus ``arrays`` (``None`` when none was saved, as
        by releases before feature importance)."""
        reference = ImportanceCounts.restore("importance.reference", arrays)
        if state is None or reference is None:
            return None
        return cls(
            numeric_edges=arrays["importance.numeric_edges"],
            vocabulary_width=state["vocabulary_width"],
            prediction_edges=arrays.get("importance.prediction_edges"),
            prediction_width=state["prediction_width"],
            reference=reference,
            attributions=restore_attributions("importance.attribution", arrays),
            errors=(
                ErrorSummary(arrays["importance.errors_n"], arrays["importance.errors_sum"])
                if "importance.errors_n" in arrays
                else None
            ),
        )


def _counts(
    codes: np.ndarray, predicted: np.ndarray, n_buckets: int, n_prediction_buckets: int
) -> ImportanceSummary:
    if codes.shape[0] == 0:
        return ImportanceSummary.empty(0, n_buckets, n_prediction_buckets)
    return ImportanceSummary.from_codes(codes, predicted, n_buckets, n_prediction_buckets)


def _number(edge: float) -> str:
    """An edge as short text: ``84000``, ``0.125``, ``1.5e-07``."""
    return f"{float(edge):.6g}"


def attribution_arrays(prefix: str, summary: AttributionSummary | None) -> dict[str, np.ndarray]:
    """The arrays of an attribution summary under ``prefix`` (none for ``None``)."""
    if summary is None:
        return {}
    return {f"{prefix}_count": summary.count, f"{prefix}_abs_sum": summary.abs_sum}


def restore_attributions(prefix: str, arrays: dict[str, np.ndarray]) -> AttributionSummary | None:
    """The attribution summary stored by ``attribution_arrays`` (``None`` when none was)."""
    if f"{prefix}_count" not in arrays:
        return None
    return AttributionSummary(arrays[f"{prefix}_count"], arrays[f"{prefix}_abs_sum"])
