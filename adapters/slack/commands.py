"""How Slack's ways of typing a command become the core's command text.

``/handoff retrain model-x`` and the short form ``/retrain model-x`` both give ``retrain model-x``; any
other slash command the manifest registers, ``/<verb> args``, gives ``<verb> args``. ``@Handoff retrain
model-x`` in a channel gives the same text with the mention removed. The grammar itself is the core's.
"""

from __future__ import annotations

import re

from .text import unescape

MAIN_COMMAND = "/handoff"
SHORT_COMMANDS = ("/retrain", "/integrate")
"""The short forms the manifest registers beside ``/handoff``."""

DEFAULT_TEXT = "help"
"""What an empty ``/handoff`` or a bare mention asks for."""

_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>\s*")
_WHITESPACE = re.compile(r"\s+")


def command_text(command: str, text: str) -> str:
    """The core's command text for a slash command ``command`` typed with ``text``."""
    args = _WHITESPACE.sub(" ", unescape(text or "")).strip()
    name = (command or "").strip().lower()
    if name in ("", MAIN_COMMAND):
        return args or DEFAULT_TEXT
    verb = name.removeprefix("/")
    return f"{verb} {args}".strip()


def mention_text(text: str, bot_user_id: str | None) -> str:
    """The command in an ``app_mention``: the bot's mention(s) removed, or a leading mention if the
    bot's id is unknown."""
    raw = text or ""
    if bot_user_id:
        raw = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", raw)
    else:
        raw = _LEADING_MENTION.sub(" ", raw, count=1)
    cleaned = _WHITESPACE.sub(" ", unescape(raw)).strip()
    return cleaned or DEFAULT_TEXT


def shown_as(command: str, text: str) -> str:
    """How the person typed it, for messages that quote the command."""
    return f"{command} {text}".strip() if command else text
