"""The ports: what the core asks of the outside world. Adapters implement them.

The store is split by concept so that a piece of the core can say exactly what it needs; ``Store``
is all of them together, which is what a database adapter provides.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from bot.records import (
    AuditEntry,
    CommandRun,
    CommandRunState,
    ConversationAddress,
    ConversationRecord,
    Delivery,
    Gate,
    GateDecision,
    GateState,
    JsonObject,
    NewDelivery,
    PostedCard,
    ReceivedEvent,
    StoredSubscription,
)


class EventLog(Protocol):
    async def record_event(self, event: ReceivedEvent, deliveries: Sequence[NewDelivery]) -> bool:
        """Store an event and the deliveries it causes in one transaction.

        Returns False, storing nothing, when an event with the same dedupe key was already recorded.
        """
        ...

    async def has_event(self, dedupe_key: str) -> bool: ...

    async def forget_events_before(self, cutoff: datetime) -> int:
        """Drop remembered events received before ``cutoff``; returns how many."""
        ...


class Outbox(Protocol):
    async def enqueue(self, deliveries: Sequence[NewDelivery], now: datetime) -> list[int]:
        """Store deliveries that no received event caused (command replies, reminders)."""
        ...

    async def claim_deliveries(
        self, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries to ``worker``; no two workers get the same one."""
        ...

    async def complete_delivery(self, delivery_id: int, worker: str) -> bool: ...

    async def retry_delivery(self, delivery_id: int, worker: str, error: str, at: datetime) -> bool: ...

    async def dead_letter_delivery(self, delivery_id: int, worker: str, error: str) -> bool: ...

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def count_deliveries(self) -> dict[str, int]:
        """How many deliveries are in each state."""
        ...


class CardStore(Protocol):
    async def get_card(self, grouping_key: str, conversation: ConversationAddress) -> PostedCard | None: ...

    async def save_card(self, card: PostedCard) -> None:
        """Insert or replace the card for its grouping key and conversation."""
        ...

    async def cards_for(self, grouping_key: str) -> list[PostedCard]: ...


class GateStore(Protocol):
    async def create_gate(self, gate: Gate) -> bool:
        """Store a new gate; False if one with the same id exists."""
        ...

    async def get_gate(self, gate_id: str) -> Gate | None: ...

    async def update_gate(
        self,
        gate_id: str,
        expected_version: int,
        state: GateState,
        details: JsonObject | None = None,
        decision: GateDecision | None = None,
        decided_at: datetime | None = None,
    ) -> Gate | None:
        """Compare-and-set: change the gate only if its version is still ``expected_version``.

        Returns the updated gate, or None when another change won (the gate is unchanged).
        """
        ...

    async def gate_decisions(self, gate_id: str) -> list[GateDecision]: ...

    async def list_gates(self, state: GateState | None = None) -> list[Gate]: ...


class AuditLog(Protocol):
    async def append_audit(self, entry: AuditEntry) -> int: ...

    async def list_audit(self, since: datetime | None = None) -> list[AuditEntry]: ...


class SubscriptionStore(Protocol):
    async def add_subscription(self, subscription: StoredSubscription) -> int: ...

    async def list_subscriptions(
        self, conversation: ConversationAddress | None = None
    ) -> list[StoredSubscription]: ...

    async def remove_subscription(self, subscription_id: int) -> bool: ...

    async def mute_subscription(self, subscription_id: int, until: datetime | None) -> bool: ...


class ConversationStore(Protocol):
    async def save_conversation(self, record: ConversationRecord) -> None:
        """Insert or update a conversation by platform and id (it becomes active)."""
        ...

    async def get_conversation(self, address: ConversationAddress) -> ConversationRecord | None: ...

    async def deactivate_conversation(self, address: ConversationAddress) -> bool: ...

    async def list_conversations(self, active_only: bool = True) -> list[ConversationRecord]: ...


class CommandRunStore(Protocol):
    async def start_command_run(self, run: CommandRun, window: timedelta) -> tuple[CommandRun, bool]:
        """Record a command run unless the same idempotency key started one within ``window``.

        Returns the run that counts and whether it is new.
        """
        ...

    async def update_command_run(
        self,
        run_id: int,
        state: CommandRunState,
        now: datetime,
        backend_run_id: str | None = None,
        details: JsonObject | None = None,
    ) -> bool: ...

    async def get_command_run(self, run_id: int) -> CommandRun | None: ...


class Store(
    EventLog,
    Outbox,
    CardStore,
    GateStore,
    AuditLog,
    SubscriptionStore,
    ConversationStore,
    CommandRunStore,
    Protocol,
):
    """Everything Handoff keeps, in one database."""

    async def is_ready(self) -> bool:
        """True when the database answers and its schema is at the latest migration."""
        ...

    async def close(self) -> None: ...
