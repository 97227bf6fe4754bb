"""How Slack's ways of typing a command become the core's command text.

``/handoff retrain model-x`` and the short form ``/retrain model-x`` both give ``retrain model-x``; any
other slash command the manifest registers, ``/<verb> args``, gives ``<verb> args``. ``@Handoff retrain
model-x`` in a channel, and ``/handoff @Handoff retrain model-x``, give the same text with the bot's mention
removed, and with the markup Slack puts in messages (links, emails, channels) turned back into what was
typed. Another person's mention in the command's place is shown as the person sees it (``@Carol Diaz``,
which the core answers is not a command); elsewhere it is their email where Slack shows one, since the
core names people by email. The grammar itself is the core's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping

from bot.interactions import ChatUser

from .text import escape, unescape

MAIN_COMMAND = "/handoff"
SHORT_COMMANDS = ("/retrain", "/integrate")
"""The short forms the manifest registers beside ``/handoff``."""

DEFAULT_TEXT = "help"
"""What an empty ``/handoff`` or a bare mention asks for."""

_LEADING_MENTION = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>\s*")
_WHITESPACE = re.compile(r"\s+")
_MARKUP = re.compile(r"<([^<>]*)>")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

People = Mapping[str, ChatUser]
"""The people a command mentions, by Slack user id, as far as Slack told who they are."""


def command_text(command: str, text: str, bot_user_id: str | None = None, people: People | None = None) -> str:
    """The core's command text for a slash command ``command`` typed with ``text`` (mentions as in
    :func:`mention_text`)."""
    args = _command(text, bot_user_id, people or {})
    name = (command or "").strip().lower()
    if name in ("", MAIN_COMMAND):
        return args or DEFAULT_TEXT
    verb = name.removeprefix("/")
    return f"{verb} {args}".strip()


def mention_text(text: str, bot_user_id: str | None, people: People | None = None) -> str:
    """The command in an ``app_mention``: the bot's mention(s) removed (or a leading mention if the bot's id is
    unknown), the rest as typed (:func:`as_typed`); a person's mention in the command's place is ``@`` and their
    name, one elsewhere their email where ``people`` has it."""
    return _command(text, bot_user_id, people or {}) or DEFAULT_TEXT


def shown_as(command: str, text: str, bot_user_id: str | None = None, people: People | None = None) -> str:
    """How the person typed it, for messages that quote the command: Slack's markup as they saw it, the bot's own
    mention left out (the command is what it introduces)."""
    known = people or {}
    seen = _rewrite(text, bot_user_id, lambda person, label, _: "@" + _name(person, known, label))
    return f"{command} {seen}".strip() if command else seen


def mentioned_people(text: str) -> set[str]:
    """The ids of the people a command's text mentions (the bot's own included)."""
    return set(_USER_MENTION.findall(text or ""))


def as_typed(text: str) -> str:
    """Message text with Slack's markup turned back into what the person typed (still escaped).

    ``<mailto:carol@contoso.com|carol@contoso.com>`` gives ``carol@contoso.com``, ``<https://x.org|x.org>``
    gives ``x.org`` and ``<https://x.org>`` gives ``https://x.org``; ``<#C123|ops>`` gives ``#ops``;
    ``<!here>`` gives ``@here``. A person's mention, ``<@U123>``, stays (see :func:`mention_text`).
    See https://docs.slack.dev/messaging/formatting-message-text
    """
    return _MARKUP.sub(_typed, text)


def _command(text: str, bot_user_id: str | None, people: People) -> str:
    def person(user_id: str, label: str, leading: bool) -> str:
        if leading:  # in the command's place: quoted, so that the core names all of it
            return shlex.quote("@" + _name(user_id, people, label))
        found = people.get(user_id)
        return found.email if found is not None and found.email else ""

    return _rewrite(text, bot_user_id, person)


def _rewrite(text: str, bot_user_id: str | None, person: Callable[[str, str, bool], str]) -> str:
    """``text`` without the bot's mention, as typed (unescaped, its spaces collapsed); ``person(id, label,
    leading)`` gives what a person's mention becomes ("" keeps the mention as Slack wrote it)."""
    raw = text or ""
    if bot_user_id:
        raw = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", raw)
    else:  # until Slack has said who the bot is (authorize.py): a leading mention is taken as the bot's
        raw = _LEADING_MENTION.sub(" ", raw, count=1)
    raw = raw.strip()

    def typed(markup: re.Match[str]) -> str:
        mention = _USER_MENTION.fullmatch(markup.group(0))
        if mention is None:
            return _typed(markup)
        label = markup.group(1).partition("|")[2]
        replaced = person(mention.group(1), label, markup.start() == 0)
        return escape(replaced) if replaced else markup.group(0)

    return _WHITESPACE.sub(" ", unescape(_MARKUP.sub(typed, raw))).strip()


def _name(user_id: str, people: People, label: str) -> str:
    """The name Slack shows for ``user_id``: the one it told, else the mention's own label, else the id."""
    found = people.get(user_id)
    return (found.name if found is not None else "") or label or user_id


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
