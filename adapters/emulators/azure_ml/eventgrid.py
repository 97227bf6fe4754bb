"""Event Grid webhook delivery: subscriptions, validation handshakes, batching, retries, dead letters.

Rules from shared/reference/azure-ml.md §2:

- Event Grid schema: a ``SubscriptionValidationEvent`` is POSTed and the endpoint must answer 200 with
  ``{"validationResponse": code}`` (200 without it leaves the subscription ``AwaitingManualAction`` until
  someone GETs the ``validationUrl``). CloudEvents 1.0: an ``OPTIONS`` with ``WebHook-Request-Origin`` must be
  answered with ``WebHook-Allowed-Origin`` (that origin or ``*``).
- Deliveries carry ``aeg-*`` headers, the subscription's secret (query string parameter or header), and are
  one event per POST unless ``max_events_per_batch`` > 1 (Event Grid schema bodies are always arrays;
  CloudEvents bodies are a single object when unbatched, an array when batched).
- 200-204 is success; 400, 401, 403 and 413 are not retried (dead-lettered at once); anything else,
  a timeout or a dropped connection is retried after each delay of the bounded ``retry_schedule`` (on the
  injected Clock), then dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from adapters.emulators.azure_ml.events import EmittedEvent, event_time, validation_event
from adapters.emulators.azure_ml.world import DeliveryConfig
from bot.clock import Clock

logger = logging.getLogger(__name__)

Schema = Literal["EventGridSchema", "CloudEventSchemaV1_0"]
SCHEMAS: tuple[str, ...] = ("EventGridSchema", "CloudEventSchemaV1_0")
SUCCESS = frozenset({200, 201, 202, 203, 204})
NO_RETRY = frozenset({400, 401, 403, 413})
_OUTCOMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    413: "PayloadTooLarge",
}


class SubscriptionValidationError(RuntimeError):
    """The endpoint did not complete the validation handshake, so the subscription failed."""


@dataclass
class DeliveryAttempt:
    """One POST of a batch to a subscription's endpoint."""

    event_ids: list[str]
    delivery_count: int
    status: int | None
    outcome: str
    at: str


@dataclass
class EventSubscription:
    """An Event Grid event subscription with a webhook endpoint.

    ``state`` is ``Creating``, ``AwaitingManualAction``, ``Succeeded`` (events flow) or ``Failed``.
    """

    name: str
    url: str = field(repr=False)  # may carry a secret in its query string; see safe_url
    schema: Schema = "EventGridSchema"
    event_types: tuple[str, ...] | None = None
    secret_query: tuple[str, str] | None = field(default=None, repr=False)
    secret_header: tuple[str, str] | None = field(default=None, repr=False)
    max_events_per_batch: int = 1
    subject_begins_with: str | None = None
    subject_ends_with: str | None = None
    topic: str | None = None
    retry_schedule: tuple[float, ...] = (10.0, 30.0, 60.0, 300.0, 600.0)
    state: str = "Creating"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    validation_token: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    delivered: list[EmittedEvent] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    queue: deque[EmittedEvent] = field(default_factory=deque, repr=False)
    in_flight: bool = False

    @property
    def endpoint(self) -> str:
        """The URL deliveries go to: ``url`` plus the query-string secret, if any."""
        if not self.secret_query:
            return self.url
        parts = urlsplit(self.url)
        query = "&".join(q for q in (parts.query, urlencode([self.secret_query])) if q)
        return urlunsplit(parts._replace(query=query))

    @property
    def safe_url(self) -> str:
        """``url`` without its query string, for logs and errors (a secret may sit there)."""
        return urlunsplit(urlsplit(self.url)._replace(query=""))

    def accepts(self, event: EmittedEvent) -> bool:
        """Whether this subscription's filters let ``event`` through."""
        if self.event_types is not None and event.event_type not in self.event_types:
            return False
        if self.topic is not None and event.topic.lower() != self.topic.lower():
            return False
        if self.subject_begins_with and not event.subject.startswith(self.subject_begins_with):
            return False
        return not (self.subject_ends_with and not event.subject.endswith(self.subject_ends_with))

    def body(self, batch: list[EmittedEvent]) -> tuple[Any, str]:
        """The delivery body and its content type."""
        if self.schema == "EventGridSchema":
            return [e.to_event_grid() for e in batch], "application/json; charset=utf-8"
        if self.max_events_per_batch == 1:
            return batch[0].to_cloud_event(), "application/cloudevents+json; charset=utf-8"
        return [e.to_cloud_event() for e in batch], "application/cloudevents-batch+json; charset=utf-8"


