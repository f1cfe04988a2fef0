"""Segments of a model (``segments``): every window reported per segment value as well.

An attribute (a ``groups`` attribute or a categorical feature) splits a model's events by
its value. The reference's ``top_k`` most frequent values of each attribute are segments
of their own; every other value, a missing one and any value the reference never had, is
the attribute's ``__other__`` segment. Each segment has a profile fitted on its reference
rows alone, and its events are summarized on it under the same keys (panes or count
windows) as the model's: when a model window closes, each segment's summaries of its keys
are merged and judged against the segment's reference with the model's detectors. A
segment with fewer than ``min_reference_rows`` reference rows reports
``insufficient_data``. Segment summaries live only while their key is open in the model's
windows, so memory grows by one summary per segment and open key.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from driftwarden.core.records import NAME_LENGTH, ResultRecord, WindowInfo
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.config.detectors import DetectorSet
from driftwarden.monitor.evaluation.outcome_results import estimated_records
from driftwarden.monitor.evaluation.window_results import evaluate
from driftwarden.monitor.windows.profile import Profile, ProfileError, fit
from driftwarden.monitor.windows.summary import WindowSummary, summarize
from driftwarden.monitor.windows.vocabulary import category_texts
from driftwarden.monitor.windows.windowing import Windows

log = logging.getLogger("driftwarden.pipeline")

OTHER = "__other__"
"""The segment of an attribute's values outside the reference's ``top_k``."""

SEGMENT_KINDS = ("data_drift", "prediction_drift", "data_quality", "estimated_performance")
"""The kinds of record a segment reports (realized performance and fairness need labels
per segment, which the label join does not keep)."""


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


def fit_segments(
    name: str, model: ModelConfig, frame: pl.DataFrame, content: bytes
) -> SegmentProfiles | None:
    """The segments of model ``name`` from its reference rows (``None`` without any); of
    values equally frequent, the first in text order is kept."""
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
        counts = (
            text.drop_nulls().value_counts().sort(["count", attribute], descending=[True, False])
        )
        top = tuple(counts[attribute].head(settings.top_k).to_list())
        too_long = [value for value in top if len(f"{attribute}={value}") > NAME_LENGTH]
        if too_long:
            raise ProfileError(
                f"{model.reference}: segment {attribute}={too_long[0][:40]}… of model {name!r} "
                f"is longer than {NAME_LENGTH} characters"
            )
        values[attribute] = top
        buckets = _buckets(text, top)
        for value in (*top, OTHER):
            rows = frame.filter(buckets == value)
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


def _buckets(text: pl.Series, top: tuple[str, ...]) -> pl.Series:
    """Each row's segment value: itself if among ``top``, else ``__other__``."""
    tracked = text.is_in(pl.Series(top, dtype=pl.String).implode()).fill_null(False)
    return pl.select(
        pl.when(pl.lit(tracked)).then(pl.lit(text)).otherwise(pl.lit(OTHER)).alias("bucket")
    ).to_series()


class SegmentWindows:
    """The open segment summaries of one model (or one version's lane), by key."""

    def __init__(
        self, profiles: SegmentProfiles, whole: Profile, state: dict[str, Any] | None = None
    ) -> None:
        self.profiles = profiles
        self.whole = whole
        self.open: dict[tuple[str, int], WindowSummary] = {}
        current = {s.name: (s.profile or whole).reference_id for s in profiles.segments}
        dropped = 0
        for name, key, data in (state or {}).get("open", []):
            summary = WindowSummary.from_bytes(base64.b64decode(data))
            if current.get(name) == summary.reference_id:
                self.open[(name, key)] = summary
            else:
                dropped += 1
        if dropped:
            log.warning(
                "model %s: %d open segment summaries were of another reference or segment "
                "setting; those segments' open windows start afresh",
                whole.model,
                dropped,
            )

    def fold(self, frame: pl.DataFrame) -> None:
        """Summarize the rows (keyed in ``_key``) of every segment on its profile."""
        segments = {s.name: s for s in self.profiles.segments}
        for attribute, column in self.profiles.columns.items():
            buckets = _buckets(frame[column], self.profiles.values[attribute])
            keyed = frame.with_columns(buckets.alias("_segment"))
            parts = keyed.partition_by("_key", "_segment", as_dict=True)
            for (key, value), part in parts.items():
                segment = segments[f"{attribute}={value}"]
                summary = summarize(segment.profile or self.whole, part)
                slot = (segment.name, int(key))
                held = self.open.get(slot)
                self.open[slot] = summary if held is None else held.merge(summary)

    def close(
        self,
        window: WindowInfo,
        keys: tuple[int, int],
        config: ModelConfig,
        detectors: DetectorSet,
    ) -> list[ResultRecord]:
        """Every segment's records of ``window`` (holding ``keys``, ``[low, high)``)."""
        low, high = keys
        records: list[ResultRecord] = []
        for segment in self.profiles.segments:
            profile = segment.profile or self.whole
            summary = WindowSummary.empty(profile)
            for (name, key), held in self.open.items():
                if name == segment.name and low <= key < high:
                    summary = summary.merge(held)
            records += self._records(segment, profile, summary, window, config, detectors)
        return records

    def forget(self, windows: Windows) -> None:
        """Drop the summaries of keys no open window of the model holds any more."""
        self.open = {
            slot: held
            for slot, held in self.open.items()
            if windows.open_summary(slot[1]) is not None
        }

    def _records(
        self,
        segment: Segment,
        profile: Profile,
        summary: WindowSummary,
        window: WindowInfo,
        config: ModelConfig,
        detectors: DetectorSet,
    ) -> list[ResultRecord]:
        info = replace(window, segment=segment.name)
        records = evaluate(profile, summary, info, config, detectors)
        records += estimated_records(profile, config, info, summary)
        if segment.profile is not None:
            return records
        return [_too_few(record, segment.n_reference) for record in records]

    def state(self) -> dict[str, Any]:
        """The open segment summaries, as JSON state of the model's windows."""
        return {
            "open": [
                [name, key, base64.b64encode(held.to_bytes()).decode()]
                for (name, key), held in self.open.items()
            ]
        }


def _too_few(record: ResultRecord, n_reference: int) -> ResultRecord:
    """``record`` of a segment with too few reference rows: no verdict."""
    return replace(
        record,
        value=None,
        p_value=None,
        drift=False,
        status="insufficient_data",
        n_reference=n_reference,
        error_bound=None,
    )
