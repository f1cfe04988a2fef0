"""Nothing silences the daemon: real faults on the real broker, SQLite and PostgreSQL.

A PostgreSQL restart mid-stream and while idle, a broker restart (its log kept in a local
S3), a fault no retry outlives, and SIGTERM while the database is down. Every run ends with
the results ``replay`` computes from the same events: nothing lost, nothing doubled.
"""

from __future__ import annotations

import signal
import threading
import time

import orjson
import pytest
import sqlalchemy
from support.daemon import assert_same_results, setup_daemon, windows_done
from support.faults import health_url, local_s3, postgres, postgres_down, status, watch_ready
from support.kafka import DaemonProcess, count_rows, create_topic, produce, unique, wait_for
from support.stream import WINDOWS

from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.local_broker import LocalBroker

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
KEY = synthetic.MODEL.encode()


def _thirds(lines: list[bytes]) -> list[list[bytes]]:
    n = len(lines)
    return [lines[: n // 3], lines[n // 3 : 2 * n // 3], lines[2 * n // 3 :]]


def _caught_up(url: str, topic: str, produced: int) -> bool:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            read = connection.execute(
                sqlalchemy.text('SELECT sum("offset") FROM consumer_positions WHERE topic = :t'),
                {"t": topic},
            ).scalar()
    except sqlalchemy.exc.OperationalError:
        return False
    finally:
        engine.dispose()
    return read == produced


def test_a_postgres_restart_mid_stream_and_while_idle_loses_and_doubles_nothing(
    tmp_path, broker, reference_file, stream_lines, expected, postgres_url
) -> None:
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    first, second, third = _thirds(stream_lines)
    config = setup_daemon(tmp_path, postgres_url, reference_file, broker, topic)
    url = health_url(config)
    seen: list[int | None] = []
    stop = [False]
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        produce(broker, topic, first, key=KEY)
        wait_for(lambda: status(url, "/readyz") == 200, 60, "the daemon to be ready")
        watcher = threading.Thread(target=watch_ready, args=(url, seen, stop), daemon=True)
        watcher.start()
        wait_for(windows_done(postgres_url, 1), 120, "a window")
        produce(broker, topic, second, key=KEY)
        postgres("restart")  # mid-stream
        wait_for(lambda: _caught_up(postgres_url, topic, len(first) + len(second)), 120, "intake")
        postgres("restart")  # while idle
        produce(broker, topic, third, key=KEY)
        wait_for(windows_done(postgres_url), 120, "all windows")
        assert status(url, "/livez") == 200
        assert daemon.stop() == 0
    stop[0] = True
    watcher.join(5)
    assert 503 in seen and seen[-1] in (200, None), seen
    assert seen.index(503) > seen.index(200), "ready, then not ready during the restart"
    assert_same_results(postgres_url, expected)
    log = (tmp_path / "daemon.log").read_bytes()
    assert b'"database_unavailable"' in log and b'"database_back"' in log


def test_a_broker_restart_loses_and_doubles_nothing(
    tmp_path, reference_file, stream_lines, expected
) -> None:
    first, second, third = _thirds(stream_lines)
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    with local_s3() as environment:
        broker = LocalBroker(storage="s3://tansu/", environment=environment).start()
        try:
            topic = unique("predictions")
            create_topic(broker.bootstrap, topic, 2)
            config = setup_daemon(tmp_path, url, reference_file, broker.bootstrap, topic)
            with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
                produce(broker.bootstrap, topic, first, key=KEY)
                wait_for(windows_done(url, 1), 120, "a window")
                broker.stop()
                time.sleep(1)  # the broker is down for a while: the daemon keeps polling
                broker = LocalBroker(
                    broker.port, storage="s3://tansu/", environment=environment
                ).start()
                produce(broker.bootstrap, topic, second, key=KEY)
                produce(broker.bootstrap, topic, third, key=KEY)
                wait_for(windows_done(url), 180, "all windows after the broker restart")
                assert daemon.stop() == 0
        finally:
            broker.stop()
    assert_same_results(url, expected)


def test_an_error_no_retry_outlives_ends_the_process_with_it_logged(
    tmp_path, broker, reference_file, stream_lines
) -> None:
    """The results table dropped under the daemon: its next checkpoint fails for good. The
    process ends with status 1 within seconds, the error and its traceback in the log."""
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    first, second, _ = _thirds(stream_lines)
    url = f"sqlite:///{tmp_path / 'dw.db'}"
    config = setup_daemon(tmp_path, url, reference_file, broker, topic)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        produce(broker, topic, first, key=KEY)
        wait_for(windows_done(url, 1), 120, "a window")
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE results")
        engine.dispose()
        produce(broker, topic, second, key=KEY)
        assert daemon.process is not None
        assert daemon.process.wait(60) == 1
    lines = [orjson.loads(line) for line in (tmp_path / "daemon.log").read_bytes().splitlines()]
    failed = [line for line in lines if line.get("event") == "failed"]
    assert failed and "no such table: results" in failed[0]["message"]
    assert "Traceback" in failed[0]["exception"]
    assert lines[-1]["event"] == "stopped"


def test_sigterm_ends_the_daemon_while_the_database_is_down(
    tmp_path, broker, reference_file, stream_lines, postgres_url
) -> None:
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    first, second, _ = _thirds(stream_lines)
    config = setup_daemon(tmp_path, postgres_url, reference_file, broker, topic)
    url = health_url(config)
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        produce(broker, topic, first, key=KEY)
        wait_for(windows_done(postgres_url, 1), 120, "a window")
        with postgres_down():
            produce(broker, topic, second, key=KEY)
            wait_for(lambda: status(url, "/readyz") == 503, 60, "readiness to drop")
            assert status(url, "/livez") == 200
            began = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.process is not None
            daemon.process.wait(30)
            assert time.monotonic() - began < 30
    assert count_rows(postgres_url, "windows") < WINDOWS
