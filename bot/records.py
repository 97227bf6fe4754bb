"""The rows Handoff keeps, as plain immutable values the core and every store share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from bot.jsonable import JsonText

Platform = Literal["slack", "teams"]
JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ConversationAddress:
    """Where a message goes: a Slack channel id or a Teams conversation id."""

    platform: Platform
    conversation_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.conversation_id}"


@dataclass(frozen=True)
class RepeatMark:
    """The card a conversation was last shown for a repeat key, and when.

    A subscription with a repeat limit shows a conversation at most one new card per repeat key (the same
    pipeline failing again, the same model registered again) within the limit; a repeat within it becomes
    a thread reply under ``grouping_key``'s card instead of a card of its own.

    A new mark is written only over the mark it ``replaces`` (the one the planner saw; None where it saw
    none): when another process marked the conversation meanwhile, the write is a lost compare-and-set, and
    the event is planned again on that process's mark.
    """

    conversation: ConversationAddress
    repeat_key: str
    grouping_key: str
    shown_at: datetime
    replaces: RepeatMark | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ReceivedEvent:
    """An event as received from a sender, kept so that a redelivery is recognised and dropped."""

    dedupe_key: str
    source: str
    kind: str
    received_at: datetime
    payload: JsonObject | JsonText = field(default_factory=dict)


class DeliveryState(StrEnum):
    """Where a delivery stands. ``dead``: given up after its attempts failed (a dead letter, alerted);
    ``unreachable``: given up because its conversation cannot be posted in (Handoff was removed from it, it was
    deleted or archived), which is no failure to deliver and is kept apart from the dead letters."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class NewDelivery:
    """Something to post or update in one conversation, stored with the event that caused it."""

    conversation: ConversationAddress
    grouping_key: str
    payload: JsonObject
    not_before: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """A stored outbox entry."""

    id: int
    event_key: str | None
    conversation: ConversationAddress
    grouping_key: str
    payload: JsonObject
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    # a previous attempt may have sent it without its outcome being recorded (its worker stopped, or
    # its answer was lost): what it posts must be looked for before posting again
    recovered: bool = False
    # when recovered: the worker whose attempt that was (``host:pid:…``)
    recovered_from: str | None = None


@dataclass(frozen=True)
class PostedCard:
    """A card Handoff posted: which platform message shows a grouping key in a conversation.

    ``rank`` only grows, so that a late event never moves a card backwards. ``first_rank`` is the version
    first posted in the conversation: the store records it with the card's first save (``rank`` unless
    given) and keeps it through later ones; None for a card posted before Handoff recorded it.
    """

    grouping_key: str
    conversation: ConversationAddress
    message_id: str
    thread_id: str | None = None
    rank: int = 0
    content: JsonObject = field(default_factory=dict)
    updated_at: datetime | None = None
    first_rank: int | None = None


@dataclass(frozen=True)
class CardState:
    """The merged state of a living card; ``version`` 1 is the first, each change adds one."""

    grouping_key: str
    version: int
    state: JsonObject
    updated_at: datetime | None = None


class GateState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"

    @property
    def is_final(self) -> bool:
        return self is not GateState.PENDING


@dataclass(frozen=True)
class Gate:
    """A release gate; ``version`` grows with every change and makes updates compare-and-set."""

    gate_id: str
    source: str
    external_id: str
    title: str
    state: GateState
    version: int
    created_at: datetime
    expires_at: datetime | None = None
    details: JsonObject = field(default_factory=dict)
    policy: JsonObject = field(default_factory=dict)
    decided_at: datetime | None = None


@dataclass(frozen=True)
class GateDecision:
    """One person's decision on a gate."""

    gate_id: str
    actor: str
    platform: str
    decision: Literal["approve", "reject", "override"]
    at: datetime
    comment: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log: who did what, where, when, and how it ended."""

    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    platform: str = ""
    conversation: str = ""
    comment: str = ""
    details: JsonObject = field(default_factory=dict)
    id: int | None = None


def subscription_filters_key(filters: Mapping[str, Any]) -> str:
    """What makes two subscriptions of one conversation the same, as a short key: their filters in one normal
    form (a list as the set of its values, an empty filter as none given)."""
    normal = {
        key: sorted({json.dumps(v, sort_keys=True) for v in value}) if isinstance(value, list) else value
        for key, value in filters.items()
        if value not in ([], {}, None)
    }
    return hashlib.sha256(json.dumps(normal, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class StoredSubscription:
    """A subscription made from chat (configured ones live in the YAML file)."""

    conversation: ConversationAddress
    filters: JsonObject
    created_by: str
    created_at: datetime
    muted_until: datetime | None = None
    id: int | None = None

    @property
    def filters_key(self) -> str:
        """Its filters in one normal form: a conversation has one subscription for each
        (:func:`subscription_filters_key`)."""
        return subscription_filters_key(self.filters)


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation the bot can post to, with what the platform needs to reach it again."""

    address: ConversationAddress
    name: str = ""
    tenant_id: str | None = None
    team_id: str | None = None
    reference: JsonObject = field(default_factory=dict)
    active: bool = True
    updated_at: datetime | None = None


class CommandRunState(StrEnum):
    REQUESTED = "requested"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUSED = "refused"

    @property
    def ended(self) -> bool:
        """The run is over: it succeeded, failed or was canceled, or it never started (refused)."""
        return self not in (CommandRunState.REQUESTED, CommandRunState.STARTED)


CONFIRMATION_KEY_PREFIX = "confirm:"
"""Idempotency keys of confirmation requests: a request waiting for Confirm, not a run of its own."""


@dataclass(frozen=True)
class CommandRun:
    """A command that starts work, kept so that the same command twice starts one run.

    A row whose key starts with :data:`CONFIRMATION_KEY_PREFIX` is the confirmation asked for before a
    run, not a run; once confirmed, the same row becomes the run (it takes the run's key), so the run keeps
    the number its Confirm button carried.
    """

    idempotency_key: str
    actor: str
    platform: str
    conversation: str
    command: str
    target: str
    state: CommandRunState
    created_at: datetime
    backend_run_id: str | None = None
    details: JsonObject = field(default_factory=dict)
    updated_at: datetime | None = None
    id: int | None = None
