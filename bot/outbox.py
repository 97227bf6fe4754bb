"""Durable delivery: outbox workers post and update cards through the platforms' ``ChatChannel``.

A delivery's payload says what to do:

- ``{"op": "card", "rank": n, "card": {...}}``: show the card for the delivery's grouping key in its
  conversation, posting it the first time and updating it after. The platform message id is stored
  the moment the platform returns it and reused ever after, so a retry never posts a second card.
  A delivery whose rank is not above the card already shown is completed without a call; otherwise
  the newest version waiting for that card and conversation is shown, and the versions after it then
  find it shown (coalescing: a burst of events costs one post or update, whatever its length).
- ``{"op": "reply", "card": {...}}``: a reply in the thread of the grouping key's card (``"broadcast": true``
  also shows it in the conversation). A reply the ingest made quiet because its card's first post was still
  queued (that post was to show the event already) carries ``"version"``, the card's version with the event,
  and ``"planned"``, the reply as it would have been: that one is sent instead where the card's first post
  showed an older version (it was under way when the event came).
- ``{"op": "post", "card": {...}}``: a standalone message (alerts).

A card someone deleted in chat (the platform says :class:`~bot.ports.MessageGone`) is posted afresh with
the version to show (for a reply, the version it showed), and the new message replaces the old one in
the store: later updates edit it and later replies go in its thread.

Failures retry with exponential backoff and jitter, honouring the platform's Retry-After, up to
``RetryPolicy.max_attempts`` (by default 6 attempts within about 10 minutes); then the delivery is
dead-lettered and an alert goes to the ops channel. A platform refusing Handoff's own credentials
(:class:`~bot.ports.CredentialsRefused`) is retried for longer (``RetryPolicy.credential_attempts``, about 30
minutes: a secret being replaced), and its alert says that the platform refuses them, wherever Handoff posts there;
an alert that cannot be posted for that reason is given up at once, with one ERROR log line saying so.
A conversation Handoff cannot post in at all (:class:`~bot.ports.ConversationUnreachable`) is marked
inactive, as when the platform says Handoff was removed (the ingest then queues nothing more there), and
the ops channel is told once; what was already queued there is given up quietly, as are the replies of a
card that was never posted. What is given up because its conversation cannot be posted in is stored
``unreachable``, not ``dead``: it is no failure to deliver, and stays out of the dead letters' count and alert.
Deliveries that end unsent without an alert (those, and card versions a newer one was shown in place of) are
each counted by :class:`UnsentReason` and logged at INFO.

A claim is leased briefly (``OutboxWorker.lease``, 15 s) and renewed every third of that while its attempt goes
on, as long as the claim is still the worker's as it left it (a conditional write: nothing recorded since,
nobody else's claim). So a worker that dies (a crash, ``kill -9``) holds up its conversations for one short lease
at most: then the next process, or another replica, claims what it held, as a recovery.

No attempt waits for room in the conversation's limits past ``OutboxWorker.max_wait`` from its claim (the
adapters cap their own waits likewise): a send with no room by then is :class:`~bot.ports.SendLater`, and the
delivery goes back to the store until there is room, keeping its turn in its conversation, its attempt not
counted. Nor does an attempt send past ``OutboxWorker.send_within`` from its claim, after which its lease is no
longer renewed: a call still unanswered then (a platform or a store that stalls) is given up, as a send that may
have gone out, leaving the rest of the lease to record that; so a stuck send holds its conversation for
``send_within`` and one lease at most. And an attempt whose lease could not be renewed (the store failing) stops
sending a third of a lease before that lease runs out, the same way. So no delivery is claimed again, by this
worker or another replica, while an attempt still means to send it.

On a graceful stop (:meth:`OutboxWorker.run`'s ``stop``) the worker hands back what it has claimed and not
finished, so that the next process, or another replica, sends it at once rather than when its lease runs out:
an attempt that has sent nothing yet is handed back untouched (its due time kept, its attempt not counted); one
with a send out gets ``stop_grace`` seconds to finish, and is then handed back as a recovery, due at once.

Every post carries the delivery's :func:`post_marker`. A delivery whose earlier attempt may have posted
without the outcome being recorded (its worker died, the answer was lost, or the store failed to record it:
``Delivery.recovered``) is first looked for with ``ChatChannel.find_posted``, and posted only if it is not there.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from bot.cards import Card, Fact, Status
from bot.clock import Clock
from bot.events import bounded_key
from bot.ports import (
    ChatChannel,
    ConversationUnreachable,
    CredentialsRefused,
    DeliveryFailed,
    MessageGone,
    PostedMessage,
    SendLater,
    Store,
)
from bot.ratelimit import SLACK_WINDOWS, TEAMS_WINDOWS, SlidingWindowLimiter
from bot.records import (
    ConversationAddress,
    ConversationRecord,
    Delivery,
    JsonObject,
    NewDelivery,
    Platform,
    PostedCard,
)
from bot.trouble import FailureStreak, one_line

log = logging.getLogger("handoff.outbox")

UnsentReason = Literal["superseded", "parent_never_posted", "conversation_unreachable"]
"""Why a delivery ended unsent without an alert of its own:

- ``superseded``: a newer version of its card was shown instead (it is marked sent);
- ``parent_never_posted``: a reply to a card that was never posted (dead-lettered, or unreachable when its
  conversation is marked inactive);
