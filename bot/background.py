"""Work that outlives the request that started it: kept, logged when it fails, stopped on exit.

Work that fails because the store is out of reach (a connection lost, the database restarting) is expected
trouble: the first failure of an outage is one warning, without a traceback (that goes to DEBUG), and the work
that must not be lost (:meth:`BackgroundWork.spawn_retried`) is tried again after a backoff until it gets through.
Any other failure is a mistake, logged with its traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock, SystemClock
from bot.trouble import FailureStreak


def _never(_: BaseException) -> bool:
    return False


class BackgroundWork:
    """The tasks one part of the core started; ``close`` cancels what is still running, and work offered after
    it (by another part still stopping) is dropped instead of running unwatched.

    ``store_trouble`` tells a failure of the store being out of reach (``Store.unavailable``) from a mistake.
    """

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        clock: Clock | None = None,
        store_trouble: Callable[[BaseException], bool] = _never,
    ) -> None:
        self.log = log
        self.what = what
        self.clock = clock or SystemClock()
        self.store_trouble = store_trouble
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        # the store out of reach: one warning per outage for this part, one line when its work gets through again
        self.outage = FailureStreak(
            log,
            what,
            self.clock,
            recovered="the store is reachable again",
            level=logging.WARNING,
            recovered_level=logging.INFO,
        )

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` once; a failure is logged."""
        self._start(work, None)

    def spawn_retried(self, make: Callable[[], Awaitable[None]]) -> None:
        """Run ``make()``, and again (a new ``make()``) after a backoff each time it fails because the store is out
        of reach, until it gets through or :meth:`close`: work whose outcome nothing else would record (a run's
        end that only its completion event tells). It must be safe to run again."""
        self._start(make(), make)

    def _start(self, work: Awaitable[None], again: Callable[[], Awaitable[None]] | None) -> None:
        if self.closed:
            self.log.info("%s not started: stopping", self.what)
            _close_unstarted(work)
            return
        current = [work]

        async def run() -> None:
            while True:
                try:
                    await current[0]
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    if not self.store_trouble(error):
                        self.log.exception("%s failed", self.what)
                        return
                    wait = self.outage.failed(error)
                    if again is None:
                        return
                    await self.clock.sleep(wait)
                    current[0] = again()
                else:
                    self.outage.succeeded()
                    return

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda _: _close_unstarted(current[0]))

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
