"""Event decoding: every bad event is a dead letter with its reason; good ones are all kept."""

from __future__ import annotations

import math

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwarden.core.times import format_time, parse_time
from driftwarden.monitor.ingest.decoding import EventDecoder, ModelSchema
from driftwarden.monitor.ingest.messages import Messages

SCHEMA = ModelSchema("binary_classification", ("age", "income"), ("region",), ("sex",))


def decoder(**options: object) -> EventDecoder:
    return EventDecoder({"credit": SCHEMA}, "prediction", **options)


def event(**changes: object) -> dict:
    base = {
        "model": "credit",
        "model_version": "7",
        "id": "p-1",
        "ts": "2026-11-26T14:00:00.123Z",
        "features": {"age": 41, "income": 52000.0, "region": "west"},
        "prediction": 0.83,
        "groups": {"sex": "F"},
    }
    base.update(changes)
    return base


def encode(value: object) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


def decode(values: list[object], **options: object):
    raw = [encode(v) for v in values]
    return decoder(**options).decode(Messages(raw, "predictions", 3, np.arange(len(raw)) + 100))


def without(key: str) -> bytes:
    data = event()
    del data[key]
    return orjson.dumps(data)


BAD = [
    (b"not json at all", "invalid_json"),
    (b'{"model": "credit",', "invalid_json"),
    (b"", "invalid_json"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'"a string"', "not_an_object"),
    (without("model"), "missing_field"),
    (without("id"), "missing_field"),
    (without("ts"), "missing_field"),
    (without("features"), "missing_field"),
    (without("prediction"), "missing_field"),
    (event(model=5), "wrong_type"),
    (event(id=1.5), "wrong_type"),
    (event(id=True), "wrong_type"),
    (event(id={"a": 1}), "wrong_type"),
    (event(ts="yesterday"), "invalid_timestamp"),
    (event(ts=1.5), "invalid_timestamp"),
    (event(features=[1, 2]), "wrong_type"),
    (event(features="age=41"), "wrong_type"),
    (event(groups=["F"]), "wrong_type"),
    (event(prediction="0.8"), "wrong_type"),
    (event(prediction=True), "wrong_type"),
    (event(prediction=1.7), "wrong_type"),
    (b'{"model":"credit","id":"p","ts":0,"features":{},"prediction":NaN}', "non_finite"),
    (b'{"model":"credit","id":"p","ts":0,"features":{},"prediction":Infinity}', "non_finite"),
    (orjson.dumps(event()) + b" " * 600, "too_large"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD, ids=[reason for _, reason in BAD])
def test_each_bad_event_is_a_dead_letter_and_its_neighbours_are_kept(
    raw: bytes, reason: str
) -> None:
    batch = decode([event(id="before"), raw, event(id="after")], max_message_bytes=400)
    assert [d.reason for d in batch.dead_letters] == [reason]
    letter = batch.dead_letters[0]
    assert letter.raw == encode(raw)
    assert (letter.origin.source, letter.origin.partition, letter.origin.offset) == (
        "predictions",
        3,
        101,
    )
    assert letter.detail
    assert batch.frames["credit"]["id"].to_list() == ["before", "after"]


def test_integer_ids_and_epoch_millisecond_times_are_accepted() -> None:
    batch = decode([event(id=7, ts=1_795_701_600_123)])
    frame = batch.frames["credit"]
    assert frame["id"].to_list() == ["7"]
    assert frame["ts"].to_list() == [1_795_701_600_123]


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T14:00:00.123Z",
        "2026-11-26T15:00:00.123+01:00",
        "2026-11-26T14:00:00.123",
        "2026-11-26 14:00:00.123Z",
        "2026-11-26t14:00:00.123z",
    ],
)
def test_rfc3339_times_with_and_without_offsets(text: str) -> None:
    expected = 1_795_701_600_123
    assert parse_time(text) == expected
    assert decode([event(ts=text)]).frames["credit"]["ts"].to_list() == [expected]
    assert format_time(expected) == "2026-11-26T14:00:00.123Z"


def test_features_missing_wrong_type_booleans_and_extras() -> None:
    values = [
        event(features={"age": None, "income": "52000.5", "region": True, "colour": "red"}),
        event(features={"age": "old", "income": {"a": 1}, "region": ["x"]}),
        event(features={}),
        b'{"model":"credit","id":"n","ts":0,"features":{"age":NaN,"region":"west"},"prediction":0.5}',
    ]
    batch = decode(values)
    frame = batch.frames["credit"].sort("_row")
    assert batch.dead_letters == []
    assert frame["num:age"].to_list() == [None, None, None, None]
    assert frame["err:age"].to_list() == [False, True, False, True]
    assert frame["num:income"].to_list() == [52000.5, None, None, None]
    assert frame["err:income"].to_list() == [False, True, False, False]
    assert frame["cat:region"].to_list() == ["true", None, None, "west"]
    assert frame["err:region"].to_list() == [False, True, False, False]


def test_unknown_models_are_ignored_or_dead_lettered() -> None:
    ignored = decode([event(model="other"), event()])
    assert ignored.ignored["unknown_model"] == 1 and ignored.dead_letters == []
    kept = decode([event(model="other"), event()], unknown_models="dead_letter")
    assert [d.reason for d in kept.dead_letters] == ["unknown_model"]
    assert kept.frames["credit"].height == 1


def test_unconfigured_features_are_reported() -> None:
    batch = decode([event(features={"age": 1, "income": 2, "region": "x", "shoe_size": 44})])
    assert batch.unconfigured_features == {"credit": {"shoe_size"}}


