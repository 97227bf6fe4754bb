"""Slack request signing (v0): ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}``.

See https://docs.slack.dev/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac

VERSION = "v0"


def sign(signing_secret: str, timestamp: str | int, body: bytes | str) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp`` (epoch seconds)."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = f"{VERSION}:{timestamp}:".encode() + raw
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def signed_headers(signing_secret: str, timestamp: str | int, body: bytes | str, content_type: str) -> dict[str, str]:
    """The headers Slack sends with a signed request."""
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(signing_secret, timestamp, body),
    }
