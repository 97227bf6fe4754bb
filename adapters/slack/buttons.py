"""What a Block Kit button carries back when clicked.

A button's ``value`` (at most 2,000 characters) holds a compact JSON envelope: the core's action id,
its value, and whether the click asks for a comment first (``required`` for Reject, ``optional`` for
Approve). Nothing in it is secret: Slack shows it to anyone who inspects the message. A comment mode
Handoff does not know asks for a comment (the form opens, the comment required).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.cards import Action

MAX_VALUE = 2000

OPTIONAL_COMMENT_ACTIONS = frozenset({"approve"})
"""Action ids that offer an optional comment even when the core gave no prompt."""


class CommentMode(StrEnum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class ButtonPayload:
    """A clicked button, decoded."""

    action_id: str
    value: dict[str, str] = field(default_factory=dict)
    comment: CommentMode = CommentMode.NONE
    prompt: str = ""
    label: str = ""


def comment_mode(action: Action) -> CommentMode:
    if action.needs_comment:
        return CommentMode.REQUIRED
    if action.comment_prompt or action.action_id in OPTIONAL_COMMENT_ACTIONS:
        return CommentMode.OPTIONAL
    return CommentMode.NONE


def encode(action: Action) -> str | None:
    """The button value for ``action``, or None if its value cannot fit in 2,000 characters."""
    envelope: dict[str, Any] = {"a": action.action_id, "v": dict(action.value)}
    mode = comment_mode(action)
    if mode is not CommentMode.NONE:
        envelope["c"] = mode.value
    # the prompt and label are nice to have: shorten, then drop them before giving up
    for prompt, label in ((action.comment_prompt[:500], action.label[:75]), ("", action.label[:75]), ("", "")):
        if prompt:
            envelope["p"] = prompt
        else:
            envelope.pop("p", None)
        if label:
            envelope["l"] = label
        else:
            envelope.pop("l", None)
        text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        if len(text) <= MAX_VALUE:
            return text
    return None


def decode(action_id: str, raw: Any) -> ButtonPayload:
    """Read a clicked button back; a value Handoff did not write gives the bare Slack action id."""
    if isinstance(raw, str) and raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("a"), str):
            value = data.get("v")
            return ButtonPayload(
                action_id=data["a"],
                value={str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {},
                comment=_comment_mode(data.get("c", CommentMode.NONE.value)),
                prompt=str(data.get("p", "")),
                label=str(data.get("l", "")),
            )
    value = {"value": raw} if isinstance(raw, str) and raw else {}
    return ButtonPayload(action_id=action_id, value=value)


def _comment_mode(raw: Any) -> CommentMode:
    """The comment mode a button names; one Handoff does not know (not written by this version, or changed by
    someone) asks for a comment, as the strictest does, rather than skipping the form."""
    return CommentMode(raw) if isinstance(raw, str) and raw in CommentMode._value2member_map_ else CommentMode.REQUIRED
