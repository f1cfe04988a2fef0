"""prometheus/alertmanager.yml, checked by Debian's amtool and run by its Alertmanager: the
configuration is valid, also with its commented Slack and PagerDuty receivers uncommented;
the routing tree sends each alert where the comments say; an alert posted to a real
Alertmanager reaches the example webhook receiver (deploy/alert_sink.py)."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from support.kafka import wait_for
from support.ops import ALERTMANAGER_CONFIG, PROMETHEUS, ROOT

from driftwarden.monitor.commands.local_broker import free_port

SINK = ROOT / "deploy" / "alert_sink.py"
MODEL_ALERTS = {
    "DriftwardenFeatureDrift",
    "DriftwardenPredictionDrift",
    "DriftwardenMultivariateDrift",
    "DriftwardenDriftImpact",
    "DriftwardenPerformanceDrop",
}


def _alerts() -> dict[str, str]:
    """Each shipped alerting rule and its severity."""
    rules = yaml.safe_load((PROMETHEUS / "rules" / "driftwarden-alerts.yml").read_text())
    return {
        rule["alert"]: rule["labels"]["severity"]
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def _check(amtool: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )


def _route(amtool: str, path: Path, labels: dict[str, str]) -> str:
    """The receiver(s) amtool's routing test picks for an alert with ``labels``."""
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}"]
        + [f"{name}={value}" for name, value in labels.items()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def uncommented(text: str) -> str:
    """The configuration with its commented receivers written out: lines ``  # - name: ...``
    and their indented continuations lose their ``# ``; prose comments stay comments."""
    return re.sub(r"^(  )# (- name: .*|  .*)$", r"\1\2", text, flags=re.M)


def test_the_configuration_is_valid(amtool: str) -> None:
    done = _check(amtool, ALERTMANAGER_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 receivers" in done.stdout


def test_every_alert_reaches_a_receiver_and_critical_ones_repeat_hourly(amtool: str) -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    critical = next(r for r in config["route"]["routes"] if 'severity="critical"' in r["matchers"])
    assert critical["repeat_interval"] == "1h"
    for alert, severity in _alerts().items():
        receiver = _route(amtool, ALERTMANAGER_CONFIG, {"alertname": alert, "severity": severity})
        assert receiver in receivers, (alert, receiver)


def test_the_commented_slack_and_pagerduty_receivers_are_valid_once_uncommented(
    amtool: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(uncommented(ALERTMANAGER_CONFIG.read_text()))
    names = [receiver["name"] for receiver in config["receivers"]]
    assert names == ["ops-webhook", "slack", "pagerduty"]
    slack = config["receivers"][1]["slack_configs"][0]
    pagerduty = config["receivers"][2]["pagerduty_configs"][0]
    assert slack["api_url_file"].startswith("/etc/alertmanager/secrets/")  # secrets by file
    assert pagerduty["routing_key_file"].startswith("/etc/alertmanager/secrets/")
    assert "runbook_url" in slack["text"] and "runbook_url" in str(pagerduty["links"])
    assert "evidence_url" in slack["text"] and "evidence_url" in str(pagerduty["links"])
    critical, models = config["route"]["routes"]
    critical["receiver"], models["receiver"] = "pagerduty", "slack"  # as the comments say
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    done = _check(amtool, path)
    assert done.returncode == 0, done.stdout + done.stderr
    for alert, severity in _alerts().items():
        expected = "pagerduty" if severity == "critical" else "ops-webhook"
        if alert in MODEL_ALERTS:
            expected = "slack"  # the models' owners, not the on-call engineer
        labels = {"alertname": alert, "severity": severity}
        assert _route(amtool, path, labels) == expected, alert


def test_the_webhook_is_the_compose_stacks_alert_sink() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    url = config["receivers"][0]["webhook_configs"][0]["url"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    sink = compose["services"]["alert-sink"]
    port = sink["command"][sink["command"].index("--port") + 1]
    assert url == f"http://alert-sink:{port}/alerts"
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"] and "alertmanager" in compose["services"]


class Sink:
    """deploy/alert_sink.py running on a loopback port, its output read line by line."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self.process = subprocess.Popen(
            [sys.executable, str(SINK), "--host", "127.0.0.1", "--port", port],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)

    def line(self, timeout: float = 30) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the sink printed nothing in {timeout} s") from None


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = Sink()
    try:
        assert running.line().startswith("alert-sink: listening on 127.0.0.1:")
        yield running
    finally:
        running.process.terminate()
        running.process.wait(10)


def _payload(status: str = "firing") -> dict:
    return {
        "version": "4",
        "status": status,
        "receiver": "ops-webhook",
        "groupLabels": {"alertname": "DriftwardenDown"},
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "DriftwardenDown", "severity": "critical", "instance": "a"},
                "annotations": {"summary": "down", "runbook_url": "https://d/runbooks/X/"},
                "startsAt": "2026-12-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def test_the_alert_sink_prints_one_line_per_alert(sink: Sink) -> None:
    url = sink.url
    assert httpx.post(f"{url}/alerts", json=_payload(), timeout=10).status_code == 200
    line = json.loads(sink.line())
    assert line["alertname"] == "DriftwardenDown" and line["status"] == "firing"
    assert line["runbook_url"] == "https://d/runbooks/X/" and line["receiver"] == "ops-webhook"
    assert httpx.post(f"{url}/alerts", content=b"{not json", timeout=10).status_code == 400
    assert httpx.post(f"{url}/elsewhere", json=_payload(), timeout=10).status_code == 404


@pytest.mark.slow
def test_a_real_alertmanager_delivers_an_alert_to_the_webhook(
    alertmanager_binary: str, sink: Sink, tmp_path: Path
) -> None:
    """The shipped configuration, with two changes a test needs: the webhook's host is the
    local sink, and the group waits 1 s instead of 30 s."""
    url = sink.url
    text = ALERTMANAGER_CONFIG.read_text().replace("http://alert-sink:9095", url)
    config = yaml.safe_load(text)
    config["route"]["group_wait"] = "1s"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    manager = subprocess.Popen(
        [
            alertmanager_binary,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert manager.poll() is None, "Alertmanager exited"
            try:
                return httpx.get(f"{api}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 30, "Alertmanager to be ready")
        alert = {
            "labels": {"alertname": "DriftwardenStalled", "severity": "critical", "instance": "i"},
            "annotations": {
                "summary": "stale",
                "runbook_url": "https://docs/runbooks/DriftwardenStalled/",
            },
        }
        started = time.monotonic()
        assert httpx.post(f"{api}/api/v2/alerts", json=[alert], timeout=10).status_code == 200
        line = json.loads(sink.line(timeout=30))
        assert time.monotonic() - started < 30
        assert line["alertname"] == "DriftwardenStalled" and line["status"] == "firing"
        assert line["receiver"] == "ops-webhook"
        assert line["runbook_url"] == "https://docs/runbooks/DriftwardenStalled/"
    finally:
        manager.terminate()
        manager.wait(10)
