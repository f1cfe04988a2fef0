"""Alerting speed: rule evaluation against the daemon's result rate, and the dispatcher's overhead.

1. Replays ``--events`` synthetic predictions with ``bench/replay.py``'s inputs
   (20 numeric + 5 categorical features, hourly windows, drift in the second
   half) and reports the rate at which the pipeline produced results; then
   feeds those same results, window by window, through ``AlertEngine.evaluate``
   with a realistic rule set (one transaction per window, as the daemon does)
   and reports that rate. Evaluation must keep up with production.
2. Evaluates ``--windows`` synthetic windows of 25 features × 6 detectors
   (150 results each) the same way.
3. Delivers ``--notifications`` signed webhook notifications to a local
   receiver, one per dispatcher round, and reports the dispatcher's own time
   per notification (round time minus the time spent in the HTTP exchange):
   median and p99.

    .venv/bin/python bench/alerts.py [--events 250000] [--windows 200] [--notifications 500]
                                     [--storage URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select

from driftwarden.alerts import AlertEngine, AlertsConfig, Dispatcher
from driftwarden.alerts.tables import alert_outbox, metadata
from driftwarden.core.records import ResultRecord
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from replay import write_inputs

HOUR = 3_600_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DETECTORS = ("psi", "ks", "wasserstein", "jensen_shannon", "hellinger", "mean_shift")


def rules_config(url: str = "http://127.0.0.1:9") -> AlertsConfig:
    """A realistic rule set: per-feature drift, prediction drift, quality, performance, fairness."""
    return AlertsConfig.model_validate(
        {
            "group_wait": "0s",
            "channels": {
                "slack": {"type": "slack", "url": f"{url}/slack"},
                "pagerduty": {"type": "pagerduty", "routing_key": "k" * 32, "url": f"{url}/pd"},
                "retrain": {"type": "retrain", "url": f"{url}/retrain", "secrets": [SECRET]},
                "log": {"type": "log"},
            },
            "rules": [
                {
                    "name": "feature-psi-high",
                    "match": ["kind=data_drift", "detector=psi"],
                    "above": 0.2,
                    "severity": "warning",
                    "channels": ["slack", "retrain", "log"],
                },
                {
                    "name": "feature-drift",
                    "match": ["kind=data_drift", "detector!=psi"],
                    "for": 2,
                    "severity": "info",
                    "channels": ["slack"],
                },
                {
                    "name": "prediction-drift",
                    "match": ["kind=prediction_drift"],
                    "severity": "error",
                    "channels": ["slack", "pagerduty"],
                },
                {
                    "name": "data-quality",
                    "match": ["kind=data_quality", "metric=~missing_rate|type_error_rate"],
                    "severity": "warning",
                    "channels": ["slack"],
                },
                {
                    "name": "roc-auc-low",
                    "match": ["kind=performance", "metric=roc_auc"],
                    "below": 0.8,
                    "min_labeled": 500,
                    "severity": "critical",
                    "channels": ["pagerduty"],
                },
                {
                    "name": "demographic-parity",
                    "match": ["kind=fairness", "metric=demographic_parity_difference"],
                    "above": 0.1,
                    "severity": "warning",
                    "channels": ["slack"],
                },
            ],
            "inhibit_rules": [
                {"source_matchers": ["rule=roc-auc-low"], "target_matchers": ["kind=data_drift"]}
            ],
        }
    )


def evaluation_rate(engine: Engine, results: list[Any]) -> tuple[float, int]:
    """Results per second through ``evaluate``, one transaction per window; notifications queued."""
    by_window: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for result in results:
        by_window[result.model, result.window_index].append(result)
    alerts = AlertEngine(rules_config())
    queued = 0
    started = time.perf_counter()
    for key in sorted(by_window, key=lambda k: k[1]):
        window = by_window[key]
        now = datetime.fromtimestamp(window[0].window_end / 1000, UTC) + timedelta(seconds=5)
        with engine.begin() as connection:
            queued += len(alerts.evaluate(window, now, connection).notifications)
    return len(results) / (time.perf_counter() - started), queued


def synthetic_results(windows: int) -> list[ResultRecord]:
    """25 features × 6 detectors per hourly window; five features drift in the second half."""
    start = 1_795_651_200_000
    records = []
    for index in range(windows):
        for f in range(25):
            for detector in DETECTORS:
                value = 0.35 if index >= windows // 2 and f < 5 else 0.05
                records.append(
                    ResultRecord(
                        model="bench",
                        model_version="1",
                        reference_id="ref",
                        window_start=start + index * HOUR,
                        window_end=start + (index + 1) * HOUR,
                        window_index=index,
                        kind="data_drift",
                        detector=detector,
                        feature=f"feature_{f:02d}",
                        metric=None,
                        group_attribute=None,
                        value=value,
                        p_value=None,
                        threshold=0.2,
                        direction="above",
                        drift=value > 0.2,
                        status="ok",
                        n_reference=200_000,
                        n_window=40_000,
                        n_labeled=None,
                    )
                )
    return records


class _TimedTransport(httpx.HTTPTransport):
    """Adds up the time spent in HTTP exchanges (network and receiver)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = super().handle_request(request)
        response.read()
        self.seconds += time.perf_counter() - started
        return response


