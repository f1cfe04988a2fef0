"""The keys a model's rows are stored under besides its name: a split version's lane (its
windows and waiting predictions), a challenger's shadow pairs, and a spread model's
partition parts (their waiting predictions and label summaries)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection

PAIRS_SUFFIX = ">pairs"
"""Appended to a challenger's lane key: where its pair summaries are stored."""


def lane_key(model: str, version: str | None) -> str:
    """The name a version's windows and waiting predictions are stored under."""
    if version is None:
        return f"{model}#none"
    return f"{model}#{hashlib.blake2b(version.encode(), digest_size=8).hexdigest()}"


def lane_of(key: str, version: str | None) -> str | None:
    """The model whose version ``version`` stores its windows under ``key``; ``None`` when
    ``key`` is no version's key (a model with versions not split)."""
    model, sep, _ = key.rpartition("#")
    return model if sep and lane_key(model, version) == key else None


def part_key(model: str, partition: int) -> str:
    """The name a partition's part of a spread model is stored under."""
    return f"{model}@{partition}"


def windows_of(label_key: str, models: Collection[str]) -> tuple[str, str | None]:
    """The key of the windows that hold the label (or pair) summaries stored under
    ``label_key``, and the configured model they belong to (``None``: none of ``models``)."""
    key = label_key.removesuffix(PAIRS_SUFFIX)
    if key in models:
        return key, key
    model, at, partition = key.rpartition("@")
    if at and partition.isdigit():
        return model, model if model in models else None
    model, lane, _ = key.rpartition("#")
    return key, model if lane and model in models else None
