"""A chat platform for the core's tests that fails as scripted and keeps what it was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.cards import Card
from bot.ports import DeliveryFailed, PostedMessage

Fault = Literal["refused", "rate_limited", "lost"] | None


@dataclass
class Message:
    conversation: str
    title: str
    marker: str | None
    parent: str | None  # the message a reply is under


class FlakyChannel:
    """Each call, the lookups included, takes the next of ``faults``: None, it works; ``refused``, a retryable
    failure before anything was sent; ``rate_limited``, a 429 with Retry-After; ``lost``, the call takes effect
    but its answer is lost (a lookup just fails). Every message is kept with its marker and found again by it,
    as Slack's history finds it."""

    platform = "slack"

    def __init__(self, faults: list[Fault]) -> None:
        self.faults = list(faults)
        self.messages: dict[str, Message] = {}

    def _fail_before(self) -> Fault:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "refused":
            raise DeliveryFailed("503 service unavailable", True)
        if fault == "rate_limited":
            raise DeliveryFailed("429 ratelimited", True, retry_after=1.0)
        return fault

    def _fail_after(self, fault: Fault) -> None:
        if fault == "lost":
            raise DeliveryFailed("the connection dropped", True, maybe_sent=True)

    def _add(self, message: Message) -> str:
        message_id = f"m{len(self.messages) + 1}"
        self.messages[message_id] = message
        return message_id

    async def post_card(self, conversation_id: str, card: Card, *, marker: str | None = None) -> PostedMessage:
        fault = self._fail_before()
        message_id = self._add(Message(conversation_id, card.title, marker, None))
        self._fail_after(fault)
        return PostedMessage(message_id, message_id)

    async def update_card(self, conversation_id: str, message: PostedMessage, card: Card) -> None:
        fault = self._fail_before()
        self.messages[message.message_id].title = card.title
        self._fail_after(fault)

    async def reply(
        self,
        conversation_id: str,
        parent: PostedMessage,
        card: Card,
        *,
        marker: str | None = None,
        broadcast: bool = False,
    ) -> PostedMessage:
        fault = self._fail_before()
        message_id = self._add(Message(conversation_id, card.title, marker, parent.message_id))
        self._fail_after(fault)
        return PostedMessage(message_id, parent.thread_id)

    async def find_posted(
        self, conversation_id: str, marker: str, since: datetime, parent: PostedMessage | None = None
    ) -> PostedMessage | None:
        if self._fail_before() == "lost":  # a read that fails takes nothing with it
            raise DeliveryFailed("the connection dropped", True)
        for message_id, message in self.messages.items():
            if message.conversation == conversation_id and message.marker == marker:
                return PostedMessage(message_id, message.parent or message_id)
        return None

    def shown(self, conversation_id: str) -> list[Message]:
        """The conversation's messages, oldest first."""
        return [m for m in self.messages.values() if m.conversation == conversation_id]
