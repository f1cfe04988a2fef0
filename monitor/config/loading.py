"""Reading the configuration file: YAML, ``${VAR}`` substitution, and errors that name the
dotted key path and what was expected, e.g.
``models.credit-default.window.size: expected a duration like "1h", got "soon"``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from driftwarden.monitor.config.detectors import build_detectors, check_quality_settings
from driftwarden.monitor.config.sections import Config
from driftwarden.monitor.errors import ConfigError

_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


SECRET_KEYS = (
    "storage.url",
    "kafka.client.sasl_plain_password",
    "kafka.client.ssl_password",
    "alerts.channels.*.url",
    "alerts.channels.*.routing_key",
    "alerts.channels.*.secrets",
    "http.token",
    "http.metrics_auth.token",
    "http.metrics_auth.password",
)
"""Keys that may hold secrets: each also takes ``<key>_file``, the path of a file holding the
value (as Prometheus and Alertmanager do), so secrets need not be in the file or the
environment. ``secrets_file`` holds one secret per line."""


def read_secret_files(value: Any, base: Path, path: str = "") -> Any:
    """Replace every ``<key>_file`` of a secret key (``SECRET_KEYS``) by ``<key>`` with the
    content of that file (without the trailing newline); relative paths start at ``base``."""
    if isinstance(value, list):
        return [read_secret_files(item, base, f"{path}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    result: dict[Any, Any] = {}
    for key, item in value.items():
        name = str(key).removesuffix("_file")
        if key == name or not _is_secret(_join(path, name)):
            result[key] = read_secret_files(item, base, _join(path, key))
            continue
        where = _join(path, key)
        if name in value:
            raise ConfigError(f"set either {name} or {key}, not both", where)
        result[name] = _secret_file(item, base, where, many=name == "secrets")
    return result


def _is_secret(path: str) -> bool:
    parts = path.split(".")
    return any(
        len(wanted) == len(parts) and all(w in ("*", p) for w, p in zip(wanted, parts, strict=True))
        for wanted in (pattern.split(".") for pattern in SECRET_KEYS)
    )


def _secret_file(value: Any, base: Path, where: str, *, many: bool) -> str | list[str]:
    """The secret held in the file ``value`` names (``many``: one per non-empty line)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected the path of a file, got {value!r}", where)
    try:
        text = (base / value).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {value}: {exc.strerror or exc}", where) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{value} is not UTF-8 text", where) from None
    if many:
        secrets = [line.strip() for line in text.splitlines() if line.strip()]
        if not secrets:
            raise ConfigError(f"{value} holds no secret", where)
        return secrets
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ConfigError(f"{value} is empty", where)
    return secret


def parse(
    text: str,
    source: str = "<config>",
    environ: dict[str, str] | None = None,
    base: Path | None = None,
) -> Config:
    """Validate configuration text; raise ``ConfigError`` naming the first bad key path.
    Secret files (``<key>_file``) are read relative to ``base`` (default: the current
    directory)."""
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
    raw = read_secret_files(raw, Path.cwd() if base is None else base)
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
    config = parse(text, str(path), environ, path.parent)
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
