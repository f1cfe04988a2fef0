"""Silent models: a gap in a model's events longer than its limit is one silence, whatever
the batches the events came in; a check finds a silence once; events end it."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwarden.monitor.pipeline.freshness import Freshness

MINUTE = 60_000
LIMIT = 120 * MINUTE


def _index(ts: int) -> int:
    return ts // (60 * MINUTE)


def _records(times: list[int], cuts: list[int]) -> list[tuple]:
    freshness = Freshness("m", LIMIT)
    records = []
    edges = [0, *sorted({min(c, len(times)) for c in cuts}), len(times)]
    for start, stop in itertools.pairwise(edges):
        if stop > start:
            batch = np.array(times[start:stop], dtype=np.int64)
            records += freshness.heard(batch, _index, "ref")
    return [(r.key, r.drift, r.value, r.window_start, r.window_end) for r in records]


def _expected(times: list[int]) -> list[tuple]:
    """Gaps of the running maximum longer than the limit, computed directly."""
    expected, latest = [], None
    for ts in times:
        if latest is not None and ts - latest > LIMIT:
            metric = "seconds_since_last_event"
            key = ("m", _index(latest), "freshness", "silence", "", metric, "", "", "")
            expected.append((key, True, LIMIT / 1000, latest, latest + LIMIT))
            expected.append((key, False, (ts - latest) / 1000, latest, ts))
        latest = ts if latest is None else max(latest, ts)
    return expected


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.lists(st.integers(0, 600), min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=8),
)
def test_silences_do_not_depend_on_batching(minutes: list[int], cuts: list[int]) -> None:
    times = [m * MINUTE for m in minutes]
    assert _records(times, cuts) == _expected(times)


def test_a_check_finds_a_silence_once_and_events_end_it() -> None:
    freshness = Freshness("m", LIMIT)
    assert freshness.check(10 * LIMIT, _index, "ref") is None  # nothing heard yet
    assert freshness.heard(np.array([5 * MINUTE]), _index, "ref") == []
    assert freshness.check(5 * MINUTE + LIMIT, _index, "ref") is None
    found = freshness.check(5 * MINUTE + LIMIT + 1, _index, "ref")
    assert found is not None and found.drift and found.window_start == 5 * MINUTE
    assert freshness.check(5 * MINUTE + 3 * LIMIT, _index, "ref") is None  # known already
    older = freshness.heard(np.array([MINUTE]), _index, "ref")  # an old event: still silent
    assert older == []
    (back,) = freshness.heard(np.array([400 * MINUTE]), _index, "ref")
    assert (back.key, back.drift, back.window_end) == (found.key, False, 400 * MINUTE)
    assert freshness.age(401 * MINUTE) == 60.0
