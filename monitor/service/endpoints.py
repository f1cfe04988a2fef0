"""The daemon's HTTP endpoints: ``/metrics``, ``/livez``, ``/readyz``, ``/api/v1`` (api.py)
and the evidence pages under ``/ui/`` (ui.py).

Secured by configuration (``http``): a bearer token for ``/api/v1`` (required
off loopback), optional token or basic auth for ``/metrics``, optional TLS.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from driftwarden.monitor.config import HttpConfig
from driftwarden.monitor.config.sections import refuse_open_bind
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.service.api import (
    MAX_BODY,
    PREFIX,
    Api,
    ApiActions,
    HttpSecurity,
    error_response,
)
from driftwarden.monitor.service.ui import UI_PREFIX, Ui


class Health:
    """What ``/livez`` and ``/readyz`` answer from: heartbeats of the daemon's loops, and
    readiness.

    Each loop beats under its own name (the poll loop, the fold worker); the daemon is
    live while every loop that has beaten did so within ``stall_after`` seconds. Until a
    loop first beats, the start stands for them: a daemon whose loops never get going is
    not live ``stall_after`` seconds after it started.
    """

    def __init__(self, stall_after: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.stall_after = stall_after
        self.clock = clock
        self._beats: dict[str, float] = {"start": clock()}
        self._ready = False
        self._reason = "starting"

    def beat(self, loop: str) -> None:
        """``loop`` is alive."""
        self._beats.pop("start", None)
        self._beats[loop] = self.clock()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self._ready, self._reason = ready, reason

    @property
    def stalled(self) -> list[str]:
        """The loops (or ``start``) that last beat ``stall_after`` seconds ago or more."""
        now = self.clock()
        return sorted(loop for loop, beat in self._beats.items() if now - beat >= self.stall_after)

    @property
    def ready(self) -> tuple[bool, str]:
        return self._ready, self._reason


class EndpointServer:
    """A small threaded HTTP server on ``host:port`` (port 0 picks a free one).

    ``api`` serves ``/api/v1`` (its ``actions`` may be wired after start; until
    then those routes answer 503). A non-loopback ``host`` without an API
    token is refused with a ``ConfigError``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Health,
        *,
        api: Api | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.api = api or Api()
        self.ui = Ui(self.api.security, secure=tls is not None)
        try:
            refuse_open_bind(host, self.api.security.api_token is not None)
        except ValueError as exc:
            raise ConfigError(str(exc), "http.token_env") from None
        self.tls = tls
        handler = _handler(registry, health, self.api, self.ui)
        self._server = _Server((host, port), handler, tls)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="driftwarden-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @classmethod
    def from_config(
        cls,
        http: HttpConfig,
        registry: CollectorRegistry,
        health: Health,
        *,
        actions: ApiActions | None = None,
        clock: Callable[[], int] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EndpointServer:
        """The server ``http`` describes; secrets are read from the environment now."""
        security = HttpSecurity.from_config(http, environ)
        api = Api(actions, security) if clock is None else Api(actions, security, clock)
        tls = None if http.tls is None else tls_context(http.tls.cert_file, http.tls.key_file)
        return cls(http.host, http.port, registry, health, api=api, tls=tls)

    def start(self) -> EndpointServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def tls_context(cert_file: Any, key_file: Any) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later) from PEM certificate chain and key files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load {cert_file} and {key_file}: {exc}", "http.tls") from None
    return context


_TIMEOUT = 30.0  # seconds a client may take for the TLS handshake and each request


class _Server(ThreadingHTTPServer):
    """Threads per request; with TLS, the handshake runs in the request's thread (with a
    timeout), so a slow or silent client cannot block ``accept``."""

    def __init__(self, address: tuple[str, int], handler: type, tls: ssl.SSLContext | None) -> None:
        super().__init__(address, handler)
        self._tls = tls

    def get_request(self) -> tuple[socket, Any]:
        connection, address = super().get_request()
        if self._tls is not None:
            connection = self._tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(_TIMEOUT)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)


def _handler(
    registry: CollectorRegistry, health: Health, api: Api | None = None, ui: Ui | None = None
) -> type[BaseHTTPRequestHandler]:
    api = api or Api()
    ui = ui or Ui(api.security)

    class Handler(BaseHTTPRequestHandler):
        server_version = "driftwarden"
        timeout = _TIMEOUT

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith(PREFIX):
                self._api("GET")
            elif path == UI_PREFIX or path.startswith(f"{UI_PREFIX}/"):
                self._api("GET", ui.handle)
            elif path == "/metrics":
                refusal = api.security.authorize_metrics(self.headers.get("Authorization"))
                if refusal is not None:
                    self._respond(
                        refusal.status, refusal.body, refusal.content_type, refusal.headers
                    )
                    return
                encoder, content_type = choose_encoder(self.headers.get("Accept"))
                self._send(200, encoder(registry), content_type)
            elif path == "/livez":
                stalled = health.stalled
                body = f"stalled: {', '.join(stalled)}\n".encode() if stalled else b"ok\n"
                self._send(503 if stalled else 200, body)
            elif path == "/readyz":
                ready, reason = health.ready
                body = b"ready\n" if ready else f"not ready: {reason}\n".encode()
                self._send(200 if ready else 503, body)
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0].startswith(f"{UI_PREFIX}/"):
                self._api("POST", ui.handle)
            else:
                self._api("POST")

        def do_PUT(self) -> None:
            self._api("PUT")

        def do_PATCH(self) -> None:
            self._api("PATCH")

        def do_DELETE(self) -> None:
            self._api("DELETE")

        def _api(self, method: str, route: Callable[..., Any] | None = None) -> None:
            if route is None:
                route = api.handle
                if not self.path.startswith(PREFIX):
                    self._send(404 if method == "GET" else 405, b"not found\n")
                    return
            length_text = self.headers.get("Content-Length") or "0"
            length = int(length_text) if length_text.isdigit() else -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                refusal = api.security.authorize_api(self.headers.get("Authorization"))
                if refusal is None:
                    refusal = error_response(413, f"the body must be at most {MAX_BODY} bytes")
                self._respond(refusal.status, refusal.body, refusal.content_type, refusal.headers)
                return

            read = False

            def read_body() -> bytes:
                nonlocal read
                read = True
                return self.rfile.read(length) if length else b""

            response = route(
                method, self.path, self.headers, read_body, client=self.client_address[0]
            )
            if length and not read:
                self.close_connection = True  # an unread body must not become the next request
            self._respond(response.status, response.body, response.content_type, response.headers)

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self._respond(status, body, content_type)

        def _respond(
            self,
            status: int,
            body: bytes,
            content_type: str = "text/plain",
            headers: Mapping[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Requests are not logged (scrapes would drown the log)."""

    return Handler
