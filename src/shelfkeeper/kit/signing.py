"""Standard Webhooks secrets: the one format both directions use (outbound webhooks sign
with it, inbound integration callbacks are verified with it)."""

from __future__ import annotations

import base64
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
