"""The Slack emulator's channels as the console shows them to one person.

Messages carry what the bot posted (``text``, ``blocks``, ``attachments``) in their latest version, their
thread replies, and the ephemeral messages only that person sees; the modal opened for them comes along.
"""

from __future__ import annotations

from typing import Any

from adapters.console.errors import NotFound
from adapters.console.people import ConsoleUser
from adapters.emulators.slack.emulator import SlackEmulator
from adapters.emulators.slack.state import ChannelState, EphemeralMessage, SlackMessage

PLATFORM = "slack"


def slack_channels(slack: SlackEmulator, user: ConsoleUser) -> list[dict[str, Any]]:
    """The sidebar: every channel, and the person's direct messages with the bot."""
    items = []
    for channel in list(slack.state.channels.values()):
        if channel.is_im and channel.name != user.slack_id:
            continue
        items.append(
            {
                "platform": PLATFORM,
                "id": channel.id,
                "name": channel.name,
                "title": f"{slack.world.bot_name} (direct message)" if channel.is_im else f"#{channel.name}",
                "kind": "im" if channel.is_im else "channel",
                "member": user.slack_id in channel.members,
                "messages": sum(1 for m in channel.messages if not m.deleted),
            }
        )
    return items


def slack_channel_view(slack: SlackEmulator, channel_id: str, user: ConsoleUser) -> dict[str, Any]:
    """One channel's timeline as ``user`` sees it; NotFound if there is no such channel."""
    state = slack.state
    channel = state.channels.get(channel_id)
    if channel is None:
        raise NotFound(f"There is no Slack channel {channel_id!r}.")
    world = slack.world
    messages = [_message(m) for m in list(channel.messages) if _shown(m)]
    if user.slack_id:
        _add_ephemeral(messages, state.ephemeral_for(user.slack_id, channel.id), world.bot_user_id)
    messages.sort(key=lambda m: m["time"])
    users = {u.id: u.real_name or u.name for u in world.users}
    users[world.bot_user_id] = world.bot_name
    views = [
        {"id": v.id, "view": v.view, "errors": dict(v.errors)}
        for v in list(state.views.values())
        if v.user == user.slack_id and not v.closed
    ]
    return {
        "platform": PLATFORM,
        "id": channel.id,
        "name": channel.name,
        "title": _title(slack, channel),
        "workspace": world.team_name,
        "messages": messages,
        "users": users,
        "channels": {c.id: c.name for c in state.channels.values() if not c.is_im},
        "view": views[-1] if views else None,
        "bot": {"id": world.bot_user_id, "name": world.bot_name},
    }


def _title(slack: SlackEmulator, channel: ChannelState) -> str:
    return f"{slack.world.bot_name} (direct message)" if channel.is_im else f"#{channel.name}"


def _shown(msg: SlackMessage) -> bool:
    """Slack drops a deleted message unless its thread keeps it ("This message was deleted.")."""
    return not msg.deleted or bool(msg.replies)


def _message(msg: SlackMessage) -> dict[str, Any]:
    return {
        "id": msg.ts,
        "ts": msg.ts,
        "time": float(msg.ts),
        "author": msg.user,
        "bot": msg.by_bot,
        "text": "" if msg.deleted else msg.text,
        "blocks": None if msg.deleted else msg.blocks,
        "attachments": None if msg.deleted else msg.attachments,
        "edited": msg.edited_ts is not None,
        "deleted": msg.deleted,
        "ephemeral": False,
        "broadcast": msg.reply_broadcast,
        "replies": [_message(r) for r in list(msg.replies) if not r.deleted],
    }


def _ephemeral(msg: EphemeralMessage, bot_user_id: str) -> dict[str, Any]:
    return {
        "id": msg.ts,
        "ts": msg.ts,
        "time": float(msg.ts),
        "author": bot_user_id,
        "bot": True,
        "text": msg.text,
        "blocks": msg.blocks,
        "attachments": None,
        "edited": bool(msg.versions),
        "deleted": False,
        "ephemeral": True,
        "broadcast": False,
        "replies": [],
    }


def _add_ephemeral(messages: list[dict[str, Any]], ephemeral: list[EphemeralMessage], bot_user_id: str) -> None:
    parents = {m["ts"]: m for m in messages}
    for msg in ephemeral:
        if msg.deleted:
            continue
        parent = parents.get(msg.thread_ts) if msg.thread_ts else None
        if parent is not None:
            parent["replies"].append(_ephemeral(msg, bot_user_id))
            parent["replies"].sort(key=lambda r: r["time"])
        else:
            messages.append(_ephemeral(msg, bot_user_id))
