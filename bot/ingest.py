"""The core's ingest: a parsed event becomes a stored event, a card state and its deliveries, at once.

``Ingest.accept`` is what the webhook routes call. It answers only once the event is durably stored:
its sender's event id (so that a redelivery stores nothing), its living card's new state
(compare-and-set, retried when a concurrent writer changed the card first) and a delivery for every
conversation that shows or should show the card.

Group commit: events that arrive while a write is under way wait for it to finish, then are written
together in one transaction (``Store.record_events``), each caller answered with its own outcome.
An idle Handoff writes a lone event at once; a busy one writes fewer, larger transactions. Nothing
here is needed for correctness: the dedupe key and the compare-and-set in the store are.

Every event waits for the one writer, so the writer waits on the store no longer than the store waits for
its write (``Store.write_timeout``): a read it makes before writing that is not answered by then fails the
batch as :class:`StoreNotAnswering`, as a write would, and the next batch tries afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.cards import Card
from bot.clock import Clock
from bot.events import ApprovalEvent, ApprovalPending, DomainEvent
from bot.jsonable import tagged_json
from bot.living import merge, render, repeat_reply, replies_told, stages_told_failed
from bot.ports import EventRecord, StaleWrite, Store, StoreNotAnswering
from bot.records import CardState, ConversationAddress, NewDelivery, ReceivedEvent, RepeatMark
from bot.routing import (
    Subscription,
    TargetOptions,
    depends_on_actor,
    depends_on_run_facts,
    muted_there,
    route,
    route_with_options,
    stored_subscription,
    turned_away,
)
from bot.trouble import one_line

log = logging.getLogger("handoff.ingest")
T = TypeVar("T")

# Updates to a card already shown wait this long, so that a burst of events becomes one update.
COALESCE = timedelta(seconds=1)
SUBSCRIPTION_CACHE_SECONDS = 2.0
# The most events written in one transaction.
MAX_BATCH = 256
# The most extra turns of the event loop a batch waits for events still arriving.
JOIN_TURNS = 4
# Card states kept in memory, so that a busy card is not read again for every batch.
CARD_CACHE_SIZE = 4096
# Attempts at a batch whose cards keep changing under it (other replicas writing the same cards).
MAX_ATTEMPTS = 20
# How long closing waits for the events already handed to the writer before it cuts the writer off.
CLOSE_GRACE_SECONDS = 5.0


class IngestFailed(RuntimeError):
    """The event could not be stored; the sender should retry. The cause is chained."""


def _address_json(address: ConversationAddress) -> list[str]:
    return [address.platform, address.conversation_id]


def _address(value: Sequence[str]) -> ConversationAddress:
    platform, conversation_id = value
    return ConversationAddress("teams" if platform == "teams" else "slack", conversation_id)


Routed = dict[ConversationAddress, TargetOptions]
"""The conversations an event goes to, each with how it wants its cards."""
Marks = dict[tuple[ConversationAddress, str], RepeatMark]


@dataclass
class _Waiting:
    """One ``accept`` call waiting for its batch to be written."""

    event: DomainEvent
    also_to: tuple[ConversationAddress, ...]
    answer: asyncio.Future[bool] = field(repr=False)
    told_by: str | None = None


@dataclass(frozen=True)
class _ReplyIfFirstPostQueued:
    """A thread reply planned under a card its conversation was to be shown before the event (``planned``:
    broadcast, calling on people), and what goes instead where that card's first post is still queued
    (``instead``): the outbox posts the newest version of a queued card, which shows this very event and its
    mentions already, so the reply stays quietly in the thread. ``instead`` carries the version of the card
    this event made (``version``) and the planned reply (``planned``), which the outbox sends after all where
    the first post showed an older version (it was under way, see :meth:`OutboxWorker._send`)."""

    conversation: ConversationAddress
    planned: NewDelivery
    instead: NewDelivery


class Ingest:
    """Routes events to conversations and keeps their living cards, durably.

    Args:
        store: the shared store.
        configured: subscriptions from the configuration file.
        clock: time for receipts, mutes and coalescing.
        on_enqueued: called after deliveries were stored (wakes this process's outbox worker).
        max_batch: the most events written in one transaction.

    ``observers`` see every event before it is recorded, redeliveries included (the gatekeeper opens
    gates there), but for a redelivery a route answers after :meth:`stored_before`; they must be idempotent,
    because a crash before recording brings the event back. An observer may return the event with what it
    adds (the gatekeeper: its gate policy's terms for the card), which is recorded instead.

    ``on_unrouted_approval`` is told of a pending approval whose card, as first recorded, was sent to no
    conversation (no subscription routes it, nothing else asked for it): the gatekeeper says that its gate can
    be decided in Azure DevOps only. It is told once per approval (a redelivery records nothing) and never
    for run events, from what the ingest planned anyway: it costs no query.
    """

    def __init__(
        self,
        store: Store,
        configured: Sequence[Subscription],
        clock: Clock,
        on_enqueued: Callable[[], None] | None = None,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.store = store
        self._configured = list(configured)
        self.clock = clock
        self.on_enqueued = on_enqueued
        self.max_batch = max(1, max_batch)
        self._stored_at: float | None = None
        # how many times the subscriptions were forgotten: a read that started before is not kept
        self._generation = 0
        # what the subscriptions came to when last read: the reachable ones, and whether any filters on actors
        self._reachable: list[Subscription] = []
        self._actor_filtered = False
        self._run_filtered = False
        # the conversations Handoff can no longer post to, as last read with the subscriptions
        self._inactive: frozenset[ConversationAddress] = frozenset()
        self._lock = asyncio.Lock()
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        # Card states as this process last read or wrote them: a guess the store's compare-and-set checks.
        self._cards: OrderedDict[str, CardState] = OrderedDict()
        self.card_cache_size = CARD_CACHE_SIZE
        self.observers: list[Callable[[DomainEvent], Awaitable[DomainEvent | None]]] = []
        self.on_unrouted_approval: Callable[[ApprovalPending], Awaitable[None]] | None = None

    @property
    def configured(self) -> list[Subscription]:
        """The subscriptions from the configuration file."""
        return self._configured

    @configured.setter
    def configured(self, subscriptions: Sequence[Subscription]) -> None:
        self._configured = list(subscriptions)
        self.forget_subscriptions()

    def forget_subscriptions(self) -> None:
        """Chat subscriptions changed in this process: read them again on the next event."""
        self._stored_at = None
        self._generation += 1

    async def _subscriptions(self) -> list[Subscription]:
        """Every subscription, without the conversations Handoff can no longer post to (a channel it was
        removed from: what would be sent there could only fail)."""
        # A short cache: other replicas' chat subscriptions, and conversations Handoff was removed from or
        # brought back to, show up within a couple of seconds.
        now = self.clock.monotonic()
        if self._stored_at is None or now - self._stored_at > SUBSCRIPTION_CACHE_SECONDS:
            async with self._lock:
                if self._stored_at is None or now - self._stored_at > SUBSCRIPTION_CACHE_SECONDS:
                    generation = self._generation
                    stored = [stored_subscription(s) for s in await self.store.list_subscriptions()]
                    self._inactive = await self.store.inactive_conversations()
                    self._reachable = _reachable([*self._configured, *stored], self._inactive)
                    self._actor_filtered = any(s.filters.filters_actors for s in self._reachable)
                    self._run_filtered = any(s.filters.filters_run_facts for s in self._reachable)
                    # kept only if nothing changed while it was read (else the next event reads again)
                    self._stored_at = now if generation == self._generation else None
        return self._reachable

    async def depends_on_actor(self, event: DomainEvent) -> bool:
        """Whether who did ``event`` may decide where it goes (some subscription would route it but for its
        actor filters): a route whose hook does not say may then ask the service."""
        subscriptions = await self._subscriptions()
        return self._actor_filtered and depends_on_actor(event, subscriptions, self.clock.now())

    async def depends_on_run_facts(self, event: DomainEvent) -> bool:
        """Whether the branch of the event's run or why it started may decide where it goes (some subscription
        would route it but for its branch or reasons filter): a route whose hook does not say may then ask the
        service."""
        subscriptions = await self._subscriptions()
        return self._run_filtered and depends_on_run_facts(event, subscriptions, self.clock.now())

    async def accept(
        self, event: DomainEvent, also_to: Sequence[ConversationAddress] = (), *, told_by: str | None = None
    ) -> bool:
        """Store the event, its card's new state and the deliveries; False for a redelivery.

        ``also_to`` adds conversations the card must reach whatever the subscriptions say (the
        conversation where a command started the run the event is about). ``told_by`` is the card of a run
        whose outcome the event's thread replies report (a model handoff's integration run): in a
        conversation that shows that card, the run's own card tells its failure there, so a reply of these
        that alerts is not sent there (one notice per conversation). Raises :class:`IngestFailed` when the
        event could not be stored.
        """
        for observer in self.observers:
            event = await observer(event) or event
        if len(parts := event.per_card()) > 1:
            return any(await self._enqueue(parts, tuple(also_to), told_by))
        # the hot path (every webhook delivery): one event, one future
        loop = asyncio.get_running_loop()
        waiting = _Waiting(event, tuple(also_to), loop.create_future(), told_by)
        self._waiting.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_waiting(), name="ingest-group-commit")
        return await waiting.answer

    async def accept_all(self, events: Sequence[DomainEvent]) -> list[bool]:
        """Store the events of one delivery, in their order, in as few group commits as they fit; for each,
        False when it is a redelivery. Raises :class:`IngestFailed` when one of them could not be stored (the
        others may have been: a redelivery of the whole is then told apart by its dedupe keys)."""
        observed = []
        for event in events:
            for observer in self.observers:
                event = await observer(event) or event
            observed.append(event.per_card())
        stored = iter(await self._enqueue([part for parts in observed for part in parts], (), None))
        # an event is new when any of its parts is (a redelivery's parts were all stored before)
        return [any([next(stored) for _ in parts]) for parts in observed]

    async def stored_before(self, events: Sequence[DomainEvent]) -> list[bool]:
        """For each event, whether it was stored already (every one of its parts): one read of the dedupe keys,
        for a route to answer a redelivery before the lookups a new event needs. Such a redelivery is answered
        without the observers, which saw the event when it was stored."""
        parts = [[part.dedupe_key for part in event.per_card()] for event in events]
        keys = list(dict.fromkeys(key for event_keys in parts for key in event_keys))
        known = await self.store.known_events(keys)
        return [all(key in known for key in event_keys) for event_keys in parts]

    async def _enqueue(
        self, events: Sequence[DomainEvent], also_to: tuple[ConversationAddress, ...], told_by: str | None
    ) -> list[bool]:
        """Have the writer store ``events``, in their order, in as few group commits as they fit; for each,
        False when it is a redelivery."""
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(event, also_to, loop.create_future(), told_by) for event in events]
        self._waiting.extend(waiting)
        if waiting and (self._writer is None or self._writer.done()):
            self._writer = loop.create_task(self._write_waiting(), name="ingest-group-commit")
        outcomes = await asyncio.gather(*(w.answer for w in waiting), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [bool(outcome) for outcome in outcomes]

    async def close(self) -> None:
        """Stop writing: the events already handed to the writer are stored (their callers may be gone: background
        work cancelled at shutdown), for up to :data:`CLOSE_GRACE_SECONDS`, then the writer is cut off. Close it
        before the store, so that no read or write of the ingest outlives the store's connections."""
        deadline = asyncio.get_running_loop().time() + CLOSE_GRACE_SECONDS
        while (writer := self._writer) is not None and not writer.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or not (await asyncio.wait({writer}, timeout=left))[0]:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self._writer = None

    async def _write_waiting(self) -> None:
        """Write batches until nobody waits; events arriving meanwhile make the next batch."""
        while self._waiting:
            await self._gather_arrivals()
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            try:
                outcomes = await self._write_isolated(batch)
            except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
                for waiting in [*batch, *self._waiting]:
                    _answer(waiting, exc)
                self._waiting = []
                raise
            for waiting, outcome in zip(batch, outcomes, strict=True):
                _answer(waiting, outcome)

    async def _gather_arrivals(self) -> None:
        """Let handlers that are already running join this batch: one turn of the loop, and more while
        each turn brings more events (a busy server's requests arrive over a few turns). An idle
        server's lone event waits one turn."""
        arrived = len(self._waiting)
        await asyncio.sleep(0)
        for _ in range(JOIN_TURNS):
            if len(self._waiting) == arrived or len(self._waiting) >= self.max_batch:
                return
            arrived = len(self._waiting)
            await asyncio.sleep(0)

    async def _write_isolated(self, batch: list[_Waiting]) -> list[bool | BaseException]:
        """Write the batch; if it fails, write its events one by one so one bad event fails alone. A store that
        does not answer fails them all at once: one at a time, each would wait as long again."""
        try:
            return await self._write_with_retries(batch)
        except StoreNotAnswering as exc:
            return [exc] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            log.warning("a batch of %d events failed (%s); writing them one at a time", len(batch), one_line(exc))
        outcomes: list[bool | BaseException] = []
        for place, waiting in enumerate(batch):
            try:
                outcomes += await self._write_with_retries([waiting])
            except StoreNotAnswering as exc:
                return [*outcomes, *[exc] * (len(batch) - place)]
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _write_with_retries(self, batch: list[_Waiting]) -> list[bool | BaseException]:
        checked = False
        for _ in range(MAX_ATTEMPTS):
            try:
                return await self._write(batch, checked)
            except StaleWrite:
                # someone else changed a card, or recorded one of these events meanwhile: read again
                for waiting in batch:
                    self._cards.pop(waiting.event.grouping_key, None)
                checked = True
                await asyncio.sleep(0)
        raise RuntimeError(f"cards kept changing under a batch of {len(batch)} events")

    async def _write(self, batch: list[_Waiting], checked: bool) -> list[bool | BaseException]:
        """Plan every event of the batch on its card's state, then store them all in one transaction.

        The first attempt is optimistic: it takes the card states this process last saw, and does not ask
        which events were recorded before. The store catches both: the compare-and-set a card that
        changed meanwhile, the dedupe key a redelivery (and refuses whatever was planned on top of a
        redelivery that would have changed its card). The retry (``checked``) reads both first.
        """
        now = self.clock.now()
        subscriptions = await self._answered(self._subscriptions())
        dedupe_keys = [w.event.dedupe_key for w in batch]
        known = await self._answered(self.store.known_events(dedupe_keys)) if checked else set()
        wanted = list(dict.fromkeys(w.event.grouping_key for w in batch if w.event.dedupe_key not in known))
        remembered = {} if checked else self._cards
        cards: dict[str, CardState | None] = {k: remembered[k] for k in wanted if k in remembered}
        missing = [k for k in wanted if k not in cards]
        # as stored: the cards of the runs these events report on (where they are shown), and of the runs
        # approvals wait in (what Handoff started them for)
        runs = {w.told_by for w in batch if w.told_by is not None} | {
            e.run.run_key for w in batch if isinstance(e := w.event, ApprovalEvent) and e.run is not None
        }
        if runs:
            missing += sorted(runs - cards.keys() - set(missing))
        if missing:
            read = await self._answered(self.store.get_card_states(missing))
            self._remember(read.values())
            cards.update(read)
        routes, marks = await self._routes_with_options(batch, subscriptions, now, cards)
        outcomes: list[bool | BaseException] = [False] * len(batch)
        planned: list[tuple[int, EventRecord]] = []
        replies_to_check: list[_ReplyIfFirstPostQueued] = []
        seen = set(known)
        for index, waiting in enumerate(batch):
            key = waiting.event.dedupe_key
            if key in seen:
                continue  # a redelivery, maybe of an event earlier in this very batch
            seen.add(key)
            try:
                routed = routes[index] if routes is not None else None
                record = self._plan(waiting, cards, subscriptions, now, routed, marks, replies_to_check)
                planned.append((index, record))
            except Exception as exc:  # this event cannot be stored; the others can
                log.exception("event %s could not be planned", key)
                outcomes[index] = exc
        if not planned:
            return outcomes
        if replies_to_check:
            planned = await self._quiet_where_first_post_queued(planned, replies_to_check)
        recorded = await self.store.record_events([record for _, record in planned])
        written: dict[str, CardState] = {}
        for (index, record), stored in zip(planned, recorded, strict=True):
            outcomes[index] = stored
            if record.card_state is not None:
                if stored:
                    written[record.card_state.grouping_key] = record.card_state
                else:
                    self._cards.pop(record.card_state.grouping_key, None)
        self._remember(written.values())
        if self.on_enqueued and any(r.deliveries for (_, r), s in zip(planned, recorded, strict=True) if s):
            self.on_enqueued()
        if self.on_unrouted_approval is not None:
            for (index, record), stored in zip(planned, recorded, strict=True):
                event = batch[index].event
                if stored and isinstance(event, ApprovalPending) and _first_shown_nowhere(record):
                    await self._tell_unrouted(self.on_unrouted_approval, event)
        return outcomes

    async def _answered(self, waiting_on: Awaitable[T]) -> T:
        """What the writer waits for from the store (a read before it writes, a notice it stores), given up after
        the store's write timeout as :class:`StoreNotAnswering`. (On PostgreSQL a read cut off so is cancelled,
        and the pool drops the connection it was on instead of lending it again.)"""
        seconds = self.store.write_timeout
        try:
            async with asyncio.timeout(seconds):
                return await waiting_on
        except TimeoutError as exc:
            raise StoreNotAnswering(f"the store did not answer a read within {seconds:g} s") from exc

    async def _tell_unrouted(self, tell: Callable[[ApprovalPending], Awaitable[None]], event: ApprovalPending) -> None:
        try:
            # (it stores a notice: bounded as the writer's reads are)
            await self._answered(tell(event))
        except Exception:  # the event is stored: what tells of it must not fail it
            log.exception("could not tell that approval %s reaches no conversation", event.grouping_key)

    async def _routes_with_options(
        self,
        batch: list[_Waiting],
        subscriptions: Sequence[Subscription],
        now: datetime,
        cards: dict[str, CardState | None],
    ) -> tuple[list[Routed] | None, Marks]:
        """Where each event goes with how each conversation wants its cards, and the stored marks the repeat
        limits are checked against (only for conversations not shown or folded into the event's card yet);
        (None, {}) when no subscription has a repeat limit, compact cards or broadcasts or mentions turned off
        (the planner then routes each event plainly)."""
        if not any(s.filters.shapes_cards for s in subscriptions):
            return None, {}
        # (an approval goes as the model version its run is for, as its card names it)
        routes = [route_with_options(_with_its_runs_model(w.event, cards), subscriptions, now) for w in batch]
        wanted = {
            (target, key)
            for waiting, routed in zip(batch, routes, strict=True)
            if (key := waiting.event.repeat_key) is not None
            for target, options in routed.items()
            if options.repeat_limit is not None and target not in _reached(cards.get(waiting.event.grouping_key))
        }
        marks = await self._answered(self.store.get_repeat_marks(sorted(wanted, key=str))) if wanted else {}
        return routes, dict(marks)

    async def _quiet_where_first_post_queued(
        self, planned: list[tuple[int, EventRecord]], replies: list[_ReplyIfFirstPostQueued]
    ) -> list[tuple[int, EventRecord]]:
        """``planned`` with each reply of ``replies`` replaced by its quiet form where its card has not been
        posted in its conversation yet (one read of the posted cards per card, only for batches with such
        replies: a failure under a card shown while its run ran)."""
        keys = sorted({reply.planned.grouping_key for reply in replies})
        posted = {key: {card.conversation for card in await self._answered(self.store.cards_for(key))} for key in keys}
        # (a first post already under way read its newest version before this commit: it shows an older
        # version, and the failure comes as an update, which tells nobody; the card then records that older
        # version as the one first posted, and the outbox sends the planned reply instead of the quiet one)
        instead = {
            id(reply.planned): reply.instead
            for reply in replies
            if reply.conversation not in posted[reply.planned.grouping_key]
        }
        if not instead:
            return planned
        return [
            (index, replace(record, deliveries=[instead.get(id(d), d) for d in record.deliveries]))
            for index, record in planned
        ]

    def _remember(self, states: Iterable[CardState]) -> None:
        for state in states:
            self._cards[state.grouping_key] = state
            self._cards.move_to_end(state.grouping_key)
        while len(self._cards) > self.card_cache_size:
            self._cards.popitem(last=False)

    def _plan(
        self,
        waiting: _Waiting,
        cards: dict[str, CardState | None],
        subscriptions: Sequence[Subscription],
        now: datetime,
        routed: Routed | None = None,
        marks: Marks | None = None,
        replies_to_check: list[_ReplyIfFirstPostQueued] | None = None,
    ) -> EventRecord:
        """The record for one event, on top of ``cards`` and ``marks`` (which it updates for the events after
        it). ``routed`` is where the event goes with how each conversation wants its cards, when some
        subscription says (a repeat limit, compact cards, no broadcast or mentions). The replies that alert or
        call on people under a card shown before go to ``replies_to_check``, with their quiet form for a
        conversation whose first post of the card is still queued."""
        event = _with_its_runs_model(waiting.event, cards)
        receipt = ReceivedEvent(
            dedupe_key=event.dedupe_key,
            source=event.source,
            kind=event.kind,
            received_at=now,
            payload=tagged_json(event),
        )
        current = cards.get(event.grouping_key)
        merged = merge(current.state if current else None, event)
        showing = {_address(a) for a in (current.state.get("conversations", []) if current else [])}
        # per folded conversation: the card this one is folded under, and the repeat limit that folded it
        folded_under: dict[ConversationAddress, tuple[str, float]] = {
            _address(entry[:2]): (str(entry[2]), float(entry[3]))
            for entry in (current.state.get("folded_under", []) if current else [])
        }
        # a card folded under another as a repeat stays in that card's thread, except where a command asks
        folded = {_address(a) for a in (current.state.get("folded", []) if current else [])} - set(waiting.also_to)
        if routed is None:
            targets = route(event, subscriptions, now) | set(waiting.also_to)
        else:
            targets = set(routed) | set(waiting.also_to)
        targets -= folded
        new_targets = targets - showing
        # a card shown before who did it, or the stage its run failed in, was known, where the subscriptions leave
        # that person or stage out: it is kept current there, but calls on nobody and gets no replies
        # (and where every subscription is muted: kept current, silently)
        kept_quiet: set[ConversationAddress] = set()
        if showing - targets:
            failed_in = stages_told_failed(merged.state)
            kept_quiet = turned_away(event, showing - targets, subscriptions, now, failed_in=failed_in)
            kept_quiet |= muted_there(event, showing - targets, subscriptions, now)
        repeats: list[tuple[ConversationAddress, RepeatMark, timedelta]] = []
        new_marks: list[RepeatMark] = []
        if routed is not None and marks is not None and new_targets and event.repeat_key is not None:
            # the conversation a command started the run from always gets its card
            limited = new_targets - set(waiting.also_to)
            repeats, new_marks = _limit_repeats(event, event.repeat_key, limited, routed, marks, now)
            targets -= {target for target, _, _ in repeats}
            new_targets -= {target for target, _, _ in repeats}
        if not merged.changed and not new_targets and not repeats:
            return EventRecord(receipt, grouping_key=event.grouping_key)
        version = (current.version if current else 0) + 1
        conversations = sorted(showing | targets, key=str)
        state = {**merged.state, "conversations": [_address_json(c) for c in conversations]}
        now_folded = folded | {target for target, _, _ in repeats}
        if folded or repeats or "folded" in merged.state:
            state["folded"] = [_address_json(c) for c in sorted(now_folded, key=str)]
        if repeats:
            folded_under |= {target: (mark.grouping_key, limit.total_seconds()) for target, mark, limit in repeats}
        if folded_under:
            state["folded_under"] = [
                [*_address_json(c), key, seconds] for c, (key, seconds) in sorted(folded_under.items(), key=str)
            ]
        # a conversation keeps the format its card was first shown in
        compact = {_address(a) for a in (current.state.get("compact", []) if current else [])}
        if routed is not None:
            compact |= {t for t in new_targets if (options := routed.get(t)) is not None and options.compact}
        if compact or "compact" in merged.state:
            state["compact"] = [_address_json(c) for c in sorted(compact & set(conversations), key=str)]
        quiet = _quiet(current, targets | {target for target, _, _ in repeats}, routed) | kept_quiet
        if quiet or "quiet" in merged.state:
            state["quiet"] = [_address_json(c) for c in sorted(quiet & (set(conversations) | now_folded), key=str)]
        rendered = render(merged.state)
        card = rendered.to_json()
        compact_card = rendered.compacted().to_json() if compact else card

        def card_for(conversation: ConversationAddress) -> dict[str, Any]:
            if rendered.mentions and conversation in quiet:
                # compacted first: a compact card has no facts to name the people it calls on
                return (rendered.compacted() if conversation in compact else rendered).naming_only().to_json()
            return compact_card if conversation in compact else card

        # a conversation Handoff can no longer post to keeps its place on the card, so that the card's next
        # event reaches it once it is back, but is sent nothing meanwhile (every post there would be refused)
        inactive = self._inactive
        reachable = [c for c in conversations if c not in inactive] if inactive else conversations
        deliveries = [
            NewDelivery(
                conversation=conversation,
                grouping_key=event.grouping_key,
                payload={"op": "card", "rank": version, "card": card_for(conversation)},
                # the first showing goes at once; later updates wait a moment to coalesce
                not_before=now + COALESCE if conversation in showing else None,
            )
            for conversation in reachable
            if merged.changed or conversation in new_targets
        ]
        # a conversation this event first shows the card in gets in its thread (not broadcast: the card is new
        # there) what the thread was told before it (a failed stage whose hook came before the run's first, when
        # the card was shown nowhere): once, as a conversation joins the card's stored conversations once
        earlier = replies_told(current.state, merged.state) if current is not None and new_targets else []
        first_shown = [c for c in reachable if c in new_targets]
        replies = [(reply, first_shown) for reply in earlier if reply not in merged.replies]
        replies += [(reply, reachable) for reply in merged.replies]
        told_there = _told_there(cards, waiting.told_by) if replies else frozenset()
        for reply, where in replies:
            for conversation in where:
                if conversation in kept_quiet:
                    continue
                if reply.status.alerts and conversation in told_there:
                    continue  # the card of the run the reply reports on is shown there: its own reply tells it
                # an alert under a card the conversation was shown before (it may have scrolled away) shows
                # there too; under a card shown with this very event, the card says it already
                options = routed.get(conversation) if routed is not None else None
                broadcast = reply.status.alerts and conversation in showing and (options is None or options.broadcast)
                said = reply.naming_only() if conversation in quiet else reply
                # the card, shown with this very event, calls on them already: one ping, not two
                unmentioned = replace(said, mentions=tuple(m for m in said.mentions if m not in rendered.mentions))
                if conversation not in showing:
                    said = unmentioned
                delivery = NewDelivery(conversation, event.grouping_key, _reply_payload(said, broadcast))
                deliveries.append(delivery)
                if replies_to_check is not None and (broadcast or unmentioned.mentions != said.mentions):
                    # shown before, or only queued before? (the outbox then posts this very version, unless its
                    # first post is under way with an older one: then it sends the planned reply after all)
                    quietly = {**_reply_payload(unmentioned, False), "version": version, "planned": delivery.payload}
                    instead = NewDelivery(conversation, event.grouping_key, quietly)
                    replies_to_check.append(_ReplyIfFirstPostQueued(conversation, delivery, instead))
        # a repeat is told in the thread it is folded into once it is not going any more (a run folded when it
        # started says nothing until it ends): when it is folded, and whenever it ends (again) after
        told: list[tuple[ConversationAddress, str, timedelta]] = []
        if not rendered.status.going:
            told = [(target, mark.grouping_key, limit) for target, mark, limit in repeats]
            if folded_under and merged.changed and current is not None and _going(current):
                already = {target for target, _, _ in told}
                told += [
                    (target, key, timedelta(seconds=seconds))
                    for target, (key, seconds) in sorted(folded_under.items(), key=str)
                    if target in folded and target not in already
                ]
        for target, under, limit in told:
            if target in inactive:
                continue
            repeated = repeat_reply(rendered, limit)
            said = repeated.naming_only() if target in quiet else repeated
            deliveries.append(NewDelivery(target, under, {"op": "reply", "card": said.to_json()}))
        new_state = CardState(event.grouping_key, version, state)
        cards[event.grouping_key] = new_state
        return EventRecord(receipt, deliveries, new_state, repeat_marks=new_marks)


