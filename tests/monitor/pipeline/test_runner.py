"""The batch path keeps going when a batch fails unexpectedly: the message that fails becomes
an ``internal_error`` dead letter and every other one counts, exactly once."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from support.pipeline import HOUR, START

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.pipeline import model_pipeline


def _stream(directory: Path, poison: bool) -> Path:
    stream = synthetic.Stream(n=6_000, start=START, span=6 * HOUR, drift_from=START + 3 * HOUR)
    frame = synthetic.events(stream)
    if poison:
        frame = frame.with_columns(
            pl.when(pl.col("id") == "p-3500").then(pl.lit("poison")).otherwise("id").alias("id")
        )
    path = directory / ("poisoned.jsonl" if poison else "clean.jsonl")
    lines = synthetic.prediction_lines(frame)
    if not poison:
        lines = [line for line in lines if b'"p-3500"' not in line]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_message_that_fails_unexpectedly_is_isolated_and_the_rest_counts_once(
    tmp_path: Path, reference_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(synthetic.config_yaml(str(reference_file), "sqlite://"))
    loaded = configuration.load(config)
    clean = replay(loaded, _stream(tmp_path, poison=False), tmp_path / "clean")

    summarize = model_pipeline.summarize

    def failing(profile, frame):  # a bug that only one event's data reaches
        if "poison" in frame["id"].to_list():
            raise ZeroDivisionError("a bug met by one event")
        return summarize(profile, frame)

    monkeypatch.setattr(model_pipeline, "summarize", failing)
    poisoned = replay(loaded, _stream(tmp_path, poison=True), tmp_path / "poisoned")
    ((letter,),) = [[d for d in poisoned.dead_letters]]
    assert letter.reason == "internal_error" and letter.origin.offset == 3501
    assert b'"poison"' in letter.raw
    assert "ZeroDivisionError: a bug met by one event" in letter.detail
    assert poisoned.events == clean.events == 5_999
    assert poisoned.results.keys() == clean.results.keys()
    for key, record in clean.results.items():
        mine = poisoned.results[key]
        assert (mine.status, mine.drift, mine.n_window) == (
            record.status,
            record.drift,
            record.n_window,
        )
        for name in ("value", "p_value", "threshold", "error_bound"):
            # sums of values taken in other pieces may differ in the last bits (docs: Windows)
            ours, theirs = getattr(mine, name), getattr(record, name)
            assert (ours is None) == (theirs is None), (key, name)
            if theirs is not None:
                assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), (key, name)
