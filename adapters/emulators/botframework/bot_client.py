"""Posts activities to the bot's ``/api/messages`` the way the Teams channel does."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

TokenProvider = Callable[[Mapping[str, Any]], Awaitable[str] | str]
"""Given the activity about to be sent, returns a bearer token (without ``Bearer ``).

Hook for authenticated bots: the token would be a JWT signed by a local key set with ``iss``
``https://api.botframework.com``, ``aud`` the bot's app id and ``serviceurl`` the activity's ``serviceUrl``.
Without a provider no ``Authorization`` header is sent, which a bot with an empty app id accepts.
"""


@dataclass(frozen=True)
class BotResponse:
    """What the bot answered to one activity."""

    status: int
    body: Any
    headers: Mapping[str, str]
    activity: dict[str, Any] = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class BotClient:
    """Sends activities to one bot endpoint over a session the emulator owns.

    Args:
        endpoint: the bot's messaging endpoint, e.g. ``http://127.0.0.1:3978/api/messages``.
        token_provider: optional source of bearer tokens (see :data:`TokenProvider`).
        timeout: seconds to wait for the bot's answer.
    """

    def __init__(
        self, endpoint: str | None = None, token_provider: TokenProvider | None = None, timeout: float = 15.0
    ) -> None:
        self.endpoint = endpoint
        self.token_provider = token_provider
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, activity: dict[str, Any], endpoint: str | None = None) -> BotResponse:
        """POST one activity as JSON and return the bot's HTTP answer (``endpoint``: another replica)."""
        endpoint = endpoint or self.endpoint
        if not endpoint:
            raise RuntimeError("no bot endpoint: set bot_endpoint to the bot's /api/messages URL")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Handoff-Teams-Emulator"}
        if self.token_provider is not None:
            token = self.token_provider(activity)
            headers["Authorization"] = f"Bearer {await token if inspect.isawaitable(token) else token}"
        session = self._ensure_session()
        async with session.post(endpoint, data=json.dumps(activity), headers=headers) as resp:
            raw = await resp.read()
            return BotResponse(resp.status, _decode(raw, resp.content_type), dict(resp.headers), activity)

    async def close(self) -> None:
        """Close the session (only from the loop that opened it; other loops leave it alone)."""
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._loop = asyncio.get_running_loop()
        return self._session


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
