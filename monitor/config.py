"""The configuration file: YAML, ``${VAR}`` substitution, durations, defaults, validation.

Every section has defaults, so a file with only ``models`` is valid. Errors
name the dotted key path and what was expected, e.g.
``models.credit-default.window.size: expected a duration like "1h", got "soon"``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from driftwarden.alerts.config import AlertsConfig
from driftwarden.alerts.durations import Duration
from driftwarden.monitor.detection import build_detectors, check_quality_settings
from driftwarden.monitor.errors import ConfigError

_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Section(BaseModel):
    """A configuration section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(Section):
    bootstrap_servers: str | list[str] = "127.0.0.1:9092"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    group_id: str = "driftwarden"
    start_from: Literal["earliest", "latest"] = "earliest"
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
    """Protect ``/metrics``: a bearer token, or basic auth; secrets come from the environment."""

    token_env: str | None = None
    username: str | None = None
    password_env: str | None = None

    _names = field_validator("token_env", "password_env")(_env_name)

    @model_validator(mode="after")
    def _one_scheme(self) -> MetricsAuthConfig:
        basic = self.username is not None or self.password_env is not None
        if basic and (self.username is None or self.password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        if basic == (self.token_env is not None):
            raise ValueError("set either token_env, or username and password_env")
        return self


class HttpConfig(Section):
    """The HTTP server: ``/metrics``, ``/livez``, ``/readyz`` and the ``/api/v1`` endpoints.

    Off loopback, ``token_env`` is required: it names the environment variable
    holding the bearer token that every ``/api/v1`` request must carry.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    token_env: str | None = Field(default=None, validate_default=True)
    metrics_auth: MetricsAuthConfig | None = None
    tls: TlsConfig | None = None

    @field_validator("token_env")
    @classmethod
    def _token_off_loopback(cls, value: str | None, info: ValidationInfo) -> str | None:
        _env_name(value)
        host = info.data.get("host")
        if value is None and host is not None and not cls.is_loopback(host):
            raise ValueError(
                f"required because http.host {host!r} is not a loopback address: name the "
                "environment variable that holds the API bearer token (e.g. DRIFTWARDEN_TOKEN), "
                "or bind http.host to 127.0.0.1"
            )
        return value

    @staticmethod
    def is_loopback(host: str) -> bool:
        """Whether ``host`` only accepts connections from this machine."""
        import ipaddress

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


class CountWindowConfig(Section):
    kind: Literal["count"]
    size: int = Field(ge=1)
    min_samples: int = Field(default=500, ge=1)


def _window_kind(value: Any) -> str:
    kind = value.get("kind", "time") if isinstance(value, dict) else getattr(value, "kind", "time")
    return str(kind)


WindowConfig = Annotated[
    Annotated[TimeWindowConfig, Tag("time")] | Annotated[CountWindowConfig, Tag("count")],
    Discriminator(_window_kind),
]


class ProfileConfig(Section):
    fine_bins: int = Field(default=500, ge=2, le=100_000)
    coarse_bins: int = Field(default=10, ge=2, le=1000)
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


class FairnessConfig(Section):
    min_group_size: int = Field(default=100, ge=1)
    thresholds: dict[str, float] | None = None


class ConceptDriftConfig(Section):
    detector: str = "adwin"
    params: dict[str, Any] | None = None


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
    concept_drift: ConceptDriftConfig = Field(default_factory=ConceptDriftConfig)
    detectors: dict[str, dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _task_fields(self) -> ModelConfig:
        if self.decision_threshold is not None:
            if self.task != "binary_classification":
                raise ValueError("decision_threshold applies only to binary_classification")
            if not 0.0 < self.decision_threshold < 1.0:
                raise ValueError("decision_threshold must lie strictly between 0 and 1")
        clash = set(self.groups) & set(self.features.names)
        if clash:
            raise ValueError(f"groups are not model inputs; also listed as features: {clash}")
        return self

    @property
    def threshold(self) -> float:
        """The decision threshold of a binary classifier (0.5 unless configured)."""
        return 0.5 if self.decision_threshold is None else self.decision_threshold


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
        return models


def substitute(value: Any, environ: dict[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value (``$${`` gives ``${``)."""
    if isinstance(value, dict):
        return {key: substitute(item, environ, _join(path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, environ, f"{path}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set", path)

    return _VARIABLE.sub(replace, value)


def parse(text: str, source: str = "<config>", environ: dict[str, str] | None = None) -> Config:
    """Validate configuration text; raise ``ConfigError`` naming the first bad key path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {_kind(raw)}")
    raw = substitute(raw, dict(os.environ) if environ is None else environ)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc) from None
    for name, model in config.models.items():
        build_detectors(model.detectors, f"models.{name}.detectors")
        check_quality_settings(model, f"models.{name}")
    return config


def load(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a configuration file; relative reference paths resolve beside it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    config = parse(text, str(path), environ)
    return resolve_paths(config, path.parent)


def resolve_paths(config: Config, base: Path) -> Config:
    """Make every model's reference path absolute, relative to ``base``."""
    models = {
        name: model.model_copy(update={"reference": (base / model.reference).resolve()})
        for name, model in config.models.items()
    }
    return config.model_copy(update={"models": models})


def _config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    path = _loc_path(error["loc"])
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return ConfigError("unknown key", path)
    if kind == "missing":
        return ConfigError("required key is missing", path)
    if kind == "union_tag_invalid":
        context = error["ctx"]
        key = "kind" if path.endswith(".window") else context["discriminator"].strip("'")
        return ConfigError(
            f"expected one of {context['expected_tags']}, got {context['tag']!r}", f"{path}.{key}"
        )
    message = message.removeprefix("Value error, ")
    if kind not in {"value_error", "assertion_error"} and "input" in error:
        message = f"{message[0].lower()}{message[1:]}, got {error['input']!r}"
    return ConfigError(message, path)


_CHANNEL_TYPES = {"slack", "pagerduty", "webhook", "retrain", "alertmanager", "log"}


def _loc_path(loc: tuple[int | str, ...]) -> str:
    """The dotted key path of a pydantic error location, without union tags."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        after_window = i > 0 and loc[i - 1] == "window" and part in {"time", "count"}
        channel_type = i > 1 and loc[i - 2] == "channels" and part in _CHANNEL_TYPES
        if after_window or channel_type or str(part).startswith("function-"):
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
