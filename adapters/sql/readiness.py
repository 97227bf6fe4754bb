"""Whether the store is ready, asked often: health probes must not load the store they probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# A ready answer holds this long: probes that come closer together share it.
READY_FOR_SECONDS = 1.0


class Readiness:
    """Answers whether the store answers and is migrated, for ``/readyz`` and start-up.

    Probes that arrive together (a load balancer's, from several places at once) share one check, and a
    ready answer holds for ``ready_for`` seconds; a not-ready answer is never kept, so the next probe
    asks again.

    Args:
        check: asks the store; True when it answers and is at the schema this code ships.
        ready_for: seconds a ready answer holds.
        monotonic: the clock those seconds are counted on.
    """

    def __init__(
        self,
        check: Callable[[], Awaitable[bool]],
        ready_for: float = READY_FOR_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self.ready_for = ready_for
        self._monotonic = monotonic
        self._ready_at: float | None = None
        self._asking: asyncio.Future[bool] | None = None

    async def __call__(self) -> bool:
        if self._ready_at is not None and self._monotonic() - self._ready_at < self.ready_for:
            return True
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._ask())
        # one caller giving up (a probe's timeout) does not cancel the check the others wait for
        return await asyncio.shield(self._asking)

    def forget(self) -> None:
        """The store changed (it was migrated): the next call asks again."""
        self._ready_at = None

    async def _ask(self) -> bool:
        try:
            ready = await self._check()
            self._ready_at = self._monotonic() if ready else None
            return ready
        finally:
            self._asking = None
