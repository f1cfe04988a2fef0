"""What the evidence pages read: stored windows, their results, and alert incidents.

Every query is bounded by a model and a window range (the ``results`` unique key and the
``windows`` primary key both start with the model and the window index, so they are
index range scans), or by one incident. Raw events are never read.

A model with split versions stores each version's windows under the version's lane key
(``monitor/storage/lanes.py``) and its records under the model with the version: the
functions that take a ``model`` take such a key too, and read that version's records.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, case, func, select

from driftwarden.alerts.tables import alert_outbox, alert_states
from driftwarden.core.records import RESULT_FIELDS, RESULT_KEY, ResultRecord
from driftwarden.monitor.storage.lanes import lane_of
from driftwarden.monitor.storage.store import record_of
from driftwarden.monitor.storage.tables import ResultRow, WindowRow


@dataclass(frozen=True)
class WindowMeta:
    """A closed window without its summary."""

    model: str
    index: int
    start: int
    end: int
    n_events: int
    reference_id: str
    model_version: str | None


@dataclass(frozen=True)
class StoredWindow:
    """One closed window: its summary bytes and its result records."""

    meta: WindowMeta
    summary: bytes
    records: list[ResultRecord]


@dataclass(frozen=True)
class ModelHistory:
    """A model's windows (oldest first) and the records a model page draws over them: the
    performance and fairness records with a value and the concept-drift detections (the
    per-feature drift comes from ``drift_cells``)."""

    model: str
    windows: list[WindowMeta]
    records: list[ResultRecord]


@dataclass(frozen=True)
class FleetEntry:
    """A model as the fleet page shows it: its last window, that window's records and how
    many of its alerts fire."""

    model: str
    last: WindowMeta | None
    records: list[ResultRecord]
    firing: int
    version: str | None = None
    """The version shown, for a model with split versions (its champion)."""


@dataclass(frozen=True)
class Delivery:
    """One notification of an incident to one channel and its delivery state."""

    channel: str
    channel_type: str
    status: str
    severity: str
    rules: tuple[str, ...]
    state: str
    attempts: int
    created_at: int
    delivered_at: int | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class Incident:
    """An alert group's incident: its notifications, from the first to the last."""

    id: str
    model: str
    group_key: str
    deliveries: list[Delivery] = field(default_factory=list)
    evidence_end: int | None = None
    """While the incident is open: the end of the latest window its firing alerts judged
    (event time, where notification times are the daemon's clock)."""

    @property
    def started_at(self) -> int:
        return min(delivery.created_at for delivery in self.deliveries)

    @property
    def ended_at(self) -> int | None:
        """When the resolution was notified; ``None`` while the incident is open."""
        resolved = [d.created_at for d in self.deliveries if d.status == "resolved"]
        return max(resolved) if resolved else None

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(sorted({rule for delivery in self.deliveries for rule in delivery.rules}))

    @property
    def severity(self) -> str:
        return self.deliveries[0].severity


_WINDOW_COLUMNS = (
    WindowRow.model,
    WindowRow.window_index,
    WindowRow.window_start,
    WindowRow.window_end,
    WindowRow.n_events,
    WindowRow.reference_id,
    WindowRow.model_version,
)
_INCIDENT_KEY = re.compile(r"dw-(?P<id>[0-9a-f]{32})-")


def fleet(connection: Connection) -> list[FleetEntry]:
    """Every model with a stored window, with its last window and that window's records."""
    last = (
        select(WindowRow.model, func.max(WindowRow.window_index).label("last"))
        .group_by(WindowRow.model)
        .subquery()
    )
    rows = connection.execute(
        select(*_WINDOW_COLUMNS)
        .join(last, (WindowRow.model == last.c.model) & (WindowRow.window_index == last.c.last))
        .order_by(WindowRow.model)
    )
    firing = dict(
        connection.execute(
            select(alert_states.c.model, func.count())
            .where(alert_states.c.state == "firing")
            .group_by(alert_states.c.model)
        ).all()
    )
    lanes: dict[str, list[WindowMeta]] = defaultdict(list)
    for row in rows:
        meta = WindowMeta(*row)
        lanes[lane_of(meta.model, meta.model_version) or meta.model].append(meta)
    entries = []
    for model, metas in sorted(lanes.items()):
        version = None
        meta = metas[0]
        if len(metas) > 1 or meta.model != model:  # split versions: the champion's
            leading = champion(connection, model)
            chosen = [m for m in metas if m.model_version == leading]
            meta = chosen[0] if chosen else max(metas, key=lambda m: m.end)
            version = meta.model_version
        records = _results(connection, meta.model, ResultRow.window_index == meta.index)
        entries.append(FleetEntry(model, meta, records, firing.get(model, 0), version))
    return entries


