"""A model spread over partitions: instances that each fold some partitions store the same
records as a replay of all events on one instance, and a window is evaluated once."""

from __future__ import annotations

import functools
import itertools
import tempfile
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.pipeline import HOUR, START

from driftwarden.alerts import AlertEngine
from driftwarden.core.records import RESULT_FIELDS, ResultRecord
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.labels.join import LabelJoin
from driftwarden.monitor.pipeline.building import build_pipeline, load_reference, window_sizes
from driftwarden.monitor.pipeline.model_pipeline import concept_detector
from driftwarden.monitor.pipeline.runner import BatchRunner, Cadence, SourceBatch
from driftwarden.monitor.pipeline.spread import LabelWatermark, Spread
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.storage.partials import Progress, write_progress
from driftwarden.monitor.windows import restore as restore_windows

PARTITIONS = 3
WINDOW = "{kind: time, size: 1h, allowed_lateness: 5m, idle_timeout: 10m}"
QUIET = "    silence_after: 1d\n"
PANE = 600_000


def _count_window(size: int) -> str:
    return f"{{kind: count, size: {size}, pane: 10m, allowed_lateness: 5m, idle_timeout: 10m}}"


def _config(
    reference: Path, url: str, more: str = "", *, spread: bool = True, window: str = WINDOW
) -> configuration.Config:
    text = synthetic.config_yaml(str(reference), url).replace(
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}",
        f"    window: {window}\n    spread: {str(spread).lower()}\n{more}",
    )
    return configuration.parse(text, environ={})


def _partition(ids: pl.Series) -> np.ndarray:
    """Each event's partition: its id hashed, as a producer keying by prediction id does."""
    return np.array([zlib.crc32(i.encode()) % PARTITIONS for i in ids.to_list()])


@dataclass
class _Timeline:
    """Predictions and labels in arrival order, each with its partition."""

    kinds: list[str]
    lines: list[bytes]
    partitions: np.ndarray
    times: np.ndarray


def _timeline(
    events: pl.DataFrame, labels: pl.DataFrame, arrival: np.ndarray | None = None
) -> _Timeline:
    """Predictions and labels in arrival order: event time, or for labels ``arrival``."""
    predictions = events.with_columns(
        pl.Series("_p", _partition(events["id"])), pl.lit("prediction").alias("_kind")
    )
    answers = labels.with_columns(
        pl.Series("_p", _partition(labels["id"])), pl.lit("label").alias("_kind")
    )
    lines = synthetic.prediction_lines(predictions) + synthetic.label_lines(
        answers.select(labels.columns)
    )
    arrived = answers["ts"].to_numpy() if arrival is None else arrival
    order = np.argsort(np.concatenate([predictions["ts"], arrived]), kind="stable")
    kinds = np.concatenate([predictions["_kind"], answers["_kind"]])[order]
    return _Timeline(
        kinds.tolist(),
        [lines[i] for i in order],
        np.concatenate([predictions["_p"], answers["_p"]])[order],
        np.concatenate([predictions["ts"], arrived])[order],
    )


class _Instance:
    """One daemon instance's batch path: its own connection, fed the partitions it owns."""

    def __init__(
        self, config, url: str, owned: set[int], clock, spread: Spread, stack: ExitStack
    ) -> None:
        engine = storage.create(url)
        stack.callback(engine.dispose)
        self.store = storage.Store(engine)
        helper = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        join = LabelJoin(JoinStore(engine.dialect.name), helper)
        pipeline = build_pipeline(
            config,
            self.store,
            resume=True,
            join=join,
            clock=clock,
            spread=spread,
        )
        alerts = AlertEngine(config.alerts, window_sizes(config), deliver=False)
        connection = stack.enter_context(engine.connect())
        self.runner = BatchRunner(config, pipeline, self.store, alerts, connection, Cadence(0, 0))
        self.owned = owned
        self.offsets: dict[tuple[str, int], int] = {}

    def feed(self, timeline: _Timeline, rows: np.ndarray, *, caught_up: bool = False) -> None:
        mine = rows[np.isin(timeline.partitions[rows], list(self.owned))]
        messages = {}
        positions = {}
        for kind, topic in (("prediction", "predictions"), ("label", "labels")):
            picked = [int(r) for r in mine if timeline.kinds[r] == kind]
            if not picked:
                continue
            partitions = timeline.partitions[picked]
            offsets = np.empty(len(picked), dtype=np.int64)
            for i, partition in enumerate(partitions.tolist()):
                offsets[i] = self.offsets.get((topic, partition), 0)
                self.offsets[(topic, partition)] = offsets[i] + 1
                positions[(topic, partition)] = int(offsets[i]) + 1
            lines = [timeline.lines[r] for r in picked]
            messages[kind] = Messages(lines, topic, None, offsets, partitions)
        owned = None
        if caught_up:
            owned = {(topic, p) for topic in ("predictions", "labels") for p in self.owned}
        self.runner.run(SourceBatch(messages, positions), caught_up=owned)


