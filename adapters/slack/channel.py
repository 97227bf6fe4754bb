"""The Slack :class:`~bot.ports.ChatChannel`: post a card, update it in place, reply in its thread,
and send private (ephemeral) messages, through slack_sdk's ``AsyncWebClient``.

Every failure comes out as :class:`~bot.ports.DeliveryFailed` (see :mod:`adapters.slack.errors`).
``chat.postMessage`` is paced per channel (:class:`~adapters.slack.pacing.ChannelPacer`) and a 429 is
retried by slack_sdk's ``AsyncRateLimitErrorRetryHandler`` after ``Retry-After``. No call waits inline longer
than :data:`MAX_INLINE_WAIT`, well inside the time the outbox gives an attempt to send: a turn at a pacer further off is
:class:`~bot.ports.SendLater`, and a 429 asking for longer goes to the outbox with its ``Retry-After``, so that
the outbox schedules the delivery instead of another attempt claiming it while this one still waits to send.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import ClientConnectorError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import Card, Mention
from bot.clock import Clock
from bot.ports import DeliveryFailed, PostedMessage, SendLater
from bot.records import Platform

from .addresses import SlackAddress
from .errors import delivery_failure
from .identity import UserDirectory
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
# Messages Handoff posts carry {"event_type": METADATA_EVENT, "event_payload": {"marker": ...}}, so that a post
# whose answer was lost can be found again instead of posted twice.
METADATA_EVENT = "handoff_message"
# How far before a delivery's creation a lookup starts (clocks differ), and how much history it reads.
LOOKBACK_SECONDS = 5.0
HISTORY_PAGE = 15  # what Slack now serves a non-Marketplace app per conversations.history call
# (such apps get about one history call a minute: past a few pages, posting again is the lesser harm)
HISTORY_PAGES = 3
MAX_INLINE_WAIT = 10.0
"""The longest a call waits before going out (seconds): its turn at the pacers, or a 429's ``Retry-After`` before
slack_sdk tries once more. Well inside the time the outbox gives an attempt to send (45 s)."""
# chat.update is Tier 3: "50+ per minute" per workspace, short bursts tolerated.
UPDATES_PER_MINUTE = 50
UPDATE_BURST = 40


def make_client(
    token: str | None, base_url: str, timeout: int = DEFAULT_TIMEOUT, max_wait: float = MAX_INLINE_WAIT
) -> AsyncWebClient:
    """An ``AsyncWebClient`` with Handoff's retry policy (connection errors, then a 429 after a Retry-After of at
    most ``max_wait`` seconds)."""
    client = AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        logger=WEB_LOGGER,
    )
    ensure_retry_handlers(client, max_wait=max_wait)
    return client


class NoRepostConnectionErrorRetryHandler(AsyncConnectionErrorRetryHandler):
    """slack_sdk's retry after a connection error, except for a ``chat.postMessage`` that may have been
    sent: a connection dropped after the request can follow a posted message, and posting again would
    show it twice. Such a failure reaches the outbox, which looks for the message before posting again.
    """

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.endswith("/chat.postMessage") and not isinstance(error, ClientConnectorError):
            return False  # (a connection that never opened sent nothing: that one may be retried)
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


class ShortRateLimitErrorRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's retry of a 429 after its ``Retry-After``, when that is at most ``max_wait`` seconds. A longer
    wait is not spent inline (the attempt's time to send could run out meanwhile, and another attempt
    post it too): the 429 reaches the outbox, which tries again after the Retry-After."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = MAX_INLINE_WAIT) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not await super()._can_retry_async(state=state, request=request, response=response, error=error):
            return False
        return response is not None and _retry_after(response) <= self.max_wait


def _retry_after(response: HttpResponse) -> float:
    """The seconds a 429 asks to wait, as slack_sdk reads them (1 when it does not say; beyond any wait when
    it says something that is no number)."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) and values else values
            try:
                return float(int(str(value)))  # (slack_sdk sleeps int(Retry-After) plus up to a second)
            except ValueError:
                return float("inf")
    return 1.0


