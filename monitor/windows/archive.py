"""Packing summaries into bytes for the database: numpy arrays plus a JSON header."""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from driftwarden.detectors.histogram import CategoricalSummary, NumericSummary

_NUMERIC_FIELDS = ("counts", "shift", "shifted_sum", "shifted_sum_sq", "minimum", "maximum")


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Deterministic compressed bytes of ``arrays`` and a JSON ``header``.

    The same input always gives the same bytes, so rewriting an unchanged
    summary never changes a database row.
    """
    layout = [[name, array.dtype.str, list(array.shape)] for name, array in arrays.items()]
    meta = json.dumps({"header": header, "arrays": layout}, sort_keys=True).encode()
    body = b"".join(np.ascontiguousarray(array).tobytes() for array in arrays.values())
    return zlib.compress(len(meta).to_bytes(8, "little") + meta + body, level=1)


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of bytes written by ``pack``."""
    raw = zlib.decompress(data)
    size = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + size])
    arrays: dict[str, np.ndarray] = {}
    position = 8 + size
    for name, dtype, shape in meta["arrays"]:
        array_type = np.dtype(dtype)
        length = int(np.prod(shape, dtype=np.int64)) * array_type.itemsize
        chunk = raw[position : position + length]
        arrays[name] = np.frombuffer(chunk, dtype=array_type).reshape(shape).copy()
        position += length
    return meta["header"], arrays


def unpack_header(prefix: bytes) -> dict[str, Any] | None:
    """The JSON header of bytes written by ``pack``, from their first bytes only (the
    header leads the stream, so pages read it without inflating the arrays); ``None``
    when ``prefix`` ends before the header does."""
    inflate = zlib.decompressobj()
    start = inflate.decompress(prefix, 8)
    if len(start) < 8:
        return None
    size = int.from_bytes(start, "little")
    meta = inflate.decompress(inflate.unconsumed_tail, size)
    if len(meta) < size:
        return None
    header: dict[str, Any] = json.loads(meta)["header"]
    return header


def numeric_arrays(prefix: str, summary: NumericSummary | None) -> dict[str, np.ndarray]:
    """The arrays of a numeric summary under ``prefix`` (none for ``None``)."""
    if summary is None:
        return {}
    return {f"{prefix}.{name}": getattr(summary, name) for name in _NUMERIC_FIELDS}


def numeric_summary(prefix: str, arrays: dict[str, np.ndarray]) -> NumericSummary | None:
    """The numeric summary stored under ``prefix``, if any."""
    if f"{prefix}.counts" not in arrays:
        return None
    return NumericSummary(**{name: arrays[f"{prefix}.{name}"] for name in _NUMERIC_FIELDS})


def categorical_arrays(prefix: str, summary: CategoricalSummary | None) -> dict[str, np.ndarray]:
    """The arrays of a categorical summary under ``prefix`` (none for ``None``)."""
    return {} if summary is None else {f"{prefix}.counts": summary.counts}


def categorical_summary(prefix: str, arrays: dict[str, np.ndarray]) -> CategoricalSummary | None:
    """The categorical summary stored under ``prefix``, if any."""
    counts = arrays.get(f"{prefix}.counts")
    return None if counts is None else CategoricalSummary(counts)


def as_bytes(data: bytes) -> np.ndarray:
    """Bytes as a uint8 array, to pack one serialized summary among arrays."""
    return np.frombuffer(data, dtype=np.uint8)