@contextmanager
def _fleet(
    config, url: str, owners: list[set[int]], clock, spread: Spread | None = None
) -> Iterator[list[_Instance]]:
    with ExitStack() as stack:
        engine = storage.create(url)
        storage.upgrade(engine)
        engine.dispose()
        spread = spread or Spread("predictions", PARTITIONS, "labels")
        yield [_Instance(config, url, owned, clock, spread, stack) for owned in owners]


def _stream(n: int = 6000) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Six hours of predictions and their labels; features and outcomes drift from the
    fourth hour on."""
    later = START + 3 * HOUR
    stream = synthetic.Stream(n=n, start=START, span=6 * HOUR, drift_from=later, concept_from=later)
    events = synthetic.events(stream)
    return events, synthetic.label_events(events, delay=(60_000, 1_200_000))


def _replayed(config, events, labels, tmp_path: Path) -> dict[tuple, ResultRecord]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    answers = tmp_path / "labels.jsonl"
    answers.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    outcome = replay(config, predictions, tmp_path / "replay", labels=answers)
    return outcome.results


def _comparable(records) -> dict[tuple, ResultRecord]:
    return {record.key: record for record in records}


def _assert_same(stored: dict[tuple, ResultRecord], expected: dict[tuple, ResultRecord]) -> None:
    """The same records; sums of floating-point summaries merged in another order may
    differ in their last bits."""
    assert sorted(stored) == sorted(expected)
    for key, record in expected.items():
        for name in RESULT_FIELDS:
            value, other = getattr(record, name), getattr(stored[key], name)
            if isinstance(value, float) and isinstance(other, float):
                assert other == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (key, name)
            else:
                assert other == value, (key, name)


def test_instances_sharing_a_spread_model_store_what_one_replay_does(
    reference_file: Path, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(reference_file, database_url)
    events, labels = _stream()
    stored = _shared(config, database_url, events, labels)
    store = storage.Store(storage.create(database_url))
    profile = load_reference(synthetic.MODEL, config.models[synthetic.MODEL], store)
    store.engine.dispose()
    expected = _replayed(config, events, labels, tmp_path)
    _assert_same(stored, expected)
    plain = _config(reference_file, database_url, spread=False)
    unspread = _replayed(plain, events, labels, tmp_path / "unspread")
    _assert_same(_without_concept(stored), _without_concept(unspread))
    assert not [r for r in caplog.records if getattr(r, "event", None) == "spread_behind"]
    windows = {r.window_index for r in expected.values() if r.kind == "data_drift"}
    assert windows == set(range(6))
    assert any(r.kind == "performance" for r in expected.values())
    documented = _detections_in_documented_order(config, profile.profile, events, labels)
    assert _detections(stored) == documented


def test_a_spread_model_feeds_risk_cusum_each_error_with_its_score(
    reference_file: Path, database_url: str, tmp_path: Path
) -> None:
    """Instances hand in each labelled prediction's score with its error; the closer's
    risk-adjusted detector finds what one replay's does, on the documented order."""
    config = _config(reference_file, database_url, "    concept_drift: {detector: risk_cusum}\n")
    events, labels = _stream()
    stored = _shared(config, database_url, events, labels)
    store = storage.Store(storage.create(database_url))
    profile = load_reference(synthetic.MODEL, config.models[synthetic.MODEL], store)
    store.engine.dispose()
    _assert_same(stored, _replayed(config, events, labels, tmp_path))
    documented = _detections_in_documented_order(config, profile.profile, events, labels)
    assert _detections(stored) == documented
    assert {r.detector for r in stored.values() if r.kind == "concept_drift"} == {"risk_cusum"}


