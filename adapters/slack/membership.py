"""Where Handoff may post in Slack: a channel it was removed from, or that was archived or deleted, is
inactive in the store until Handoff is back in it (the ingest then queues nothing there).

Slack tells with ``member_left_channel`` and ``member_joined_channel`` (for Handoff's own bot user),
``channel_archive`` / ``group_archive``, ``channel_unarchive`` / ``group_unarchive`` and ``channel_deleted``.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.clock import Clock, SystemClock
from bot.ports import ConversationStore
from bot.records import ConversationAddress, ConversationRecord

from .addresses import SlackAddress
from .tasks import BackgroundTasks, follow_up

log = logging.getLogger("handoff.slack.membership")

GONE = ("channel_archive", "group_archive", "channel_deleted")
BACK = ("channel_unarchive", "group_unarchive")


class MembershipListeners:
    """Keeps the store's ``active`` flag of each Slack channel as Slack says it stands.

    Args:
        conversations: the store's conversations.
        tasks: runs the store's write once the event is acknowledged.
        clock: when the change was heard.
        qualify_conversations: name conversations ``TEAM:CHANNEL`` (OAuth installs), as the listeners do.
    """

    def __init__(
        self,
        conversations: ConversationStore,
        tasks: BackgroundTasks,
        clock: Clock | None = None,
        *,
        qualify_conversations: bool = False,
    ) -> None:
        self.conversations = conversations
        self.tasks = tasks
        self.clock = clock or SystemClock()
        self.qualify = qualify_conversations

    def register(self, bolt: AsyncApp) -> None:
        bolt.event("member_left_channel")(self.on_member_left)
        bolt.event("member_joined_channel")(self.on_member_joined)
        for gone in GONE:
            bolt.event(gone)(self.on_gone)
        for back in BACK:
            bolt.event(back)(self.on_back)

    async def on_member_left(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("user") and event.get("user") == context.bot_user_id:
            self._set(context, event, active=False, why="Handoff was removed from it")

    async def on_member_joined(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("user") and event.get("user") == context.bot_user_id:
            self._set(context, event, active=True, why="Handoff was added to it")

    async def on_gone(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        self._set(context, event, active=False, why=f"{event.get('type')}")

    async def on_back(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        self._set(context, event, active=True, why=f"{event.get('type')}")

    def _set(self, context: AsyncBoltContext, event: dict[str, Any], *, active: bool, why: str) -> None:
        channel = event.get("channel")
        if not isinstance(channel, str) or not channel:
            return
        team = context.team_id if self.qualify else None
        where = ConversationAddress("slack", SlackAddress(channel=channel, team=team).conversation_id())
        follow_up(context, self.tasks).spawn(self._save(where, active, why), name="slack membership")

    async def _save(self, where: ConversationAddress, active: bool, why: str) -> None:
        known = await self.conversations.get_conversation(where)
        if known is None and active:
            return  # never marked inactive: nothing to bring back
        name = known.name if known else ""
        await self.conversations.save_conversation(
            ConversationRecord(where, name, active=active, updated_at=self.clock.now())
        )
        log.info("Slack channel %s is %s: %s", where.conversation_id, "active" if active else "inactive", why)
