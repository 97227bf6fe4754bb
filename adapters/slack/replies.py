"""Where an answer goes: privately to one person, in a thread, or in the channel.

Private answers use the interaction's ``response_url`` when there is one (it works where the bot is not
a member), else ``chat.postEphemeral``. Public answers use ``chat.postMessage``; when the bot cannot post
in the channel (a private channel it was not invited to), a slash command's ``response_url`` can still
post ``in_channel``, and the answer then says that nothing else Handoff posts reaches the channel until
someone invites it (a ``subscribe`` there is kept, and delivers once Handoff is in); anything else falls
back to a private answer saying so.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.interactions import Reply, Visibility
from bot.ports import ConversationUnreachable, DeliveryFailed

from .channel import WEB_LOGGER, SlackChatChannel
from .renderer import SlackContent, render_reply, render_text

log = logging.getLogger("handoff.slack.replies")

NOT_A_MEMBER = (
    "I'm not a member of this channel, so nothing I post on my own (cards, their updates, replies) reaches it: "
    "invite @Handoff to this channel first (`/invite @Handoff`)."
)
RESPONSE_URL_TIMEOUT = 10


class ReplyDelivery:
    """Delivers answers for the listeners, with the request's own (authorized) client."""

    def __init__(self, channel: SlackChatChannel) -> None:
        self.channel = channel

    async def reply(
        self,
        client: AsyncWebClient,
        reply: Reply,
        *,
        channel: str,
        user_id: str,
        thread_ts: str | None = None,
        response_url: str | None = None,
        note: str = "",
    ) -> str | None:
        """Deliver the core's ``reply`` as its visibility says. ``note`` (mrkdwn) marks public posts.

        Returns the ``ts`` of the message posted with ``chat.postMessage`` (which :meth:`show_later` can edit);
        None for an answer given otherwise (privately, or through the ``response_url``)."""
        if reply.visibility is Visibility.PRIVATE:
            content = render_reply(reply, compact=True)
            await self.private(
                client, content, channel=channel, user_id=user_id, thread_ts=thread_ts, response_url=response_url
            )
            return None
        in_thread = reply.visibility is Visibility.THREAD and thread_ts is not None
        content = render_reply(reply, compact=in_thread, note="" if in_thread else note)
        try:
            return await self.channel.send(client, channel, content, thread_ts=thread_ts if in_thread else None)
        except ConversationUnreachable as failure:
            problem, not_member = failure.reason, True
        except DeliveryFailed as failure:
            problem, not_member = failure.reason, False
        if not_member and response_url:
            # the channel sees the answer, and what it takes for anything else from Handoff to reach it
            told = render_reply(
                replace(reply, text=f"{reply.text}\n\n{NOT_A_MEMBER}"),
                compact=in_thread,
                note="" if in_thread else note,
            )
            if await self.respond(response_url, told, response_type="in_channel"):
                return None
        log.info("public reply not posted (%s); answering privately", problem)
        private = render_reply(reply, compact=True, note=NOT_A_MEMBER if not_member else "")
        await self.private(
            client, private, channel=channel, user_id=user_id, thread_ts=thread_ts, response_url=response_url
        )
        return None

    async def show_later(
        self,
        client: AsyncWebClient,
        reply: Reply,
        *,
        channel: str,
        ts: str | None,
        thread_ts: str | None = None,
        note: str = "",
    ) -> None:
        """Once the work ``reply`` announced is done, show its next face (``reply.later``) in place of the message
        ``ts`` that answered it (:meth:`reply` with the same ``thread_ts`` and ``note``). An answer given privately
        or through the ``response_url`` (no ``ts``) stays as it is: the run's own card tells how it went."""
        if reply.later is None:
            return
        later = await reply.later
        if later is None or ts is None:
            return
        in_thread = reply.visibility is Visibility.THREAD and thread_ts is not None
        content = render_reply(Reply(later.text, card=later), compact=in_thread, note="" if in_thread else note)
        try:
            await self.channel.edit(client, channel, ts, content)
        except DeliveryFailed as failure:
            log.warning("the answer %s was not updated: %s", ts, failure.reason)

    async def private(
        self,
        client: AsyncWebClient,
        content: SlackContent,
        *,
        channel: str,
        user_id: str,
        thread_ts: str | None = None,
        response_url: str | None = None,
    ) -> bool:
        """Show ``content`` to ``user_id`` only; False if it could not be delivered."""
        if response_url and await self.respond(response_url, content, response_type="ephemeral"):
            return True
        try:
            await self.channel.ephemeral(client, channel, user_id, content, thread_ts=thread_ts)
            return True
        except DeliveryFailed as failure:
            log.warning("private answer to %s not delivered: %s", user_id, failure.reason)
            return False

    async def say_privately(self, client: AsyncWebClient, text: str, **where: Any) -> bool:
        """A short private text."""
        return await self.private(client, render_text(text), **where)

    async def respond(
        self, response_url: str, content: SlackContent, *, response_type: str, replace_original: bool = False
    ) -> bool:
        """POST to a ``response_url``; False if Slack did not take it."""
        webhook = AsyncWebhookClient(
            response_url,
            timeout=RESPONSE_URL_TIMEOUT,
            session=self.channel.client.session,
            logger=WEB_LOGGER,
        )
        try:
            response = await webhook.send(
                text=content.text,
                blocks=content.blocks,
                response_type=None if replace_original else response_type,
                replace_original=replace_original,
            )
        except Exception as exc:
            log.warning("response_url failed: %s", type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("response_url answered %s", response.status_code)
            return False
        return True
