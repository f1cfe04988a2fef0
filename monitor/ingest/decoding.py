"""Decoding and validating batches of prediction and label events.

A batch is decoded as a whole by polars against a schema built from the
configuration (the fast path). Rows that polars cannot decode, or whose
decoded values could hide a type error (a number coerced to a string, an
object turned into text), are decoded again one by one with orjson (the
exact path), which either repairs them into the same columns or turns them
into dead letters with the reason and the field. Well-formed input never
leaves the fast path.

Decoded events come out as one polars frame per model with these columns:
``_row`` (index of the message in the batch), ``id``, ``ts`` (epoch
milliseconds, UTC), ``model_version``, then for predictions ``prediction``,
``num:<feature>`` (Float64), ``cat:<feature>`` (String), ``err:<feature>``
(a type error made the value missing), ``att:<feature>`` (Float64, the
feature's attribution when the event carries one) and ``grp:<attribute>``;
for labels ``label`` and ``biz:<name>`` (Float64, the event's business value of each
configured name; names not configured are ignored).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import polars as pl

from driftwarden.core.records import NAME_LENGTH
from driftwarden.core.records import EventKind as Kind
from driftwarden.core.times import EARLIEST, LATEST, format_time, in_range, is_integral, parse_time
from driftwarden.monitor.config import Config, ModelConfig, Task
from driftwarden.monitor.ingest.messages import DecodedBatch, Messages

log = logging.getLogger("driftwarden.decoding")

KEPT_PREFIX = 4096
"""Bytes of a message over ``max_message_bytes`` that its dead letter keeps."""

_SMALLEST_SEGMENT = 16
_PARSED_TOGETHER = 5000
"""Messages ``str.json_decode`` reads at once: a large batch read in slices of this many
costs about a tenth less CPU than read whole (its working set stays in the caches)."""
_ATTRIBUTIONS = b'"attributions"'
_INTEGER = re.compile(r"-?\d+")
_LITERAL_PREFIX = r"^(-?[0-9]|true$|false$|null$|\{|\[)"


@dataclass(frozen=True)
class ModelSchema:
    """What one model's events must carry."""

    task: Task
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    business: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def frame_schema(self, kind: Kind) -> dict[str, pl.DataType]:
        """Column names and types of this model's decoded frames."""
        schema: dict[str, pl.DataType] = {
            "_row": pl.Int64(),
            "id": pl.String(),
            "ts": pl.Int64(),
            "model_version": pl.String(),
        }
        if kind == "label":
            schema["label"] = _value_type(self.task)
            schema.update({f"biz:{name}": pl.Float64() for name in self.business})
            return schema
        schema["prediction"] = _value_type(self.task)
        schema.update({f"num:{name}": pl.Float64() for name in self.numeric})
        schema.update({f"cat:{name}": pl.String() for name in self.categorical})
        schema.update({f"err:{name}": pl.Boolean() for name in self.features})
        schema.update({f"att:{name}": pl.Float64() for name in self.features})
        schema.update({f"grp:{name}": pl.String() for name in self.groups})
        return schema


def _value_type(task: Task) -> pl.DataType:
    return pl.String() if task == "multiclass_classification" else pl.Float64()


