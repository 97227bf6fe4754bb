"""Lookups a person in chat waits for: each gets a few seconds, then counts as a service that did not answer.

The services' SDK calls keep their own long timeouts and retries, right for work nobody waits on; a
command's answer must not wait for them (a stalled Azure ML would hold an ``integrate`` for minutes, its
SDK trying a call four times). The call itself runs on (its worker thread finishes it); only the wait ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from bot.ports import ServiceUnavailable

T = TypeVar("T")

INTERACTIVE_SECONDS = 8.0
"""How long a command's answer waits for one lookup."""


async def answered_within(lookup: Awaitable[T], service: str, seconds: float = INTERACTIVE_SECONDS) -> T:
    """``lookup``'s answer, or :class:`~bot.ports.ServiceUnavailable` when ``service`` takes longer than
    ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            return await lookup
    except TimeoutError:
        raise ServiceUnavailable(f"{service} did not answer within {seconds:g} s") from None
