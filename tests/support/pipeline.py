"""Building pipelines and decoded batches of the synthetic model for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages

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
