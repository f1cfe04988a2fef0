"""Shadow pairs: a challenger's and the champion's predictions of the same request id.

A pair is made once, when the later of its two predictions is stored in the join
(``label_join``, found by id through each version's id index, so with the join's ttl:
a prediction that expired pairs no more); it counts towards how often the versions agree.
It counts towards the paired test once both predictions have their label, when the
second of them is joined. Pairs are summarized per pane of the challenger (its windows
read them) and stored with the label summaries (``label_panes``, under the challenger's
lane key with ``PAIRS_SUFFIX``), written in the same transaction as the join rows, so a
restart neither loses a pair nor counts one twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl
from sqlalchemy import Connection

from driftwarden.detectors.pairing import PairedClassificationSummary, PairedRegressionSummary
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.storage.lanes import PAIRS_SUFFIX

PairedSummary = PairedClassificationSummary | PairedRegressionSummary


@dataclass(frozen=True)
class PairSummary:
    """The pairs of some panes: how many, how alike, and the labelled ones' paired table
    (classifiers) or loss differences (regressors)."""

    n: int
    same: int
    """Pairs predicting the same class (classifiers; 0 for regressors)."""
    gap: float
    """Sum of the absolute differences of the two predictions (regressors; 0 otherwise)."""
    labelled: PairedSummary

    @classmethod
    def empty(cls, task: str) -> PairSummary:
        """The summary of no pairs of a model of ``task``."""
        if task == "regression":
            return cls(0, 0, 0.0, PairedRegressionSummary.empty())
        return cls(0, 0, 0.0, PairedClassificationSummary.empty())

    def merge(self, other: PairSummary) -> PairSummary:
        """The summary of both sets of pairs."""
        labelled = self.labelled.merge(other.labelled)  # type: ignore[arg-type]
        return PairSummary(self.n + other.n, self.same + other.same, self.gap + other.gap, labelled)

    def agreement(self, spread: float | None) -> tuple[str, float | None]:
        """The agreement metric and its value: the share of pairs predicting the same class,
        or (regressors) the mean prediction gap in units of the champion's reference
        prediction spread (``None`` without pairs or spread)."""
        if isinstance(self.labelled, PairedRegressionSummary):
            if not self.n or not spread:
                return "relative_disagreement", None
            return "relative_disagreement", self.gap / self.n / spread
        return "agreement", self.same / self.n if self.n else None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "n": self.n,
                "same": self.same,
                "gap": self.gap,
                "regression": isinstance(self.labelled, PairedRegressionSummary),
                "labelled": self.labelled.to_state(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PairSummary:
        state = orjson.loads(data)
        kind = PairedRegressionSummary if state["regression"] else PairedClassificationSummary
        labelled = kind.from_state(state["labelled"])
        return cls(int(state["n"]), int(state["same"]), float(state["gap"]), labelled)


class ShadowPairs:
    """The pair summaries of one challenger against the champion, per challenger pane."""

    def __init__(self, store: JoinStore, key: str, task: str, decision_threshold: float) -> None:
        self.store = store
        self.key = key + PAIRS_SUFFIX
        self.task = task
        self.decision_threshold = decision_threshold
        self._panes: dict[int, PairSummary] = {}
        self._dirty: set[int] = set()

    def add_predictions(self, pairs: pl.DataFrame, connection: Connection) -> None:
        """Count new pairs (columns ``pane``, ``champion``, ``challenger``: the predictions
        as stored, text)."""
        for (pane,), rows in pairs.partition_by("pane", as_dict=True).items():
            old, new = rows["champion"], rows["challenger"]
            if self.task == "regression":
                gap = float(np.abs(_numbers(new) - _numbers(old)).sum())
                delta = PairSummary(rows.height, 0, gap, PairedRegressionSummary.empty())
            else:
                same = int((self._classes(old) == self._classes(new)).sum())
                delta = PairSummary(rows.height, same, 0.0, PairedClassificationSummary.empty())
            self._add(connection, int(pane), delta)

    def add_labelled(self, pairs: pl.DataFrame, connection: Connection) -> None:
        """Count pairs whose two predictions now both have the label (columns ``pane``,
        ``champion``, ``challenger``, ``label``)."""
        for (pane,), rows in pairs.partition_by("pane", as_dict=True).items():
            old, new, label = rows["champion"], rows["challenger"], rows["label"]
            labelled: PairedSummary
            if self.task == "regression":
                y, p0, p1 = _numbers(label), _numbers(old), _numbers(new)
                labelled = PairedRegressionSummary.from_arrays(
                    champion_loss=np.abs(y - p0),
                    challenger_loss=np.abs(y - p1),
                    champion_prediction=p0,
                    challenger_prediction=p1,
                )
            else:
                truth = (
                    _numbers(label) >= 0.5
                    if self.task == "binary_classification"
                    else label.to_numpy()
                )
                labelled = PairedClassificationSummary.from_arrays(
                    truth, self._classes(old), self._classes(new)
                )
            self._add(connection, int(pane), PairSummary(0, 0, 0.0, labelled))

    def _classes(self, predictions: pl.Series) -> np.ndarray:
        """The predicted classes: a binary classifier's score against its threshold."""
        if self.task == "binary_classification":
            return _numbers(predictions) >= self.decision_threshold
        return predictions.to_numpy()

    def _add(self, connection: Connection, pane: int, delta: PairSummary) -> None:
        self._load(connection, [pane])
        current = self._panes.get(pane)
        self._panes[pane] = delta if current is None else current.merge(delta)
        self._dirty.add(pane)

    def _load(self, connection: Connection, panes: list[int]) -> None:
        missing = [pane for pane in panes if pane not in self._panes]
        for pane, data in self.store.load_panes(connection, self.key, missing).items():
            self._panes[pane] = PairSummary.from_bytes(data)

    def window(self, connection: Connection, start: int, end: int) -> PairSummary:
        """The pairs of the challenger's panes with keys in ``[start, end)``."""
        for pane, data in self.store.load_range(connection, self.key, start, end).items():
            if pane not in self._panes:
                self._panes[pane] = PairSummary.from_bytes(data)
        total = PairSummary.empty(self.task)
        for pane, summary in self._panes.items():
            if start <= pane < end:
                total = total.merge(summary)
        return total

    def flush(self, connection: Connection) -> None:
        """Write the pair summaries changed since the last flush."""
        panes = {pane: self._panes[pane].to_bytes() for pane in self._dirty}
        self.store.save_panes(connection, self.key, panes)
        self._dirty.clear()

    def forget_before(self, horizon: int) -> None:
        """Drop cached panes before ``horizon`` (written already; read again if needed)."""
        for pane in [p for p in self._panes if p < horizon and p not in self._dirty]:
            del self._panes[pane]


def _numbers(column: pl.Series) -> np.ndarray:
    return column.cast(pl.Float64).to_numpy()
