"""Sends signed requests to the app's request URL (``/slack/events``) the way Slack does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.clock import Clock

from .signing import signed_headers

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class SlackBotResponse:
    """What the app answered to one request, and what was sent."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    request_body: bytes = field(repr=False)
    request_headers: Mapping[str, str] = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The answer parsed as JSON (None if it was empty)."""
        return json.loads(self.body) if self.body.strip() else None


class SlackBotClient:
    """Posts signed form or JSON bodies to one URL over a session the emulator owns.

    Args:
        url: the app's request URL, e.g. ``http://127.0.0.1:3978/slack/events``.
        signing_secret: the secret shared with the app.
        clock: gives ``X-Slack-Request-Timestamp``. An app that verifies signatures rejects stamps more
            than 5 minutes from its own clock, so use a clock near real time when talking to one.
        timeout: seconds to wait for the answer (Slack itself gives up after 3).
    """

    def __init__(self, url: str | None, signing_secret: str, clock: Clock, timeout: float = 10.0) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.clock = clock
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post_form(self, fields: Mapping[str, str], headers: Mapping[str, str] | None = None) -> SlackBotResponse:
        """POST ``fields`` form-encoded (slash commands; interactivity as ``payload=<json>``)."""
        return await self._post(urlencode(fields).encode("utf-8"), FORM, headers)

    async def post_json(self, data: Any, headers: Mapping[str, str] | None = None) -> SlackBotResponse:
        """POST ``data`` as JSON (Events API)."""
        return await self._post(json.dumps(data).encode("utf-8"), JSON, headers)

    async def close(self) -> None:
        """Close the session (only from the loop that opened it)."""
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
            self._session = None

    async def _post(self, body: bytes, content_type: str, extra: Mapping[str, str] | None) -> SlackBotResponse:
        if not self.url:
            raise RuntimeError("no request URL: set events_url to the app's /slack/events URL")
        timestamp = int(self.clock.now().timestamp())
        headers = signed_headers(self.signing_secret, timestamp, body, content_type)
        headers["User-Agent"] = "Slackbot 1.0 (+https://api.slack.com/robots)"
        headers.update(extra or {})
        async with self._ensure_session().post(self.url, data=body, headers=headers) as resp:
            return SlackBotResponse(resp.status, dict(resp.headers), await resp.read(), body, headers)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._loop = asyncio.get_running_loop()
        return self._session
