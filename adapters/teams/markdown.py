"""Escaping for the markdown Teams applies to Adaptive Card text (``TextBlock.text``, ``Fact.title``, ``Fact.value``).

Teams reads that text as a CommonMark subset: ``**bold**``, ``_italic_`` / ``*italic*``, ``[label](url)``
links, and ``- ``, ``+ `` or ``1. `` at a line's start as list items; the ``{{DATE(…)}}`` functions too.
Text from outside Handoff (commit messages, run and branch names, people's names, reasons typed in a
dialog) is escaped so that it shows as written and cannot forge a link. A backslash before ASCII
punctuation is CommonMark's escape, which Teams honours on desktop, web and (since 2023) mobile.
See https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-format
"""

from __future__ import annotations

import re

from bot.interactions import Markup, reply_markup

# emphasis, links, code spans, strikethrough, autolinks and inline HTML; the backslash first of all
_INLINE = re.compile(r"([\\*_\[\]()~`<>])")
# what makes a line a list item, a rule or a heading (after any indent): "- ", "+ ", "1. ", "2) ", "---", "# "
# (Teams breaks lines at "\r" as well as "\n")
_LINE_START = re.compile(
    r"(?:^|(?<=\r))([ \t]*)([-+](?=\s|$)|-(?=--)|#(?=#{0,5}(?:\s|$))|\d{1,9}(?=[.)](?:\s|$)))", re.MULTILINE
)
_LINK_SCHEMES = ("https://", "http://", "mailto:")


def escape(text: str) -> str:
    """``text`` with a backslash before each character Teams would read as markdown, so that it shows as written.

    Ordinary text stays as it is: ``-``, ``+``, ``#`` and numbers are escaped only where they start a list
    item, a rule or a heading.
    """
    escaped = _INLINE.sub(r"\\\1", text)
    return _LINE_START.sub(_escape_marker, escaped)


def message(text: str) -> str:
    """The core's reply text (:class:`bot.interactions.Reply`, a refusal) as Teams message markdown: its
    `` `code` ``, ``[label](url)`` links and ``**bold**`` kept, everything else escaped (it names runs,
    people and what they typed)."""
    return "".join(_written(part) for part in reply_markup(text))


def _written(part: Markup) -> str:
    if part.kind == "code":
        return part.text
    if part.kind == "link":
        return link(part.url, part.text)
    if part.kind == "bold":
        return f"**{escape(part.text)}**"
    return escape(part.text)


def _escape_marker(match: re.Match[str]) -> str:
    indent, marker = match.groups()
    if marker.isdigit():  # "1." → "1\." (the dot or parenthesis after the number is what makes the list)
        return f"{indent}{marker}\\"
    return f"{indent}\\{marker}"


def opens(url: str) -> bool:
    """Whether ``url`` is a web or mail address (what a link may open; not ``javascript:`` or ``file:``)."""
    return url.lower().startswith(_LINK_SCHEMES)


def link(url: str, label: str) -> str:
    """A markdown link ``[label](url)`` with the label escaped; a URL that is not a web or mail address gives
    the label alone, and the URL loses what would end the link early (spaces and parentheses)."""
    if not opens(url):
        return escape(label)
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    return f"[{escape(label)}]({safe})"
