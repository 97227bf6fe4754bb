"""What typing into a channel does, delivered to the bot as each platform would.

Slack: ``/handoff …``, ``/retrain …`` and ``/integrate …`` are slash commands (signed form posts);
``@Handoff …`` is a message with an ``app_mention`` event; anything else is a plain message the bot does
not receive (it subscribes to mentions only). The text is escaped as Slack's client does (``&``, ``<``,
``>``). Teams: every message in a channel @mentions the bot (a bot only hears those); a leading
``@Handoff`` typed by the person is that mention. In the person's chat with the bot no mention is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.console.errors import BadRequest, NotFound, to_bot
from adapters.console.people import ConsoleUser
from adapters.emulators.botframework.emulator import BotFrameworkEmulator
from adapters.emulators.slack.emulator import SlackEmulator

SLACK_COMMANDS = ("/handoff", "/retrain", "/integrate")
"""The slash commands Handoff's Slack manifest registers."""

_SLASH = re.compile(r"^(/[\w-]+)(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Sent:
    """What the bot answered the delivery with (the page shows errors; replies arrive as messages)."""

    status: int
    answer: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": 200 <= self.status < 300, "status": self.status, "answer": self.answer}


def slack_escape(text: str) -> str:
    """Escape what Slack's client escapes in message and command text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def strip_mention(text: str, bot_name: str) -> tuple[bool, str]:
    """Whether ``text`` starts with ``@<bot name>`` (case-insensitive), and the text after it."""
    match = re.match(rf"^\s*@{re.escape(bot_name)}\b[\s,:]*", text, re.IGNORECASE)
    return (True, text[match.end() :]) if match else (False, text)


async def send_to_slack(
    slack: SlackEmulator, channel_id: str, user: ConsoleUser, text: str, thread: str | None = None
) -> Sent:
    """Deliver what ``user`` typed in a Slack channel (``thread``: the ``ts`` of the thread replied in)."""
    if user.slack_id is None:
        raise BadRequest(f"{user.name} has no Slack account in the emulated workspace.")
    if channel_id not in slack.state.channels:
        raise NotFound(f"There is no Slack channel {channel_id!r}.")
    if thread is not None and slack.state.find(channel_id, thread) is None:
        raise NotFound(f"There is no thread {thread!r} in this channel.")
    stripped = text.strip()
    slash = _SLASH.match(stripped)
    if slash:
        command, args = slash.group(1).lower(), (slash.group(2) or "").strip()
        if command not in SLACK_COMMANDS:
            raise BadRequest(f"{command} is not a valid command. Handoff's are {', '.join(SLACK_COMMANDS)}.")
        response = await to_bot(
            "Slack", slack.send_slash_command(command, slack_escape(args), channel=channel_id, user=user.key)
        )
        return Sent(response.status, _slack_answer(response.text))
    mentioned, rest = strip_mention(stripped, slack.world.bot_name)
    if mentioned:
        response = await to_bot(
            "Slack", slack.mention_bot(slack_escape(rest), channel=channel_id, user=user.key, thread_ts=thread)
        )
        return Sent(response.status, _slack_answer(response.text))
    slack.state.post(
        slack.state.channels[channel_id], user=user.slack_id, text=slack_escape(stripped), thread_ts=thread
    )
    return Sent(200)


async def send_to_teams(
    teams: BotFrameworkEmulator, conversation_id: str, user: ConsoleUser, text: str, thread: str | None = None
) -> Sent:
    """Deliver what ``user`` typed in a Teams channel or their chat with the bot (``thread``: the root post id)."""
    if user.teams_id is None:
        raise BadRequest(f"{user.name} has no Teams account in the emulated tenant.")
    conv = teams.state.conversations.get(conversation_id)
    if conv is None or conv.kind == "groupChat":
        raise NotFound(f"There is no Teams conversation {conversation_id!r}.")
    _, rest = strip_mention(text.strip(), teams.world.bot_name)
    if not rest.strip():
        raise BadRequest("Type something for the bot after the mention.")
    if conv.kind == "personal":
        if user.key not in conv.members:
            raise NotFound(f"There is no Teams conversation {conversation_id!r}.")
        response = await to_bot("Teams", teams.send_personal_message(rest, user=user.key))
        return Sent(response.status, response.body)
    if thread is not None and not any(p.id == thread for p in conv.posts):
        raise NotFound(f"There is no thread {thread!r} in this channel.")
    response = await to_bot(
        "Teams", teams.send_channel_message(rest, channel=conv.id, user=user.key, reply_to=thread, mention=True)
    )
    return Sent(response.status, response.body)


def _slack_answer(body: str) -> str | None:
    return body.strip()[:2000] or None
