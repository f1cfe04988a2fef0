"""The dispatcher: delivers the outbox, durably, to every channel.

Each round claims due rows per channel (``outbox.claim``: a lease, with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends them one by one and records
each outcome: delivered; retry later (timeouts, connection errors, 5xx, 408,
429, and 401/403 up to ``AUTH_ATTEMPTS`` attempts) after exponential backoff
with jitter or the receiver's ``Retry-After``; or failed (another 4xx, a
body that breaks its channel's contract, ``max_attempts`` reached, older
than ``max_age``, or still 401/403 after ``AUTH_ATTEMPTS``) — a failed row
stays in the table, is counted and logged, and
``driftwarden alerts deliveries --failed`` lists it. After a retryable
failure the channel is left alone until that row's next attempt, so a
receiver that is down gets one probe per backoff period, not one per row,
and cannot hold up the other channels. Slack channels send at most one
message per ``min_interval``.

``run_once`` does one round (tests drive it with an injected clock);
``start``/``stop`` run rounds on a background thread.
"""

from __future__ import annotations

import logging
import os
import random as _random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Engine

from driftwarden.alerts import outbox, store
from driftwarden.alerts.backoff import backoff
from driftwarden.alerts.channels import Channel, SendResult, Transport, build_channels, validate
from driftwarden.alerts.channels.base import AUTH_STATUSES
from driftwarden.alerts.config import AlertsConfig
from driftwarden.alerts.metrics import AlertMetrics
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.core.times import Clock, duration_ms

_log = logging.getLogger("driftwarden.alerts")
_LEASE_MARGIN = 30_000
_HOUSEKEEPING_EVERY = 1_000

AUTH_ATTEMPTS = 10
"""Attempts a row gets while its receiver answers 401 or 403 (a secret rotated on one side
and not yet on the other): with the default backoff (1 s doubling), 4 to 8.5 minutes.
Then it fails with outcome ``unauthorized``; ``delivery.max_attempts`` and ``max_age``,
if they come first, still end it sooner."""


