"""Payload contracts: every body is checked against its channel's schema before it is queued.

A body that breaks its contract must become a failed delivery with an error
that names the field, never a request the receiver refuses or, worse,
misreads. ``validate`` checks a rendered body against the JSON Schema
(draft 2020-12) of its channel type: the committed ``retrain.v1`` and
``webhook.v1`` contracts, and the fixed shapes of Slack's, PagerDuty's and
Alertmanager's APIs (``MESSAGE_SCHEMA``, ``EVENT_SCHEMA``,
``ALERTS_SCHEMA`` in their channel modules). Numbers must be finite: JSON
has no NaN or infinity. The log channel sends nothing, so anything goes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from driftwarden.alerts.channels.alertmanager import ALERTS_SCHEMA
from driftwarden.alerts.channels.pagerduty import EVENT_SCHEMA
from driftwarden.alerts.channels.pagerduty import MAX_BYTES as PAGERDUTY_MAX_BYTES
from driftwarden.alerts.channels.slack import MESSAGE_SCHEMA
from driftwarden.alerts.channels.webhook import schema

CONTRACTS: Mapping[str, str | None] = {
    "slack": "slack",
    "pagerduty": "pagerduty",
    "webhook": "webhook.v1",
    "retrain": "retrain.v1",
    "alertmanager": "alertmanager",
    "log": None,
}
"""The contract each channel type's bodies follow (``None``: none, the body stays local)."""

_BUILT_IN: Mapping[str, dict[str, Any]] = {
    "slack": MESSAGE_SCHEMA,
    "pagerduty": EVENT_SCHEMA,
    "alertmanager": ALERTS_SCHEMA,
}
_MAX_BYTES: Mapping[str, int] = {"pagerduty": PAGERDUTY_MAX_BYTES - 1024}
"""Request size limits, less room for what is added when sending (the routing key)."""
_SHOWN = 80


def validate(channel_type: str, body: Any) -> str | None:
    """Why ``body`` breaks the contract of ``channel_type``, or ``None`` if it keeps it.

    Parameters
    ----------
    channel_type
        The channel's ``type`` (``slack``, ``pagerduty``, ``webhook``,
        ``retrain``, ``alertmanager``, ``log``).
    body
        The body as rendered (``Channel.render``), JSON data; for PagerDuty
        without the routing key, which is added when sending.

    Returns
    -------
    str or None
        One line naming the contract, the field as a JSON path and what is
        wrong with it, plus how many more problems there are; ``None`` for
        a valid body.

    Raises
    ------
    ValueError
        ``channel_type`` is not a channel type.

    Examples
    --------
    >>> validate("pagerduty", {"event_action": "resolve", "dedup_key": "driftwarden-1"}) is None
    True
    >>> validate("pagerduty", {"event_action": "resolve", "dedup_key": "k" * 300})
    'pagerduty: $.dedup_key: 300 characters, at most 255 allowed'
    >>> validate("pagerduty", {"event_action": "trigger", "dedup_key": "k"})
    "pagerduty: $: 'payload' is a required property"
    >>> validate("alertmanager", [{"labels": {"alertname": "x"}, "annotations": {"v": 0.5}}])
    "alertmanager: $[0].annotations.v: 0.5 is not of type 'string'"
    """
    if channel_type not in CONTRACTS:
        raise ValueError(f"unknown channel type {channel_type!r}")
    contract = CONTRACTS[channel_type]
    if contract is None:
        return None
    for path, value in _numbers(body, "$"):
        if not math.isfinite(value):
            return f"{contract}: {path}: {value} is not a JSON number"
    errors = list(_validator(contract).iter_errors(body))
    if errors:
        error = best_match(errors)
        more = len(errors) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        return f"{contract}: {error.json_path}: {_describe(error)}{suffix}"
    limit = _MAX_BYTES.get(channel_type)
    if limit is not None:
        size = len(json.dumps(body).encode())  # as the channel sends it
        if size > limit:
            return f"{contract}: $: {size} bytes, at most {limit} allowed"
    return None


@cache
def _validator(contract: str) -> Draft202012Validator:
    document = _BUILT_IN.get(contract) or schema(contract)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def _numbers(value: Any, path: str) -> Iterator[tuple[str, float]]:
    """Every float in ``value`` with its JSON path."""
    if isinstance(value, float):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]")


def _describe(error: ValidationError) -> str:
    """What is wrong, in a few words (never the whole of a long value)."""
    value, limit = error.instance, error.validator_value
    if error.validator in ("maxLength", "minLength") and isinstance(value, str):
        bound = "at most" if error.validator == "maxLength" else "at least"
        return f"{len(value)} characters, {bound} {limit} allowed"
    if error.validator in ("maxItems", "minItems") and isinstance(value, list):
        bound = "at most" if error.validator == "maxItems" else "at least"
        return f"{len(value)} items, {bound} {limit} allowed"
    if error.validator == "pattern" and isinstance(value, str):
        return f"{_short(value)} does not match {limit!r}"
    message = error.message
    return message if len(message) <= 2 * _SHOWN else message[: 2 * _SHOWN - 1] + "…"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
