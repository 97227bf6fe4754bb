"""A hook's wait for its events to be stored, bounded.

Azure DevOps and Event Grid wait for an answer, then count the delivery as failed (Event Grid after 30 s) and
deliver it again later; Azure DevOps puts a subscription whose hooks keep failing on probation. A store that
does not answer (a lock another process holds, a PostgreSQL connection that went silent) must not keep them
waiting: past its deadline the hook answers 503 with ``Retry-After``, and the sender delivers again. What was
being stored may still be committed afterwards: the redelivery is then a duplicate, which the store's dedupe
answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from bot.config import HOOK_TIMEOUT as DEFAULT_HOOK_TIMEOUT

HOOK_TIMEOUT = DEFAULT_HOOK_TIMEOUT.total_seconds()
"""Seconds a hook waits for its events to be stored, unless ``server.hook_timeout`` says otherwise: well under
the 30 s after which Event Grid stops waiting for an answer."""

T = TypeVar("T")


class NotStoredInTime(Exception):
    """The hook's events were not stored within its deadline; the sender should deliver them again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"not stored within {seconds:g} s")
        self.seconds = seconds


async def stored_within(seconds: float, storing: Coroutine[Any, Any, T]) -> T:
    """Run ``storing`` (the hook's work up to its answer) for at most ``seconds``.

    Past them it is cancelled where it waits and :class:`NotStoredInTime` raised: the answer goes out on time
    whatever the store does (a write under way on SQLite's writer thread, or in the ingest's group commit,
    finishes what it started without the hook). Whatever else ``storing`` raises is raised as it is. (A deadline
    on the hook's own task, not a task of its own: this runs for every hook, and a task and a wait cost
    several times more.)
    """
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await storing
    except TimeoutError:
        if deadline.expired():
            raise NotStoredInTime(seconds) from None
        raise
