"""A thread pool of its own for one service's synchronous SDK calls.

The Azure SDKs block their thread for as long as a service takes to answer. On Python's shared default
pool, one stalled service would hold every thread, and with them what that pool does for everything else:
the event loop's DNS lookups (the chat platforms' hosts), SQLite's checkpoints, reading files. So each
service's calls run on a bounded pool of its own: a stalled service holds up only its own calls, and
further calls wait their turn. The threads are named as the server's workers, so that stopping the
server waits only a grace period for a call still out (:func:`bot.lifecycle.run_server`).

A command a person waits on (``handoff doctor``, ``handoff connect``) runs each call on a daemon thread
of its own instead (:func:`in_own_thread`, :func:`call_within`): it stops waiting at its deadline or on
Ctrl-C, and the call, which cannot be stopped, neither holds up the next one nor keeps the process alive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

from bot.lifecycle import WorkerThreads

T = TypeVar("T")


class WorkerPool:
    """``workers`` threads for the calls of ``service`` (a name for the threads: ``azure-ml``)."""

    def __init__(self, service: str, workers: int) -> None:
        self._executor = WorkerThreads(workers, service)

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on one of the pool's threads, once one is free."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args, **kwargs))

    def close(self) -> None:
        """Let the threads end: calls not started are dropped, a call still running finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class NoAnswer(TimeoutError):
    """A call to a service did not end within ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


def _start(function: Callable[[], T]) -> Future[T]:
    """``function()`` on a daemon thread of its own; its outcome in the future returned."""
    outcome: Future[T] = Future()

    def work() -> None:
        if not outcome.set_running_or_notify_cancel():
            return
        try:
            outcome.set_result(function())
        except BaseException as error:  # handed to whoever waits, as a pool's thread would
            outcome.set_exception(error)

    threading.Thread(target=work, name="handoff-call", daemon=True).start()
    return outcome


async def in_own_thread(function: Callable[[], T], deadline: float | None = None) -> T:
    """``function()`` on a daemon thread of its own; raises :class:`NoAnswer` once ``deadline`` seconds
    have passed without its end (the thread then finishes on its own, or ends with the process)."""
    waiting = asyncio.wrap_future(_start(function))
    try:
        async with asyncio.timeout(deadline) as limit:
            return await waiting
    except TimeoutError:
        if not limit.expired():  # the call's own (a socket's timeout)
            raise
        assert deadline is not None
        raise NoAnswer(deadline) from None


def call_within(function: Callable[[], T], deadline: float | None) -> T:
    """``function()``, waiting at most ``deadline`` seconds for it (from synchronous code, as
    :func:`in_own_thread` does); without a deadline, in this thread."""
    if deadline is None:
        return function()
    outcome = _start(function)
    try:
        return outcome.result(deadline)
    except TimeoutError:
        if outcome.done():  # the call's own (a socket's timeout)
            raise
        raise NoAnswer(deadline) from None
