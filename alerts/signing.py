"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature`` is ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``
keyed with the base64-decoded part of a ``whsec_`` secret; with several
secrets (rotation) the header holds one signature per secret, space-separated,
and a receiver accepts the message if any one verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ``ValueError`` (without the secret) if malformed."""
    if not secret.startswith(PREFIX):
        raise ValueError("expected a signing secret 'whsec_' followed by base64 (value not shown)")
    text = secret[len(PREFIX) :].rstrip("=")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        key = b""
    if not key:
        raise ValueError("expected a signing secret 'whsec_' followed by base64 (value not shown)")
    return key


def signature(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1,"
        + base64.b64encode(hmac.new(decode_secret(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def headers(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``timestamp`` (epoch seconds)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets, message_id, timestamp, body),
    }
