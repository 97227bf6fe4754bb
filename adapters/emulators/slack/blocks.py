"""Block Kit limits of a message's ``blocks``, checked as Slack checks them before it posts or updates.

Slack refuses a message that breaks one with HTTP 200 ``{"ok": false, "error": "invalid_blocks"}`` and a
``response_metadata.messages`` line naming the place (a JSON pointer). The limits are Slack's documented ones:
https://docs.slack.dev/reference/block-kit/blocks (header, section, context, actions), the button element
https://docs.slack.dev/reference/block-kit/block-elements/button-element and the text object
https://docs.slack.dev/reference/block-kit/composition-objects/text-object . Blocks Handoff never sends are
checked only for their type and ``block_id``.
"""

from __future__ import annotations

from typing import Any

KNOWN_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
MAX_BLOCK_ID = 255
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255


class BlockError(Exception):
    """A limit one block breaks; ``str()`` is Slack's message for it."""

    def __init__(self, problem: str, pointer: str) -> None:
        super().__init__(f"[ERROR] {problem} [json-pointer:{pointer}]")


def check_blocks(blocks: list[Any]) -> None:
    """Raise :class:`BlockError` for the first limit ``blocks`` break (their count is checked by the caller)."""
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in KNOWN_TYPES:
            raise BlockError("unsupported type", f"{where}/type")
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_BLOCK_ID:
                raise BlockError(f"must be 1 to {MAX_BLOCK_ID} characters", f"{where}/block_id")
            if block_id in seen_ids:
                raise BlockError("duplicate block_id", f"{where}/block_id")
            seen_ids.add(block_id)
        _CHECKS.get(block["type"], _no_check)(block, where)


def _no_check(block: dict[str, Any], where: str) -> None:
    return None


def _text(obj: Any, where: str, limit: int, *, plain_only: bool = False) -> None:
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        raise BlockError(f"must be a {' or '.join(kinds)} text object", where)
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise BlockError("must be more than 0 characters", f"{where}/text")
    if len(text) > limit:
        raise BlockError(f"must be less than {limit + 1} characters", f"{where}/text")


def _items(block: dict[str, Any], key: str, where: str, limit: int) -> list[Any]:
    items = block.get(key)
    if not isinstance(items, list) or not items:
        raise BlockError("must provide a non-empty array", f"{where}/{key}")
    if len(items) > limit:
        raise BlockError(f"must provide an array of at most {limit} items", f"{where}/{key}")
    return items


def _header(block: dict[str, Any], where: str) -> None:
    _text(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, plain_only=True)


def _section(block: dict[str, Any], where: str) -> None:
    if "text" not in block and "fields" not in block:
        raise BlockError("must provide text or fields", where)
    if "text" in block:
        _text(block["text"], f"{where}/text", MAX_SECTION_TEXT)
    if "fields" in block:
        for n, field in enumerate(_items(block, "fields", where, MAX_FIELDS)):
            _text(field, f"{where}/fields/{n}", MAX_FIELD_TEXT)


def _context(block: dict[str, Any], where: str) -> None:
    for n, element in enumerate(_items(block, "elements", where, MAX_CONTEXT_ELEMENTS)):
        if not (isinstance(element, dict) and element.get("type") == "image"):
            _text(element, f"{where}/elements/{n}", MAX_CONTEXT_TEXT)


def _actions(block: dict[str, Any], where: str) -> None:
    for n, element in enumerate(_items(block, "elements", where, MAX_ACTIONS_ELEMENTS)):
        if isinstance(element, dict) and element.get("type") == "button":
            _button(element, f"{where}/elements/{n}")
        elif not isinstance(element, dict) or not isinstance(element.get("type"), str):
            raise BlockError("unsupported type", f"{where}/elements/{n}/type")


def _button(button: dict[str, Any], where: str) -> None:
    _text(button.get("text"), f"{where}/text", MAX_BUTTON_TEXT, plain_only=True)
    for key, limit in (("value", MAX_BUTTON_VALUE), ("url", MAX_BUTTON_URL), ("action_id", MAX_ACTION_ID)):
        value = button.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise BlockError(f"must be less than {limit + 1} characters", f"{where}/{key}")


_CHECKS = {"header": _header, "section": _section, "context": _context, "actions": _actions}