- ``conversation_unreachable``: queued for a conversation already found unreachable and marked inactive,
  which the ops channel was told of once (unreachable).
"""


PLATFORM_NAMES: Mapping[Platform, str] = {"slack": "Slack", "teams": "Teams"}
CREDENTIALS_FIX: Mapping[Platform, str] = {
    "slack": "Handoff's bot token is replaced (slack.bot_token, or Handoff installed in the workspace again)",
    "teams": "Handoff's app id and password match its Azure Bot registration (teams.app_id, teams.app_password)",
}
"""What makes a platform take Handoff's credentials again, in the words of its settings."""


def _is_alert(delivery: Delivery) -> bool:
    """Whether ``delivery`` is one of the ops channel's alerts."""
    return delivery.grouping_key.startswith(ALERT_PREFIX)


class DeliveryObserver(Protocol):
    """What the outbox reports as it goes (Handoff's metrics)."""

    def delivered(self, platform: str, seconds: float) -> None:
        """A delivery is done, ``seconds`` after its event arrived."""

    def not_delivered(self, platform: str, outcome: str) -> None:
        """An attempt did not go through: ``rate_limited``, ``retried``, ``dead``, ``unreachable`` (its
        conversation cannot be posted in: marked inactive, the ops channel told), or ``postponed`` (no room to
        send within the wait an attempt may spend: handed back until there is, not counted as an attempt)."""

    def unsent(self, platform: str, reason: UnsentReason, count: int = 1) -> None:
        """``count`` deliveries ended without being sent, and without an alert, for ``reason``."""


@dataclass(frozen=True)
class RetryPolicy:
    """How failed deliveries are retried: exponential backoff with jitter, up to ``max_attempts``.

    By default 6 attempts within about 10 minutes: the waits between them are about 5 s, 15 s, 45 s, 2¼ min
    and 6¾ min (each ``multiplier`` times the one before, then within ``jitter`` of that either way, at most
    ``max_delay``), some 10 minutes in all (8½ to 11½), so that a platform's short outage is ridden out while
    a quick glitch costs seconds.
    """

    max_attempts: int = 6
    credential_attempts: int = 8
    """Attempts at a delivery the platform refuses Handoff's credentials for: about 30 minutes (the waits above,
    then 10 min twice). Long enough to ride out a token or app password being replaced (put where Handoff reads
    it, Handoff restarted) and for whoever sees the WARNING lines to do so; not hours, since one conversation's
    messages go in order and what waits behind a refused card grows stale."""
    base_delay: float = 5.0
    multiplier: float = 3.0
    jitter: float = 0.15
    max_delay: float = 600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first), at least the platform's
        ``retry_after``."""
        nominal = self.base_delay * self.multiplier ** max(0, attempt - 1)
        jittered = min(self.max_delay, nominal * rng.uniform(1 - self.jitter, 1 + self.jitter))
        return max(jittered, retry_after or 0.0)


DEFAULT_WINDOWS: Mapping[Platform, tuple[tuple[int, float], ...]] = {
    "slack": SLACK_WINDOWS,
    "teams": TEAMS_WINDOWS,
}
ALERT_PREFIX = "handoff:alert:"  # the grouping keys of the ops channel's alerts
SEND_HISTORY = timedelta(seconds=max(seconds for windows in DEFAULT_WINDOWS.values() for _, seconds in windows))
"""How long the store must remember a send for the platforms' limits: the longest window."""


LEASE = timedelta(seconds=15)
"""How long a claim on a delivery lasts unless renewed: what a worker that dies holds its conversations up for."""
MAX_WAIT = timedelta(seconds=15)
"""The longest an attempt waits for room to send, from its claim."""
SEND_WITHIN = timedelta(seconds=45)
"""The longest an attempt may go on sending, from its claim (its lease renewed meanwhile)."""


@dataclass
class _Attempt:
    """One attempt at a claimed delivery."""

    delivery: Delivery
    # the latest a wait for room to send may end
    wait_until: datetime
    # the latest the attempt may still be sending (calls to the platform, and to the store, included), and the
    # last moment its lease is renewed: what is left of the lease after it is for recording what became of it
    send_until: datetime
    # the claim's lease as the worker last wrote it (claimed, or renewed): renewals are fenced by it, and the
    # attempt stops sending well before it, should renewals fail
    lease_until: datetime
    # a call that may post or change a message has gone out to the platform: whatever fails after it, the
    # next attempt must look for what it posted before posting again
    sent: bool = False
    # the sending is over (only what became of it is left to record)
    over: bool = False


class _Sent(enum.Enum):
    """What became of a delivery the worker took."""

    SENT = "sent"  # sent; to be marked sent
    RECORDED = "recorded"  # sent, and marked sent with the card it shows
    ENDED_UNSENT = "ended unsent"  # recorded already (superseded, given up)


def post_marker(delivery: Delivery) -> str:
    """What a delivery's post carries so that it can be found again: unique to this delivery of this
    Handoff (two Handoffs posting to one channel number their deliveries alike, but not their cards
    at the same microsecond)."""
    identity = f"{delivery.id}|{delivery.grouping_key}|{delivery.created_at.isoformat()}"
    return "handoff-" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def parent_marker(delivery: Delivery) -> str:
    """What the card posted afresh for a reply whose card is gone carries (not the reply's own marker: a
    broadcast reply shows in the channel too, where the card is looked for)."""
    return post_marker(delivery) + "-parent"


