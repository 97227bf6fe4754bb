"""The check in front of Bolt: is this request from Slack, recent, and readable?

Bolt's own verification answers 500 for a non-numeric timestamp, a non-ASCII signature, a body that is
not UTF-8 or not JSON (see reference/style-and-reliability.md B10). :func:`verify` is total: it looks at
the raw bytes and headers, never raises, and says 401 (not from Slack, or too old) or 400 (signed but
unreadable) before anything parses the body. The signature is checked over the raw bytes before they are
decoded, so that a forged body is a 401 whatever its bytes: Slack's v0 HMAC-SHA256 with a constant-time
compare and the 5-minute window, the clock injected so that tests can pin "now". (slack_sdk's
``SignatureVerifier`` decodes the body as UTF-8 first, so it cannot be that check.)

See https://docs.slack.dev/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.clock import Clock, SystemClock

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
WINDOW_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Headers(Protocol):
    """What is read of the request headers (aiohttp's ``CIMultiDictProxy`` fits)."""

    def getall(self, key: str, default: list[str]) -> list[str]: ...


@dataclass(frozen=True)
class Verdict:
    """The outcome: ``status`` 200 to go on, else the status to answer and why (safe to log)."""

    status: int
    reason: str = ""
    text: str | None = None  # the body as text, when it passed

    @property
    def ok(self) -> bool:
        return self.status == 200


class RequestVerifier:
    """Verifies Slack's v0 signature over the raw body.

    Args:
        signing_secret: the app's signing secret (Basic Information → App Credentials).
        clock: the time source for the 5-minute window.
    """

    def __init__(self, signing_secret: str, clock: Clock | None = None) -> None:
        if not signing_secret.strip():  # an empty key would sign anything anyone can compute
            raise ValueError("the Slack signing secret is empty")
        self._secret = signing_secret.encode("utf-8")
        self._clock = clock or SystemClock()

    def verify(self, body: bytes, headers: Headers | Mapping[str, str]) -> Verdict:
        """Check ``body`` against the signature headers; never raises."""
        try:
            return self._verify(body, headers)
        except Exception:  # a total check: anything unexpected is a refusal, not a 500
            return Verdict(401, "unverifiable request")

    def _verify(self, body: bytes, headers: Headers | Mapping[str, str]) -> Verdict:
        timestamps, signatures = _values(headers, TIMESTAMP_HEADER), _values(headers, SIGNATURE_HEADER)
        if len(timestamps) != 1 or len(signatures) != 1:
            return Verdict(401, "missing or repeated signature headers")
        timestamp, signature = timestamps[0].strip(), signatures[0].strip()
        if not _TIMESTAMP.fullmatch(timestamp):
            return Verdict(401, "malformed timestamp")
        if not _SIGNATURE.fullmatch(signature):
            return Verdict(401, "malformed signature")
        if abs(self._clock.now().timestamp() - int(timestamp)) > WINDOW_SECONDS:
            return Verdict(401, "timestamp outside the 5-minute window")
        if not hmac.compare_digest(self._signature(timestamp, body), signature.encode("ascii")):
            return Verdict(401, "signature mismatch")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Verdict(400, "body is not UTF-8")
        return Verdict(200, text=text)

    def _signature(self, timestamp: str, body: bytes) -> bytes:
        """``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}``, over the body's raw bytes."""
        base = b"v0:" + timestamp.encode("ascii") + b":" + body
        return b"v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest().encode("ascii")


def _values(headers: Headers | Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        found = getall(name, [])
        return [v for v in found if isinstance(v, str)]
    lowered = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else ()
    return [v for k, v in items if k.lower() == lowered and isinstance(v, str)]