def _with_its_runs_model(event: DomainEvent, cards: dict[str, CardState | None]) -> DomainEvent:
    """An approval in a run that Handoff started for a model version names that version, as its run's card
    does (Azure DevOps' events do not carry a run's parameters)."""
    if not isinstance(event, ApprovalEvent) or event.run is None or event.for_model:
        return event
    run = cards.get(event.run.run_key)
    model = run.state.get("for_model") if run is not None else None
    return replace(event, for_model=str(model)) if model else event


def _first_shown_nowhere(record: EventRecord) -> bool:
    """Whether ``record`` makes its event's card (a new one) and sends it to no conversation."""
    card = record.card_state
    return card is not None and card.version == 1 and not any(d.payload.get("op") == "card" for d in record.deliveries)


def _reached(card: CardState | None) -> set[ConversationAddress]:
    """The conversations that show ``card`` or that it is folded into."""
    if card is None:
        return set()
    return {_address(a) for key in ("conversations", "folded") for a in card.state.get(key, [])}


def _going(card: CardState) -> bool:
    """Whether the card, as stored, shows something still on its way (a run still running)."""
    return render(card.state).status.going


def _told_there(cards: dict[str, CardState | None], told_by: str | None) -> frozenset[ConversationAddress]:
    """The conversations that show the card ``told_by`` names (none without one)."""
    told = cards.get(told_by) if told_by is not None else None
    return frozenset(_address(a) for a in told.state.get("conversations", [])) if told is not None else frozenset()