def _shared(
    config,
    url: str,
    events,
    labels,
    owners: list[set[int]] | None = None,
    batches: int = 40,
) -> dict[tuple, ResultRecord]:
    """The records instances store (by default two, owning two and one of the three
    partitions), fed the events in arrival order in ``batches`` (then idle until every
    window closes)."""
    timeline = _timeline(events, labels)
    now = [START]
    with _fleet(config, url, owners or [{0, 1}, {2}], lambda: now[0]) as fleet:
        for rows in np.array_split(np.arange(len(timeline.lines)), batches):
            now[0] = int(timeline.times[rows].max()) + 1
            for instance in fleet:
                instance.feed(timeline, rows)
        now[0] += 2 * HOUR
        for instance in fleet + fleet:
            instance.feed(timeline, np.array([], dtype=np.int64), caught_up=True)
        return _comparable(fleet[0].store.results())


def test_a_spread_models_segments_are_those_one_replay_finds(
    reference_file: Path, database_url: str, tmp_path: Path
) -> None:
    """Each partition hands in every segment's share of its panes; the merged segment
    records, labels included, equal replay's."""
    segments = "    segments: {attributes: [region, sex], min_reference_rows: 200}\n"
    config = _config(reference_file, database_url, segments)
    events, labels = _stream()
    stored = _shared(config, database_url, events, labels)
    expected = _replayed(config, events, labels, tmp_path)
    _assert_same(stored, expected)
    plain = _config(reference_file, database_url, segments, spread=False)
    unspread = _replayed(plain, events, labels, tmp_path / "unspread")
    _assert_same(_without_concept(stored), _without_concept(unspread))
    segmented = [r for r in expected.values() if r.segment is not None]
    assert {"data_drift", "performance"} <= {r.kind for r in segmented}


def _without_concept(records: dict[tuple, ResultRecord]) -> dict[tuple, ResultRecord]:
    """The records but concept drift's (a model on one partition feeds its detector in
    label-arrival order, a spread one in the merged order)."""
    return {key: r for key, r in records.items() if r.kind != "concept_drift"}


def _detections(records: dict[tuple, ResultRecord]) -> list[tuple[int, int]]:
    """(position in the error stream, label time) of each concept-drift record."""
    found = [
        (int(r.metric.removeprefix("position_")), r.detected_at)
        for r in records.values()
        if r.kind == "concept_drift"
    ]
    return sorted(found)


def _detections_in_documented_order(config, profile, events, labels) -> list[tuple[int, int]]:
    """What the model's detector finds on the errors ordered as docs/scaling.md says:
    each labelled prediction's error (the prediction on the wrong side of the threshold)
    at the later of the two event times, hour panes in order, each pane's errors by (time,
    prediction id) and fed in one update."""
    model = config.models[synthetic.MODEL]
    ttl = int(model.labels.ttl.total_seconds() * 1000)
    pairs = labels.unique("id", keep="first", maintain_order=True).join(
        events.select("id", pl.col("ts").alias("pts"), "prediction"), on="id"
    )
    pairs = pairs.filter(pl.col("ts") <= pl.col("pts") + ttl)
    at = np.maximum(pairs["ts"].to_numpy(), pairs["pts"].to_numpy())
    threshold = profile.outcomes.decision_threshold
    wrong = (pairs["prediction"].to_numpy() >= threshold) != (pairs["label"].to_numpy() == 1)
    frame = pl.DataFrame(
        {
            "pane": at // HOUR,
            "at": at,
            "id": pairs["id"],
            "error": wrong.astype(float),
            "score": pairs["prediction"],
        }
    ).with_columns(pairs["ts"])
    frame = frame.sort("pane", "at", "id")
    detector = concept_detector(synthetic.MODEL, model, profile, None)
    read = ["error", "score"] if detector.reads == "scored" else "error"
    found, position = [], 0
    for (_,), rows in frame.partition_by("pane", as_dict=True, maintain_order=True).items():
        drifts = detector.update(rows[read].to_numpy()).drifts
        found += [(position + int(i), int(rows["ts"][int(i)])) for i in drifts]
        position += rows.height
    assert found, "the stream's concept drift is found"
    return found


