"""A Slack stand-in for the core's tests: it records every call the outbox makes."""

from __future__ import annotations

import asyncio
from datetime import datetime

from bot.cards import Card
from bot.clock import Clock
from bot.ports import ConversationUnreachable, PostedMessage


class RecordingChannel:
    """A Slack stand-in that records every call (and, given a clock, when it came: ``times``; the card each
    call sent: ``cards``; each reply's card and whether it was broadcast: ``replies``); posts to a
    conversation in ``held`` wait for its event (``holding`` names the conversations a post waits in); calls
    to one in ``unreachable`` are recorded and refused as Slack refuses a channel Handoff is not in."""

    platform = "slack"

    def __init__(self, clock: Clock | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.times: list[float] = []
        self.clock = clock
        self.cards: list[Card] = []
        self.replies: list[tuple[Card, bool]] = []
        self.held: dict[str, asyncio.Event] = {}
        self.holding: list[str] = []
        self.unreachable: set[str] = set()
        self.called = asyncio.Condition()

    async def post_card(self, conversation_id: str, card: Card, *, marker: str | None = None) -> PostedMessage:
        if conversation_id in self.held:
            async with self.called:
                self.holding.append(conversation_id)
                self.called.notify_all()
            await self.held[conversation_id].wait()
        await self._record("post", conversation_id, card)
        return PostedMessage(f"m{len(self.calls)}", f"m{len(self.calls)}")

    async def update_card(self, conversation_id: str, message: PostedMessage, card: Card) -> None:
        await self._record("update", conversation_id, card)

    async def reply(
        self,
        conversation_id: str,
        parent: PostedMessage,
        card: Card,
        *,
        marker: str | None = None,
        broadcast: bool = False,
    ) -> PostedMessage:
        self.replies.append((card, broadcast))
        await self._record("reply", conversation_id, card)
        return PostedMessage(f"m{len(self.calls)}", parent.thread_id)

    async def find_posted(
        self, conversation_id: str, marker: str, since: datetime, parent: PostedMessage | None = None
    ) -> PostedMessage | None:
        return None

    async def _record(self, call: str, conversation_id: str, card: Card) -> None:
        async with self.called:
            self.calls.append((call, conversation_id, card.title))
            self.cards.append(card)
            if self.clock is not None:
                self.times.append(self.clock.monotonic())
            self.called.notify_all()
        if conversation_id in self.unreachable:
            raise ConversationUnreachable(f"chat.{call}: channel_not_found")

    async def until(self, count: int) -> None:
        """Wait for ``count`` calls (a safety net of 10 s against hanging, not a timing)."""
        async with asyncio.timeout(10), self.called:
            await self.called.wait_for(lambda: len(self.calls) >= count)

    async def until_holding(self, conversation_id: str) -> None:
        """Wait for a post to ``conversation_id`` to wait for its ``held`` event (a safety net of 10 s)."""
        async with asyncio.timeout(10), self.called:
            await self.called.wait_for(lambda: conversation_id in self.holding)
