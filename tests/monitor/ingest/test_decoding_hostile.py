"""Hostile batches: whatever bytes a batch holds, decoding never raises, and every message is
exactly one of a decoded event, a dead letter with the expected reason, or an ignored event."""

from __future__ import annotations

import time

import numpy as np
import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftwarden.core.times import LATEST
from driftwarden.monitor.ingest.decoding import KEPT_PREFIX, EventDecoder, ModelSchema
from driftwarden.monitor.ingest.messages import Messages

SCHEMA = ModelSchema("binary_classification", ("x0", "income"), ("c",), ("sex",))
LIMIT = 2_000
DECODED, IGNORED = "decoded", "ignored"


def _decoder() -> EventDecoder:
    return EventDecoder({"m": SCHEMA}, "prediction", max_message_bytes=LIMIT)


def _event(**changes: object) -> dict:
    base = {
        "model": "m",
        "id": "p",
        "ts": 1_796_209_200_000,
        "features": {"x0": 0.1, "income": 52_000.0, "c": "a"},
        "prediction": 0.5,
        "groups": {"sex": "F"},
    }
    return base | changes


def _dumps(event: dict) -> bytes:
    return orjson.dumps(event)


_feature_value = st.one_of(
    st.none(),
    st.floats(-1e6, 1e6),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.sampled_from(["a", "41", "1.5e3", "", "{x}", "[1]", "west"]),
    st.just({"a": 1}),
    st.just([1, 2]),
)

# A valid event, with any feature values (a wrong type there is a data-quality figure, not a
# bad event): decoded.
_valid = st.builds(
    lambda i, ts, x0, income, c, p: (
        _dumps(
            _event(
                id=f"v{i}",
                ts=ts,
                features={"x0": x0, "income": income, "c": c},
                prediction=p,
            )
        ),
        DECODED,
    ),
    st.integers(0, 10**6),
    st.sampled_from([0, 1_796_209_200_000, "2026-12-01T10:00:00Z", LATEST]),
    _feature_value,
    _feature_value,
    _feature_value,
    st.floats(0, 1),
)

# NaN and Infinity tokens, which JSON does not have.
_tokens = st.sampled_from(
    [
        (b'{"model":"m","id":"n","ts":0,"features":{"x0":NaN,"c":"a"},"prediction":0.5}', DECODED),
        (b'{"model":"m","id":"n","ts":0,"features":{"x0":-Infinity},"prediction":0.5}', DECODED),
        (b'{"model":"m","id":"n","ts":0,"features":{},"prediction":NaN}', "non_finite"),
        (b'{"model":"m","id":"n","ts":0,"features":{},"prediction":Infinity}', "non_finite"),
        (b'{"model": "m", oops}', "invalid_json"),
        (b'{"model": "m", "id": 1, "ts": 0', "invalid_json"),
    ]
)

