"""A fleet reports true numbers: three daemons in one consumer group on the real broker,
scraped by the real Prometheus with the shipped recording rules, give the fleet totals one
daemon gives on the same events; after a partition moves no stale lag series remains, and
an instance left without partitions is a ready standby."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml
from support.alerts import SECRET
from support.faults import health_url
from support.kafka import (
    DaemonProcess,
    count_rows,
    create_topic,
    daemon_config,
    produce,
    unique,
    wait_for,
)
from support.ops import PrometheusServer, tool
from support.stream import START, WINDOWS

from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic

pytestmark = pytest.mark.slow
MODELS = [f"model-{i}" for i in range(3)]
RECORDED = [
    "model_kind:driftwarden_events:sum",
    "model:driftwarden_windows_closed:sum",
    "rule_severity_state:driftwarden_alerts:sum",
    "channel:driftwarden_outbox_pending:sum",
    "model:driftwarden_pending_predictions:sum",
]
ALERTS = """alerts:
  group_by: [model]
  group_wait: 0s
  group_interval: 1s
  max_window_age: 3650d
  channels:
    # nothing listens: notifications stay pending, one per model (one alert each)
    down: {type: webhook, url: "http://127.0.0.1:9/hook", secrets: ["%s"]}
  rules:
    - name: drift
      match: [kind=data_drift, detector=psi, feature=income]
      severity: warning
      channels: [down]
"""


def _lines() -> tuple[list[bytes], list[int]]:
    """Each model's stream, drifting from its fourth window, on a partition of its own."""
    lines: list[bytes] = []
    partitions: list[int] = []
    for i, name in enumerate(MODELS):
        stream = synthetic.Stream(
            n=3_000,
            start=START,
            span=WINDOWS * 3_600_000,
            seed=40 + i,
            model=name,
            drift_from=START + 3 * 3_600_000,
        )
        model_lines = synthetic.prediction_lines(synthetic.events(stream))
        lines += model_lines
        partitions += [i] * len(model_lines)
    return lines, partitions


def _configs(
    tmp_path: Path, name: str, count: int, reference: Path, broker: str, library: str
) -> list[Path]:
    """``count`` daemon configurations sharing a topic, a group and a database."""
    topic, group = unique("predictions"), unique("group")
    create_topic(broker, topic, len(MODELS))
    lines, partitions = _lines()
    produce(broker, topic, lines, partition=lambda i: partitions[i])
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    storage.upgrade(storage.create(url))
    paths = []
    for n in range(count):
        path = tmp_path / f"{name}-{n}.yaml"
        text = daemon_config(
            reference,
            url,
            broker,
            topic,
            group,
            models={m: m for m in MODELS},
            extra=ALERTS % SECRET,
            library=library,
        )
        path.write_text(text)
        paths.append(path)
    return paths


def _recorded(prometheus: PrometheusServer) -> dict[tuple, float]:
    values = {}
    for name in RECORDED:
        for sample in prometheus.query(name):
            labels = tuple(sorted(sample["metric"].items()))
            values[labels] = float(sample["value"][1])
    return values


def _settled(prometheus: PrometheusServer, instances: int) -> dict[tuple, float] | None:
    """The recorded fleet totals, once every target is up and they have stopped moving."""
    up = prometheus.query('up{job="driftwarden"} == 1')
    if len(up) != instances:
        return None
    first = _recorded(prometheus)
    outbox = (("__name__", "channel:driftwarden_outbox_pending:sum"), ("channel", "down"))
    pending = first.get(outbox)
    if pending != len(MODELS):
        return None
    time.sleep(2)  # two more scrapes and evaluations
    return first if _recorded(prometheus) == first else None


def _target(config: Path) -> str:
    return health_url(config).removeprefix("http://")


def _ready(config: Path) -> bool:
    try:
        return httpx.get(f"{health_url(config)}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_fleet_totals_equal_one_instances_and_moved_partitions_leave_no_series(
    tmp_path, broker, reference_file, library
) -> None:
    prometheus_binary = tool("prometheus")
    single = _configs(tmp_path, "single", 1, reference_file, broker, library)
    fleet = _configs(tmp_path, "fleet", 4, reference_file, broker, library)  # the 4th joins later
    done = len(MODELS) * WINDOWS
    with (
        DaemonProcess(single[0], tmp_path / "single.log"),
        DaemonProcess(fleet[0], tmp_path / "fleet-0.log"),
        DaemonProcess(fleet[1], tmp_path / "fleet-1.log"),
        DaemonProcess(fleet[2], tmp_path / "fleet-2.log"),
        PrometheusServer(
            prometheus_binary, [_target(single[0])], tmp_path / "prometheus-single"
        ) as one,
        PrometheusServer(
            prometheus_binary, [_target(c) for c in fleet], tmp_path / "prometheus-fleet"
        ) as many,
    ):
        wait_for(lambda: count_rows(_url(single[0]), "windows") >= done, 120, "one: all windows")
        wait_for(lambda: count_rows(_url(fleet[0]), "windows") >= done, 120, "fleet: all windows")
        alone = wait_for(lambda: _settled(one, 1), 60, "one instance's totals")
        together = wait_for(lambda: _settled(many, 3), 60, "the fleet's totals")
        assert together == alone
        assert len(alone) >= len(MODELS) * 2 + 2  # events and windows per model, alerts, outbox
        # The database-wide figures come from one instance, the lease holder.
        holders = {s["metric"]["instance"] for s in many.query("driftwarden_outbox_pending")}
        assert len(holders) == 1
        # A fourth instance joins: some instance gives up its partition, and its lag goes.
        with DaemonProcess(fleet[3], tmp_path / "fleet-3.log") as fourth:
            wait_for(lambda: all(_ready(c) for c in fleet), 90, "four ready instances")

            def one_series_per_partition() -> bool:
                lag = many.query("driftwarden_consumer_lag_messages")
                per = [(s["metric"]["topic"], s["metric"]["partition"]) for s in lag]
                return len(per) == len(MODELS) and len(set(per)) == len(MODELS)

            wait_for(one_series_per_partition, 60, "one lag series per partition")
            # /readyz answered for all four; Prometheus sees it at its next scrape of each.
            wait_for(
                lambda: len(many.query("driftwarden_ready == 1")) == 4,
                30,
                "four instances ready in Prometheus: one without partitions is a ready standby",
            )

            def one_owner_per_model() -> bool:
                owners = many.query("count by (model) (driftwarden_model_silent)")
                return len(owners) == len(MODELS) and all(float(s["value"][1]) == 1 for s in owners)

            wait_for(one_owner_per_model, 30, "each model's gauges exported by one instance")
            fourth.signal(signal.SIGTERM)


def _url(config: Path) -> str:
    return yaml.safe_load(config.read_text())["storage"]["url"]