class Dispatcher:
    """Delivers outbox rows of ``engine``'s database per ``config``.

    Parameters
    ----------
    engine
        The database holding the outbox (several dispatchers may share it).
    config
        The ``alerts`` section: channels and delivery settings.
    registry
        Where the alerting metrics are registered.
    clock
        The time now in epoch milliseconds; drives backoff, leases, ages and rate limits.
    http
        The HTTP client (default: one of its own, closed by ``stop``).
    random
        Source of jitter in [0, 1).
    exports_database_figures
        Whether this instance exports the gauges read from the database (alerts, outbox
        backlog): in a fleet sharing one database only one does, so sums stay true.
    """

    def __init__(
        self,
        engine: Engine,
        config: AlertsConfig,
        *,
        registry: CollectorRegistry,
        clock: Clock,
        http: httpx.Client | None = None,
        random: Callable[[], float] = _random.random,
        exports_database_figures: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine = engine
        self.metrics = AlertMetrics(registry)
        self._clock = clock
        self._random = random
        self._exports = exports_database_figures
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client()
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._paused: dict[str, int] = {}
        self._last_sent: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reload(config)

    def reload(self, config: AlertsConfig, retired: Mapping[str, Channel] | None = None) -> None:
        """Use new channels and delivery settings from the next round on (SIGHUP).

        ``retired`` channels (those the configuration dropped) still deliver what is
        queued for them — the resolves of their incidents — until nothing is left.
        """
        self._config = config
        self._retired: dict[str, Channel] = dict(retired or {})
        self._channels: dict[str, Channel] = {**self._retired, **build_channels(config)}
        self._housekept_at: int | None = None

    def run_once(self) -> int:
        """Deliver what is due now; return how many notifications were delivered."""
        config, channels = self._config, self._channels
        moment = self._clock()
        delivered = 0
        with self.engine.connect() as connection:
            if self._housekept_at is None or moment - self._housekept_at >= _HOUSEKEEPING_EVERY:
                self._housekeeping(connection, moment)
            for name, channel in channels.items():
                settings = config.channels.get(name)
                interval = 0 if settings is None else duration_ms(settings.min_interval)
                if self._paused.get(name, moment) > moment:
                    continue
                if interval and moment - self._last_sent.get(name, moment - interval) < interval:
                    continue
                limit = 1 if interval else config.delivery.batch_size
                delivered += self._deliver(connection, name, channel, limit)
        return delivered

    def refresh_metrics(self) -> None:
        """Set the alert and outbox gauges from the database now."""
        with self.engine.connect() as connection:
            self._refresh_metrics(connection)

    def _refresh_metrics(self, connection: Connection) -> None:
        if not self._exports():
            self.metrics.withdraw()
            return
        moment = self._clock()
        with connection.begin():
            counts = store.alert_counts(connection)
            backlog = outbox.backlog(connection)
        self.metrics.refresh(self._config, counts, backlog, moment)

    def _housekeeping(self, connection: Connection, moment: int) -> None:
        """Once a second: let go of retired channels with nothing left to deliver, give up
        rows of removed channels, refresh the gauges."""
        with connection.begin():
            if self._retired:
                backlog = outbox.backlog(connection)
                for name in [name for name in self._retired if name not in backlog]:
                    del self._retired[name], self._channels[name]
            unrouted = outbox.fail_unrouted(connection, list(self._channels), moment)
        for channel, count in unrouted.items():
            self.metrics.count(channel, "expired", count)
            _log.error(
                "%d notifications to %s given up: the channel is no longer configured",
                count,
                channel,
                extra={
                    "event": "alert_delivery_failed",
                    "channel": channel,
                    "outcome": "expired",
                    "count": count,
                },
            )
        self._refresh_metrics(connection)
        self._housekept_at = moment

    def start(self) -> None:
        """Run rounds on a background thread until ``stop``."""
        if self._thread is not None:
            raise RuntimeError("the dispatcher is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="driftwarden-dispatcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the current send; whether the thread ended within ``timeout`` seconds."""
        self._stop.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
            stopped = not self._thread.is_alive()
            self._thread = None
        if stopped and self._owns_http:
            self._http.close()
        return stopped

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            poll = self._config.delivery.poll_interval.total_seconds()
            try:
                delivered = self.run_once()
                failures = 0
            except Exception:
                failures += 1
                delivered = 0
                _log.exception("dispatcher round failed", extra={"event": "dispatcher_error"})
            if not delivered:
                self._stop.wait(min(poll * 2 ** min(failures, 6), 60.0))

    def _deliver(self, connection: Connection, name: str, channel: Channel, limit: int) -> int:
        """Claim and send up to ``limit`` rows of one channel; how many were delivered."""
        delivery = self._config.delivery
        moment = self._clock()
        token = f"{uuid.uuid4().hex}:{self._owner}"[:64]  # unique first; the rest for people
        lease = moment + limit * duration_ms(delivery.timeout) + _LEASE_MARGIN
        with connection.begin():
            claimed = outbox.claim(
                connection, name, owner=token, now=moment, lease_until=lease, limit=limit
            )
        delivered = 0
        for index, entry in enumerate(claimed):
            result = self._attempt(connection, name, channel, entry, token)
            if result.ok:
                delivered += 1
            elif result.retryable:
                with connection.begin():
                    outbox.release(connection, [e.id for e in claimed[index + 1 :]], token)
                break
        return delivered

    def _attempt(
        self, connection: Connection, name: str, channel: Channel, entry: OutboxEntry, token: str
    ) -> SendResult:
        """Send one row (unless it is too old) and record the outcome."""
        delivery = self._config.delivery
        now = self._clock()
        if now - entry.created_at >= duration_ms(delivery.max_age):
            result = SendResult(False, detail=f"not delivered within max_age {delivery.max_age}")
            self._record(connection, name, entry, token, result, "expired", now, attempted=False)
            return result
        problem = None if entry.attempts else validate(entry.channel_type, entry.payload)
        if problem is not None:  # queued unchecked (or edited since): never POSTed
            result = SendResult(False, detail=f"invalid payload: {problem}")
            self._record(connection, name, entry, token, result, "rejected", now, attempted=False)
            return result
        started = time.perf_counter()
        try:
            result = channel.send(
                entry, Transport(self._http, delivery.timeout.total_seconds(), now)
            )
        except Exception as exc:  # a channel bug must not kill the dispatcher
            result = SendResult(False, True, detail=f"{type(exc).__name__}: {exc}")
        self.metrics.delivery.labels(name).observe(time.perf_counter() - started)
        after = self._clock()
        if result.ok:
            self._last_sent[name] = after
            self._record(connection, name, entry, token, result, "sent", after)
            return result
        attempts = entry.attempts + 1
        unauthorized = result.status in AUTH_STATUSES
        too_old = after - entry.created_at >= duration_ms(delivery.max_age)
        too_many = delivery.max_attempts is not None and attempts >= delivery.max_attempts
        if not result.retryable:
            self._record(connection, name, entry, token, result, "rejected", after)
        elif too_old or too_many or (unauthorized and attempts >= AUTH_ATTEMPTS):
            outcome = "unauthorized" if unauthorized else "expired"
            self._record(connection, name, entry, token, result, outcome, after)
        else:
            wait = (
                timedelta(seconds=result.retry_after)
                if result.retry_after is not None
                else backoff(attempts, delivery.backoff_initial, delivery.backoff_max, self._random)
            )
            retry_at = after + duration_ms(wait)
            self._paused[name] = retry_at
            self._record(connection, name, entry, token, result, "retry", after, retry_at=retry_at)
        return result

    def _record(
        self,
        connection: Connection,
        name: str,
        entry: OutboxEntry,
        token: str,
        result: SendResult,
        outcome: str,
        now: int,
        *,
        attempted: bool = True,
        retry_at: int | None = None,
    ) -> None:
        """Write one outcome to the row, count it and log it."""
        moment = now
        values: dict[str, object] = {
            "attempts": entry.attempts + (1 if attempted else 0),
            "last_status": result.status,
            "last_error": None if result.ok else result.detail,
        }
        if outcome == "sent":
            values |= {"state": "delivered", "delivered_at": moment}
        elif outcome == "retry":
            values |= {"next_attempt_at": retry_at}
        else:
            values |= {"state": "failed"}
        with connection.begin():
            kept = outbox.finish(connection, entry.id, token, **values)
        self.metrics.count(name, outcome)
        fields = {
            "channel": name,
            "channel_type": entry.channel_type,
            "idempotency_key": entry.idempotency_key,
            "model": entry.model,
            "status": entry.status,
            "rules": list(entry.rules),
            "severity": entry.severity,
            "attempt": values["attempts"],
            "http_status": result.status,
            "lease_lost": not kept,
        }
        if outcome == "sent":
            _log.info(
                "alert sent: %s %s to %s",
                entry.status,
                entry.model,
                name,
                extra={"event": "alert_sent", **fields},
            )
        elif outcome == "retry":
            _log.warning(
                "alert delivery to %s failed, retrying: %s",
                name,
                result.detail,
                extra={"event": "alert_delivery_retry", "error": result.detail, **fields},
            )
        else:
            _log.error(
                "alert delivery to %s failed, giving up (%s): %s",
                name,
                outcome,
                result.detail,
                extra={
                    "event": "alert_delivery_failed",
                    "outcome": outcome,
                    "error": result.detail,
                    **fields,
                },
            )
