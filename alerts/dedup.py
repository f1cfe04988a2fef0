"""The dedup stage: whether a group flush tells a channel anything new.

Per group and channel the notification log keeps the incident (from the
first notification until every alert it announced has resolved), the
fingerprints announced as firing, how many notifications were sent and
when the last one was. A flush notifies when an alert fires that the
channel was not told about, when an announced alert resolved (if the
channel wants resolves), or when ``repeat_interval`` passed since the last
notification while alerts still fire — Alertmanager's rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, replace

from driftwarden.alerts.grouping import incident_id


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What a channel was told about a group's current incident."""

    group_key: str
    channel: str
    incident_id: str
    started_at: int
    notified: frozenset[str]
    seq: int
    last_sent_at: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one flush for one channel.

    When ``send``, notification number ``seq`` of incident ``incident_id``
    (which started at ``started_at``) lists the ``firing`` and ``resolved``
    fingerprints. ``entry`` is the log
    entry afterwards (None: the incident is over and the entry goes).
    """

    send: bool
    firing: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    entry: LogEntry | None = None
    incident_id: str = ""
    started_at: int = 0
    seq: int = 0


def decide(
    entry: LogEntry | None,
    *,
    group_key: str,
    channel: str,
    firing: dict[str, int],
    resolved: Iterable[str],
    gone: Set[str],
    send_resolved: bool,
    repeat_interval: int,
    now: int,
) -> Decision:
    """Decide one channel's flush of one group.

    ``firing`` maps the fingerprints the channel may be told are firing to
    the start of their streak; ``resolved`` lists resolved fingerprints it
    may be told about; ``gone`` is every fingerprint that no longer fires
    (resolved, muted-and-resolved, or no longer in the group).
    """
    notified = entry.notified if entry else frozenset()
    announced = tuple(sorted(fp for fp in resolved if fp in notified))
    new = firing.keys() - notified
    repeat = entry is not None and bool(firing) and now - entry.last_sent_at >= repeat_interval
    remaining = frozenset((notified | firing.keys()) - gone)
    if not (new or (send_resolved and announced) or repeat):
        kept = replace(entry, notified=remaining) if entry is not None and remaining else None
        return Decision(False, entry=kept)
    if entry is None:
        started = min(firing.values())
        entry = LogEntry(
            group_key, channel, incident_id(group_key, started), started, remaining, 0, 0
        )
    after = replace(entry, notified=remaining, seq=entry.seq + 1, last_sent_at=now)
    return Decision(
        True,
        firing=tuple(sorted(firing)),
        resolved=announced if send_resolved else (),
        entry=after if remaining else None,
        incident_id=entry.incident_id,
        started_at=entry.started_at,
        seq=after.seq,
    )
