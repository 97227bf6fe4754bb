"""How Slack's ways of typing a command become the core's command text.

``/handoff retrain model-x`` and the short form ``/retrain model-x`` both give ``retrain model-x``; any
other slash command the manifest registers, ``/<verb> args``, gives ``<verb> args``. ``@Handoff retrain
model-x`` in a channel gives the same text with the mention removed, and with the markup Slack puts in
messages (links, emails, channels) turned back into what was typed. The grammar itself is the core's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .text import unescape

MAIN_COMMAND = "/handoff"
SHORT_COMMANDS = ("/retrain", "/integrate")
"""The short forms the manifest registers beside ``/handoff``."""

DEFAULT_TEXT = "help"
"""What an empty ``/handoff`` or a bare mention asks for."""

_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>\s*")
_WHITESPACE = re.compile(r"\s+")
_MARKUP = re.compile(r"<([^<>]*)>")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def command_text(command: str, text: str) -> str:
    """The core's command text for a slash command ``command`` typed with ``text``."""
    args = _WHITESPACE.sub(" ", unescape(text or "")).strip()
    name = (command or "").strip().lower()
    if name in ("", MAIN_COMMAND):
        return args or DEFAULT_TEXT
    verb = name.removeprefix("/")
    return f"{verb} {args}".strip()


def mentioned_people(text: str) -> set[str]:
    """The ids of the people an ``app_mention``'s text mentions (the bot's own included)."""
    return set(_USER_MENTION.findall(text or ""))


def mention_text(text: str, bot_user_id: str | None, emails: Mapping[str, str] | None = None) -> str:
    """The command in an ``app_mention``: the bot's mention(s) removed (or a leading mention if the
    bot's id is unknown), the rest as typed (:func:`as_typed`), and a person's mention replaced by their
    email when ``emails`` (id to email) has it, since the core names people by email."""
    raw = text or ""
    if bot_user_id:
        raw = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", raw)
    else:
        raw = _LEADING_MENTION.sub(" ", raw, count=1)
    if emails:
        raw = _USER_MENTION.sub(lambda m: emails.get(m.group(1)) or m.group(0), raw)
    cleaned = _WHITESPACE.sub(" ", unescape(as_typed(raw))).strip()
    return cleaned or DEFAULT_TEXT


def as_typed(text: str) -> str:
    """Message text with Slack's markup turned back into what the person typed (still escaped).

    ``<mailto:carol@contoso.com|carol@contoso.com>`` gives ``carol@contoso.com``, ``<https://x.org|x.org>``
    gives ``x.org`` and ``<https://x.org>`` gives ``https://x.org``; ``<#C123|ops>`` gives ``#ops``;
    ``<!here>`` gives ``@here``. A person's mention, ``<@U123>``, stays (see :func:`mention_text`).
    See https://docs.slack.dev/messaging/formatting-message-text
    """
    return _MARKUP.sub(_typed, text)


def _typed(markup: re.Match[str]) -> str:
    inner = markup.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return markup.group(0)
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):  # <!here>, <!subteam^S123|@team>, <!date^...|fallback>
        return label or "@" + target[1:].split("^", 1)[0]
    return label or target.removeprefix("mailto:")


def shown_as(command: str, text: str) -> str:
    """How the person typed it, for messages that quote the command."""
    return f"{command} {text}".strip() if command else text