def versions(connection: Connection, model: str) -> dict[str | None, str]:
    """The versions of a model with split versions that have stored windows, and the key
    each stores them under (empty for a model whose versions are not split)."""
    prefix = f"{model}#"
    rows = connection.execute(
        select(WindowRow.model, WindowRow.model_version)
        .where(func.substr(WindowRow.model, 1, len(prefix)) == prefix)
        .distinct()
    ).all()
    return {version: key for key, version in rows if lane_of(key, version) == model}


def champion(connection: Connection, model: str) -> str | None:
    """The champion of a model with split versions, as its latest comparison names it."""
    columns = ResultRow.__table__.c
    return connection.scalar(
        select(columns.champion_version)
        .where(columns.model == model, columns.kind == "version_comparison")
        .order_by(columns.window_index.desc())
        .limit(1)
    )


def history(connection: Connection, model: str, last: int = 500) -> ModelHistory:
    """The model's last ``last`` windows and their records."""
    rows = connection.execute(
        select(*_WINDOW_COLUMNS)
        .where(WindowRow.model == model)
        .order_by(WindowRow.window_index.desc())
        .limit(last)
    ).all()
    return _history(connection, model, [WindowMeta(*row) for row in reversed(rows)])


def window_range(
    connection: Connection,
    model: str,
    low: int,
    high: int,
    *,
    by_index: bool = False,
) -> ModelHistory:
    """The model's windows with an index in ``[low, high]`` (``by_index``) or overlapping
    the times ``[low, high)`` (epoch ms), and their records."""
    if by_index:
        where = (WindowRow.window_index >= low, WindowRow.window_index <= high)
    else:
        where = (WindowRow.window_start < high, WindowRow.window_end > low)
    rows = connection.execute(
        select(*_WINDOW_COLUMNS)
        .where(WindowRow.model == model, *where)
        .order_by(WindowRow.window_index)
    ).all()
    return _history(connection, model, [WindowMeta(*row) for row in rows])


def window(connection: Connection, model: str, index: int) -> StoredWindow | None:
    """One stored window with its summary and records; ``None`` when there is none."""
    row = connection.execute(
        select(*_WINDOW_COLUMNS, WindowRow.summary).where(
            WindowRow.model == model, WindowRow.window_index == index
        )
    ).first()
    if row is None:
        return None
    meta = WindowMeta(*row[:-1])
    return StoredWindow(
        meta, bytes(row[-1]), _results(connection, model, ResultRow.window_index == index)
    )


def summary_heads(
    connection: Connection, model: str, indices: list[int], size: int | None
) -> dict[int, bytes]:
    """The first ``size`` bytes of the summaries of the model's windows ``indices`` (all
    bytes with ``None``): enough for a summary's header without reading its arrays."""
    column = WindowRow.summary if size is None else func.substr(WindowRow.summary, 1, size)
    low, high = min(indices, default=0), max(indices, default=-1)
    rows = connection.execute(
        select(WindowRow.window_index, column).where(
            WindowRow.model == model,
            WindowRow.window_index >= low,
            WindowRow.window_index <= high,
        )
    )
    wanted = set(indices)
    return {index: bytes(head) for index, head in rows if index in wanted}


def last_window_by(connection: Connection, model: str, end: int) -> int | None:
    """The index of the model's last stored window that ended by ``end`` (epoch ms)."""
    return connection.scalar(
        select(func.max(WindowRow.window_index)).where(
            WindowRow.model == model, WindowRow.window_end <= end
        )
    )


def incidents(connection: Connection, model: str | None = None, last: int = 2000) -> list[Incident]:
    """Incidents with their notifications among the ``last`` notifications (of ``model``),
    newest first."""
    newest = select(alert_outbox.c.id).order_by(alert_outbox.c.id.desc()).limit(last)
    if model is not None:
        newest = newest.where(alert_outbox.c.model == model)
    query = (
        select(alert_outbox)
        .where(alert_outbox.c.id.in_(newest.scalar_subquery()))
        .order_by(alert_outbox.c.id)
    )
    found: dict[str, Incident] = {}
    for row in connection.execute(query).mappings():
        match = _INCIDENT_KEY.match(row["idempotency_key"])
        if match is None:
            continue
        incident = found.setdefault(
            match["id"], Incident(match["id"], row["model"], row["group_key"])
        )
        incident.deliveries.append(_delivery(row))
    return sorted(found.values(), key=lambda incident: incident.started_at, reverse=True)


def incident(connection: Connection, incident_id: str) -> Incident | None:
    """One incident with its notifications; ``None`` when no notification names it."""
    if not re.fullmatch(r"[0-9a-f]{32}", incident_id):
        return None
    rows = connection.execute(
        select(alert_outbox)
        .where(  # the key range "dw-<id>-" .. "dw-<id>." (an index range, unlike LIKE)
            alert_outbox.c.idempotency_key >= f"dw-{incident_id}-",
            alert_outbox.c.idempotency_key < f"dw-{incident_id}.",
        )
        .order_by(alert_outbox.c.id)
    ).mappings()
    found: Incident | None = None
    for row in rows:
        found = found or Incident(incident_id, row["model"], row["group_key"])
        found.deliveries.append(_delivery(row))
    if found is None or found.ended_at is not None:
        return found
    ends = [
        json.loads(text).get("window_end")
        for text in connection.scalars(
            select(alert_states.c.evidence).where(
                alert_states.c.group_key == found.group_key, alert_states.c.state == "firing"
            )
        )
    ]
    known = [end for end in ends if isinstance(end, int)]
    return replace(found, evidence_end=max(known)) if known else found


