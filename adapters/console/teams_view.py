"""The Teams emulator's channels (and each person's chat with the bot) as the console shows them.

A message carries its latest activity's text and Adaptive Card attachments, with the card the person
sees (see :mod:`adapters.console.personal_cards`), and its thread replies.
"""

from __future__ import annotations

from typing import Any

from adapters.console.errors import NotFound
from adapters.console.people import ConsoleUser
from adapters.console.personal_cards import ADAPTIVE_CARD, PersonalCards
from adapters.emulators.botframework.emulator import BotFrameworkEmulator
from adapters.emulators.botframework.state import Conversation, Message

PLATFORM = "teams"
IGNORED_ATTACHMENTS = ("text/html",)
"""Attachments that only repeat the message text (Teams adds the HTML of a message with a mention)."""


def teams_channels(teams: BotFrameworkEmulator, user: ConsoleUser) -> list[dict[str, Any]]:
    """The sidebar: every channel of every team, and the person's chat with the bot."""
    state = teams.state
    items = []
    for team in teams.world.teams:
        for channel in team.channels:
            conv = state.conversations[channel.id]
            items.append(_item(conv, channel.name, team.name, "channel"))
    if user.teams_id:
        for conv in list(state.conversations.values()):
            if conv.kind == "personal" and user.key in conv.members:
                items.append(_item(conv, f"{teams.world.bot_name} (chat)", "", "personal"))
    return items


def teams_channel_view(
    teams: BotFrameworkEmulator, conversation_id: str, user: ConsoleUser, cards: PersonalCards
) -> dict[str, Any]:
    """One channel's threads (or one chat) as ``user`` sees them; NotFound if there is no such conversation."""
    conv = teams.state.conversations.get(conversation_id)
    if conv is None or conv.kind == "groupChat" or (conv.kind == "personal" and user.key not in conv.members):
        raise NotFound(f"There is no Teams conversation {conversation_id!r}.")
    team = next((t for t in teams.world.teams if t.id == conv.team_id), None)
    names = {u.id: u.name for u in teams.world.users}
    names[teams.world.bot_id] = teams.world.bot_name
    name = (conv.name or "") if conv.kind == "channel" else f"{teams.world.bot_name} (chat)"
    return {
        "platform": PLATFORM,
        "id": conv.id,
        "name": name,
        "title": name,
        "kind": conv.kind,
        "team": team.name if team else "",
        "messages": [_message(m, names, user, cards) for m in list(conv.posts)],
        "bot": {"id": teams.world.bot_id, "name": teams.world.bot_name},
    }


def _item(conv: Conversation, title: str, team: str, kind: str) -> dict[str, Any]:
    return {
        "platform": PLATFORM,
        "id": conv.id,
        "name": conv.name or title,
        "title": title,
        "team": team,
        "kind": kind,
        "member": True,
        "messages": sum(1 for m in conv.posts if not m.deleted),
    }


def _message(msg: Message, names: dict[str, str], user: ConsoleUser, cards: PersonalCards) -> dict[str, Any]:
    activity = msg.activity
    raw_sender = activity.get("from")
    sender: dict[str, Any] = raw_sender if isinstance(raw_sender, dict) else {}
    shown_cards: list[dict[str, Any]] = []
    others: list[str] = []
    for attachment in msg.attachments if not msg.deleted else []:
        if not isinstance(attachment, dict):
            continue
        content_type = str(attachment.get("contentType") or "")
        content = attachment.get("content")
        if content_type == ADAPTIVE_CARD and isinstance(content, dict):
            personal = False
            if not shown_cards:
                content, personal = cards.card(msg, content, user)
            shown_cards.append({"content": content, "personal": personal})
        elif content_type not in IGNORED_ATTACHMENTS:
            others.append(str(attachment.get("name") or content_type or "attachment"))
    return {
        "id": msg.id,
        "time": msg.created_at.timestamp(),
        "author": msg.author_id,
        "authorName": names.get(msg.author_id) or str(sender.get("name") or msg.author_id),
        "bot": msg.by_bot,
        "text": "" if msg.deleted else (msg.text or ""),
        "textFormat": activity.get("textFormat"),
        "cards": shown_cards,
        "attachments": others,
        "edited": len(msg.versions) > 1 and not msg.deleted,
        "deleted": msg.deleted,
        "replies": [_message(r, names, user, cards) for r in list(msg.replies)],
    }
