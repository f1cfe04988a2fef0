"""Prometheus gauges of the versions of models whose versions are monitored separately.

A model with ``versions.split`` exports its model-level gauges (``driftwarden_drift_*``,
``driftwarden_performance``, ...) from its champion's windows only, and each tracked
version's performance, drifted features and comparison with the champion here, labelled
``model_version``. A model keeps the series of at most ``versions.max_tracked`` versions:
publishing another removes those of the version published least recently.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from driftwarden.core.records import PREDICTION_DISTRIBUTION, ResultRecord, WindowInfo
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.evaluation.paired_comparison import AGREEMENT

COMPARISON_STATS = ("difference", "ci_low", "ci_high", "p_value")


class VersionMetrics:
    """Per-version gauges, with at most ``max_tracked`` versions' series per model."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.performance = Gauge(
            "driftwarden_version_performance",
            "Performance of each tracked version (versions.split): realized (latest window "
            "with enough labels) or estimated (latest window).",
            ["model", "model_version", "metric", "kind"],
            registry=registry,
        )
        self.drifted_features = Gauge(
            "driftwarden_version_drifted_features",
            "Features flagged by data drift in the latest closed window of each tracked "
            "version (versions.split).",
            ["model", "model_version"],
            registry=registry,
        )
        self.comparison = Gauge(
            "driftwarden_version_comparison",
            "A challenger version against the champion in its latest compared window: the "
            "difference challenger - champion, its interval (ci_low, ci_high) and p_value.",
            ["model", "model_version", "metric", "stat"],
            registry=registry,
        )
        self.comparison_worse = Gauge(
            "driftwarden_version_comparison_worse",
            "1 when a challenger version is significantly worse than the champion in its "
            "latest compared window.",
            ["model", "model_version", "metric"],
            registry=registry,
        )
        self.agreement = Gauge(
            "driftwarden_version_agreement",
            "A challenger in shadow against the champion in its latest compared window: the "
            "share of paired requests predicted alike (metric agreement) or the relative "
            "disagreement of regressors (metric relative_disagreement).",
            ["model", "model_version", "metric"],
            registry=registry,
        )
        self.unpaired = Gauge(
            "driftwarden_version_unpaired_predictions",
            "A challenger in shadow: its predictions in its latest compared window that "
            "found no champion prediction of their id.",
            ["model", "model_version"],
            registry=registry,
        )
        self.distance = Gauge(
            "driftwarden_version_prediction_distance",
            "A challenger version's predictions against the champion's in its latest "
            "compared window: each prediction-drift detector's statistic, the champion's "
            "predictions as reference.",
            ["model", "model_version", "detector"],
            registry=registry,
        )
        self.distance_drift = Gauge(
            "driftwarden_version_prediction_distance_drift",
            "1 when a prediction-drift detector found the challenger's predictions drifted "
            "from the champion's in its latest compared window, else 0.",
            ["model", "model_version", "detector"],
            registry=registry,
        )
        self._champions: dict[str, str] = {}
        self._recent: dict[str, dict[str, int]] = {}
        self._latest: dict[tuple[str, str], int] = {}
        self._published = 0

    def is_champion(self, window: WindowInfo, config: ModelConfig) -> bool:
        """Whether a window's records feed the model-level gauges: always, unless the
        model's versions are split and the window is not the champion's (the configured
        one, else the one comparisons name, else the first version published)."""
        if not config.versions.split or window.model_version is None:
            return True
        champion = config.versions.champion or self._champions.setdefault(
            window.model, window.model_version
        )
        return window.model_version == champion

    def publish(self, window: WindowInfo, records: list[ResultRecord], config: ModelConfig) -> None:
        """Publish a version's window (closed, or its outcomes recomputed)."""
        version = window.model_version
        if not config.versions.split or version is None:
            return
        model = window.model
        self._track(model, version, config.versions.max_tracked)
        drifted = [r for r in records if r.kind == "data_drift"]
        if drifted:
            count = sum(1 for r in drifted if r.drift)
            self.drifted_features.labels(model, version).set(count)
        realized = [r for r in records if r.kind == "performance"]
        enough = max((r.n_labeled or 0 for r in realized), default=0)
        newer = window.index >= self._latest.get((model, version), -1)
        if enough >= config.labels.min_labeled and newer:
            self._latest[(model, version)] = window.index
            for record in realized:
                if record.value is not None and record.metric:
                    self.performance.labels(model, version, record.metric, "realized").set(
                        record.value
                    )
        for record in records:
            if record.value is None or not record.metric:
                continue
            if record.kind == "estimated_performance":
                self.performance.labels(model, version, record.metric, "estimated").set(
                    record.value
                )
            elif record.kind == "version_comparison":
                if record.champion_version is not None:
                    self._champions[record.model] = record.champion_version
                if record.detector == AGREEMENT:
                    self._agreement(record)
                elif record.metric == PREDICTION_DISTRIBUTION:
                    self._distance(record)
                else:
                    self._comparison(record)

    def _agreement(self, record: ResultRecord) -> None:
        assert record.model_version is not None and record.metric is not None
        assert record.value is not None and record.n_reference is not None
        self.agreement.labels(record.model, record.model_version, record.metric).set(record.value)
        unpaired = (record.n_window or 0) - record.n_reference
        self.unpaired.labels(record.model, record.model_version).set(max(unpaired, 0))

    def _distance(self, record: ResultRecord) -> None:
        assert record.model_version is not None and record.value is not None
        labels = (record.model, record.model_version, record.detector)
        self.distance.labels(*labels).set(record.value)
        self.distance_drift.labels(*labels).set(1.0 if record.drift else 0.0)

    def _comparison(self, record: ResultRecord) -> None:
        assert record.model_version is not None and record.metric is not None
        labels = (record.model, record.model_version, record.metric)
        values = (record.value, record.ci_low, record.ci_high, record.p_value)
        for stat, value in zip(COMPARISON_STATS, values, strict=True):
            self.comparison.labels(*labels, stat).set(float("nan") if value is None else value)
        self.comparison_worse.labels(*labels).set(1.0 if record.drift else 0.0)

    def _track(self, model: str, version: str, limit: int) -> None:
        """Note that ``version`` was published; beyond ``limit`` versions, remove the series
        of the one published least recently."""
        self._published += 1
        recent = self._recent.setdefault(model, {})
        recent[version] = self._published
        while len(recent) > limit:
            oldest = min(recent, key=recent.__getitem__)
            del recent[oldest]
            self._latest.pop((model, oldest), None)
            self.forget(model, oldest)

    def forget(self, model: str, version: str | None = None) -> None:
        """Remove the series of one version of ``model`` (or of all its versions)."""
        wanted = {"model": model} if version is None else {"model": model, "model_version": version}
        for gauge in (
            self.performance,
            self.drifted_features,
            self.comparison,
            self.comparison_worse,
            self.agreement,
            self.unpaired,
            self.distance,
            self.distance_drift,
        ):
            gauge.remove_by_labels(wanted)
