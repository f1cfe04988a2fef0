"""Alert groups: alerts with equal values of the ``group_by`` labels share notifications."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence


def group_of(labels: Mapping[str, str], group_by: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The group key (32 hex characters) of ``labels`` and the group's own labels.

    A label an alert does not have groups as the empty string, as in Alertmanager.
    """
    selected = {name: labels.get(name, "") for name in group_by}
    text = json.dumps(sorted(selected.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32], selected


def incident_id(group_key: str, started_at: int) -> str:
    """The id of a group's incident that started at ``started_at`` (32 hex characters).

    Derived, not random: re-evaluating the same results after a crash yields
    the same id, hence the same idempotency keys.
    """
    return hashlib.sha256(f"{group_key}:{started_at}".encode()).hexdigest()[:32]
