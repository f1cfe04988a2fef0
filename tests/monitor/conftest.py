"""Fixtures for the daemon's pipeline: a fitted synthetic profile."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.pipeline import make_config

from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.windows.profile import Profile, fit, read_reference


@pytest.fixture(scope="session")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "reference.parquet"
    synthetic.reference(20_000, seed=0).write_parquet(path)
    return path


@pytest.fixture(scope="session")
def profile(reference_file: Path) -> Profile:
    loaded = make_config(reference_file, "{kind: time, size: 1h}")
    model = loaded.models[synthetic.MODEL]
    frame, content = read_reference(model.reference)
    return fit(synthetic.MODEL, model, frame, content)


@pytest.fixture
def label_join() -> Iterator[LabelJoin]:
    """The label join on SQLite, with its helper thread."""
    with ThreadPoolExecutor(max_workers=1) as helper:
        yield LabelJoin(JoinStore("sqlite"), helper)


@pytest.fixture
def connection(tmp_path: Path):
    """A connection to a fresh SQLite database at the current schema."""
    from driftwarden.monitor import storage

    engine = storage.create(f"sqlite:///{tmp_path / 'pipeline.db'}")
    storage.upgrade(engine)
    with engine.connect() as open_connection:
        yield open_connection
    engine.dispose()