@contextmanager
def receiver() -> Iterator[str]:
    """A webhook receiver on 127.0.0.1 that answers 200 at once."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # one write per answer: no Nagle / delayed-ACK stalls

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def dispatcher_overhead(engine: Engine, notifications: int) -> tuple[list[float], list[float]]:
    """Per delivered notification: the dispatcher's own seconds and the HTTP exchange's."""
    with receiver() as url:
        config = AlertsConfig.model_validate(
            {
                "group_wait": "0s",
                "channels": {"hook": {"type": "webhook", "url": url, "secrets": [SECRET]}},
                "rules": [{"name": "drift", "severity": "warning", "channels": ["hook"]}],
                "delivery": {"batch_size": 1},
            }
        )
        drifted = synthetic_results(1)[0]
        results = [replace(drifted, model=f"model-{i:04d}") for i in range(notifications)]
        now = datetime.fromtimestamp(drifted.window_end / 1000, UTC) + timedelta(seconds=5)
        with engine.begin() as connection:
            AlertEngine(config).evaluate(results, now, connection)
        transport = _TimedTransport()
        own, exchange = [], []
        with httpx.Client(transport=transport) as http:
            dispatcher = Dispatcher(
                engine, config, registry=CollectorRegistry(), clock=lambda: now, http=http
            )
            while True:
                before = transport.seconds
                started = time.perf_counter()
                delivered = dispatcher.run_once()
                elapsed = time.perf_counter() - started
                if not delivered:
                    break
                spent = transport.seconds - before
                own.append(elapsed - spent)
                exchange.append(spent)
        with engine.connect() as connection:
            left = connection.scalar(
                select(func.count()).where(
                    alert_outbox.c.channel == "hook", alert_outbox.c.state != "delivered"
                )
            )
        assert left == 0, f"{left} notifications not delivered"
    return own, exchange


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _database(url: str | None, scratch: Path, name: str) -> Engine:
    """A migrated database with empty alerting tables."""
    engine = storage.create(url or f"sqlite:///{scratch / name}")
    storage.upgrade(engine)
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            connection.execute(table.delete())
    return engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=250_000)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--notifications", type=int, default=500)
    parser.add_argument("--storage", help="an empty database URL (default: temporary SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)

        config_path, predictions = write_inputs(directory, args.events)
        outcome = replay(configuration.load(config_path), predictions, directory / "out")
        produced = list(outcome.results.values())
        production = len(produced) / outcome.seconds
        engine = _database(args.storage, directory, "replay.db")
        rate, queued = evaluation_rate(engine, produced)
        engine.dispose()
        print(
            f"pipeline (replay, {args.events:,} events): {len(produced):,} results in "
            f"{outcome.windows} windows, {production:,.0f} results/s produced"
        )
        print(
            f"rule evaluation on those results  : {rate:>12,.0f} results/s "
            f"({rate / production:,.0f}x production; {queued} notifications queued)"
        )

        synthetic = synthetic_results(args.windows)
        engine = _database(args.storage, directory, "synthetic.db")
        rate, queued = evaluation_rate(engine, synthetic)
        engine.dispose()
        print(
            f"rule evaluation, {args.windows} windows x 25 features x 6 detectors: "
            f"{rate:,.0f} results/s ({queued} notifications queued)"
        )

        engine = _database(args.storage, directory, "dispatch.db")
        own, exchange = dispatcher_overhead(engine, args.notifications)
        engine.dispose()
        print(
            f"dispatcher, {len(own)} signed webhooks to a local receiver: own time per "
            f"notification median {statistics.median(own) * 1000:.2f} ms, "
            f"p99 {_percentile(own, 0.99) * 1000:.2f} ms "
            f"(HTTP exchange median {statistics.median(exchange) * 1000:.2f} ms)"
        )


if __name__ == "__main__":
    main()
