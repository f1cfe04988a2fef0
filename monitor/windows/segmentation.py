"""Segments of a model: which events and reference rows belong to which segment.

An attribute (a ``groups`` attribute or a categorical feature) splits a model's events by
its value. The reference's ``top_k`` most frequent values of each attribute are segments
of their own; every other value, a missing one and any value the reference never had, is
the attribute's ``__other__`` segment. Each segment has a profile fitted on its reference
rows alone (``None`` below ``min_reference_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from driftwarden.core.records import NAME_LENGTH
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.windows.profile import Profile, ProfileError, fit
from driftwarden.monitor.windows.vocabulary import category_texts

OTHER = "__other__"
"""The segment of an attribute's values outside the reference's ``top_k``."""


@dataclass(frozen=True)
class Segment:
    """One value (or ``__other__``) of one attribute, and the profile of its reference rows
    (``None`` when it has fewer than ``min_reference_rows``)."""

    attribute: str
    value: str
    n_reference: int
    profile: Profile | None

    @property
    def name(self) -> str:
        """The record's ``segment``: ``attribute=value``."""
        return f"{self.attribute}={self.value}"


@dataclass(frozen=True)
class SegmentProfiles:
    """The segments of one model: per attribute, its event column and tracked values."""

    columns: dict[str, str]
    values: dict[str, tuple[str, ...]]
    segments: tuple[Segment, ...]

    def indices(self, texts: dict[str, pl.Series]) -> np.ndarray:
        """Each row's segment per attribute, as positions in ``segments`` (``(A, n)``), from
        the attributes' values as text (by attribute name)."""
        rows = []
        offset = 0
        for attribute, top in self.values.items():
            position = {value: offset + i for i, value in enumerate((*top, OTHER))}
            bucket = buckets(texts[attribute], top)
            rows.append(bucket.replace_strict(position, return_dtype=pl.Int64).to_numpy())
            offset += len(position)
        return np.vstack(rows)


def fit_segments(
    name: str, model: ModelConfig, frame: pl.DataFrame, content: bytes
) -> SegmentProfiles | None:
    """The segments of model ``name`` from its reference rows (``None`` without any); of
    values equally frequent, the first in text order is kept. A value spelled ``__other__``
    is never a segment of its own: it belongs to that segment already."""
    settings = model.segments
    if not settings.attributes:
        return None
    columns: dict[str, str] = {}
    values: dict[str, tuple[str, ...]] = {}
    segments: list[Segment] = []
    reduced = _segment_model(model)
    for attribute in settings.attributes:
        prefix = "grp" if attribute in model.groups else "cat"
        columns[attribute] = f"{prefix}:{attribute}"
        text = category_texts(frame[attribute])
        present = text.drop_nulls()
        named = present.filter(present != OTHER)
        counts = named.value_counts().sort(["count", attribute], descending=[True, False])
        top = tuple(counts[attribute].head(settings.top_k).to_list())
        too_long = [value for value in top if len(f"{attribute}={value}") > NAME_LENGTH]
        if too_long:
            raise ProfileError(
                f"{model.reference}: segment {attribute}={too_long[0][:40]}… of model {name!r} "
                f"is longer than {NAME_LENGTH} characters"
            )
        values[attribute] = top
        bucket = buckets(text, top)
        for value in (*top, OTHER):
            rows = frame.filter(bucket == value)
            profile = None
            if rows.height >= settings.min_reference_rows:
                profile = fit(name, reduced, rows, content)
            segments.append(Segment(attribute, value, rows.height, profile))
    return SegmentProfiles(columns, values, tuple(segments))


def _segment_model(model: ModelConfig) -> ModelConfig:
    """``model`` as its segments are profiled: without what segments do not report
    (fairness groups, feature importance, multivariate drift), which would only slow their
    summaries down."""
    return model.model_copy(
        update={
            "groups": [],
            "importance": model.importance.model_copy(update={"enabled": False}),
            "multivariate_drift": model.multivariate_drift.model_copy(update={"enabled": False}),
        }
    )


def buckets(text: pl.Series, top: tuple[str, ...]) -> pl.Series:
    """Each row's segment value: itself if among ``top``, else ``__other__``."""
    tracked = text.is_in(pl.Series(top, dtype=pl.String).implode()).fill_null(False)
    return pl.select(
        pl.when(pl.lit(tracked)).then(pl.lit(text)).otherwise(pl.lit(OTHER)).alias("bucket")
    ).to_series()