def test_two_instances_closing_the_same_windows_at_once_evaluate_each_once(
    reference_file: Path, postgres_url: str
) -> None:
    """Two instances have handed in all their panes while a fourth partition, read by
    neither, held the windows back. When it turns idle, both check at the same moment:
    the model's row lock lets one close the windows; the other then finds them closed."""
    config = _config(reference_file, postgres_url)
    events, _ = _stream(3000)
    timeline = _timeline(events, synthetic.label_events(events).head(0))
    now = [START]
    spread = Spread("predictions", PARTITIONS + 1)
    with _fleet(config, postgres_url, [{0, 1}, {2}], lambda: now[0], spread) as fleet:
        for rows in np.array_split(np.arange(len(timeline.lines)), 10):
            now[0] = int(timeline.times[rows].max()) + 1
            for instance in fleet:
                instance.feed(timeline, rows)
        now[0] += 2 * HOUR
        for instance in fleet:
            instance.feed(timeline, np.array([], dtype=np.int64), caught_up=True)
        assert not list(fleet[0].store.results())
        with fleet[0].store.engine.begin() as connection:
            write_progress(connection, [Progress(synthetic.MODEL, PARTITIONS, None, True, None)])
        barrier = threading.Barrier(2)
        closed: list[list[int]] = [[], []]

        def close(i: int) -> None:
            barrier.wait()
            closed[i] = [window.index for window, _ in fleet[i].runner.checkpoint().closed]

        threads = [threading.Thread(target=close, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = list(fleet[0].store.results())
    assert sorted(closed[0] + closed[1]) == list(range(6))
    assert [] in closed
    assert {r.window_index for r in stored if r.kind == "data_drift"} == set(range(6))


def test_an_event_in_a_window_the_model_closed_while_its_partition_was_idle_is_a_dead_letter(
    reference_file: Path, database_url: str
) -> None:
    """Partition 2 has no event while the others pass three windows: it is idle, so they
    close. Its owner then reads events of the first window: too late for the model, each
    one a dead letter naming why, and the closed windows keep their records."""
    config = _config(reference_file, database_url)
    events, _ = _stream(3000)
    timeline = _timeline(events, synthetic.label_events(events).head(0))
    elsewhere = timeline.partitions != 2
    first_window = timeline.times < START + HOUR
    now = [START]
    with _fleet(config, database_url, [{0, 1}, {2}], lambda: now[0]) as fleet:
        before = np.flatnonzero(elsewhere & (timeline.times < START + 3 * HOUR))
        for rows in np.array_split(before, 6):
            now[0] = int(timeline.times[rows].max()) + 1
            fleet[0].feed(timeline, rows)
            fleet[1].feed(timeline, np.array([], dtype=np.int64), caught_up=True)
        fleet[0].feed(timeline, np.array([], dtype=np.int64))
        stored = _comparable(fleet[0].store.results())
        assert {key[1] for key in stored} == {0, 1}
        late = np.flatnonzero(~elsewhere & first_window)
        fleet[1].feed(timeline, late)
        letters = fleet[1].store.dead_letters(reason="too_late")
        after = _comparable(fleet[0].store.results())
    assert len(letters) == len(late)
    assert all("the model has closed" in stored.letter.detail for stored in letters)
    assert after == stored


def test_a_spread_model_is_silent_when_no_partition_hears_it_and_every_one_is_read(
    reference_file: Path, database_url: str
) -> None:
    """Two hours of events on every partition, then none for an hour: the model is found
    silent only once every partition is read to its end (a lagging one proves nothing),
    once, whichever instance checks; an event on any one partition ends the silence."""
    config = _config(reference_file, database_url, "    silence_after: 30m\n")
    events, _ = _stream(3000)
    timeline = _timeline(events, synthetic.label_events(events).head(0))
    nothing = np.array([], dtype=np.int64)
    now = [START]
    with _fleet(config, database_url, [{0, 1}, {2}], lambda: now[0]) as fleet:
        for rows in np.array_split(np.flatnonzero(timeline.times < START + 2 * HOUR), 4):
            now[0] = int(timeline.times[rows].max()) + 1
            for instance in fleet:
                instance.feed(timeline, rows)
        last_heard = now[0]
        now[0] += HOUR
        fleet[0].feed(timeline, nothing, caught_up=True)
        fleet[1].feed(timeline, nothing)
        assert not _silences(fleet[0].store)
        fleet[1].feed(timeline, nothing, caught_up=True)
        fleet[0].feed(timeline, nothing, caught_up=True)
        silent = _silences(fleet[0].store)
        found_at = now[0]
        now[0] += 10 * 60_000
        back = np.flatnonzero((timeline.times >= START + 2 * HOUR) & (timeline.partitions == 2))
        fleet[1].feed(timeline, back[:50])
        ended = _silences(fleet[0].store)
    assert [(r.drift, r.value, r.window_start, r.detected_at) for r in silent] == [
        (True, (found_at - last_heard) / 1000, last_heard, found_at)
    ]
    assert [(r.drift, r.value, r.window_start, r.detected_at) for r in ended] == [
        (False, (now[0] - last_heard) / 1000, last_heard, now[0])
    ]


def _silences(store: storage.Store) -> list[ResultRecord]:
    return [record for record in store.results() if record.kind == "freshness"]


def test_a_label_behind_its_partitions_label_watermark_gives_no_error_to_the_stream(
    reference_file: Path, database_url: str
) -> None:
    """Two labels arrive about three hours after labels of their time: one whose prediction
    is waiting, one whose prediction comes later (it waits as an orphan, and is still
    known to be late when its prediction arrives). Both count for performance; neither
    enters the concept-drift stream, which holds every other joined label's error."""
    config = _config(reference_file, database_url)
    events, labels = _stream(3000)
    labels = synthetic.label_events(events, early=0.0)
    waiting = events.filter(pl.col("ts") >= START + HOUR)["id"][0]
    coming = events.filter(pl.col("ts") >= START + 5 * HOUR)["id"][0]
    behind = pl.col("id").is_in([waiting, coming])
    labels = labels.with_columns(
        pl.when(behind).then(START + HOUR + 30 * 60_000).otherwise(pl.col("ts")).alias("ts")
    )
    arrival = np.where(labels.select(behind).to_series(), START + 4 * HOUR, labels["ts"])
    timeline = _timeline(events, labels, arrival)
    now = [START]
    with _fleet(config, database_url, [{0, 1, 2}], lambda: now[0]) as fleet:
        (instance,) = fleet
        for rows in np.array_split(np.arange(len(timeline.lines)), 30):
            now[0] = int(timeline.times[rows].max()) + 1
            instance.feed(timeline, rows)
        now[0] += 2 * HOUR
        instance.feed(timeline, np.array([], dtype=np.int64), caught_up=True)
        joined = _labelled(instance.store)
        state = instance.store.model_state(synthetic.MODEL)
    assert joined == labels.height
    _, extra = restore_windows(config.models[synthetic.MODEL].window, state.data)
    assert extra["concept"]["position"] == labels.height - 2


def _labelled(store: storage.Store) -> int:
    """Labels joined over every partition's part."""
    join = JoinStore(store.engine.dialect.name)
    with store.engine.connect() as connection:
        return sum(
            join.label_counts(connection, f"{synthetic.MODEL}@{p}")[1] for p in range(PARTITIONS)
        )


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(0, 10_000), min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 59), max_size=6),
    lateness=st.integers(0, 3_000),
)
def test_a_label_is_behind_by_the_labels_before_it_however_they_are_batched(
    times: list[int], cuts: list[int], lateness: int
) -> None:
    """A label is behind when its time is before the latest label time read before it on
    its partition, less the allowed lateness; batching does not change which."""
    expected = [t < max(times[:i]) - lateness if i else False for i, t in enumerate(times)]
    watermark = LabelWatermark()
    marked = []
    bounds = sorted({0, len(times), *[c for c in cuts if c < len(times)]})
    for low, high in itertools.pairwise(bounds):
        frame = pl.DataFrame({"ts": times[low:high]}, schema={"ts": pl.Int64})
        marked += watermark.mark(frame, lateness, now=high)["_late"].to_list()
    assert marked == expected
    assert watermark.until(lateness) == max(times) - lateness


