"""The sections of the configuration file, with their defaults and validation.

Every section has defaults, so a file with only ``models`` is valid.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from driftwarden.alerts.config import AlertsConfig
from driftwarden.core.durations import Duration
from driftwarden.core.records import NAME_LENGTH
from driftwarden.detectors.impact import (
    DEFAULT_IMPACT_THRESHOLD,
    DEFAULT_SCORE_CAP,
    DEFAULT_TOP_K,
)
from driftwarden.detectors.importance import (
    DEFAULT_ABSOLUTE_CHANGE,
    DEFAULT_BUCKETS,
    DEFAULT_MIN_ROWS,
    DEFAULT_RELATIVE_CHANGE,
)

SPLIT_NAME_LENGTH = NAME_LENGTH - 17
"""The longest name of a model whose versions are split (``name#`` and 16 hex digits)."""


class Section(BaseModel):
    """A configuration section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(Section):
    bootstrap_servers: str | list[str] = "127.0.0.1:9092"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    group_id: str = "driftwarden"
    start_from: Literal["earliest", "latest"] = "earliest"
    library: Literal["kafka-python", "confluent"] = "kafka-python"
    client: dict[str, Any] = Field(default_factory=dict)
    max_poll_records: int = Field(default=5000, ge=1)
    poll_timeout: Duration = timedelta(milliseconds=500)
    batch_records: int = Field(default=20_000, ge=1)
    batch_wait: Duration = timedelta(milliseconds=250)


class StorageConfig(Section):
    url: str = "sqlite:///driftwarden.db"
    checkpoint_interval: Duration = timedelta(seconds=1)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str | None) -> str | None:
    """A setting that names an environment variable (never holds the secret itself)."""
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"expected the name of an environment variable (like DRIFTWARDEN_TOKEN), "
            f"never the secret itself, got {value!r}"
        )
    return value


class TlsConfig(Section):
    """Serve HTTPS with this certificate chain and private key (PEM files)."""

    cert_file: Path
    key_file: Path


class MetricsAuthConfig(Section):
    """Protect ``/metrics``: a bearer token, or basic auth.

    Each secret comes from an environment variable (``*_env``), a file (``*_file``, read when
    the configuration loads) or the file itself.
    """

    token_env: str | None = None
    token: SecretStr | None = None
    username: str | None = None
    password_env: str | None = None
    password: SecretStr | None = None

    _names = field_validator("token_env", "password_env")(_env_name)

    @model_validator(mode="after")
    def _one_scheme(self) -> MetricsAuthConfig:
        _at_most_one(self.token_env, self.token, "token_env", "token")
        _at_most_one(self.password_env, self.password, "password_env", "password")
        bearer = self.token_env is not None or self.token is not None
        password = self.password_env is not None or self.password is not None
        basic = self.username is not None or password
        if basic and (self.username is None or not password):
            raise ValueError("basic auth needs both username and password_env (or password_file)")
        if basic == bearer:
            raise ValueError(
                "set either token_env (or token_file), or username and password_env "
                "(or password_file)"
            )
        return self


def _at_most_one(env: str | None, value: SecretStr | None, env_key: str, key: str) -> None:
    if env is not None and value is not None:
        raise ValueError(f"set either {env_key} or {key} (or {key}_file), not both")


class HttpConfig(Section):
    """The HTTP server: ``/metrics``, ``/livez``, ``/readyz`` and the ``/api/v1`` endpoints.

    Off loopback, a bearer token is required: ``token_env`` names the environment variable
    holding it, or ``token_file`` the file (``token`` after loading). Every ``/api/v1``
    request and every ``/ui/`` page must carry it (or the pages' session cookie).
    ``external_url`` is the address people reach the server at: notifications link to the
    evidence pages under it.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    stall_after: Duration = timedelta(seconds=60)
    token: SecretStr | None = None
    token_env: str | None = Field(default=None, validate_default=True)
    metrics_auth: MetricsAuthConfig | None = None
    tls: TlsConfig | None = None
    external_url: str | None = None

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(
                f"expected the http(s) address people reach the daemon at, like "
                f"https://driftwarden.example.com, got {value!r}"
            )
        return None if value is None else value.rstrip("/")

    @field_validator("token_env")
    @classmethod
    def _token_off_loopback(cls, value: str | None, info: ValidationInfo) -> str | None:
        _env_name(value)
        token = info.data.get("token")
        _at_most_one(value, token, "token_env", "token")
        host = info.data.get("host")
        if host is not None:
            refuse_open_bind(host, value is not None or token is not None)
        return value


def refuse_open_bind(host: str, token: bool) -> None:
    """Refuse to serve the API off loopback without a bearer token (``ValueError``)."""
    if not token and not is_loopback(host):
        raise ValueError(
            f"required because http.host {host!r} is not a loopback address: name the "
            "environment variable that holds the API bearer token (e.g. DRIFTWARDEN_TOKEN) "
            "or set token_file, or bind http.host to 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RetentionConfig(Section):
    """Housekeeping: how long stored rows are kept (``null`` keeps them forever)."""

    enabled: bool = True
    interval: Duration = timedelta(hours=1)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    pause: Duration = timedelta(milliseconds=10)
    results: Duration | None = timedelta(days=90)
    windows: Duration | None = timedelta(days=90)
    dead_letters: Duration | None = timedelta(days=30)
    notifications: Duration | None = timedelta(days=30)
    label_join: Duration | None = timedelta(days=1)

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("expected a positive duration")
        return value

    @field_validator("results", "windows", "dead_letters", "notifications")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("expected a positive duration (or null to keep rows forever)")
        return value

    @field_validator("label_join")
    @classmethod
    def _not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("expected a duration of 0s or more (or null to keep rows forever)")
        return value


class EventsConfig(Section):
    max_message_bytes: int = Field(default=1_048_576, ge=64)
    max_future_skew: Duration = timedelta(minutes=5)
    unknown_models: Literal["ignore", "dead_letter"] = "ignore"


class FeaturesConfig(Section):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> FeaturesConfig:
        names = self.numeric + self.categorical
        long = [name for name in names if len(name) > NAME_LENGTH]
        if long:
            raise ValueError(f"feature names are at most {NAME_LENGTH} characters: {long[0][:40]}…")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique, repeated: {', '.join(duplicates)}")
        if not names:
            raise ValueError("at least one numeric or categorical feature is required")
        return self

    @property
    def names(self) -> list[str]:
        return self.numeric + self.categorical


class TimeWindowConfig(Section):
    kind: Literal["time"] = "time"
    size: Duration = timedelta(hours=1)
    step: Duration | None = None
    allowed_lateness: Duration = timedelta(0)
    idle_timeout: Duration | None = None
    timezone: str = "UTC"
    min_samples: int = Field(default=500, ge=1)
    max_empty_windows: int = Field(default=100, ge=0)

    @model_validator(mode="after")
    def _panes_fit(self) -> TimeWindowConfig:
        if self.size <= timedelta(0):
            raise ValueError("size must be positive")
        step = self.pane
        if step <= timedelta(0) or step > self.size:
            raise ValueError("step must be positive and at most size")
        if self.size % step:
            raise ValueError("size must be a whole multiple of step (a window is a sum of panes)")
        if timedelta(days=1) % step and step % timedelta(days=1):
            raise ValueError("step must divide a day or be a whole number of days")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def pane(self) -> timedelta:
        """The step: panes of this length add up to windows."""
        return self.step or self.size


_SPREAD_COUNT_FIELDS = {"pane", "allowed_lateness", "idle_timeout"}
"""Count window settings only a spread model's count windows (whole panes) take."""


class CountWindowConfig(Section):
    """Every ``size`` predictions; a spread model's count windows are whole panes of
    ``pane`` closed once they hold ``size`` (docs/scaling.md), with the watermark settings
    of time windows."""

    kind: Literal["count"]
    size: int = Field(ge=1)
    min_samples: int = Field(default=500, ge=1)
    pane: Duration | None = None
    allowed_lateness: Duration = timedelta(0)
    idle_timeout: Duration | None = None

    @model_validator(mode="after")
    def _pane_fits(self) -> CountWindowConfig:
        if self.pane is None:
            return self
        if self.pane <= timedelta(0):
            raise ValueError("pane must be positive")
        if timedelta(days=1) % self.pane:
            raise ValueError("pane must divide a day")
        return self

    def panes(self) -> TimeWindowConfig:
        """The time windows of one pane each that a spread model's partitions fold into."""
        assert self.pane is not None
        return TimeWindowConfig(
            size=self.pane,
            allowed_lateness=self.allowed_lateness,
            idle_timeout=self.idle_timeout,
            min_samples=self.min_samples,
        )


def _window_kind(value: Any) -> str:
    kind = value.get("kind", "time") if isinstance(value, dict) else getattr(value, "kind", "time")
    return str(kind)


WindowConfig = Annotated[
    Annotated[TimeWindowConfig, Tag("time")] | Annotated[CountWindowConfig, Tag("count")],
    Discriminator(_window_kind),
]


class ProfileConfig(Section):
    fine_bins: int = Field(default=500, ge=2, le=100_000)
    max_categories: int = Field(default=100, ge=1, le=100_000)


class LabelsConfig(Section):
    enabled: bool = True
    ttl: Duration = timedelta(days=30)
    orphan_ttl: Duration = timedelta(days=1)
    policy: Literal["first", "last"] = "first"
    min_labeled: int = Field(default=500, ge=1)


class PerformanceConfig(Section):
    """Thresholds of realized and estimated performance.

    A metric without an explicit threshold is compared with the reference's
    own value (when the reference has labels) moved by ``tolerance`` in the
    metric's bad direction.
    """

    thresholds: dict[str, float] = Field(default_factory=dict)
    tolerance: float = Field(default=0.05, ge=0.0)
    estimated: bool = True


BUSINESS_NAME_LENGTH = 64
MAX_BUSINESS_METRICS = 20
_BUSINESS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class BusinessMetricConfig(Section):
    """Bounds of one business metric's mean per window: a window whose mean falls below
    ``min`` or above ``max`` is flagged (``drift``), like a performance threshold."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> BusinessMetricConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class BusinessConfig(Section):
    """Business values that label events carry (``business``: name -> number).

    ``metrics`` names the values monitored (a list, or a mapping to their bounds); values
    of other names are ignored, so what is stored and exported stays bounded. Each window
    reports their count, sum and mean, and each metric's Pearson correlation with the
    main performance metric and with drift impact over the last ``correlation_windows``
    closed windows that have both (``insufficient_data`` below ``min_windows``).
    """

    metrics: dict[str, BusinessMetricConfig] = Field(default_factory=dict)
    correlation_windows: int = Field(default=20, ge=3, le=1000)
    min_windows: int = Field(default=5, ge=3, le=1000)

    @field_validator("metrics", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {name: {} for name in value}
        return value

    @field_validator("metrics")
    @classmethod
    def _names(cls, metrics: dict[str, BusinessMetricConfig]) -> dict[str, BusinessMetricConfig]:
        if len(metrics) > MAX_BUSINESS_METRICS:
            raise ValueError(f"at most {MAX_BUSINESS_METRICS} business metrics, got {len(metrics)}")
        for name in metrics:
            if len(name) > BUSINESS_NAME_LENGTH or not _BUSINESS_NAME.fullmatch(name):
                raise ValueError(
                    f"business metric names are letters, digits, '_', '.' or '-' (starting "
                    f"with a letter or '_'), at most {BUSINESS_NAME_LENGTH} characters: "
                    f"{name[:40]!r}"
                )
        return metrics

    @model_validator(mode="after")
    def _windows(self) -> BusinessConfig:
        if self.min_windows > self.correlation_windows:
            raise ValueError(
                f"min_windows ({self.min_windows}) exceeds correlation_windows "
                f"({self.correlation_windows})"
            )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """The monitored names, sorted (the order of every business array)."""
        return tuple(sorted(self.metrics))


class FairnessConfig(Section):
    min_group_size: int = Field(default=100, ge=1)
    thresholds: dict[str, float] | None = None


class ConceptDriftConfig(Section):
    """The streaming detector on a model's labelled errors; ``detector`` null picks the
    default by what the reference holds (``default_concept_detector``)."""

    detector: str | None = None
    params: dict[str, Any] | None = None


class MultivariateDriftConfig(Section):
    """PCA reconstruction error of whole rows against the reference (``multivariate_drift``).

    ``sigmas`` widens the band of the reference's chunk-to-chunk spread of the
    mean error that a window's mean error must leave to be flagged.
    """

    enabled: bool = False
    sigmas: float = Field(default=4.0, gt=0.0, le=100.0)


class VersionsConfig(Section):
    """How a model's versions are monitored (the events' ``model_version``).

    With ``split`` on, each version has windows of its own and every record is computed
    per version against the model's reference. ``champion`` names the version others are
    compared with (null: the reference's most frequent ``model_version``
    if it has that column, else the first version seen). At most ``max_tracked`` versions are
    tracked at once; events of further versions are counted and ignored. A version with
    no event for ``forget_after`` (event time; wall clock live) has its open windows
    closed and is no longer tracked.
    """

    split: bool = False
    champion: str | None = Field(default=None, min_length=1, max_length=NAME_LENGTH)
    max_tracked: int = Field(default=5, ge=1, le=100)
    forget_after: Duration = timedelta(days=1)

    @field_validator("forget_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("forget_after must be positive")
        return value


class SegmentsConfig(Section):
    """Segments a model is monitored per as well as whole (``segment`` records).

    Each attribute (a ``groups`` attribute or a categorical feature) splits the events by
    its value: the reference's ``top_k`` most frequent values each get records of their
    own, every other value (and a missing one) goes to ``__other__``. A segment with fewer
    than ``min_reference_rows`` reference rows reports ``insufficient_data``.
    """

    attributes: list[str] = Field(default_factory=list, max_length=10)
    top_k: int = Field(default=10, ge=1, le=100)
    min_reference_rows: int = Field(default=100, ge=1)

    @field_validator("attributes")
    @classmethod
    def _distinct(cls, attributes: list[str]) -> list[str]:
        if len(set(attributes)) != len(attributes):
            raise ValueError(f"segments.attributes lists an attribute twice: {attributes}")
        return attributes


class ImportanceConfig(Section):
    """Feature importance over time (``feature_importance`` records).

    Each feature's importance is the mutual information (nats) between its
    coarse bucket (``buckets`` reference quantiles plus missing, or its
    category) and the prediction's bucket. A window flags a feature whose
    importance moved from the reference's by more than both
    ``absolute_threshold`` and ``relative_threshold`` times the reference's;
    below ``min_rows`` rows on either side the record is ``insufficient_data``.
    Mean absolute attributions (when events carry them) are compared the same
    way, with ``attribution_absolute_threshold`` in the model's output units.
    The ``drift_impact`` record weights each feature's drift by its importance
    (the reference's mutual information, or ``impact_weights``).
    """

    enabled: bool = True
    buckets: int = Field(default=DEFAULT_BUCKETS, ge=2, le=100)
    relative_threshold: float = Field(default=DEFAULT_RELATIVE_CHANGE, ge=0.0)
    absolute_threshold: float = Field(default=DEFAULT_ABSOLUTE_CHANGE, ge=0.0)
    min_rows: int = Field(default=DEFAULT_MIN_ROWS, ge=0)
    correction: Literal["none", "miller-madow"] = "miller-madow"
    attribution_absolute_threshold: float = Field(default=0.0, ge=0.0)
    impact_threshold: float = Field(default=DEFAULT_IMPACT_THRESHOLD, gt=0.0)
    impact_cap: float | None = Field(default=DEFAULT_SCORE_CAP, gt=0.0)
    impact_contributors: int = Field(default=DEFAULT_TOP_K, ge=0, le=100)
    impact_weights: dict[str, float] | None = None

    @field_validator("impact_weights")
    @classmethod
    def _weights(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is not None:
            bad = {name: w for name, w in weights.items() if not 0.0 <= w < float("inf")}
            if bad:
                raise ValueError(f"impact_weights must be finite numbers >= 0, got {bad}")
            if not any(weights.values()):
                raise ValueError("impact_weights needs at least one positive weight")
        return weights


Task = Literal["binary_classification", "multiclass_classification", "regression"]


class ModelConfig(Section):
    task: Task
    reference: Path
    features: FeaturesConfig
    groups: list[str] = Field(default_factory=list)
    decision_threshold: float | None = None
    window: WindowConfig = Field(default_factory=TimeWindowConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    business: BusinessConfig = Field(default_factory=BusinessConfig)
    concept_drift: ConceptDriftConfig = Field(default_factory=ConceptDriftConfig)
    multivariate_drift: MultivariateDriftConfig = Field(default_factory=MultivariateDriftConfig)
    versions: VersionsConfig = Field(default_factory=VersionsConfig)
    importance: ImportanceConfig = Field(default_factory=ImportanceConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    detectors: dict[str, dict[str, Any]] | None = None
    silence_after: Duration | None = None
    spread: bool = False
    """Whether the model's events may arrive on any partition (keyed by prediction id):
    each partition is folded where it is read, and windows close once every partition
    has passed them (docs/scaling.md)."""

    @model_validator(mode="after")
    def _spread_supported(self) -> ModelConfig:
        window = self.window
        if isinstance(window, CountWindowConfig):
            spread_only = sorted(window.model_fields_set & _SPREAD_COUNT_FIELDS)
            if spread_only and not self.spread:
                raise ValueError(
                    f"window.{', window.'.join(spread_only)}: count windows take them only with "
                    "spread (they count events in arrival order)"
                )
            if self.spread and window.pane is None:
                raise ValueError(
                    "spread count windows need window.pane: partitions read in parallel share "
                    "no arrival order, so a spread model's count windows are whole panes of "
                    "event time"
                )
        if not self.spread:
            return self
        if self.versions.split:
            raise ValueError("spread does not combine with versions.split yet")
        return self

    @model_validator(mode="after")
    def _task_fields(self) -> ModelConfig:
        if self.silence_after is not None and self.silence_after <= timedelta(0):
            raise ValueError("silence_after must be positive")
        if self.decision_threshold is not None:
            if self.task != "binary_classification":
                raise ValueError("decision_threshold applies only to binary_classification")
            if not 0.0 < self.decision_threshold < 1.0:
                raise ValueError("decision_threshold must lie strictly between 0 and 1")
        weights = self.importance.impact_weights
        if weights is not None and set(weights) - set(self.features.names):
            unknown = sorted(set(weights) - set(self.features.names))
            raise ValueError(f"importance.impact_weights names unknown features: {unknown}")
        if self.multivariate_drift.enabled and len(self.features.names) < 2:
            raise ValueError("multivariate_drift needs at least 2 features")
        if self.business.metrics and not self.labels.enabled:
            raise ValueError("business metrics arrive with labels: they need labels.enabled")
        clash = set(self.groups) & set(self.features.names)
        if clash:
            raise ValueError(f"groups are not model inputs; also listed as features: {clash}")
        splittable = set(self.groups) | set(self.features.categorical)
        unknown = [name for name in self.segments.attributes if name not in splittable]
        if unknown:
            raise ValueError(
                f"segments.attributes {unknown} are neither groups nor categorical features"
            )
        return self

    @property
    def threshold(self) -> float:
        """The decision threshold of a binary classifier (0.5 unless configured)."""
        return 0.5 if self.decision_threshold is None else self.decision_threshold

    @property
    def silence(self) -> timedelta | None:
        """How long without events makes the model silent: ``silence_after``, else twice a
        time window's size (count windows have no default: never silent)."""
        if self.silence_after is not None:
            return self.silence_after
        if isinstance(self.window, TimeWindowConfig):
            return 2 * self.window.size
        return None


class Config(Section):
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    models: dict[str, ModelConfig]
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("models")
    @classmethod
    def _named(cls, models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        if not models:
            raise ValueError("at least one model is required")
        long = [name for name in models if len(name) > NAME_LENGTH]
        if long:
            raise ValueError(f"model names are at most {NAME_LENGTH} characters: {long[0][:40]}…")
        split = [n for n, m in models.items() if m.versions.split and len(n) > SPLIT_NAME_LENGTH]
        if split:
            raise ValueError(
                f"with versions.split, model names are at most {SPLIT_NAME_LENGTH} characters "
                f"(each version's state is stored under the name and a suffix): {split[0][:40]}…"
            )
        return models
