"""How a Teams message becomes the core's command text (the same grammar as Slack).

The bot's @mention is removed by the SDK before this runs; what is left may still carry HTML entities
(``&nbsp;``) and the forms people bring from Slack: ``/handoff subscribe``, ``handoff subscribe`` and
``/retrain model-x`` give ``subscribe`` and ``retrain model-x``. An empty message asks for ``help``.
"""

from __future__ import annotations

import html
import re

MAIN_COMMAND = "/handoff"
DEFAULT_TEXT = "help"

_AT_TAG = re.compile(r"<at>[^<]*</at>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_WHITESPACE = re.compile(r"\s+")


def command_text(text: str | None) -> str:
    """The command in a message whose mention of the bot was already removed."""
    raw = text or ""
    if raw.lstrip().lower().startswith("<at>"):  # a leading mention the SDK did not recognise as the bot
        raw = _AT_TAG.sub(" ", raw, count=1)
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


def truncate(text: str, limit: int, marker: str = "… (truncated)") -> str:
    """``text`` if it has at most ``limit`` characters, else its start followed by ``marker``."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return marker[:limit]
    return text[: limit - len(marker)].rstrip() + marker