_bad = st.sampled_from(
    [
        (b"", "invalid_json"),
        (b"not json", "invalid_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"model": "m", "id": "\xc3\x28"}', "invalid_utf8"),
        (b"[1, 2]", "not_an_object"),
        (b"7", "not_an_object"),
        (_dumps({"id": "x", "ts": 0, "features": {}, "prediction": 0.5}), "missing_field"),
        (_dumps(_event(features=None)), "missing_field"),
        (_dumps(_event(model=5)), "wrong_type"),
        (_dumps(_event(id=[1])), "wrong_type"),
        (_dumps(_event(features="x")), "wrong_type"),
        (_dumps(_event(groups=[1])), "wrong_type"),
        (_dumps(_event(prediction="high")), "wrong_type"),
        (_dumps(_event(prediction=1.5)), "wrong_type"),
        (_dumps(_event(ts="soon")), "invalid_timestamp"),
        (_dumps(_event(ts=253_402_300_800_000)), "invalid_timestamp"),  # year 10000
        (_dumps(_event(ts=-1)), "invalid_timestamp"),
        (_dumps(_event(ts="0001-01-01T00:00:00Z")), "invalid_timestamp"),
        (_dumps(_event(ts="9999-12-31T23:59:59Z")), "invalid_timestamp"),
        (
            _dumps(_event(ts="1" * 30)).replace(b'"' + b"1" * 30 + b'"', b"1" * 30),
            "invalid_timestamp",
        ),
        (_dumps(_event(id="i" * 256)), "too_long"),
        (_dumps(_event(model="m" * 300)), "too_long"),
        (_dumps(_event(model_version="v" * 300)), "too_long"),
        (_dumps(_event(features={"x0": "y" * (LIMIT + 1)})), "too_large"),
        (_dumps(_event(model="other")), IGNORED),
    ]
)

_item = st.one_of(_valid, _valid, _tokens, _bad)


def _outcomes(raw: list[bytes]) -> tuple[dict[int, str], int]:
    batch = _decoder().decode(Messages(raw, "t", 0, np.arange(len(raw), dtype=np.int64)))
    outcome: dict[int, str] = {}
    for frame in batch.frames.values():
        for row in frame["_row"].to_list():
            assert row not in outcome, f"message {row} decoded twice"
            outcome[row] = DECODED
    for letter in batch.dead_letters:
        row = letter.origin.offset
        assert row not in outcome, f"message {row} is both {outcome[row]} and a dead letter"
        outcome[row] = letter.reason
        assert letter.detail
        assert len(letter.raw) <= max(LIMIT, KEPT_PREFIX)
    return outcome, sum(batch.ignored.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_item, min_size=1, max_size=80))
def test_every_message_of_a_hostile_batch_is_accounted_for_exactly_once(items: list) -> None:
    raw = [value for value, _ in items]
    outcome, ignored = _outcomes(raw)
    for row, (value, expected) in enumerate(items):
        if expected == IGNORED:
            assert row not in outcome, value[:80]
        else:
            assert outcome.get(row) == expected, (row, value[:80], outcome.get(row))
    assert ignored == sum(expected == IGNORED for _, expected in items)
    assert len(outcome) + ignored == len(raw)


@settings(max_examples=25, deadline=None)
@given(st.lists(_item, min_size=1, max_size=6), st.integers(0, 200), st.integers(0, 200))
def test_a_few_bad_messages_anywhere_in_a_large_batch(bad: list, before: int, after: int) -> None:
    """Large runs of good events take the fast path; bad ones between them go their own way."""
    good = [(_dumps(_event(id=f"g{i}")), DECODED) for i in range(before + after)]
    items = good[:before] + bad + good[before:]
    outcome, ignored = _outcomes([value for value, _ in items])
    assert [outcome.get(row, IGNORED) for row in range(len(items))] == [e for _, e in items]
    assert len(outcome) + ignored == len(items)


def test_the_poison_pair_reported_in_issue_decodes() -> None:
    """One unparsable line and, later in the same batch, a numeric feature given as an object:
    the batch decodes (it used to fail to stack the features of the two parts)."""
    lines = []
    for n in range(34):
        event = {"model": "m", "id": n, "ts": 1_796_209_200_000 + n}
        event["features"] = {"x0": {"a": 1} if n == 20 else 0.1, "c": "a"}
        line = orjson.dumps(event | {"prediction": 0.5})
        if n == 0:
            line = line.replace(b'"prediction":0.5}', b'"prediction": Infinity}')
        lines.append(line)
    outcome, ignored = _outcomes(lines)
    assert outcome[0] == "non_finite" and ignored == 0
    assert all(outcome[n] == DECODED for n in range(1, 34))
    frame = _decoder().decode(Messages(lines, "t", 0, np.arange(34))).frames["m"]
    assert frame.filter(pl.col("_row") == 20)["err:x0"].to_list() == [True]
    assert frame.filter(pl.col("_row") == 21)["num:x0"].to_list() == [0.1]