def drifting_windows(
    connection: Connection, model: str, since: int, until: int | None
) -> dict[int, list[ResultRecord]]:
    """The model's drifting records whose window ended in ``[since, until]``, per window."""
    columns = ResultRow.__table__.c
    query = select(ResultRow).where(
        columns.model == model, columns.drift.is_(True), columns.window_end >= since
    )
    if until is not None:
        query = query.where(columns.window_end <= until)
    found: dict[int, list[ResultRecord]] = defaultdict(list)
    for row in connection.execute(query.order_by(columns.window_index)).mappings():
        record = record_of(row)
        found[record.window_index].append(record)
    return dict(found)


_SUMMARY_KINDS = ("performance", "estimated_performance", "fairness")
_DRIFT_KINDS = ("data_drift", "prediction_drift")


IN_CHUNK = 500
"""Window indices per ``IN`` list: the index then seeks each (model, window, kind)."""


def _history(connection: Connection, model: str, windows: list[WindowMeta]) -> ModelHistory:
    """The records a model page draws for ``windows``, but the per-feature drift: looked up
    by window index and kind (a range of windows would read every drift record too)."""
    columns = ResultRow.__table__.c
    records: list[ResultRecord] = []
    for start in range(0, len(windows), IN_CHUNK):
        indices = [window.index for window in windows[start : start + IN_CHUNK]]
        drawn = (
            columns.window_index.in_(indices)
            & columns.kind.in_((*_SUMMARY_KINDS, "concept_drift"))
            & case(
                (columns.kind == "concept_drift", columns.drift.is_(True)),
                else_=columns.value.is_not(None),
            )
        )
        records += _results(connection, model, drawn)
    return ModelHistory(model, windows, records)


def drift_cells(
    connection: Connection, model: str, low: int, high: int
) -> list[tuple[int, str, float | None, bool]]:
    """Per window in ``[low, high]`` and feature (``prediction`` for the prediction) the
    drift statistic furthest toward its threshold, as statistic ÷ threshold (``None``: no
    value), and whether any detector decided drift. Aggregated in SQL: 500 windows of 100
    features hold 150,000 drift records."""
    columns = ResultRow.__table__.c
    ratio = case(
        (columns.value.is_(None) | columns.threshold.is_(None), None),
        (columns.direction == "above",
         case((columns.threshold > 0, columns.value / columns.threshold), else_=None)),
        (columns.value > 0, columns.threshold / columns.value),
        else_=None,
    )  # fmt: skip
    rows = connection.execute(
        select(
            columns.window_index,
            columns.feature,
            func.max(ratio),
            func.max(case((columns.drift.is_(True), 1), else_=0)),
        )
        .where(
            _owner(connection, model),
            columns.window_index >= low,
            columns.window_index <= high,
            columns.kind.in_(_DRIFT_KINDS),
        )
        .group_by(columns.window_index, columns.feature)
    ).all()
    return [(index, name or "prediction", value, bool(flag)) for index, name, value, flag in rows]


_RECORD_COLUMNS = tuple(
    func.nullif(ResultRow.__table__.c[name], "").label(name)
    if name in ("feature", "metric", "group_attribute")
    else ResultRow.__table__.c[name]
    for name in RESULT_FIELDS
)
"""The columns of a record in its fields' order (key text stored as "" read as None)."""


def _results(connection: Connection, model: str, where: Any) -> list[ResultRecord]:
    """The model's whole-model records (segments are not shown) that match ``where``, in
    key order."""
    columns = ResultRow.__table__.c
    query = (
        select(*_RECORD_COLUMNS)
        .where(_owner(connection, model), columns.segment == "", where)
        .order_by(*(columns[name] for name in RESULT_KEY))
    )
    return [ResultRecord(*row) for row in connection.execute(query).all()]


def _owner(connection: Connection, key: str) -> Any:
    """Which records belong to the windows stored under ``key``: the model's, or those of
    one version of a model with split versions."""
    columns = ResultRow.__table__.c
    if "#" in key:
        version = connection.scalar(
            select(WindowRow.model_version).where(WindowRow.model == key).limit(1)
        )
        model = lane_of(key, version)
        if model is not None:
            same = (
                columns.model_version.is_(None)
                if version is None
                else (columns.model_version == version)
            )
            return (columns.model == model) & same
    return columns.model == key


def _delivery(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        channel=row["channel"],
        channel_type=row["channel_type"],
        status=row["status"],
        severity=row["severity"],
        rules=tuple(row["rules"].split(",")) if row["rules"] else (),
        state=row["state"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
    )
