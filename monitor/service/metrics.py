"""Prometheus metrics of the daemon, on a registry passed in; they read the batch path's report.

Gauges of detector values describe the last closed window of each model.
Series a dashboard needs exist from start-up (at zero) for every configured
model, so panels show data before the first window closes.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.process_collector import ProcessCollector

from driftwarden.core.records import REASONS, ResultRecord, WindowInfo
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.labels.join import LabelReport
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.service.segment_metrics import SegmentMetrics
from driftwarden.monitor.service.version_metrics import VersionMetrics

_DRIFT_KINDS = {"data_drift", "prediction_drift"}


class Metrics:
    """The daemon's metrics; ``registry`` is where they are exposed."""

    def __init__(
        self, registry: CollectorRegistry, models: Iterable[str], pages_url: str | None = None
    ) -> None:
        self.registry = registry
        ProcessCollector(registry=registry)
        self.events = Counter(
            "driftwarden_events",
            "Events folded into windows, by model and kind (prediction or label).",
            ["model", "kind"],
            registry=registry,
        )
        self.ignored = Counter(
            "driftwarden_events_ignored",
            "Events ignored (not errors), by reason.",
            ["reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "driftwarden_dead_letters",
            "Messages kept as dead letters, by reason.",
            ["reason"],
            registry=registry,
        )
        self.detector_value = Gauge(
            "driftwarden_detector_value",
            "Detector statistic in the last closed window (NaN when not computed).",
            ["model", "detector", "feature"],
            registry=registry,
        )
        self.detector_threshold = Gauge(
            "driftwarden_detector_threshold",
            "Detector threshold in the last closed window.",
            ["model", "detector", "feature"],
            registry=registry,
        )
        self.detector_drift = Gauge(
            "driftwarden_detector_drift",
            "1 when the detector decided drift in the last closed window, else 0.",
            ["model", "detector", "feature"],
            registry=registry,
        )
        self.data_quality = Gauge(
            "driftwarden_data_quality_ratio",
            "Data-quality rate of a feature in the last closed window.",
            ["model", "feature", "metric"],
            registry=registry,
        )
        self.reconstruction_error = Gauge(
            "driftwarden_reconstruction_error",
            "Mean PCA reconstruction error of the last closed window (multivariate drift; "
            "NaN when not computed).",
            ["model"],
            registry=registry,
        )
        self.reconstruction_threshold = Gauge(
            "driftwarden_reconstruction_error_threshold",
            "Edge of the reference band the mean reconstruction error was compared with.",
            ["model", "direction"],
            registry=registry,
        )
        self.multivariate_drift = Gauge(
            "driftwarden_multivariate_drift",
            "1 when the last closed window's mean reconstruction error left the reference band.",
            ["model"],
            registry=registry,
        )
        self.feature_importance = Gauge(
            "driftwarden_feature_importance",
            "Importance of a feature (detector mutual_information: nats of information about "
            "the prediction; attribution: mean absolute attribution) in the last closed window "
            "(kind=window, NaN when not computed) and in the reference (kind=reference).",
            ["model", "detector", "feature", "kind"],
            registry=registry,
        )
        self.feature_importance_drift = Gauge(
            "driftwarden_feature_importance_drift",
            "1 when a feature's importance left the reference band in the last closed window.",
            ["model", "detector", "feature"],
            registry=registry,
        )
        self.error_concentration = Gauge(
            "driftwarden_error_concentration",
            "Share of a feature's excess errors in its bucket with the most of them, in the "
            "latest window with enough labels (error attribution).",
            ["model", "feature"],
            registry=registry,
        )
        self.drift_impact = Gauge(
            "driftwarden_drift_impact",
            "Importance-weighted drift of the last closed window (NaN when not computed).",
            ["model"],
            registry=registry,
        )
        self.drift_impact_threshold = Gauge(
            "driftwarden_drift_impact_threshold",
            "The impact threshold the last closed window's drift impact was compared with.",
            ["model"],
            registry=registry,
        )
        self.drift_impact_contribution = Gauge(
            "driftwarden_drift_impact_contribution",
            "A top contributor's share of the last closed window's drift impact.",
            ["model", "feature"],
            registry=registry,
        )
        self.business_metric = Gauge(
            "driftwarden_business_metric",
            "Mean business value of the latest window with enough labels, per configured "
            "business metric.",
            ["model", "metric"],
            registry=registry,
        )
        self.business_correlation = Gauge(
            "driftwarden_business_correlation",
            "Pearson correlation of a business metric with the main performance metric or "
            "drift impact over the last windows (latest window where it was computed).",
            ["model", "metric", "against"],
            registry=registry,
        )
        self.window_end = Gauge(
            "driftwarden_window_end_timestamp_seconds",
            "End of the last closed window (event time).",
            ["model"],
            registry=registry,
        )
        self.windows_closed = Counter(
            "driftwarden_windows_closed",
            "Windows closed, by model.",
            ["model"],
            registry=registry,
        )
        self.windows_skipped = Counter(
            "driftwarden_windows_skipped",
            "Empty windows skipped in one step, not closed one by one (window.max_empty_windows).",
            ["model"],
            registry=registry,
        )
        self.close_duration = Histogram(
            "driftwarden_window_close_duration_seconds",
            "Time to run the detectors of a closing window.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.lag = Gauge(
            "driftwarden_consumer_lag_messages",
            "Messages behind the partition's high watermark.",
            ["topic", "partition"],
            registry=registry,
        )
        self.checkpoint_duration = Histogram(
            "driftwarden_checkpoint_duration_seconds",
            "Time to write one checkpoint (positions, state, results) to the database.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.unconfigured_features = Gauge(
            "driftwarden_unconfigured_features",
            "Distinct feature names seen in events that the model's configuration does not watch.",
            ["model"],
            registry=registry,
        )
        self.labels_joined = Counter(
            "driftwarden_labels_joined",
            "Labels joined to their prediction.",
            ["model"],
            registry=registry,
        )
        self.label_delay = Histogram(
            "driftwarden_label_delay_seconds",
            "Time from a prediction to its label (event times).",
            ["model"],
            buckets=(60, 300, 900, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400),
            registry=registry,
        )
        self.pending = Gauge(
            "driftwarden_pending_predictions",
            "Predictions waiting for their label.",
            ["model"],
            registry=registry,
        )
        self.expired = Counter(
            "driftwarden_predictions_expired",
            "Predictions whose label never came within the ttl.",
            ["model"],
            registry=registry,
        )
        self.orphans = Counter(
            "driftwarden_orphan_labels",
            "Labels that arrived before their prediction (they wait up to orphan_ttl).",
            ["model"],
            registry=registry,
        )
        self.duplicates = Counter(
            "driftwarden_duplicates",
            "Second predictions or labels for an id already seen, by kind.",
            ["model", "kind"],
            registry=registry,
        )
        self.performance = Gauge(
            "driftwarden_performance",
            "Model performance: realized (latest window with enough labels), estimated "
            "(latest window, from scores), and the reference's.",
            ["model", "metric", "kind"],
            registry=registry,
        )
        self.coverage = Gauge(
            "driftwarden_label_coverage_ratio",
            "Share of the latest labelled window's predictions that have a label.",
            ["model"],
            registry=registry,
        )
        self.fairness = Gauge(
            "driftwarden_fairness",
            "Fairness gaps and ratios of the latest window, per group attribute.",
            ["model", "attribute", "metric"],
            registry=registry,
        )
        self.concept_drift = Counter(
            "driftwarden_concept_drift_detections",
            "Concept-drift detections on the error stream.",
            ["model", "detector"],
            registry=registry,
        )
        self.versions = VersionMetrics(registry)
        self.segments = SegmentMetrics(registry)
        self.silent = Gauge(
            "driftwarden_model_silent",
            "1 while a model that had events gets none for its silence_after "
            "(default 2 × window size); models this instance owns.",
            ["model"],
            registry=registry,
        )
        self.last_event_age = Gauge(
            "driftwarden_last_event_age_seconds",
            "Seconds since the model last received an event; models this instance owns.",
            ["model"],
            registry=registry,
        )
        self.build = Info(
            "driftwarden_build",
            "The running release: driftwarden's version and Python's.",
            registry=registry,
        )
        self.build.info({"version": _version(), "python_version": platform.python_version()})
        self.pages = Info(
            "driftwarden_pages",
            "Where people reach the evidence pages (http.external_url; empty when unset), "
            "for dashboards' links to them.",
            registry=registry,
        )
        self.pages.info({"url": pages_url or ""})
        self.ready = Gauge(
            "driftwarden_ready",
            "1 once partitions are assigned and profiles loaded.",
            registry=registry,
        )
        self._unconfigured: dict[str, set[str]] = {}
        self._realized_index: dict[str, int] = {}
        self._coverage_index: dict[str, int] = {}
        self._business_index: dict[tuple[str, ...], int] = {}
        for model in models:
            self.events.labels(model, "prediction")
            self.events.labels(model, "label")
            self.windows_closed.labels(model)
            self.windows_skipped.labels(model)
            self.unconfigured_features.labels(model)
            self.labels_joined.labels(model)
            self.expired.labels(model)
            self.orphans.labels(model)
            self.pending.labels(model)
            for kind in ("prediction", "label"):
                self.duplicates.labels(model, kind)
        for reason in REASONS:
            self.dead_letters.labels(reason)
        for reason in ("unknown_model", "labels_disabled", "version_untracked"):
            self.ignored.labels(reason)

    def record(self, report: BatchReport, models: Mapping[str, ModelConfig]) -> None:
        """Publish what the batch path committed at a checkpoint."""
        for model, count in report.events.items():
            self.events.labels(model, "prediction").inc(count)
        for model, count in report.labels.items():
            self.events.labels(model, "label").inc(count)
        for reason, count in report.ignored.items():
            self.ignored.labels(reason).inc(count)
        for letter in report.dead_letters:
            self.dead_letters.labels(letter.reason).inc()
        for model, names in report.unconfigured_features.items():
            seen = self._unconfigured.setdefault(model, set())
            seen.update(names)
            self.unconfigured_features.labels(model).set(len(seen))
        for model, joined in report.joins.items():
            self.label_join(model, joined)
        for model, count in report.expired.items():
            self.expired.labels(model).inc(count)
            self.pending.labels(model).dec(count)
        for window, records in report.outcomes:
            whole = [record for record in records if record.segment is None]
            self.versions.publish(window, whole, models[window.model])
            if self.versions.is_champion(window, models[window.model]):
                self.outcomes(window, whole, models[window.model])
                self.segments.publish_performance(records)
        for model, run in report.skipped:
            self.windows_skipped.labels(model).inc(run.count)
        for record in report.silences:
            self.silent.labels(record.model).set(1.0 if record.drift else 0.0)
        for seconds in report.close_seconds:
            self.close_duration.observe(seconds)
        for window, records in report.closed:
            whole = [record for record in records if record.segment is None]
            self.versions.publish(window, whole, models[window.model])
            if self.versions.is_champion(window, models[window.model]):
                self.window_closed(window, whole)
                self.outcomes(window, whole, models[window.model])
                self.segments.publish(records)
        if report.checkpoint_seconds is not None:
            self.checkpoint_duration.observe(report.checkpoint_seconds)

    def window_closed(self, window: WindowInfo, records: list[ResultRecord]) -> None:
        """Publish the results of a window that just closed."""
        self.windows_closed.labels(window.model).inc()
        self.window_end.labels(window.model).set(window.end / 1000)
        for record in records:
            value = float("nan") if record.value is None else record.value
            if record.kind in _DRIFT_KINDS and record.feature is not None:
                labels = (record.model, record.detector, record.feature)
                self.detector_value.labels(*labels).set(value)
                self.detector_threshold.labels(*labels).set(
                    float("nan") if record.threshold is None else record.threshold
                )
                self.detector_drift.labels(*labels).set(1.0 if record.drift else 0.0)
            elif record.kind == "data_quality" and record.feature and record.metric:
                self.data_quality.labels(record.model, record.feature, record.metric).set(value)
            elif record.kind == "multivariate_drift":
                self.reconstruction_error.labels(record.model).set(value)
                self.reconstruction_threshold.remove_by_labels({"model": record.model})
                if record.threshold is not None:
                    self.reconstruction_threshold.labels(record.model, record.direction).set(
                        record.threshold
                    )
                self.multivariate_drift.labels(record.model).set(1.0 if record.drift else 0.0)
            elif record.kind == "feature_importance" and record.feature is not None:
                self._importance(record, value)
            elif record.kind == "drift_impact" and record.feature is None:
                self.drift_impact.labels(record.model).set(value)
                threshold = float("nan") if record.threshold is None else record.threshold
                self.drift_impact_threshold.labels(record.model).set(threshold)
                self.drift_impact_contribution.remove_by_labels({"model": record.model})
            elif record.kind == "drift_impact":
                self.drift_impact_contribution.labels(record.model, record.feature).set(value)

    def _importance(self, record: ResultRecord, value: float) -> None:
        labels = (record.model, record.detector, record.feature)
        reference = float("nan") if record.reference_value is None else record.reference_value
        self.feature_importance.labels(*labels, "window").set(value)
        self.feature_importance.labels(*labels, "reference").set(reference)
        self.feature_importance_drift.labels(*labels).set(1.0 if record.drift else 0.0)

    def label_join(self, model: str, report: LabelReport) -> None:
        """Publish what a batch did to a model's label join."""
        self.labels_joined.labels(model).inc(report.joined)
        for delay in report.delays:
            self.label_delay.labels(model).observe(max(delay, 0.0))
        self.orphans.labels(model).inc(report.orphaned)
        self.duplicates.labels(model, "prediction").inc(report.duplicate_predictions)
        self.duplicates.labels(model, "label").inc(report.duplicate_labels)
        self.pending.labels(model).inc(report.stored - report.joined)

    def outcomes(
        self, window: WindowInfo, records: list[ResultRecord], config: ModelConfig
    ) -> None:
        """Publish performance, coverage, fairness, concept-drift and business results of a
        window."""
        model = window.model
        realized = [r for r in records if r.kind == "performance"]
        labeled = max((r.n_labeled or 0 for r in realized), default=0)
        n_window = max((r.n_window or 0 for r in realized), default=0)
        if realized and window.index >= self._coverage_index.get(model, -1):
            self._coverage_index[model] = window.index
            self.coverage.labels(model).set(labeled / n_window if n_window else 0.0)
        enough = labeled >= config.labels.min_labeled
        if enough and window.index >= self._realized_index.get(model, -1):
            self._realized_index[model] = window.index
            for record in realized:
                if record.value is not None and record.metric:
                    self.performance.labels(model, record.metric, "realized").set(record.value)
            for record in records:
                if record.kind == "error_attribution" and record.feature is not None:
                    value = float("nan") if record.value is None else record.value
                    self.error_concentration.labels(model, record.feature).set(value)
        for record in records:
            if record.value is None or not record.metric:
                continue
            if record.kind == "estimated_performance":
                self.performance.labels(model, record.metric, "estimated").set(record.value)
            elif record.kind == "fairness" and record.group_attribute:
                self.fairness.labels(model, record.group_attribute, record.metric).set(record.value)
            elif record.kind == "concept_drift":
                self.concept_drift.labels(model, record.detector).inc()
            elif record.kind == "business_metric" and record.detector == "mean":
                self._latest(self.business_metric, window, (model, record.metric), record.value)
            elif record.kind == "business_correlation" and record.group_attribute:
                labels = (model, record.metric, record.group_attribute)
                self._latest(self.business_correlation, window, labels, record.value)

    def _latest(
        self, gauge: Gauge, window: WindowInfo, labels: tuple[str, ...], value: float
    ) -> None:
        """Set ``gauge`` unless a later window already set it (late labels update older
        windows too)."""
        key = (gauge._name, *labels)
        if window.index >= self._business_index.get(key, -1):
            self._business_index[key] = window.index
            gauge.labels(*labels).set(value)

    def owned(self, model: str, age: float | None, silent: bool) -> None:
        """Publish how fresh a model this instance owns is."""
        if age is not None:
            self.last_event_age.labels(model).set(age)
        self.silent.labels(model).set(1.0 if silent else 0.0)

    def forget_model(self, model: str) -> None:
        """Stop exporting the gauges of a model this instance no longer owns (its partition
        moved to another instance, which exports them now)."""
        for gauge in self._model_gauges():
            gauge.remove_by_labels({"model": model})
        self.versions.forget(model)
        self.segments.forget(model)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Stop exporting the lag of a partition this instance no longer reads."""
        self.lag.remove_by_labels({"topic": topic, "partition": str(partition)})

    def _model_gauges(self) -> list[Gauge]:
        return [
            value
            for value in vars(self).values()
            if isinstance(value, Gauge) and "model" in value._labelnames
        ]

    def reference_performance(self, model: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            self.performance.labels(model, metric, "reference").set(value)


def _version() -> str:
    try:
        return version("driftwarden")
    except PackageNotFoundError:
        return "unknown"
