"""The alert engine: results in, alert state and outbox rows out, in the caller's transaction.

``evaluate``: rules judge results (``rules``), the lifecycle moves alerts
(``lifecycle``) and alerts join groups (``grouping``). ``tick``: every group
whose timer expired passes the notification pipeline of ``stages`` — route →
group → mute → dedup → outbox — and what is left is one notification per
channel in the outbox, rendered by the channel (``channels``). Delivery is the
dispatcher's job, after commit.

Time is passed in (``now``, epoch milliseconds): the daemon passes the wall
clock, ``replay`` event time. All state lives in the database, so a restart
neither re-fires nor forgets, and ``reload`` only swaps the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import Connection

from driftwarden.alerts import store
from driftwarden.alerts.channels import Channel, build_channels
from driftwarden.alerts.config import IDENTITY_LABELS, AlertsConfig
from driftwarden.alerts.dedup import LogEntry
from driftwarden.alerts.grouping import group_of
from driftwarden.alerts.lifecycle import AlertState, advance, pending, resolve
from driftwarden.alerts.mute import Inhibitor, Muter, Silencer
from driftwarden.alerts.rules import Observation, Rule, result_fields
from driftwarden.alerts.silences import active_silences
from driftwarden.alerts.stages import STAGES, Batch, Flush, QueuedNotification, close_incident
from driftwarden.alerts.tables import alert_states
from driftwarden.core.records import ResultRecord
from driftwarden.core.times import duration_ms

_log = logging.getLogger("driftwarden.alerts")


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert that changed state (``None``: no alert)."""

    fingerprint: str
    rule: str
    model: str
    subject: str
    before: str | None
    after: str | None
    stale: bool


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """What one ``evaluate`` or ``tick`` did, for logs and metrics."""

    transitions: tuple[Transition, ...] = ()
    notifications: tuple[QueuedNotification, ...] = ()
    stale_results: int = 0

    def merge(self, other: EvaluationReport) -> EvaluationReport:
        return EvaluationReport(
            self.transitions + other.transitions,
            self.notifications + other.notifications,
            self.stale_results + other.stale_results,
        )


