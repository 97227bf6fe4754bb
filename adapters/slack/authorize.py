"""Who Handoff's bot is in its one workspace, learned once when Handoff starts (``auth.test``).

Bolt's own single-workspace authorization calls ``auth.test`` during the first request after a start:
that request waits for it (Slack gives up on an acknowledgement after 3 seconds), and one failed call
tells the person to reinstall the app and drops what they asked. :class:`BotIdentity` makes the call as
Handoff starts, in the background (a slow Slack does not hold up the start, and the demo's Slack emulator
answers only once Handoff listens), with retries, and requests only read its result. Until it has answered,
requests go on with the token alone (without the bot's ids, its mention is recognised only at the start of
a message).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("handoff.slack")

STARTUP_ATTEMPTS = 3
ATTEMPT_TIMEOUT = 3.0
RETRY_DELAY = 0.5
"""Seconds before the second call; each later wait doubles, up to :data:`LONGEST_WAIT`."""
LONGEST_WAIT = 60.0
REJECTED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
"""``auth.test`` errors that mean the token itself is refused: asking again would not help."""


class BotIdentity(AsyncAuthorize):
    """Bolt's ``authorize`` for one bot token, answered from an ``auth.test`` made at startup.

    Args:
        client: a Web API client acting with ``token``.
        token: the bot token (``xoxb-``) every request acts with.
    """

    def __init__(self, client: AsyncWebClient, token: str) -> None:
        self.client = client
        self.token = token
        self._known: dict[str, Any] | None = None
        self._rejected = False
        self._last_failure = ""
        self._asking: asyncio.Task[None] | None = None

    @property
    def known(self) -> bool:
        """Whether ``auth.test`` has answered (the bot's user id, bot id and workspace are known)."""
        return self._known is not None

    async def start(self) -> None:
        """Start asking ``auth.test`` in the background until it answers (a warning once the first few
        calls failed). Never raises, and returns at once."""
        if self._asking is None:
            self._asking = asyncio.get_running_loop().create_task(self._ask_in_background(), name="slack auth.test")

    async def known_soon(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``auth.test``'s answer; whether the bot's ids are known."""
        if self._asking is not None and not self.known:
            await asyncio.wait([self._asking], timeout=timeout)
        return self.known

    async def _ask_in_background(self) -> None:
        await self._ask_until_known(attempts=STARTUP_ATTEMPTS)
        if not self.known and not self._rejected:
            log.warning(
                "Slack's auth.test did not answer as Handoff started (%s): asking again in the background",
                self._last_failure,
            )
            await self._ask_until_known()

    async def close(self) -> None:
        """Stop asking in the background."""
        if self._asking is not None:
            self._asking.cancel()
            await asyncio.gather(self._asking, return_exceptions=True)
            self._asking = None

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_: Any,
    ) -> AuthorizeResult | None:
        if self._rejected:
            return None  # Bolt then tells the person the app must be reinstalled, which is true
        if self._known is None:
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=self.token, user_id=user_id)
        return AuthorizeResult(**self._known, bot_token=self.token, user_id=user_id)

    async def _ask_until_known(self, attempts: float = math.inf) -> None:
        wait, attempt = RETRY_DELAY, 0
        while attempt < attempts and not (self.known or self._rejected):
            if attempt:
                await asyncio.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
            attempt += 1
            await self._ask()

    async def _ask(self) -> None:
        try:
            answer = await asyncio.wait_for(self.client.auth_test(), ATTEMPT_TIMEOUT)
        except SlackApiError as error:
            code = error.response.get("error") if isinstance(error.response.data, dict) else None
            if code in REJECTED:
                self._rejected = True
                log.error("Slack refuses the bot token (auth.test: %s): reinstall the app or fix slack.bot_token", code)
            self._failed(str(code or f"HTTP {error.response.status_code}"))
            return
        except Exception as error:  # a timeout or a connection failure: asked again
            self._failed(type(error).__name__)
            return
        self._known = {
            "enterprise_id": answer.get("enterprise_id"),
            "team_id": answer.get("team_id"),
            "team": answer.get("team"),
            "url": answer.get("url"),
            "bot_user_id": answer.get("user_id"),
            "bot_id": answer.get("bot_id"),
            "bot_scopes": answer.headers.get("x-oauth-scopes"),
        }
        log.info("Slack bot %s in workspace %s", self._known["bot_user_id"], self._known["team_id"])

    def _failed(self, why: str) -> None:
        self._last_failure = why
        log.info("Slack's auth.test failed: %s", why)
