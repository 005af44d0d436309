"""Inbound callback signatures agree with the Standard Webhooks reference library both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from shelfkeeper.order import signature
from shelfkeeper.order.errors import InvalidSignature

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
BODY = b'{"type":"payment.captured","order_id":"x"}'


def headers(secret: str, *, at: datetime = NOW, webhook_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, BODY),
    }


def test_a_library_signed_message_verifies_and_returns_its_id() -> None:
    secret = signature.new_secret()
    assert signature.verify(secret, headers=headers(secret), body=BODY, now=NOW) == "msg_1"


def test_our_signature_is_what_the_library_computes() -> None:
    secret = signature.new_secret()
    ours = signature.sign(secret, webhook_id="msg_2", timestamp=int(NOW.timestamp()), body=BODY)
    assert ours == Webhook(secret).sign("msg_2", NOW, BODY)


def test_one_matching_signature_among_several_is_enough() -> None:
    secret, old = signature.new_secret(), signature.new_secret()
    sent = headers(secret)
    sent["webhook-signature"] = f"{headers(old)['webhook-signature']} {sent['webhook-signature']}"
    assert signature.verify(secret, headers=sent, body=BODY, now=NOW) == "msg_1"


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_over_five_minutes_away_is_refused(offset: timedelta) -> None:
    secret = signature.new_secret()
    with pytest.raises(InvalidSignature, match="five minutes"):
        signature.verify(secret, headers=headers(secret, at=NOW + offset), body=BODY, now=NOW)


def test_a_tampered_body_or_another_secret_is_refused() -> None:
    secret = signature.new_secret()
    with pytest.raises(InvalidSignature, match="No `v1` signature"):
        signature.verify(secret, headers=headers(secret), body=BODY + b" ", now=NOW)
    with pytest.raises(InvalidSignature, match="No `v1` signature"):
        signature.verify(signature.new_secret(), headers=headers(secret), body=BODY, now=NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1e3", "99999999999999999999", ""])
def test_an_unreadable_or_absurd_timestamp_is_refused(timestamp: str) -> None:
    secret = signature.new_secret()
    sent = headers(secret) | {"webhook-timestamp": timestamp}
    with pytest.raises(InvalidSignature):
        signature.verify(secret, headers=sent, body=BODY, now=NOW)
