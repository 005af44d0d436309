"""Standard Webhooks signatures of inbound integration callbacks (pure code, no database).

A callback carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries, each over
`"{id}.{timestamp}.{body}"` with the key that is the base64-decoded part of the secret
(`whsec_<base64>`). The HMAC is the `standardwebhooks` library's; the clock is ours (`now` is a
parameter, so tests control it). A timestamp more than `TOLERANCE` away from now, in either
direction, is refused, so a captured request cannot be replayed later; a replay within the
window is caught by its `webhook-id` (see `service.handle_callback`).
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from shelfkeeper.kit.signing import new_secret
from shelfkeeper.order.errors import InvalidSignature

__all__ = ["new_secret", "sign", "verify"]

TOLERANCE = timedelta(minutes=5)
MAX_ID_LENGTH = 200


def sign(secret: str, *, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) of a message."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return Webhook(secret).sign(msg_id=webhook_id, timestamp=moment, data=body)


def verify(secret: str, *, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """Check the message's signature and timestamp; returns its `webhook-id`.

    Raises InvalidSignature (401) for a missing header, a timestamp that is not an integer
    or is more than five minutes away from `now`, or no matching `v1` signature.
    """
    webhook_id = headers.get("webhook-id")
    timestamp_text = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not timestamp_text or not signatures:
        raise InvalidSignature(
            "Send `webhook-id`, `webhook-timestamp` and `webhook-signature` (Standard Webhooks)."
        )
    if len(webhook_id) > MAX_ID_LENGTH:
        raise InvalidSignature("`webhook-id` is too long.")
    try:
        timestamp = int(timestamp_text)
    except ValueError as error:
        raise InvalidSignature("`webhook-timestamp` must be Unix seconds.") from error
    if abs(now.timestamp() - timestamp) > TOLERANCE.total_seconds():
        raise InvalidSignature("`webhook-timestamp` is more than five minutes from now.")
    try:
        expected = sign(secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
    except (binascii.Error, ValueError, EmptyWebhookSecretError) as error:  # unusable secret
        raise InvalidSignature("The callback secret is unusable; rotate it.") from error
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return webhook_id
    raise InvalidSignature("No `v1` signature matches.")
