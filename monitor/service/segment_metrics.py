"""Prometheus gauges of the segments of models with ``segments``.

The model-level gauges (``driftwarden_drift_*``, ``driftwarden_performance``, ...) stay the
whole model's; each segment's drifted features, events, and realized and estimated
performance in its latest closed window are exported here, labelled ``segment``
(``attribute=value``). The segments are fixed by the reference (at most ``top_k + 1`` per
attribute), so the series are bounded: per model, segments × (2 + realized and estimated
metrics).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from driftwarden.core.records import ResultRecord


class SegmentMetrics:
    """Per-segment gauges of the latest closed window of each segment."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.drifted_features = Gauge(
            "driftwarden_segment_drifted_features",
            "Features flagged by data drift in the latest closed window of each segment "
            "(segments); -1 when the segment had no verdict (insufficient data).",
            ["model", "segment"],
            registry=registry,
        )
        self.events = Gauge(
            "driftwarden_segment_window_events",
            "Predictions of each segment in its latest closed window (segments).",
            ["model", "segment"],
            registry=registry,
        )
        self.realized = Gauge(
            "driftwarden_segment_performance",
            "Realized performance of each segment in its latest closed window with labels "
            "(segments).",
            ["model", "segment", "metric"],
            registry=registry,
        )
        self.estimated = Gauge(
            "driftwarden_segment_estimated_performance",
            "Estimated performance (CBPE) of each segment in its latest closed window (segments).",
            ["model", "segment", "metric"],
            registry=registry,
        )

    def publish(self, records: list[ResultRecord]) -> None:
        """Publish the segment records of one closed window."""
        by_segment: dict[tuple[str, str], list[ResultRecord]] = {}
        for record in records:
            if record.segment is not None:
                by_segment.setdefault((record.model, record.segment), []).append(record)
        for (model, segment), mine in by_segment.items():
            drift = [r for r in mine if r.kind == "data_drift"]
            judged = [r for r in drift if r.status == "ok"]
            flagged = sum(1 for r in judged if r.drift)
            self.drifted_features.labels(model, segment).set(flagged if judged else -1)
            n_window = max((r.n_window or 0 for r in mine), default=0)
            self.events.labels(model, segment).set(n_window)
        self.publish_performance(records)

    def publish_performance(self, records: list[ResultRecord]) -> None:
        """Publish the segments' realized and estimated performance among ``records`` (a
        closed window's, or a closed window's whose labels changed)."""
        gauges = {"performance": self.realized, "estimated_performance": self.estimated}
        for record in records:
            gauge = gauges.get(record.kind)
            if record.segment is not None and gauge is not None and record.metric:
                value = float("nan") if record.value is None else record.value
                gauge.labels(record.model, record.segment, record.metric).set(value)

    def forget(self, model: str) -> None:
        """Remove every segment series of ``model``."""
        for gauge in (self.drifted_features, self.events, self.realized, self.estimated):
            gauge.remove_by_labels({"model": model})