class EventGridDispatcher:
    """Delivers published events to every subscription whose filters match, one worker per subscription.

    Args:
        clock: times the retry schedule.
        config: the delivery defaults (retry schedule, response timeout, handshake origin).
        session: returns the emulator's shared ``aiohttp.ClientSession``.
        validation_url: builds the manual ``validationUrl`` of a subscription.
    """

    def __init__(
        self,
        clock: Clock,
        config: DeliveryConfig,
        session: Callable[[], aiohttp.ClientSession],
        validation_url: Callable[[EventSubscription], str],
    ) -> None:
        self.clock = clock
        self.config = config
        self._session = session
        self._validation_url = validation_url
        self.subscriptions: dict[str, EventSubscription] = {}
        self.published: list[EmittedEvent] = []
        self._wakeups: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()

    # -- subscriptions -----------------------------------------------------------------------------

    async def subscribe(self, sub: EventSubscription) -> EventSubscription:
        """Run the validation handshake and, once it succeeds, start delivering to ``sub``."""
        if sub.name in self.subscriptions:
            raise ValueError(f"event subscription {sub.name!r} already exists")
        self.subscriptions[sub.name] = sub
        try:
            if sub.schema == "EventGridSchema":
                await self._validate_event_grid(sub)
            else:
                await self._validate_cloud_events(sub)
        except (aiohttp.ClientError, TimeoutError) as exc:
            sub.state = "Failed"
            raise SubscriptionValidationError(f"{sub.name}: handshake with {sub.safe_url} failed: {exc!r}") from exc
        if sub.state == "Failed":
            raise SubscriptionValidationError(f"{sub.name}: {sub.safe_url} did not complete the validation handshake")
        self._wakeups[sub.name] = asyncio.Event()
        self._workers[sub.name] = asyncio.create_task(self._work(sub), name=f"eventgrid-{sub.name}")
        return sub

    def complete_manual_validation(self, sub_id: str, token: str) -> EventSubscription | None:
        """The GET on a ``validationUrl``: activates an ``AwaitingManualAction`` subscription."""
        for sub in self.subscriptions.values():
            if sub.id == sub_id and secrets.compare_digest(sub.validation_token, token):
                if sub.state == "AwaitingManualAction":
                    sub.state = "Succeeded"
                return sub
        return None

    def _handshake_headers(self, sub: EventSubscription) -> dict[str, str]:
        return {
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-delivery-count": "0",
            "aeg-metadata-version": "1",
            "aeg-data-version": "1",
        }

    async def _validate_event_grid(self, sub: EventSubscription) -> None:
        code = str(uuid.uuid4())
        topic = sub.topic or "/subscriptions/" + sub.id
        event = validation_event(topic, code, self._validation_url(sub), self.clock.now())
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with self._session().post(
            sub.endpoint,
            data=json.dumps([event]),
            headers={**self._handshake_headers(sub), "Content-Type": "application/json; charset=utf-8"},
            timeout=timeout,
        ) as resp:
            text = await resp.text()
            if resp.status != 200:
                sub.state = "Failed"
                return
        try:
            answer = json.loads(text) if text.strip() else None
        except ValueError:
            answer = None
        if isinstance(answer, dict) and "validationResponse" in answer:
            sub.state = "Succeeded" if answer["validationResponse"] == code else "Failed"
        else:
            sub.state = "AwaitingManualAction"

    async def _validate_cloud_events(self, sub: EventSubscription) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        origin = self.config.origin
        async with self._session().options(
            sub.endpoint, headers={"WebHook-Request-Origin": origin}, timeout=timeout
        ) as resp:
            allowed = resp.headers.get("WebHook-Allowed-Origin", "")
            ok = resp.status == 200 and allowed.strip() in (origin, "*")
        sub.state = "Succeeded" if ok else "Failed"

    # -- publishing ----------------------------------------------------------------------------------

    def publish(self, event: EmittedEvent) -> None:
        """Queue ``event`` for every validated subscription whose filters match."""
        self.published.append(event)
        for sub in self.subscriptions.values():
            if sub.state == "Succeeded" and sub.accepts(event):
                sub.queue.append(event)
                self._wakeups[sub.name].set()
        self._changed.set()

    @property
    def idle(self) -> bool:
        """No event waits and no delivery is in flight."""
        return all(not s.queue and not s.in_flight for s in self.subscriptions.values())

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (real time) until every queued event was delivered or dead-lettered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.idle:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("Event Grid deliveries still pending")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                continue

    async def close(self) -> None:
        """Stop every delivery worker."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

    # -- delivery ------------------------------------------------------------------------------------

    async def _work(self, sub: EventSubscription) -> None:
        wakeup = self._wakeups[sub.name]
        while True:
            await wakeup.wait()
            wakeup.clear()
            while sub.queue:
                batch = [sub.queue.popleft()]
                while sub.queue and len(batch) < sub.max_events_per_batch and sub.queue[0].topic == batch[0].topic:
                    batch.append(sub.queue.popleft())
                sub.in_flight = True
                try:
                    await self._deliver(sub, batch)
                finally:
                    sub.in_flight = False
                    self._changed.set()

    async def _deliver(self, sub: EventSubscription, batch: list[EmittedEvent]) -> None:
        body, content_type = sub.body(batch)
        data = json.dumps(body)
        schedule = sub.retry_schedule
        outcome = "GenericError"
        for count in range(len(schedule) + 1):
            if count:
                await self.clock.sleep(schedule[count - 1])
            status, outcome = await self._post(sub, batch, data, content_type, count)
            sub.attempts.append(
                DeliveryAttempt([e.id for e in batch], count, status, outcome, event_time(self.clock.now()))
            )
            if status in SUCCESS:
                sub.delivered.extend(batch)
                return
            if status in NO_RETRY:
                self._dead_letter(sub, batch, outcome, count + 1)
                return
        self._dead_letter(sub, batch, outcome, len(schedule) + 1, reason="MaxDeliveryAttemptsExceeded")

    def _headers(
        self, sub: EventSubscription, batch: list[EmittedEvent], content_type: str, count: int
    ) -> dict[str, str]:
        first = batch[0]
        headers = {
            "Content-Type": content_type,
            "aeg-event-type": "Notification",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-delivery-count": str(count),
            "aeg-output-event-id": first.id,
        }
        if sub.schema == "EventGridSchema":
            headers["aeg-metadata-version"] = "1"
            headers["aeg-data-version"] = first.data_version
        else:
            headers["aeg-metadata-version"] = "1.0"
            headers["Origin"] = self.config.origin
        if sub.secret_header:
            headers[sub.secret_header[0]] = sub.secret_header[1]
        return headers

    async def _post(
        self, sub: EventSubscription, batch: list[EmittedEvent], data: str, content_type: str, count: int
    ) -> tuple[int | None, str]:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        headers = self._headers(sub, batch, content_type, count)
        try:
            async with self._session().post(sub.endpoint, data=data, headers=headers, timeout=timeout) as resp:
                await resp.read()
                status = resp.status
        except TimeoutError:
            return None, "TimedOut"
        except aiohttp.ClientError as exc:
            logger.debug("event grid delivery to %s failed: %s", sub.safe_url, type(exc).__name__)
            return None, "GenericError"
        if status in SUCCESS:
            return status, "Success"
        return status, _OUTCOMES.get(status, "Busy" if status in (429, 503) else "GenericError")

    def _dead_letter(
        self, sub: EventSubscription, batch: list[EmittedEvent], outcome: str, attempts: int, reason: str = ""
    ) -> None:
        now = event_time(self.clock.now())
        for event in batch:
            record = event.to_event_grid()
            record.update(
                deadLetterReason=reason or "DeliveryFailedNonRetriable",
                deliveryAttempts=attempts,
                lastDeliveryOutcome=outcome,
                publishTime=event_time(event.event_time),
                lastDeliveryAttemptTime=now,
            )
            sub.dead_letters.append(record)
