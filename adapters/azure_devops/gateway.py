"""Every REST call the server makes to one Azure DevOps organization, as the service asks to be called.

Azure DevOps throttles per identity (reference/azure-devops.md §5): past its budget it first delays each
request by up to 30 s, then answers 429, and it says ``Retry-After`` on any answer, a 200 included. The
SDK honours ``Retry-After`` only on the 429 or 503 of a GET, and blocks its thread meanwhile. So, as the
reference recommends, the calls go through one gateway per organization:

- on a thread pool of their own (the SDK is synchronous): a throttled organization holds up only its own
  calls, never the other work Python's shared default pool does;
- paused after any answer that carried ``Retry-After``, for that many seconds: the wait is on the event
  loop, so a caller's timeout (a hook's lookup budget) cuts it short.

``watch`` hooks a client into the gateway (``client.config.hooks``: every response passes by).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from bot.lifecycle import WORKER_PREFIX

T = TypeVar("T")
ClientT = TypeVar("ClientT")

# Threads for one organization's calls: enough for the hooks' lookups and the commands of a busy channel.
WORKERS = 8
# The longest pause taken from one Retry-After (a garbled or absurd value must not stall Handoff for hours).
MAX_PAUSE_SECONDS = 300.0

log = logging.getLogger("handoff.azure_devops")


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (Azure DevOps sends a number), or None when it cannot be read."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


class AzureDevOpsGateway:
    """Runs SDK calls for one organization; see the module's docstring."""

    def __init__(
        self,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # (named as the server's workers, so that its exit waits only a grace period for a stalled call)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"{WORKER_PREFIX}-azure-devops")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def watch(self, client: ClientT) -> ClientT:
        """Hook an SDK client into the gateway (once; later calls change nothing); returns the client."""
        with self._lock:
            if not getattr(client, "_handoff_gateway", False):
                client.config.hooks.append(self._answered)  # type: ignore[attr-defined]
                client._handoff_gateway = True  # type: ignore[attr-defined]
        return client

    def _answered(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """A requests response hook (on the SDK's thread): a ``Retry-After`` pauses the organization."""
        headers = getattr(response, "headers", None) or {}
        seconds = _seconds(headers.get("Retry-After"))
        if seconds is None:
            return
        seconds = min(seconds, MAX_PAUSE_SECONDS)
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
        log.warning(
            "azure devops asked to wait %.0f s (HTTP %s, %s); pausing its calls",
            seconds,
            getattr(response, "status_code", "?"),
            headers.get("X-RateLimit-Resource") or "no resource named",
        )

    @property
    def paused_for(self) -> float:
        """Seconds until calls may go out again (0 when they may now)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on the gateway's threads, once any pause is over."""
        while (wait := self.paused_for) > 0:
            await self._sleep(wait)
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args, **kwargs))

    def close(self) -> None:
        """Let the threads end (a call still running finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
