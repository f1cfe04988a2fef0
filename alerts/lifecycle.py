"""An alert's lifecycle: inactive → pending → firing → resolved, one window at a time.

``for: N`` counts consecutive windows in which the condition held. A result
for the window already seen last (a re-upsert, e.g. once more labels
arrived) replaces that window's verdict; a result for an older window
leaves the alert alone; a gap in window indices breaks the streak. A
pending alert whose condition stops holding simply disappears (nothing was
notified); a firing one becomes resolved and stays until its group has
been flushed (then it goes, or becomes pending if its condition holds
again meanwhile).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from driftwarden.alerts.rules import Observation
from driftwarden.core.records import ResultRecord

AlertStatus = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """The persisted state of one alert (times in epoch milliseconds).

    ``labels`` are the identity labels plus severity and the rule's labels as
    of the last evaluation. ``since`` is the start of the first window of the current run of
    active windows (what on-call reads as "since when"); ``resolved_at`` the
    end of the window that cleared it; ``stale`` whether the last window it
    saw was older than ``max_window_age`` (such windows never notify);
    ``last_seen_at`` the end of the last window seen (its detection, for
    concept-drift records), whether the condition held or not. ``streak``
    counts the consecutive windows in which the condition held up to the last
    one seen, ``quiet`` those in which it did not; ``prior_*`` are the same
    counts before the last window (a window judged again replaces its turn).
    """

    fingerprint: str
    rule: str
    model: str
    labels: Mapping[str, str]
    group_key: str
    state: AlertStatus
    streak: int
    prior_streak: int
    quiet: int
    prior_quiet: int
    last_window_index: int
    since: int
    fired_at: int | None
    resolved_at: int | None
    last_seen_at: int
    stale: bool
    evidence: ResultRecord
    updated_at: int


def advance(
    state: AlertState | None,
    observation: Observation,
    *,
    for_windows: int,
    keep_firing_for: int,
    labels: Mapping[str, str],
    group_key: str,
    stale: bool,
    now: int,
) -> AlertState | None:
    """The alert after ``observation``: ``None`` when there is no alert, ``state`` if unchanged.

    A firing alert whose condition clears stays firing for ``keep_firing_for`` more
    windows (hysteresis, as Prometheus's rule option of that name): a one-window flap
    neither resolves nor pages again.
    """
    evidence = observation.evidence
    window = evidence.window_index
    seen = evidence.detected_at or evidence.window_end
    if state is not None and window < state.last_window_index:
        return state
    if state is None or window > state.last_window_index + 1:
        prior, prior_quiet = 0, 0
    elif window == state.last_window_index:
        prior, prior_quiet = state.prior_streak, state.prior_quiet
    else:
        prior, prior_quiet = state.streak, state.quiet
    was = None if state is None else state.state
    if not observation.active:
        if state is None or was == "pending":
            return None
        quiet = prior_quiet + 1
        cleared = replace(
            state,
            labels=labels,
            group_key=group_key,
            streak=0,
            prior_streak=prior,
            quiet=quiet,
            prior_quiet=prior_quiet,
            last_window_index=window,
            last_seen_at=seen,
            stale=stale,
            updated_at=now,
        )
        if was == "firing" and quiet <= keep_firing_for:
            return cleared
        return replace(
            cleared,
            state="resolved",
            resolved_at=state.resolved_at if was == "resolved" else evidence.window_end,
            evidence=evidence,
        )
    streak = prior + 1
    firing = was == "firing" or streak >= for_windows
    if state is not None and was == "resolved" and not firing:
        # active again, not yet for long enough: the resolve is still to be announced
        return replace(
            state,
            labels=labels,
            group_key=group_key,
            streak=streak,
            prior_streak=prior,
            quiet=0,
            prior_quiet=prior_quiet,
            last_window_index=window,
            last_seen_at=seen,
            stale=stale,
            updated_at=now,
        )
    since, fired_at = evidence.window_start, (now if firing else None)
    if state is not None and (was == "firing" or (was == "pending" and prior > 0)):
        since = state.since
    if state is not None and was == "firing":
        fired_at = state.fired_at
    return AlertState(
        fingerprint=observation.fingerprint,
        rule=observation.rule,
        model=observation.model,
        labels=labels,
        group_key=group_key,
        state="firing" if firing else "pending",
        streak=streak,
        prior_streak=prior,
        quiet=0,
        prior_quiet=prior_quiet,
        last_window_index=window,
        since=since,
        fired_at=fired_at,
        resolved_at=None,
        last_seen_at=seen,
        stale=stale,
        evidence=evidence,
        updated_at=now,
    )


def resolve(state: AlertState, at: int, now: int) -> AlertState:
    """A firing alert resolved without a clearing window (``resolve_after``, rule removed)."""
    return replace(state, state="resolved", streak=0, resolved_at=at, updated_at=now)


def pending(state: AlertState) -> AlertState:
    """A resolved alert, its resolve announced, whose condition holds again: pending anew.

    Its new run started ``streak - 1`` windows before the last one it saw.
    """
    evidence = state.evidence
    length = evidence.window_end - evidence.window_start
    since = evidence.window_start - (state.streak - 1) * length
    return replace(state, state="pending", since=since, resolved_at=None, fired_at=None)
