"""Reading a channel's timeline or a thread the way ``conversations.history`` and
``conversations.replies`` do: a ``oldest``/``latest`` window (``inclusive`` to keep its ends), pages of
``limit`` messages, and ``response_metadata.next_cursor`` (``base64("next_ts:<ts>")``, as Slack's look).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .arguments import ApiCall, MethodError
from .state import SlackMessage

CURSOR_PREFIX = "next_ts:"


@dataclass(frozen=True)
class Page:
    """One page of messages, and the cursor to the next one (None on the last page)."""

    messages: list[SlackMessage]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def ts_value(ts: str, error: str = "invalid_ts") -> Decimal:
    """A ``ts`` (``"1700000000.000100"``, or whole seconds) as a number; ``error`` if it is not one."""
    try:
        value = Decimal(ts)
    except InvalidOperation:
        raise MethodError(error) from None
    if not value.is_finite() or value < 0:
        raise MethodError(error)
    return value


def encode_cursor(ts: str) -> str:
    return base64.b64encode(f"{CURSOR_PREFIX}{ts}".encode()).decode("ascii")


def decode_cursor(cursor: str) -> Decimal:
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise MethodError("invalid_cursor") from None
    if not text.startswith(CURSOR_PREFIX):
        raise MethodError("invalid_cursor")
    return ts_value(text.removeprefix(CURSOR_PREFIX), "invalid_cursor")


def limit_of(call: ApiCall, default: int, maximum: int) -> int:
    """``limit``: ``default`` when absent or 0, at most ``maximum``."""
    raw = call.string("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise MethodError("invalid_limit") from None
    if limit < 0:
        raise MethodError("invalid_limit")
    return min(limit or default, maximum)


def in_window(call: ApiCall, messages: Sequence[SlackMessage]) -> list[SlackMessage]:
    """The messages between ``oldest`` and ``latest`` (both ends excluded unless ``inclusive``)."""
    oldest_arg, latest_arg = call.string("oldest"), call.string("latest")
    oldest = ts_value(oldest_arg, "invalid_ts_oldest") if oldest_arg else None
    latest = ts_value(latest_arg, "invalid_ts_latest") if latest_arg else None
    inclusive = call.flag("inclusive")

    def keep(msg: SlackMessage) -> bool:
        ts = Decimal(msg.ts)
        if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
            return False
        return not (latest is not None and (ts > latest or (ts == latest and not inclusive)))

    return [m for m in messages if keep(m)]


def paginate(call: ApiCall, ordered: Sequence[SlackMessage], *, newest_first: bool, limit: int) -> Page:
    """The page of ``ordered`` that ``cursor`` points at (the first page without one)."""
    cursor = call.string("cursor")
    if cursor:
        start = decode_cursor(cursor)
        if newest_first:
            ordered = [m for m in ordered if Decimal(m.ts) <= start]
        else:
            ordered = [m for m in ordered if Decimal(m.ts) >= start]
    page = list(ordered[:limit])
    rest = ordered[limit:]
    return Page(page, encode_cursor(rest[0].ts) if rest else None)
