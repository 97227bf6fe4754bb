"""Work that outlives the request that started it: kept, logged when it fails, stopped on exit."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable


class BackgroundWork:
    """The tasks one part of the core started; ``close`` cancels what is still running, and work offered after
    it (by another part still stopping) is dropped instead of running unwatched."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def spawn(self, work: Awaitable[None]) -> None:
        if self.closed:
            self.log.info("%s not started: stopping", self.what)
            _close_unstarted(work)
            return

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("%s failed", self.what)

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda _: _close_unstarted(work))

    async def close(self) -> None:
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _close_unstarted(work: Awaitable[None]) -> None:
    """Close a coroutine whose task was cancelled before it began (at shutdown): it is dropped on purpose,
    and closing it says so instead of a "never awaited" warning."""
    if inspect.iscoroutine(work) and inspect.getcoroutinestate(work) == inspect.CORO_CREATED:
        work.close()
