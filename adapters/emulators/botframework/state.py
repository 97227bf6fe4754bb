"""What the emulated Teams holds: conversations, their top-level posts, replies and every edit.

A channel conversation's posts are threads; a reply sent to ``<channel>;messageid=<root>`` belongs to the
thread whose root activity id is ``<root>``. Personal (1:1) and group chats are flat.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.clock import Clock

from .errors import ConnectorError, activity_not_found, conversation_not_found
from .world import TeamsWorld

ConversationKind = Literal["channel", "personal", "groupChat"]
THREAD_MARKER = ";messageid="


def split_conversation_id(conversation_id: str) -> tuple[str, str | None]:
    """``"19:x@thread.tacv2;messageid=12"`` → ``("19:x@thread.tacv2", "12")``."""
    base, marker, root = conversation_id.partition(THREAD_MARKER)
    return base, (root if marker else None)


@dataclass
class Message:
    """One activity in a conversation, with every version it had (the last is current)."""

    id: str
    conversation_id: str
    thread_id: str | None
    author_id: str
    by_bot: bool
    versions: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime | None = None
    deleted: bool = False
    replies: list[Message] = field(default_factory=list)

    @property
    def activity(self) -> dict[str, Any]:
        """The latest version of the activity."""
        return self.versions[-1]

    @property
    def text(self) -> str | None:
        text = self.activity.get("text")
        return None if text is None else str(text)

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return list(self.activity.get("attachments") or [])

    @property
    def thread_conversation_id(self) -> str:
        """The conversation id that addresses this message's thread (channels only)."""
        return f"{self.conversation_id}{THREAD_MARKER}{self.thread_id or self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "from": self.author_id,
            "byBot": self.by_bot,
            "text": self.text,
            "activity": self.activity,
            "versions": len(self.versions),
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat() if self.updated_at else None,
            "deleted": self.deleted,
            "replies": [r.to_json() for r in self.replies],
        }


@dataclass
class Conversation:
    """A channel, a 1:1 chat or a group chat, and its top-level posts in order."""

    id: str
    kind: ConversationKind
    name: str | None = None
    team_id: str | None = None
    members: tuple[str, ...] = ()
    posts: list[Message] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "teamId": self.team_id,
            "posts": [p.to_json() for p in self.posts],
        }


