"""The modal a button opens when the decision takes a comment: Reject needs a reason, Approve offers an
optional one. What the click was about travels in the view's ``private_metadata`` (at most 3,000
characters), so that any replica can finish the decision when the form is submitted.

See https://docs.slack.dev/surfaces/modals and
https://docs.slack.dev/reference/interaction-payloads/view-interactions-payload
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bot.interactions import MAX_COMMENT

from .buttons import ButtonPayload, CommentMode
from .text import escape, truncate, truncate_plain, unescape

CALLBACK_ID = "handoff.comment"
COMMENT_BLOCK = "comment"
COMMENT_ACTION = "comment"
MAX_METADATA = 3000
MAX_TITLE = 24


@dataclass(frozen=True)
class PendingDecision:
    """A click waiting for its comment: which message, which button, where to answer."""

    channel: str
    message_ts: str
    action_id: str
    value: dict[str, str] = field(default_factory=dict)
    mode: CommentMode = CommentMode.OPTIONAL
    team_id: str | None = None
    thread_ts: str | None = None
    is_ephemeral: bool = False
    response_url: str | None = None
    compact: bool = False

    def to_metadata(self) -> str | None:
        """The ``private_metadata`` string, or None if it would not fit."""
        data: dict[str, Any] = {
            "ch": self.channel,
            "ts": self.message_ts,
            "a": self.action_id,
            "v": self.value,
            "c": self.mode.value,
        }
        for key, item in (
            ("t", self.team_id),
            ("th", self.thread_ts),
            ("e", self.is_ephemeral or None),
            ("ru", self.response_url),
            ("k", self.compact or None),
        ):
            if item:
                data[key] = item
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if len(text) > MAX_METADATA and "ru" in data:
            del data["ru"]  # without it an ephemeral card cannot be replaced, but the decision still counts
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return text if len(text) <= MAX_METADATA else None

    @classmethod
    def from_metadata(cls, raw: Any) -> PendingDecision | None:
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("ch", "ts", "a")):
            return None
        raw_value = data.get("v")
        value: dict[str, Any] = raw_value if isinstance(raw_value, dict) else {}
        mode = str(data.get("c"))
        return cls(
            channel=data["ch"],
            message_ts=data["ts"],
            action_id=data["a"],
            value={str(k): str(v) for k, v in value.items()},
            mode=CommentMode(mode) if mode in CommentMode._value2member_map_ else CommentMode.OPTIONAL,
            team_id=_str(data.get("t")),
            thread_ts=_str(data.get("th")),
            is_ephemeral=bool(data.get("e")),
            response_url=_str(data.get("ru")),
            compact=bool(data.get("k")),
        )


_USER_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


def about_the_card(message_text: str) -> str:
    """What a comment modal says it is about: the card's notification text as Slack sent it, without the
    mentions that notify people (a modal would show them as raw ids), unescaped (the modal escapes it)."""
    return unescape(_USER_MENTION.sub("", message_text)).strip()


def comment_modal(button: ButtonPayload, pending: PendingDecision, about: str = "") -> dict[str, Any] | None:
    """The modal for ``button``; None if what it must carry does not fit."""
    metadata = pending.to_metadata()
    if metadata is None:
        return None
    required = pending.mode is CommentMode.REQUIRED
    label = button.label or button.action_id.replace("_", " ").capitalize()
    prompt = button.prompt or ("Why? (required)" if required else "Comment")
    if not required:  # Slack labels an optional input "(optional)" itself
        prompt = re.sub(r"\s*\(optional\)\s*$", "", prompt, flags=re.IGNORECASE) or "Comment"
    blocks: list[dict[str, Any]] = []
    if about:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": truncate(escape(about), 3000)}})
    blocks.append(
        {
            "type": "input",
            "block_id": COMMENT_BLOCK,
            "optional": not required,
            "label": {"type": "plain_text", "text": truncate_plain(prompt, 2000)},
            "element": {
                "type": "plain_text_input",
                "action_id": COMMENT_ACTION,
                "multiline": True,
                "max_length": MAX_COMMENT,
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": truncate_plain(label, MAX_TITLE)},
        "submit": {"type": "plain_text", "text": truncate_plain(label, MAX_TITLE)},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def submitted_comment(view: Any) -> str:
    """The comment typed into a submitted modal ('' if none)."""
    try:
        value = view["state"]["values"][COMMENT_BLOCK][COMMENT_ACTION].get("value")
    except (KeyError, TypeError, AttributeError):
        return ""
    return value.strip()[:MAX_COMMENT] if isinstance(value, str) else ""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
