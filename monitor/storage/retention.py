"""Retention: delete stored rows older than ``retention:`` allows, in small batches, on a schedule.

=============  ==============  ==================================================
kind           table           a row is pruned when
=============  ==============  ==================================================
results        results         its window ended more than ``results`` ago
windows        windows         its window ended more than ``windows`` ago
               label_panes     no stored window holds it any more: its key is
                               before the oldest window stored under its key
                               (that window's start, or its index for count
                               windows); for a model no longer configured, when
                               no window and no waiting prediction is left
dead_letters   dead_letters    it was kept more than ``dead_letters`` ago
notifications  alert_outbox    it was delivered (or failed for good) more than
                               ``notifications`` ago; pending ones never are
label_join     label_join,     it expired (``expires_at``) more than
               orphan_labels   ``label_join`` ago
               label_flags     its model has no row left in label_join
=============  ==============  ==================================================

The daemon expires label-join rows itself as their ``ttl`` passes (counting
predictions never labelled, dead-lettering orphan labels); retention only
removes what it left behind, e.g. the rows of a model no longer configured,
so the default grace (1 day after expiry) never races it.

Every batch deletes at most ``batch_size`` rows in its own short transaction
and then pauses, so the daemon's checkpoints interleave with it (SQLite has
one writer at a time) and wait at most one batch. A table that does not
exist (yet) is skipped. Ages are measured against an injected clock (epoch
milliseconds). ``driftwarden_pruned_rows_total{kind}`` counts deleted rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    delete,
    exists,
    func,
    inspect,
    or_,
    select,
    tuple_,
)

from driftwarden.alerts.tables import alert_outbox
from driftwarden.core.times import Clock, duration_ms, from_ms, wall_clock_ms
from driftwarden.monitor.config import RetentionConfig
from driftwarden.monitor.storage.lanes import PAIRS_SUFFIX, windows_of
from driftwarden.monitor.storage.tables import (
    DeadLetterRow,
    LabelFlagsRow,
    LabelJoinRow,
    LabelPaneRow,
    OrphanLabelRow,
    ResultRow,
    WindowRow,
)

log = logging.getLogger("driftwarden.retention")

KINDS = ("results", "windows", "dead_letters", "notifications", "label_join")


class Retention:
    """Prunes the daemon's database; ``prune_once()`` does one pass, ``run_due()`` does one
    when the clock says it is due, and ``stop()`` ends a running pass promptly.

    ``windows_by_index`` names the configured models, True for those with count windows
    not spread: their label summaries are keyed by window index, the others' by pane start
    (a spread model's count windows are whole panes).
    """

    def __init__(
        self,
        engine: Engine,
        config: RetentionConfig,
        registry: CollectorRegistry,
        clock: Clock = wall_clock_ms,
        *,
        first_run: timedelta = timedelta(minutes=1),
        windows_by_index: Mapping[str, bool] | None = None,
    ) -> None:
        self.engine = engine
        self.windows_by_index = dict(windows_by_index or {})
        self.config = config
        self.clock = clock
        self.first_run = first_run
        self.pruned = Counter(
            "driftwarden_pruned_rows",
            "Rows deleted by retention, by kind (results, windows, dead_letters, "
            "notifications, label_join).",
            ["kind"],
            registry=registry,
        )
        self.last_run = Gauge(
            "driftwarden_retention_last_success_timestamp_seconds",
            "When the last complete retention pass ended (0 before the first).",
            registry=registry,
        )
        for kind in KINDS:
            self.pruned.labels(kind)
        self._stop = threading.Event()
        self._next_run = clock() + duration_ms(first_run)

    # -- one pass -----------------------------------------------------------------------

    def prune_once(self) -> dict[str, int]:
        """Delete every row past its age, batch by batch; rows deleted per kind."""
        now = self.clock()
        tables = set(inspect(self.engine).get_table_names())
        deleted: dict[str, int] = {}
        for kind in KINDS:
            age: timedelta | None = getattr(self.config, kind)
            if age is None or self._stop.is_set():
                continue
            cutoff = now - duration_ms(age)
            targets = _targets(kind, cutoff)
            if kind == "windows" and LabelPaneRow.__tablename__ in tables:
                targets += self._label_pane_targets()
            for table, condition in targets:
                if table.name in tables and not self._stop.is_set():
                    count = self._prune(kind, table, condition)
                    deleted[kind] = deleted.get(kind, 0) + count
        if not self._stop.is_set():
            self.last_run.set(self.clock() / 1000)
        removed = {kind: count for kind, count in deleted.items() if count}
        if removed:
            log.info("retention pruned rows", extra={"event": "retention", "pruned": removed})
        return deleted

    def _prune(self, kind: str, table: Table, condition: ColumnElement[bool]) -> int:
        size = self.config.batch_size
        keys = list(table.primary_key.columns)
        if len(keys) == 1:
            batch = select(keys[0]).where(condition).limit(size).scalar_subquery()
            statement = delete(table).where(keys[0].in_(batch))
        else:
            batch = select(*keys).where(condition).limit(size)
            statement = delete(table).where(tuple_(*keys).in_(batch))
        pause = self.config.pause.total_seconds()
        total = 0
        while not self._stop.is_set():
            with self.engine.begin() as connection:
                count = connection.execute(statement).rowcount
            total += count
            self.pruned.labels(kind).inc(count)
            if count == 0 or self._stop.wait(pause):
                break
        return total

    def _label_pane_targets(self) -> list[tuple[Table, ColumnElement[bool]]]:
        """The label summaries no stored window holds any more, a condition per key."""
        panes, windows, joins = LabelPaneRow.__table__, WindowRow.__table__, LabelJoinRow.__table__
        with self.engine.connect() as connection:
            keys = connection.execute(select(panes.c.model).distinct()).scalars().all()
        targets: list[tuple[Table, ColumnElement[bool]]] = []
        for key in keys:
            owner, model = windows_of(key, self.windows_by_index)
            if model is None:
                gone = and_(
                    ~exists().where(windows.c.model == owner),
                    ~exists().where(joins.c.model == key.removesuffix(PAIRS_SUFFIX)),
                )
                targets.append((panes, and_(panes.c.model == key, gone)))
                continue
            by_index = self.windows_by_index[model]
            first_key = windows.c.window_index if by_index else windows.c.window_start
            oldest = select(func.min(first_key)).where(windows.c.model == owner)
            condition = and_(panes.c.model == key, panes.c.pane < oldest.scalar_subquery())
            targets.append((panes, condition))
        return targets

    # -- the schedule ---------------------------------------------------------------------

    def run_due(self) -> dict[str, int] | None:
        """Run a pass if one is due on the clock (the first ``first_run`` after creation,
        then every ``config.interval``); the rows deleted, or ``None`` when none was due.

        The daemon's housekeeping thread calls this every second; a failed pass is
        logged and tried again after the interval.
        """
        if not self.config.enabled or self.clock() < self._next_run:
            return None
        try:
            return self.prune_once()
        except Exception:
            log.exception("retention pass failed", extra={"event": "retention_failed"})
            return None
        finally:
            self._next_run = self.clock() + duration_ms(self.config.interval)

    def stop(self) -> None:
        """End a running pass between two batches."""
        self._stop.set()


def _targets(kind: str, cutoff: int) -> list[tuple[Table, ColumnElement[bool]]]:
    """The tables of ``kind`` and the condition of their prunable rows."""
    if kind == "results":
        c = ResultRow.__table__.c
        # window_start is indexed and never after window_end: it narrows the scan.
        return [(ResultRow.__table__, and_(c.window_start < cutoff, c.window_end < cutoff))]
    if kind == "windows":
        return [(WindowRow.__table__, WindowRow.__table__.c.window_end < cutoff)]
    if kind == "dead_letters":
        return [(DeadLetterRow.__table__, DeadLetterRow.__table__.c.created_at < from_ms(cutoff))]
    if kind == "notifications":
        c = alert_outbox.c
        delivered = and_(c.state == "delivered", c.delivered_at < cutoff)
        failed = and_(c.state == "failed", c.created_at < cutoff)
        return [(alert_outbox, or_(delivered, failed))]
    if kind == "label_join":
        return [
            (LabelJoinRow.__table__, LabelJoinRow.__table__.c.expires_at < cutoff),
            (OrphanLabelRow.__table__, OrphanLabelRow.__table__.c.expires_at < cutoff),
            (LabelFlagsRow.__table__, ~exists().where(LabelJoinRow.model == LabelFlagsRow.model)),
        ]
    raise ValueError(f"unknown retention kind {kind!r}")
