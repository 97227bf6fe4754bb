"""Block Kit for the core's neutral :class:`~bot.cards.Card`.

:func:`render_card` gives the full card (header, status with emoji, summary, facts as fields, steps,
links, buttons, context); ``compact=True`` gives a one-section variant for thread replies and private
answers. Slack's limits are kept: at most 50 blocks, 3,000 characters per text object (2,000 per field,
150 per header, 75 per button label) and 40,000 characters per message. What does not fit is cut with a
visible marker or counted in a closing "not shown" note, never dropped silently. A long stage list spreads over
as many sections as the message has room for; when it still does not fit, the stages that need attention and the
current one stay and the ones left out are counted where they would be (:mod:`bot.stage_list`).

References: https://docs.slack.dev/reference/block-kit/blocks ,
https://docs.slack.dev/reference/methods/chat.postMessage (text and block limits).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot import stage_list
from bot.cards import Action, Card, Fact, Link, Status, Step
from bot.interactions import Markup, Reply, reply_markup

from . import buttons
from .text import escape, link, truncate, truncate_plain

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_BUTTON_LABEL = 75
MAX_BUTTONS_PER_BLOCK = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_CHARS = 40_000
MAX_FALLBACK_TEXT = 3000
"""The notification text sent beside the blocks; Slack allows 40,000 but shows far less."""

STATUS_EMOJI: dict[Status, str] = {
    Status.INFO: ":information_source:",
    Status.QUEUED: ":hourglass_flowing_sand:",
    Status.RUNNING: ":arrows_counterclockwise:",
    Status.WAITING: ":raised_hand:",
    Status.SUCCEEDED: ":white_check_mark:",
    Status.PARTIAL: ":large_orange_diamond:",
    Status.FAILED: ":x:",
    Status.CANCELED: ":no_entry_sign:",
    Status.SKIPPED: ":black_right_pointing_double_triangle_with_vertical_bar:",
    Status.WARNING: ":warning:",
    Status.APPROVED: ":heavy_check_mark:",
    Status.REJECTED: ":no_entry:",
    Status.EXPIRED: ":alarm_clock:",
}

_SLACK_USER = re.compile(r"^(?:slack:)?([UW][A-Z0-9]{2,})$")
_LINK_SCHEMES = ("https://", "http://", "mailto:")


@dataclass(frozen=True)
class SlackContent:
    """A message as Slack takes it: notification ``text`` plus ``blocks``."""

    text: str
    blocks: list[dict[str, Any]]


def emoji(status: Status) -> str:
    return STATUS_EMOJI.get(status, ":information_source:")


def render_card(card: Card, *, compact: bool = False, note: str = "") -> SlackContent:
    """The card as Block Kit.

    Args:
        card: what to show.
        compact: one section instead of the full layout (thread replies, private answers).
        note: extra ``mrkdwn`` shown last in a context block (already escaped by the caller), such as
            who asked for this.
    """
    prefix = _block_prefix(card, note, compact)
    blocks = _compact_blocks(card, note) if compact else _full_blocks(card, note)
    for i, block in enumerate(blocks):
        block["block_id"] = f"{prefix}.{i}"
    return SlackContent(text=card_fallback_text(card), blocks=blocks)


def render_text(text: str, *, note: str = "") -> SlackContent:
    """A plain answer (escaped; its ``[label](url)`` links as Slack links) in one section, with an optional
    context ``note``."""
    body = _with_links(text) or " "
    blocks: list[dict[str, Any]] = [_section(part) for part in _text_parts(body, MAX_MESSAGE_CHARS - MAX_TEXT)]
    if note:
        blocks.append(_context([note]))
    prefix = hashlib.sha1(f"{text}\0{note}".encode(), usedforsecurity=False).hexdigest()[:8]
    for i, block in enumerate(blocks):
        block["block_id"] = f"t{prefix}.{i}"
    return SlackContent(text=fallback_text(text), blocks=blocks)


def _text_parts(body: str, room: int) -> list[str]:
    """A long answer (a channel's subscriptions, say) in as many sections' texts as it takes, cut at line breaks
    (Slack shows no more than 3,000 characters of one section), within ``room`` characters in all; what does not
    fit ends in a line that says how many lines were left out."""
    texts = _packed((truncate(line, MAX_TEXT) for line in body.split("\n")), MAX_TEXT)
    kept: list[str] = []
    for text in texts:
        if sum(map(len, kept)) + len(text) > room or len(kept) == MAX_BLOCKS - 2:
            break
        kept.append(text)
    if len(kept) < len(texts):
        left_out = sum(t.count("\n") + 1 for t in texts[len(kept) :])
        kept.append(f"… and {left_out} more line{'' if left_out == 1 else 's'}, too long for one Slack message.")
    return kept


def render_reply(reply: Reply, *, compact: bool = True, note: str = "") -> SlackContent:
    """A core :class:`~bot.interactions.Reply`: its card if it has one, else its text."""
    if reply.card is None:
        return render_text(reply.text, note=note)
    content = render_card(reply.card, compact=compact, note=note)
    if reply.text and reply.text != reply.card.text:  # (a reply that is its card says the card's text)
        return SlackContent(text=fallback_text(reply.text), blocks=content.blocks)
    return content


def fallback_text(text: str) -> str:
    """Notification text for text in the core's reply markup (:class:`~bot.interactions.Reply`): escaped,
    ``[label](url)`` links as their label, ``**bold**`` as Slack's ``*bold*``, and cut to a readable length."""
    return truncate(_mrkdwn(text, links=False), MAX_FALLBACK_TEXT, "…") or " "


def card_fallback_text(card: Card) -> str:
    """Notification text for a card: its text escaped and cut to a readable length. A card's text is no markup
    (it carries outside text, such as run names and commit messages, as its blocks show it), so nothing in it is
    read as a link or bold."""
    return truncate(escape(card.text), MAX_FALLBACK_TEXT, "…") or " "


def _with_links(text: str) -> str:
    """``text`` escaped, with the core's markup as ``mrkdwn``: its markdown links (:func:`bot.interactions.link`)
    as ``<url|label>``, its ``**bold**`` (:func:`bot.interactions.bold`) as ``*bold*``."""
    return _mrkdwn(text, links=True)


def _mrkdwn(text: str, *, links: bool) -> str:
    """The core's reply markup as Slack ``mrkdwn``, escaped; ``links``: links as Slack links, else as their label."""
    return "".join(_mrkdwn_part(part, links) for part in reply_markup(text))


def _mrkdwn_part(part: Markup, links: bool) -> str:
    if part.kind == "link":
        return link(part.url, part.text) if links else escape(part.text)
    if part.kind == "bold":
        return f"*{escape(part.text)}*"
    return escape(part.text)  # text, and code spans as written (backticks are code in mrkdwn too)


def message_chars(blocks: Iterable[dict[str, Any]]) -> int:
    """Characters of text in ``blocks`` (what counts against the 40,000 per message)."""
    return sum(_chars(block) for block in blocks)


# --- full layout ------------------------------------------------------------------------------------


def _full_blocks(card: Card, note: str) -> list[dict[str, Any]]:
    head = [_header(card.title or card.status.label), _section(_status_line(card))]
    tail = _action_blocks(card.actions)
    closing = [text for text in (_audience(card), escape(card.context), note) if text]
    tail_blocks = tail + ([_context([truncate(t, MAX_TEXT) for t in closing])] if closing else [])

    # facts, steps and links fill what the fixed blocks leave, in that order of importance; a long stage list
    # spreads over the blocks that are left once the facts and the links' one block are placed
    room_blocks = MAX_BLOCKS - len(head) - len(tail_blocks) - 1  # one kept for the "not shown" note
    room_chars = MAX_MESSAGE_CHARS - message_chars(head) - message_chars(tail_blocks) - 200
    omitted = {"fact": 0, "step": 0, "link": 0}

    facts: list[dict[str, Any]] = []
    for i in range(0, len(card.facts), MAX_FIELDS):
        block = _fields(card.facts[i : i + MAX_FIELDS])
        if len(facts) >= room_blocks or _chars(block) > room_chars:
            omitted["fact"] += len(card.facts) - i
            break
        facts.append(block)
        room_blocks -= 1
        room_chars -= _chars(block)

    links: list[dict[str, Any]] = []
    if card.links:
        text, dropped = _links_line(card.links, MAX_TEXT)
        omitted["link"] += dropped
        steps_need = 1 if card.steps else 0
        if text and room_blocks - steps_need >= 1 and len(text) <= room_chars:
            links = [_section(text)]
            room_blocks -= 1
            room_chars -= len(text)
        else:
            omitted["link"] = len(card.links)

    steps = _steps_blocks(card.steps, room_blocks, room_chars)
    if card.steps and not steps:
        omitted["step"] += len(card.steps)
    notice = _omitted_note(omitted)
    return head + facts + steps + links + ([_context([notice])] if notice else []) + tail_blocks


def _steps_blocks(steps: Sequence[Step], room_blocks: int, room_chars: int) -> list[dict[str, Any]]:
    """The stage list in at most ``room_blocks`` sections and ``room_chars`` characters: every stage when they
    fit, else the ones that matter most (:mod:`bot.stage_list`) with the ones left out counted in their place;
    nothing when not even that fits."""

    def sections(keep: Collection[int]) -> list[dict[str, Any]] | None:
        lines = [_step_line(item) for item in stage_list.shortened(steps, set(keep))]
        blocks = [_section(text) for text in _packed(lines, MAX_TEXT)]
        return blocks if len(blocks) <= room_blocks and message_chars(blocks) <= room_chars else None

    if not steps:
        return []
    order = stage_list.keep_order(steps)
    every = sections(order)
    if every is not None:
        return every
    # the most stages that fit, most important first (a list that keeps more is longer, give or take a gap line)
    best, low, high = sections(()), 0, len(order) - 1
    if best is None:
        return []
    while low < high:
        middle = (low + high + 1) // 2
        found = sections(set(order[:middle]))
        if found is None:
            high = middle - 1
        else:
            best, low = found, middle
    return best


def _step_line(item: Step | stage_list.Gap) -> str:
    if isinstance(item, stage_list.Gap):
        return f"_… {item.describe()}_"
    return truncate(f"{emoji(item.status)} {escape(item.name)}", MAX_TEXT)


def _packed(lines: Iterable[str], limit: int) -> list[str]:
    """``lines`` (each at most ``limit`` characters) joined into as few texts of at most ``limit`` as they
    go, in order."""
    texts: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) <= limit:
            current += "\n" + line
        else:
            if current:
                texts.append(current)
            current = line
    if current:
        texts.append(current)
    return texts


