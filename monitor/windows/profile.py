"""Reference profiles: what every window of a model is compared with.

A profile is fitted once per model from its reference file (Parquet, CSV or
JSON lines; one column per feature, ``prediction``, optionally ``label`` and
one column per group attribute) and identified by ``reference_id``, a hash of
the file's content, the feature spec and the binning.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.detectors import CALIBRATED_CONCEPT_DRIFT
from driftwarden.detectors.attribution import ErrorSummary
from driftwarden.detectors.histogram import (
    CategoricalSummary,
    NumericSummary,
    pad_edges,
    quantile_edges,
)
from driftwarden.detectors.importance import DEFAULT_BUCKETS
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.errors import ProfileError
from driftwarden.monitor.windows.archive import (
    categorical_arrays,
    categorical_summary,
    numeric_arrays,
    numeric_summary,
    pack,
    unpack,
)
from driftwarden.monitor.windows.importance import ImportanceProfile
from driftwarden.monitor.windows.multivariate import MultivariateProfile
from driftwarden.monitor.windows.outcomes import (
    OutcomeProfile,
    error_reference,
    error_stream,
    fit_outcomes,
    labelled_rows,
)
from driftwarden.monitor.windows.vocabulary import (
    Vocabulary,
    category_codes,
    category_texts,
    fit_vocabulary,
    vocabulary_from_json,
    vocabulary_json,
)

_READERS = {
    ".parquet": pl.read_parquet,
    ".csv": pl.read_csv,
    ".jsonl": pl.read_ndjson,
    ".ndjson": pl.read_ndjson,
}


@dataclass(frozen=True)
class Profile:
    """A fitted reference profile of one model.

    Numeric features share padded fine-bin ``edges`` and a reference
    ``NumericSummary`` on them; categorical features have one ``Vocabulary``
    each and a reference ``CategoricalSummary``. The prediction column is
    profiled the same way (numeric for binary classification and regression,
    categorical for multiclass). ``importance`` holds the coarse buckets and
    reference counts of feature importance (``None`` when it is disabled, and
    in profiles stored before it existed).
    """

    reference_id: str
    model: str
    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    groups: tuple[str, ...]
    n_rows: int
    edges: np.ndarray
    numeric_reference: NumericSummary
    vocabularies: tuple[Vocabulary, ...]
    categorical_reference: CategoricalSummary
    missing: np.ndarray
    prediction_edges: np.ndarray
    prediction_reference: NumericSummary | None
    prediction_vocabulary: Vocabulary | None
    prediction_categorical_reference: CategoricalSummary | None
    outcomes: OutcomeProfile = field(default_factory=OutcomeProfile)
    multivariate: MultivariateProfile | None = None
    importance: ImportanceProfile | None = None

    @cached_property
    def category_maps(self) -> tuple[dict[str, int], ...]:
        """Category → code of each categorical feature, at the common vocabulary width."""
        return tuple(v.mapping(self.vocabulary_width) for v in self.vocabularies)

    @cached_property
    def prediction_map(self) -> dict[str, int]:
        """Predicted class → code (multiclass models)."""
        assert self.prediction_vocabulary is not None
        return self.prediction_vocabulary.mapping(len(self.prediction_vocabulary.top))

    @property
    def vocabulary_width(self) -> int:
        """The common vocabulary width of the categorical summaries."""
        return self.categorical_reference.counts.shape[1] - 2

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def to_bytes(self) -> bytes:
        """Serialize for storage."""
        header = {
            "reference_id": self.reference_id,
            "model": self.model,
            "task": self.task,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "groups": self.groups,
            "n_rows": self.n_rows,
            "vocabularies": [vocabulary_json(v) for v in self.vocabularies],
            "prediction_vocabulary": vocabulary_json(self.prediction_vocabulary),
            "outcomes": self.outcomes.to_json(),
            "multivariate": None if self.multivariate is None else self.multivariate.to_json(),
            "importance": None if self.importance is None else self.importance.to_json(),
        }
        arrays = {
            "edges": self.edges,
            "missing": self.missing,
            "prediction_edges": self.prediction_edges,
            **numeric_arrays("numeric", self.numeric_reference),
            **categorical_arrays("categorical", self.categorical_reference),
            **numeric_arrays("prediction", self.prediction_reference),
            **categorical_arrays("prediction_categorical", self.prediction_categorical_reference),
        }
        if self.multivariate is not None:
            arrays.update(self.multivariate.arrays())
        if self.importance is not None:
            arrays.update(self.importance.arrays())
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Restore a profile written by ``to_bytes``."""
        header, arrays = unpack(data)
        return cls(
            reference_id=header["reference_id"],
            model=header["model"],
            task=header["task"],
            numeric=tuple(header["numeric"]),
            categorical=tuple(header["categorical"]),
            groups=tuple(header["groups"]),
            n_rows=header["n_rows"],
            edges=arrays["edges"],
            numeric_reference=numeric_summary("numeric", arrays),
            vocabularies=tuple(vocabulary_from_json(v) for v in header["vocabularies"]),
            categorical_reference=categorical_summary("categorical", arrays),
            missing=arrays["missing"],
            prediction_edges=arrays["prediction_edges"],
            prediction_reference=numeric_summary("prediction", arrays),
            prediction_vocabulary=vocabulary_from_json(header["prediction_vocabulary"]),
            prediction_categorical_reference=categorical_summary("prediction_categorical", arrays),
            outcomes=OutcomeProfile.from_json(header["outcomes"]),
            multivariate=MultivariateProfile.restore(header.get("multivariate"), arrays),
            importance=ImportanceProfile.restore(header.get("importance"), arrays),
        )