def _reply_for(payload: JsonObject, shown: PostedCard) -> JsonObject:
    """The reply to send: ``payload``, or the planned reply a quiet one carries where the card was first posted
    with a version from before the reply's event (that post did not tell of the event: the reply must)."""
    planned = payload.get("planned")
    if planned is None or shown.first_rank is None or shown.first_rank >= int(payload.get("version", 0)):
        return payload
    return dict(planned)


class OutboxWorker:
    """Claims due deliveries and sends them, one conversation at a time, at the platforms' limits.

    Args:
        store: where deliveries, cards and leases live (shared by every replica).
        channels: the ChatChannel for each platform that is configured.
        clock: time for leases, backoff and rate limits.
        ops_channel: where dead letters are announced, if anywhere.
        conversation_names: the configured name of each conversation (``channels:`` in the settings), which
            the ops channel's alerts name it by; a conversation not configured goes by the name the store
            holds for it.
        lease: how long a claim on a delivery lasts unless renewed; every third of it, the worker renews the
            claims its attempts still hold. One a dead worker held is another's to claim once it runs out.
        max_wait: the longest an attempt waits for room to send (the conversation's limits, counted in the
            store), from its claim; a third of ``send_within`` by default. A longer wait is not spent: the
            delivery goes back to the store until there is room (a platform adapter's own waits are capped
            well inside this too, and hand back what they cannot fit: :class:`~bot.ports.SendLater`).
        send_within: the longest an attempt may take to send, from its claim (45 s by default); its lease is
            renewed until then, and runs out a lease later at most. An attempt still sending then is given up
            as a failure that may have sent (the next attempt looks for its post before posting again), as is
            one still sending a third of a lease before its lease runs out, because renewing it failed.
        stop_grace: on a graceful stop, the seconds an attempt with a send out may take to finish before it is
            given up and handed back as a recovery (well inside the 5 s the application gives its background
            work to stop).
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[Platform, ChatChannel],
        clock: Clock,
        *,
        ops_channel: tuple[ConversationAddress, ...] = (),
        conversation_names: Mapping[ConversationAddress, str] | None = None,
        retry: RetryPolicy | None = None,
        lease: timedelta = LEASE,
        max_wait: timedelta | None = None,
        send_within: timedelta | None = None,
        stop_grace: float = 2.0,
        batch_size: int = 50,
        poll_interval: float = 0.2,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.clock = clock
        self.ops_channel = ops_channel
        self.conversation_names = dict(conversation_names or {})
        self.retry = retry or RetryPolicy()
        if lease <= timedelta(0):
            raise ValueError("a claim's lease must be positive")
        self.lease = lease
        self.send_within = max(SEND_WITHIN, max_wait or timedelta(0)) if send_within is None else send_within
        self.max_wait = min(MAX_WAIT, self.send_within / 3) if max_wait is None else max_wait
        if not timedelta(0) <= self.max_wait <= self.send_within:
            raise ValueError("an attempt's wait for room to send must end within its sending")
        self.stop_grace = stop_grace
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # whose claim it was, in the log of the attempt that recovers it
        self.worker_id = worker_id or f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.rng = rng or random.Random()
        self.limiters = {
            platform: SlidingWindowLimiter(windows, clock) for platform, windows in DEFAULT_WINDOWS.items()
        }
        self.calls = 0
        self.observer: DeliveryObserver | None = None
        self._wake = asyncio.Event()
        self._attempts: dict[asyncio.Task[None], _Attempt] = {}
        self._stopping = False
        reachable = "the store is reachable again"
        self.claiming = FailureStreak(log, "outbox claim", clock, recovered=reachable, rng=self.rng)
        # deliveries under way that the store failed (a connection lost): one warning an outage, not one a delivery
        self.store_outage = FailureStreak(
            log, "outbox delivery", clock, recovered=reachable, level=logging.WARNING, recovered_level=logging.INFO
        )

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then hand back what is under way (see :meth:`_stop_sending`).

        Each conversation is served on its own: when one delivery is done, the next due one (of that
        conversation or another) is claimed at once, without waiting for slower conversations. When
        nothing is due the worker waits for a wake-up, a finished delivery or the poll interval.
        """
        sending: set[asyncio.Task[None]] = set()
        try:
            async with self._renewing():
                await self._deliver(stop, sending)
        finally:
            for task in sending:  # only left unfinished when run() itself is cancelled; their leases run out
                task.cancel()

    async def _deliver(self, stop: asyncio.Event, sending: set[asyncio.Task[None]]) -> None:
        """:meth:`run`'s loop, the attempts under way in ``sending``."""
        while not stop.is_set():
            free = self.batch_size - len(sending)
            wait = self.poll_interval
            if free > 0:
                self._wake.clear()  # before looking, so that nothing enqueued from here on is missed
                try:
                    claimed = await self.store.claim_deliveries(self.worker_id, self.clock.now(), self.lease, free)
                except Exception as error:  # the store is in trouble: back off rather than hammer it
                    wait = max(wait, self.claiming.failed(error))
                    claimed = []
                else:
                    self.claiming.succeeded()
                sending.update(self._start(d) for d in claimed)
                if claimed and len(claimed) == free:
                    continue  # there may be more due
            await self._wait(stop, sending, wait)
        if sending:
            await self._stop_sending(sending)

    @contextlib.asynccontextmanager
    async def _renewing(self) -> AsyncIterator[None]:
        """Renew the leases of the claims under way, every third of a lease, while inside."""
        renewing = asyncio.create_task(self._renew_leases(), name="outbox-lease-renewal")
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.wait({renewing})  # (not cut off inside a transaction)

    async def _renew_leases(self) -> None:
        every = (self.lease / 3).total_seconds()
        while True:
            # (a deadline: a bound kept alongside the attempts' work, not a wait a test should move the clock for)
            await self.clock.deadline(every)
            await self._renew()

    async def _renew(self) -> None:
        """Renew the leases of the claims this worker's attempts still hold, up to their ``send_within``."""
        now = self.clock.now()
        held = [attempt for attempt in self._attempts.values() if now < attempt.send_until]
        if not held:
            return
        until = now + self.lease
        # (an attempt still recording what became of a lease that ran out may share its delivery with the attempt
        # that claimed it again since: the latest lease is the claim)
        leases = {a.delivery.id: a.lease_until for a in sorted(held, key=lambda a: a.lease_until)}
        try:
            renewed = await self.store.renew_claims(self.worker_id, leases, until)
        except Exception as error:  # the attempts stop sending before their leases run out
            log.warning("could not renew the leases of %s deliveries (%s)", len(held), type(error).__name__)
            return
        for attempt in held:
            if attempt.delivery.id in renewed and attempt.lease_until == leases[attempt.delivery.id]:
                attempt.lease_until = until

    def _start(self, delivery: Delivery) -> asyncio.Task[None]:
        """Start an attempt at a delivery just claimed (its lease renewed while the attempt is under way and inside
        :meth:`_renewing`)."""
        if delivery.recovered:
            log.info(
                "delivery %s to %s: %s's attempt at it ended without a recorded outcome (its lease ran out, or it "
                "may have sent); looking for its post before sending",
                delivery.id,
                delivery.conversation,
                delivery.recovered_from,
            )
        attempt = self._attempt(delivery)
        task = asyncio.create_task(self._handle(delivery, attempt), name=f"delivery-{delivery.id}")
        self._attempts[task] = attempt
        task.add_done_callback(self._attempts.pop)
        return task

    async def _stop_sending(self, sending: set[asyncio.Task[None]]) -> None:
        """A graceful stop: hand back at once the deliveries whose attempts have sent nothing yet (waiting for
        room, say), untouched; give those with a send out ``stop_grace`` seconds to finish, then hand them back
        as recoveries. Either way another worker may take them at once, instead of when their leases run out."""
        self._stopping = True
        for task in sending:
            attempt = self._attempts.get(task)
            if attempt is not None and not (attempt.sent or attempt.over):
                task.cancel()
        grace = asyncio.ensure_future(self.clock.sleep(self.stop_grace))
        try:
            pending = set(sending)
            while pending and not grace.done():
                _, pending = await asyncio.wait(pending | {grace}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(grace)
        finally:
            grace.cancel()
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)

    async def _wait(self, stop: asyncio.Event, sending: set[asyncio.Task[None]], seconds: float) -> None:
        """Until a delivery finishes, ``stop`` is set, or, with room for more, something is enqueued or
        ``seconds`` pass (the poll interval, or longer while the store fails)."""
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
        if len(sending) < self.batch_size:  # (when full, a wake-up could not be acted on)
            waiters.add(asyncio.ensure_future(self._wake.wait()))
            waiters.add(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(waiters | sending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        for task in [t for t in sending if t.done()]:
            sending.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("delivery task failed", exc_info=task.exception())

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many deliveries were handled."""
        claimed = await self.store.claim_deliveries(self.worker_id, self.clock.now(), self.lease, self.batch_size)
        if claimed:
            async with self._renewing():
                await asyncio.gather(*(self._start(delivery) for delivery in claimed))
        return len(claimed)

    async def drain(self, max_rounds: int = 10_000) -> None:
        """Deliver until nothing is due (for tests and the demo's scripted steps)."""
        for _ in range(max_rounds):
            if not await self.run_once():
                return

    def _attempt(self, delivery: Delivery) -> _Attempt:
        """An attempt at ``delivery``, claimed just now: its bounds count from its claim."""
        now = self.clock.now()
        lease_until = delivery.lease_until or now + self.lease
        claimed_at = min(now, lease_until - self.lease)
        return _Attempt(delivery, now + self.max_wait, claimed_at + self.send_within, lease_until)

    def _send_deadline(self, attempt: _Attempt) -> datetime:
        """The latest ``attempt`` may still be sending: its ``send_until``, or a third of a lease before its lease
        runs out, should renewing it fail (the rest left for recording what became of it)."""
        return min(attempt.send_until, attempt.lease_until - self.lease / 3)

    async def _handle(self, delivery: Delivery, attempt: _Attempt) -> None:
        channel = self.channels.get(delivery.conversation.platform)
        if channel is None:
            await self._dead_letter(delivery, f"{delivery.conversation.platform} is not configured")
            return
        try:
            outcome = await self._bounded(attempt, self._send(channel, attempt))
            if outcome is _Sent.SENT:
                await self.store.complete_delivery(delivery.id, self.worker_id)
            self.store_outage.succeeded()
        except asyncio.CancelledError:
            if self._stopping:
                await self._hand_back(attempt)
            raise
        except SendLater as later:
            await self._postpone(delivery, later)
        except ConversationUnreachable as failure:
            await self._unreachable(delivery, failure.reason)
        except DeliveryFailed as failure:
            await self._failed(delivery, failure)
        except Exception as exc:  # an adapter bug, or the store failing, must not lose the delivery
            await self._raised(delivery, attempt, exc)
        else:
            if outcome is _Sent.ENDED_UNSENT:
                return
            if self.observer is not None:
                age = (self.clock.now() - delivery.created_at).total_seconds()
                self.observer.delivered(delivery.conversation.platform, age)

    async def _raised(self, delivery: Delivery, attempt: _Attempt, error: Exception) -> None:
        """An attempt raised: a mistake (its traceback logged), or the store out of reach (one warning an outage).
        The delivery is tried again; should the store fail that too, its lease runs out and it is claimed again.
        (The store failing to record a send that went out: what it posted is looked for before posting again.)"""
        outage = self.store.unavailable(error)
        if outage:
            self.store_outage.failed(error)
            reason = f"the store is out of reach ({one_line(error)})"
        else:
            log.exception("delivery %s raised", delivery.id)
            reason = f"{type(error).__name__}: {error}"
        try:
            await self._failed(delivery, DeliveryFailed(reason, retryable=True, maybe_sent=attempt.sent), told=outage)
        except Exception as again:
            if not self.store.unavailable(again):
                raise
            self.store_outage.failed(again)

    async def _bounded(self, attempt: _Attempt, send: Coroutine[Any, Any, _Sent]) -> _Sent:
        """``send``, given up at the attempt's :meth:`_send_deadline` as a failure that may have sent (whatever it
        was waiting for then: the platform's answer, the store)."""
        sending = asyncio.ensure_future(send)
        try:
            # until the deadline as it stands then: a renewal of the lease in the meantime may have moved it
            while (left := (self._send_deadline(attempt) - self.clock.now()).total_seconds()) > 0:
                timer = asyncio.ensure_future(self.clock.deadline(left))
                try:
                    await asyncio.wait({sending, timer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    timer.cancel()
                if sending.done():
                    break
        finally:
            if not sending.done():
                sending.cancel()
                await asyncio.wait({sending})  # (its outcome, attempt.sent, is final once it has stopped)
            attempt.over = True
        if sending.cancelled():
            if self.clock.now() >= attempt.send_until:
                reason = f"no outcome within {self.send_within.total_seconds():g}s of its claim"
            else:
                reason = "no outcome before its lease, which could not be renewed, was about to run out"
            raise DeliveryFailed(reason, retryable=True, maybe_sent=attempt.sent)
        return sending.result()

    async def _hand_back(self, attempt: _Attempt) -> None:
        """On a graceful stop: give an unfinished attempt's delivery back to the store, due at once. One the attempt
        sent nothing for goes back as it was (its due time kept, the attempt not counted); one it may have sent is
        a recovery (the next attempt looks for its post first)."""
        delivery = attempt.delivery
        try:
            if attempt.sent:
                reason = "the worker stopped while sending it"
                await self.store.defer_delivery(delivery.id, self.worker_id, reason, self.clock.now())
            else:
                await self.store.postpone_delivery(delivery, self.worker_id, delivery.next_attempt_at)
        except Exception as error:  # its lease runs out instead
            log.warning("delivery %s: could not hand it back on stopping (%s)", delivery.id, type(error).__name__)
        else:
            log.info("delivery %s to %s handed back on stopping", delivery.id, delivery.conversation)

    async def _send(self, channel: ChatChannel, attempt: _Attempt) -> _Sent:
        """Send the attempt's delivery; what became of it."""
        delivery = attempt.delivery
        payload = delivery.payload
        op = payload.get("op", "card")
        card = Card.from_json(payload["card"])
        conversation = delivery.conversation
        marker = post_marker(delivery)
        if op == "post":
            if await self._posted_before(channel, delivery, marker) is None:
                await self._limited(attempt)
                await channel.post_card(conversation.conversation_id, card, marker=marker)
            return _Sent.SENT
        shown = await self.store.get_card(delivery.grouping_key, conversation)
        if op == "reply":
            if shown is None:  # its card's deliveries, all before it, ended without posting it (given up)
                await self._give_up_quietly(delivery, "parent_never_posted", "its card was never posted")
                return _Sent.ENDED_UNSENT
            parent = PostedMessage(shown.message_id, shown.thread_id)
            if await self._posted_before(channel, delivery, marker, parent) is None:
                await self._limited(attempt)
                payload = _reply_for(payload, shown)
                card = Card.from_json(payload["card"])
                broadcast = bool(payload.get("broadcast"))
                try:
                    await channel.reply(conversation.conversation_id, parent, card, marker=marker, broadcast=broadcast)
                except MessageGone as gone:
                    parent = await self._post_afresh(channel, attempt, shown, gone)
                    await self._limited(attempt)
                    await channel.reply(conversation.conversation_id, parent, card, marker=marker, broadcast=broadcast)
            return _Sent.SENT
        if shown is not None and shown.rank >= int(payload.get("rank", 0)):
            await self.store.complete_delivery(delivery.id, self.worker_id)
            self._ended_unsent(delivery, "superseded", f"version {shown.rank} of its card is shown")
            return _Sent.ENDED_UNSENT
        # an earlier attempt may have posted the card without recording it: then that message is updated
        found = await self._posted_before(channel, delivery, marker) if shown is None else None
        await self._limited(attempt)
        # show the newest version waiting now (the later deliveries then find it shown and cost no call)
        latest = await self.store.latest_card_delivery(delivery)
        payload, rank = latest.payload, int(latest.payload.get("rank", 0))
        card = Card.from_json(payload["card"])
        if shown is not None:
            found = PostedMessage(shown.message_id, shown.thread_id)
        if found is None:
            found = await channel.post_card(conversation.conversation_id, card, marker=marker)
        else:
            try:
                await channel.update_card(conversation.conversation_id, found, card)
            except MessageGone as gone:
                log.info(
                    "delivery %s: %s (deleted in chat, or no longer editable); posting the card afresh",
                    delivery.id,
                    gone.reason,
                )
                # an earlier attempt may have posted it afresh already, its answer lost
                if (reposted := await self._posted_before(channel, delivery, marker)) is None:
                    await self._limited(attempt)
                    reposted = await channel.post_card(conversation.conversation_id, card, marker=marker)
                found = reposted
        # recorded with the card it shows: the versions now shown need no turn of their own
        superseded = await self.store.complete_shown(
            delivery, self.worker_id, self._posted_card(delivery, found, rank, payload["card"])
        )
        if superseded:
            log.info(
                "deliveries %s to %s ended unsent (superseded): delivery %s showed version %s of their card",
                ", ".join(map(str, superseded)),
                conversation,
                delivery.id,
                rank,
            )
            if self.observer is not None:
                self.observer.unsent(conversation.platform, "superseded", len(superseded))
        return _Sent.RECORDED

    async def _post_afresh(
        self, channel: ChatChannel, attempt: _Attempt, shown: PostedCard, gone: MessageGone
    ) -> PostedMessage:
        """Post again the card shown in ``shown``'s message, which is gone: the thread to reply in. Marked as
        the reply's parent, so that an attempt after one whose answer was lost finds it instead of posting
        it again."""
        delivery = attempt.delivery
        log.info("delivery %s: %s (deleted in chat?); posting its card afresh", delivery.id, gone.reason)
        marker = parent_marker(delivery)
        posted = await self._posted_before(channel, delivery, marker)
        if posted is None:
            await self._limited(attempt)
            posted = await channel.post_card(
                delivery.conversation.conversation_id, Card.from_json(shown.content), marker=marker
            )
        await self._save_card(delivery, posted, shown.rank, shown.content)
        return posted

    async def _save_card(self, delivery: Delivery, message: PostedMessage, rank: int, content: JsonObject) -> None:
        """Record that the card for ``delivery``'s grouping key and conversation is shown in ``message``."""
        await self.store.save_card(self._posted_card(delivery, message, rank, content))

    def _posted_card(self, delivery: Delivery, message: PostedMessage, rank: int, content: JsonObject) -> PostedCard:
        """The card for ``delivery``'s grouping key and conversation, shown in ``message``."""
        return PostedCard(
            grouping_key=delivery.grouping_key,
            conversation=delivery.conversation,
            message_id=message.message_id,
            thread_id=message.thread_id,
            rank=rank,
            content=content,
            updated_at=self.clock.now(),
        )

    async def _posted_before(
        self, channel: ChatChannel, delivery: Delivery, marker: str, parent: PostedMessage | None = None
    ) -> PostedMessage | None:
        """For a delivery an earlier attempt may have sent: the message it posted, if the platform can tell."""
        if not delivery.recovered:
            return None
        conversation = delivery.conversation.conversation_id
        try:
            found = await channel.find_posted(conversation, marker, delivery.created_at, parent)
        except SendLater:
            raise
        except DeliveryFailed as failure:
            if failure.retryable:  # look again later rather than risk posting twice
                raise DeliveryFailed(failure.reason, True, failure.retry_after, maybe_sent=True) from None
            log.warning("delivery %s: cannot look for an earlier post (%s); posting", delivery.id, failure.reason)
            return None
        if found is not None:
            log.info("delivery %s: an earlier attempt had posted it (%s)", delivery.id, found.message_id)
        return found

    async def _limited(self, attempt: _Attempt) -> None:
        """Wait until a send to the attempt's conversation fits the platform's limits, then count it, in the
        store too; the send is about to go out. :class:`SendLater` when the wait would end past the
        attempt's ``wait_until``.

        The store holds every replica's sends: the replicas take turns at a conversation's deliveries
        (only its oldest pending one is due), and each turn counts what the others sent."""
        conversation = attempt.delivery.conversation
        self.calls += 1
        limiter = self.limiters[conversation.platform]
        while (wait := await self._room_in(conversation, limiter)) > 0:
            if self.clock.now() + timedelta(seconds=wait) > attempt.wait_until:
                raise SendLater(f"no room to send to {conversation} for {wait:.1f}s", wait)
            await self.clock.sleep(wait)
        limiter.record(conversation.conversation_id)
        await self.store.record_send(conversation, self.clock.now())
        attempt.sent = True

    async def _room_in(self, conversation: ConversationAddress, limiter: SlidingWindowLimiter) -> float:
        """Seconds until every window has room for another send to ``conversation``, by the store's count, and
        this process's limiter allows it (which holds a 429's Retry-After too)."""
        now = self.clock.now()
        latest = await self.store.latest_sends(conversation, limiter.windows, now)
        waits = [
            (sent + timedelta(seconds=seconds) - now).total_seconds()
            for sent, (_, seconds) in zip(latest, limiter.windows, strict=True)
            if sent is not None
        ]
        return max([limiter.delay(conversation.conversation_id), *waits])

    async def _postpone(self, delivery: Delivery, later: SendLater) -> None:
        """Hand ``delivery`` back to the store until there is room to send it: nothing was sent, and no attempt
        is counted; it keeps its turn in its conversation, and a recovery stays one."""
        wait = max(later.retry_after or 0.0, self.poll_interval)
        log.info("delivery %s to %s postponed %.1fs: %s", delivery.id, delivery.conversation, wait, later.reason)
        if self.observer is not None:
            self.observer.not_delivered(delivery.conversation.platform, "postponed")
        await self.store.postpone_delivery(delivery, self.worker_id, self.clock.now() + timedelta(seconds=wait))

    async def _failed(self, delivery: Delivery, failure: DeliveryFailed, *, told: bool = False) -> None:
        """Retry the delivery later, or give it up; ``told``: its cause was logged already (the line is INFO)."""
        if failure.retry_after:
            limiter = self.limiters[delivery.conversation.platform]
            limiter.block(delivery.conversation.conversation_id, failure.retry_after)
        credentials = isinstance(failure, CredentialsRefused)
        attempts = self.retry.credential_attempts if credentials else self.retry.max_attempts
        # an alert refused for the credentials is given up at once: the log alone can tell of it, the sooner the better
        retry = failure.retryable and delivery.attempts < attempts and not (credentials and _is_alert(delivery))
        if self.observer is not None and retry:
            outcome = "rate_limited" if failure.retry_after else "retried"
            self.observer.not_delivered(delivery.conversation.platform, outcome)
        if retry:
            wait = self.retry.delay(delivery.attempts, failure.retry_after, self.rng)
            log.log(
                logging.INFO if told else logging.WARNING,
                "delivery %s to %s failed (%s); attempt %s, retrying in %.1fs",
                delivery.id,
                delivery.conversation,
                failure.reason,
                delivery.attempts,
                wait,
            )
            at = self.clock.now() + timedelta(seconds=wait)
            # the next attempt looks for what this one, or an earlier one whose answer was lost, may have posted
            if failure.maybe_sent or delivery.recovered:
                await self.store.defer_delivery(delivery.id, self.worker_id, failure.reason, at)
            else:
                await self.store.retry_delivery(delivery.id, self.worker_id, failure.reason, at)
            return
        await self._dead_letter(delivery, failure.reason, credentials=credentials)

    async def _unreachable(self, delivery: Delivery, reason: str) -> None:
        """Handoff cannot post in the delivery's conversation: it is marked inactive, and the ops channel told
        once (what was queued there before it was marked goes the same way, quietly)."""
        if not await self._deactivate(delivery.conversation):
            await self._give_up_quietly(delivery, "conversation_unreachable", reason)
            return
        log.warning("%s is unreachable (%s): marked inactive", delivery.conversation, reason)
        if self.observer is not None:
            self.observer.not_delivered(delivery.conversation.platform, "unreachable")
        await self.store.unreachable_delivery(delivery.id, self.worker_id, reason)
        targets = [c for c in self.ops_channel if c != delivery.conversation]
        if not targets:
            return
        name = await self._name_of(delivery.conversation)
        where = name or str(delivery.conversation)
        invite = "invite @Handoff to it" if delivery.conversation.platform == "slack" else "add Handoff to it"
        alert = Card(
            title=f"Handoff cannot post in {where}",
            status=Status.WARNING,
            summary=(
                f"{reason}. Nothing more goes there until Handoff is back in it: {invite} "
                "(subscriptions made there start delivering again)."
            ),
            facts=(Fact("Conversation", f"{name} ({delivery.conversation})" if name else str(delivery.conversation)),),
            context="Handoff",
        )
        now = self.clock.now()
        key = bounded_key(f"{ALERT_PREFIX}{delivery.conversation}:unreachable:{now.isoformat()}")
        payload = {"op": "card", "rank": 1, "card": alert.to_json()}
        await self.store.enqueue([NewDelivery(target, key, payload) for target in targets], now)

    async def _deactivate(self, conversation: ConversationAddress) -> bool:
        """Mark ``conversation`` inactive; False if it was already."""
        known = await self.store.get_conversation(conversation)
        if known is not None:
            return await self.store.deactivate_conversation(conversation)
        name = self.conversation_names.get(conversation, "")
        record = ConversationRecord(conversation, name, active=False, updated_at=self.clock.now())
        await self.store.save_conversation(record)
        return True

    async def _give_up_quietly(self, delivery: Delivery, reason: UnsentReason, detail: str) -> None:
        """Give up a delivery whose trouble the ops channel was already told of (no alert of its own): as
        unreachable where its conversation is (a reply whose card was never posted there, too), else dead."""
        if reason == "conversation_unreachable" or await self._inactive(delivery.conversation):
            await self.store.unreachable_delivery(delivery.id, self.worker_id, detail)
        else:
            await self.store.dead_letter_delivery(delivery.id, self.worker_id, detail)
        self._ended_unsent(delivery, reason, detail)

    async def _inactive(self, conversation: ConversationAddress) -> bool:
        """Whether ``conversation`` is marked inactive (Handoff cannot post there)."""
        known = await self.store.get_conversation(conversation)
        return known is not None and not known.active

    def _ended_unsent(self, delivery: Delivery, reason: UnsentReason, detail: str) -> None:
        """Log and count a delivery that ended unsent, its state in the store recorded already."""
        log.info("delivery %s to %s ended unsent (%s): %s", delivery.id, delivery.conversation, reason, detail)
        if self.observer is not None:
            self.observer.unsent(delivery.conversation.platform, reason)

    async def _dead_letter(self, delivery: Delivery, reason: str, *, credentials: bool = False) -> None:
        platform = delivery.conversation.platform
        if credentials and _is_alert(delivery):
            # (the one line that tells of it: the alert saying so is what could not be posted)
            log.error(
                "%s refuses Handoff's credentials (%s): the ops alert to %s could not be posted either, and nothing "
                "reaches %s until %s",
                PLATFORM_NAMES[platform],
                reason,
                delivery.conversation,
                PLATFORM_NAMES[platform],
                CREDENTIALS_FIX[platform],
            )
        else:
            log.error("delivery %s to %s given up: %s", delivery.id, delivery.conversation, reason)
        if self.observer is not None:
            self.observer.not_delivered(platform, "dead")
        await self.store.dead_letter_delivery(delivery.id, self.worker_id, reason)
        alert_targets = [c for c in self.ops_channel if c != delivery.conversation]
        if not alert_targets or _is_alert(delivery):
            return
        if credentials:
            await self._alert_credentials(delivery, reason, alert_targets)
            return
        # one alert card a day per conversation, updated with the count and the latest reason: a channel in
        # trouble fails every message sent there, each in its own words (a timeout, a refused connection, an
        # internal error), and one card says so better than a card for each message or each wording
        now, today, title, name = await self._given_up(delivery)
        given_up = max(1, await self.store.count_dead_letters(delivery.conversation, today))
        alert = Card(
            title=f"Messages to {name or delivery.conversation} could not be delivered",
            status=Status.WARNING,
            summary=(
                f"Handoff gave up on {given_up} message{'' if given_up == 1 else 's'} there today; the latest: {reason}"
            ),
            facts=(
                Fact("Conversation", f"{name} ({delivery.conversation})" if name else str(delivery.conversation)),
                Fact("Latest", f"{title} ({delivery.attempts} attempt{'' if delivery.attempts == 1 else 's'})"),
            ),
            context="Handoff",
        )
        await self._enqueue_alert(f"{delivery.conversation}:{today:%Y-%m-%d}", given_up, alert, alert_targets, now)

    async def _alert_credentials(self, delivery: Delivery, reason: str, targets: list[ConversationAddress]) -> None:
        """Tell the ops channel that the platform refuses Handoff's credentials: one card a day per platform (not
        per conversation: every one there fails alike), updated with the latest message given up."""
        platform = delivery.conversation.platform
        now, today, title, name = await self._given_up(delivery)
        alert = Card(
            title=f"{PLATFORM_NAMES[platform]} refuses Handoff's credentials",
            status=Status.WARNING,
            summary=(
                f"{reason}. Nothing reaches {PLATFORM_NAMES[platform]} until {CREDENTIALS_FIX[platform]}; "
                "Handoff gives up each message after trying for about 30 minutes."
            ),
            facts=(Fact("Latest", f"{title}, to {name or delivery.conversation}"),),
            context="Handoff",
        )
        # (a later message given up today updates the card: a rank above the one shown)
        rank = 1 + int((now - today).total_seconds())
        await self._enqueue_alert(f"{platform}:credentials:{today:%Y-%m-%d}", rank, alert, targets, now)

    async def _given_up(self, delivery: Delivery) -> tuple[datetime, datetime, str, str]:
        """For an alert about ``delivery``, given up: now, the start of today, the title of its card ("?" for
        another message) and what people call its conversation ("" if Handoff knows no name)."""
        now = self.clock.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        title = Card.from_json(delivery.payload["card"]).title if "card" in delivery.payload else "?"
        return now, today, title, await self._name_of(delivery.conversation)

    async def _enqueue_alert(
        self, key: str, rank: int, alert: Card, targets: Sequence[ConversationAddress], now: datetime
    ) -> None:
        """Queue ``alert`` for the ops channel's ``targets`` as the card ``key`` (after the alert prefix): a later
        alert of the same key and a higher ``rank`` updates it."""
        payload = {"op": "card", "rank": rank, "card": alert.to_json()}
        card_key = bounded_key(f"{ALERT_PREFIX}{key}")
        await self.store.enqueue([NewDelivery(target, card_key, payload) for target in targets], now)

    async def _name_of(self, conversation: ConversationAddress) -> str:
        """What people call ``conversation`` (``#app-releases`` in Slack), or "" when Handoff knows no name."""
        name = self.conversation_names.get(conversation, "")
        if not name:
            try:
                known = await self.store.get_conversation(conversation)
            except Exception as error:  # the alert goes out with the id alone
                log.warning("could not read the name of %s (%s)", conversation, type(error).__name__)
                known = None
            name = known.name if known is not None else ""
        if name and conversation.platform == "slack" and not name.startswith("#"):
            return f"#{name}"
        return name
