"""Every REST call the server makes to one Azure DevOps organization, as the service asks to be called.

Azure DevOps throttles per identity (reference/azure-devops.md §5): past its budget it first delays each
request by up to 30 s, then answers 429, and it says ``Retry-After`` on any answer, a 200 included. The
SDK honours ``Retry-After`` only on the 429 or 503 of a GET, and blocks its thread meanwhile. So, as the
reference recommends, the calls go through one gateway per organization:

- on a thread pool of their own (the SDK is synchronous, :mod:`adapters.worker_pool`): a throttled
  organization holds up only its own calls, never the other work Python's shared default pool does;
- paused after any answer that carried ``Retry-After``, for that many seconds: the wait is on the event
  loop, so a caller's timeout (a hook's lookup budget) cuts it short;
- spaced out (one call a second) while the answers say less than a tenth of the identity's budget is
  left (``X-RateLimit-Remaining`` against ``X-RateLimit-Limit``, sent before delays start), so that
  Handoff slows down before Azure DevOps has to slow it down.

``watch`` hooks a client into the gateway (``client.config.hooks``: every response passes by).

The SDK's errors do not carry the HTTP status they were answered with (reference §5): an error a call through
the gateway raises after an error answer (4xx, 5xx) carries it, read by :func:`answered_status`, and the
``Retry-After`` that answer asked for, read by :func:`answered_retry_after`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from adapters.worker_pool import WorkerPool

T = TypeVar("T")
ClientT = TypeVar("ClientT")

# Threads for one organization's calls: enough for the hooks' lookups and the commands of a busy channel.
WORKERS = 8
# The longest pause taken from one Retry-After (a garbled or absurd value must not stall Handoff for hours).
MAX_PAUSE_SECONDS = 300.0
# Below this share of its budget left, calls start at most one per LOW_BUDGET_SPACING seconds.
LOW_BUDGET_SHARE = 0.1
LOW_BUDGET_SPACING = 1.0

log = logging.getLogger("handoff.azure_devops")
# The attribute an error raised by a call through the gateway carries the status of its error answer in.
_STATUS = "handoff_http_status"
_RETRY_AFTER = "handoff_retry_after"  # ... and the seconds its Retry-After asked for


def answered_status(error: BaseException) -> int | None:
    """The HTTP status of the error answer (400 or above) a call through the gateway raised ``error`` after;
    None when it had none (no answer, or the error is not from an answer)."""
    status = getattr(error, _STATUS, None)
    return status if isinstance(status, int) else None


def answered_retry_after(error: BaseException) -> float | None:
    """The seconds the ``Retry-After`` of the error answer a call through the gateway raised ``error`` after asked
    Handoff to wait (uncapped: what to tell a person); None when it said none."""
    seconds = getattr(error, _RETRY_AFTER, None)
    return seconds if isinstance(seconds, float) else None


def _budget_low(headers: Any) -> bool:
    """Whether ``X-RateLimit-Remaining`` is under a tenth of ``X-RateLimit-Limit`` (False without them)."""
    remaining, limit = _positive(headers.get("X-RateLimit-Remaining")), _positive(headers.get("X-RateLimit-Limit"))
    if limit is None:
        return False
    return (remaining or 0.0) < LOW_BUDGET_SHARE * limit


def _positive(value: str | None) -> float | None:
    """A header's number when it is one above 0 (Azure DevOps sends ``Retry-After`` in seconds), else None."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None


class AzureDevOpsGateway:
    """Runs SDK calls for one organization; see the module's docstring."""

    def __init__(
        self,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pool = WorkerPool("azure-devops", workers)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._budget_low = False
        self._last_start = float("-inf")
        self._answers = threading.local()  # each thread's last answer: the status of the call it runs

    def watch(self, client: ClientT) -> ClientT:
        """Hook an SDK client into the gateway (once; later calls change nothing); returns the client."""
        with self._lock:
            if not getattr(client, "_handoff_gateway", False):
                client.config.hooks.append(self._answered)  # type: ignore[attr-defined]
                client._handoff_gateway = True  # type: ignore[attr-defined]
        return client

    def _answered(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """A requests response hook (on the SDK's thread): a ``Retry-After`` pauses the organization, a
        nearly spent budget spaces its calls out (until an answer says otherwise)."""
        self._answers.status = getattr(response, "status_code", None)
        headers = getattr(response, "headers", None) or {}
        self._answers.retry_after = _positive(headers.get("Retry-After"))
        low = _budget_low(headers)
        with self._lock:
            if low and not self._budget_low:
                log.warning(
                    "azure devops budget nearly spent (%s left): spacing out its calls",
                    headers.get("X-RateLimit-Remaining"),
                )
            self._budget_low = low
        seconds = _positive(headers.get("Retry-After"))
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
        """Seconds until calls may go out again after a ``Retry-After`` (0 when they may now)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def _wait_before_start(self) -> float:
        """Seconds this call must still wait; 0 means it starts now (and is counted as started)."""
        with self._lock:
            now = self._clock()
            wait = self._paused_until - now
            if self._budget_low:
                wait = max(wait, self._last_start + LOW_BUDGET_SPACING - now)
            if wait <= 0:
                self._last_start = now
            return max(0.0, wait)

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on the gateway's threads, once any pause or spacing is over."""
        while (wait := self._wait_before_start()) > 0:
            await self._sleep(wait)
        return await self._pool.run(self._traced, function, *args, **kwargs)

    def _traced(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on this thread; an error it raises after an error answer carries that
        answer's status (see :func:`answered_status`)."""
        self._answers.status = None
        self._answers.retry_after = None
        try:
            return function(*args, **kwargs)
        except Exception as error:
            status = getattr(self._answers, "status", None)
            if isinstance(status, int) and status >= 400:
                setattr(error, _STATUS, status)
                setattr(error, _RETRY_AFTER, getattr(self._answers, "retry_after", None))
            raise

    def close(self) -> None:
        """Let the threads end (a call still running finishes on its own)."""
        self._pool.close()
