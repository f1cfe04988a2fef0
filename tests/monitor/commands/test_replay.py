"""``driftwarden replay``: injected drift found where it was; idempotent; dead letters kept."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest
import sqlalchemy
from support.pipeline import HOUR, START

from driftwarden.core.records import RESULT_FIELDS
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.ingest.decoding import KEPT_PREFIX

DRIFT_FROM = START + 12 * HOUR


@pytest.fixture(scope="module")
def drifting_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stream")
    stream = synthetic.Stream(n=48_000, start=START, span=24 * HOUR, drift_from=DRIFT_FROM, seed=5)
    path = directory / "predictions.jsonl"
    path.write_bytes(b"\n".join(synthetic.prediction_lines(synthetic.events(stream))) + b"\n")
    return path


def write_config(directory: Path, reference: Path, storage_url: str = "sqlite://") -> Path:
    path = directory / "config.yaml"
    path.write_text(synthetic.config_yaml(str(reference), storage_url))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def test_injected_drift_is_flagged_in_exactly_those_features_from_that_window_on(
    tmp_path: Path, reference_file: Path, drifting_stream: Path
) -> None:
    loaded = configuration.load(write_config(tmp_path, reference_file))
    outcome = replay(loaded, drifting_stream, tmp_path / "out")
    records = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert outcome.windows == 24 and outcome.events == 48_000
    assert len(records) == len(outcome.results)
    drift_start = "2026-11-26T12:00:00.000Z"
    flagged = {
        (r["feature"], r["window_start"] >= drift_start)
        for r in records
        if r["kind"] == "data_drift" and r["drift"]
    }
    assert {feature for feature, _ in flagged} == set(synthetic.DEFAULT_DRIFT)
    assert all(after for _, after in flagged), "drift flagged before it was injected"
    for feature in synthetic.DEFAULT_DRIFT:
        windows = {
            r["window_index"]
            for r in records
            if r["kind"] == "data_drift" and r["feature"] == feature and r["drift"]
        }
        assert windows == set(range(12, 24)), feature
    sample = records[0]
    assert tuple(sample) == RESULT_FIELDS
    assert sample["window_start"].endswith("Z") and len(sample["window_start"]) == 24


def _dump(url: str) -> dict[str, list[tuple]]:
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        dump = {
            table.name: sorted(map(tuple, connection.execute(table.select()).all()), key=repr)
            for schema in storage.SCHEMA
            for table in schema.sorted_tables
        }
    engine.dispose()
    return dump


@pytest.mark.slow
def test_a_second_replay_into_the_same_storage_changes_no_row(
    tmp_path: Path, reference_file: Path, drifting_stream: Path, database_url: str
) -> None:
    storage.upgrade(storage.create(database_url))
    loaded = configuration.load(write_config(tmp_path, reference_file))
    replay(loaded, drifting_stream, tmp_path / "first", storage_url=database_url)
    before = _dump(database_url)
    assert len(before["results"]) > 1000 and len(before["windows"]) == 24
    replay(loaded, drifting_stream, tmp_path / "second", storage_url=database_url)
    assert _dump(database_url) == before
    assert (tmp_path / "first" / "results.jsonl").read_bytes() == (
        tmp_path / "second" / "results.jsonl"
    ).read_bytes()


def good_event(i: int, ts: int) -> dict:
    frame = synthetic.events(synthetic.Stream(n=1, start=ts, span=1, seed=i))
    return orjson.loads(
        synthetic.prediction_lines(frame.with_columns(pl.lit(f"g-{i}").alias("id")))[0]
    )


@pytest.mark.slow
def test_every_kind_of_bad_event_lands_in_dead_letters_while_good_ones_count(
    tmp_path: Path, reference_file: Path
) -> None:
    base = good_event(0, START)
    no_id = {k: v for k, v in base.items() if k != "id"}
    bad = [
        (b"this is not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (orjson.dumps(no_id), "missing_field"),
        (orjson.dumps({**base, "model": 7}), "wrong_type"),
        (orjson.dumps({**base, "ts": "last tuesday"}), "invalid_timestamp"),
        (
            b'{"model": "credit-default", "id": "n", "ts": 0, "features": {}, "prediction": NaN}',
            "non_finite",
        ),
        (b"\xff\xfe\xfd", "invalid_utf8"),
        (orjson.dumps({**base, "features": {"age": "x" * 2_000_000}}), "too_large"),
        (orjson.dumps({**base, "ts": START - 3 * HOUR}), "too_late"),
    ]
    lines: list[bytes] = []
    expected: list[tuple[int, str]] = []
    good = 0
    for hour in range(4):
        for i in range(600):
            lines.append(orjson.dumps(good_event(hour * 1000 + i, START + hour * HOUR + i * 1000)))
            good += 1
        if hour == 2:
            for raw, reason in bad:
                lines.append(raw)
                expected.append((len(lines), reason))
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    loaded = configuration.load(write_config(tmp_path, reference_file))
    outcome = replay(loaded, path, tmp_path / "out")
    letters = read_jsonl(tmp_path / "out" / "dead_letters.jsonl")
    assert sorted((d["origin"]["offset"], d["reason"]) for d in letters) == expected
    for letter in letters:
        raw = base64.b64decode(letter["raw_base64"])
        line = lines[letter["origin"]["offset"] - 1]
        assert raw == (line[:KEPT_PREFIX] if letter["reason"] == "too_large" else line)
        assert letter["origin"]["source"] == str(path) and letter["detail"]
    assert outcome.events == good
    windows = [
        r
        for r in read_jsonl(tmp_path / "out" / "results.jsonl")
        if r["detector"] == "psi" and r["feature"] == "age"
    ]
    assert [w["n_window"] for w in sorted(windows, key=lambda r: r["window_index"])] == [600] * 4


@pytest.mark.slow
def test_replay_command_line(tmp_path: Path, reference_file: Path, drifting_stream: Path) -> None:
    config = write_config(tmp_path, reference_file)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftwarden.monitor.commands.cli",
            "replay",
            "--config",
            str(config),
            "--predictions",
            str(drifting_stream),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "48,000 events" in result.stdout and "24 windows" in result.stdout
    assert (tmp_path / "out" / "alerts.jsonl").exists()


def good_line(i: int, ts: int | str, **changes: object) -> bytes:
    return orjson.dumps({**good_event(i, START), "ts": ts, **changes})


def test_values_at_the_edges_of_their_ranges_are_stored_or_dead_lettered(
    tmp_path: Path, reference_file: Path, database_url: str
) -> None:
    """A 10,000-character id or model version is a dead letter (PostgreSQL would refuse to
    store it); the latest event time accepted closes a window, alerts and prints; later and
    earlier ones are dead letters."""
    from driftwarden.core.times import LATEST

    lines = [good_line(i, LATEST - 1000 + i) for i in range(50)]
    lines += [
        good_line(100, LATEST - 500, id="i" * 10_000),
        good_line(101, LATEST - 500, model_version="v" * 10_000),
        good_line(102, 253_402_300_800_000),  # year 10000
        good_line(103, "9999-12-31T23:59:59Z"),
        good_line(104, "0001-01-01T00:00:00Z"),
        good_line(105, -1),
    ]
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        synthetic.config_yaml(str(reference_file), "sqlite://").replace(
            "allowed_lateness: 5m}", "min_samples: 10}"
        )
        + "    detectors: {psi: {threshold: 0.0}}\n"
        + "alerts:\n  channels: {log: {type: log}}\n"
        + "  rules: [{name: any, match: [kind=data_drift], severity: info, channels: [log]}]\n"
    )
    storage.upgrade(storage.create(database_url))
    outcome = replay(configuration.load(config), path, tmp_path / "out", storage_url=database_url)
    reasons = sorted((d.origin.offset, d.reason) for d in outcome.dead_letters)
    assert reasons == [
        (51, "too_long"),
        (52, "too_long"),
        (53, "invalid_timestamp"),
        (54, "invalid_timestamp"),
        (55, "invalid_timestamp"),
        (56, "invalid_timestamp"),
    ]
    assert outcome.events == 50 and outcome.windows == 1
    assert outcome.notifications
    result = subprocess.run(
        [sys.executable, "-m", "driftwarden.monitor.commands.cli", "results", "--config",
         str(_with_storage(tmp_path, config, database_url))],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    assert "9998-12-31T" in result.stdout


def _with_storage(directory: Path, config: Path, url: str) -> Path:
    path = directory / "results.yaml"
    path.write_text(config.read_text().replace('url: "sqlite://"', f'url: "{url}"'))
    return path
