"""The ``driftwarden`` command line: --version, the db commands, --config everywhere (with
``$DRIFTWARDEN_CONFIG`` as its default), check-config's reference checks, and the exit
statuses the docs document (0, 1 with one line on stderr, 2, 130)."""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import polars as pl
import pytest
from alembic import command

from driftwarden.monitor import storage
from driftwarden.monitor.commands import cli, synthetic
from driftwarden.monitor.storage import schema

CHAIN = [migration.revision for migration in schema.history()]

# The arguments each command needs besides --config, to parse.
OTHER_ARGUMENTS = {
    "replay": ["--predictions", "p.jsonl", "--out", "out"],
    "report": ["--model", "m", "--out", "r.html"],
    "dead-letters show": ["1"],
    "dead-letters replay": ["--id", "1"],
    "silence add": ["model=m", "--duration", "1h", "--comment", "c"],
    "silence expire": ["abc"],
}


def _run(
    capsys: pytest.CaptureFixture[str], *argv: str, environ: dict[str, str] | None = None
) -> tuple[int, str, str]:
    try:
        status = cli.main(list(argv), environ={} if environ is None else environ)
    except SystemExit as stop:  # argparse: --version, --help and usage errors
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def _leaf_commands() -> dict[str, argparse.ArgumentParser]:
    found = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            found[prefix] = parser
            return
        for name, child in groups[0].choices.items():
            walk(child, f"{prefix} {name}".strip())

    walk(cli._parser(), "")
    return found


@pytest.fixture
def config(tmp_path: Path, reference_file: Path) -> Path:
    """A configuration of the synthetic model on a SQLite file, its reference beside it."""
    database = tmp_path / "driftwarden.db"
    path = tmp_path / "driftwarden.yaml"
    path.write_text(synthetic.config_yaml(str(reference_file), f"sqlite:///{database}"))
    return path


def _database(config: Path) -> str:
    return f"sqlite:///{config.parent / 'driftwarden.db'}"


# -- --version and exit statuses ------------------------------------------------------------


def test_version_prints_the_release_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--version")
    assert status == 0
    assert out.strip().startswith(f"driftwarden {version('driftwarden')} (Python ")


def test_a_usage_error_exits_2_with_argparse_usage(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "results", "--no-such-option")
    assert status == 2 and out == ""
    assert err.startswith("usage: driftwarden") and "unrecognized arguments" in err


def test_an_error_exits_1_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = _run(capsys, "results", "--config", str(tmp_path / "absent.yaml"))
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("driftwarden: error: ")
    assert "absent.yaml" in err


