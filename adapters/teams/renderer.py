"""The neutral :class:`~bot.cards.Card` as an Adaptive Card 1.5 for Teams (Universal Actions).

- Buttons are ``Action.Execute`` with ``verb`` = the action's id (``approve``, ``reject``…) and ``data`` =
  its value, each with an ``Action.Submit`` fallback for clients without Universal Actions (its ``data``
  carries the verb under ``"verb"``). An action that needs a comment opens an ``Action.ShowCard`` with a
  required ``Input.Text`` (id ``"comment"``) and the ``Action.Execute`` that sends it; Approve, and any action
  with a ``comment_prompt``, opens the same form with the comment optional (as Slack's modal has it).
- When the card names an ``action_audience`` (at most 60 Teams user ids), the message everyone sees has no
  buttons, and a ``refresh`` with those ``userIds`` makes Teams ask the bot for their personal view, which
  has them (:func:`render_card` with ``viewer_ids``). The refresh action carries the neutral card, so that
  the bot can answer a refresh without a lookup. With no audience, everyone sees the buttons.
- Teams reads the text of ``TextBlock`` and ``FactSet`` as markdown; the card's texts come from outside
  Handoff (commit messages, run and branch names, people's names, typed reasons) and are escaped
  (:func:`adapters.teams.markdown.escape`), so they show as written. Links are ``Action.OpenUrl`` buttons,
  for web and mail addresses only (a link elsewhere shows as its label).
- A card stays within a size budget (:data:`MAX_CARD_BYTES`, counted as Teams counts: JSON text in UTF-16
  bytes, :func:`message_size`): long texts and lists are shortened step by step, visibly (``… (truncated)``
  and a note on the card), never silently; past the last step only the card's title and status are left
  (:func:`smallest_form`). :func:`fit_card` can measure something larger than the card (the whole message).

Nothing here imports botbuilder: the output is a plain dict, the same for any Teams SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.cards import Action, Card, Fact, Link, Status, Step
from bot.interactions import MAX_COMMENT

from .markdown import escape, opens
from .text import truncate

SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
VERSION = "1.5"

MAX_CARD_BYTES = 80_000
"""Teams refuses a message over about 100 KB, counted in UTF-16 (base64 images aside), and advises at most
80 KB: the budget of a whole message carrying a card, and of a card answered alone (:func:`message_size`)."""
MAX_REFRESH_USERS = 60
"""Teams refreshes a card automatically for at most 60 listed users."""

REFRESH_VERB = "refresh"
COMMENT_INPUT = "comment"
OPTIONAL_COMMENT_ACTIONS = frozenset({"approve"})
"""Actions whose form offers an optional comment even without a ``comment_prompt`` (as Slack's modal does)."""
VERB_KEY = "verb"
CARD_KEY = "card"
RESERVED_KEYS = frozenset({VERB_KEY, COMMENT_INPUT, CARD_KEY})
"""Keys of a click's data that Handoff uses itself; an action's value should not use them."""

TRUNCATION_NOTE = "Some details were shortened to fit Teams' message size limit."

_STATUS_LOOK: Mapping[Status, tuple[str, str]] = {
    Status.INFO: ("\u2139\ufe0f", "Default"),
    Status.QUEUED: ("⏳", "Accent"),
    Status.RUNNING: ("🔄", "Accent"),
    Status.WAITING: ("⏸️", "Warning"),
    Status.SUCCEEDED: ("✅", "Good"),
    Status.PARTIAL: ("⚠️", "Warning"),
    Status.FAILED: ("❌", "Attention"),
    Status.CANCELED: ("🚫", "Default"),
    Status.SKIPPED: ("⏭️", "Default"),
    Status.WARNING: ("⚠️", "Warning"),
    Status.APPROVED: ("✅", "Good"),
    Status.REJECTED: ("⛔", "Attention"),
    Status.EXPIRED: ("⌛", "Warning"),
}
_BUTTON_STYLE = {"primary": "positive", "danger": "destructive"}


def render_card(card: Card, *, viewer_ids: Collection[str] = (), limit: int | None = MAX_CARD_BYTES) -> dict[str, Any]:
    """The Adaptive Card for ``card``.

    Args:
        card: what to show.
        viewer_ids: the Teams ids (MRI, AAD object id) of the person the card is rendered for, when it
            is rendered for one person (an invoke answer); empty for the message everyone sees.
        limit: the card's size budget (:func:`fit_card`); None renders ``card`` as it is (already fitted).
    """
    fitted = card if limit is None else fit_card(card, limit)
    return _render(fitted, show_actions=_may_act(fitted, viewer_ids))


def with_mentions(document: dict[str, Any], people: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``document`` calling on ``people`` (each a Teams member id and name): a last line of ``<at>name</at>``
    and the mention entities Teams notifies them with (``msteams.entities``, Teams' own addition to the
    Adaptive Card schema)."""
    if not people:
        return document
    tags = [(member_id, name, f"<at>{name}</at>") for member_id, name in people]
    line = {"type": "TextBlock", "text": " ".join(tag for _, _, tag in tags), "wrap": True}
    entities = [
        {"type": "mention", "text": tag, "mentioned": {"id": member_id, "name": name}} for member_id, name, tag in tags
    ]
    return {**document, "body": [*document["body"], line], "msteams": {"entities": entities}}


def fit_card(card: Card, limit: int = MAX_CARD_BYTES, size: Callable[[Card], int] | None = None) -> Card:
    """``card``, shortened until its ``size`` is at most ``limit`` bytes (``card`` itself if it fits).

    ``size`` measures a form of the card; by default its largest rendering (:func:`message_size`), and a
    caller sending it measures the whole message. When no shortened form fits (or ``limit`` is 0), the
    :func:`smallest_form`. A shortened card says so in its context line, so the note survives a refresh.
    """
    measure = size or _largest_size
    if limit <= 0:
        return smallest_form(card)
    if measure(card) <= limit:
        return card
    for caps in _CAPS:
        shrunk = _shrink(card, caps)
        if measure(shrunk) <= limit:
            return shrunk
    return smallest_form(card)


def smallest_form(card: Card) -> Card:
    """The least of ``card`` worth showing: its title and status, saying the rest did not fit (the last
    resort for huge action values, a huge audience list, or a message Teams refused at every other size)."""
    return Card(
        title=truncate(card.title, 100),
        status=card.status,
        summary="This card is too large to show in Teams.",
        context=TRUNCATION_NOTE,
    )


def message_size(document: Any) -> int:
    """The size Teams counts, approximately: ``document`` as JSON text, in UTF-16 bytes.

    (A character outside the BMP, an emoji, counts 4 bytes; JSON's ``\\uXXXX`` escapes are not counted
    as the 6 characters they take on the wire.)
    """
    return len(json.dumps(document, ensure_ascii=False).encode("utf-16-le"))


def _largest_size(card: Card) -> int:
    return message_size(_render(card, show_actions=True))


def card_from_refresh(data: Mapping[str, Any]) -> Card | None:
    """The neutral card a refresh action carries, or None if its data does not hold one."""
    raw = data.get(CARD_KEY)
    if not isinstance(raw, Mapping):
        return None
    try:
        return Card.from_json(dict(raw))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Click:
    """A button press as Teams reports it, from an ``Action.Execute`` invoke or an ``Action.Submit`` message."""

    verb: str
    value: dict[str, str]
    comment: str = ""


def parse_execute(verb: Any, data: Any) -> Click | None:
    """An ``Action.Execute`` click: its ``verb`` and ``data`` (the action's value plus the card's inputs)."""
    if not isinstance(verb, str) or not verb.strip():
        return None
    fields = data if isinstance(data, Mapping) else {}
    return Click(verb.strip(), _value(fields), _comment(fields))


def parse_submit(value: Any) -> Click | None:
    """An ``Action.Submit`` click: a message whose ``value`` carries the verb beside the action's value."""
    if not isinstance(value, Mapping):
        return None
    return parse_execute(value.get(VERB_KEY), value)


# --- rendering -----------------------------------------------------------------------------------


def _may_act(card: Card, viewer_ids: Collection[str]) -> bool:
    if not card.actions:
        return False
    if not _uses_refresh(card):
        return True
    audience = {a.lower() for a in card.action_audience}
    return any(v.lower() in audience for v in viewer_ids if v)


def _uses_refresh(card: Card) -> bool:
    return bool(card.actions) and 0 < len(card.action_audience) <= MAX_REFRESH_USERS


def _render(card: Card, *, show_actions: bool) -> dict[str, Any]:
    emoji, color = _STATUS_LOOK.get(card.status, ("", "Default"))
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": escape(card.title), "weight": "Bolder", "size": "Medium", "wrap": True},
        {
            "type": "TextBlock",
            "text": f"{emoji} {card.status.label}".strip(),
            "color": color,
            "spacing": "None",
            "wrap": True,
        },
    ]
    if card.summary:
        body.append({"type": "TextBlock", "text": escape(card.summary), "wrap": True})
    if card.facts:
        body.append(
            {"type": "FactSet", "facts": [{"title": escape(f.label), "value": escape(f.value)} for f in card.facts]}
        )
    if card.steps:
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": escape(s.name), "value": f"{_STATUS_LOOK.get(s.status, ('', ''))[0]} {s.status.label}"}
                    for s in card.steps
                ],
            }
        )
    elsewhere = [link.label for link in card.links if not opens(link.url)]
    if elsewhere:  # (not a web or mail address: not a button Teams would open)
        body.append({"type": "TextBlock", "text": escape("  ·  ".join(elsewhere)), "wrap": True})
    if card.context:
        body.append(
            {"type": "TextBlock", "text": escape(card.context), "isSubtle": True, "size": "Small", "wrap": True}
        )

    actions: list[dict[str, Any]] = []
    if show_actions:
        actions.extend(_button(a) for a in card.actions)
    opened = (link for link in card.links if opens(link.url))
    actions.extend({"type": "Action.OpenUrl", "title": link.label, "url": link.url} for link in opened)

    document: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "type": "AdaptiveCard",
        "version": VERSION,
        "fallbackText": card.text,
        "body": body,
    }
    if actions:
        document["actions"] = actions
    if _uses_refresh(card):
        document["refresh"] = {
            "action": {
                "type": "Action.Execute",
                "title": "Refresh",
                "verb": REFRESH_VERB,
                "data": {CARD_KEY: _compact(card)},
            },
            "userIds": list(card.action_audience),
        }
    return document


