"""The in-memory id index against a plain dictionary: every stored id's sequence number
is among what a lookup returns, whatever the order of adds, collisions and forgets."""

from __future__ import annotations

import numpy as np

from driftwarden.monitor.labels.id_index import IdIndex


def test_lookups_return_every_live_entry_and_forgotten_ones_go() -> None:
    rng = np.random.default_rng(5)
    index = IdIndex()
    truth: dict[int, set[int]] = {}
    forgotten: set[int] = set()
    seq = 0
    # Few distinct hashes: many collide, within and across runs.
    for size in rng.integers(1, 400, size=120):
        hashes = rng.integers(0, 3_000, size=size).astype(np.uint64)
        seqs = np.arange(seq + 1, seq + 1 + size, dtype=np.int64)
        seq += size
        index.add(hashes, seqs)
        for h, s in zip(hashes.tolist(), seqs.tolist(), strict=True):
            truth.setdefault(h, set()).add(s)
        if rng.random() < 0.2:
            live = [s for values in truth.values() for s in values]
            gone = rng.choice(live, size=len(live) // 3, replace=False)
            index.forget(gone)
            forgotten |= set(gone.tolist())
            truth = {h: values - forgotten for h, values in truth.items()}
    assert index.last_seq == seq
    assert len(index) <= 2 * sum(len(values) for values in truth.values()) + 400

    asked = rng.integers(0, 3_500, size=2_000).astype(np.uint64)
    found = index.lookup(asked)
    expected = [s for h in asked.tolist() for s in truth.get(h, ())]
    # Everything live is found once per asking hash; anything else is a forgotten entry
    # not dropped yet.
    live = found[~np.isin(found, list(forgotten))]
    assert sorted(live.tolist()) == sorted(expected)
    assert set(found.tolist()) - set(expected) <= forgotten
