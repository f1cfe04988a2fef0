"""The README and the documentation site say what the code does: the README's opening and
example, the docs' configuration example and reference, detector defaults, metrics, result
fields and commands are checked against the code."""

from __future__ import annotations

import argparse
import inspect
import math
import re
import textwrap
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel
from sqlalchemy import create_engine

from driftwarden.alerts import Dispatcher
from driftwarden.alerts.config import AlertsConfig
from driftwarden.core.durations import parse_duration
from driftwarden.core.records import RESULT_FIELDS
from driftwarden.detectors import (
    CONCEPT_DRIFT_DETECTORS,
    DATA_DRIFT_DETECTORS,
    DATA_QUALITY_DETECTORS,
    DEFAULT_CONCEPT_DRIFT,
    DEFAULT_DATA_DRIFT,
)
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import cli
from driftwarden.monitor.service.metrics import Metrics
from driftwarden.monitor.storage.retention import Retention

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
EXAMPLE_MARKER = "# driftwarden.yaml: a complete example."
EXAMPLE_ENVIRON = {
    "KAFKA_PASSWORD": "not-a-real-password",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
}
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def docs() -> dict[str, str]:
    """Every page of the documentation site by name (``configuration``, ``runbooks/README``)."""
    return {
        page.relative_to(DOCS).with_suffix("").as_posix(): page.read_text(encoding="utf-8")
        for page in DOCS.rglob("*.md")
    }


