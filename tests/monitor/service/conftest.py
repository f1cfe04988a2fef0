"""A drifting stream produced to the real broker, and what ``replay`` makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.kafka import LIBRARIES, create_topic, produce, unique
from support.stream import HOUR, START, WINDOWS

from driftwarden.core.records import ResultRecord
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay


@pytest.fixture(scope="session")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "reference.parquet"
    synthetic.reference(20_000, seed=0).write_parquet(path)
    return path


@pytest.fixture(scope="session")
def stream_lines() -> list[bytes]:
    stream = synthetic.Stream(
        n=18_000, start=START, span=WINDOWS * HOUR, drift_from=START + 3 * HOUR, seed=11
    )
    return synthetic.prediction_lines(synthetic.events(stream))


@pytest.fixture(scope="session")
def expected(
    tmp_path_factory: pytest.TempPathFactory, reference_file: Path, stream_lines: list[bytes]
) -> dict[tuple, ResultRecord]:
    """The results ``replay`` computes from the stream: what every daemon run must store."""
    directory = tmp_path_factory.mktemp("replay")
    events = directory / "predictions.jsonl"
    events.write_bytes(b"\n".join(stream_lines) + b"\n")
    config = directory / "config.yaml"
    config.write_text(synthetic.config_yaml(str(reference_file), "sqlite://"))
    outcome = replay(configuration.load(config), events, directory / "out")
    assert outcome.windows == WINDOWS
    return outcome.results


@pytest.fixture
def topic(broker: str, stream_lines: list[bytes]) -> str:
    """A fresh 4-partition topic holding the whole stream, keyed by model."""
    name = unique("predictions")
    create_topic(broker, name, 4)
    produce(broker, name, stream_lines, key=synthetic.MODEL.encode())
    return name


@pytest.fixture(params=LIBRARIES)
def library(request: pytest.FixtureRequest) -> str:
    """The Kafka client library the daemon runs on (``kafka.library``)."""
    return request.param