class _Setup:
    """Everything derived from one configuration; swapped whole on reload."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config
        self.rules = {rule.name: Rule(rule) for rule in config.rules}
        self.channels: dict[str, Channel] = build_channels(config)
        self.group_wait = duration_ms(config.group_wait)
        self.group_interval = duration_ms(config.group_interval)
        self.repeat_interval = duration_ms(config.repeat_interval)


class AlertEngine:
    """Alert rules, lifecycle, grouping, muting and dedup over state kept in the database.

    Parameters
    ----------
    config
        The ``alerts`` section.
    window_sizes
        Each model's window size; a result is too old to notify when its
        window ended more than ``max_window_age`` (default 2 × the window
        size) before ``now``. Models not listed use their result's own
        window length (count windows).
    deliver
        False for ``replay``: notifications are written as ``held`` rows,
        which ``pending_notifications`` lists and no dispatcher ever claims,
        even on a database a daemon shares.
    pages_url
        Where the daemon's evidence pages are reached (``http.external_url``):
        notifications then link to their incident's and window's pages.
    split_versions
        Models whose versions are monitored separately: a result's version is then
        part of its alert's identity.
    """

    def __init__(
        self,
        config: AlertsConfig,
        window_sizes: Mapping[str, timedelta] | None = None,
        *,
        deliver: bool = True,
        pages_url: str | None = None,
        split_versions: Collection[str] = (),
    ) -> None:
        self.window_sizes = dict(window_sizes or {})
        self.split_versions = frozenset(split_versions)
        self.deliver = deliver
        self.pages_url = pages_url
        self._setup = _Setup(config)
        self._impacts: dict[str, tuple[int, dict[str, float]]] = {}

    @property
    def config(self) -> AlertsConfig:
        return self._setup.config

    def reload(self, config: AlertsConfig) -> dict[str, Channel]:
        """Swap rules, channels, templates and timers; alert state stays in the database.

        Returns the channels the new configuration dropped: ``reconcile`` tells them
        their incidents are over, and the dispatcher delivers that with them. Alerts of
        rules that no longer exist are resolved by the next ``tick``.
        """
        old, self._setup = self._setup, _Setup(config)
        return {name: c for name, c in old.channels.items() if name not in config.channels}

    def reconcile(
        self, now: int, connection: Connection, retired: Mapping[str, Channel] | None = None
    ) -> EvaluationReport:
        """Bring stored alerts in line with the configuration (at start, after a reload).

        Every open incident the configuration would no longer produce — one of its
        announced alerts now groups elsewhere or no longer routes to the channel, or the
        channel is gone — is resolved to its channel first (channels the configuration
        dropped are reached through ``retired``; without them their incidents are only
        closed). Then every alert takes the labels and group of the configuration, and
        firing ones wait ``group_wait`` in their new groups, which open new incidents.
        Nothing happens when the configuration groups and routes as before.
        """
        setup = self._setup
        alerts = {alert.fingerprint: alert for alert in store.alerts_where(connection)}
        channels = {**(retired or {}), **setup.channels}
        queued: list[QueuedNotification] = []
        for entry in store.open_incidents(connection):
            if self._produces(setup, entry, alerts):
                continue
            group = store.group(connection, entry.group_key)
            if entry.channel in channels and group is not None:
                flush = self._flush_context(setup, group, [], now, connection, channels)
                item = close_incident(flush, entry, alerts)
                queued += [item] if item else []
            store.delete_log(connection, entry.group_key, entry.channel)
        moved = []
        for alert in alerts.values():
            rule = setup.rules.get(alert.rule)
            if rule is None:
                continue
            labels = rule.labels({k: v for k, v in alert.labels.items() if k in IDENTITY_LABELS})
            key, group_labels = group_of(labels, setup.config.group_by)
            if (key, labels) == (alert.group_key, dict(alert.labels)):
                continue
            moved.append(replace(alert, labels=labels, group_key=key))
            if alert.state != "pending":
                store.ensure_group(
                    connection,
                    store.Group(key, group_labels, alert.model, now + setup.group_wait, now),
                )
        store.save_alerts(connection, moved)
        store.delete_empty_groups(connection)
        if queued or moved:
            _log.info(
                "alerts regrouped: %d incidents resolved, %d alerts moved",
                len(queued),
                len(moved),
                extra={"event": "alerts_regrouped", "resolved": len(queued), "moved": len(moved)},
            )
        return EvaluationReport((), tuple(queued), 0)

    @staticmethod
    def _produces(setup: _Setup, entry: LogEntry, alerts: Mapping[str, AlertState]) -> bool:
        """Whether the configuration groups and routes every alert the incident announced
        as it did."""
        if entry.channel not in setup.channels:
            return False
        for fingerprint in entry.notified:
            alert = alerts.get(fingerprint)
            if alert is None:
                continue
            rule = setup.rules.get(alert.rule)
            if rule is None:
                continue  # resolved by the next tick, through this incident
            labels = rule.labels({k: v for k, v in alert.labels.items() if k in IDENTITY_LABELS})
            key, _ = group_of(labels, setup.config.group_by)
            if key != entry.group_key or entry.channel not in rule.channels:
                return False
        return True

    def evaluate(
        self, results: Sequence[ResultRecord], now: int, connection: Connection
    ) -> EvaluationReport:
        """Judge ``results`` (of windows just closed or re-upserted), then run the timers.

        Results of windows that ended more than ``max_window_age`` before
        ``now`` move alert state but never notify. Nothing is committed: the
        caller's transaction holds the state changes and outbox rows.
        """
        self._note_impacts(results)
        setup, moment = self._setup, now
        observations = [
            observation
            for result in results
            for fields in (result_fields(result),)
            for rule in setup.rules.values()
            if (
                observation := rule.observe(
                    result, fields, versioned=result.model in self.split_versions
                )
            )
            is not None
        ]
        if not observations:
            return self.tick(now, connection)
        states = store.alerts_of_models(connection, {o.model for o in observations})
        changed: dict[str, AlertState] = {}
        removed: set[str] = set()
        groups: dict[str, store.Group] = {}
        transitions: list[Transition] = []
        stale_results = 0
        for observation in sorted(observations, key=lambda o: o.evidence.window_index):
            rule = setup.rules[observation.rule]
            labels = rule.labels(observation.identity)
            group_key, group_labels = group_of(labels, setup.config.group_by)
            stale = self._stale(setup, rule, observation, moment)
            stale_results += stale
            before = states.get(observation.fingerprint)
            after = advance(
                before,
                observation,
                for_windows=rule.config.for_windows,
                keep_firing_for=rule.config.keep_firing_for,
                labels=labels,
                group_key=group_key,
                stale=stale,
                now=moment,
            )
            if after is before:
                continue
            fingerprint = observation.fingerprint
            if after is None:
                states.pop(fingerprint, None)
                changed.pop(fingerprint, None)
                removed.add(fingerprint)
            else:
                states[fingerprint] = changed[fingerprint] = after
                removed.discard(fingerprint)
                if after.state != "pending":
                    groups[group_key] = store.Group(
                        group_key,
                        group_labels,
                        observation.model,
                        moment + setup.group_wait,
                        moment,
                    )
            old, new = (before.state if before else None), (after.state if after else None)
            if old != new:
                transitions.append(_transition(observation, old, new, stale))
        for key in sorted(groups):
            store.ensure_group(connection, groups[key])
        store.save_alerts(connection, changed.values())
        store.delete_alerts(connection, removed)
        for transition in transitions:
            _log_transition(transition)
        report = EvaluationReport(tuple(transitions), (), stale_results)
        return report.merge(self.tick(now, connection))

    def _note_impacts(self, results: Sequence[ResultRecord]) -> None:
        """Keep each model's latest drift-impact contributions by feature, which rank the
        alerts of its notifications (a restarted engine ranks without them until its
        next window closes)."""
        for result in results:
            if result.kind != "drift_impact":
                continue
            index, shares = self._impacts.get(result.model, (-1, {}))
            if result.window_index > index:
                index, shares = result.window_index, {}
                self._impacts[result.model] = (index, shares)
            if result.window_index == index and result.feature and result.value is not None:
                shares[result.feature] = result.value

    def tick(self, now: int, connection: Connection) -> EvaluationReport:
        """Resolve what timed out, then flush every group whose timer expired."""
        setup, moment = self._setup, now
        transitions = self._expire(setup, moment, connection)
        notifications: list[QueuedNotification] = []
        groups = store.due_groups(connection, moment)
        if groups:
            muters = self._muters(setup, moment, connection)
            for group in groups:
                notifications += self._flush(setup, group, muters, moment, connection)
        return EvaluationReport(tuple(transitions), tuple(notifications), 0)

    def advance_to(self, moment: int, connection: Connection) -> EvaluationReport:
        """Run the timers up to ``moment`` as a clock passing every instant would: each
        group is flushed at the time its timer expired (``replay``'s back-tests, on event
        time), then everything due at ``moment``."""
        report = EvaluationReport()
        while (due := store.next_due(connection)) is not None and due < moment:
            report = report.merge(self.tick(due, connection))
        return report.merge(self.tick(moment, connection))

    def _stale(self, setup: _Setup, rule: Rule, observation: Observation, now: int) -> bool:
        """Whether the observation's window is too old to notify.

        The age runs from the window's end, or from the detection for
        concept-drift records (``detected_at``); the limit is the rule's
        ``max_window_age``, else the section's, else 2 × the window size.
        """
        evidence = observation.evidence
        age = rule.config.max_window_age or setup.config.max_window_age
        if age is not None:
            limit = duration_ms(age)
        elif observation.model in self.window_sizes:
            limit = 2 * duration_ms(self.window_sizes[observation.model])
        else:
            limit = 2 * (evidence.window_end - evidence.window_start)
        return now - (evidence.detected_at or evidence.window_end) > limit

    def _expire(self, setup: _Setup, now: int, connection: Connection) -> list[Transition]:
        """Resolve alerts of removed rules (now) and firing alerts whose subject has not
        reported for ``resolve_after`` (as of that deadline)."""
        orphans = store.alerts_where(connection, alert_states.c.rule.not_in(list(setup.rules)))
        store.delete_alerts(connection, [a.fingerprint for a in orphans if a.state == "pending"])
        resolved = [resolve(alert, now, now) for alert in orphans if alert.state == "firing"]
        for alert in store.alerts_where(
            connection,
            alert_states.c.rule.in_(list(setup.rules)),
            alert_states.c.state == "firing",
        ):
            rule = setup.rules[alert.rule]
            deadline = alert.last_seen_at + self._resolve_after(setup, rule, alert)
            if deadline <= now:
                resolved.append(resolve(alert, deadline, now))
        store.save_alerts(connection, resolved)
        transitions = [
            Transition(
                a.fingerprint, a.rule, a.model, a.evidence.subject, "firing", "resolved", False
            )
            for a in resolved
        ]
        for transition in transitions:
            _log_transition(transition)
        return transitions

    def _resolve_after(self, setup: _Setup, rule: Rule, alert: AlertState) -> int:
        """How long a firing alert lasts without a result for its subject: the rule's
        ``resolve_after``; else 3 × the model's window size (or the last window's length),
        or ``max_window_age`` if longer, since results that old still count."""
        if rule.config.resolve_after is not None:
            return duration_ms(rule.config.resolve_after)
        if alert.model in self.window_sizes:
            windows = 3 * duration_ms(self.window_sizes[alert.model])
        else:
            windows = 3 * (alert.evidence.window_end - alert.evidence.window_start)
        age = rule.config.max_window_age or setup.config.max_window_age
        return max(windows, 0 if age is None else duration_ms(age))

    def _flush_context(
        self,
        setup: _Setup,
        group: store.Group,
        muters: Sequence[Muter],
        now: int,
        connection: Connection,
        channels: Mapping[str, Channel],
    ) -> Flush:
        """What a flush of ``group`` knows besides its alerts."""
        return Flush(
            config=setup.config,
            rules=setup.rules,
            channels=channels,
            repeat_interval=setup.repeat_interval,
            group=group,
            entries=store.log_entries(connection, group.group_key),
            muters=muters,
            connection=connection,
            now=now,
            deliver=self.deliver,
            pages_url=self.pages_url,
            impacts=self._impacts.get(group.model, (-1, {}))[1],
        )

    def _muters(self, setup: _Setup, now: int, connection: Connection) -> list[Muter]:
        muters: list[Muter] = [Silencer(active_silences(connection, now))]
        rules = setup.config.inhibit_rules
        if rules:
            firing = {a.fingerprint: a.labels for a in store.firing_alerts(connection)}
            muters.append(Inhibitor(rules, firing))
        return muters

    def _flush(
        self,
        setup: _Setup,
        due: store.Group,
        muters: Sequence[Muter],
        now: int,
        connection: Connection,
    ) -> list[QueuedNotification]:
        """One group's flush: its alerts through ``STAGES``, then its timer reset."""
        alerts = {
            alert.fingerprint: alert
            for alert in store.alerts_of_group(connection, due.group_key)
            if alert.state != "pending"
        }
        flush = self._flush_context(setup, due, muters, now, connection, setup.channels)
        batch = Batch(alerts)
        for stage in STAGES:
            batch = stage(flush, batch)
        resolved = [a for a in alerts.values() if a.state == "resolved"]
        store.delete_alerts(connection, [a.fingerprint for a in resolved if not a.streak])
        store.save_alerts(connection, [pending(a) for a in resolved if a.streak])
        told = any(decision.entry is not None for decision in batch.decisions.values())
        if told or any(alert.state == "firing" for alert in alerts.values()):
            store.schedule_group(connection, due.group_key, now + setup.group_interval)
        else:
            store.delete_group(connection, due.group_key)
        return list(batch.queued)


def _transition(
    observation: Observation, before: str | None, after: str | None, stale: bool
) -> Transition:
    evidence: ResultRecord = observation.evidence
    return Transition(
        observation.fingerprint,
        observation.rule,
        observation.model,
        evidence.subject,
        before,
        after,
        stale,
    )


def _log_transition(transition: Transition) -> None:
    _log.info(
        "alert %s %s %s: %s -> %s",
        transition.rule,
        transition.model,
        transition.subject,
        transition.before or "inactive",
        transition.after or "inactive",
        extra={
            "event": "alert_state",
            "rule": transition.rule,
            "model": transition.model,
            "subject": transition.subject,
            "fingerprint": transition.fingerprint,
            "from": transition.before or "inactive",
            "to": transition.after or "inactive",
            "stale": transition.stale,
        },
    )