def test_labels_decode_with_the_task_type() -> None:
    labels = EventDecoder({"credit": SCHEMA}, "label")
    raw = [
        orjson.dumps({"model": "credit", "id": "a", "ts": 0, "label": 1}),
        orjson.dumps({"model": "credit", "id": "b", "ts": 0, "label": False}),
        orjson.dumps({"model": "credit", "id": "c", "ts": 0, "label": "1"}),
        orjson.dumps({"model": "credit", "id": "d", "ts": 0, "label": 2}),
        orjson.dumps({"model": "credit", "id": "e", "ts": 0}),
    ]
    batch = labels.decode(Messages(raw, "labels", 0, np.arange(5)))
    assert batch.frames["credit"]["label"].to_list() == [1.0, 0.0, 1.0]
    assert [d.reason for d in batch.dead_letters] == ["wrong_type", "missing_field"]


_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0.5, 1.0, 7.0, -3.25, 1e-7, 123456.789]),
    st.sampled_from(["west", "41", "1.5e3", "", "true", "{x}", "[1]", "NaN"]),
    st.just({"nested": 1}),
    st.just([1, 2]),
)
_event = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["credit", "credit", "other", 5, None]),
        "id": st.one_of(st.text(max_size=5), st.integers(0, 99), st.just(1.5), st.just(True)),
        "ts": st.sampled_from([0, "2026-11-26T14:00:00Z", "2026-11-26T14:00:00", "bad", 1.5]),
        "features": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"age": _scalar, "income": _scalar, "region": _scalar}
            ),
            st.just([1]),
            st.none(),
        ),
        "prediction": st.one_of(st.floats(0, 1), st.just(2.0), st.just("0.5"), st.none()),
        "groups": st.one_of(st.just({"sex": "F"}), st.just({"sex": 1}), st.none()),
    }
)


def _comparable(batch) -> tuple:
    frames = {
        name: frame.drop("_row").with_columns(pl.col(pl.Float64).round(6)).rows()
        for name, frame in batch.frames.items()
    }
    return (
        frames,
        sorted((d.origin.offset, d.reason) for d in batch.dead_letters),
        dict(batch.ignored),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(_event, min_size=1, max_size=30))
def test_batch_decoding_equals_one_by_one_exact_decoding(events: list[dict]) -> None:
    raw = [orjson.dumps(e) for e in events]
    fast = decoder().decode(Messages(raw, "t", 0, np.arange(len(raw))))
    exact = decoder().decode(Messages([b" " + r for r in raw], "t", 0, np.arange(len(raw))))
    assert _comparable(fast) == _comparable(exact)
    assert fast.n_decoded + len(fast.dead_letters) + sum(fast.ignored.values()) == len(raw)


def test_parse_time_rejects_non_times() -> None:
    for value in (True, 1.5, "2026-11-26", "noon", None, [1]):
        assert parse_time(value) is None
    assert not math.isnan(parse_time("1970-01-01T00:00:00Z"))


BUSINESS = ModelSchema("regression", ("age",), business=("loss", "revenue"))
_label_event = st.fixed_dictionaries(
    {
        "model": st.just("credit"),
        "id": st.integers(0, 99),
        "ts": st.just(0),
        "label": st.sampled_from([1.5, 2.0]),
    },
    optional={
        "business": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {}, optional={"revenue": _scalar, "loss": _scalar, "other": _scalar}
            ),
            st.just([1]),
            st.just("12"),
            st.just(3),
        )
    },
)


def _business_outcome(event: dict) -> str | dict[str, float | None]:
    """The reason a label's business object is rejected, or its decoded values."""
    business = event.get("business")
    if business is None:
        return {"loss": None, "revenue": None}
    if not isinstance(business, dict):
        return "wrong_type"
    values: dict[str, float | None] = {}
    for name in ("loss", "revenue"):
        value = business.get(name)
        if value is None:
            values[name] = None
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            return "wrong_type"
        else:
            try:
                number = float(value)
            except ValueError:
                return "wrong_type"
            if not math.isfinite(number) or value in ("", "NaN"):
                return "wrong_type"
            values[name] = number
    return values


@settings(max_examples=80, deadline=None)
@given(st.lists(_label_event, min_size=1, max_size=30))
def test_business_values_of_labels_decode_fast_as_exactly_and_as_expected(
    events: list[dict],
) -> None:
    """The batch path and the message-by-message path agree, and each label is decoded
    with its configured business values (others ignored) or rejected with the reason."""
    labels = EventDecoder({"credit": BUSINESS}, "label")
    raw = [orjson.dumps(e) for e in events]
    fast = labels.decode(Messages(raw, "t", 0, np.arange(len(raw))))
    exact = EventDecoder({"credit": BUSINESS}, "label").decode(
        Messages([b" " + r for r in raw], "t", 0, np.arange(len(raw)))
    )
    assert _comparable(fast) == _comparable(exact)
    frame = fast.frames.get("credit")
    decoded = {} if frame is None else {row["_row"]: row for row in frame.iter_rows(named=True)}
    rejected = {d.origin.offset: d for d in fast.dead_letters}
    for row, e in enumerate(events):
        expected = _business_outcome(e)
        if isinstance(expected, str):
            assert rejected[row].reason == expected
            assert "business" in rejected[row].detail
        else:
            got = {name: decoded[row][f"biz:{name}"] for name in ("loss", "revenue")}
            assert got == pytest.approx(expected)


def test_a_non_finite_business_value_is_a_dead_letter_naming_the_field() -> None:
    labels = EventDecoder({"credit": BUSINESS}, "label")
    raw = [b'{"model":"credit","id":"a","ts":0,"label":1.0,"business":{"loss":Infinity}}']
    batch = labels.decode(Messages(raw, "t", 0, np.arange(1)))
    [letter] = batch.dead_letters
    assert (letter.reason, letter.kind) == ("non_finite", "label")
    assert "business.loss" in letter.detail