@pytest.mark.parametrize("kind", ["time", "count"])
@settings(max_examples=4, deadline=None)
@given(owner=st.lists(st.integers(0, 2), min_size=PARTITIONS, max_size=PARTITIONS),
       batches=st.integers(3, 80))  # fmt: skip
def test_records_do_not_depend_on_which_instance_owns_which_partition_or_on_batching(
    reference_file: Path, kind: str, owner: list[int], batches: int
) -> None:
    """Any assignment of the three partitions to up to three instances, and any batching
    of the arrivals: the records (concept drift included) are replay's; with count
    windows, but for the last window, which only the end of the input closes. (The wall
    clock here jumps by a batch's span: a silence limit of a day keeps such jumps from
    being silences, which replay, on event time, would not see.)"""
    window = WINDOW if kind == "time" else _count_window(500)
    owners = [{p for p in range(PARTITIONS) if owner[p] == i} for i in sorted(set(owner))]
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/state.db"
        config = _config(reference_file, url, QUIET, window=window)
        events, labels = _small_stream()
        stored = _shared(config, url, events, labels, owners, batches)
    expected = _small_replay(reference_file, window)
    if kind == "count":
        last = max(r.window_index for r in expected.values())
        expected = {key: r for key, r in expected.items() if r.window_index < last}
    _assert_same(stored, expected)


