"""Outbound service hooks: the Web Hooks consumer (``webHooks`` / ``httpRequest``) and its retry rules.

Each subscription delivers its notifications in order, one at a time, over the emulator's single
``aiohttp.ClientSession``. Failures are handled as the service does (reference/azure-devops.md §1.4):

- 2xx: delivered; a subscription on probation is enabled again.
- 410 Gone: the subscription is disabled at once (``disabledBySystem``).
- 408, 502, 503, 504, a timeout or a dropped connection: transient; resent after each delay of
  ``RetrySchedule.transient`` (about 1, 2, 4 … 60 s on the service), then treated as enduring.
- anything else: enduring; the subscription goes ``onProbation`` and the notification is retried after
  each delay of ``RetrySchedule.probation`` (20 min … 15 h on the service), then the subscription is
  ``disabledBySystem``.

Delays are slept on the emulator's clock, so tests use tiny schedules or a ``FakeClock``. Targets must be
loopback addresses: nothing the emulator sends may leave the machine.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from adapters.emulators.azure_devops.events import DEFAULT_EVENT_TYPES, Event
from bot.clock import Clock

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 502, 503, 504})
SubscriptionStatus = Literal["enabled", "onProbation", "disabledByUser", "disabledBySystem"]


@dataclass(frozen=True)
class RetrySchedule:
    """Delays, in seconds, between delivery attempts.

    Args:
        transient: after each transient failure (the service: 1, 2, 4, 8, 16, 32, 60, 60).
        probation: between retries while the subscription is on probation (the service: 20 min … 15 h).
    """

    transient: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60, 60)
    probation: tuple[float, ...] = (1200, 2400, 4800, 9600, 19200, 38400, 54000)

    @classmethod
    def fast(cls, transient: int = 3, probation: int = 2, delay: float = 0.01) -> RetrySchedule:
        """A short schedule of the same form, for tests and demos."""
        return cls(transient=(delay,) * transient, probation=(delay,) * probation)


@dataclass
class Subscription:
    """A Web Hooks subscription: where to POST, which events, and how to authenticate."""

    id: str
    url: str
    event_types: frozenset[str]
    basic: tuple[str, str] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    resource_version: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    status: SubscriptionStatus = "enabled"
    probation_retries: int = 0
    created: datetime | None = None
    created_by: Any = None
    last_notification_id: int = 0
    publisher_inputs: dict[str, str] = field(default_factory=dict)

    def wants(self, event: Event) -> bool:
        """Whether ``event`` matches this subscription's event type and publisher-input filters."""
        if event.event_type not in self.event_types or self.status in ("disabledByUser", "disabledBySystem"):
            return False
        for key, wanted in self.filters.items():
            value = event.context.get(key)
            if wanted and value is not None and str(value).lower() != wanted.lower():
                return False
        return True

    def request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "VSServices/16.0 (emulator)"}
        if self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        headers.update(dict(self.headers))
        return headers


@dataclass
class Attempt:
    """One POST of a notification."""

    at: datetime
    status: int | None
    error: str | None = None


@dataclass
class Delivery:
    """One notification: an event addressed to one subscription, with its attempts."""

    subscription_id: str
    notification_id: int
    event: Event
    payload: dict[str, Any]
    created: datetime
    attempts: list[Attempt] = field(default_factory=list)
    status: Literal["queued", "requestInProgress", "completed"] = "queued"
    result: Literal["pending", "succeeded", "failed"] = "pending"

    @property
    def event_type(self) -> str:
        return self.event.event_type


def parse_http_headers(text: str) -> tuple[tuple[str, str], ...]:
    """The ``httpHeaders`` consumer input: one ``Key:value`` per line."""
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out.append((name.strip(), value.strip()))
    return tuple(out)


