"""Running the daemon in tests: its configuration on the test broker, and its stored results
against what ``replay`` computes from the same events."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwarden.core.records import ResultRecord
from driftwarden.monitor import storage
from support.kafka import count_rows, daemon_config, unique
from support.stream import WINDOWS


def stored_results(url: str) -> dict[tuple, ResultRecord]:
    engine = storage.create(url)
    try:
        return {record.key: record for record in storage.Store(engine).results()}
    finally:
        engine.dispose()


def assert_same_results(url: str, expected: dict[tuple, ResultRecord]) -> None:
    got = stored_results(url)
    assert set(got) == set(expected)
    for key, record in expected.items():
        mine = got[key]
        assert (mine.status, mine.drift, mine.n_window, mine.window_start) == (
            record.status,
            record.drift,
            record.n_window,
            record.window_start,
        ), key
        for name in ("value", "p_value", "threshold"):
            a, b = getattr(mine, name), getattr(record, name)
            assert (a is None) == (b is None), (key, name)
            if a is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (key, name)


def setup_daemon(tmp_path: Path, url: str, reference: Path, broker: str, topic: str, **kw) -> Path:
    storage.upgrade(storage.create(url))
    config = tmp_path / "config.yaml"
    config.write_text(daemon_config(reference, url, broker, topic, unique("group"), **kw))
    return config


def windows_done(url: str, count: int = WINDOWS):
    return lambda: count_rows(url, "windows") >= count
