"""The daemon's HTTP API (``/api/v1``) and who may call it.

Routes (JSON in and out)::

    GET     /api/v1/silences                    silences not yet expired (?include_expired=true)
    POST    /api/v1/silences                    add one -> 201
    DELETE  /api/v1/silences/{id}               expire one now
    GET     /api/v1/dead-letters                newest first (?reason=&model=&limit=)
    POST    /api/v1/dead-letters/{id}/replay    produce one again to the topic it came from

When a bearer token is configured (``http.token_env`` or ``http.token_file``, mandatory when
``http.host`` is not a loopback address) every ``/api/v1`` request must carry
``Authorization: Bearer <token>``: none gives 401, a wrong one 403 (compared
in constant time). Reads need it too, since dead letters hold raw event
bytes. ``/livez`` and ``/readyz`` are always open; ``/metrics`` is open
unless ``http.metrics_auth`` asks for a token or basic auth.

Each route calls an injected callable (``ApiActions``): the daemon wires the
real ones (``database_actions`` and a ``DeadLetterReplayer``), tests pass
fakes. A route whose callable is not wired answers 503.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from pydantic import SecretStr

from driftwarden.alerts import add_silence, expire_silence, list_silences
from driftwarden.core.durations import parse_duration
from driftwarden.core.times import (
    Clock,
    format_optional,
    format_time,
    from_ms,
    parse_time,
    wall_clock_ms,
)
from driftwarden.monitor.config import HttpConfig
from driftwarden.monitor.errors import ConfigError, ReplayRefused
from driftwarden.monitor.storage import Store

log = logging.getLogger("driftwarden.api")

PREFIX = "/api/v1/"
MAX_BODY = 65_536
MIN_TOKEN_LENGTH = 16
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiError(Exception):
    """A request the API answers with ``status`` and ``message`` instead of a result."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def json_response(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(value) + b"\n", headers=headers or {})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, {"error": message}, headers)


# -- who may call ---------------------------------------------------------------------------


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality (hashing first hides the expected length too)."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def _secret(
    environ: Mapping[str, str],
    name: str | None,
    value: SecretStr | None,
    path: str,
    minimum: int = 1,
) -> str | None:
    """The secret given in the configuration (``value``) or in the variable ``name``."""
    if value is not None:
        secret, where = value.get_secret_value(), path
    elif name is not None:
        secret, where = environ.get(name, ""), f"environment variable {name}"
        if not secret:
            raise ConfigError(f"{where} is not set (or empty)", f"{path}_env")
    else:
        return None
    if len(secret) < minimum:
        raise ConfigError(
            f"the token in {where} is shorter than {minimum} characters: "
            "use a random one, e.g. `openssl rand -hex 32`",
            path if value is not None else f"{path}_env",
        )
    return secret


@dataclass(frozen=True)
class HttpSecurity:
    """The secrets the HTTP server checks, read at start-up."""

    api_token: str | None = None
    metrics_token: str | None = None
    metrics_basic: tuple[str, str] | None = None

    @classmethod
    def from_config(
        cls, http: HttpConfig, environ: Mapping[str, str] | None = None
    ) -> HttpSecurity:
        """The secrets ``http`` gives or names in the environment."""
        env = os.environ if environ is None else environ
        api_token = _secret(env, http.token_env, http.token, "http.token", MIN_TOKEN_LENGTH)
        metrics_token = metrics_basic = None
        auth = http.metrics_auth
        if auth is not None and auth.username is None:
            metrics_token = _secret(env, auth.token_env, auth.token, "http.metrics_auth.token")
        elif auth is not None:
            password = _secret(env, auth.password_env, auth.password, "http.metrics_auth.password")
            metrics_basic = (auth.username, password or "")
        return cls(api_token, metrics_token, metrics_basic)

    def authorize_api(self, authorization: str | None) -> Response | None:
        """None when an ``/api/v1`` request may proceed, else the refusal."""
        if self.api_token is None:
            return None
        return _check_bearer(authorization, self.api_token, "driftwarden")

    def authorize_metrics(self, authorization: str | None) -> Response | None:
        """None when a ``/metrics`` scrape may proceed, else the refusal."""
        if self.metrics_token is not None:
            return _check_bearer(authorization, self.metrics_token, "driftwarden metrics")
        if self.metrics_basic is not None:
            return _check_basic(authorization, *self.metrics_basic)
        return None


def _check_bearer(authorization: str | None, token: str, realm: str) -> Response | None:
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        challenge = {"WWW-Authenticate": f'Bearer realm="{realm}"'}
        return error_response(401, "a bearer token is required", challenge)
    if not same_secret(given.strip(), token):
        return error_response(403, "the bearer token is not valid")
    return None


