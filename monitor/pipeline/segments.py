"""Segment windows: every window of a model reported per segment value as well.

The events of each segment (``monitor.windows.segmentation``) are summarized on the
segment's profile under the same keys (panes or count windows) as the model's: when a
model window closes, each segment's summaries of its keys are merged and judged against
the segment's reference with the model's detectors, and its labels (kept per segment in
the model's label panes) against the segment's reference performance. A segment with
fewer than ``min_reference_rows`` reference rows reports ``insufficient_data``. Segment
summaries live only while their key is open in the model's windows, so memory grows by
one summary per segment and open key.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import polars as pl

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.config.detectors import DetectorSet
from driftwarden.monitor.evaluation.business_results import business_records
from driftwarden.monitor.evaluation.outcome_results import estimated_records, realized_records
from driftwarden.monitor.evaluation.window_results import evaluate
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.segmentation import Segment, SegmentProfiles, buckets
from driftwarden.monitor.windows.summary import WindowSummary, summarize
from driftwarden.monitor.windows.windowing import Windows

log = logging.getLogger("driftwarden.pipeline")

SEGMENT_KINDS = (
    "data_drift",
    "prediction_drift",
    "data_quality",
    "performance",
    "estimated_performance",
    "business_metric",
)
"""The kinds of record a segment reports (fairness, feature importance and multivariate drift
are the whole model's only)."""


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
            bucket = buckets(frame[column], self.profiles.values[attribute])
            keyed = frame.with_columns(bucket.alias("_segment"))
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
        labels: LabelSummary,
    ) -> tuple[list[ResultRecord], dict[str, int]]:
        """Every segment's records of ``window`` (holding ``keys``, ``[low, high)``), with
        the window's ``labels`` (which hold each segment's labels), and each segment's
        number of events."""
        low, high = keys
        records: list[ResultRecord] = []
        counts: dict[str, int] = {}
        for segment, segment_labels in zip(
            self.profiles.segments, self._labels_of(labels), strict=True
        ):
            profile = segment.profile or self.whole
            summary = WindowSummary.empty(profile)
            for (name, key), held in self.open.items():
                if name == segment.name and low <= key < high:
                    summary = summary.merge(held)
            counts[segment.name] = summary.n_events
            info = replace(window, segment=segment.name)
            found = evaluate(profile, summary, info, config, detectors)
            found += estimated_records(profile, config, info, summary)
            found += realized_records(profile, config, info, segment_labels, summary.n_events)
            found += business_records(config, info, segment_labels.business, summary.n_events)
            records += self._judged(segment, found)
        return records, counts

    def label_records(
        self,
        window: WindowInfo,
        config: ModelConfig,
        labels: LabelSummary,
        counts: dict[str, int],
    ) -> list[ResultRecord]:
        """Every segment's realized performance and business values of a closed ``window``
        whose labels changed
        (``counts``: its events per segment, as its close counted them)."""
        records: list[ResultRecord] = []
        for segment, segment_labels in zip(
            self.profiles.segments, self._labels_of(labels), strict=True
        ):
            info = replace(window, segment=segment.name)
            n_window = counts.get(segment.name, 0)
            profile = segment.profile or self.whole
            found = realized_records(profile, config, info, segment_labels, n_window)
            found += business_records(config, info, segment_labels.business, n_window)
            records += self._judged(segment, found)
        return records

    def _labels_of(self, labels: LabelSummary) -> tuple[LabelSummary, ...]:
        """Each segment's share of a window's labels (none when its panes hold none)."""
        if len(labels.segments) == len(self.profiles.segments):
            return labels.segments
        none = LabelSummary.empty(self.whole.outcomes, self.whole.task)
        return (none,) * len(self.profiles.segments)

    def forget(self, windows: Windows) -> None:
        """Drop the summaries of keys no open window of the model holds any more."""
        self.open = {
            slot: held
            for slot, held in self.open.items()
            if windows.open_summary(slot[1]) is not None
        }

    @staticmethod
    def _judged(segment: Segment, records: list[ResultRecord]) -> list[ResultRecord]:
        """The records a segment reports, without a verdict when its reference is too
        small."""
        records = [record for record in records if record.kind in SEGMENT_KINDS]
        if segment.profile is not None:
            return records
        return [_too_few(record, segment.n_reference) for record in records]

    def state(self) -> dict[str, Any]:
        """The open segment summaries, as JSON state of the model's windows."""
        return _encoded(self.open.items())

    def pane_state(self, key: int) -> bytes:
        """Every segment's summary of ``key`` (a spread model's partition hands it in with
        the pane); ``absorb`` merges it."""
        held = [(slot, summary) for slot, summary in self.open.items() if slot[1] == key]
        return json.dumps(_encoded(held)).encode()

    def absorb(self, data: bytes) -> None:
        """Merge in the segment summaries of a pane another partition summarized."""
        for name, key, encoded in json.loads(data)["open"]:
            summary = WindowSummary.from_bytes(base64.b64decode(encoded))
            held = self.open.get((name, key))
            self.open[(name, key)] = summary if held is None else held.merge(summary)


def _encoded(held: Iterable[tuple[tuple[str, int], WindowSummary]]) -> dict[str, Any]:
    """Segment summaries as JSON data."""
    return {
        "open": [
            [name, key, base64.b64encode(summary.to_bytes()).decode()]
            for (name, key), summary in held
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