def _button(action: Action) -> dict[str, Any]:
    execute = _execute(action)
    optional = not action.needs_comment and bool(action.comment_prompt or action.action_id in OPTIONAL_COMMENT_ACTIONS)
    if not (action.needs_comment or optional):
        return execute
    comment: dict[str, Any] = {"type": "Input.Text", "id": COMMENT_INPUT, "isMultiline": True, "maxLength": MAX_COMMENT}
    if optional:
        comment.update(label=action.comment_prompt or "Comment (optional)", isRequired=False)
    else:
        comment.update(
            label=action.comment_prompt or f"Why {action.label.lower()}?",
            isRequired=True,
            errorMessage="A comment is required.",
        )
    form: dict[str, Any] = {"type": "AdaptiveCard", "body": [comment], "actions": [execute]}
    show: dict[str, Any] = {"type": "Action.ShowCard", "id": f"{action.action_id}-form", "title": action.label}
    if action.style in _BUTTON_STYLE:
        show["style"] = _BUTTON_STYLE[action.style]
    show["card"] = form
    return show


def _execute(action: Action) -> dict[str, Any]:
    data = {k: v for k, v in action.value.items() if k not in RESERVED_KEYS}
    execute: dict[str, Any] = {
        "type": "Action.Execute",
        "id": action.action_id,
        "title": action.label,
        "verb": action.action_id,
        "data": data,
    }
    submit: dict[str, Any] = {
        "type": "Action.Submit",
        "title": action.label,
        "data": {**data, VERB_KEY: action.action_id},
    }
    if action.style in _BUTTON_STYLE:
        execute["style"] = submit["style"] = _BUTTON_STYLE[action.style]
    execute["fallback"] = submit
    return execute