def test_an_unreadable_input_file_is_one_line_too(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    predictions = tmp_path / "predictions.jsonl"
    predictions.mkdir()  # a directory where a file is expected
    argv = ["replay", "--config", str(config), "--predictions", str(predictions)]
    status, _, err = _run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert status == 1
    assert (
        err.count("\n") == 1 and err.startswith("driftwarden: error: ") and "Traceback" not in err
    )
    assert str(predictions) in err


@pytest.mark.slow
def test_an_interrupted_command_exits_130(config: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) during a replay: the process exits 130, without a traceback."""
    stream = synthetic.Stream(n=400_000, start=0, span=48 * 3_600_000, drift_from=10**15)
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(synthetic.events(stream))))
    url = _database(config)
    engine = storage.create(url)
    storage.upgrade(engine)
    engine.dispose()
    wal = Path(f"{url.removeprefix('sqlite:///')}-wal")
    assert not wal.exists()  # SQLite removes it when the last connection closes
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "driftwarden.monitor.commands.cli", "replay"),
            *("--config", str(config), "--predictions", str(predictions), "--storage", url),
            *("--out", str(tmp_path / "out")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not wal.exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # the command has opened its database: main() is running
        time.sleep(0.3)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "replayed" not in out


# -- --config and DRIFTWARDEN_CONFIG ---------------------------------------------------------


def test_every_command_but_the_demo_takes_config() -> None:
    commands = _leaf_commands()
    assert {"check-config", "run", "replay", "db current", "silence add"} <= set(commands)
    for name, parser in commands.items():
        options = {s for a in parser._actions for s in a.option_strings}
        if name == "demo":
            assert "--config" not in options  # the demo writes its own configuration
            continue
        assert "--config" in options, name
        assert "DRIFTWARDEN_CONFIG" in parser.format_help(), name


@pytest.mark.parametrize("name", [n for n in _leaf_commands() if n != "demo"])
def test_config_defaults_to_the_environment_variable(name: str, tmp_path: Path) -> None:
    parser = cli._parser()
    argv = [*name.split(), *OTHER_ARGUMENTS.get(name, [])]
    args = parser.parse_args(argv)
    cli._resolve_config(args, {"DRIFTWARDEN_CONFIG": str(tmp_path / "env.yaml")})
    assert args.config == tmp_path / "env.yaml"
    explicit = parser.parse_args([*argv, "--config", "given.yaml"])
    cli._resolve_config(explicit, {"DRIFTWARDEN_CONFIG": str(tmp_path / "env.yaml")})
    assert explicit.config == Path("given.yaml")  # --config wins over the variable


@pytest.mark.parametrize("name", ["run", "results", "db upgrade", "silence list", "replay"])
def test_no_config_and_no_variable_is_a_usage_error(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, *name.split(), *OTHER_ARGUMENTS.get(name, []))
    assert status == 2
    assert "--config" in err and "DRIFTWARDEN_CONFIG" in err


def test_results_reads_the_configuration_named_by_the_variable(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    storage.upgrade(storage.create(_database(config)))
    status, out, err = _run(capsys, "results", environ={"DRIFTWARDEN_CONFIG": str(config)})
    assert (status, out, err) == (0, "", "")


def test_check_config_takes_the_file_as_argument_option_or_variable(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    for argv, environ in (
        (["check-config", str(config)], {}),
        (["check-config", "--config", str(config)], {}),
        (["check-config"], {"DRIFTWARDEN_CONFIG": str(config)}),
        (["check-config", str(config), "--config", str(config)], {}),
    ):
        status, out, err = _run(capsys, *argv, environ=environ)
        assert status == 0, (argv, err)
        assert out.startswith(f"{config}: valid (1 model(s): {synthetic.MODEL})"), out
        assert "20,000 rows" in out
    status, _, err = _run(capsys, "check-config", str(config), "--config", "other.yaml")
    assert status == 2 and "FILE or --config" in err


# -- check-config: reference files -------------------------------------------------------------


def _model_config(tmp_path: Path, reference: str, **columns: str) -> Path:
    features = columns.get("features", "{numeric: [age, income], categorical: [region]}")
    path = tmp_path / "conf.yaml"
    path.write_text(
        "models:\n"
        "  credit:\n"
        f"    task: {columns.get('task', 'binary_classification')}\n"
        f"    reference: {reference}\n"
        f"    features: {features}\n"
        f"    groups: [{columns.get('groups', 'sex')}]\n"
    )
    return path


def _reference(tmp_path: Path, name: str = "ref.parquet", **columns: list) -> Path:
    data = {
        "age": [30, 40, 50],
        "income": [1.5, 2.5, None],
        "region": ["n", "s", None],
        "sex": ["f", "m", "f"],
        "prediction": [0.1, 0.8, 0.4],
    }
    data.update(columns)
    frame = pl.DataFrame({k: v for k, v in data.items() if v is not None})
    path = tmp_path / name
    {".parquet": frame.write_parquet, ".csv": frame.write_csv, ".jsonl": frame.write_ndjson}[
        path.suffix
    ](path)
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], config: Path) -> str:
    status, out, err = _run(capsys, "check-config", str(config))
    assert status == 1 and out == "", (status, out, err)
    assert err.count("\n") == 1 and err.startswith("driftwarden: error: "), err
    return err


def test_check_config_reports_a_missing_reference_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = _one_line_error(capsys, _model_config(tmp_path, "data/ref.parquet"))
    assert "model 'credit'" in err and "reference file not found" in err
    assert str(tmp_path / "data" / "ref.parquet") in err
    status, out, _ = _run(capsys, "check-config", "--skip-references", str(tmp_path / "conf.yaml"))
    assert status == 0 and "not checked" in out


def test_check_config_reports_an_unreadable_reference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ref.parquet").mkdir()
    err = _one_line_error(capsys, _model_config(tmp_path, "ref.parquet"))
    assert "model 'credit'" in err and "cannot read reference" in err


@pytest.mark.parametrize(
    ("missing", "role"), [("income", "feature"), ("sex", "group"), ("prediction", "prediction")]
)
def test_check_config_names_the_model_and_a_missing_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, missing: str, role: str
) -> None:
    _reference(tmp_path, **{missing: None})
    err = _one_line_error(capsys, _model_config(tmp_path, "ref.parquet"))
    assert "model 'credit'" in err and f"lacks column(s) {missing}" in err, role


def test_check_config_refuses_text_in_a_numeric_feature(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _reference(tmp_path, "ref.csv", income=["1.5", "n/a", "2"])
    err = _one_line_error(capsys, _model_config(tmp_path, "ref.csv"))
    assert "model 'credit'" in err and "column 'income' (numeric feature)" in err
    assert "1 value(s) that are not numbers, e.g. 'n/a'" in err


def test_check_config_refuses_scores_that_are_not_numbers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _reference(tmp_path, "ref.jsonl", prediction=["yes", "no", "yes"])
    err = _one_line_error(capsys, _model_config(tmp_path, "ref.jsonl"))
    assert "column 'prediction' (prediction)" in err and "not numbers" in err


def test_check_config_refuses_a_column_of_lists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _reference(tmp_path, region=[["n"], ["s"], []])
    err = _one_line_error(capsys, _model_config(tmp_path, "ref.parquet"))
    assert "column 'region' (categorical feature) has type List" in err


def test_check_config_refuses_an_empty_reference_and_an_empty_numeric_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = {k: [] for k in ("age", "income", "region", "sex", "prediction")}
    pl.DataFrame(empty, schema={k: pl.Float64 for k in empty}).write_parquet(
        tmp_path / "ref.parquet"
    )
    assert "has no rows" in _one_line_error(capsys, _model_config(tmp_path, "ref.parquet"))
    _reference(tmp_path, income=[None, None, None])
    err = _one_line_error(capsys, _model_config(tmp_path, "ref.parquet"))
    assert "column 'income' (numeric feature) has no values" in err


def test_check_config_accepts_numeric_text_and_text_classes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _reference(tmp_path, "ref.csv", income=["1.5", "", "2e3"], age=["30", "40", "50"])
    status, out, err = _run(capsys, "check-config", str(_model_config(tmp_path, "ref.csv")))
    assert status == 0, err
    _reference(tmp_path, prediction=["a", "b", "a"])
    path = _model_config(tmp_path, "ref.parquet", task="multiclass_classification")
    status, out, err = _run(capsys, "check-config", str(path))
    assert status == 0 and "3 rows" in out, err


# -- db current and db history ---------------------------------------------------------------


def test_db_history_is_the_chain_newest_first_with_the_head_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = _run(capsys, "db", "history")
    lines = out.splitlines()
    assert status == 0 and len(lines) == len(CHAIN) >= 2
    assert lines[0].startswith(f"{CHAIN[-2]} -> {CHAIN[-1]} (head), ")
    assert lines[-1].startswith(f"<base> -> {CHAIN[0]}, initial schema")
    assert sum("(head)" in line for line in lines) == 1
    assert "(current)" not in out


def test_db_current_and_history_follow_the_database(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    status, out, _ = _run(capsys, "db", "current", "--config", str(config))
    assert status == 0
    assert out == (
        f"none: the database has no schema; this release needs {CHAIN[-1]}: "
        f"run `driftwarden db upgrade --config {config}`\n"
    )
    engine = storage.create(_database(config))
    command.upgrade(schema.alembic_config(engine), CHAIN[-2])
    _, out, _ = _run(capsys, "db", "current", "--config", str(config))
    assert out.startswith(f"{CHAIN[-2]}: this release needs {CHAIN[-1]}: run `driftwarden db")
    _, out, _ = _run(capsys, "db", "history", "--storage", _database(config))
    assert re.search(rf"^\S+ -> {CHAIN[-2]} \(current\), ", out, re.M), out
    status, out, _ = _run(capsys, "db", "upgrade", "--config", str(config))
    assert status == 0 and out == f"database schema at revision {CHAIN[-1]}\n"
    _, out, _ = _run(capsys, "db", "current", environ={"DRIFTWARDEN_CONFIG": str(config)})
    assert out == f"{CHAIN[-1]} (head)\n"
    _, out, _ = _run(capsys, "db", "history", "--config", str(config))
    assert out.splitlines()[0].startswith(f"{CHAIN[-2]} -> {CHAIN[-1]} (head) (current), ")
    engine.dispose()


def test_db_current_hides_the_password_of_a_storage_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql+psycopg://u:s3cret@127.0.0.1:1/none?connect_timeout=1"
    status, _, err = _run(capsys, "db", "current", "--storage", url)
    assert status == 1 and "s3cret" not in err and "cannot reach the database" in err


def test_the_docs_document_the_exit_statuses() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "getting-started.md").read_text()
    commands = page.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for status in ("0", "1", "2", "130"):
        assert f"`{status}`" in commands, status
    assert "DRIFTWARDEN_CONFIG" in commands