def read_reference(path: Path) -> tuple[pl.DataFrame, bytes]:
    """Read a reference file; return its rows and its raw bytes (for the reference id)."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ProfileError(
            f"{path}: unsupported reference format {path.suffix!r} "
            f"(expected one of {', '.join(sorted(_READERS))})"
        )
    try:
        content = path.read_bytes()
        frame = reader(io.BytesIO(content))
    except FileNotFoundError:
        raise ProfileError(f"{path}: reference file not found") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ProfileError(f"{path}: cannot read reference: {exc}") from None
    return frame, content


def check_reference(name: str, model: ModelConfig) -> int:
    """Check that model ``name``'s reference can be fitted; return its number of rows.

    The file is read as fitting reads it (``read_reference``). It must have rows and every
    configured column: numeric features, and the ``prediction`` of binary classifiers and
    regressors, must be numbers or text that parses as numbers wherever not missing (with
    at least one value); categorical features, group attributes and multiclass predictions
    must be values that read as text. A ``ProfileError`` names the model and the column.
    """
    try:
        frame, _ = read_reference(model.reference)
    except ProfileError as exc:
        raise ProfileError(f"model {name!r}: {exc}") from None
    where = f"model {name!r}: reference {model.reference}"
    numeric = [(column, "numeric feature") for column in model.features.numeric]
    textual = [(column, "categorical feature") for column in model.features.categorical]
    textual += [(column, "group attribute") for column in model.groups]
    if model.task == "multiclass_classification":
        textual.append(("prediction", "prediction"))
    else:
        numeric.append(("prediction", "prediction"))
    absent = [column for column, _ in numeric + textual if column not in frame.columns]
    if absent:
        raise ProfileError(f"{where} lacks column(s) {', '.join(absent)}")
    if frame.height == 0:
        raise ProfileError(f"{where} has no rows")
    for column, role in numeric:
        problem = _numeric_problem(frame[column])
        if problem:
            raise ProfileError(f"{where}: column {column!r} ({role}) {problem}")
    for column, role in textual:
        problem = _text_problem(frame[column])
        if problem:
            raise ProfileError(f"{where}: column {column!r} ({role}) {problem}")
    return frame.height


def _numeric_problem(column: pl.Series) -> str:
    """Why fitting could not read ``column`` as numbers ("" when it can)."""
    expected = f"has type {column.dtype}, expected numbers or numeric text"
    kind = column.dtype
    if kind.is_temporal() or kind.is_nested() or kind in (pl.Binary(), pl.Object()):
        return expected
    try:  # the conversion numeric_matrix makes
        converted = column.cast(pl.Float64, strict=False)
    except pl.exceptions.PolarsError:
        return expected
    unparsed = column.is_not_null() & converted.is_null()
    if kind == pl.String():  # empty text is a missing value, as fitting reads it
        unparsed &= column.str.strip_chars() != ""
    if unparsed.any():
        example = column.filter(unparsed)[0]
        count = int(unparsed.sum())
        return f"has {count:,} value(s) that are not numbers, e.g. {example!r}"
    if converted.is_null().all():
        return "has no values"
    return ""


def _text_problem(column: pl.Series) -> str:
    """Why fitting could not read ``column`` as category texts ("" when it can)."""
    if column.dtype.is_nested() or column.dtype in (pl.Binary(), pl.Object()):
        return f"has type {column.dtype}, expected text, numbers or booleans"
    try:
        category_texts(column)
    except pl.exceptions.PolarsError as exc:
        return f"cannot be read as text: {exc}"
    return ""


def reference_id(content: bytes, model: ModelConfig) -> str:
    """Hash of the reference content, the feature spec, the binning and what else the profile
    holds for this model (multivariate drift, a calibrated concept-drift detector)."""
    spec = {
        "task": model.task,
        "features": model.features.model_dump(),
        "groups": model.groups,
        "profile": {**model.profile.model_dump(), "coarse_bins": _RETIRED_COARSE_BINS},
    }
    # Added only when set, so that the ids of other models stay as they were: the reconstruction
    # model is part of the profile, and profiles stored by releases that did not keep the
    # reference's error figures (which calibrated concept-drift detectors read) get refitted.
    if model.multivariate_drift.enabled:
        spec["multivariate_drift"] = True
    if model.concept_drift.detector in CALIBRATED_CONCEPT_DRIFT:
        spec["calibrated_concept_drift"] = True
    importance = model.importance
    if not importance.enabled or importance.buckets != DEFAULT_BUCKETS:
        spec["importance_buckets"] = importance.buckets if importance.enabled else None
    digest = hashlib.sha256(content)
    digest.update(json.dumps(spec, sort_keys=True).encode())
    return digest.hexdigest()[:16]


_RETIRED_COARSE_BINS = 10
"""A setting no detector read, removed from the configuration; the digest keeps its last
default so that reference ids (and the windows stored under them) survive the upgrade."""


def fit(name: str, model: ModelConfig, frame: pl.DataFrame, content: bytes) -> Profile:
    """Fit the profile of model ``name`` from its reference rows."""
    numeric = tuple(model.features.numeric)
    categorical = tuple(model.features.categorical)
    required = [*numeric, *categorical, "prediction", *model.groups]
    absent = [column for column in required if column not in frame.columns]
    if absent:
        raise ProfileError(
            f"{model.reference}: reference lacks column(s) {', '.join(absent)} for model {name!r}"
        )
    if frame.height == 0:
        raise ProfileError(f"{model.reference}: reference has no rows")
    settings = model.profile
    numeric_columns = numeric_matrix(frame, numeric)
    edges = pad_edges([quantile_edges(row, settings.fine_bins) for row in numeric_columns])
    with np.errstate(invalid="ignore"):
        shift = np.nan_to_num(np.nanmean(numeric_columns, axis=1)) if numeric else np.zeros(0)
    numeric_reference = NumericSummary.from_columns(numeric_columns, edges, shift)
    texts = [category_texts(frame[column]) for column in categorical]
    vocabularies = tuple(fit_vocabulary(text, settings.max_categories) for text in texts)
    width = max((len(v.top) for v in vocabularies), default=0)
    text_frame = pl.DataFrame(texts) if texts else pl.DataFrame()
    codes = category_codes(
        text_frame, list(categorical), tuple(v.mapping(width) for v in vocabularies), width
    )
    categorical_reference = CategoricalSummary.from_codes(codes, width)
    missing = np.array(
        [int(np.isnan(row).sum()) for row in numeric_columns]
        + [int(text.null_count()) for text in texts],
        dtype=np.int64,
    )
    prediction_edges = np.zeros((1, 0))
    prediction_reference = None
    prediction_vocabulary = None
    prediction_categorical = None
    prediction_width = None
    if model.task == "multiclass_classification":
        prediction_text = category_texts(frame["prediction"])
        prediction_vocabulary = fit_vocabulary(prediction_text, settings.max_categories)
        prediction_width = len(prediction_vocabulary.top)
        prediction = category_codes(
            pl.DataFrame([prediction_text]),
            ["prediction"],
            (prediction_vocabulary.mapping(prediction_width),),
            prediction_width,
        )
        prediction_categorical = CategoricalSummary.from_codes(prediction, prediction_width)
    else:
        prediction = numeric_matrix(frame, ("prediction",))
        prediction_edges = pad_edges([quantile_edges(prediction[0], settings.fine_bins)])
        prediction_shift = np.nan_to_num(np.nanmean(prediction, axis=1))
        prediction_reference = NumericSummary.from_columns(
            prediction, prediction_edges, prediction_shift
        )
    return Profile(
        reference_id=reference_id(content, model),
        model=name,
        task=model.task,
        numeric=numeric,
        categorical=categorical,
        groups=tuple(model.groups),
        n_rows=frame.height,
        edges=edges,
        numeric_reference=numeric_reference,
        vocabularies=vocabularies,
        categorical_reference=categorical_reference,
        missing=missing,
        prediction_edges=prediction_edges,
        prediction_reference=prediction_reference,
        prediction_vocabulary=prediction_vocabulary,
        prediction_categorical_reference=prediction_categorical,
        outcomes=fit_outcomes(model, frame),
        multivariate=_fit_multivariate(name, model, numeric_columns, codes),
        importance=(
            with_reference_errors(
                ImportanceProfile.fit(
                    numeric_columns,
                    codes,
                    width,
                    prediction[0],
                    prediction_width,
                    model.importance.buckets,
                    reference_attributions(frame, numeric + categorical),
                ),
                model,
                frame,
                numeric_columns,
                codes,
            )
            if model.importance.enabled
            else None
        ),
    )


def with_reference_errors(
    importance: ImportanceProfile,
    model: ModelConfig,
    frame: pl.DataFrame,
    numeric: np.ndarray,
    codes: np.ndarray,
) -> ImportanceProfile:
    """``importance`` with the reference's errors per feature bucket (error attribution's
    expected rates), from its rows with a label; unchanged when it has none."""
    if "label" not in frame.columns:
        return importance
    prediction, label = frame["prediction"], frame["label"]
    if model.task == "multiclass_classification":
        prediction, label = category_texts(prediction), category_texts(label)
    losses = error_stream(model.task, model.threshold, prediction, label)
    losses = np.where(label.is_null().to_numpy() | prediction.is_null().to_numpy(), np.nan, losses)
    if np.isnan(losses).all():
        return importance
    codes = codes.reshape(codes.shape[0], frame.height)  # (0, 0) without categorical features
    errors = ErrorSummary.from_codes(
        importance.bucket_codes(numeric, codes), losses, importance.n_buckets
    )
    return replace(importance, errors=errors)


def with_score_bands(profile: Profile, model: ModelConfig, frame: pl.DataFrame) -> Profile:
    """``profile`` with the reference's error rate per band of scores (``risk_cusum``'s
    ``reference_bins``), which profiles stored by earlier releases lack, from its labelled
    rows ``frame``."""
    found = profile.outcomes.error_reference
    if model.task != "binary_classification" or "reference_rate" not in found:
        return profile
    if "reference_bins" in found:
        return profile
    rows = labelled_rows(frame)
    threshold = profile.outcomes.decision_threshold
    found = error_reference(model.task, threshold, rows["prediction"], rows["label"])
    return replace(profile, outcomes=replace(profile.outcomes, error_reference=found))


def with_importance(profile: Profile, model: ModelConfig, frame: pl.DataFrame) -> Profile:
    """``profile`` with what a profile stored by an earlier release lacks — the importance
    part, or its reference errors per bucket (error attribution) — fitted on its reference
    rows ``frame`` with its own vocabularies (the rest is kept as stored, so windows already
    summarized on it stay comparable)."""
    if not model.importance.enabled:
        return profile
    stored = profile.importance
    if stored is not None and (stored.errors is not None or "label" not in frame.columns):
        return profile
    numeric = numeric_matrix(frame, profile.numeric)
    texts = pl.DataFrame([category_texts(frame[column]) for column in profile.categorical])
    codes = category_codes(
        texts, list(profile.categorical), profile.category_maps, profile.vocabulary_width
    )
    if stored is not None:
        importance = with_reference_errors(stored, model, frame, numeric, codes)
        return replace(profile, importance=importance)
    if profile.prediction_vocabulary is None:
        prediction, prediction_width = numeric_matrix(frame, ("prediction",))[0], None
    else:
        prediction_text = pl.DataFrame([category_texts(frame["prediction"])])
        prediction = category_codes(
            prediction_text, ["prediction"], (profile.prediction_map,), len(profile.prediction_map)
        )[0]
        prediction_width = len(profile.prediction_map)
    importance = ImportanceProfile.fit(
        numeric,
        codes,
        profile.vocabulary_width,
        prediction,
        prediction_width,
        model.importance.buckets,
        reference_attributions(frame, profile.features),
    )
    importance = with_reference_errors(importance, model, frame, numeric, codes)
    return replace(profile, importance=importance)


def _fit_multivariate(
    name: str, model: ModelConfig, numeric: np.ndarray, codes: np.ndarray
) -> MultivariateProfile | None:
    """The reconstruction model, when the model's ``multivariate_drift`` is enabled."""
    if not model.multivariate_drift.enabled:
        return None
    if numeric.shape[1] < 4:
        raise ProfileError(
            f"{model.reference}: multivariate_drift of model {name!r} needs at least 4 "
            f"reference rows (two chunks of two), got {numeric.shape[1]}"
        )
    try:
        return MultivariateProfile.fit(numeric, codes)
    except ValueError as exc:
        raise ProfileError(
            f"{model.reference}: multivariate_drift of model {name!r}: {exc}"
        ) from None


ATTRIBUTION_PREFIX = "attribution."
"""Reference columns ``attribution.<feature>`` hold the reference rows' attributions."""


def reference_attributions(frame: pl.DataFrame, features: tuple[str, ...]) -> np.ndarray | None:
    """The reference's attributions ``(F, n)`` from its ``attribution.<feature>`` columns (NaN
    where a row or a feature has none); ``None`` when it has no such column."""
    columns = [f"{ATTRIBUTION_PREFIX}{name}" for name in features]
    if not any(column in frame.columns for column in columns):
        return None
    present = numeric_matrix(frame, tuple(c for c in columns if c in frame.columns))
    out = np.full((len(features), frame.height), np.nan)
    out[[i for i, c in enumerate(columns) if c in frame.columns]] = present
    return out


def numeric_matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Columns as a ``(F, n)`` float array; nulls, non-numbers and non-finite values are NaN."""
    if not columns:
        return np.zeros((0, frame.height))
    converted = frame.select(
        pl.col(column).cast(pl.Float64, strict=False).fill_null(np.nan) for column in columns
    )
    matrix = converted.to_numpy().T.astype(np.float64, copy=True)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix
