"""How a Teams message becomes the core's command text (the same grammar as Slack).

Teams writes each @mention into the text as ``<at>Name</at>`` and says whom it names in the activity's
``mention`` entities. The bot's own mentions (by whatever name it was mentioned) are removed wherever they
stand; someone else's is shown as the person saw it, ``@Alice Ng``, so that one in the command's place is
answered as not a command. What is left may still carry HTML entities (``&nbsp;``) and the forms people
bring from Slack: ``/handoff subscribe``, ``handoff subscribe`` and ``/retrain model-x`` give ``subscribe``
and ``retrain model-x``. An empty message asks for ``help``.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAIN_COMMAND = "/handoff"
DEFAULT_TEXT = "help"

_AT_TAG = re.compile(r"<at(?:\s[^>]*)?>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Mentions:
    """Whom a message's ``<at>`` tags name, by the name inside the tag (see :func:`mentions`)."""

    bot: frozenset[str] = frozenset()
    others: frozenset[str] = frozenset()
    bot_named: bool = False
    """Whether an entity said which tag is the bot's (else a leading tag nobody is named by is taken as its)."""


def mentions(entities: Iterable[Mapping[str, Any]], bot_id: str | None, bot_name: str | None = None) -> Mentions:
    """The mentions in an activity's ``entities`` (as JSON), told apart by ``bot_id``, the recipient's id."""
    bot, others = set(), set()
    named = False
    for entity in entities:
        if str(entity.get("type", "")).lower() != "mention":
            continue
        mentioned = entity.get("mentioned")
        account: Mapping[str, Any] = mentioned if isinstance(mentioned, Mapping) else {}
        tag = _AT_TAG.fullmatch(str(entity.get("text") or "").strip())
        name = _name(tag.group(1) if tag else str(account.get("name") or ""))
        if not name:
            continue
        if bot_id and account.get("id") == bot_id:
            bot.add(name)
            named = True
        else:
            others.add(name)
    if bot_name and _name(bot_name) not in others:
        bot.add(_name(bot_name))
    return Mentions(frozenset(bot), frozenset(others), named)


def command_text(text: str | None, mentioned: Mentions | None = None) -> str:
    """The command in a message: the bot's mentions removed, other people's as ``@Name``."""
    known = mentioned or Mentions()

    def bot(match: re.Match[str]) -> str:
        name = _name(match.group(1))
        unknown = not known.bot_named and name not in known.others
        # (a leading mention no entity names: the bot's, as Teams delivers a channel message)
        return " " if name in known.bot or (unknown and _first(match)) else match.group(0)

    def person(match: re.Match[str]) -> str:
        shown = "@" + html.unescape(match.group(1)).strip()
        # in the command's place, quoted: the core names all of it
        return html.escape(shlex.quote(shown) if _first(match) else shown, quote=False)

    raw = _AT_TAG.sub(person, _AT_TAG.sub(bot, text or ""))
    plain = html.unescape(_TAG.sub(" ", raw)).replace("\xa0", " ")
    cleaned = _WHITESPACE.sub(" ", plain).strip()
    lowered = cleaned.lower()
    # "/handoff status", and "handoff status" as people type it without the slash (no command is named so)
    for prefix in (MAIN_COMMAND, MAIN_COMMAND.lstrip("/")):
        if lowered == prefix or lowered.startswith(prefix + " "):
            return cleaned[len(prefix) :].strip() or DEFAULT_TEXT
    if cleaned.startswith("/"):
        cleaned = cleaned[1:].strip()
    return cleaned or DEFAULT_TEXT


def _first(match: re.Match[str]) -> bool:
    """Whether nothing but markup and spaces comes before ``match`` in its text."""
    before = match.string[: match.start()]
    return not html.unescape(_TAG.sub(" ", before)).replace("\xa0", " ").strip()


def _name(tagged: str) -> str:
    """A mention's name compared as Teams may write it: entities undone, spaces collapsed, any case."""
    return _WHITESPACE.sub(" ", html.unescape(tagged).replace("\xa0", " ")).strip().casefold()


def truncate(text: str, limit: int, marker: str = "… (truncated)") -> str:
    """``text`` if it has at most ``limit`` characters, else its start followed by ``marker``."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return marker[:limit]
    return text[: limit - len(marker)].rstrip() + marker
