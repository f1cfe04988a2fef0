"""SIGHUP resolves what it regroups: the daemon on the real broker tells a PagerDuty-like
receiver that the incidents of the old grouping are over before it pages the new one."""

from __future__ import annotations

import signal

import pytest
from support.daemon import setup_daemon
from support.kafka import DaemonProcess, create_topic, produce, unique, wait_for
from support.receivers import PagerDutyReceiver

from driftwarden.monitor.commands import synthetic

pytestmark = pytest.mark.slow


def _alerts(pagerduty: str, group_by: str) -> str:
    rules = "".join(
        f"""    - name: {feature}-drift
      match: ["kind=data_drift", "feature={feature}"]
      severity: critical
      channels: [pd]
"""
        for feature in ("income", "utilization")
    )
    return f"""alerts:
  group_by: {group_by}
  group_wait: 1s
  group_interval: 2s
  max_window_age: 3650d
  channels:
    pd: {{type: pagerduty, routing_key: "{"r" * 32}", url: "{pagerduty}/v2/enqueue"}}
  rules:
{rules}"""


def test_a_regrouping_reload_resolves_the_old_incidents_before_paging_the_new_one(
    tmp_path, broker, reference_file, stream_lines
) -> None:
    topic = unique("predictions")
    create_topic(broker, topic, 1)
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    with PagerDutyReceiver() as pagerduty:
        by_rule = _alerts(pagerduty.url, "[model, rule]")
        config = setup_daemon(tmp_path, url, reference_file, broker, topic, extra=by_rule)
        with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
            produce(broker, topic, stream_lines, key=synthetic.MODEL.encode())
            wait_for(lambda: len(pagerduty.incidents) == 2, 120, "one incident per rule")
            old = set(pagerduty.incidents)
            text = config.read_text()
            config.write_text(text.replace("group_by: [model, rule]", "group_by: [model]"))
            daemon.signal(signal.SIGHUP)
            wait_for(lambda: len(pagerduty.incidents) == 3, 60, "the regrouped incident")
            assert daemon.stop() == 0
        events = [(e["event_action"], e["dedup_key"]) for e in pagerduty.events]
    (new,) = set(pagerduty.incidents) - old
    assert pagerduty.incidents == {**dict.fromkeys(old, "resolved"), new: "triggered"}
    resolves = [i for i, (action, key) in enumerate(events) if key in old and action == "resolve"]
    first_page = events.index(("trigger", new))
    assert len(resolves) == 2 and max(resolves) < first_page, events
    log = (tmp_path / "daemon.log").read_text()
    assert '"alerts_regrouped"' in log and '"reloaded"' in log