def _section(text: str, title: str) -> str:
    """The body of the level-2 section ``## title`` (up to the next level-2 heading)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section '## {title}'"
    return match.group(1)


def _tables(text: str) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Markdown tables in ``text``: (header cells, body rows of cells)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            yield header, rows
        else:
            i += 1


def _cells(line: str) -> list[str]:
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(line)[1:-1]]


def _code(cell: str) -> str | None:
    """The first inline-code span of a table cell."""
    match = re.search(r"`([^`]*)`", cell)
    return match.group(1) if match else None


# -- (a) the opening ------------------------------------------------------------------------


def test_opens_with_the_title_and_the_two_make_commands(readme: str) -> None:
    assert readme.startswith("# driftwarden\n\n```\nmake demo\nmake test\n```\n")
    first_paragraph = readme.split("```\n", 2)[2].strip().split("\n\n")[0]
    assert "`make demo`" in first_paragraph and "`make test`" in first_paragraph


# -- (b) the complete example configuration ---------------------------------------------------


def _example(page: str) -> str:
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if EXAMPLE_MARKER in b]
    assert len(blocks) == 1, "exactly one YAML block holds the complete example"
    return blocks[0]


def test_the_complete_example_is_a_valid_configuration(
    docs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "driftwarden.yaml"
    path.write_text(_example(docs["configuration"]), encoding="utf-8")
    loaded = configuration.load(path, environ=EXAMPLE_ENVIRON)
    assert set(loaded.models) == {"credit-default", "delivery-eta"}
    assert loaded.models["delivery-eta"].window.kind == "count"
    assert loaded.storage.url == "sqlite:///driftwarden.db"  # ${DRIFTWARDEN_DB_URL:-...}
    assert loaded.kafka.client["sasl_plain_password"] == EXAMPLE_ENVIRON["KAFKA_PASSWORD"]
    # ... and through the documented command, which reads the real environment.
    for name in ("KAFKA_BOOTSTRAP", "DRIFTWARDEN_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in EXAMPLE_ENVIRON.items():
        monkeypatch.setenv(name, value)
    # The example's reference files are the reader's own: the check of them is skipped.
    assert cli.main(["check-config", "--skip-references", str(path)]) == 0


def test_example_lines_marked_default_hold_the_defaults(docs: dict[str, str]) -> None:
    defaults = _expected_defaults()
    checked = 0
    for path, value in _marked_default_lines(_example(docs["configuration"])):
        assert path in defaults, f"{path}: marked as a default, but not a configuration key"
        assert any(_same(value, d) for d in defaults[path]), (
            f"{path}: the example says {value!r} is the default; the code says {defaults[path]}"
        )
        checked += 1
    assert checked >= 30


def _marked_default_lines(example: str) -> Iterator[tuple[str, str]]:
    """(key path, value text) of scalar lines commented ``# default``, or inside a mapping
    commented ``# all defaults``; block-style mappings only."""
    stack: list[tuple[int, str, bool]] = []
    for line in example.splitlines():
        match = re.match(r"^( *)([A-Za-z_][\w-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, _, comment = rest.partition("#")
        inherited = bool(stack) and stack[-1][2]
        stack.append((indent, key, comment.strip().startswith("all defaults")))
        value = value.strip()
        if not value:
            continue
        marked = re.match(r"default\b(?!:)", comment.strip()) is not None
        if marked or inherited:
            keys = [k for _, k, _ in stack]
            if keys[0] == "models":
                keys[1] = "<name>"
            yield ".".join(keys), value


# -- the configuration reference -------------------------------------------------------------

Expectation = tuple[str, Any]  # ("required", None) or ("default", value)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Configuration sections an annotation holds (through Annotated, unions and Optional)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Expectation | None]]:
    """Every key path of a section: leaves with their expectation, sections with None."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if path == "alerts":  # documented in docs/alerting.md
            yield path, None
            continue
        annotation = field.annotation
        if get_origin(annotation) is dict and _models_in(get_args(annotation)[1]):
            yield path, None
            for section in _models_in(get_args(annotation)[1]):
                yield from _walk(section, f"{path}.<name>")
            continue
        sections = _models_in(annotation)
        if sections:
            yield path, None
            for section in sections:
                yield from _walk(section, path)
            continue
        if field.is_required():
            yield path, ("required", None)
        else:
            yield path, ("default", field.get_default(call_default_factory=True))


def _config_keys() -> tuple[dict[str, list[Expectation]], set[str]]:
    leaves: dict[str, list[Expectation]] = {}
    sections: set[str] = set()
    for path, expectation in _walk(configuration.Config):
        if expectation is None:
            sections.add(path)
        elif expectation not in leaves.setdefault(path, []):
            leaves[path].append(expectation)
    return leaves, sections


def _expected_defaults() -> dict[str, list[Any]]:
    leaves, _ = _config_keys()
    return {
        path: [value for kind, value in expectations if kind == "default"]
        for path, expectations in leaves.items()
    }


def _same(text: str, default: Any) -> bool:
    """Whether README text (a YAML scalar, a duration or ``null``) states ``default``."""
    text = text.strip().strip('"')
    if default is None:
        return text == "null"
    if isinstance(default, timedelta):
        try:
            return parse_duration(text) == default
        except ValueError:
            return False
    if isinstance(default, str | Path):
        return text == str(default)
    value = yaml.safe_load(text)
    if isinstance(default, float) and isinstance(value, int | float):
        return math.isclose(value, default)
    return value == default and type(value) is type(default)


def _reference_rows(page: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for header, body in _tables(page):
        if header[:3] != ["key", "type", "default"]:
            continue
        for row in body:
            key = _code(row[0])
            assert key is not None and key not in rows, f"bad or repeated key cell {row[0]!r}"
            rows[key] = row
    return rows


def test_every_configuration_key_is_in_the_reference_and_no_other(docs: dict[str, str]) -> None:
    leaves, sections = _config_keys()
    rows = _reference_rows(docs["configuration"])
    missing = sorted(set(leaves) - set(rows))
    invented = sorted(set(rows) - set(leaves) - sections)
    assert not missing, f"configuration keys missing from the configuration reference: {missing}"
    assert not invented, f"configuration reference keys the configuration does not have: {invented}"
    assert "alerts" in rows and "(alerting.md)" in rows["alerts"][3]


def test_the_reference_states_every_default(docs: dict[str, str]) -> None:
    leaves, _ = _config_keys()
    rows = _reference_rows(docs["configuration"])
    for path, expectations in leaves.items():
        assert path in rows, f"{path} is missing from the configuration reference"
        cell = rows[path][2]

        def states(expectation: Expectation, cell: str = cell) -> bool:
            kind, value = expectation
            if kind == "required":
                return "required" in cell
            code = _code(cell)
            return code is not None and _same(code, value)

        assert any(states(e) for e in expectations), (
            f"{path}: README default {cell!r}, code {expectations}"
        )


# -- detectors ------------------------------------------------------------------------------


def _parameter_rows(page: str) -> dict[str, str]:
    """Detector name -> its "parameters (defaults)" cell, from the Detectors tables."""
    found: dict[str, str] = {}
    for header, body in _tables(page):
        if "parameters (defaults)" not in header:
            continue
        column = header.index("parameters (defaults)")
        for row in body:
            name = _code(row[0])
            assert name is not None and name not in found
            found[name] = row[column]
    return found


def _pairs(cell: str) -> dict[str, str]:
    return dict(
        (key, value.strip())
        for key, _, value in (span.partition(":") for span in re.findall(r"`([^`]+)`", cell))
    )


@pytest.mark.parametrize(
    "detectors",
    [
        pytest.param({**DATA_DRIFT_DETECTORS, **DATA_QUALITY_DETECTORS}, id="data"),
        pytest.param(CONCEPT_DRIFT_DETECTORS, id="concept"),
    ],
)
def test_detector_tables_give_every_parameter_with_its_default(
    docs: dict[str, str], detectors: dict[str, type]
) -> None:
    rows = _parameter_rows(docs["detectors"])
    for name, cls in detectors.items():
        assert name in rows, f"detector {name} is not in the docs' detector tables"
        stated = _pairs(rows[name])
        parameters = {
            p.name: p.default
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self"
        }
        assert set(stated) == set(parameters), f"{name}: README {stated}, code {parameters}"
        for parameter, default in parameters.items():
            if default is inspect.Parameter.empty:  # calibrated detectors: set by the daemon
                assert stated[parameter] == "from the reference", f"{name}.{parameter}"
                continue
            assert _same(stated[parameter], default), (
                f"{name}.{parameter}: README {stated[parameter]}, code {default!r}"
            )


def test_default_sets_are_the_ones_described(docs: dict[str, str]) -> None:
    page = docs["detectors"]
    text = " ".join(page.split())

    def listed(names: list[str]) -> str:
        quoted = [f"`{n}`" for n in names]
        return ", ".join(quoted[:-1]) + f" and {quoted[-1]}"

    for kind, detectors in DEFAULT_DATA_DRIFT.items():
        assert f"on {kind} features {listed(list(detectors))}" in text
        for name, params in detectors.items():
            signature = inspect.signature(DATA_DRIFT_DETECTORS[name].__init__).parameters
            # the table's defaults are the ones the default set runs with
            assert all(signature[key].default == value for key, value in params.items()), name
    lines = page.splitlines()
    for name, params in DEFAULT_CONCEPT_DRIFT.items():
        row = next(line for line in lines if line.startswith(f"| `{name}` |"))
        source = _cells(row)[-1]  # driftwarden's own default is stated with its evidence
        stated = _pairs(source)
        for key, value in params.items():
            assert key in stated and _same(stated[key], value), (name, key, source)


# -- (c) metrics ----------------------------------------------------------------------------


def _daemon_metrics() -> tuple[CollectorRegistry, list[MetricWrapperBase]]:
    """The registry as the daemon fills it: its metrics, the dispatcher's and retention's."""
    registry = CollectorRegistry()
    engine = create_engine("sqlite://")
    http = httpx.Client()
    try:
        metrics = Metrics(registry, ["credit-default"])
        owners = [
            metrics,
            metrics.versions,
            metrics.segments,
            Dispatcher(
                engine,
                AlertsConfig(),
                registry=registry,
                clock=lambda: datetime.now(UTC),
                http=http,
            ).metrics,
            Retention(engine, configuration.RetentionConfig(), registry),
        ]
    finally:
        http.close()
        engine.dispose()
    wrappers = [
        value
        for owner in owners
        for value in vars(owner).values()
        if isinstance(value, MetricWrapperBase)
    ]
    return registry, wrappers


_SUFFIX = {"counter": "_total", "info": "_info"}


def _exposed(wrapper: MetricWrapperBase) -> str:
    """The family name as /metrics shows it."""
    return wrapper._name + _SUFFIX.get(wrapper._type, "")


def _exposed_type(wrapper: MetricWrapperBase) -> str:
    """The TYPE line /metrics shows: an info metric is exposed as a gauge."""
    return "gauge" if wrapper._type == "info" else wrapper._type


def _label_names(wrapper: MetricWrapperBase) -> set[str]:
    """Its labels; an info metric's are the keys of the values it was given."""
    if wrapper._type == "info":
        return set(wrapper._value)
    return set(wrapper._labelnames)


def _metric_rows(page: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for header, body in _tables(page):
        if header[:3] != ["metric", "type", "labels"]:
            continue
        for row in body:
            name = _code(row[0])
            assert name is not None and name not in rows
            rows[name] = row
    return rows


def test_the_metrics_table_is_exactly_what_the_daemon_registers(docs: dict[str, str]) -> None:
    page = docs["metrics"]
    registry, wrappers = _daemon_metrics()
    families = {f.name for f in registry.collect() if f.name.startswith("driftwarden_")}
    assert families == {w._name for w in wrappers}, "every driftwarden_ family is accounted for"
    rows = _metric_rows(page)
    registered = {_exposed(w): w for w in wrappers}
    assert set(rows) - set(registered) == set(), "the docs list metrics the daemon lacks"
    assert set(registered) - set(rows) == set(), "the daemon exports metrics the docs omit"
    for name, wrapper in registered.items():
        _, kind, labels, _ = rows[name]
        assert kind == _exposed_type(wrapper), name
        stated = set() if labels == "—" else {label.strip() for label in labels.split(",")}
        assert stated == _label_names(wrapper), f"{name}: README {stated}"
    if any(f.name.startswith("process_") for f in registry.collect()):
        assert "`process_*`" in page


# -- (d) commands ---------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _code_text(text: str) -> list[str]:
    """Inline code spans and the lines of fenced code blocks."""
    fence = r"^ *```[a-z]*\n(.*?)^ *```"
    fenced = re.findall(fence, text, re.S | re.M)
    prose = re.sub(fence, "", text, flags=re.S | re.M)
    return [line for block in fenced for line in block.splitlines()] + re.findall(
        r"`([^`\n]+)`", prose
    )


def test_the_results_table_names_every_field_of_the_record_contract(
    docs: dict[str, str],
) -> None:
    page = docs["results"]
    """The field table of "Results" is the record contract, field for field."""
    tables = list(_tables(page))
    rows = next(body for head, body in tables if head[0] == "field")
    documented = [name for row in rows for name in re.findall(r"`([a-z_]+)`", row[0])]
    assert documented == list(RESULT_FIELDS)


def test_every_command_in_the_readme_and_the_docs_exists(readme: str, docs: dict[str, str]) -> None:
    commands = _subcommands(cli._parser())
    mentions = [
        match
        for page in (readme, *docs.values())
        for text in _code_text(page)
        for match in re.finditer(
            r"\bdriftwarden (?!driftwarden )([a-z][a-z-]*)(?: +([a-z][a-z|-]*))?", text
        )
    ]
    assert len(mentions) > 20
    for match in mentions:
        command, action = match.group(1), match.group(2)
        assert command in commands, f"`driftwarden {command}` is not a command"
        actions = _subcommands(commands[command])
        if actions and action:
            for name in action.split("|"):
                assert name in actions, f"`driftwarden {command} {name}` is not a command"


def test_every_command_is_in_the_commands_table(docs: dict[str, str]) -> None:
    page = docs["getting-started"]
    table = next(body for header, body in _tables(page) if header[0] == "command")
    listed = " ".join(row[0] for row in table)
    for command, parser in _subcommands(cli._parser()).items():
        assert f"driftwarden {command}" in listed, command
        for action in _subcommands(parser):
            assert re.search(rf"driftwarden {command} [a-z|]*\b{action}\b", listed), action


def test_the_readme_five_minute_configuration_is_valid(readme: str, tmp_path: Path) -> None:
    """The README's model and Slack rule load, as ``deploy/driftwarden.yaml``'s ``models``
    and ``alerts`` would in the compose stack."""
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "models:" in b)
    path = tmp_path / "driftwarden.yaml"
    path.write_text(textwrap.dedent(block), encoding="utf-8")
    environ = {"SLACK_WEBHOOK_URL": EXAMPLE_ENVIRON["SLACK_WEBHOOK_URL"]}
    loaded = configuration.load(path, environ=environ)
    assert loaded.models["credit-default"].window.size == timedelta(hours=1)
    assert [rule.name for rule in loaded.alerts.rules] == ["feature-psi-high"]
