"""The daemon against the real broker: same results as replay, through restarts and rebalances."""

from __future__ import annotations

import random
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.daemon import assert_same_results, setup_daemon, stored_results, windows_done
from support.kafka import (
    DaemonProcess,
    count_rows,
    create_topic,
    daemon_config,
    produce,
    unique,
    wait_for,
)
from support.stream import START, WINDOWS

from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_results_equal_replay_of_the_same_events(
    request, tmp_path, broker, topic, reference_file, expected, database, library
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'dw.db'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    config = setup_daemon(tmp_path, url, reference_file, broker, topic, library=library)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(windows_done(url), 120, "all windows to close")
        assert daemon.stop() == 0
    assert_same_results(url, expected)
    log = [orjson.loads(line) for line in (tmp_path / "daemon.log").read_bytes().splitlines()]
    events = {line.get("event") for line in log}
    assert {"started", "rebalance", "window_closed", "stopped"} <= events


def test_sigterm_mid_stream_then_restart(tmp_path, broker, topic, reference_file, expected) -> None:
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    config = setup_daemon(tmp_path, url, reference_file, broker, topic)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(windows_done(url, 2), 120, "two windows")
        assert daemon.stop() == 0
    assert count_rows(url, "windows") < WINDOWS
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(windows_done(url), 120, "all windows")
        assert daemon.stop() == 0
    assert_same_results(url, expected)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sigkill_at_several_points_loses_and_doubles_nothing(
    request, tmp_path, broker, topic, reference_file, expected, database, library
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'dw.db'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    config = setup_daemon(
        tmp_path,
        url,
        reference_file,
        broker,
        topic,
        max_poll_records=300,
        batch_records=300,
        checkpoint_interval="50ms",
        library=library,
    )
    rng = random.Random(7)
    # Before any window closed, as soon as one closed (others closing), and at a random moment.
    points = [
        lambda: count_rows(url, "consumer_positions") > 0 and count_rows(url, "windows") == 0,
        windows_done(url, 1),
        windows_done(url, 3),
    ]
    for point in points:
        with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
            wait_for(point, 120, "the kill point", every=0.05)
            time.sleep(rng.uniform(0.0, 0.3))
            daemon.kill()
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(windows_done(url), 120, "all windows")
        assert daemon.stop() == 0
    assert_same_results(url, expected)


def test_two_instances_share_partitions_and_hand_over_on_leave(
    tmp_path, broker, reference_file, library
) -> None:
    models = {f"model-{i}": f"model-{i}" for i in range(4)}
    lines: list[bytes] = []
    partitions: list[int] = []
    for i, name in enumerate(models):
        stream = synthetic.Stream(
            n=4_000,
            start=START,
            span=WINDOWS * 3_600_000,
            seed=20 + i,
            model=name,
            drift_from=START + 3 * 3_600_000 if i % 2 else None,
        )
        model_lines = synthetic.prediction_lines(synthetic.events(stream))
        lines += model_lines
        partitions += [i] * len(model_lines)
    topic = unique("predictions")
    create_topic(broker, topic, 4)
    produce(broker, topic, lines, partition=lambda i: partitions[i])

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    storage.upgrade(storage.create(url))
    group = unique("group")
    configs = []
    for n in range(2):
        path = tmp_path / f"config-{n}.yaml"
        path.write_text(
            daemon_config(
                reference_file,
                url,
                broker,
                topic,
                group,
                models=models,
                max_poll_records=200,
                batch_records=200,
                checkpoint_interval="100ms",
                library=library,
            )
        )
        configs.append(path)
    replay_config = tmp_path / "replay.yaml"
    replay_config.write_text(configs[0].read_text())
    expected = replay(configuration.load(replay_config), events, tmp_path / "replay").results

    first = DaemonProcess(configs[0], tmp_path / "first.log").start()
    second = DaemonProcess(configs[1], tmp_path / "second.log").start()
    try:
        wait_for(
            lambda: (
                b'"assigned"' in (tmp_path / "second.log").read_bytes()
                and b'"assigned"' in (tmp_path / "first.log").read_bytes()
            ),
            120,
            "both instances to get partitions",
        )
        wait_for(
            lambda: [ready(config) for config in configs] == [1, 1], 30, "both instances ready"
        )
        wait_for(windows_done(url, 4), 120, "a few windows")
        assignments = (tmp_path / "first.log").read_bytes().count(b'"assigned"')
        assert second.stop() == 0
        wait_for(
            lambda: (tmp_path / "first.log").read_bytes().count(b'"assigned"') > assignments,
            60,
            "the first instance to take the partitions over",
        )
        wait_for(lambda: ready(configs[0]) == 1, 30, "the first instance ready again")
        wait_for(windows_done(url, 4 * WINDOWS), 180, "all windows after the hand-over")
        assert first.stop() == 0
    finally:
        for daemon in (first, second):
            if daemon.alive():
                daemon.kill()
    # The second instance held a share of the predictions, not none and not all of them.
    second_log = [
        orjson.loads(line)
        for line in (tmp_path / "second.log").read_bytes().splitlines()
        if line.startswith(b"{")
    ]
    held = [entry["assigned"] for entry in second_log if "assigned" in entry]
    assert held
    assert 0 < len([name for name in held[0] if name.startswith(topic)]) < 4
    assert_same_results(url, expected)


@pytest.mark.parametrize(
    "labels_partitions", [3, 2, None], ids=["mismatched", "matching", "labels-missing"]
)
def test_a_labels_topic_partitioned_unlike_the_predictions_topic_is_refused_at_start(
    tmp_path, broker, reference_file, library, labels_partitions
) -> None:
    """Labels meet their predictions on one instance only when both topics have as many
    partitions: otherwise the daemon exits 1 before joining the group, naming both topics
    and counts. A labels topic that does not exist yet is let through, with a warning."""
    predictions, labels = unique("predictions"), unique("labels")
    create_topic(broker, predictions, 2)
    if labels_partitions is not None:
        create_topic(broker, labels, labels_partitions)
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    config = setup_daemon(
        tmp_path, url, reference_file, broker, predictions, library=library, labels=labels
    )
    path = tmp_path / "daemon.log"
    with DaemonProcess(config, path) as daemon:
        if labels_partitions == 3:
            assert daemon.wait(60) == 1
        else:
            wait_for(lambda: _assigned(_events(path)), 60, "partitions assigned")
            assert daemon.stop() == 0
    events = _events(path)
    if labels_partitions == 3:
        assert "started" not in events and "rebalance" not in events
        assert path.read_text().splitlines()[-1] == (
            f"driftwarden: error: the labels topic {labels} has 3 partitions and the "
            f"predictions topic {predictions} has 2: a model's labels reach the instance that "
            "holds its predictions only when both topics have the same partition count; give "
            "them the same count (or set labels.enabled: false on every model)"
        )
        return
    assigned = _assigned(events)
    assert {f"{predictions}-0", f"{predictions}-1"} <= assigned
    if labels_partitions == 2:
        assert {f"{labels}-0", f"{labels}-1"} <= assigned
        assert "partitions_unchecked" not in events
    else:
        (warning,) = events["partitions_unchecked"]
        assert f"the labels topic {labels} does not exist yet" in warning["message"]
        assert "create it with 2 partitions" in warning["message"]


def _assigned(events: dict[str, list[dict]]) -> set[str]:
    return {name for line in events.get("rebalance", []) for name in line.get("assigned", [])}


def _events(path: Path) -> dict[str, list[dict]]:
    """The daemon's JSON log lines by event (the command's own error line is not JSON)."""
    by_event: dict[str, list[dict]] = {}
    for line in path.read_bytes().splitlines():
        if line.startswith(b"{"):
            entry = orjson.loads(line)
            by_event.setdefault(entry.get("event"), []).append(entry)
    return by_event


def test_bad_messages_through_kafka_become_dead_letters_with_their_origin(
    tmp_path, broker, reference_file, library
) -> None:
    good = synthetic.prediction_lines(
        synthetic.events(synthetic.Stream(n=3_000, start=START, span=3_600_000, seed=3))
    )
    bad = [
        (b"not json", "invalid_json"),
        (b"[1]", "not_an_object"),
        (
            b'{"model": "credit-default", "id": "x", "ts": "soon", "features": {}, '
            b'"prediction": 0.1}',
            "invalid_timestamp",
        ),
        (
            b'{"model": "credit-default", "id": "x", "ts": 0, "features": {}, "prediction": NaN}',
            "non_finite",
        ),
        (b"\xff\xfe", "invalid_utf8"),
        (b'{"model": 3}', "wrong_type"),
        (b"", "invalid_json"),
    ]
    values = good[:1500] + [raw for raw, _ in bad] + good[1500:]
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    produce(broker, topic, values, partition=lambda i: 0)
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    config = setup_daemon(tmp_path, url, reference_file, broker, topic, library=library)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        wait_for(windows_done(url, 1), 120, "the window to close")
        wait_for(lambda: count_rows(url, "dead_letters") == len(bad), 30, "dead letters")
        metrics = scrape(config)
        assert daemon.alive()
        assert daemon.stop() == 0
    letters = storage.Store(storage.create(url)).dead_letters()
    got = sorted((d.letter.origin.offset, d.letter.reason) for d in letters)
    assert got == [(1500 + i, reason) for i, (_, reason) in enumerate(bad)]
    assert all(d.letter.origin.source == topic and d.letter.origin.partition == 0 for d in letters)
    assert [d.letter.raw for d in sorted(letters, key=lambda d: d.letter.origin.offset)] == [
        raw for raw, _ in bad
    ]
    windows = stored_results(url)
    n_window = {r.n_window for r in windows.values() if r.detector == "psi" and r.feature == "age"}
    assert n_window == {3_000}
    dead = {
        s.labels["reason"]: s.value
        for s in metrics["driftwarden_dead_letters"].samples
        if s.name.endswith("_total")
    }
    assert dead["invalid_json"] == 2 and dead["invalid_utf8"] == 1 and dead["non_finite"] == 1
    events = [
        s
        for s in metrics["driftwarden_events"].samples
        if s.name.endswith("_total")
        and s.labels == {"model": synthetic.MODEL, "kind": "prediction"}
    ]
    assert events[0].value == 3_000


def ready(config: Path) -> float:
    """``driftwarden_ready`` of the daemon running ``config``."""
    return scrape(config)["driftwarden_ready"].samples[0].value


def scrape(config: Path) -> dict:
    loaded = configuration.load(config)
    url = f"http://127.0.0.1:{loaded.http.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}