def _check_basic(authorization: str | None, username: str, password: str) -> Response | None:
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    challenge = {"WWW-Authenticate": 'Basic realm="driftwarden metrics", charset="UTF-8"'}
    if scheme.lower() != "basic" or not encoded.strip():
        return error_response(401, "basic authentication is required", challenge)
    try:
        user, _, given = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return error_response(401, "malformed basic credentials", challenge)
    if not (same_secret(user, username) & same_secret(given, password)):
        return error_response(403, "the credentials are not valid")
    return None


# -- what the routes call -------------------------------------------------------------------


@dataclass(frozen=True)
class SilenceRequest:
    """A validated ``POST /api/v1/silences`` body."""

    matchers: tuple[str, ...]
    ends_at: datetime
    author: str
    comment: str
    starts_at: datetime | None = None


@dataclass(frozen=True)
class DeadLetterQuery:
    """Filters of ``GET /api/v1/dead-letters``."""

    reason: str | None = None
    model: str | None = None
    limit: int = 50


@dataclass
class ApiActions:
    """The callables the routes call; each returns JSON-ready values or raises ``ApiError``
    (``LookupError`` answers 404, ``ValueError`` 400)."""

    list_silences: Callable[[bool], list[dict[str, Any]]] | None = None
    add_silence: Callable[[SilenceRequest], dict[str, Any]] | None = None
    expire_silence: Callable[[str], dict[str, Any]] | None = None
    list_dead_letters: Callable[[DeadLetterQuery], list[dict[str, Any]]] | None = None
    replay_dead_letter: Callable[[int], dict[str, Any]] | None = None


@dataclass(frozen=True)
class _Request:
    method: str
    match: re.Match[str]
    query: dict[str, list[str]]
    read_body: Callable[[], bytes]


_Handler = Callable[["Api", _Request], Response]


