"""``driftwarden silence add|list|expire`` and ``driftwarden alerts deliveries``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from support.alerts import Clock, alerts_config, evaluate, recent
from support.receivers import SlackReceiver

from driftwarden.alerts import AlertEngine, Dispatcher, list_silences
from driftwarden.monitor import storage
from driftwarden.monitor.commands.alerting import add_commands
from driftwarden.monitor.errors import DriftwardenError, SchemaOutdatedError


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="driftwarden")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture
def config_file(tmp_path: Path, sqlite_engine: Engine) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""storage:
  url: "{sqlite_engine.url}"
models:
  credit-default:
    task: binary_classification
    reference: reference.parquet
    features: {{numeric: [income]}}
"""
    )
    return path


def test_silences_are_added_listed_and_expired(
    config_file: Path, sqlite_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(config_file)
    assert (
        _run(
            "silence",
            "add",
            "--config",
            config,
            "model=credit-default",
            "feature=~inc.*",
            "--duration",
            "2h",
            "--author",
            "ana",
            "--comment",
            "known shift",
        )
        == 0
    )
    silence_id = capsys.readouterr().out.strip()
    assert _run("silence", "list", "--config", config, "--json") == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["id"] == silence_id and listed["state"] == "active"
    assert listed["matchers"] == ["model=credit-default", "feature=~inc.*"]
    assert (listed["author"], listed["comment"]) == ("ana", "known shift")
    assert _run("silence", "list", "--config", config) == 0
    table = capsys.readouterr().out
    assert "known shift" in table and silence_id in table

    assert _run("silence", "expire", "--config", config, silence_id) == 0
    capsys.readouterr()
    now = datetime.now(UTC)
    with sqlite_engine.connect() as connection:
        assert list_silences(connection, now) == []
        (expired,) = list_silences(connection, now, include_expired=True)
    assert expired.id == silence_id
    with pytest.raises(DriftwardenError, match="already expired"):
        _run("silence", "expire", "--config", config, silence_id)
    with pytest.raises(DriftwardenError, match="no silence with id"):
        _run("silence", "expire", "--config", config, "nope")


def test_bad_silences_are_refused(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("silence", "add", "--config", str(config_file), "--comment", "c")
    with pytest.raises(SystemExit):
        _run(*base, "model=~(", "--duration", "1h")
    assert "invalid regular expression" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(*base, "model=a", "--duration", "soon")
    with pytest.raises(DriftwardenError, match="at least one matcher"):
        _run(*base, "feature=~.*", "--duration", "1h")
    with pytest.raises(DriftwardenError, match="end before it starts"):
        _run(*base, "model=a", "--until", "2020-01-01T00:00:00Z")


def test_deliveries_lists_the_outbox_and_its_failures(
    config_file: Path,
    sqlite_engine: Engine,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with SlackReceiver() as slack:
        config = alerts_config(
            group_wait="0s",
            channels={"slack": {"type": "slack", "url": slack.url, "min_interval": "0s"}},
            rules=[{"name": "drift", "severity": "info", "channels": ["slack"]}],
        )
        for model in ("a", "b"):
            evaluate(AlertEngine(config), sqlite_engine, recent(clock, "x", model=model), clock.now)
        slack.fail_next(1, status=400)
        dispatcher = Dispatcher(
            sqlite_engine, config, registry=CollectorRegistry(), clock=clock, random=lambda: 0.0
        )
        dispatcher.run_once()
        dispatcher.stop()
    assert _run("alerts", "deliveries", "--config", str(config_file), "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(row["state"] for row in rows) == ["delivered", "failed"]
    assert _run("alerts", "deliveries", "--config", str(config_file), "--failed") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["ID", "CREATED_AT", "CHANNEL", "MODEL"]
    assert len(table) == 2 and "HTTP 400" in table[1]


def test_an_empty_database_names_the_command_that_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    path.write_text(
        f'storage: {{url: "{url}"}}\nmodels:\n  m:\n    task: regression\n'
        "    reference: r.csv\n    features: {numeric: [x]}\n"
    )
    with pytest.raises(SchemaOutdatedError, match="driftwarden db upgrade --config"):
        _run("alerts", "deliveries", "--config", str(path))
    storage.upgrade(storage.create(url))
    assert _run("alerts", "deliveries", "--config", str(path)) == 0
