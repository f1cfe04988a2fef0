"""Where a version of a model with split versions keeps its windows and waiting
predictions: a key of its own, derived from the model and the version; and where a
challenger keeps its shadow pairs' summaries."""

from __future__ import annotations

import hashlib

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


def windows_key(label_key: str) -> str:
    """The key of the windows whose label summaries (or pair summaries) are stored under
    ``label_key``."""
    return label_key.removesuffix(PAIRS_SUFFIX)