class Api:
    """Routes ``/api/v1`` requests to ``actions`` after checking ``security``."""

    def __init__(
        self,
        actions: ApiActions | None = None,
        security: HttpSecurity | None = None,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.actions = actions or ApiActions()
        self.security = security or HttpSecurity()
        self.clock = clock

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        read_body: Callable[[], bytes],
        client: str = "",
    ) -> Response:
        """Answer one request; ``read_body`` is called only once the caller is authorized."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        refusal = self.security.authorize_api(headers.get("Authorization"))
        if refusal is not None:
            log.warning(
                "api request refused",
                extra={"event": "api_refused", "method": method, "path": path, "client": client,
                       "status": refusal.status},
            )  # fmt: skip
            return refusal
        response = self._route(method, path, parts.query, read_body)
        if method in STATE_CHANGING:
            log.info(
                "api request",
                extra={"event": "api_request", "method": method, "path": path, "client": client,
                       "status": response.status},
            )  # fmt: skip
        return response

    def _route(
        self, method: str, path: str, query: str, read_body: Callable[[], bytes]
    ) -> Response:
        allowed: list[str] = []
        for route_method, pattern, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            request = _Request(method, match, parse_qs(query), read_body)
            try:
                return handler(self, request)
            except ApiError as exc:
                return error_response(exc.status, exc.message)
            except LookupError as exc:
                return error_response(404, _message(exc))
            except ValueError as exc:
                return error_response(400, _message(exc))
            except Exception:
                log.exception("api request failed", extra={"event": "api_error", "path": path})
                return error_response(500, "internal error (see the daemon's log)")
        if allowed:
            return error_response(405, "method not allowed", {"Allow": ", ".join(allowed)})
        return error_response(404, f"no such endpoint: {path}")

    def _action(self, name: str) -> Callable[..., Any]:
        action = getattr(self.actions, name)
        if action is None:
            raise ApiError(503, f"{name.replace('_', ' ')} is not available (yet) in this process")
        return action

    # -- handlers -------------------------------------------------------------------------

    def _list_silences(self, request: _Request) -> Response:
        include = _flag(request.query, "include_expired")
        return json_response(200, self._action("list_silences")(include))

    def _add_silence(self, request: _Request) -> Response:
        body = _json_object(request.read_body())
        silence = self._action("add_silence")(_silence_request(body, self.clock()))
        return json_response(201, silence)

    def _expire_silence(self, request: _Request) -> Response:
        return json_response(200, self._action("expire_silence")(request.match["id"]))

    def _list_dead_letters(self, request: _Request) -> Response:
        limit_text = _one(request.query, "limit") or "50"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            raise ApiError(400, f"limit: expected an integer from 1 to 1000, got {limit_text!r}")
        query = DeadLetterQuery(
            _one(request.query, "reason"), _one(request.query, "model"), int(limit_text)
        )
        return json_response(200, self._action("list_dead_letters")(query))

    def _replay_dead_letter(self, request: _Request) -> Response:
        identifier = int(request.match["id"])
        if identifier > _LARGEST_ID:
            raise ApiError(404, f"no dead letter with id {identifier}")
        try:
            replayed = self._action("replay_dead_letter")(identifier)
        except ReplayRefused as exc:
            raise ApiError(409, str(exc)) from None
        return json_response(200, replayed)


_LARGEST_ID = 2**63 - 1  # dead-letter ids are 64-bit integers

_ROUTES: list[tuple[str, re.Pattern[str], _Handler]] = [
    ("GET", re.compile(r"/api/v1/silences"), Api._list_silences),
    ("POST", re.compile(r"/api/v1/silences"), Api._add_silence),
    ("DELETE", re.compile(r"/api/v1/silences/(?P<id>[^/]+)"), Api._expire_silence),
    ("GET", re.compile(r"/api/v1/dead-letters"), Api._list_dead_letters),
    ("POST", re.compile(r"/api/v1/dead-letters/(?P<id>[0-9]+)/replay"), Api._replay_dead_letter),
]


def _message(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (_one(query, name) or "false").lower() in {"1", "true", "yes"}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


_SILENCE_KEYS = {"matchers", "ends_at", "duration", "starts_at", "author", "comment"}


def _silence_request(body: dict[str, Any], now_ms: int) -> SilenceRequest:
    """Validate a silence body: matchers, author, comment, and ``ends_at`` or ``duration``."""
    unknown = sorted(set(body) - _SILENCE_KEYS)
    if unknown:
        raise ApiError(400, f"unknown key(s): {', '.join(unknown)}")
    matchers = body.get("matchers")
    if (
        not isinstance(matchers, list)
        or not matchers
        or not all(isinstance(m, str) and m for m in matchers)
    ):
        raise ApiError(400, 'matchers: expected a non-empty list like ["model=credit-default"]')
    for key in ("author", "comment"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise ApiError(400, f"{key}: required, a non-empty string")

    def moment(key: str) -> datetime | None:
        if body.get(key) is None:
            return None
        millis = parse_time(body[key])
        if millis is None:
            raise ApiError(400, f"{key}: expected an RFC 3339 time, got {body[key]!r}")
        return datetime.fromtimestamp(millis / 1000, tz=UTC)

    starts_at = moment("starts_at")
    ends_at = moment("ends_at")
    if (ends_at is None) == (body.get("duration") is None):
        raise ApiError(400, 'give either ends_at (RFC 3339) or duration (like "2h")')
    if ends_at is None:
        try:
            length = parse_duration(body["duration"])
        except ValueError as exc:
            raise ApiError(400, f"duration: {exc}") from None
        start = starts_at or datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        ends_at = start + length
    return SilenceRequest(tuple(matchers), ends_at, body["author"], body["comment"], starts_at)


# -- the real actions -----------------------------------------------------------------------


def database_actions(
    store: Store,
    clock: Clock,
    replay: Callable[[int], dict[str, Any]] | None = None,
) -> ApiActions:
    """Actions on the daemon's database: silences (``driftwarden.alerts``) and dead letters.

    ``replay`` (a ``DeadLetterReplayer``) produces dead letters again.
    """
    engine = store.engine

    def now() -> datetime:
        return from_ms(clock())

    def listing(include_expired: bool) -> list[dict[str, Any]]:
        moment = now()
        with engine.connect() as connection:
            found = list_silences(connection, moment, include_expired=include_expired)
        millis = clock()
        return [silence.to_json(millis) for silence in found]

    def adding(request: SilenceRequest) -> dict[str, Any]:
        with engine.begin() as connection:
            silence = add_silence(
                connection,
                list(request.matchers),
                ends_at=request.ends_at,
                author=request.author,
                comment=request.comment,
                now=now(),
                starts_at=request.starts_at,
            )
        return silence.to_json(clock())

    def expiring(silence_id: str) -> dict[str, Any]:
        moment = now()
        with engine.begin() as connection:
            known = list_silences(connection, moment, include_expired=True)
            if not any(silence.id == silence_id for silence in known):
                raise ApiError(404, f"no silence with id {silence_id!r}")
            silence = expire_silence(connection, silence_id, moment)
        return silence.to_json(clock())

    def dead_letters(query: DeadLetterQuery) -> list[dict[str, Any]]:
        found = store.dead_letters(reason=query.reason, model=query.model, limit=query.limit)
        return [
            {
                "id": stored.id,
                **stored.letter.to_json(),
                "created_at": format_time(stored.created_at),
                "replayed_at": format_optional(stored.replayed_at),
            }
            for stored in found
        ]

    return ApiActions(listing, adding, expiring, dead_letters, replay)