def _compact(card: Card) -> dict[str, Any]:
    """The card's JSON without empty fields (the refresh data is part of the message size)."""
    full: dict[str, Any] = json.loads(json.dumps(card.to_json()))
    return {k: v for k, v in full.items() if v not in ("", [], {}, None) or k == "title"}


# --- shortening ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Caps:
    title: int
    summary: int
    fact: int
    label: int
    items: int
    links: int
    context: int


_CAPS: tuple[_Caps, ...] = (
    _Caps(title=400, summary=4000, fact=1000, label=200, items=40, links=20, context=1000),
    _Caps(title=300, summary=2000, fact=400, label=100, items=25, links=10, context=500),
    _Caps(title=200, summary=800, fact=200, label=80, items=12, links=6, context=300),
    _Caps(title=150, summary=300, fact=100, label=60, items=6, links=3, context=200),
    _Caps(title=100, summary=100, fact=50, label=40, items=3, links=1, context=100),
)


def _shrink(card: Card, caps: _Caps) -> Card:
    facts = tuple(Fact(truncate(f.label, caps.label), truncate(f.value, caps.fact)) for f in card.facts)
    steps = tuple(Step(truncate(s.name, caps.label), s.status) for s in card.steps)
    links = tuple(Link(truncate(link.label, caps.label), link.url) for link in card.links if len(link.url) <= 2048)
    if len(facts) > caps.items:
        facts = (*facts[: caps.items - 1], Fact("…", f"{len(facts) - caps.items + 1} more not shown"))
    if len(steps) > caps.items:
        steps = (*steps[: caps.items - 1], Step(f"… {len(steps) - caps.items + 1} more steps", Status.INFO))
    context = truncate(card.context, caps.context)
    return replace(
        card,
        title=truncate(card.title, caps.title),
        summary=truncate(card.summary, caps.summary),
        facts=facts,
        steps=steps,
        links=links[: caps.links],
        context=f"{context} · {TRUNCATION_NOTE}" if context else TRUNCATION_NOTE,
        actions=tuple(replace(a, label=truncate(a.label, caps.label)) for a in card.actions),
    )


# --- clicks --------------------------------------------------------------------------------------


def _value(fields: Mapping[str, Any]) -> dict[str, str]:
    value: dict[str, str] = {}
    for key, item in fields.items():
        if not isinstance(key, str) or key in RESERVED_KEYS or key == "msteams":
            continue
        if isinstance(item, str):
            value[key] = item
        elif isinstance(item, bool | int | float):
            value[key] = json.dumps(item)
    return value


def _comment(fields: Mapping[str, Any]) -> str:
    comment = fields.get(COMMENT_INPUT)
    return comment.strip()[:MAX_COMMENT] if isinstance(comment, str) else ""