@functools.cache
def _small_stream() -> tuple[pl.DataFrame, pl.DataFrame]:
    return _stream(2400)


@functools.cache
def _small_replay(reference: Path, window: str) -> dict[tuple, ResultRecord]:
    with tempfile.TemporaryDirectory() as directory:
        config = _config(reference, f"sqlite:///{directory}/replay.db", QUIET, window=window)
        return _replayed(config, *_small_stream(), Path(directory))


def _pane_count_cuts(events: pl.DataFrame, size: int) -> list[tuple[int, int, int]]:
    """(start, end, events) of each count window of whole ten-minute panes, from the event
    times alone: a window ends at the first pane end where the panes since the previous
    window hold ``size`` events; what is left is the last window, which only the end of
    the input closes."""
    panes = events.group_by(pl.col("ts") // PANE * PANE).len().sort("ts")
    cuts, start, held = [], None, 0
    for pane, count in panes.iter_rows():
        start = pane if start is None else start
        held += count
        if held >= size:
            cuts.append((start, pane + PANE, held))
            start, held = pane + PANE, 0
    if held:
        cuts.append((start, pane + PANE, held))
    return cuts


@pytest.mark.parametrize(
    ("size", "complete"),
    [
        # the stream's panes hold 500 events in three: windows of exactly ``size``
        (500, 12),
        # two-hour windows: the concept drift is found while its window is open
        (2000, 3),
    ],
)
def test_spread_count_windows_are_whole_panes_holding_size_events_as_one_replay_finds(
    reference_file: Path, database_url: str, tmp_path: Path, size: int, complete: int
) -> None:
    """A spread model's count windows are runs of whole panes, each cut where it first
    holds ``size`` events; instances that each read some partitions store what one replay
    does, but for a last, smaller window, which only the end of the input closes."""
    config = _config(reference_file, database_url, window=_count_window(size))
    events, labels = _stream()
    stored = _shared(config, database_url, events, labels)
    expected = _replayed(config, events, labels, tmp_path)
    cuts = _pane_count_cuts(events, size)
    assert sum(events >= size for _, _, events in cuts) == complete
    windows: dict[int, tuple[int, int, int]] = {}
    for record in expected.values():
        if record.kind == "data_drift":
            most = windows.get(record.window_index, (0, 0, 0))[2]
            windows[record.window_index] = (
                record.window_start,
                record.window_end,
                max(most, record.n_window or 0),
            )
    assert [windows[index] for index in sorted(windows)] == cuts
    assert any(r.kind == "performance" and r.window_index < complete for r in expected.values())
    assert any(r.kind == "concept_drift" for r in expected.values())
    _assert_same(stored, {key: r for key, r in expected.items() if r.window_index < complete})
