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
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from bot.config import HOOK_TIMEOUT as DEFAULT_HOOK_TIMEOUT

HOOK_TIMEOUT = DEFAULT_HOOK_TIMEOUT.total_seconds()
"""Seconds a hook waits for its events to be stored, unless ``server.hook_timeout`` says otherwise: well under
the 30 s after which Event Grid stops waiting for an answer."""

T = TypeVar("T")

log = logging.getLogger("handoff.ingest")

# Work a hook stopped waiting for, kept referenced until it has wound down.
_left_behind: set[asyncio.Task[Any]] = set()


class NotStoredInTime(Exception):
    """The hook's events were not stored within its deadline; the sender should deliver them again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"not stored within {seconds:g} s")
        self.seconds = seconds


async def stored_within(seconds: float, storing: Coroutine[Any, Any, T]) -> T:
    """Run ``storing`` (the hook's work up to its answer) for at most ``seconds``.

    Past them it is cancelled and :class:`NotStoredInTime` raised at once, without waiting for it to wind down
    (a write on SQLite's writer thread finishes what it started): the answer goes out on time whatever the store
    does. Whatever else ``storing`` raises is raised as it is.
    """
    task = asyncio.ensure_future(storing)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _leave_behind(task)
        raise
    if task in done:
        return task.result()
    _leave_behind(task)
    raise NotStoredInTime(seconds)


def _leave_behind(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _left_behind.add(task)
    task.add_done_callback(_wound_down)


def _wound_down(task: asyncio.Task[Any]) -> None:
    _left_behind.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        # (the hook was answered 503 already: its sender delivers again, which the log has said)
        log.debug("storing a hook's events given up on ended with %r", error)
