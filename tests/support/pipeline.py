"""Building pipelines and decoded batches of the synthetic model for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from driftwarden.alerts import AlertEngine
from driftwarden.core.records import ResultRecord
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.files import read_events
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages
from driftwarden.monitor.pipeline.building import build_pipeline, window_sizes
from driftwarden.monitor.pipeline.report import BatchReport
from driftwarden.monitor.pipeline.runner import BatchRunner, Cadence, SourceBatch

HOUR = 3_600_000
START = 1_795_651_200_000  # 2026-11-26T00:00:00Z


def make_config(
    reference: Path, window: str, storage_url: str = "sqlite://"
) -> configuration.Config:
    """The synthetic model's configuration with another window."""
    text = synthetic.config_yaml(str(reference), storage_url).replace(
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}", f"    window: {window}"
    )
    return configuration.parse(text, environ={})


def decode_frame(loaded: configuration.Config, frame: pl.DataFrame) -> DecodedBatch:
    """Synthetic event rows through the real decoder."""
    lines = synthetic.prediction_lines(frame)
    messages = Messages(lines, "test", 0, np.arange(len(lines), dtype=np.int64))
    return decoder(loaded, "prediction").decode(messages)


def run_in_parts(
    config: configuration.Config | list[configuration.Config], parts: list[Path], url: str
) -> tuple[list[ResultRecord], BatchReport]:
    """The batch path over ``parts``, each run by a new pipeline resumed from the stored
    state (a restart between parts), with the configuration of the part if a list;
    the stored results and what was committed."""
    configs = config if isinstance(config, list) else [config] * len(parts)
    engine = storage.create(url)
    storage.upgrade(engine)
    store = storage.Store(engine)
    committed = BatchReport()
    try:
        for i, (config, path) in enumerate(zip(configs, parts, strict=True)):
            with engine.connect() as connection:
                pipeline = build_pipeline(config, store, resume=i > 0, join=None)
                alerts = AlertEngine(config.alerts, window_sizes(config), deliver=False)
                runner = BatchRunner(
                    config, pipeline, store, alerts, connection, Cadence(0, 0), backtest=True
                )
                for messages in read_events(path, config, "prediction"):
                    report = runner.run(SourceBatch({"prediction": messages}))
                    if report is not None:
                        committed.extend_committed(report)
                committed.extend_committed(runner.checkpoint())
                if i == len(parts) - 1:
                    committed.extend_committed(runner.finish())
        return sorted(store.results(), key=lambda r: r.key), committed
    finally:
        engine.dispose()


def write_predictions(path: Path, events: pl.DataFrame) -> Path:
    """``events`` as a prediction file at ``path``."""
    path.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    return path


def halves(events: pl.DataFrame, cut: int, directory: Path) -> list[Path]:
    """The prediction files of the events before ``cut`` and of those from it on."""
    return [
        write_predictions(directory / "before.jsonl", events.filter(pl.col("ts") < cut)),
        write_predictions(directory / "after.jsonl", events.filter(pl.col("ts") >= cut)),
    ]


def assert_same_records(restarted: list[ResultRecord], once: list[ResultRecord]) -> None:
    """A run with restarts gave the records of one run: the same keys, verdicts and counts,
    and values equal up to sums taken in other pieces (docs: Windows)."""
    assert [r.key for r in restarted] == [r.key for r in once]
    for mine, theirs in zip(restarted, once, strict=True):
        assert (mine.status, mine.drift, mine.n_window) == (
            theirs.status,
            theirs.drift,
            theirs.n_window,
        )
        for name in ("value", "p_value", "threshold"):
            ours, expected = getattr(mine, name), getattr(theirs, name)
            assert (ours is None) == (expected is None), (mine.key, name)
            if expected is not None:
                assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12), (mine.key, name)