def require_loopback(url: str) -> None:
    """Refuse any target that is not on this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url must be http(s) with a host: {url!r}")
    host = parts.hostname
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the emulator only delivers to loopback addresses, not {host!r}")


class WebhookSender:
    """Holds subscriptions, queues their notifications and delivers them with the service's retries."""

    def __init__(
        self,
        clock: Clock,
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        schedule: RetrySchedule | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.clock = clock
        self.schedule = schedule or RetrySchedule()
        self.timeout = timeout
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self._session = session
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def subscribe(
        self,
        url: str,
        event_types: Iterable[str] | None = None,
        *,
        basic: tuple[str, str] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        resource_version: str | None = None,
        filters: dict[str, str] | None = None,
        subscription_id: str | None = None,
        created: datetime | None = None,
        created_by: Any = None,
        publisher_inputs: dict[str, str] | None = None,
    ) -> Subscription:
        """Add a subscription (``event_types=None`` means :data:`DEFAULT_EVENT_TYPES`)."""
        require_loopback(url)
        sub = Subscription(
            id=subscription_id or str(uuid.uuid4()),
            url=url,
            event_types=frozenset(event_types or DEFAULT_EVENT_TYPES),
            basic=basic,
            headers=tuple(headers),
            resource_version=resource_version,
            filters=dict(filters or {}),
            created=created,
            created_by=created_by,
            publisher_inputs=dict(publisher_inputs or {}),
        )
        self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; its queued notifications are dropped."""
        sub = self.subscriptions.pop(subscription_id, None)
        worker = self._workers.pop(subscription_id, None)
        if worker is not None:
            worker.cancel()
        self._queues.pop(subscription_id, None)
        return sub is not None

    def publish(self, event: Event) -> list[Delivery]:
        """Queue ``event`` for every subscription that wants it (call from the event loop)."""
        out = []
        for sub in list(self.subscriptions.values()):
            if not sub.wants(event):
                continue
            sub.last_notification_id += 1
            delivery = Delivery(
                subscription_id=sub.id,
                notification_id=sub.last_notification_id,
                event=event,
                payload=event.envelope(sub.id, sub.last_notification_id, sub.resource_version),
                created=self.clock.now(),
            )
            self.deliveries.append(delivery)
            self._queue(sub).put_nowait(delivery)
            out.append(delivery)
        return out

    def _queue(self, sub: Subscription) -> asyncio.Queue[Delivery]:
        queue = self._queues.get(sub.id)
        if queue is None:
            queue = self._queues[sub.id] = asyncio.Queue()
        worker = self._workers.get(sub.id)
        if worker is None or worker.done():
            self._workers[sub.id] = asyncio.get_running_loop().create_task(self._work(sub, queue))
        return queue

    async def join(self, timeout: float = 5.0) -> None:
        """Wait until every queued notification has succeeded or failed for good."""
        await asyncio.wait_for(asyncio.gather(*(q.join() for q in list(self._queues.values()))), timeout)

    async def close(self) -> None:
        """Stop the delivery workers."""
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, sub: Subscription, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(sub, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop later deliveries
                logger.exception("webhook delivery %s/%s failed", sub.id, delivery.notification_id)
                delivery.result, delivery.status = "failed", "completed"
            finally:
                queue.task_done()

    async def _deliver(self, sub: Subscription, delivery: Delivery) -> None:
        transient = iter(self.schedule.transient)
        while True:
            if sub.status in ("disabledByUser", "disabledBySystem") or sub.id not in self.subscriptions:
                delivery.result, delivery.status = "failed", "completed"
                return
            outcome = await self._attempt(sub, delivery)
            if outcome == "ok":
                sub.status, sub.probation_retries = "enabled", 0
                delivery.result, delivery.status = "succeeded", "completed"
                return
            if outcome == "gone":
                sub.status = "disabledBySystem"
                delivery.result, delivery.status = "failed", "completed"
                return
            if outcome == "transient":
                delay = next(transient, None)
                if delay is not None:
                    await self.clock.sleep(delay)
                    continue
            # enduring failure (or transient retries exhausted): probation
            sub.status = "onProbation"
            if sub.probation_retries >= len(self.schedule.probation):
                sub.status = "disabledBySystem"
                delivery.result, delivery.status = "failed", "completed"
                return
            delay = self.schedule.probation[sub.probation_retries]
            sub.probation_retries += 1
            await self.clock.sleep(delay)

    async def _attempt(self, sub: Subscription, delivery: Delivery) -> Literal["ok", "gone", "transient", "enduring"]:
        delivery.status = "requestInProgress"
        session = await self._session()
        body = json.dumps(delivery.payload).encode()
        try:
            async with session.post(
                sub.url,
                data=body,
                headers=sub.request_headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.attempts.append(Attempt(self.clock.now(), None, f"{type(exc).__name__}: {exc}"))
            return "transient"
        delivery.attempts.append(Attempt(self.clock.now(), status))
        if 200 <= status < 300:
            return "ok"
        if status == 410:
            return "gone"
        return "transient" if status in TRANSIENT_STATUSES else "enduring"
