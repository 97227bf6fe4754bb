"""A thread pool of its own for one service's synchronous SDK calls.

The Azure SDKs block their thread for as long as a service takes to answer. On Python's shared default
pool, one stalled service would hold every thread, and with them what that pool does for everything else:
the event loop's DNS lookups (the chat platforms' hosts), SQLite's checkpoints, reading files. So each
service's calls run on a bounded pool of its own: a stalled service holds up only its own calls, and
further calls wait their turn. The threads are named as the server's workers, so that stopping the
server waits only a grace period for a call still out (:func:`bot.lifecycle.run_server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from bot.lifecycle import WORKER_PREFIX

T = TypeVar("T")


class WorkerPool:
    """``workers`` threads for the calls of ``service`` (a name for the threads: ``azure-ml``)."""

    def __init__(self, service: str, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"{WORKER_PREFIX}-{service}")

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on one of the pool's threads, once one is free."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args, **kwargs))

    def close(self) -> None:
        """Let the threads end: calls not started are dropped, a call still running finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)