class Rejected(Exception):
    """Raised by the exact path: the message is a dead letter for ``reason``."""

    def __init__(self, reason: str, detail: str, model: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.model = model


class EventDecoder:
    """Decodes batches of one kind of event for a set of configured models.

    Parameters
    ----------
    models
        The configured models by name.
    kind
        ``"prediction"`` or ``"label"``.
    max_message_bytes
        Larger messages are dead letters (``too_large``).
    unknown_models
        ``"ignore"`` counts events of unconfigured models, ``"dead_letter"``
        keeps them as dead letters.
    """

    def __init__(
        self,
        models: Mapping[str, ModelSchema],
        kind: Kind,
        *,
        max_message_bytes: int = 1_048_576,
        unknown_models: Literal["ignore", "dead_letter"] = "ignore",
    ) -> None:
        self.models = dict(models)
        self.kind = kind
        self.max_message_bytes = max_message_bytes
        self.unknown_models = unknown_models
        self._schemas = {
            attributions: _ReadSchemas(
                self._read_schema(typed=True, attributions=attributions),
                self._read_schema(typed=False, attributions=attributions),
            )
            for attributions in (False, True)
        }

    def decode(self, messages: Messages) -> DecodedBatch:
        """Decode one batch: every message becomes exactly one of a decoded event, a dead
        letter or an ignored event. Never raises: should the fast path fail on input it
        did not foresee, the batch is decoded again message by message (and logged).
        Holds no state between batches: several threads may decode at once."""
        try:
            return self._decode(messages)
        except Exception:
            log.exception(
                "batch decoding failed; decoding it message by message",
                extra={"event": "decode_fallback", "source": messages.source},
            )
            return self._decode(messages, exact=True)

    def _decode(self, messages: Messages, *, exact: bool = False) -> DecodedBatch:
        batch = DecodedBatch(messages, {})
        if messages.values and self.kind == "prediction":
            self._discover_features(messages.values[0], batch)
        fast_rows, exact_rows, column = self._screen(messages, batch)
        # Reading attributions costs a third of the decoding: only batches that mention them do.
        schemas = self._schemas[bool(column.bin.contains(_ATTRIBUTIONS).any())]
        if exact:
            fast_rows, exact_rows = [], sorted(fast_rows + exact_rows)
        parts: list[pl.DataFrame] = []
        whole = column if len(fast_rows) == len(messages.values) else None
        _read_segment(messages.values, fast_rows, schemas, parts, exact_rows, whole)
        frame = _concat(messages.values, parts, schemas.loose)
        rows: list[dict[str, Any]] = []
        if frame is not None and frame.height:
            frame, suspicious = self._normalize(frame)
            exact_rows.extend(suspicious)
        for row in sorted(exact_rows):
            try:
                rows.append(self._decode_exact(messages.values[row], row, batch))
            except Rejected as rejected:
                batch.dead_letter(row, rejected.reason, rejected.detail, rejected.model, self.kind)
        self._split_by_model(frame, rows, batch)
        batch.dead_letters.sort(
            key=lambda letter: (letter.origin.partition or 0, letter.origin.offset)
        )
        return batch

    # -- screening and the fast path -------------------------------------------------------

    def _screen(
        self, messages: Messages, batch: DecodedBatch
    ) -> tuple[list[int], list[int], pl.Series]:
        """Split rows into those polars may read and those only the exact path can; also
        return the messages as a polars column, which the fast path reads.

        Polars reads a message only if it is one line that starts with ``{`` and
        ends with ``}``; the checks run on the column, without copying the messages.
        """
        values = messages.values
        column = pl.Series(values, dtype=pl.Binary)
        if not values:
            return [], [], column
        checks = column.to_frame("value").select(
            (
                pl.col("value").bin.starts_with(b"{")
                & pl.col("value").bin.ends_with(b"}")
                & ~pl.col("value").bin.contains(b"\n")
            ).alias("fast"),
            pl.col("value").bin.size().alias("size"),
        )
        fast = checks["fast"].to_numpy()
        too_large = checks["size"].to_numpy() > self.max_message_bytes
        for row in np.flatnonzero(too_large):
            value = values[row]
            batch.dead_letter(
                int(row),
                "too_large",
                f"message of {len(value)} bytes exceeds the limit of {self.max_message_bytes} "
                f"bytes; its first {KEPT_PREFIX} bytes are kept (sha256 "
                f"{hashlib.sha256(value).hexdigest()})",
                None,
                self.kind,
                raw=value[:KEPT_PREFIX],
            )
        fast &= ~too_large
        return np.flatnonzero(fast).tolist(), np.flatnonzero(~fast & ~too_large).tolist(), column

    def _read_schema(self, typed: bool, attributions: bool) -> dict[str, pl.DataType]:
        """The polars schema of raw events; loose types everything as strings. Without
        ``attributions`` that field is not read (its columns come out null)."""
        schema: dict[str, pl.DataType] = {
            "model": pl.String(),
            "id": pl.String(),
            "ts": pl.String(),
            "model_version": pl.String(),
        }
        if self.kind == "label":
            schema["label"] = pl.String()
            business = sorted({name for m in self.models.values() for name in m.business})
            if business:
                value_type = pl.Float64() if typed else pl.String()
                schema["business"] = pl.Struct({name: value_type for name in business})
            return schema
        numeric_values = all(m.task != "multiclass_classification" for m in self.models.values())
        schema["prediction"] = pl.Float64() if numeric_values else pl.String()
        numeric = {name for m in self.models.values() for name in m.numeric}
        categorical = {name for m in self.models.values() for name in m.categorical}
        features = {
            name: pl.Float64() if typed and name not in categorical else pl.String()
            for name in sorted(numeric | categorical)
        }
        groups = sorted({name for m in self.models.values() for name in m.groups})
        schema["features"] = pl.Struct(features)
        if attributions:
            attribution_type = pl.Float64() if typed else pl.String()
            schema["attributions"] = pl.Struct(
                {name: attribution_type for name in sorted(numeric | categorical)}
            )
        if groups:
            schema["groups"] = pl.Struct({name: pl.String() for name in groups})
        return schema

    def _normalize(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[int]]:
        """Parse timestamps; return the clean rows and the rows that need the exact path."""
        frame = frame.with_columns(_timestamp(pl.col("ts")).alias("ts"))
        suspicious = frame.select(self._suspicious(frame.schema)).to_series()
        if not suspicious.any():  # the usual batch: no copy of the frame
            return frame, []
        return frame.filter(~suspicious), frame.filter(suspicious)["_row"].to_list()

    def _suspicious(self, schema: pl.Schema) -> pl.Expr:
        """Rows whose decoded values may hide a wrong type or a missing required field."""
        value_name = "label" if self.kind == "label" else "prediction"
        identifier = pl.col("id")
        checks = [
            pl.col("model").is_null(),
            pl.col("model").str.contains(_LITERAL_PREFIX),
            identifier.is_null(),
            ~identifier.str.contains(r"^-?\d+$") & identifier.str.contains(_LITERAL_PREFIX),
            pl.col("ts").is_null(),
            pl.col(value_name).is_null(),
        ]
        if self.kind == "prediction":
            checks.append(pl.col("features").is_null())
        for column in ("features", "groups", "attributions", "business"):
            if column not in schema:
                continue
            for name, dtype in schema[column].to_schema().items():
                if dtype == pl.String():
                    field = pl.col(column).struct.field(name)
                    checks.append(field.str.starts_with("{") | field.str.starts_with("["))
        return pl.any_horizontal([check.fill_null(False) for check in checks])

    # -- per-model frames ------------------------------------------------------------------

    def _split_by_model(
        self, frame: pl.DataFrame | None, rows: list[dict[str, Any]], batch: DecodedBatch
    ) -> None:
        """One frame per configured model, in one grouped pass whatever the number of names;
        events of other models are ignored or dead-lettered."""
        exact = _group_rows(rows)
        parts: dict[str, pl.DataFrame] = {}
        if frame is not None and frame.height:
            names = frame["model"]
            if names[0] in self.models and (names == names[0]).all(ignore_nulls=False):
                parts = {names[0]: frame}  # the usual batch, of one configured model: no copy
            else:
                parts = self._configured_parts(frame, exact, batch)
        others = sorted(name for name in exact if name not in self.models)
        if others:
            self._not_configured(others, exact, batch)
        for name in sorted(parts.keys() | (exact.keys() & self.models.keys())):
            part = parts.get(name)
            extra = exact.get(name, [])
            schema = self.models[name]
            pieces = []
            if part is not None and part.height:
                converted, bad = self._model_columns(part, schema)
                pieces.append(converted)
                for row in bad:
                    try:
                        extra.append(self._decode_exact(batch.messages.values[row], row, batch))
                    except Rejected as rejected:
                        batch.dead_letter(
                            row, rejected.reason, rejected.detail, rejected.model, self.kind
                        )
            if extra:
                pieces.append(pl.DataFrame(extra, schema=schema.frame_schema(self.kind)))
            frame_of_model = pl.concat(pieces).sort("_row") if pieces else None
            if frame_of_model is not None and frame_of_model.height:
                batch.frames[name] = frame_of_model

    def _configured_parts(
        self, frame: pl.DataFrame, exact: dict[str, list[dict[str, Any]]], batch: DecodedBatch
    ) -> dict[str, pl.DataFrame]:
        """The rows of each configured model; rows of other models join ``exact`` (by name)
        or, when ignored, are only counted."""
        configured = frame["model"].is_in(list(self.models))
        others = frame.filter(~configured).select("model", "_row")
        if self.unknown_models == "ignore":
            too_long = others["model"].str.len_chars() > NAME_LENGTH
            if ignored := int((~too_long).sum()):
                batch.ignored["unknown_model"] += ignored
            others = others.filter(too_long)
        for name, row in others.iter_rows():
            exact.setdefault(name, []).append({"_row": row})
        by_model = frame.filter(configured).partition_by("model", as_dict=True)
        return {name: part for (name,), part in by_model.items()}

    def _not_configured(
        self, names: list[str], rows: dict[str, list[dict[str, Any]]], batch: DecodedBatch
    ) -> None:
        """Events of model names that are not configured: counted as ignored, or dead letters
        (a name too long to be any model's is always one)."""
        for name in names:
            found = [row["_row"] for row in rows[name]]
            if len(name) > NAME_LENGTH:
                detail = (
                    f"field 'model': {len(name)} characters, more than the {NAME_LENGTH} allowed"
                )
                for row in found:
                    batch.dead_letter(row, "too_long", detail, None, self.kind)
            elif self.unknown_models == "dead_letter":
                detail = f"model {name!r} is not configured"
                for row in found:
                    batch.dead_letter(row, "unknown_model", detail, name, self.kind)
            else:
                batch.ignored["unknown_model"] += len(found)

    def _model_columns(
        self, part: pl.DataFrame, schema: ModelSchema
    ) -> tuple[pl.DataFrame, list[int]]:
        """This model's frame columns from the raw read; rows with a bad value go back."""
        value_name = "label" if self.kind == "label" else "prediction"
        value, value_ok = _task_value(
            pl.col(value_name), part.schema[value_name], schema.task, self.kind
        )
        columns = [pl.col("_row", "id", "ts", "model_version"), value.alias(value_name)]
        malformed: list[pl.Expr] = []
        if self.kind == "prediction":
            features = pl.col("features").struct
            feature_types = part.schema["features"].to_schema()
            for feature in schema.numeric:
                number, error = _numeric(features.field(feature), feature_types[feature])
                columns += [number.alias(f"num:{feature}"), error.alias(f"err:{feature}")]
            for feature in schema.categorical:
                text = features.field(feature).cast(pl.String)
                columns += [text.alias(f"cat:{feature}"), pl.lit(False).alias(f"err:{feature}")]
            for group in schema.groups:
                columns.append(pl.col("groups").struct.field(group).alias(f"grp:{group}"))
            if "attributions" in part.schema:
                attributions = pl.col("attributions").struct
                attribution_types = part.schema["attributions"].to_schema()
                for feature in schema.features:
                    field = attributions.field(feature)
                    number, error = _numeric(field, attribution_types[feature])
                    columns.append(number.alias(f"att:{feature}"))
                    malformed.append(error)
            else:
                columns += [pl.lit(None, pl.Float64).alias(f"att:{f}") for f in schema.features]
        elif schema.business:
            business = pl.col("business").struct
            business_types = part.schema["business"].to_schema()
            for name in schema.business:
                number, error = _numeric(business.field(name), business_types[name])
                columns.append(number.alias(f"biz:{name}"))
                malformed.append(error)
        fits = (
            pl.col("ts").is_between(EARLIEST, LATEST)
            & (pl.col("id").str.len_chars() <= NAME_LENGTH)
            & (pl.col("model_version").str.len_chars() <= NAME_LENGTH).fill_null(True)
        )
        if schema.task == "multiclass_classification":
            fits = fits & (value.str.len_chars() <= NAME_LENGTH).fill_null(True)
        if malformed:  # a bad attribution or business value: a dead letter, on the exact path
            fits = fits & ~pl.any_horizontal(malformed)
        frame = part.select(*columns, (value_ok & fits).alias("_ok"))
        ok = frame["_ok"]
        frame = frame.select(list(schema.frame_schema(self.kind)))
        if ok.all():  # the usual part: no copy of the frame
            return frame, []
        return frame.filter(ok), frame.filter(~ok)["_row"].to_list()

    def _discover_features(self, value: bytes, batch: DecodedBatch) -> None:
        """Note features the first event of a batch carries that its model does not watch."""
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict) or not isinstance(event.get("features"), dict):
            return
        schema = self.models.get(event.get("model"))  # type: ignore[arg-type]
        if schema is not None:
            extra = set(event["features"]) - set(schema.features)
            if extra:
                batch.unconfigured_features.setdefault(event["model"], set()).update(extra)

    # -- the exact path --------------------------------------------------------------------

    def _decode_exact(self, raw: bytes, row: int, batch: DecodedBatch) -> dict[str, Any]:
        """Decode one message exactly, or raise ``Rejected`` with the reason and field."""
        event = _load_object(raw)
        model = event.get("model")
        if "model" not in event or model is None:
            raise Rejected("missing_field", "required field 'model' is missing")
        if not isinstance(model, str):
            raise Rejected("wrong_type", f"field 'model': expected a string, got {_show(model)}")
        _fits("model", model, None)
        schema = self.models.get(model)
        if schema is None:
            return {"model": model, "_row": row}
        record: dict[str, Any] = {"model": model, "_row": row}
        record["id"] = _event_id(event, model)
        record["ts"] = _event_time(event, model)
        version = event.get("model_version")
        record["model_version"] = (
            None if version is None else _fits("model_version", _text(version), model)
        )
        value_name = "label" if self.kind == "label" else "prediction"
        value = _exact_value(event, value_name, schema.task, model)
        record[value_name] = _fits(value_name, value, model) if isinstance(value, str) else value
        if self.kind == "prediction":
            features = _required(event, "features", model)
            if not isinstance(features, dict):
                raise Rejected(
                    "wrong_type",
                    f"field 'features': expected an object, got {_show(features)}",
                    model,
                )
            extra = set(features) - set(schema.features)
            if extra:
                batch.unconfigured_features.setdefault(model, set()).update(extra)
            for feature in schema.numeric:
                number, error = _exact_numeric(features.get(feature))
                record[f"num:{feature}"] = number
                record[f"err:{feature}"] = error
            for feature in schema.categorical:
                text, error = _exact_category(features.get(feature))
                record[f"cat:{feature}"] = text
                record[f"err:{feature}"] = error
            groups = event.get("groups")
            if groups is not None and not isinstance(groups, dict):
                raise Rejected(
                    "wrong_type", f"field 'groups': expected an object, got {_show(groups)}", model
                )
            for group in schema.groups:
                record[f"grp:{group}"] = _exact_category((groups or {}).get(group))[0]
            record.update(_exact_attributions(event.get("attributions"), schema.features, model))
        else:
            record.update(_exact_business(event.get("business"), schema.business, model))
        return record


