"""What every channel shares: the ``Channel`` protocol, send results, and HTTP outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from driftwarden.alerts.backoff import parse_retry_after
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one delivery attempt.

    ``retryable`` says whether trying again may succeed (timeouts, 5xx, 408,
    429); ``retry_after`` is the receiver's ``Retry-After`` in seconds.
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
    """Classify a response: 2xx delivered; 408, 429 and 5xx retryable; other 4xx final."""
    code = response.status_code
    if 200 <= code < 300:
        return SendResult(True, status=code)
    retry_after = None
    if code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    return SendResult(
        False,
        retryable=code in (408, 429) or code >= 500,
        retry_after=retry_after,
        detail=f"HTTP {code}: {response.text[:300]}",
        status=code,
    )
