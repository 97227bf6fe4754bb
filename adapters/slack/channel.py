"""The Slack :class:`~bot.ports.ChatChannel`: post a card, update it in place, reply in its thread,
and send private (ephemeral) messages, through slack_sdk's ``AsyncWebClient``.

Every failure comes out as :class:`~bot.ports.DeliveryFailed` (see :mod:`adapters.slack.errors`).
``chat.postMessage`` is paced per channel (:class:`~adapters.slack.pacing.ChannelPacer`) and a 429 is
retried by slack_sdk's ``AsyncRateLimitErrorRetryHandler`` after ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import Card
from bot.ports import DeliveryFailed, PostedMessage
from bot.records import Platform

from .addresses import SlackAddress
from .errors import delivery_failure
from .pacing import ChannelPacer
from .renderer import SlackContent, render_card

log = logging.getLogger("handoff.slack.channel")

WEB_LOGGER = logging.getLogger("handoff.slack.web")
"""slack_sdk's logger for Handoff's clients. slack_sdk formats a debug line for every call whenever this
logger's own level is unset or DEBUG, so it starts at INFO; set it to DEBUG to see those lines."""
if WEB_LOGGER.level == logging.NOTSET:
    WEB_LOGGER.setLevel(logging.INFO)

TokenLookup = Callable[[str], Awaitable[str | None]]
"""Finds the bot token of a workspace (team id) installed through OAuth; None if not installed."""

DEFAULT_TIMEOUT = 10


def make_client(token: str | None, base_url: str, timeout: int = DEFAULT_TIMEOUT) -> AsyncWebClient:
    """An ``AsyncWebClient`` with Handoff's retry policy (connection errors, then 429 after Retry-After)."""
    client = AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        logger=WEB_LOGGER,
    )
    ensure_retry_handlers(client)
    return client


def ensure_retry_handlers(client: AsyncWebClient, rate_limit_retries: int = 1) -> AsyncWebClient:
    """Add the rate-limit retry handler (and the connection-error one) unless the client has them."""
    handlers = client.retry_handlers
    if not any(isinstance(h, AsyncConnectionErrorRetryHandler) for h in handlers):
        handlers.append(AsyncConnectionErrorRetryHandler())
    if not any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in handlers):
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries))
    return client


def with_token(client: AsyncWebClient, token: str | None) -> AsyncWebClient:
    """A client like ``client`` (same URL, retries, session) acting with ``token``."""
    return AsyncWebClient(
        token=token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        session=client.session,
        headers=client.headers,
        logger=client.logger,
        retry_handlers=list(client.retry_handlers),
    )


class SlackChatChannel:
    """Sends Handoff's cards to Slack.

    Args:
        client: the Web API client; with one workspace it carries the bot token.
        tokens: with OAuth installs, finds the bot token of the workspace named in a conversation id
            (``T0123:C0123``); see :mod:`adapters.slack.addresses`.
        pacer: paces ``chat.postMessage`` per channel (one a second, bursts of 3, by default).
        compact_replies: render thread replies with the compact card.
    """

    platform: Platform = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        tokens: TokenLookup | None = None,
        pacer: ChannelPacer | None = None,
        compact_replies: bool = True,
    ) -> None:
        self.client = ensure_retry_handlers(client)
        self.tokens = tokens
        self.pacer = pacer or ChannelPacer()
        self.compact_replies = compact_replies

    # --- the ChatChannel port ---------------------------------------------------------------------

    async def post_card(self, conversation_id: str, card: Card) -> PostedMessage:
        """Post ``card`` as a new top-level message; it starts its own thread."""
        client, channel = await self._resolve(conversation_id)
        ts = await self.send(client, channel, render_card(card))
        return PostedMessage(message_id=ts, thread_id=ts)

    async def update_card(self, conversation_id: str, message: PostedMessage, card: Card) -> None:
        """Replace a posted message's text and blocks (``chat.update``)."""
        client, channel = await self._resolve(conversation_id)
        await self.edit(client, channel, message.message_id, render_card(card))

    async def reply(self, conversation_id: str, parent: PostedMessage, card: Card) -> PostedMessage:
        """Post ``card`` in the thread of ``parent``."""
        client, channel = await self._resolve(conversation_id)
        thread = parent.thread_id or parent.message_id
        ts = await self.send(client, channel, render_card(card, compact=self.compact_replies), thread_ts=thread)
        return PostedMessage(message_id=ts, thread_id=thread)

    async def post_ephemeral(
        self, conversation_id: str, user_id: str, card: Card, thread: PostedMessage | None = None
    ) -> None:
        """Show ``card`` to one person in a conversation (``chat.postEphemeral``)."""
        client, channel = await self._resolve(conversation_id)
        thread_ts = (thread.thread_id or thread.message_id) if thread else None
        await self.ephemeral(client, channel, user_id, render_card(card, compact=True), thread_ts=thread_ts)

    # --- the calls, with any workspace's client -----------------------------------------------------

    async def send(
        self, client: AsyncWebClient, channel: str, content: SlackContent, thread_ts: str | None = None
    ) -> str:
        """``chat.postMessage``; returns the new message's ``ts``."""
        await self.pacer.wait(channel)
        args: dict[str, Any] = {"channel": channel, "text": content.text, "blocks": content.blocks}
        if thread_ts:
            args["thread_ts"] = thread_ts
        response = await self.call("chat.postMessage", client.chat_postMessage(**args))
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            raise DeliveryFailed("chat.postMessage: no ts in the answer", retryable=False)
        return ts

    async def edit(self, client: AsyncWebClient, channel: str, ts: str, content: SlackContent) -> None:
        """``chat.update`` with new text and blocks (blocks always sent, so old buttons go away)."""
        await self.call(
            "chat.update", client.chat_update(channel=channel, ts=ts, text=content.text, blocks=content.blocks)
        )

    async def ephemeral(
        self,
        client: AsyncWebClient,
        channel: str,
        user_id: str,
        content: SlackContent,
        thread_ts: str | None = None,
    ) -> None:
        """``chat.postEphemeral`` to ``user_id`` in ``channel``."""
        args: dict[str, Any] = {"channel": channel, "user": user_id, "text": content.text, "blocks": content.blocks}
        if thread_ts:
            args["thread_ts"] = thread_ts
        await self.call("chat.postEphemeral", client.chat_postEphemeral(**args))

    async def call(self, method: str, call: Awaitable[Any]) -> Any:
        """Await one Web API ``call``, turning any failure into :class:`DeliveryFailed`."""
        try:
            return await call
        except Exception as exc:
            failure = delivery_failure(exc, method)
            log.info("%s failed: %s (retryable: %s)", method, failure.reason, failure.retryable)
            raise failure from None

    async def _resolve(self, conversation_id: str) -> tuple[AsyncWebClient, str]:
        address = SlackAddress.parse(conversation_id)
        if not address.channel:
            raise DeliveryFailed(f"not a Slack conversation id: {conversation_id!r}", retryable=False)
        if self.tokens is None:
            return self.client, address.channel
        if address.team is None:
            raise DeliveryFailed(
                "with OAuth installs a Slack conversation id names its workspace: TEAM_ID:CHANNEL_ID",
                retryable=False,
            )
        try:
            token = await self.tokens(address.team)
        except Exception as exc:
            raise DeliveryFailed(f"installation lookup failed ({type(exc).__name__})", retryable=True) from None
        if not token:
            raise DeliveryFailed(f"Handoff is not installed in Slack workspace {address.team}", retryable=False)
        return with_token(self.client, token), address.channel