def _quiet(
    current: CardState | None, targets: set[ConversationAddress], routed: Routed | None
) -> set[ConversationAddress]:
    """The conversations where the card names the people it calls on without pinging them: where every
    subscription routing the event there turned mentions off. A conversation this event is not routed to
    keeps what its card state says (the gatekeeper's reminders read it too)."""
    if routed is None:  # no subscription turned anything off
        return set()
    quiet = {_address(a) for a in (current.state.get("quiet", []) if current else [])}
    for target in targets:
        if (options := routed.get(target)) is not None:
            if options.mentions:
                quiet.discard(target)
            else:
                quiet.add(target)
    return quiet


def _limit_repeats(
    event: DomainEvent,
    repeat_key: str,
    new_targets: set[ConversationAddress],
    routed: Routed,
    marks: Marks,
    now: datetime,
) -> tuple[list[tuple[ConversationAddress, RepeatMark, timedelta]], list[RepeatMark]]:
    """Of the conversations about to be shown the event's card for the first time, those where a repeat limit
    folds it under the card last shown there for its repeat key (with that card's mark and the limit), and
    the new marks of the others (which ``marks`` takes, for the events after this one)."""
    repeats: list[tuple[ConversationAddress, RepeatMark, timedelta]] = []
    new_marks: list[RepeatMark] = []
    for target in sorted(new_targets, key=str):
        options = routed.get(target)
        limit = options.repeat_limit if options is not None else None
        if limit is None:
            continue
        mark = marks.get((target, repeat_key))
        if mark is not None and mark.grouping_key != event.grouping_key and now - mark.shown_at < limit:
            repeats.append((target, mark, limit))
        else:
            new_mark = RepeatMark(target, repeat_key, event.grouping_key, now, replaces=mark)
            marks[(target, repeat_key)] = new_mark
            new_marks.append(new_mark)
    return repeats, new_marks


def _reply_payload(reply: Card, broadcast: bool) -> dict[str, Any]:
    """A thread reply's delivery: ``broadcast`` also shows it in the conversation."""
    payload: dict[str, Any] = {"op": "reply", "card": reply.to_json()}
    if broadcast:
        payload["broadcast"] = True
    return payload


def _reachable(subscriptions: list[Subscription], inactive: frozenset[ConversationAddress]) -> list[Subscription]:
    """``subscriptions`` without the conversations Handoff can no longer post to (and without those left with
    none)."""
    if not inactive:
        return subscriptions
    reachable = (replace(s, targets=tuple(t for t in s.targets if t not in inactive)) for s in subscriptions)
    return [s for s in reachable if s.targets]


def _answer(waiting: _Waiting, outcome: bool | BaseException) -> None:
    if waiting.answer.done():  # the caller went away (cancelled); the event may still be stored
        return
    if isinstance(outcome, bool):
        waiting.answer.set_result(outcome)
    elif isinstance(outcome, asyncio.CancelledError):
        waiting.answer.cancel()
    else:
        failure = IngestFailed(f"event {waiting.event.dedupe_key} was not stored: {outcome}")
        failure.__cause__ = outcome
        waiting.answer.set_exception(failure)
