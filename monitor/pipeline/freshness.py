"""Silent models: a model that received events and then gets none for its ``silence``.

Without events no window closes and every gauge keeps its last value, so silence would look
healthy. A ``freshness`` record makes it a result like any other: when the model falls
silent, a record ``kind=freshness, detector=silence, metric=seconds_since_last_event`` with
``drift: true``; when events come back, the same record (same key) with ``drift: false``
and the length of the silence. ``detected_at`` is when each was noticed.

Time is the pipeline's. Live, events are heard when they arrive (the wall clock) and a
model is found silent when a check finds its last event too long ago. In a replay, events
are heard at their event times (their running maximum, as a watermark), so a gap longer
than the limit in a model's own events is a silence that began at the limit and ended with
the next event, and a model is also found silent when the others go on without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driftwarden.core.records import ResultRecord

KIND, DETECTOR, METRIC = "freshness", "silence", "seconds_since_last_event"


@dataclass(frozen=True)
class Silence:
    """A silence, recorded under window ``index``, since the last event (``since``)."""

    index: int
    since: int

    def to_state(self) -> dict[str, int]:
        """JSON data that :meth:`from_state` restores: a silence outlives a restart or a
        rolled-back batch, so the events that end it still record its end."""
        return {"index": self.index, "since": self.since}

    @classmethod
    def from_state(cls, state: dict[str, int] | None) -> Silence | None:
        """The silence of a checkpoint (``None``: the model was not silent)."""
        return None if state is None else cls(int(state["index"]), int(state["since"]))


@dataclass
class Freshness:
    """When a model last received events and the silence it is in, if any.

    ``after`` is the silence limit in milliseconds (``None``: never silent).
    """

    model: str
    after: int | None
    heard_at: int | None = None
    silence: Silence | None = None

    def age(self, now: int) -> float | None:
        """Seconds since the last event (``None`` before the first)."""
        return None if self.heard_at is None else max(now - self.heard_at, 0) / 1000

    def heard(
        self, times: np.ndarray, index_of: Callable[[int], int], reference_id: str
    ) -> list[ResultRecord]:
        """Events arrived at ``times`` (in arrival order); the records of the silences they
        end (and of those they reveal, in a replay's gaps), each under the index of the
        window of its last event (``index_of``).

        Time is the running maximum of the times heard, as a watermark is: an event older
        than one heard before neither ends nor opens a silence, so the records do not
        depend on how the events were batched.
        """
        records: list[ResultRecord] = []
        if self.heard_at is not None:
            times = np.concatenate(([self.heard_at], times))
        points = np.maximum.accumulate(times)
        steps = np.diff(points)
        if self.silence is not None:  # a known silence ends with the first later event
            later = np.flatnonzero(steps > 0)
            if later.size:
                back = int(points[later[0] + 1])
                records.append(self._record(self.silence, back, reference_id, False))
                self.silence = None
                steps[later[0]] = 0
        if self.after is not None:
            for gap in np.flatnonzero(steps > self.after):
                since, back = int(points[gap]), int(points[gap + 1])
                silence = Silence(index_of(since), since)
                records.append(self._record(silence, since + self.after, reference_id, True))
                records.append(self._record(silence, back, reference_id, False))
        self.heard_at = int(points[-1])
        return records

    def check(
        self, now: int, index_of: Callable[[int], int], reference_id: str
    ) -> ResultRecord | None:
        """The record of the silence that began by ``now`` (under the index of the window of
        the last event, ``index_of``); ``None`` if the model is not silent, or was known to
        be already."""
        if self.silence is not None or self.after is None or self.heard_at is None:
            return None
        if now - self.heard_at <= self.after:
            return None
        self.silence = Silence(index_of(self.heard_at), self.heard_at)
        return self._record(self.silence, now, reference_id, True)

    def _record(self, silence: Silence, at: int, reference_id: str, silent: bool) -> ResultRecord:
        """The freshness record of ``silence`` as noticed at ``at``."""
        assert self.after is not None
        return ResultRecord(
            model=self.model,
            model_version=None,
            reference_id=reference_id,
            window_start=silence.since,
            window_end=at,
            window_index=silence.index,
            kind=KIND,
            detector=DETECTOR,
            feature=None,
            metric=METRIC,
            group_attribute=None,
            value=max(at - silence.since, 0) / 1000,
            p_value=None,
            threshold=self.after / 1000,
            direction="above",
            drift=silent,
            status="ok",
            n_reference=None,
            n_window=0,
            n_labeled=None,
            detected_at=at,
        )