def test_a_too_large_message_keeps_a_bounded_prefix_its_size_and_hash() -> None:
    huge = _dumps(_event(features={"x0": "z" * 100_000}))
    batch = _decoder().decode(Messages([huge], "t", 0, np.arange(1)))
    (letter,) = batch.dead_letters
    assert letter.reason == "too_large" and letter.raw == huge[:KEPT_PREFIX]
    assert f"message of {len(huge)} bytes" in letter.detail and "sha256" in letter.detail


def _fastest_decode_seconds(batches: list[list[bytes]], repeat: int = 7) -> list[float]:
    """The fastest of ``repeat`` CPU times of decoding each batch, the batches taken in
    turn so that a busy machine slows them alike."""
    decoder = _decoder()
    times: list[list[float]] = [[] for _ in batches]
    for _ in range(repeat):
        for raw, spent in zip(batches, times, strict=True):
            began = time.process_time()
            decoder.decode(Messages(raw, "t", 0, np.arange(len(raw), dtype=np.int64)))
            spent.append(time.process_time() - began)
    return [min(spent) for spent in times]


def test_decoding_cost_does_not_depend_on_how_many_model_names_a_batch_holds() -> None:
    n = 20_000
    one = [_dumps(_event(model="stranger", id=i)) for i in range(n)]
    many = [_dumps(_event(model=f"stranger-{i}", id=i)) for i in range(n)]
    one_seconds, many_seconds = _fastest_decode_seconds([one, many])
    ratio = many_seconds / one_seconds
    assert ratio < 2.0, f"20,000 model names decode {ratio:.1f}x slower than one"


def _frames(batch_frames: dict[str, pl.DataFrame]) -> dict[str, list[tuple]]:
    return {name: frame.sort("_row").rows() for name, frame in batch_frames.items()}


def test_booleans_in_number_fields_decode_as_message_by_message() -> None:
    """Polars' column decoder would read ``true`` into a number field as 1.0: a batch
    holding booleans must come out as the exact path (orjson, one message at a time)
    decodes it."""
    lines = [_dumps(_event(id=f"p{n}")) for n in range(40)]
    lines[3] = _dumps(_event(id="p3", prediction=True))
    lines[7] = _dumps(_event(id="p7", features={"x0": False, "income": 1.0, "c": "a"}))
    lines[9] = _dumps(_event(id="p9", features={"x0": 0.2, "income": 1.0, "c": "true"}))
    messages = Messages(lines, "t", 0, np.arange(len(lines), dtype=np.int64))
    fast = _decoder().decode(messages)
    exact = _decoder()._decode(messages, exact=True)
    assert _frames(fast.frames) == _frames(exact.frames)
    assert [(d.reason, d.origin.offset) for d in fast.dead_letters] == [
        (d.reason, d.origin.offset) for d in exact.dead_letters
    ]
    assert 3 not in fast.frames["m"]["_row"].to_list()


def test_the_column_decoder_reads_what_the_ndjson_reader_reads() -> None:
    """Without booleans, a batch is read as a column of messages; it must give the frame
    polars' NDJSON reader gives for the same lines."""
    rng = np.random.default_rng(7)
    lines = [
        _dumps(
            _event(
                id=f"p{n}",
                ts=1_796_209_200_000 + n,
                features={"x0": float(rng.normal()), "income": int(rng.integers(9)), "c": "b"},
                prediction=float(rng.random()),
            )
        )
        for n in range(500)
    ]
    messages = Messages(lines, "t", 0, np.arange(len(lines), dtype=np.int64))
    frame = _decoder().decode(messages).frames["m"]
    read = pl.read_ndjson(b"\n".join(lines))
    features = read["features"].struct.unnest()
    assert frame["_row"].to_list() == list(range(500))
    assert frame["id"].to_list() == read["id"].to_list()
    assert frame["ts"].to_list() == read["ts"].to_list()
    assert frame["prediction"].to_list() == read["prediction"].to_list()
    assert frame["num:x0"].to_list() == features["x0"].to_list()
    assert frame["num:income"].to_list() == features["income"].cast(pl.Float64).to_list()
    assert frame["cat:c"].to_list() == features["c"].to_list()
