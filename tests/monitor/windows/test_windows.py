"""Windows: alignment, watermark and lateness, sliding panes, idle timeout, count windows."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.pipeline import HOUR, START, decode_frame, make_config

from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import Messages
from driftwarden.monitor.pipeline.model_pipeline import ModelPipeline
from driftwarden.monitor.pipeline.pipeline import Pipeline
from driftwarden.monitor.storage import Commit
from driftwarden.monitor.windows.profile import Profile, fit, read_reference
from driftwarden.monitor.windows.summary import WindowSummary, summarize


def events_at(times: list[int], seed: int = 3) -> pl.DataFrame:
    frame = synthetic.events(synthetic.Stream(n=len(times), start=0, span=1, seed=seed))
    return frame.with_columns(pl.Series("ts", times, dtype=pl.Int64))


def pipeline(reference: Path, profile: Profile, window: str, clock=None) -> tuple[Pipeline, object]:
    loaded = make_config(reference, window)
    model = ModelPipeline(synthetic.MODEL, loaded.models[synthetic.MODEL], profile)
    return Pipeline(loaded, {synthetic.MODEL: model}, clock=clock), loaded


def feed(pipe: Pipeline, loaded, frame: pl.DataFrame, connection) -> tuple[Commit, object]:
    commit = Commit()
    batch = decode_frame(loaded, frame)
    report = pipe.process(batch, commit, connection)
    return commit, report


def closed_windows(commit: Commit) -> list[tuple[int, int, int, int]]:
    return [(w.index, w.start, w.end, w.n_events) for w in commit.windows]


def test_tumbling_windows_align_to_utc_and_close_on_the_watermark(
    reference_file, profile, connection
) -> None:
    pipe, loaded = pipeline(
        reference_file, profile, "{kind: time, size: 1h, allowed_lateness: 10m}"
    )
    first = events_at([START + 10 * 60_000, START + 50 * 60_000, START + HOUR + 5 * 60_000])
    commit, _ = feed(pipe, loaded, first, connection)
    assert commit.windows == []  # watermark = 01:05 - 10m = 00:55 < 01:00
    commit, _ = feed(pipe, loaded, events_at([START + HOUR + 11 * 60_000]), connection)
    assert closed_windows(commit) == [(0, START, START + HOUR, 2)]


def test_late_events_within_lateness_count_and_later_ones_are_dead_letters(
    reference_file, profile, connection
) -> None:
    pipe, loaded = pipeline(
        reference_file, profile, "{kind: time, size: 1h, allowed_lateness: 10m}"
    )
    feed(pipe, loaded, events_at([START + 30 * 60_000, START + HOUR + 5 * 60_000]), connection)
    commit, _ = feed(pipe, loaded, events_at([START + 59 * 60_000]), connection)  # allowed
    assert commit.windows == [] and commit.dead_letters == []
    commit, _ = feed(pipe, loaded, events_at([START + 2 * HOUR + 20 * 60_000]), connection)
    assert closed_windows(commit) == [
        (0, START, START + HOUR, 2),
        (1, START + HOUR, START + 2 * HOUR, 1),
    ]
    commit, _ = feed(
        pipe, loaded, events_at([START + 40 * 60_000, START + 2 * HOUR + 30 * 60_000]), connection
    )
    assert [d.reason for d in commit.dead_letters] == ["too_late"]
    assert commit.dead_letters[0].origin.offset == 0


def test_empty_windows_between_events_are_reported(reference_file, profile, connection) -> None:
    pipe, loaded = pipeline(reference_file, profile, "{kind: time, size: 1h}")
    feed(pipe, loaded, events_at([START]), connection)
    commit, _ = feed(pipe, loaded, events_at([START + 3 * HOUR]), connection)
    assert closed_windows(commit) == [
        (0, START, START + HOUR, 1),
        (1, START + HOUR, START + 2 * HOUR, 0),
        (2, START + 2 * HOUR, START + 3 * HOUR, 0),
    ]
    statuses = {r.status for r in commit.results if r.window_index == 1}
    assert statuses == {"insufficient_data"}


def test_sliding_windows_are_sums_of_panes_equal_to_recomputing_from_rows(
    reference_file, profile, connection
) -> None:
    pipe, loaded = pipeline(
        reference_file, profile, "{kind: time, size: 3h, step: 1h, min_samples: 1}"
    )
    rng = np.random.default_rng(4)
    times = np.sort(START + rng.integers(0, 6 * HOUR, 3000)).tolist()
    frame = events_at(times)
    commit = Commit()
    for part in frame.iter_slices(700):
        pipe.process(decode_frame(loaded, part), commit, connection)
    pipe.flush(commit, connection)
    starts = [w.start for w in commit.windows]
    assert starts[:4] == [START, START + HOUR, START + 2 * HOUR, START + 3 * HOUR]
    decoded = decode_frame(loaded, frame).frames[synthetic.MODEL]
    for window in commit.windows[:4]:
        rows = decoded.filter((pl.col("ts") >= window.start) & (pl.col("ts") < window.end))
        direct = summarize(profile, rows)
        stored = WindowSummary.from_bytes(window.summary)
        assert window.end - window.start == 3 * HOUR
        assert stored.n_events == rows.height
        np.testing.assert_array_equal(stored.numeric.counts, direct.numeric.counts)
        np.testing.assert_array_equal(stored.categorical.counts, direct.categorical.counts)
        np.testing.assert_allclose(stored.numeric.mean, direct.numeric.mean, rtol=1e-9)


def test_idle_timeout_closes_a_window_on_the_wall_clock(
    reference_file, profile, connection
) -> None:
    now = [START + 30 * 60_000]
    pipe, loaded = pipeline(
        reference_file, profile, "{kind: time, size: 1h, idle_timeout: 5m}", clock=lambda: now[0]
    )
    feed(pipe, loaded, events_at([START + 20 * 60_000]), connection)
    now[0] = START + HOUR + 4 * 60_000
    commit = Commit()
    pipe.tick(commit, connection, [synthetic.MODEL])
    assert commit.windows == []
    now[0] = START + HOUR + 5 * 60_000
    pipe.tick(commit, connection, [synthetic.MODEL])
    assert closed_windows(commit) == [(0, START, START + HOUR, 1)]


def test_future_events_are_dead_letters_in_live_mode(reference_file, profile, connection) -> None:
    now = START
    pipe, loaded = pipeline(reference_file, profile, "{kind: time, size: 1h}", clock=lambda: now)
    commit, report = feed(pipe, loaded, events_at([START + 60_000, START + 6 * 60_000]), connection)
    assert [d.reason for d in commit.dead_letters] == ["future_timestamp"]
    assert report.events[synthetic.MODEL] == 1


def test_future_labels_are_dead_letters_in_live_mode(
    reference_file, profile, connection, label_join
) -> None:
    now = START + HOUR
    loaded = make_config(reference_file, "{kind: time, size: 1h}")
    model = ModelPipeline(synthetic.MODEL, loaded.models[synthetic.MODEL], profile, join=label_join)
    pipe = Pipeline(loaded, {synthetic.MODEL: model}, clock=lambda: now)
    predictions = events_at([START + 60_000, START + 120_000])
    feed(pipe, loaded, predictions, connection)
    skew = int(loaded.events.max_future_skew.total_seconds() * 1000)
    labels = predictions.select("model", "id", "label").with_columns(
        pl.Series("ts", [now + skew, now + skew + 1], dtype=pl.Int64)
    )
    lines = synthetic.label_lines(labels)
    batch = decoder(loaded, "label").decode(Messages(lines, "labels", 0, np.arange(len(lines))))
    commit = Commit()
    report = pipe.process_labels(batch, commit, connection)
    assert [(d.reason, d.kind, d.origin.offset) for d in commit.dead_letters] == [
        ("future_timestamp", "label", 1)
    ]
    assert report.joins[synthetic.MODEL].joined == 1


def test_count_windows_close_every_n_events(reference_file, profile, connection) -> None:
    pipe, loaded = pipeline(reference_file, profile, "{kind: count, size: 4, min_samples: 1}")
    commit, _ = feed(pipe, loaded, events_at([START + i for i in range(10)]), connection)
    assert closed_windows(commit) == [(0, START, START + 4, 4), (1, START + 4, START + 8, 4)]
    commit = Commit()
    pipe.flush(commit, connection)
    assert closed_windows(commit) == [(2, START + 8, START + 10, 2)]


def test_daily_windows_start_at_local_midnight_across_daylight_saving(
    reference_file, profile, connection
) -> None:
    pipe, loaded = pipeline(
        reference_file, profile, "{kind: time, size: 1d, timezone: Europe/Berlin, min_samples: 1}"
    )
    berlin_midnights = [
        int(datetime(2026, 3, day, tzinfo=UTC).timestamp() * 1000) - HOUR for day in (28, 29)
    ] + [int(datetime(2026, 3, 30, tzinfo=UTC).timestamp() * 1000) - 2 * HOUR]
    times = [berlin_midnights[0] + HOUR, berlin_midnights[1] + HOUR, berlin_midnights[2] + HOUR]
    commit, _ = feed(pipe, loaded, events_at(times), connection)
    pipe.flush(commit, connection)
    windows = [(w.start, w.end) for w in commit.windows]
    assert windows[0] == (berlin_midnights[0], berlin_midnights[1])
    assert windows[1] == (berlin_midnights[1], berlin_midnights[2])  # 23 hours: clocks go forward
    assert windows[1][1] - windows[1][0] == 23 * HOUR


def test_a_restored_state_continues_exactly(reference_file, profile, connection) -> None:
    window = "{kind: time, size: 1h, allowed_lateness: 5m}"
    times = np.sort(START + np.random.default_rng(9).integers(0, 5 * HOUR, 2000)).tolist()
    frame = events_at(times)
    whole, loaded = pipeline(reference_file, profile, window)
    one_pass = Commit()
    whole.process(decode_frame(loaded, frame), one_pass, connection)
    whole.flush(one_pass, connection)

    first, _ = pipeline(reference_file, profile, window)
    split = Commit()
    first.process(decode_frame(loaded, frame.slice(0, 1100)), split, connection)
    snapshot = first.models[synthetic.MODEL].snapshot(connection)
    second_model = ModelPipeline(
        synthetic.MODEL, loaded.models[synthetic.MODEL], profile, state=snapshot
    )
    second = Pipeline(loaded, {synthetic.MODEL: second_model})
    second.process(decode_frame(loaded, frame.slice(1100)), split, connection)
    second.flush(split, connection)
    assert [r.key for r in split.results] == [r.key for r in one_pass.results]
    assert [(r.value, r.drift) for r in split.results] == [
        (r.value, r.drift) for r in one_pass.results
    ]


def _run_in_batches(
    reference_file, profile, window: str, frame: pl.DataFrame, cuts: list[int], connection
):
    pipe, loaded = pipeline(reference_file, profile, window)
    commit = Commit()
    batch = decode_frame(loaded, frame)
    edges = [0, *sorted({min(cut, frame.height) for cut in cuts}), frame.height]
    decoded = batch.frames[synthetic.MODEL]
    for start, stop in itertools.pairwise(edges):
        if stop > start:
            part = batch.__class__(
                batch.messages, {synthetic.MODEL: decoded.slice(start, stop - start)}
            )
            pipe.process(part, commit, connection)
    pipe.flush(commit, connection)
    late = sorted(d.origin.offset for d in commit.dead_letters)
    # Freshness records come as events are heard, window results as windows close: each
    # in its own order, whatever the batches.
    fresh = [r for r in commit.results if r.kind == "freshness"]
    ordered = [r for r in commit.results if r.kind != "freshness"] + fresh
    return (
        [(r.key, r.n_window, r.drift) for r in ordered],
        [r.value for r in ordered],
        late,
    )


# The connection holds no state here: these pipelines have no label join.
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(0, 5 * 60), min_size=30, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=6),
    sliding=st.booleans(),
)
@pytest.mark.slow
def test_windows_and_lateness_do_not_depend_on_batching(
    reference_file, profile, connection, offsets: list[int], cuts: list[int], sliding: bool
) -> None:
    window = (
        "{kind: time, size: 2h, step: 1h, allowed_lateness: 20m, min_samples: 1}"
        if sliding
        else "{kind: time, size: 1h, allowed_lateness: 20m, min_samples: 1}"
    )
    frame = events_at([START + minutes * 60_000 for minutes in offsets])
    keys, values, late = _run_in_batches(
        reference_file, profile, window, frame, list(range(frame.height)), connection
    )
    batched_keys, batched_values, batched_late = _run_in_batches(
        reference_file, profile, window, frame, cuts, connection
    )
    assert (batched_keys, batched_late) == (keys, late)
    # Sums of floats added in another order may differ in the last bits.
    for batched_value, value in zip(batched_values, values, strict=True):
        assert (batched_value is None) == (value is None)
        if value is not None:
            assert batched_value == pytest.approx(value, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("window", ["{kind: time, size: 1h}", "{kind: count, size: 300}"])
def test_a_window_open_when_the_reference_changes_finishes_on_the_old_one(
    reference_file, profile, connection, tmp_path, window
) -> None:
    """A restart with a new reference file while a window is open: that window keeps every
    event and its old reference; the windows after it use the new one."""
    new_file = tmp_path / "new-reference.parquet"
    synthetic.reference(20_000, seed=1).write_parquet(new_file)
    loaded = make_config(new_file, window)
    new_profile = fit(synthetic.MODEL, loaded.models[synthetic.MODEL], *read_reference(new_file))
    assert new_profile.reference_id != profile.reference_id
    times = START + np.arange(1000, dtype=np.int64) * (2 * HOUR // 1000)
    frame = events_at(times.tolist())

    first, _ = pipeline(reference_file, profile, window)
    commit = Commit()
    first.process(decode_frame(loaded, frame.slice(0, 200)), commit, connection)
    snapshot = first.models[synthetic.MODEL].snapshot(connection)
    restarted = ModelPipeline(
        synthetic.MODEL,
        loaded.models[synthetic.MODEL],
        new_profile,
        {profile.reference_id: profile},
        state=snapshot,
    )
    second = Pipeline(loaded, {synthetic.MODEL: restarted})
    second.process(decode_frame(loaded, frame.slice(200)), commit, connection)
    second.flush(commit, connection)

    assert commit.dead_letters == []
    assert sum(w.n_events for w in commit.windows) == 1000
    references = [w.reference_id for w in commit.windows]
    assert references[0] == profile.reference_id
    assert set(references[1:]) == {new_profile.reference_id}


def test_an_event_far_behind_the_watermark_is_too_late_before_any_window_closes(
    reference_file, profile, connection
) -> None:
    pipe, loaded = pipeline(
        reference_file, profile, "{kind: time, size: 1h, allowed_lateness: 10m}"
    )
    feed(pipe, loaded, events_at([START + 30 * 60_000, START + 40 * 60_000]), connection)
    commit, _ = feed(pipe, loaded, events_at([0, START + 45 * 60_000]), connection)  # 1970
    assert [(d.reason, d.origin.offset) for d in commit.dead_letters] == [("too_late", 0)]
    assert "1970-01-01T00:00:00.000Z" in commit.dead_letters[0].detail
    commit, _ = feed(pipe, loaded, events_at([START + HOUR + 11 * 60_000]), connection)
    assert closed_windows(commit) == [(0, START, START + HOUR, 3)]


def test_an_ancient_first_event_skips_the_empty_windows_instead_of_closing_them_all(
    reference_file, profile, connection
) -> None:
    """A 1970 event first, then today's: about 490,000 hourly windows lie between them. The
    first one closes, then ``max_empty_windows`` empty ones, then the rest is skipped in one
    step: bounded time and memory, and the indexes still count every window."""
    pipe, loaded = pipeline(reference_file, profile, "{kind: time, size: 1h, max_empty_windows: 5}")
    tracemalloc.start()
    began = time.perf_counter()
    feed(pipe, loaded, events_at([1_000]), connection)
    commit, report = feed(pipe, loaded, events_at([START + 10, START + HOUR + 10]), connection)
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gap = START // HOUR
    assert closed_windows(commit) == [
        (0, 0, HOUR, 1),
        *((i, i * HOUR, (i + 1) * HOUR, 0) for i in range(1, 6)),
        (gap, START, START + HOUR, 1),
    ]
    ((model, run),) = report.skipped
    assert (model, run.first, run.count, run.start, run.end) == (
        synthetic.MODEL,
        6,
        gap - 6,
        6 * HOUR,
        START,
    )
    assert seconds < 5 and peak < 64 * 2**20, (seconds, peak)