def ensure_retry_handlers(
    client: AsyncWebClient, rate_limit_retries: int = 1, max_wait: float = MAX_INLINE_WAIT
) -> AsyncWebClient:
    """Give the client Handoff's retry policy: connection errors (never a post that may have been sent),
    then 429s after a Retry-After of at most ``max_wait`` seconds. slack_sdk's default connection-error
    handler, and any 429 handler that would wait longer, are replaced."""
    handlers = client.retry_handlers
    handlers[:] = [
        h
        for h in handlers
        if not isinstance(h, AsyncConnectionErrorRetryHandler) or isinstance(h, NoRepostConnectionErrorRetryHandler)
    ]
    if not any(isinstance(h, NoRepostConnectionErrorRetryHandler) for h in handlers):
        handlers.append(NoRepostConnectionErrorRetryHandler())
    handlers[:] = [
        h
        for h in handlers
        if not isinstance(h, AsyncRateLimitErrorRetryHandler)
        or (isinstance(h, ShortRateLimitErrorRetryHandler) and h.max_wait <= max_wait)
    ]
    if not any(isinstance(h, ShortRateLimitErrorRetryHandler) for h in handlers):
        handlers.append(ShortRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries, max_wait=max_wait))
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


def workspace_update_pacer(clock: Clock | None = None) -> ChannelPacer:
    """Paces the cards' ``chat.update`` per workspace: Slack's Tier 3 allows about 50 a minute for the
    whole workspace, while posts are limited per channel; a storm across many channels would otherwise
    meet a wall of 429s. Bursts of up to 40 go at once (people's clicks update their card without it)."""
    return ChannelPacer(rate=UPDATES_PER_MINUTE / 60, burst=UPDATE_BURST, clock=clock)


