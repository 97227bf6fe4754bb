"""Slack text helpers: escaping for ``mrkdwn`` and visible truncation.

Slack treats ``&``, ``<`` and ``>`` as control characters in message text (``<!channel>``, ``<@U123>``,
``<url|label>``); anything that comes from outside Handoff is escaped so that it cannot ping a channel
or forge a link. See https://docs.slack.dev/messaging/formatting-message-text#escaping
"""

from __future__ import annotations

ELLIPSIS = "…"
TRUNCATED = "… _(truncated)_"
"""Appended to ``mrkdwn`` text that was cut to fit one of Slack's limits."""


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so that Slack shows them literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """``text`` if it fits in ``limit`` characters, else its start followed by ``marker``.

    Never cuts an escape sequence (``&amp;``) in half, and never returns more than ``limit`` characters.
    """
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return marker[:limit]
    cut = limit - len(marker)
    head = text[:cut]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:] and amp >= cut - 5:
        head = head[:amp]
    return head.rstrip() + marker


def truncate_plain(text: str, limit: int) -> str:
    """Truncate ``plain_text`` (header, button label) with a bare ellipsis."""
    return truncate(text, limit, ELLIPSIS)


def link(url: str, label: str) -> str:
    """A ``mrkdwn`` link ``<url|label>``; the URL loses characters that would end the link early."""
    safe_url = url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe_url}|{escape(label).replace('|', '¦')}>"


def unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>`` in text it sends (commands, messages)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
