"""What an alert keeps of the result that last moved it: the result record, as its rule judged it.

An alert's evidence is a ``ResultRecord`` whose ``threshold`` and ``direction``
are the rule's when the rule sets ``above`` or ``below`` (the detector's
otherwise). Notifications carry the record's fields but the model (the
notification names it), the status and the error bound: ``PAYLOAD_FIELDS``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from driftwarden.core.records import RESULT_FIELDS, TIME_FIELDS, ResultRecord
from driftwarden.core.times import format_optional

PAYLOAD_FIELDS = tuple(
    name for name in RESULT_FIELDS if name not in ("model", "status", "error_bound")
)
"""The record's fields in a notification's evidence."""


def judged(result: ResultRecord, threshold: float | None, direction: str) -> ResultRecord:
    """``result`` with the threshold and direction an alert rule judged it by."""
    return replace(result, threshold=threshold, direction=direction)


def payload(evidence: ResultRecord) -> dict[str, Any]:
    """The evidence as notifications carry it (RFC 3339 times)."""
    data = {name: getattr(evidence, name) for name in PAYLOAD_FIELDS}
    for name in TIME_FIELDS:
        data[name] = format_optional(data[name])
    return data


def to_state(evidence: ResultRecord) -> dict[str, Any]:
    """The evidence as the alert table stores it (times as epoch milliseconds)."""
    return {name: getattr(evidence, name) for name in RESULT_FIELDS}


def from_state(data: dict[str, Any], model: str) -> ResultRecord:
    """The evidence stored by ``to_state`` for an alert of ``model``. A field the record
    gained after the state was stored reads as ``None``."""
    return ResultRecord(**{name: data.get(name) for name in RESULT_FIELDS} | {"model": model})