class SlackChatChannel:
    """Sends Handoff's cards to Slack.

    Args:
        client: the Web API client; with one workspace it carries the bot token.
        tokens: with OAuth installs, finds the bot token of the workspace named in a conversation id
            (``T0123:C0123``); see :mod:`adapters.slack.addresses`.
        pacer: paces ``chat.postMessage`` per channel (one a second, bursts of 3, by default).
        update_pacer: paces the cards' ``chat.update`` per workspace (:func:`workspace_update_pacer`).
        max_wait: the longest a call waits for its turn at a pacer; one whose turn is further off raises
            :class:`~bot.ports.SendLater` without sending.
        compact_replies: render thread replies with the compact card.
    """

    platform: Platform = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        tokens: TokenLookup | None = None,
        pacer: ChannelPacer | None = None,
        update_pacer: ChannelPacer | None = None,
        compact_replies: bool = True,
        users: UserDirectory | None = None,
        max_wait: float = MAX_INLINE_WAIT,
    ) -> None:
        self.client = ensure_retry_handlers(client, max_wait=max_wait)
        self.max_wait = max_wait
        self.tokens = tokens
        self.pacer = pacer or ChannelPacer()
        self.update_pacer = update_pacer or workspace_update_pacer()
        self.compact_replies = compact_replies
        self.users = users or UserDirectory()

    # --- the ChatChannel port ---------------------------------------------------------------------

    async def post_card(self, conversation_id: str, card: Card, *, marker: str | None = None) -> PostedMessage:
        """Post ``card`` as a new top-level message; it starts its own thread. The people it calls on who are
        members of the workspace are @mentioned (a gate's approvers)."""
        client, channel = await self._resolve(conversation_id)
        content = await self._with_mentions(client, conversation_id, card)
        ts = await self.send(client, channel, content, marker=marker)
        return PostedMessage(message_id=ts, thread_id=ts)

    async def update_card(self, conversation_id: str, message: PostedMessage, card: Card) -> None:
        """Replace a posted message's text and blocks (``chat.update``), at the workspace's pace. (Slack
        notifies nobody of an edit: the mentions only keep the card as it was posted.)"""
        client, channel = await self._resolve(conversation_id)
        workspace = SlackAddress.parse(conversation_id).team or ""
        await self._turn(self.update_pacer, workspace, "the workspace's card updates")
        content = await self._with_mentions(client, conversation_id, card)
        try:
            await self.edit(client, channel, message.message_id, content)
        except DeliveryFailed as failure:
            if failure.retry_after:  # Slack limits chat.update per workspace: every channel's updates wait
                self.update_pacer.hold(workspace, failure.retry_after)
            raise

    async def reply(
        self,
        conversation_id: str,
        parent: PostedMessage,
        card: Card,
        *,
        marker: str | None = None,
        broadcast: bool = False,
    ) -> PostedMessage:
        """Post ``card`` in the thread of ``parent`` (``broadcast``: also in the channel), @mentioning the
        people it names who are members of the workspace."""
        client, channel = await self._resolve(conversation_id)
        thread = parent.thread_id or parent.message_id
        content = await self._with_mentions(client, conversation_id, card, compact=self.compact_replies)
        ts = await self.send(client, channel, content, thread_ts=thread, marker=marker, broadcast=broadcast)
        return PostedMessage(message_id=ts, thread_id=thread)

    async def _with_mentions(
        self, client: AsyncWebClient, conversation_id: str, card: Card, *, compact: bool = False
    ) -> SlackContent:
        """``card`` rendered, with ``<@U…>`` for each person it calls on by Slack user id, or whom the workspace
        knows by email (a person named by another platform's id goes unmentioned: the card's text names them)."""
        if not card.mentions:
            return render_card(card, compact=compact)
        team = SlackAddress.parse(conversation_id).team
        ids = [await self._slack_id(client, mention, team) for mention in card.mentions]
        mentions = " ".join(f"<@{user_id}>" for user_id in dict.fromkeys(ids) if user_id)
        content = render_card(card, compact=compact, note=mentions)
        if mentions:  # (Slack notifies the people mentioned in the message's text)
            content = SlackContent(text=f"{content.text} {mentions}", blocks=content.blocks)
        return content

    async def _slack_id(self, client: AsyncWebClient, mention: Mention, team: str | None) -> str | None:
        if (user_id := mention.id_on("slack")) is not None:
            return user_id
        return await self.users.id_for_email(client, mention.email, team) if mention.email else None

    async def find_posted(
        self, conversation_id: str, marker: str, since: datetime, parent: PostedMessage | None = None
    ) -> PostedMessage | None:
        """The message Handoff posted with ``marker`` (in its metadata) since ``since``, read from the
        channel's history (``conversations.history``, or ``conversations.replies`` in ``parent``'s thread)."""
        client, channel = await self._resolve(conversation_id)
        thread = (parent.thread_id or parent.message_id) if parent else None
        args: dict[str, Any] = {
            "channel": channel,
            "oldest": f"{since.timestamp() - LOOKBACK_SECONDS:.6f}",
            "include_all_metadata": True,
            "limit": HISTORY_PAGE,
        }
        method = "conversations.replies" if thread else "conversations.history"
        for _ in range(HISTORY_PAGES):
            if thread:
                response = await self.call(method, client.conversations_replies(ts=thread, **args))
            else:
                response = await self.call(method, client.conversations_history(**args))
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT and payload.get("marker") == marker:
                    return PostedMessage(message_id=str(message["ts"]), thread_id=thread or str(message["ts"]))
            args["cursor"] = (response.get("response_metadata") or {}).get("next_cursor")
            if not args["cursor"]:
                return None
        return None

    async def post_ephemeral(
        self, conversation_id: str, user_id: str, card: Card, thread: PostedMessage | None = None
    ) -> None:
        """Show ``card`` to one person in a conversation (``chat.postEphemeral``)."""
        client, channel = await self._resolve(conversation_id)
        thread_ts = (thread.thread_id or thread.message_id) if thread else None
        await self.ephemeral(client, channel, user_id, render_card(card, compact=True), thread_ts=thread_ts)

    # --- the calls, with any workspace's client -----------------------------------------------------

    async def send(
        self,
        client: AsyncWebClient,
        channel: str,
        content: SlackContent,
        thread_ts: str | None = None,
        marker: str | None = None,
        broadcast: bool = False,
    ) -> str:
        """``chat.postMessage``; returns the new message's ``ts``. ``marker`` goes in the message's metadata;
        ``broadcast`` shows a thread reply in the channel too."""
        await self._turn(self.pacer, channel, "the channel's posts")
        args: dict[str, Any] = {"channel": channel, "text": content.text, "blocks": content.blocks}
        if thread_ts:
            args["thread_ts"] = thread_ts
            if broadcast:
                args["reply_broadcast"] = True
        if marker:
            args["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"marker": marker}}
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

    async def _turn(self, pacer: ChannelPacer, key: str, what: str) -> None:
        """Wait for a turn at ``pacer``; :class:`SendLater` when it is more than :attr:`max_wait` away."""
        if (wait := await pacer.wait(key, self.max_wait)) is not None:
            raise SendLater(f"Slack's pace for {what} has no room for {wait:.1f}s", wait)

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
