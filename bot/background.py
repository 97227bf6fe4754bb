"""Work that outlives the request that started it: kept, logged when it fails, stopped on exit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable


class BackgroundWork:
    """The tasks one part of the core started; ``close`` cancels what is still running."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Awaitable[None]) -> None:
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

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