@dataclass(frozen=True)
class _ReadSchemas:
    """The polars schemas a batch is read with: typed first, loose (text) where that fails."""

    typed: dict[str, pl.DataType]
    loose: dict[str, pl.DataType]


def _read_segment(
    values: list[bytes],
    rows: list[int],
    schemas: _ReadSchemas,
    parts: list[pl.DataFrame],
    exact: list[int],
    column: pl.Series | None = None,
) -> None:
    """Read ``rows`` with polars, halving the segment around messages it cannot read.

    ``column`` is the rows already as a polars column, when the caller has them.
    """
    if not rows:
        return
    segment = values if len(rows) == len(values) else [values[row] for row in rows]
    if column is None:
        column = pl.Series(segment, dtype=pl.Binary)
    for schema in (schemas.typed, schemas.loose):
        try:
            frame = _parse(segment, column, schema)
        except (pl.exceptions.PolarsError, ValueError):
            continue
        if frame.height == len(rows):
            parts.append(frame.with_columns(_row=pl.Series(rows, dtype=pl.Int64)))
            return
        break
    if len(rows) <= _SMALLEST_SEGMENT:
        exact.extend(rows)
        return
    middle = len(rows) // 2
    _read_segment(values, rows[:middle], schemas, parts, exact)
    _read_segment(values, rows[middle:], schemas, parts, exact)


