"""Teams conversation ids: a channel, a thread in it, a 1:1 or group chat, a person.

A channel's id is ``19:…@thread.tacv2`` (``@thread.skype`` for old teams); a thread in it is addressed
as ``<channel>;messageid=<root activity id>``. Personal chats have ids starting ``a:``, people have MRIs
starting ``29:``. No botbuilder here: these are plain strings.
"""

from __future__ import annotations

THREAD_MARKER = ";messageid="


def split_thread(conversation_id: str) -> tuple[str, str | None]:
    """``"19:x@thread.tacv2;messageid=12"`` → ``("19:x@thread.tacv2", "12")``; no thread → ``(id, None)``."""
    base, marker, root = conversation_id.partition(THREAD_MARKER)
    return base, (root or None) if marker else None


def thread_id(channel_id: str, root_id: str) -> str:
    """The conversation id of the thread whose root message is ``root_id``."""
    base, _ = split_thread(channel_id)
    return f"{base}{THREAD_MARKER}{root_id}"


def is_channel_id(conversation_id: str) -> bool:
    """Whether the id names a team channel (not a group chat, whose ids end ``@thread.v2``)."""
    base, _ = split_thread(conversation_id)
    return base.startswith("19:") and base.endswith(("@thread.tacv2", "@thread.skype"))


def is_user_id(conversation_id: str) -> bool:
    """Whether the id is a person's Teams MRI (``29:…``) rather than a conversation."""
    return conversation_id.startswith("29:")
