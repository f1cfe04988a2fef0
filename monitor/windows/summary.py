"""Window summaries: the bounded, mergeable state of a pane or window of one model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl

from driftwarden.detectors.cbpe import ScoreHistogram
from driftwarden.detectors.fairness import FairnessSummary
from driftwarden.detectors.histogram import CategoricalSummary, NumericSummary
from driftwarden.detectors.importance import AttributionSummary
from driftwarden.detectors.reconstruction import ErrorSummary
from driftwarden.monitor.windows.archive import (
    categorical_arrays,
    categorical_summary,
    numeric_arrays,
    numeric_summary,
    pack,
    unpack,
)
from driftwarden.monitor.windows.importance import (
    ImportanceCounts,
    attribution_arrays,
    restore_attributions,
)
from driftwarden.monitor.windows.outcomes import selection_summaries
from driftwarden.monitor.windows.profile import Profile, category_codes


@dataclass(frozen=True)
class WindowSummary:
    """Everything a window's detectors need, as counts and sums that add up.

    ``missing`` counts null or absent values per feature (numeric then
    categorical), ``type_errors`` values of the wrong type (also missing for
    the statistics). ``versions`` counts events per model version.
    ``reconstruction`` holds the rows' PCA reconstruction errors when the
    model's ``multivariate_drift`` is enabled, ``importance`` the joint counts
    of feature and prediction buckets when its ``importance`` is (``None``
    also for a window partly summarized before feature importance existed), and
    ``attributions`` the count and sum of ``|attribution|`` per feature.
    ``segments`` counts a closed window's events per segment (``attribute=value``) of a
    model with segments, so that late labels can be judged per segment.
    """

    reference_id: str
    n_events: int
    numeric: NumericSummary
    categorical: CategoricalSummary
    missing: np.ndarray
    type_errors: np.ndarray
    prediction_numeric: NumericSummary | None
    prediction_categorical: CategoricalSummary | None
    first_ts: int | None = None
    last_ts: int | None = None
    versions: dict[str, int] = field(default_factory=dict)
    scores: ScoreHistogram | None = None
    selection: tuple[FairnessSummary, ...] = ()
    reconstruction: ErrorSummary | None = None
    importance: ImportanceCounts | None = None
    attributions: AttributionSummary | None = None
    segments: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, profile: Profile) -> WindowSummary:
        """The summary of no events."""
        n_features = len(profile.features)
        prediction_numeric = None
        if profile.prediction_reference is not None:
            prediction_numeric = NumericSummary.empty(
                profile.prediction_edges, profile.prediction_reference.shift
            )
        prediction_categorical = None
        if profile.prediction_categorical_reference is not None:
            width = profile.prediction_categorical_reference.counts.shape[1] - 2
            prediction_categorical = CategoricalSummary.empty(1, width)
        return cls(
            reference_id=profile.reference_id,
            n_events=0,
            numeric=NumericSummary.empty(profile.edges, profile.numeric_reference.shift),
            categorical=CategoricalSummary.empty(
                len(profile.categorical), profile.vocabulary_width
            ),
            missing=np.zeros(n_features, dtype=np.int64),
            type_errors=np.zeros(n_features, dtype=np.int64),
            prediction_numeric=prediction_numeric,
            prediction_categorical=prediction_categorical,
            scores=ScoreHistogram.empty() if profile.task == "binary_classification" else None,
            selection=(
                tuple(FairnessSummary.empty() for _ in profile.groups)
                if profile.task == "binary_classification"
                else ()
            ),
            reconstruction=(
                None
                if profile.multivariate is None
                else ErrorSummary.empty(profile.multivariate.edges)
            ),
            importance=None if profile.importance is None else profile.importance.empty(),
            attributions=(
                None if profile.importance is None else AttributionSummary.empty(n_features)
            ),
        )

    def merge(self, other: WindowSummary) -> WindowSummary:
        """The summary of both inputs together."""
        if self.reference_id != other.reference_id:
            raise ValueError("summaries on different reference profiles cannot be merged")
        versions = Counter(self.versions)
        versions.update(other.versions)
        segments = Counter(self.segments)
        segments.update(other.segments)
        return WindowSummary(
            reference_id=self.reference_id,
            n_events=self.n_events + other.n_events,
            numeric=self.numeric.merge(other.numeric),
            categorical=self.categorical.merge(other.categorical),
            missing=self.missing + other.missing,
            type_errors=self.type_errors + other.type_errors,
            prediction_numeric=_merge(self.prediction_numeric, other.prediction_numeric),
            prediction_categorical=_merge(
                self.prediction_categorical, other.prediction_categorical
            ),
            first_ts=_extreme(min, self.first_ts, other.first_ts),
            last_ts=_extreme(max, self.last_ts, other.last_ts),
            versions=dict(versions),
            segments=dict(segments),
            scores=_merge(self.scores, other.scores),
            selection=tuple(
                a.merge(b) for a, b in zip(self.selection, other.selection, strict=True)
            ),
            reconstruction=_merge(self.reconstruction, other.reconstruction),
            importance=(
                None
                if self.importance is None or other.importance is None
                else self.importance.merge(other.importance)
            ),
            attributions=(
                None
                if self.attributions is None or other.attributions is None
                else self.attributions.merge(other.attributions)
            ),
        )

    @property
    def model_version(self) -> str | None:
        """The most frequent model version in the window (ties: the greatest)."""
        if not self.versions:
            return None
        return max(self.versions.items(), key=lambda item: (item[1], item[0]))[0]

    def to_bytes(self) -> bytes:
        """Serialize for storage."""
        header = {
            "reference_id": self.reference_id,
            "n_events": self.n_events,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "versions": self.versions,
            "segments": self.segments,
            "selection": [summary.to_state() for summary in self.selection],
        }
        arrays = {
            "missing": self.missing,
            "type_errors": self.type_errors,
            **numeric_arrays("numeric", self.numeric),
            **categorical_arrays("categorical", self.categorical),
            **numeric_arrays("prediction", self.prediction_numeric),
            **categorical_arrays("prediction_categorical", self.prediction_categorical),
        }
        if self.scores is not None:
            arrays["scores"] = self.scores.counts
        if self.reconstruction is not None:
            header["reconstruction"] = {
                "count": self.reconstruction.count,
                "total": self.reconstruction.total,
                "total_sq": self.reconstruction.total_sq,
            }
            arrays["reconstruction.edges"] = self.reconstruction.edges
            arrays["reconstruction.counts"] = self.reconstruction.counts
        if self.importance is not None:
            arrays.update(self.importance.arrays("importance"))
        arrays.update(attribution_arrays("attribution", self.attributions))
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowSummary:
        """Restore a summary written by ``to_bytes``."""
        header, arrays = unpack(data)
        reconstruction = None
        if "reconstruction" in header:
            reconstruction = ErrorSummary(
                edges=arrays["reconstruction.edges"],
                counts=arrays["reconstruction.counts"],
                **header["reconstruction"],
            )
        return cls(
            reference_id=header["reference_id"],
            n_events=header["n_events"],
            numeric=numeric_summary("numeric", arrays),
            categorical=categorical_summary("categorical", arrays),
            missing=arrays["missing"],
            type_errors=arrays["type_errors"],
            prediction_numeric=numeric_summary("prediction", arrays),
            prediction_categorical=categorical_summary("prediction_categorical", arrays),
            first_ts=header["first_ts"],
            last_ts=header["last_ts"],
            versions=header["versions"],
            segments=header.get("segments", {}),
            scores=ScoreHistogram(arrays["scores"]) if "scores" in arrays else None,
            selection=tuple(FairnessSummary.from_state(f) for f in header["selection"]),
            reconstruction=reconstruction,
            importance=ImportanceCounts.restore("importance", arrays),
            attributions=restore_attributions("attribution", arrays),
        )


def summarize(profile: Profile, frame: pl.DataFrame) -> WindowSummary:
    """Fold decoded prediction rows of one model into a summary on ``profile``."""
    if frame.height == 0:
        return WindowSummary.empty(profile)
    numeric = _matrix(frame, [f"num:{name}" for name in profile.numeric])
    width = profile.vocabulary_width
    columns = [f"cat:{name}" for name in profile.categorical]
    codes = category_codes(frame, columns, profile.category_maps, width)
    stats = frame.select(
        *(pl.col(f"err:{name}").sum() for name in profile.features),
        *(pl.col(column).null_count().alias(f"null:{column}") for column in columns),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
    ).row(0, named=True)
    type_errors = np.array([stats[f"err:{name}"] for name in profile.features], dtype=np.int64)
    absent = np.array(
        [int(np.isnan(row).sum()) for row in numeric]
        + [stats[f"null:{column}"] for column in columns],
        dtype=np.int64,
    )
    prediction_numeric = None
    prediction_categorical = None
    predicted: np.ndarray
    scores = None
    selection: tuple[FairnessSummary, ...] = ()
    if profile.task == "binary_classification":
        probabilities = frame["prediction"].to_numpy()
        scores = ScoreHistogram.from_arrays(
            probabilities, decision_threshold=profile.outcomes.decision_threshold
        )
        selection = selection_summaries(profile.outcomes, profile.groups, frame)
    if profile.prediction_reference is not None:
        predicted = _matrix(frame, ["prediction"])
        prediction_numeric = NumericSummary.from_columns(
            predicted, profile.prediction_edges, profile.prediction_reference.shift
        )
    else:
        prediction_width = len(profile.prediction_map)
        prediction_codes = category_codes(
            frame, ["prediction"], (profile.prediction_map,), prediction_width
        )
        prediction_categorical = CategoricalSummary.from_codes(prediction_codes, prediction_width)
        predicted = prediction_codes
    reconstruction = None
    if profile.multivariate is not None:
        reconstruction = profile.multivariate.fold(numeric, codes)
    importance = None
    attributions = None
    if profile.importance is not None:
        importance = profile.importance.fold(numeric, codes, predicted[0])
        attributions = AttributionSummary.from_values(
            _matrix(frame, [f"att:{name}" for name in profile.features])
        )
    versions = frame["model_version"].drop_nulls().value_counts()
    return WindowSummary(
        reference_id=profile.reference_id,
        n_events=frame.height,
        numeric=NumericSummary.from_columns(
            numeric, profile.edges, profile.numeric_reference.shift
        ),
        categorical=CategoricalSummary.from_codes(codes, width),
        missing=absent - type_errors,
        type_errors=type_errors,
        prediction_numeric=prediction_numeric,
        prediction_categorical=prediction_categorical,
        first_ts=stats["first"],
        last_ts=stats["last"],
        versions={version: int(count) for version, count in versions.iter_rows()},
        scores=scores,
        selection=selection,
        reconstruction=reconstruction,
        importance=importance,
        attributions=attributions,
    )


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ENCODE = np.ascontiguousarray(
    _HEX[(np.arange(65536, dtype=np.uint32)[:, None] >> np.array([12, 8, 4, 0])) & 15]
).view(np.uint32)[:, 0]
"""The four hex digits of every 16-bit code, as one 32-bit word each."""
_PAIRS = np.zeros(65536, dtype=np.int64)
_PAIRS[
    np.ascontiguousarray(_HEX[np.arange(256)[:, None] >> np.array([4, 0]) & 15]).view(np.uint16)[
        :, 0
    ]
] = np.arange(256)
"""The byte value of every two hex digits, read as one 16-bit word."""


def error_buckets(profile: Profile, frame: pl.DataFrame) -> pl.Series:
    """Each decoded prediction row's feature buckets for error attribution, as text: four
    hex digits per feature (numeric features then categorical ones; ``ffff`` none), so
    that a batch is written and read back as whole arrays. Null without importance."""
    if profile.importance is None or not profile.features:
        return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("buckets")
    numeric = _matrix(frame, [f"num:{name}" for name in profile.numeric])
    columns = [f"cat:{name}" for name in profile.categorical]
    codes = category_codes(frame, columns, profile.category_maps, profile.vocabulary_width)
    return encode_buckets(profile.importance.bucket_codes(numeric, codes))


def encode_buckets(codes: np.ndarray) -> pl.Series:
    """The text of ``(F, n)`` bucket codes (-1 none): four hex digits per feature a row."""
    words = np.ascontiguousarray(_ENCODE[codes.T.astype(np.uint16)])
    text = words.view(f"S{4 * codes.shape[0]}").ravel()
    return pl.Series("buckets", text, dtype=pl.Binary).cast(pl.String)


def decode_buckets(text: pl.Series, n_features: int) -> np.ndarray:
    """The ``(F, n)`` bucket codes of :func:`encode_buckets` text; -1 where a row has none
    (stored before error attribution, or under another feature list). Rows stored as
    comma-separated codes (before the hex form) are read too."""
    if n_features == 0:
        return np.zeros((0, text.len()), dtype=np.int64)
    width = 4 * n_features
    hexed = (text.str.len_bytes() == width) & ~text.str.contains(",", literal=True)
    hexed = hexed.fill_null(False)
    filled = pl.select(
        pl.when(pl.lit(hexed)).then(pl.lit(text)).otherwise(pl.lit("f" * width))
    ).to_series()
    raw = np.frombuffer(b"".join(filled.cast(pl.Binary).to_list()), dtype=np.uint16)
    pairs = _PAIRS[raw].reshape(text.len(), n_features, 2)
    values = (pairs[..., 0] << 8) | pairs[..., 1]
    values[values == 0xFFFF] = -1
    older = (~hexed & text.str.contains(",", literal=True).fill_null(False)).to_numpy()
    if older.any():
        values[older] = _decode_commas(text.filter(pl.Series(older)), n_features)
    return np.ascontiguousarray(values.T)


def _decode_commas(text: pl.Series, n_features: int) -> np.ndarray:
    """``(n, F)`` codes of rows stored as ``"3,0,11"``; -1 where the count does not fit."""
    parts = text.str.split(",")
    usable = (parts.list.len() == n_features).fill_null(False)
    filler = ",".join(["-1"] * n_features)
    parts = pl.select(
        pl.when(usable).then(parts).otherwise(pl.lit(filler).str.split(","))
    ).to_series()
    return parts.list.eval(pl.element().cast(pl.Int64)).list.to_array(n_features).to_numpy()


def _matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    if not columns:
        return np.zeros((0, frame.height))
    return frame.select(columns).to_numpy().T.astype(np.float64, copy=False)


Summary = TypeVar("Summary", NumericSummary, CategoricalSummary, ScoreHistogram, ErrorSummary)


def _merge(first: Summary | None, second: Summary | None) -> Summary | None:
    if first is None or second is None:
        return first if second is None else second
    return first.merge(second)


def _extreme(pick: Callable[[list[int]], int], first: int | None, second: int | None) -> int | None:
    values = [value for value in (first, second) if value is not None]
    return pick(values) if values else None
