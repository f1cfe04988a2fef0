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
        assert raw == lines[letter["origin"]["offset"] - 1]
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
