"""Silence is visible: events stop, and within the configured time the daemon stores a
freshness record, its alert rule fires, /metrics says so and the real Prometheus, with the
shipped rules, fires DriftwardenModelSilent; events come back and all of it clears."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families
from support.daemon import setup_daemon
from support.faults import health_url
from support.kafka import DaemonProcess, create_topic, produce, unique, wait_for
from support.ops import PrometheusServer, tool

from driftwarden.core.records import ResultRecord
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic

pytestmark = pytest.mark.slow
MODEL = synthetic.MODEL
SILENCE = 4.0  # seconds: silence_after in the test's configuration


def _silent_gauge(url: str) -> float | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "driftwarden_model_silent" and sample.labels["model"] == MODEL:
                return sample.value
    return None


def _freshness(url: str) -> ResultRecord | None:
    engine = storage.create(url)
    try:
        records = [r for r in storage.Store(engine).results() if r.kind == "freshness"]
    except sqlalchemy.exc.OperationalError:
        return None
    finally:
        engine.dispose()
    return records[0] if records else None


def _alerted(url: str) -> str | None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            query = "SELECT status FROM alert_outbox ORDER BY id DESC LIMIT 1"
            return connection.execute(sqlalchemy.text(query)).scalar()
    finally:
        engine.dispose()


def test_a_model_that_stops_receiving_events_is_reported_silent_in_time(
    tmp_path, broker, reference_file, stream_lines
) -> None:
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    rule = """alerts:
  group_wait: 0s
  group_interval: 1s
  channels: {log: {type: log}}
  rules:
    - name: silent
      match: [kind=freshness]
      keep_firing_for: 0
      severity: warning
      channels: [log]
"""
    config = setup_daemon(tmp_path, url, reference_file, broker, topic, extra=rule)
    text = config.read_text().replace(
        "    window:", f"    silence_after: {SILENCE:g}s\n    window:"
    )
    config.write_text(text)
    base = health_url(config)
    half = len(stream_lines) // 2
    with (
        DaemonProcess(config, tmp_path / "daemon.log") as daemon,
        PrometheusServer(
            tool("prometheus"), [base.removeprefix("http://")], tmp_path / "prometheus"
        ) as prometheus,
    ):
        produce(broker, topic, stream_lines[:half], key=MODEL.encode())
        wait_for(lambda: _silent_gauge(base) == 0.0, 60, "the model to be heard")
        record = wait_for(lambda: _freshness(url), 60, "the freshness record")
        assert record.drift and record.model == MODEL and record.threshold == SILENCE
        noticed = record.detected_at - record.window_start
        assert SILENCE * 1000 < noticed < SILENCE * 1000 + 3_000, noticed
        assert _silent_gauge(base) == 1.0
        wait_for(lambda: _alerted(url) == "firing", 30, "the silence alert")
        wait_for(lambda: prometheus.firing("DriftwardenModelSilent"), 30, "Prometheus's alert")
        assert prometheus.firing("DriftwardenModelSilent")[0]["model"] == MODEL
        produce(broker, topic, stream_lines[half:], key=MODEL.encode())
        wait_for(lambda: _silent_gauge(base) == 0.0, 60, "the model heard again")
        back = wait_for(lambda: (r := _freshness(url)) and not r.drift and r, 30, "recovery")
        assert back.window_index == record.window_index
        assert back.value * 1000 >= noticed
        wait_for(lambda: _alerted(url) == "resolved", 30, "the silence alert resolved")
        wait_for(lambda: not prometheus.firing("DriftwardenModelSilent"), 30, "it resolves")
        assert daemon.stop() == 0


def test_a_silence_outlives_a_restart_and_the_events_after_it_end_it(
    tmp_path, broker, reference_file, stream_lines
) -> None:
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    config = setup_daemon(tmp_path, url, reference_file, broker, topic)
    text = config.read_text().replace(
        "    window:", f"    silence_after: {SILENCE:g}s\n    window:"
    )
    config.write_text(text)
    half = len(stream_lines) // 2
    with DaemonProcess(config, tmp_path / "first.log") as daemon:
        produce(broker, topic, stream_lines[:half], key=MODEL.encode())
        record = wait_for(lambda: _freshness(url), 60, "the freshness record")
        assert record.drift
        assert daemon.stop() == 0
    with DaemonProcess(config, tmp_path / "second.log") as daemon:
        base = health_url(config)
        wait_for(lambda: _silent_gauge(base) is not None, 60, "the second daemon's metrics")
        produce(broker, topic, stream_lines[half:], key=MODEL.encode())
        back = wait_for(lambda: (r := _freshness(url)) and not r.drift and r, 60, "recovery")
        assert back.key == record.key and back.window_start == record.window_start
        assert back.detected_at > record.detected_at
        assert daemon.stop() == 0
