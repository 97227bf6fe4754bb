"""The same cap on a long-running operation's waits as on a throttled call's (:mod:`adapters.azure_ml.throttle`).

An Azure Resource Manager long-running operation (a job's cancel, an Event Grid subscription's creation)
answers 202 and says at an operation URL how it goes; azure-core's poller sleeps each answer's
``Retry-After`` (60 s, an hour: whatever the service says) between looks, and the caller's
``.result()`` waits for all of it on one of the Azure ML service's few threads. :class:`CappedPolling`
polls as azure-core's ``ARMPolling`` does, but a look that asks to wait more than
:data:`~adapters.azure_ml.throttle.MAX_RETRY_AFTER_SECONDS` ends the wait with :class:`StillWorking`:
the service accepted the operation and goes on with it, Handoff just stops watching it there.
"""

from __future__ import annotations

from azure.mgmt.core.polling.arm_polling import ARMPolling

from adapters.azure_ml.throttle import MAX_RETRY_AFTER_SECONDS
from adapters.waits import wait_text

POLLING_INTERVAL = 30.0
"""Seconds between looks when the service names no ``Retry-After`` (azure-core's ``ARMPolling`` default)."""


class StillWorking(Exception):
    """Azure accepted a long-running operation, which had not ended when it asked Handoff to look again in
    ``retry_after`` seconds, longer than the cap: Handoff stopped waiting, the operation goes on.

    Not an ``AzureError``: nothing about the operation failed.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"still at it; asked to look again in {wait_text(retry_after)}")
        self.retry_after = retry_after


class CappedPolling(ARMPolling):
    """``ARMPolling`` whose waits between looks are at most ``limit`` seconds; a longer one raises
    :class:`StillWorking` on the poller's thread, which ``LROPoller.result()`` raises to its caller.

    Pass one (a new one per operation: it holds the operation's state) as ``polling=`` to a ``begin_*`` call.

    Args:
        interval: seconds between looks when the service names no ``Retry-After``.
        limit: the longest wait taken; a longer one ends the polling.
    """

    def __init__(self, interval: float = POLLING_INTERVAL, limit: float = MAX_RETRY_AFTER_SECONDS) -> None:
        super().__init__(timeout=interval)
        self.limit = limit

    def _delay(self) -> None:
        delay = self._extract_delay()
        if delay > self.limit:
            raise StillWorking(delay)
        self._sleep(delay)