def _status_line(card: Card) -> str:
    line = f"{emoji(card.status)} *{card.status.label}*"
    if card.summary:
        line += "\n" + escape(card.summary)
    return truncate(line, MAX_TEXT)


def _fields(facts: Iterable[Fact]) -> dict[str, Any]:
    fields = [
        {"type": "mrkdwn", "text": truncate(f"*{escape(f.label)}*\n{escape(f.value) or ' '}", MAX_FIELD)} for f in facts
    ]
    return {"type": "section", "fields": fields}


def _links_line(links: Iterable[Link], limit: int) -> tuple[str, int]:
    parts: list[str] = []
    dropped = 0
    for item in links:
        part = link(item.url, item.label) if item.url.startswith(_LINK_SCHEMES) else escape(item.label)
        candidate = "  ·  ".join([*parts, part])
        if len(candidate) > limit:
            dropped += 1
            continue
        parts.append(part)
    return "  ·  ".join(parts), dropped


def _audience(card: Card) -> str:
    if not card.actions:
        return ""
    people = [m.group(1) for a in card.action_audience if (m := _SLACK_USER.match(a))]
    return ("Can decide: " + ", ".join(f"<@{p}>" for p in people[:20])) if people else ""


def _omitted_note(omitted: dict[str, int]) -> str:
    parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in omitted.items() if n]
    return f":scissors: _{', '.join(parts)} not shown (Slack's message limits)_" if parts else ""


