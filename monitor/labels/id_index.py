"""Which storage sequence numbers may hold a prediction id, kept in memory.

Prediction ids are often random (UUIDs). Kept in a database index, every new id
lands on a page of its own, and storing waiting predictions slows down as they
grow to millions. Here the ids are 64-bit hashes in sorted arrays: a batch adds
a sorted run, and runs of similar size merge (as in a log-structured merge
tree), so adding costs amortized O(log n) per id and a lookup is one binary
search per run, for whole arrays at a time.

A hash can collide, and an entry can outlive its row: callers read the stored
row and compare ids.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def id_hashes(ids: pl.Series) -> np.ndarray:
    """The 64-bit hashes of prediction ids (stable within one process only)."""
    return ids.cast(pl.String).hash(seed=0).to_numpy()


class IdIndex:
    """Hashes of prediction ids to the sequence numbers of their stored rows."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._forgotten: list[np.ndarray] = []
        self._forgotten_count = 0
        self.last_seq = 0

    def __len__(self) -> int:
        return sum(hashes.size for hashes, _ in self._runs)

    def add(self, hashes: np.ndarray, seqs: np.ndarray) -> None:
        """Index rows stored at ``seqs`` under the hashes of their ids."""
        if hashes.size == 0:
            return
        self.last_seq = max(self.last_seq, int(seqs.max()))
        order = np.argsort(hashes, kind="stable")
        run = hashes[order], seqs[order]
        while self._runs and self._runs[-1][0].size < 2 * run[0].size:
            run = _merge(self._runs.pop(), run)
        self._runs.append(run)

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Sequence numbers of every entry with one of these hashes."""
        found = [np.empty(0, dtype=np.int64)]
        for keys, seqs in self._runs:
            left = np.searchsorted(keys, hashes, side="left")
            right = np.searchsorted(keys, hashes, side="right")
            counts = right - left
            hits = np.repeat(left, counts)
            offsets = np.arange(hits.size) - np.repeat(np.cumsum(counts) - counts, counts)
            found.append(seqs[hits + offsets])
        return np.concatenate(found)

    def forget(self, seqs: np.ndarray) -> None:
        """Drop the entries of rows deleted at ``seqs`` (once they are many, to keep this
        cheap: until then a lookup may still return them)."""
        self._forgotten.append(seqs)
        self._forgotten_count += seqs.size
        if 2 * self._forgotten_count < len(self):
            return
        gone = np.concatenate(self._forgotten)
        self._runs = [
            (keys[keep], values[keep])
            for keys, values in self._runs
            if (keep := ~np.isin(values, gone)).any()
        ]
        self._forgotten, self._forgotten_count = [], 0


def _merge(
    older: tuple[np.ndarray, np.ndarray], newer: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    keys = np.concatenate([older[0], newer[0]])
    order = np.argsort(keys, kind="stable")
    return keys[order], np.concatenate([older[1], newer[1]])[order]