def _concat(
    values: list[bytes], parts: list[pl.DataFrame], loose: dict[str, pl.DataType]
) -> pl.DataFrame | None:
    """The parts read by polars as one frame. When some segments could only be read
    with the ``loose`` schema, the others are read again with it too, from their bytes."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    is_loose = [all(part.schema[name] == dtype for name, dtype in loose.items()) for part in parts]
    if any(is_loose) and not all(is_loose):
        parts = [part if read_loose else _reread(values, part, loose)
                 for part, read_loose in zip(parts, is_loose, strict=True)]  # fmt: skip
    return pl.concat(parts)


def _reread(values: list[bytes], part: pl.DataFrame, loose: dict[str, pl.DataType]) -> pl.DataFrame:
    rows = part["_row"].to_list()
    segment = [values[row] for row in rows]
    frame = _parse(segment, pl.Series(segment, dtype=pl.Binary), loose)
    return frame.with_columns(_row=pl.Series(rows, dtype=pl.Int64))


def _group_rows(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row.pop("model"), []).append(row)
    return grouped


def _load_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_utf8", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            event = json.loads(text)
        except json.JSONDecodeError:
            raise Rejected("invalid_json", f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise Rejected("not_an_object", f"expected a JSON object, got {_show(event)}")
    return event


def _required(event: dict[str, Any], name: str, model: str) -> Any:
    value = event.get(name)
    if value is None:
        raise Rejected("missing_field", f"required field {name!r} is missing", model)
    return value


def _fits(name: str, text: str, model: str | None) -> str:
    """``text``, unless it is longer than the columns it is stored in allow."""
    if len(text) > NAME_LENGTH:
        raise Rejected(
            "too_long",
            f"field {name!r}: {len(text)} characters, more than the {NAME_LENGTH} allowed",
            model,
        )
    return text


def _event_id(event: dict[str, Any], model: str) -> str:
    value = _required(event, "id", model)
    if isinstance(value, str):
        return _fits("id", value, model)
    if is_integral(value):
        return str(int(value))
    raise Rejected(
        "wrong_type", f"field 'id': expected a string or an integer, got {_show(value)}", model
    )


def _event_time(event: dict[str, Any], model: str) -> int:
    value = _required(event, "ts", model)
    millis = parse_time(value)
    if millis is None:
        raise Rejected(
            "invalid_timestamp",
            f"field 'ts': expected an RFC 3339 time or epoch milliseconds, got {_show(value)}",
            model,
        )
    if not in_range(millis):
        raise Rejected(
            "invalid_timestamp",
            f"field 'ts': {_show(value)} is outside the supported range "
            f"{format_time(EARLIEST)} to {format_time(LATEST)}",
            model,
        )
    return millis


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BINARY_LABELS = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0}


def _exact_value(event: dict[str, Any], name: str, task: Task, model: str) -> Any:
    value = _required(event, name, model)
    if task == "multiclass_classification":
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Rejected(
                "wrong_type", f"field {name!r}: expected a class name, got {_show(value)}", model
            )
        return str(value)
    if task == "binary_classification" and name == "label":
        if isinstance(value, str | int | float) and _text(value) in _BINARY_LABELS:
            return _BINARY_LABELS[_text(value)]
        raise Rejected(
            "wrong_type", f"field 'label': expected 0, 1, true or false, got {_show(value)}", model
        )
    if name == "label" and isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(
            "wrong_type", f"field {name!r}: expected a number, got {_show(value)}", model
        )
    number = float(value)
    if not math.isfinite(number):
        raise Rejected(
            "non_finite", f"field {name!r}: expected a finite number, got {value}", model
        )
    if task == "binary_classification" and not 0.0 <= number <= 1.0:
        raise Rejected(
            "wrong_type",
            f"field {name!r}: expected a probability between 0 and 1, got {value}",
            model,
        )
    return number


def _exact_numeric(value: Any) -> tuple[float | None, bool]:
    """A numeric feature value and whether it was a type error (missing either way)."""
    if value is None:
        return None, False
    if isinstance(value, bool | dict | list):
        return None, True
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value):
            return None, True
        value = float(value)
    number = float(value)
    return (number, False) if math.isfinite(number) else (None, True)


def _exact_attributions(
    attributions: Any, features: tuple[str, ...], model: str
) -> dict[str, float | None]:
    """The ``att:<feature>`` columns of an event's optional ``attributions`` object; anything
    but an object of numbers (or nulls) is ``Rejected``."""
    if attributions is None:
        return {f"att:{feature}": None for feature in features}
    if not isinstance(attributions, dict):
        raise Rejected(
            "wrong_type",
            f"field 'attributions': expected an object, got {_show(attributions)}",
            model,
        )
    out: dict[str, float | None] = {}
    for feature in features:
        given = attributions.get(feature)
        number, error = _exact_numeric(given)
        if error:
            raise Rejected(
                "wrong_type",
                f"field 'attributions.{feature}': expected a finite number, got {_show(given)}",
                model,
            )
        out[f"att:{feature}"] = number
    return out


def _exact_business(business: Any, names: tuple[str, ...], model: str) -> dict[str, float | None]:
    """The ``biz:<name>`` columns of a label's optional ``business`` object (configured names
    only); anything but an object of finite numbers (or nulls) is ``Rejected``."""
    if business is None:
        return {f"biz:{name}": None for name in names}
    if not isinstance(business, dict):
        raise Rejected(
            "wrong_type", f"field 'business': expected an object, got {_show(business)}", model
        )
    out: dict[str, float | None] = {}
    for name in names:
        given = business.get(name)
        number, error = _exact_numeric(given)
        if error:
            reason = "non_finite" if isinstance(given, float) else "wrong_type"
            raise Rejected(
                reason,
                f"field 'business.{name}': expected a finite number, got {_show(given)}",
                model,
            )
        out[f"biz:{name}"] = number
    return out


def _exact_category(value: Any) -> tuple[str | None, bool]:
    """A categorical feature value and whether it was a type error (missing either way)."""
    if value is None:
        return None, False
    if isinstance(value, dict | list):
        return None, True
    if isinstance(value, float) and not math.isfinite(value):
        return None, True
    return _text(value), False


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_integral(value):
        return str(int(value))
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _show(value: Any) -> str:
    if value is None:
        return "null"
    kind = {dict: "an object", list: "an array", bool: "a boolean", str: "a string"}.get(
        type(value), "a number"
    )
    shown = repr(value) if kind == "a number" else orjson.dumps(value).decode()
    return f"{kind} {shown[:60]}"


def _parse(
    messages: list[bytes], column: pl.Series, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """One row per message (``column``: the same messages as a polars Binary column), read
    against ``schema``; raises on a message that does not fit it.

    Polars decodes a column of messages (``str.json_decode``) in about two thirds of the
    time it takes to read the same lines as NDJSON, but reads ``true`` into a number
    field as 1.0 where the NDJSON reader rejects it: input with a JSON boolean anywhere
    is read as NDJSON, so that a boolean number still goes to the exact path. (Polars
    looks for the booleans in a tenth of the time a search of the joined bytes takes, and
    without the GIL.)
    """
    if (column.bin.contains(b"true") | column.bin.contains(b"false")).any():
        return pl.read_ndjson(b"\n".join(messages), schema=schema)
    text, struct = column.cast(pl.String), pl.Struct(schema)
    slices = range(0, len(text), _PARSED_TOGETHER)
    decoded = [text.slice(start, _PARSED_TOGETHER).str.json_decode(struct) for start in slices]
    return (pl.concat(decoded) if decoded else text.str.json_decode(struct)).struct.unnest()


def _timestamp(ts: pl.Expr) -> pl.Expr:
    """Epoch milliseconds from RFC 3339 text or epoch-millisecond digits; null where unparsed."""
    with_offset = ts.str.to_datetime(
        format="%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="ms", time_zone="UTC", strict=False
    )
    naive = ts.str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f", time_unit="ms", strict=False)
    parsed = with_offset.dt.epoch("ms").fill_null(naive.dt.epoch("ms"))
    digits = ts.str.contains(r"^-?\d+$").fill_null(False)
    return pl.when(digits).then(ts.cast(pl.Int64, strict=False)).otherwise(parsed)


def _numeric(values: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """Finite numbers, and a flag where a present value was not a finite number."""
    if dtype == pl.Float64():
        return values, pl.lit(False)
    number = values.cast(pl.Float64, strict=False)
    finite = number.is_finite().fill_null(False)
    return pl.when(finite).then(number), values.is_not_null() & ~finite


_NUMBER_TEXT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _task_value(
    values: pl.Expr, dtype: pl.DataType, task: Task, kind: Kind
) -> tuple[pl.Expr, pl.Expr]:
    """The prediction or label as the task's type, and which rows converted cleanly.

    Rows not marked clean go to the exact path, which decides; this accepts only
    values the exact path accepts, with the same result.
    """
    if task == "multiclass_classification":
        text = values.cast(pl.String)
        ok = text.is_not_null() & ~text.str.contains(r"^(-?\d+\.|-?\d+[eE]|true$|false$|[\{\[])")
        return text, ok.fill_null(False)
    if task == "binary_classification" and kind == "label":
        number = values.replace_strict(_BINARY_LABELS, default=None, return_dtype=pl.Float64)
        return number, number.is_not_null()
    number = values if dtype == pl.Float64() else values.cast(pl.Float64, strict=False)
    ok = number.is_finite().fill_null(False)
    if dtype == pl.String():
        ok = ok & values.str.contains(_NUMBER_TEXT).fill_null(False)
    if task == "binary_classification":
        ok = ok & (number >= 0.0).fill_null(False) & (number <= 1.0).fill_null(False)
    return number, ok


def model_schema(model: ModelConfig) -> ModelSchema:
    """What the events of ``model`` must carry."""
    return ModelSchema(
        task=model.task,
        numeric=tuple(model.features.numeric),
        categorical=tuple(model.features.categorical),
        groups=tuple(model.groups),
        business=model.business.names,
    )


def decoder(config: Config, kind: Kind) -> EventDecoder:
    """The event decoder of ``kind`` for every configured model."""
    return EventDecoder(
        {name: model_schema(model) for name, model in config.models.items()},
        kind,
        max_message_bytes=config.events.max_message_bytes,
        unknown_models=config.events.unknown_models,
    )
