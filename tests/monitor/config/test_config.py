"""Configuration: defaults, substitution, durations, and errors that name the key path."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from driftwarden.core.durations import format_duration, parse_duration
from driftwarden.monitor import config
from driftwarden.monitor.errors import ConfigError

MINIMAL = """
models:
  credit-default:
    task: binary_classification
    reference: data/ref.parquet
    features: {numeric: [age, income], categorical: [region]}
"""


def test_a_file_with_only_models_gets_every_default() -> None:
    loaded = config.parse(MINIMAL, environ={})
    assert loaded.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert loaded.kafka.start_from == "earliest"
    assert loaded.storage.url == "sqlite:///driftwarden.db"
    assert (loaded.http.host, loaded.http.port) == ("127.0.0.1", 9108)
    model = loaded.models["credit-default"]
    assert model.window.kind == "time" and model.window.size == timedelta(hours=1)
    assert model.window.min_samples == 500
    assert model.profile.fine_bins == 500 and model.profile.max_categories == 100
    assert model.threshold == 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


def test_environment_substitution_with_defaults_and_escapes() -> None:
    text = MINIMAL + 'kafka:\n  group_id: "${GROUP:-dw}-${ENV}-$${literal}"\n'
    loaded = config.parse(text, environ={"ENV": "prod"})
    assert loaded.kafka.group_id == "dw-prod-${literal}"


def test_relative_reference_paths_resolve_beside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "driftwarden.yaml"
    path.parent.mkdir()
    path.write_text(MINIMAL)
    loaded = config.load(path, environ={})
    assert loaded.models["credit-default"].reference == tmp_path / "conf" / "data" / "ref.parquet"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL + "    window: {size: soon}\n",
            "models.credit-default.window.size: expected a duration like \"1h\", got 'soon'",
        ),
        (MINIMAL + "    colour: blue\n", "models.credit-default.colour: unknown key"),
        (MINIMAL + "kafka:\n  start_from: middle\n", "kafka.start_from: input should be"),
        (MINIMAL + "http:\n  port: many\n", "http.port: input should be a valid integer"),
        (
            MINIMAL + 'kafka:\n  group_id: "${MISSING_VAR}"\n',
            "kafka.group_id: environment variable MISSING_VAR is not set",
        ),
        (
            MINIMAL + "    window: {kind: count}\n",
            "models.credit-default.window.size: required key is missing",
        ),
        (
            MINIMAL + "    window: {size: 1h, step: 7m}\n",
            "models.credit-default.window: size must be a whole multiple of step",
        ),
        (
            MINIMAL + "    window: {kind: count, size: 500}\n    spread: true\n",
            "models.credit-default: spread count windows need window.pane",
        ),
        (
            MINIMAL + "    window: {kind: count, size: 500, pane: 10m, allowed_lateness: 1m}\n",
            "window.allowed_lateness, window.pane: count windows take them only with spread",
        ),
        (
            MINIMAL + "    window: {kind: count, size: 500, pane: 7m}\n    spread: true\n",
            "models.credit-default.window: pane must divide a day",
        ),
        (
            MINIMAL + "    detectors: {psi: {threshold: -1}}\n",
            "models.credit-default.detectors.psi:",
        ),
        (
            MINIMAL + "    detectors: {magic: {}}\n",
            "models.credit-default.detectors.magic: unknown detector",
        ),
        (
            MINIMAL.replace("binary_classification", "regression")
            + "    concept_drift: {detector: ddm}\n",
            "models.credit-default.concept_drift.detector: ddm reads error bits",
        ),
        (
            MINIMAL.replace("binary_classification", "regression")
            + "    concept_drift: {detector: cusum}\n",
            "models.credit-default.concept_drift.detector: cusum reads error bits",
        ),
        (
            MINIMAL + "    concept_drift: {detector: loss_cusum}\n",
            "models.credit-default.concept_drift.detector: loss_cusum reads losses",
        ),
        (
            MINIMAL + "    concept_drift: {detector: cusum, params: {odds_ratio: 0.5}}\n",
            "models.credit-default.concept_drift.params: odds_ratio must be",
        ),
        (
            MINIMAL.replace("binary_classification", "regression")
            + "    concept_drift: {detector: risk_cusum}\n",
            "models.credit-default.concept_drift.detector: risk_cusum reads error bits",
        ),
        (
            MINIMAL.replace("binary_classification", "multiclass_classification")
            + "    concept_drift: {detector: risk_cusum}\n",
            "models.credit-default.concept_drift.detector: risk_cusum reads a binary "
            "classifier's errors with their scores; this model's task is multiclass",
        ),
        (
            MINIMAL + "    concept_drift: {params: {delta: 0.001}}\n",
            "models.credit-default.concept_drift.params: params need a detector",
        ),
        (
            MINIMAL + "    concept_drift: {detector: risk_cusum, params: {flip: 0.7}}\n",
            "models.credit-default.concept_drift.params: flip must be a number in (0, 0.5)",
        ),
        (
            MINIMAL.replace("{numeric: [age, income], categorical: [region]}", "{numeric: [age]}")
            + "    multivariate_drift: {enabled: true}\n",
            "multivariate_drift needs at least 2 features",
        ),
        (
            MINIMAL + "    multivariate_drift: {sigmas: 0}\n",
            "models.credit-default.multivariate_drift.sigmas",
        ),
        (
            MINIMAL + "    business: {metrics: [revenue, 'net revenue']}\n",
            "models.credit-default.business.metrics",
        ),
        (
            MINIMAL + "    business: {metrics: {loss: {min: 5, max: 1}}}\n",
            "min (5.0) is above max (1.0)",
        ),
        (
            MINIMAL + "    business: {metrics: [loss], correlation_windows: 4, min_windows: 5}\n",
            "min_windows (5) exceeds correlation_windows (4)",
        ),
        (
            MINIMAL + "    labels: {enabled: false}\n    business: {metrics: [loss]}\n",
            "business metrics arrive with labels",
        ),
        ("models: {}\n", "models: at least one model is required"),
        ("kafka: {}\n", "models: required key is missing"),
        ("models: [unclosed\n", "invalid YAML at line"),
        ("- a list\n", "expected a mapping at the top level"),
    ],
)
def test_errors_name_the_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config.parse(text, "conf.yaml", environ={})
    assert message in str(error.value)


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden.monitor.commands.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("models: [", "invalid YAML"),
        (MINIMAL + "    extra: 1\n", "models.credit-default.extra: unknown key"),
        (MINIMAL + "    decision_threshold: high\n", "models.credit-default.decision_threshold"),
        (MINIMAL + 'storage:\n  url: "${DB_URL}"\n', "storage.url: environment variable DB_URL"),
        (MINIMAL + "    window: {allowed_lateness: later}\n", "models.credit-default.window."),
    ],
)
def test_check_config_exits_non_zero_with_one_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "conf.yaml"
    if content is not None:
        path.write_text(content)
    result = _check_config(path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text(MINIMAL)
    (tmp_path / "data").mkdir()
    reference = {"age": [30.0, 41.0], "income": [1.0, 2.0], "region": ["north", "south"]}
    reference |= {"prediction": [0.2, 0.7], "label": [0, 1]}
    pl.DataFrame(reference).write_parquet(tmp_path / "data" / "ref.parquet")
    result = _check_config(path)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_secrets_can_come_from_files_named_by_key_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pd").write_text("r" * 32 + "\n")
    (tmp_path / "secrets" / "hook").write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\n")
    (tmp_path / "secrets" / "db").write_text("postgresql+psycopg://dw:s3cret@db:5432/dw")
    path = tmp_path / "conf.yaml"
    path.write_text(
        MINIMAL
        + """
