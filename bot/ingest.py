"""The core's ingest: a parsed event becomes a stored event, a card state and its deliveries, at once.

``Ingest.accept`` is what the webhook routes call. In one transaction it remembers the sender's
event id (so a redelivery stores nothing), moves the event's living card to its new state
(compare-and-set, retried on a conflict with a concurrent event for the same card) and queues a
delivery for every conversation that shows or should show the card.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.events import DomainEvent
from bot.living import merge, render
from bot.ports import StaleWrite, Store
from bot.records import CardState, ConversationAddress, NewDelivery, ReceivedEvent
from bot.routing import Subscription, route, stored_subscription

log = logging.getLogger("handoff.ingest")

# Updates to a card already shown wait this long, so that a burst of events becomes one update.
COALESCE = timedelta(seconds=1)
SUBSCRIPTION_CACHE_SECONDS = 2.0


def _address_json(address: ConversationAddress) -> list[str]:
    return [address.platform, address.conversation_id]


def _address(value: Sequence[str]) -> ConversationAddress:
    platform, conversation_id = value
    return ConversationAddress("teams" if platform == "teams" else "slack", conversation_id)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class Ingest:
    """Routes events to conversations and keeps their living cards, durably.

    Args:
        store: the shared store.
        configured: subscriptions from the configuration file.
        clock: time for receipts, mutes and coalescing.
        on_enqueued: called after deliveries were stored (wakes this process's outbox worker).

    ``observers`` see every new event before it is recorded (the gatekeeper opens gates there); they
    must be idempotent, because a crash before recording brings the event back.
    """

    def __init__(
        self,
        store: Store,
        configured: Sequence[Subscription],
        clock: Clock,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.configured = list(configured)
        self.clock = clock
        self.on_enqueued = on_enqueued
        self._stored: list[Subscription] = []
        self._stored_at: float | None = None
        self._lock = asyncio.Lock()
        self.observers: list[Callable[[DomainEvent], Awaitable[None]]] = []

    def forget_subscriptions(self) -> None:
        """Chat subscriptions changed in this process: read them again on the next event."""
        self._stored_at = None

    async def _subscriptions(self) -> list[Subscription]:
        # A short cache: other replicas' chat subscriptions show up within a couple of seconds.
        now = self.clock.monotonic()
        if self._stored_at is None or now - self._stored_at > SUBSCRIPTION_CACHE_SECONDS:
            async with self._lock:
                if self._stored_at is None or now - self._stored_at > SUBSCRIPTION_CACHE_SECONDS:
                    self._stored = [stored_subscription(s) for s in await self.store.list_subscriptions()]
                    self._stored_at = now
        return [*self.configured, *self._stored]

    async def accept(self, event: DomainEvent, also_to: Sequence[ConversationAddress] = ()) -> bool:
        """Store the event, its card's new state and the deliveries; False for a redelivery.

        ``also_to`` adds conversations the card must reach whatever the subscriptions say (the
        conversation where a command started the run the event is about).
        """
        if await self.store.has_event(event.dedupe_key):
            return False
        for observer in self.observers:
            await observer(event)
        subscriptions = await self._subscriptions()
        for _ in range(20):
            try:
                recorded = await self._record(event, subscriptions, also_to)
            except StaleWrite:
                await asyncio.sleep(0)
                continue
            if recorded and self.on_enqueued:
                self.on_enqueued()
            return recorded
        raise RuntimeError(f"card {event.grouping_key} kept changing under event {event.dedupe_key}")

    async def _record(
        self, event: DomainEvent, subscriptions: Sequence[Subscription], also_to: Sequence[ConversationAddress]
    ) -> bool:
        now = self.clock.now()
        receipt = ReceivedEvent(
            dedupe_key=event.dedupe_key,
            source=event.source,
            kind=event.kind,
            received_at=now,
            payload={"type": type(event).__name__, **_jsonable(asdict(event))},
        )
        current = await self.store.get_card_state(event.grouping_key)
        merged = merge(current.state if current else None, event)
        showing = {_address(a) for a in (current.state.get("conversations", []) if current else [])}
        targets = route(event, subscriptions, now) | set(also_to)
        new_targets = targets - showing
        if not merged.changed and not new_targets:
            return await self.store.record_event(receipt, [])
        version = (current.version if current else 0) + 1
        conversations = sorted(showing | targets, key=str)
        state = {**merged.state, "conversations": [_address_json(c) for c in conversations]}
        card = render(merged.state).to_json()
        deliveries = [
            NewDelivery(
                conversation=conversation,
                grouping_key=event.grouping_key,
                payload={"op": "card", "rank": version, "card": card},
                # the first showing goes at once; later updates wait a moment to coalesce
                not_before=now + COALESCE if conversation in showing else None,
            )
            for conversation in conversations
            if merged.changed or conversation in new_targets
        ]
        deliveries += [
            NewDelivery(conversation, event.grouping_key, {"op": "reply", "card": reply.to_json()})
            for reply in merged.replies
            for conversation in conversations
        ]
        return await self.store.record_event(receipt, deliveries, CardState(event.grouping_key, version, state))