class ConnectorState:
    """The emulator's conversations and messages, seeded from a :class:`TeamsWorld`."""

    def __init__(self, world: TeamsWorld, clock: Clock) -> None:
        self.world = world
        self.clock = clock
        self.conversations: dict[str, Conversation] = {}
        self._messages: dict[str, Message] = {}
        self._last_id = 0
        self._group_ids = itertools.count(1)
        self.bot_removed_from: set[str] = set()
        """Conversation ids whose roster the bot is no longer in: Teams answers 403 to anything sent there."""
        self.listeners: list[Callable[[], None]] = []
        """Called (with no arguments) after every post, update or delete, e.g. by the web console."""
        for team in world.teams:
            for channel in team.channels:
                self.conversations[channel.id] = Conversation(
                    channel.id, "channel", channel.name, team.id, team.members
                )
        for user in world.users:
            conv_id = user.personal_conversation_id
            self.conversations[conv_id] = Conversation(conv_id, "personal", user.name, None, (user.key,))

    # ids and lookups

    def new_activity_id(self) -> str:
        """A Teams-style message id: epoch milliseconds on the clock, strictly increasing."""
        candidate = int(self.clock.now().timestamp() * 1000)
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def conversation(self, ref: str) -> Conversation:
        """A conversation by id (a ``;messageid=`` suffix is ignored), or a channel by name."""
        base, _ = split_conversation_id(ref)
        if base in self.conversations:
            return self.conversations[base]
        for conv in self.conversations.values():
            if conv.kind == "channel" and conv.name == ref:
                return conv
        raise conversation_not_found(ref)

    def channel(self, ref: str) -> Conversation:
        """A channel by id or name (``"App releases"``)."""
        conv = self.conversation(ref)
        if conv.kind != "channel":
            raise conversation_not_found(ref)
        return conv

    def message(self, activity_id: str) -> Message:
        """Any message by activity id; KeyError if unknown."""
        return self._messages[activity_id]

    def resolve(self, conversation_id: str) -> tuple[Conversation, Message | None]:
        """The conversation and, for ``<channel>;messageid=<root>``, the thread's root message."""
        base, root_id = split_conversation_id(conversation_id)
        conv = self.conversations.get(base)
        if conv is None:
            raise conversation_not_found(conversation_id)
        if conv.id in self.bot_removed_from:
            raise ConnectorError(403, "BotNotInConversationRoster", "The bot is not part of the conversation roster.")
        if root_id is None:
            return conv, None
        root = self._messages.get(root_id)
        if root is None or root.conversation_id != conv.id or root.thread_id is not None:
            raise conversation_not_found(conversation_id)
        return conv, root

    def find(self, conversation_id: str, activity_id: str) -> Message:
        """A message of this conversation (any thread of the channel), or a 404 error."""
        conv, _ = self.resolve(conversation_id)
        msg = self._messages.get(activity_id)
        if msg is None or msg.conversation_id != conv.id or msg.deleted:
            raise activity_not_found(activity_id)
        return msg

    # changes

    def post(self, conversation_id: str, activity: dict[str, Any], *, by_bot: bool) -> Message:
        """Add an activity: a reply if the id names a thread, else a new top-level post."""
        conv, root = self.resolve(conversation_id)
        if root is not None and root.deleted:
            raise conversation_not_found(conversation_id)
        # the service assigns ids to what bots send; users' messages arrive with theirs
        activity_id = str((None if by_bot else activity.get("id")) or self.new_activity_id())
        stored = copy.deepcopy(activity)
        stored["id"] = activity_id
        stored.setdefault("timestamp", self._timestamp())
        author = (stored.get("from") or {}).get("id") or (self.world.bot_id if by_bot else "")
        msg = Message(
            id=activity_id,
            conversation_id=conv.id,
            thread_id=root.id if root is not None else None,
            author_id=str(author),
            by_bot=by_bot,
            versions=[stored],
            created_at=self.clock.now(),
        )
        if conv.kind == "channel":
            stored.setdefault("conversation", {})
            stored["conversation"] = {**stored["conversation"], "id": msg.thread_conversation_id}
        (root.replies if root is not None else conv.posts).append(msg)
        self._messages[activity_id] = msg
        self.changed()
        return msg

    def update(self, conversation_id: str, activity_id: str, activity: dict[str, Any]) -> Message:
        """Replace a bot message's content, keeping the earlier versions."""
        msg = self.find(conversation_id, activity_id)
        if not msg.by_bot:
            raise ConnectorError(403, "Forbidden", "A bot can only update its own messages")
        stored = copy.deepcopy(activity)
        stored["id"] = activity_id
        stored.setdefault("conversation", msg.activity.get("conversation"))
        msg.versions.append(stored)
        msg.updated_at = self.clock.now()
        self.changed()
        return msg

    def delete(self, conversation_id: str, activity_id: str) -> Message:
        """Mark a bot message deleted (it stays in the thread, as Teams shows it)."""
        msg = self.find(conversation_id, activity_id)
        if not msg.by_bot:
            raise ConnectorError(403, "Forbidden", "A bot can only delete its own messages")
        msg.deleted = True
        msg.updated_at = self.clock.now()
        self.changed()
        return msg

    def create_group_chat(self, members: tuple[str, ...]) -> Conversation:
        conv_id = f"19:groupchat{next(self._group_ids):04d}@thread.v2"
        conv = Conversation(conv_id, "groupChat", None, None, members)
        self.conversations[conv_id] = conv
        return conv

    def changed(self) -> None:
        """Tell the :attr:`listeners` that a message changed."""
        for listener in list(self.listeners):
            listener()

    # views

    def snapshot(self) -> dict[str, Any]:
        """Every conversation with its threads, JSON-ready (for tests and the console)."""
        return {
            "tenantId": self.world.tenant_id,
            "teams": [
                {
                    "id": team.id,
                    "name": team.name,
                    "channels": [self.conversations[c.id].to_json() for c in team.channels],
                }
                for team in self.world.teams
            ],
            "chats": [c.to_json() for c in self.conversations.values() if c.kind != "channel"],
        }

    def _timestamp(self) -> str:
        return self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