storage: {url_file: secrets/db}
alerts:
  channels:
    pd: {type: pagerduty, routing_key_file: secrets/pd}
    hook: {type: webhook, url: "https://ml.example/hook", secrets_file: secrets/hook}
"""
    )
    loaded = config.load(path, environ={})
    assert loaded.storage.url == "postgresql+psycopg://dw:s3cret@db:5432/dw"
    channels = loaded.alerts.channels
    assert channels["pd"].routing_key.get_secret_value() == "r" * 32
    assert [s.get_secret_value() for s in channels["hook"].secrets] == [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ]


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("{url_file: missing}", "storage.url_file: cannot read missing: No such file"),
        ("{url: 'sqlite://', url_file: db}", "storage.url_file: set either url or url_file"),
        ("{url_file: empty}", "storage.url_file: empty is empty"),
    ],
)
def test_a_secret_file_that_cannot_serve_is_an_error_naming_the_key(
    tmp_path: Path, storage: str, message: str
) -> None:
    (tmp_path / "empty").write_text("")
    (tmp_path / "db").write_text("sqlite://")
    path = tmp_path / "conf.yaml"
    path.write_text(MINIMAL + f"storage: {storage}\n")
    with pytest.raises(ConfigError) as raised:
        config.load(path, environ={})
    assert message in str(raised.value)
