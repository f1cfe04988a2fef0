"""Shadow pairing of a model with split versions: each challenger's predictions of the
request ids the champion scored too (see ``monitor/labels/pairs.py``).

Pairs are made from what one lane just stored or joined, against the rows of the other
lanes stored before: taken after each lane's step, every pair is made exactly once.
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import Connection

from driftwarden.core.records import WindowInfo
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.labels.pairs import PairSummary, ShadowPairs
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.windowing import WindowBounds


class Shadow:
    """The pair summaries of every challenger of one model."""

    def __init__(self, join: LabelJoin, profile: Profile) -> None:
        self.store = join.store
        self.task = profile.task
        self.threshold = profile.outcomes.decision_threshold
        self.pairs: dict[str | None, ShadowPairs] = {}

    def watch(self, lane: ModelPipeline) -> None:
        """Keep the rows ``lane`` joins, to pair them."""
        if lane.labels is not None:
            lane.labels.fresh = []

    def pair(
        self,
        connection: Connection,
        version: str | None,
        lanes: dict[str | None, ModelPipeline],
        champion: str | None,
    ) -> None:
        """Pair what the lane of ``version`` just stored and joined with the other lanes."""
        lane = lanes[version]
        if lane.labels is None:
            return
        stored, lane.labels.waiting.inserted = lane.labels.waiting.inserted, None
        fresh = pl.concat(lane.labels.fresh) if lane.labels.fresh else None
        lane.labels.fresh = []
        if champion not in lanes:
            return
        others = (
            [(v, other) for v, other in lanes.items() if v != champion]
            if version == champion
            else [(version, lanes[champion])]
        )
        for challenger, other in others:
            assert other.labels is not None
            pairs = self._of(challenger, lanes[challenger].key)
            if stored is not None and stored.height:
                found = self._pairs(connection, other, stored, version == champion)
                pairs.add_predictions(found, connection)
            if fresh is not None and fresh.height:
                found = self._pairs(connection, other, fresh, version == champion)
                labelled = other.labels.store.labeled(
                    connection, other.labels.name, found["seq"].to_numpy()
                )
                pairs.add_labelled(found.filter(pl.Series(labelled)), connection)

    @staticmethod
    def _pairs(
        connection: Connection, other: ModelPipeline, rows: pl.DataFrame, mine_champion: bool
    ) -> pl.DataFrame:
        """``rows`` of one lane with the other lane's stored rows of their ids: ``pane``
        (the challenger's), ``champion``, ``challenger``, ``seq`` (the other lane's),
        and ``label`` when ``rows`` have it."""
        assert other.labels is not None
        label = ["label"] if "label" in rows.columns else []
        mine = rows.select("id", "pane", "prediction", *label)
        found = other.labels.waiting.find(connection, mine["id"].unique())
        theirs = found.select("id", "seq", pl.col("pane").alias("their_pane"), "prediction")
        joined = mine.join(theirs, on="id", suffix="_theirs")
        ours, other_prediction = pl.col("prediction"), pl.col("prediction_theirs")
        return joined.select(
            pl.col("their_pane" if mine_champion else "pane").alias("pane"),
            (ours if mine_champion else other_prediction).alias("champion"),
            (other_prediction if mine_champion else ours).alias("challenger"),
            "seq",
            *label,
        )

    def _of(self, challenger: str | None, key: str) -> ShadowPairs:
        pairs = self.pairs.get(challenger)
        if pairs is None:
            pairs = ShadowPairs(self.store, key, self.task, self.threshold)
            self.pairs[challenger] = pairs
        return pairs

    def window(
        self,
        connection: Connection,
        challenger: str | None,
        lane: ModelPipeline,
        window: WindowInfo,
    ) -> PairSummary | None:
        """The pairs of the challenger's ``window``; ``None`` when it has none (A/B)."""
        pairs = self._of(challenger, lane.key)
        low, high = lane.windows.key_range(WindowBounds(window.index, window.start, window.end))
        summary = pairs.window(connection, low, high)
        return summary if summary.n else None

    def flush(self, connection: Connection) -> None:
        for pairs in self.pairs.values():
            pairs.flush(connection)

    def forget_before(self, horizon: int) -> None:
        for pairs in self.pairs.values():
            pairs.forget_before(horizon)
