"""The work that follows an acknowledgement: kept track of, so that shutdown can wait for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

log = logging.getLogger("handoff.slack")


class BackgroundTasks:
    """Runs coroutines after the HTTP answer has gone; :meth:`close` waits for them, then cancels."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._held = 0  # requests whose follow-up work is held until their answer is sent
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._closed:
            work.close()
            log.warning("%s dropped: shutting down", name)
            return
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running and held work; True if it all finished within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks or self._held:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=remaining)
            else:
                await asyncio.sleep(0.005)
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking work, give running work ``timeout`` seconds, then cancel what is left."""
        self._closed = True
        if await self.wait(timeout) or not self._tasks:
            return
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())


class AfterResponse:
    """Work a listener started while handling one request, held until that request's answer is sent.

    Slack's clock runs until the acknowledgement arrives; holding the follow-up work (Web API calls,
    the core's handler) until then keeps it from delaying the very answer it follows.
    """

    CONTEXT_KEY = "handoff_after_response"

    def __init__(self, tasks: BackgroundTasks) -> None:
        self._tasks = tasks
        self._held: list[tuple[Coroutine[Any, Any, None], str]] = []
        self._released = False
        tasks._held += 1

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._released:
            self._tasks.spawn(work, name)
        else:
            self._held.append((work, name))

    def release(self) -> None:
        """The answer is out: start what was held, and anything spawned from now on."""
        if self._released:
            return
        self._released = True
        self._tasks._held -= 1
        held, self._held = self._held, []
        for work, name in held:
            self._tasks.spawn(work, name)


def follow_up(context: Mapping[str, Any], tasks: BackgroundTasks) -> AfterResponse | BackgroundTasks:
    """Where a listener starts its follow-up work: after its request's answer when served over HTTP."""
    after = context.get(AfterResponse.CONTEXT_KEY)
    return after if isinstance(after, AfterResponse) else tasks
