"""``driftwarden demo``: the whole path on this machine, with nothing configured.

Starts a local Kafka-protocol broker on a free loopback port, writes the
reference of a synthetic credit model, produces a simulated day of 200,000
predictions of version 7 — three features drift after midday, outcomes change in the
evening — with a challenger, version 8, scoring 30% of the same requests in shadow
(it has learnt the evening's outcomes), and their labels, runs the daemon on them
(SQLite, metrics on 127.0.0.1) with a local retrain-webhook receiver that checks signatures, and
reports what it found. A second receiver always fails, to show failed
deliveries. It stops by itself once the day is processed, unless
``--keep-running``.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from driftwarden.alerts.rules import significantly_better
from driftwarden.alerts.signing import signature
from driftwarden.core.records import PREDICTION_DISTRIBUTION, ResultRecord
from driftwarden.core.times import format_time
from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.local_broker import LocalBroker, free_port
from driftwarden.monitor.evaluation.paired_comparison import AGREEMENT
from driftwarden.monitor.pipeline.versions import lane_key
from driftwarden.monitor.service import logs
from driftwarden.monitor.service.daemon import Daemon
from driftwarden.monitor.storage.join_store import JoinStore

HOUR_MS = 3_600_000
EVENTS = 200_000
WINDOWS = 24
PREDICTIONS = "predictions"
LABELS = "labels"
SECRET = "whsec_ZHJpZnR3YXJkZW4tZGVtby1zZWNyZXQ="  # the demo's own, not a secret anywhere
CHAMPION, CHALLENGER = "7", "8"
SHADOW_SHARE = 0.3

log = logging.getLogger("driftwarden.demo")


@dataclass(frozen=True)
class DemoPlan:
    """Where the demo's day starts, when inputs drift and when outcomes change (epoch ms)."""

    start: int
    drift_from: int
    concept_from: int

    @classmethod
    def yesterday(cls, now_ms: int) -> DemoPlan:
        start = (now_ms // HOUR_MS - WINDOWS - 2) * HOUR_MS
        return cls(start, start + 12 * HOUR_MS, start + 18 * HOUR_MS)


@dataclass
class Receiver:
    """A local webhook endpoint: verifies Standard Webhooks signatures and keeps payloads;
    with ``fail`` it answers every request with 503."""

    fail: bool = False
    received: list[dict] = field(default_factory=list)
    rejected: int = 0

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.fail:
                    self.send_response(503)
                elif receiver.verified(self.headers, body):
                    receiver.received.append(orjson.loads(body))
                    self.send_response(204)
                else:
                    receiver.rejected += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def verified(self, headers: object, body: bytes) -> bool:
        message_id = headers.get("webhook-id", "")  # type: ignore[attr-defined]
        timestamp = headers.get("webhook-timestamp", "0")  # type: ignore[attr-defined]
        given = headers.get("webhook-signature", "")  # type: ignore[attr-defined]
        expected = signature([SECRET], message_id, int(timestamp), body)
        return any(hmac.compare_digest(part, expected) for part in given.split())

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def run_demo(out: Path, *, keep_running: bool = False, port: int | None = None) -> int:
    """Run the demo in ``out``; the exit status."""
    out.mkdir(parents=True, exist_ok=True)
    logs.configure(json_lines=False, level=logging.WARNING)
    plan = DemoPlan.yesterday(int(time.time() * 1000))
    synthetic.reference(50_000, seed=0).write_parquet(out / "reference.parquet")
    database = out / "demo.db"
    database.unlink(missing_ok=True)
    retrain, failing = Receiver(), Receiver(fail=True)
    with LocalBroker(log=out / "broker.log") as broker:
        config_path = _write_config(
            out, broker.bootstrap, database, port or _http_port(), retrain.start(), failing.start()
        )
        loaded = configuration.load(config_path)
        storage.upgrade(storage.create(loaded.storage.url))
        daemon = Daemon(loaded, config_path=config_path)
        daemon.install_signal_handlers()
        print(f"driftwarden demo: broker {broker.bootstrap}, working directory {out}")
        print(
            f"  {EVENTS:,} predictions of {synthetic.MODEL} over "
            f"{format_time(plan.start)} .. {format_time(plan.start + WINDOWS * HOUR_MS)}; "
            f"{', '.join(synthetic.DEFAULT_DRIFT)} drift from {format_time(plan.drift_from)}; "
            f"outcomes change from {format_time(plan.concept_from)}; labels 1 min to 1 h later"
        )
        print(
            f"  version {CHALLENGER} scores {SHADOW_SHARE:.0%} of the requests in shadow of "
            f"version {CHAMPION}, and has learnt the outcomes after their change"
        )
        events, labels = _day(plan)
        threading.Thread(
            target=_produce, args=(broker.bootstrap, events, labels), daemon=True
        ).start()
        shadowed = events.filter(pl.col("model_version") == CHALLENGER)["id"]
        labelled = labels.height + int(labels["id"].is_in(shadowed.implode()).sum())
        watcher = threading.Thread(
            target=_watch,
            args=(daemon, loaded.storage.url, labelled, retrain, keep_running),
            daemon=True,
        )
        watcher.start()
        started = time.monotonic()
        status = daemon.run()
        _summarize(loaded.storage.url, time.monotonic() - started, retrain, failing, loaded)
    retrain.stop()
    failing.stop()
    return status


def _http_port() -> int:
    """9108 when it is free, else any free port."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 9108))
            return 9108
        except OSError:
            return free_port()


def _write_config(
    out: Path, bootstrap: str, database: Path, port: int, retrain_url: str, failing_url: str
) -> Path:
    text = synthetic.config_yaml("reference.parquet", f"sqlite:///{database.resolve()}").replace(
        "allowed_lateness: 5m}",
        "allowed_lateness: 5m, idle_timeout: 2s}\n    multivariate_drift: {enabled: true}\n"
        f'    versions: {{split: true, champion: "{CHAMPION}"}}\n'
        "    segments: {attributes: [channel]}\n"
        "    business: {metrics: [loss_amount], correlation_windows: 12}",
    )
    text += f"""\
kafka:
  bootstrap_servers: {bootstrap}
  predictions_topic: {PREDICTIONS}
  labels_topic: {LABELS}
  group_id: driftwarden-demo
  client: {{session_timeout_ms: 6000, heartbeat_interval_ms: 2000}}
http:
  host: 127.0.0.1
  port: {port}
  external_url: http://127.0.0.1:{port}
events:
  max_future_skew: 1d
alerts:
  group_wait: 1s
  group_interval: 2s
  max_window_age: 30d
  channels:
    retrain:
      type: retrain
      url: "{retrain_url}"
      secrets: ["{SECRET}"]
    ops-webhook:
      type: webhook
      url: "{failing_url}"
      secrets: ["{SECRET}"]
    log:
      type: log
  delivery:
    max_age: 5s
  rules:
    - name: feature-drift
      match: [kind=data_drift, detector=psi]
      above: 0.2
      severity: warning
      channels: [retrain, ops-webhook, log]
    - name: concept-drift
      match: [kind=concept_drift]
      severity: error
      channels: [log]
    - name: challenger-better
      match: [kind=version_comparison]
      comparison: better
      severity: info
      channels: [log]
"""
    path = out / "config.yaml"
    path.write_text(text)
    return path


def _day(plan: DemoPlan) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The day's predictions and their labels."""
    stream = synthetic.Stream(
        n=EVENTS,
        start=plan.start,
        span=WINDOWS * HOUR_MS,
        drift_from=plan.drift_from,
        concept_from=plan.concept_from,
    )
    events = synthetic.events(stream).with_columns(model_version=pl.lit(CHAMPION))
    labels = synthetic.with_losses(synthetic.label_events(events), events)
    return _with_shadow(events, plan), labels


def _with_shadow(events: pl.DataFrame, plan: DemoPlan) -> pl.DataFrame:
    """The champion's predictions and the challenger's of a share of the same requests:
    the champion's scores until the outcomes change, then the changed outcomes'
    probability (as ``synthetic.events`` makes them), which the challenger has learnt."""
    rng = np.random.default_rng(8)
    sample = events.filter(pl.Series(rng.random(events.height) < SHADOW_SHARE))
    changed = pl.col("ts") >= plan.concept_from
    learnt = (0.35 + 0.3 * (1.0 - pl.col("prediction"))).clip(0.0, 1.0).round(6)
    shadow = sample.with_columns(
        model_version=pl.lit(CHALLENGER),
        prediction=pl.when(changed).then(learnt).otherwise(pl.col("prediction")),
    )
    return pl.concat([events, shadow]).sort("ts", maintain_order=True)


def _produce(bootstrap: str, events: pl.DataFrame, labels: pl.DataFrame) -> None:
    """Produce the day's predictions, then its labels."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(PREDICTIONS, 4, 1), NewTopic(LABELS, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=262_144)
    key = synthetic.MODEL.encode()
    for line in synthetic.prediction_lines(events):
        producer.send(PREDICTIONS, value=line, key=key)
    for line in synthetic.label_lines(labels):
        producer.send(LABELS, value=line, key=key)
    producer.flush()
    producer.close()


def _watch(daemon: Daemon, url: str, labelled: int, retrain: Receiver, keep_running: bool) -> None:
    """Stop the daemon once the day's windows closed, its labels joined and its webhooks
    arrived (unless asked to stay up)."""
    engine = storage.create(url)
    join_store = JoinStore(engine.dialect.name)
    deadline = time.monotonic() + 150
    progress, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with engine.connect() as connection:
            closed = connection.exec_driver_sql("SELECT count(*) FROM windows").scalar()
            joined = sum(
                join_store.label_counts(connection, lane_key(synthetic.MODEL, version))[1]
                for version in (CHAMPION, CHALLENGER)
            )
        every = closed >= 2 * WINDOWS  # each version's
        if every and joined >= labelled and retrain.received:
            break
        if (closed, joined) != progress:
            progress, still_since = (closed, joined), time.monotonic()
        elif every and time.monotonic() - still_since > 15:
            break
    time.sleep(3)  # let the last notifications and resolves go out
    engine.dispose()
    if keep_running:
        if daemon.metrics_url:
            print(f"  running; metrics at {daemon.metrics_url}; Ctrl-C to stop")
        return
    daemon.stop()


def _summarize(
    url: str, seconds: float, retrain: Receiver, failing: Receiver, loaded: configuration.Config
) -> None:
    engine = storage.create(url)
    records = list(storage.Store(engine).results())
    with engine.connect() as connection:
        failed = connection.exec_driver_sql(
            "SELECT count(*) FROM alert_outbox WHERE state = 'failed'"
        ).scalar()
    engine.dispose()
    windows = {r.window_index for r in records}
    print(f"  {len(windows)} windows closed in {seconds:.1f} s; {len(records):,} results stored")
    drifted: dict[str, list] = {}
    for record in records:
        champion = record.model_version == CHAMPION
        if champion and record.drift and record.kind == "data_drift" and record.feature:
            drifted.setdefault(record.feature, []).append(record)
    for feature, hits in sorted(drifted.items()):
        first = min(hits, key=lambda r: r.window_start)
        worst = max(hits, key=lambda r: r.value or 0.0)
        print(
            f"  drift: {feature:<12} from {format_time(first.window_start)} "
            f"({len({h.window_index for h in hits})} windows); largest {worst.detector} "
            f"{worst.value:.3f} against {worst.threshold}"
        )
    auc = {
        (r.kind, r.window_index): r.value
        for r in records
        if r.metric == "roc_auc"
        and r.kind in ("performance", "estimated_performance")
        and r.model_version == CHAMPION
    }
    for index in (6, 15, 21):
        realized, estimated = (
            auc.get(("performance", index)),
            auc.get(("estimated_performance", index)),
        )
        if realized is not None and estimated is not None:
            print(
                f"  ROC AUC, window {index:>2}: realized {realized:.3f}, "
                f"estimated without labels {estimated:.3f}"
            )
    _print_comparisons(records)
    _print_losses(records)
    detections = sorted(
        (r.detected_at, r.detector) for r in records if r.kind == "concept_drift" and r.detected_at
    )
    for detected_at, detector in detections[:3]:
        print(f"  concept drift: {detector} fired at label time {format_time(detected_at)}")
    for payload in retrain.received:
        features = sorted(
            {e.get("feature") for e in payload.get("evidence", []) if e.get("feature")}
        )
        print(
            f"  retrain webhook (signature verified): {payload['state']} "
            f"{payload['rule']['name']} for {payload['model']}, features {', '.join(features)}"
        )
    print(f"  failing receiver: {failed} notification(s) given up after retries (by design)")
    print(f"  metrics: http://127.0.0.1:{loaded.http.port}/metrics; results: {url}")
    print(f"  evidence pages: http://127.0.0.1:{loaded.http.port}/ui/")


def _print_losses(records: list) -> None:
    """The champion's business metric: its mean loss, and its correlation with ROC AUC."""
    champion = [r for r in records if r.model_version == CHAMPION and r.value is not None]
    losses = {r.window_index: r.value for r in champion if r.kind == "business_metric"
              and r.detector == "mean"}  # fmt: skip
    if losses:
        first, last = min(losses), max(losses)
        print(
            f"  loss_amount: mean per label {losses[first]:.2f} in window {first}, "
            f"{losses[last]:.2f} in window {last}"
        )
    correlations = [r for r in champion if r.kind == "business_correlation"
                    and r.group_attribute == "roc_auc"]  # fmt: skip
    if correlations:
        latest = max(correlations, key=lambda r: r.window_index)
        print(
            f"  loss_amount vs ROC AUC over the last {latest.n_window} windows: "
            f"r = {latest.value:.2f} (p = {latest.p_value:.2g})"
        )


def _print_comparisons(records: list) -> None:
    """The challenger against the champion in a morning, an afternoon and an evening window:
    paired on the requests both scored (shadow), with how often the two agree; and without
    labels, how far its predictions are from the champion's and its estimated error rate."""
    found: dict[tuple[int, str], ResultRecord] = {}
    for r in records:
        if r.kind == "version_comparison" and r.status == "ok" and r.value is not None:
            what = r.detector if r.metric == PREDICTION_DISTRIBUTION else r.metric
            found[(r.window_index, what)] = r
    for index in (6, 15, 21):
        record = found.get((index, "error_rate"))
        if record is not None:
            agree = found.get((index, AGREEMENT))
            counts = f"n {record.n_labeled:,} vs {record.n_reference:,}"  # unpaired: the arms
            if agree is not None:
                counts = (
                    f"{record.n_labeled:,} labelled of {record.n_reference:,} paired requests, "
                    f"agree on {agree.value:.1%}"
                )
            print(
                f"  version {record.model_version} vs {record.champion_version}, window "
                f"{index:>2}: {_difference(record)} ({record.detector}, {counts}): "
                f"{_verdict(record)}"
            )
        estimated = found.get((index, "estimated_error_rate"))
        distances = [
            found[key]
            for key in sorted(found)
            if key[0] == index and found[key].metric == PREDICTION_DISTRIBUTION
        ]
        if estimated is not None and distances:
            moved = ", ".join(
                f"{r.detector} {r.value:.3f}{' (differs)' if r.drift else ''}" for r in distances
            )
            print(
                f"    without labels (if the reference's calibration holds): "
                f"{_difference(estimated)}: {_verdict(estimated)}; "
                f"predictions against the champion's: {moved}"
            )


def _difference(record: ResultRecord) -> str:
    assert record.value is not None and record.ci_low is not None and record.ci_high is not None
    return (
        f"{record.metric} difference {record.value:+.3f} "
        f"[{record.ci_low:+.3f}, {record.ci_high:+.3f}], p = {record.p_value:.2g}"
    )


def _verdict(record: ResultRecord) -> str:
    if significantly_better(record):
        return "significantly better"
    return "significantly worse" if record.drift else "no significant difference"
