"""What every channel shares: the ``Channel`` protocol, send results, HTTP outcomes, link URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from driftwarden.alerts.backoff import parse_retry_after
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry

AUTH_STATUSES = (401, 403)
"""Answers that say the credentials are wrong; often a secret rotated on one side only,
so they are retried, but only ``dispatcher.AUTH_ATTEMPTS`` times."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one delivery attempt.

    ``retryable`` says whether trying again may succeed (timeouts, 5xx, 408,
    429, and 401/403 a bounded number of times: see ``AUTH_STATUSES``);
    ``retry_after`` is the receiver's ``Retry-After`` in seconds.
    """

    ok: bool
    retryable: bool = False
    retry_after: float | None = None
    detail: str = ""
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Transport:
    """How a send reaches the network: the client, the per-request timeout, the time now
    (epoch milliseconds)."""

    http: httpx.Client
    timeout: float
    now: int


class Channel(Protocol):
    """A receiver of notifications.

    ``render`` turns a notification into the request body stored in the
    outbox (without secrets); ``send`` delivers a stored row.
    ``once_per_incident`` channels hear only an incident's first firing
    notification and its resolve.
    """

    name: str
    type: str
    once_per_incident: bool

    def render(self, notification: Notification) -> Any: ...

    def send(self, entry: OutboxEntry, transport: Transport) -> SendResult: ...


def post(
    transport: Transport, url: str, body: bytes, headers: dict[str, str] | None = None
) -> SendResult:
    """POST JSON ``body``; network failures and timeouts are retryable results, not exceptions."""
    try:
        response = transport.http.post(
            url,
            content=body,
            headers={"content-type": "application/json", **(headers or {})},
            timeout=transport.timeout,
        )
    except httpx.TimeoutException:
        return SendResult(False, True, detail=f"no answer within {transport.timeout:g} s")
    except httpx.HTTPError as exc:
        return SendResult(False, True, detail=f"{type(exc).__name__}: {exc}")
    return outcome(response, transport.now)


def outcome(response: httpx.Response, now: int) -> SendResult:
    """Classify a response: 2xx delivered; 401, 403, 408, 429 and 5xx retryable; other 4xx
    final. The dispatcher bounds the retries of 401 and 403 (``AUTH_STATUSES``)."""
    code = response.status_code
    if 200 <= code < 300:
        return SendResult(True, status=code)
    retry_after = None
    if code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    return SendResult(
        False,
        retryable=code in (408, 429, *AUTH_STATUSES) or code >= 500,
        retry_after=retry_after,
        detail=f"HTTP {code}: {response.text[:300]}",
        status=code,
    )


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SUB_DELIMS = "!$&'()*+,;="
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])$")


def link_url(url: str) -> str | None:
    """``url`` as a valid http(s) URL for a link or button, or ``None`` if it cannot be one.

    Characters a URL may not contain (spaces, ``"``, ``<``, ``>``, ``\\``,
    ``{``, ``}``, ``|``, ``^``, a backtick, non-ASCII) are percent-encoded
    (UTF-8), a ``%`` not followed by two hex digits becomes ``%25``, and a
    non-ASCII host is IDNA-encoded; everything else, existing escapes and
    the delimiters ``/ ? # & = :`` included, is kept, so a valid URL comes
    back unchanged. Not http(s), no host, or a host that is no host name:
    ``None``.

    Examples
    --------
    >>> link_url("https://grafana.example/d/x?var-model=a%20b&from=now-6h")
    'https://grafana.example/d/x?var-model=a%20b&from=now-6h'
    >>> link_url('https://wiki.example/runbooks/<psi> "é" 100%')
    'https://wiki.example/runbooks/%3Cpsi%3E%20%22%C3%A9%22%20100%25'
    >>> link_url("https://bücher.example/a b#x y")
    'https://xn--bcher-kva.example/a%20b#x%20y'
    >>> link_url("javascript:alert(1)") is None
    True
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    userinfo, at, hostport = parts.netloc.rpartition("@")
    split = hostport.index("]") + 1 if hostport.startswith("[") and "]" in hostport else 0
    host, colon, port = hostport[split:].partition(":")
    host = hostport[:split] + host
    if port and not port.isdigit():
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not _HOST.match(host):
        return None
    netloc = _encode(userinfo, _SUB_DELIMS + ":") + at + host + colon + port
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            _encode(parts.path, _SUB_DELIMS + ":@/"),
            _encode(parts.query, _SUB_DELIMS + ":@/?"),
            _encode(parts.fragment, _SUB_DELIMS + ":@/?"),
        )
    )


def _encode(part: str, safe: str) -> str:
    """Percent-encode what ``safe`` (plus letters, digits, ``-._~`` and escapes) leaves out."""
    return quote(_STRAY_PERCENT.sub("%25", part), safe=safe + "%")
