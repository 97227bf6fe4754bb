"""What people do in chat, as the core sees it: commands typed and buttons clicked.

Platform adapters translate a Slack slash command, an ``@Handoff`` mention or a Teams message into a
:class:`CommandRequest`, and a button click (Block Kit ``block_actions``, Adaptive Card
``Action.Execute``) into an :class:`ActionRequest`, then hand them to an :class:`InteractionHandler`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from bot.cards import Card
from bot.ports import PostedMessage
from bot.records import ConversationAddress, Platform


@dataclass(frozen=True)
class ChatUser:
    """Who typed or clicked. Policy matches people by ``email`` first, then by platform id."""

    platform: Platform
    user_id: str
    name: str = ""
    email: str | None = None
    aad_object_id: str | None = None
    workspace_id: str | None = None  # Slack team id, Teams tenant id
    # the IANA name of the person's time zone (``Europe/Paris``), where their platform tells it: times they type
    # (``mute 3 until=17:00``) are read there, and times shown to them are shown there too
    time_zone: str | None = None

    @property
    def identities(self) -> frozenset[str]:
        """Every way a role or an approver list may name this person."""
        names = {f"{self.platform}:{self.user_id}"}
        if self.email:
            names.add(self.email.lower())
        if self.aad_object_id:
            names.add(f"aad:{self.aad_object_id.lower()}")
        return frozenset(names)

    @property
    def display(self) -> str:
        return self.email or self.name or self.user_id

    @property
    def key(self) -> str:
        """Who this is on their platform, the same whether or not the platform said more about them (their email,
        their name): platform, workspace (Slack team, Teams tenant) and user id."""
        return f"{self.platform}:{self.workspace_id or ''}:{self.user_id}"


@dataclass(frozen=True)
class CommandRequest:
    """A command, without the platform's wrapping: ``retrain model-x data=lake:7``."""

    user: ChatUser
    conversation: ConversationAddress
    text: str
    thread: PostedMessage | None = None
    # typed in a chat rather than a channel: the person's own chat with Handoff or a group chat (Slack direct
    # and group direct messages, Teams personal and group chats)
    in_chat: bool = False


MAX_COMMENT = 1000
"""The longest comment a decision keeps: what every platform's form lets a person type (Slack's modal, Teams'
input), the same everywhere, and what goes to Azure DevOps with it."""


@dataclass(frozen=True)
class ActionRequest:
    """A click on a card's button; ``comment`` is what the person typed with it, if anything."""

    user: ChatUser
    conversation: ConversationAddress
    message: PostedMessage
    action_id: str
    value: dict[str, str] = field(default_factory=dict)
    comment: str = ""


class Visibility(StrEnum):
    PRIVATE = "private"  # only the person who asked (Slack ephemeral, Teams invoke answer)
    THREAD = "thread"
    CHANNEL = "channel"


def bold(text: str) -> str:
    """Bold text in a :class:`Reply`'s text, ``**text**``: Teams shows the markdown as bold, the Slack
    adapter turns it into ``*text*`` (a single ``*`` is italics in Teams)."""
    return f"**{text}**"


def link(url: str, label: str) -> str:
    """A link with short text in a :class:`Reply`'s text, ``[label](url)``: Teams shows the markdown as a
    link, the Slack adapter turns it into ``<url|label>``. The URL loses what would end it early."""
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label.replace('[', '(').replace(']', ')')}]({safe})"


# the markup of a Reply's text: code spans, whose text is kept as written, then [label](url) links and **bold**
_REPLY_MARKUP = re.compile(r"(`[^`\n]+`)|\[([^\[\]\n]+)\]\((https?://[^\s()]+)\)|\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*")


@dataclass(frozen=True)
class Markup:
    """A piece of a :class:`Reply`'s text: ``text`` as written, a ``code`` span (with its backticks), a
    ``link`` (its label, and its ``url``) or ``bold`` text."""

    kind: Literal["text", "code", "link", "bold"]
    text: str
    url: str = ""


def reply_markup(text: str) -> Iterator[Markup]:
    """A :class:`Reply`'s text in pieces, for a platform adapter to write in its own markup (and escape the
    ``text`` pieces, which name runs, people and what they typed)."""
    end = 0
    for match in _REPLY_MARKUP.finditer(text):
        code, label, url, strong = match.groups()
        if match.start() > end:
            yield Markup("text", text[end : match.start()])
        if code is not None:
            yield Markup("code", code)
        elif label is not None:
            yield Markup("link", label, url)
        else:
            yield Markup("bold", strong)
        end = match.end()
    if end < len(text):
        yield Markup("text", text[end:])


@dataclass(frozen=True)
class Reply:
    """The answer the person sees at once.

    Its text is written once for both platforms, in the markdown Teams shows: ``**bold**`` (see
    :func:`bold`), `` `code` `` and ``[label](url)`` links (see :func:`link`). Each platform's adapter
    turns it into its own markup (Slack's ``*bold*`` and ``<url|label>``) and escapes the rest; nothing
    else in it is markup.

    ``later`` is work the answer announced that was still under way (a run being started): it gives the
    answer's next face once that work is done (``Started: …``), or None when the answer stays as it is. The
    platform adapter shows it in place of the answer where it posted one it can edit.
    """

    text: str
    card: Card | None = None
    visibility: Visibility = Visibility.PRIVATE
    later: Awaitable[Card | None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ActionResult:
    """How a click ended: accepted with the card's new face, or refused with the reason.

    ``later`` is work the click started that was still under way when it was answered (a run being
    started): it gives the card's next face once that work is done, or None when the card stays as it is.
    The platform adapter shows that face in place of the same card, as it showed ``card``.
    """

    accepted: bool
    message: str
    card: Card | None = None
    later: Awaitable[Card | None] | None = None


class InteractionHandler(Protocol):
    """The core's entry point for everything people do in chat."""

    async def on_command(self, request: CommandRequest) -> Reply: ...

    async def on_action(self, request: ActionRequest) -> ActionResult: ...

    async def refuse_before_comment(self, request: ActionRequest) -> str | None:
        """Why ``request`` (a click whose ``comment`` is not asked for yet) is refused whatever its comment; None
        when the platform may go on to ask for the comment. Platforms that ask in a form of their own call it
        first, so that nobody fills in a form only to be refused."""
        ...