# --- compact layout ---------------------------------------------------------------------------------


def _compact_blocks(card: Card, note: str) -> list[dict[str, Any]]:
    line = f"{emoji(card.status)} *{escape(card.title or card.status.label)}*"
    if card.summary:
        line += f" — {escape(card.summary)}"
    blocks: list[dict[str, Any]] = [_section(truncate(line, MAX_TEXT))]
    details: list[str] = []
    shown = card.facts[: MAX_CONTEXT_ELEMENTS - 3]  # room for the links and two "more" notes
    for fact in shown:
        details.append(truncate(f"*{escape(fact.label)}:* {escape(fact.value)}", 500))
    if len(card.facts) > len(shown):
        details.append(f"_+{len(card.facts) - len(shown)} more_")
    if card.links:
        text, dropped = _links_line(card.links, 1000)
        if text:
            details.append(text)
        if dropped:
            details.append(f"_{dropped} more link{'s' if dropped != 1 else ''} not shown_")
    if details:
        blocks.append(_context(details[:MAX_CONTEXT_ELEMENTS]))
    blocks.extend(_action_blocks(card.actions))
    closing = [text for text in (_audience(card), escape(card.context), note) if text]
    if closing:
        blocks.append(_context([truncate(t, MAX_TEXT) for t in closing]))
    return blocks


# --- blocks -----------------------------------------------------------------------------------------


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate_plain(text, MAX_HEADER) or " ", "emoji": True},
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}


def _context(texts: list[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t or " "} for t in texts]}


def _action_blocks(actions: Iterable[Action]) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for action in actions:
        value = buttons.encode(action)
        if value is None:
            continue  # cannot be carried; the core's value is too large for a button
        count = seen.get(action.action_id, 0)
        seen[action.action_id] = count + 1
        element: dict[str, Any] = {
            "type": "button",
            "action_id": action.action_id if count == 0 else f"{action.action_id}#{count}",
            "text": {
                "type": "plain_text",
                "text": truncate_plain(action.label, MAX_BUTTON_LABEL) or " ",
                "emoji": True,
            },
            "value": value,
        }
        if action.style in ("primary", "danger"):
            element["style"] = action.style
        elements.append(element)
    return [
        {"type": "actions", "elements": elements[i : i + MAX_BUTTONS_PER_BLOCK]}
        for i in range(0, len(elements), MAX_BUTTONS_PER_BLOCK)
    ]


def _block_prefix(card: Card, note: str, compact: bool) -> str:
    # a new block_id whenever the content changes, as Block Kit asks of updated messages
    raw = json.dumps([card.to_json(), note, compact], sort_keys=True, default=str)
    return ("c" if compact else "f") + hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:10]


def _chars(node: Any) -> int:
    if isinstance(node, dict):
        own = len(node["text"]) if isinstance(node.get("text"), str) else 0
        return own + sum(_chars(v) for k, v in node.items() if k != "text" or not isinstance(v, str))
    if isinstance(node, list):
        return sum(_chars(v) for v in node)
    return 0
