"""Local HTTP servers that answer like Slack, PagerDuty, a signed-webhook consumer and Alertmanager.

Each binds 127.0.0.1 on a free port, runs in a thread, records every request,
and is a context manager that stops it. Each can be told to fail the next N
requests (any status, with ``Retry-After``), to hang (answer only after the
client has given up), or to take ``delay`` seconds over every answer. They
check what the real services check:

- Slack: a Block Kit body within 50 blocks, 3,000 characters per section
  text and 150 per header, else 400 ``invalid_payload``; 200 ``ok``.
- PagerDuty Events v2: routing key, ``event_action`` in trigger|acknowledge|resolve,
  ``dedup_key`` ≤ 255, and for triggers ``summary`` (≤ 1,024), ``source`` and
  ``severity`` in critical|error|warning|info, else 400; 202 when accepted.
- Webhook: Standard Webhooks signature verified with the ``standardwebhooks``
  package (401 if wrong), the body validated against a JSON Schema (400),
  and a ``webhook-id`` seen before counted as a duplicate (200, not processed again).
- Alertmanager: ``POST /api/v2/alerts`` with a list of alerts with labels; 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Request:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hang:
    seconds: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or die mid-answer are part of the tests, not errors."""


class Receiver:
    """A recording HTTP server; subclasses decide how to answer a request."""

    def __init__(self, *, hang_seconds: float = 2.0, delay: float = 0.0) -> None:
        self.hang_seconds = hang_seconds
        self.delay = delay
        self.received: list[Request] = []
        self.accepted: list[Request] = []
        self._script: deque[Reply | _Hang] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the receiver is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``Retry-After``)."""
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        with self._lock:
            self._script.extend(Reply(status, b"failure", headers) for _ in range(count))

    def hang_next(self, count: int) -> None:
        """Answer the next ``count`` requests only after ``hang_seconds`` (past client timeouts)."""
        with self._lock:
            self._script.extend(_Hang(self.hang_seconds) for _ in range(count))

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            wbufsize = 1 << 16  # one write per answer: no Nagle / delayed-ACK stalls

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                reply = receiver._answer(Request(self.path, headers, body, time.monotonic()))
                if reply is None:
                    return
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: Request) -> Reply | None:
        with self._lock:
            self.received.append(request)
            directive = self._script.popleft() if self._script else None
        if isinstance(directive, _Hang):
            self._stopping.wait(directive.seconds)
            return None
        if directive is not None:
            return directive
        if self.delay:
            self._stopping.wait(self.delay)
        reply = self.handle(request)
        if 200 <= reply.status < 300:
            with self._lock:
                self.accepted.append(request)
        return reply


class SlackReceiver(Receiver):
    """Answers like a Slack incoming webhook."""

    MAX_BLOCKS = 50
    MAX_SECTION = 3000
    MAX_HEADER = 150

    def handle(self, request: Request) -> Reply:
        try:
            message = request.json
        except ValueError:
            return Reply(400, b"invalid_payload")
        if problem := self.problem(message):
            return Reply(400, b"invalid_payload", {"x-problem": problem})
        return Reply(200, b"ok")

    def problem(self, message: Any) -> str:
        """Why Slack would refuse ``message`` ("" if it would not)."""
        if not isinstance(message, dict) or not (message.get("text") or message.get("blocks")):
            return "no text"
        blocks = message.get("blocks", [])
        if len(blocks) > self.MAX_BLOCKS:
            return f"{len(blocks)} blocks"
        for block in blocks:
            text = block.get("text", {}).get("text", "")
            if block["type"] == "header" and len(text) > self.MAX_HEADER:
                return f"header of {len(text)} characters"
            if block["type"] == "section" and len(text) > self.MAX_SECTION:
                return f"section of {len(text)} characters"
        return ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [request.json for request in self.accepted]


class PagerDutyReceiver(Receiver):
    """Answers like the PagerDuty Events API v2 and tracks incidents by ``dedup_key``."""

    ACTIONS = ("trigger", "acknowledge", "resolve")
    SEVERITIES = ("critical", "error", "warning", "info")

    def handle(self, request: Request) -> Reply:
        try:
            event = request.json
        except ValueError:
            return self._invalid(["body is not JSON"])
        errors = self.errors(event)
        if errors:
            return self._invalid(errors)
        body = {"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]}
        return Reply(202, json.dumps(body).encode(), {"content-type": "application/json"})

    def errors(self, event: Any) -> list[str]:
        if not isinstance(event, dict):
            return ["event must be an object"]
        errors = []
        if not event.get("routing_key"):
            errors.append("routing_key is missing")
        if event.get("event_action") not in self.ACTIONS:
            errors.append("event_action is invalid")
        key = event.get("dedup_key")
        if not isinstance(key, str) or not key or len(key) > 255:
            errors.append("dedup_key must be 1 to 255 characters")
        if event.get("event_action") == "trigger":
            payload = event.get("payload") or {}
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("payload.summary must be 1 to 1024 characters")
            if not payload.get("source"):
                errors.append("payload.source is missing")
            if payload.get("severity") not in self.SEVERITIES:
                errors.append("payload.severity is invalid")
        return errors

    @property
    def events(self) -> list[dict[str, Any]]:
        return [request.json for request in self.accepted]

    @property
    def incidents(self) -> dict[str, str]:
        """The state of each incident by dedup key: ``triggered`` or ``resolved``."""
        states: dict[str, str] = {}
        for event in self.events:
            action = event["event_action"]
            states[event["dedup_key"]] = "resolved" if action == "resolve" else "triggered"
        return states

    def _invalid(self, errors: list[str]) -> Reply:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return Reply(400, json.dumps(body).encode(), {"content-type": "application/json"})


class WebhookReceiver(Receiver):
    """A consumer of signed webhooks (a retrain pipeline): verifies, validates, deduplicates."""

    def __init__(
        self,
        secrets: Sequence[str],
        schema: dict[str, Any] | None = None,
        *,
        hang_seconds: float = 2.0,
        delay: float = 0.0,
    ) -> None:
        super().__init__(hang_seconds=hang_seconds, delay=delay)
        self._verifiers = [Webhook(secret) for secret in secrets]
        self._validator = None if schema is None else jsonschema.Draft202012Validator(schema)
        self.seen: Counter[str] = Counter()
        self.processed: list[dict[str, Any]] = []

    def handle(self, request: Request) -> Reply:
        payload = None
        for verifier in self._verifiers:
            try:
                payload = verifier.verify(request.body, request.headers)
                break
            except WebhookVerificationError:
                continue
        if payload is None:
            return Reply(401, b"invalid signature")
        if self._validator is not None:
            errors = [error.message for error in self._validator.iter_errors(payload)]
            if errors:
                return Reply(400, json.dumps(errors).encode())
        message_id = request.headers["webhook-id"]
        with self._lock:
            self.seen[message_id] += 1
            if self.seen[message_id] == 1:
                self.processed.append(payload)
        return Reply(200, b"ok")

    @property
    def duplicates(self) -> int:
        """Deliveries of a ``webhook-id`` already processed (not processed again)."""
        return sum(count - 1 for count in self.seen.values())


class AlertmanagerReceiver(Receiver):
    """Answers like Alertmanager's ``POST /api/v2/alerts``."""

    def handle(self, request: Request) -> Reply:
        if request.path != "/api/v2/alerts":
            return Reply(404, b"not found")
        try:
            alerts = request.json
        except ValueError:
            return Reply(400, b"invalid JSON")
        valid = isinstance(alerts, list) and all(
            isinstance(a, dict) and isinstance(a.get("labels"), dict) and a["labels"]
            for a in alerts
        )
        return Reply(200, b"") if valid else Reply(400, b"invalid alerts")

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return [alert for request in self.accepted for alert in request.json]
