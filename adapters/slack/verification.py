"""The check in front of Bolt: is this request from Slack, recent, and readable?

Bolt's own verification answers 500 for a non-numeric timestamp, a non-ASCII signature, a body that is
not UTF-8 or not JSON (see reference/style-and-reliability.md B10). :func:`verify` is total: it looks at
the raw bytes and headers, never raises, and says 401 (not from Slack, or too old) or 400 (signed but
unreadable) before anything parses the body. The HMAC itself is slack_sdk's ``SignatureVerifier``
(v0, constant-time compare, 5-minute window), given a clock so that tests can pin "now".

See https://docs.slack.dev/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

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


class _ClockAdapter(SlackClock):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


class RequestVerifier:
    """Verifies Slack's v0 signature over the raw body.

    Args:
        signing_secret: the app's signing secret (Basic Information → App Credentials).
        clock: the time source for the 5-minute window.
    """

    def __init__(self, signing_secret: str, clock: Clock | None = None) -> None:
        self._verifier = SignatureVerifier(signing_secret, clock=_ClockAdapter(clock or SystemClock()))

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
        if abs(self._verifier.clock.now() - int(timestamp)) > WINDOW_SECONDS:
            return Verdict(401, "timestamp outside the 5-minute window")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Verdict(400, "body is not UTF-8")
        if not self._verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            return Verdict(401, "signature mismatch")
        return Verdict(200, text=text)


def _values(headers: Headers | Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        found = getall(name, [])
        return [v for v in found if isinstance(v, str)]
    lowered = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else ()
    return [v for k, v in items if k.lower() == lowered and isinstance(v, str)]
