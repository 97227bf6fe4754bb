"""The ports: what the core asks of the outside world. Adapters implement them.

The store is split by concept so that a piece of the core can say exactly what it needs; ``Store``
is all of them together, which is what a database adapter provides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.cards import Card
from bot.events import Approver, DomainEvent, Person
from bot.records import (
    AuditEntry,
    CardState,
    CommandRun,
    CommandRunState,
    ConversationAddress,
    ConversationRecord,
    Delivery,
    DeliveryState,
    Gate,
    GateDecision,
    GateState,
    JsonObject,
    NewDelivery,
    Platform,
    PostedCard,
    ReceivedEvent,
    RepeatMark,
    StoredSubscription,
)

CHAT_RECEIPT_SOURCES = frozenset({"slack", "teams"})
"""The sources of the receipts the chat adapters keep in the event log (a Slack event's id, a Teams activity's),
so that what a platform sends again runs once: no service's events, and no dry run's."""


class StaleWrite(Exception):
    """A compare-and-set lost: someone else changed the row first. Read again and retry."""


class StoreNotAnswering(Exception):
    """The store did not take a write, or did not answer what the ingest read before writing: it could not be
    reached, or did not answer in time (a lock held by another process or session, a connection gone silent).
    Nothing of the write is known to be stored, and the same write tried again at once would wait the same:
    whoever waits on it is asked to retry later."""


@dataclass(frozen=True)
class EventRecord:
    """One received event and what it causes, as :meth:`EventLog.record_events` stores it.

    ``grouping_key`` names the event's card when ``card_state`` is None (the event left it as it was),
    so that the store can tell which records were planned on the states before them. ``repeat_marks``
    are the conversations' new marks for the event's repeat key (written only if the event is new).
    """

    event: ReceivedEvent
    deliveries: Sequence[NewDelivery] = ()
    card_state: CardState | None = None
    grouping_key: str | None = None
    repeat_marks: Sequence[RepeatMark] = ()


class EventLog(Protocol):
    @property
    def write_timeout(self) -> float:
        """Seconds :meth:`record_events` waits on the database before it gives up (:class:`StoreNotAnswering`):
        the ingest waits no longer for each read it makes before writing."""
        ...

    async def record_event(
        self,
        event: ReceivedEvent,
        deliveries: Sequence[NewDelivery],
        card_state: CardState | None = None,
    ) -> bool:
        """Store an event, the deliveries it causes and its card's new state, in one transaction.

        Returns False, storing nothing, when an event with the same dedupe key was already recorded.
        ``card_state`` is written only if the stored version is ``card_state.version - 1`` (absent
        for version 1); otherwise nothing is stored and :class:`StaleWrite` is raised.
        """
        ...

    async def record_events(self, records: Sequence[EventRecord]) -> list[bool]:
        """Store several events with their deliveries and card states, in order, in one transaction.

        The outcome is that of :meth:`record_event` called for each record in turn, except that a lost
        compare-and-set stores nothing of the whole batch (:class:`StaleWrite` is raised). Returns, for
        each record, whether its event was new; a record whose dedupe key was already recorded, or
        appears earlier in the batch, stores nothing. Consecutive versions of one card in the batch
        (n, n+1, ...) are written once, as the last state, if the stored version is n - 1. A new record
        for a card after a redelivered record that carried a state of that card was planned on a state
        never stored: that is a lost compare-and-set too. Deliveries keep the order of the records. The
        new records' repeat marks replace the stored ones with the same conversation and repeat key (the
        last in the batch wins). Raises :class:`StoreNotAnswering` when the store could not be reached or
        did not take the write in time.
        """
        ...

    async def get_card_state(self, grouping_key: str) -> CardState | None: ...

    async def get_card_states(self, grouping_keys: Sequence[str]) -> dict[str, CardState]:
        """The stored states of the cards among ``grouping_keys`` that exist, by grouping key."""
        ...

    async def has_event(self, dedupe_key: str) -> bool: ...

    async def known_events(self, dedupe_keys: Sequence[str]) -> set[str]:
        """Which of ``dedupe_keys`` were already recorded."""
        ...

    async def recent_events(self, limit: int) -> list[ReceivedEvent]:
        """The ``limit`` events received last from the services (those still remembered), newest first; not
        the chat platforms' receipts (:data:`CHAT_RECEIPT_SOURCES`)."""
        ...

    async def forget_events_before(self, cutoff: datetime) -> int:
        """Drop remembered events received before ``cutoff``; returns how many."""
        ...

    async def get_repeat_marks(
        self, keys: Sequence[tuple[ConversationAddress, str]]
    ) -> dict[tuple[ConversationAddress, str], RepeatMark]:
        """The stored marks among ``keys`` (conversation, repeat key), by key; absent keys have none."""
        ...

    async def forget_repeat_marks_before(self, cutoff: datetime) -> int:
        """Drop marks of cards shown before ``cutoff``; returns how many."""
        ...


class Outbox(Protocol):
    async def enqueue(self, deliveries: Sequence[NewDelivery], now: datetime) -> list[int]:
        """Store deliveries that no received event caused (command replies, reminders)."""
        ...

    async def claim_deliveries(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries to ``worker`` until ``now + lease``; no two workers get the same one.

        Only the oldest pending delivery of each conversation is due, so that each conversation
        receives its messages in order, one at a time, whichever worker sends them. Finding
        nothing due is cheap and takes no write lock. A delivery claimed again after an attempt that ended
        without a recorded outcome (its lease ran out, or it was deferred) comes ``recovered``, naming the
        worker that held it in ``recovered_from``.
        """
        ...

    async def renew_claims(self, worker: str, leases: Mapping[int, datetime], until: datetime) -> set[int]:
        """Extend to ``until`` the leases ``worker`` still holds as it last left them: each delivery in ``leases``
        still claimed by ``worker``, pending, its lease still ``leases[id]`` (so nothing an attempt recorded since,
        a deferral among it, is undone, and nothing another worker claimed since is touched). The ids renewed."""
        ...

    async def complete_delivery(self, delivery_id: int, worker: str) -> bool: ...

    async def retry_delivery(self, delivery_id: int, worker: str, error: str, at: datetime) -> bool: ...

    async def defer_delivery(self, delivery_id: int, worker: str, error: str, at: datetime) -> bool:
        """Try again at ``at``, as a recovery: the next claim comes with ``recovered`` set, because this
        attempt may have sent it (its answer was lost)."""
        ...

    async def postpone_delivery(self, delivery: Delivery, worker: str, at: datetime) -> bool:
        """Hand ``delivery``, claimed by ``worker`` and sent nothing, back until ``at``: the claim's attempt is not
        counted, and the delivery stays what it was for recovery (claimed again as a recovery if it was claimed
        as one). It keeps its turn: later deliveries of its conversation still wait for it."""
        ...

    async def dead_letter_delivery(self, delivery_id: int, worker: str, error: str) -> bool: ...

    async def unreachable_delivery(self, delivery_id: int, worker: str, error: str) -> bool:
        """Give the delivery up as ``unreachable``: its conversation cannot be posted in. Not a dead letter
        (not counted by :meth:`count_dead_letters`); forgotten like one."""
        ...

    async def forget_deliveries_before(self, cutoff: datetime) -> int:
        """Drop sent, dead-lettered and unreachable deliveries last due before ``cutoff`` (pending ones stay);
        how many."""
        ...

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def count_deliveries(self, states: Sequence[DeliveryState] | None = None) -> dict[str, int]:
        """How many deliveries are in each state (or in each of ``states``: cheaper, when the sent ones, by far
        the most, are not wanted)."""
        ...

    async def complete_shown(self, delivery: Delivery, worker: str, card: PostedCard) -> list[int]:
        """``delivery``, a card's version, was sent and ``card`` shows it now: in one transaction save ``card``
        (as :meth:`CardStore.save_card`), mark ``delivery`` sent (as :meth:`complete_delivery`) and the pending
        card deliveries for the same card and conversation after it whose rank is at most ``card.rank``.
        Returns those superseded deliveries' ids, in order. Nothing is written (and nothing returned) once
        ``worker`` no longer holds the claim: its lease ran out and another attempt claimed the delivery."""
        ...

    async def latest_card_delivery(self, delivery: Delivery) -> Delivery:
        """The newest version of a card waiting for a conversation: the last pending card delivery (op
        ``card``, not a reply) for the same card and conversation, or ``delivery`` itself if none is later."""
        ...

    async def count_dead_letters(self, conversation: ConversationAddress, since: datetime) -> int:
        """How many deliveries to ``conversation`` were dead-lettered since ``since`` (not the unreachable ones)."""
        ...

    async def record_send(self, conversation: ConversationAddress, at: datetime) -> None:
        """Remember that ``conversation`` is sent a message at ``at`` (by any replica)."""
        ...

    async def latest_sends(
        self, conversation: ConversationAddress, windows: Sequence[tuple[int, float]], now: datetime
    ) -> list[datetime | None]:
        """For each window ``(count, seconds)``: when the ``count``-th latest send to ``conversation`` within
        the ``seconds`` before ``now`` was, or None if fewer were sent then (the window has room)."""
        ...

    async def forget_sends_before(self, cutoff: datetime) -> int:
        """Drop the record of sends before ``cutoff``; how many."""
        ...


class CardStore(Protocol):
    async def get_card(self, grouping_key: str, conversation: ConversationAddress) -> PostedCard | None: ...

    async def save_card(self, card: PostedCard) -> None:
        """Insert or replace the card for its grouping key and conversation; a replaced card keeps its
        ``first_rank``."""
        ...

    async def cards_for(self, grouping_key: str) -> list[PostedCard]: ...

    async def forget_cards_before(self, cutoff: datetime) -> int:
        """Drop the state and the posted messages of cards last updated before ``cutoff``, except a card with
        a delivery still pending and every card of a gate still waiting (its own, the card of the run a
        pipeline approval waits in, a promotion's model version card and its apps' cards); how many cards. A
        later event for one of them posts a new card."""
        ...


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

    async def reopen_gate(
        self, gate_id: str, expected_version: int, details: JsonObject, withdrawn: GateDecision
    ) -> Gate | None:
        """Compare-and-set: put a decided gate back to pending (not decided, with ``details``), without the
        decision ``withdrawn`` (its latest one by the same person, the same decision), which did not take effect:
        Azure DevOps refused it.

        Returns the reopened gate, or None when another change won (the gate is unchanged).
        """
        ...

    async def gate_decisions(self, gate_id: str) -> list[GateDecision]: ...

    async def list_gates(self, state: GateState | None = None) -> list[Gate]: ...

    async def forget_gates_decided_before(self, cutoff: datetime) -> int:
        """Drop gates decided (approved, rejected, expired, superseded) before ``cutoff``, with their
        decisions (the audit log keeps those); how many gates."""
        ...


class AuditLog(Protocol):
    async def append_audit(self, entry: AuditEntry) -> int: ...

    async def list_audit(self, since: datetime | None = None) -> list[AuditEntry]: ...

    async def forget_audit_before(self, cutoff: datetime) -> int:
        """Drop the audit log's entries from before ``cutoff``; how many."""
        ...


class SubscriptionStore(Protocol):
    async def add_subscription(self, subscription: StoredSubscription) -> tuple[int, bool]:
        """Store ``subscription`` unless its conversation has one with the same filters
        (:attr:`StoredSubscription.filters_key`), even one stored at the same moment by another replica:
        ``(its id, True)`` when it was added, ``(the one already there's id, False)`` otherwise."""
        ...

    async def list_subscriptions(self, conversation: ConversationAddress | None = None) -> list[StoredSubscription]: ...

    async def remove_subscription(self, subscription_id: int) -> bool: ...

    async def mute_subscription(self, subscription_id: int, until: datetime | None) -> bool: ...


class ConversationStore(Protocol):
    async def save_conversation(self, record: ConversationRecord) -> None:
        """Insert or update a conversation by platform and id (active or not as ``record.active`` says)."""
        ...

    async def get_conversation(self, address: ConversationAddress) -> ConversationRecord | None: ...

    async def deactivate_conversation(self, address: ConversationAddress) -> bool: ...

    async def list_conversations(self, active_only: bool = True) -> list[ConversationRecord]: ...

    async def inactive_conversations(self) -> frozenset[ConversationAddress]:
        """The conversations Handoff can no longer post to (it was removed, or they were deleted or archived)."""
        ...


class CommandRunStore(Protocol):
    async def start_command_run(
        self, run: CommandRun, window: timedelta, *, until_ended: bool = False
    ) -> tuple[CommandRun, bool]:
        """Record a command run unless the same idempotency key started one within ``window``.

        With ``until_ended``, a run counts only until it ends (:attr:`CommandRunState.ended`): once the
        earlier run is over, the same key records a new one, even within ``window``. Concurrent calls
        with the same key, on any replica, record one run.

        Returns the run that counts and whether it is new.
        """
        ...

    async def confirm_command_run(
        self, confirmation_id: int, run: CommandRun, window: timedelta, *, until_ended: bool = False
    ) -> tuple[CommandRun | None, bool]:
        """Make the confirmation request ``confirmation_id`` the run ``run``: the same row, so the run keeps
        the number its Confirm button carried. It takes ``run``'s idempotency key, state, details and time.

        The key is held as :meth:`start_command_run` holds it: if another run with the same key still counts,
        the confirmation is closed (canceled, its ``details["same_as"]`` naming that run) and that run is
        returned, not new. A confirmation that no longer waits (confirmed, declined or expired before, by
        this or another replica) changes nothing and gives ``(None, False)``. Concurrent calls make at most
        one run of a confirmation.

        Returns the run that counts and whether the confirmation became it.
        """
        ...

    async def update_command_run(
        self,
        run_id: int,
        state: CommandRunState,
        now: datetime,
        backend_run_id: str | None = None,
        details: JsonObject | None = None,
        *,
        expected: CommandRunState,
    ) -> bool:
        """Move run ``run_id`` to ``state`` (with its backend id and details, where given), compare-and-set: only
        if it is still in the ``expected`` state, the one its caller saw. Of concurrent changes from one state
        (two replicas' sweeps, a sweep and a service's event, a cancel and a poll) one wins; a run that ended
        never goes back to running.

        Returns whether this change was made (False: the run changed meanwhile, or there is no such run).
        """
        ...

    async def get_command_run(self, run_id: int) -> CommandRun | None: ...

    async def list_command_runs(self, target: str | None = None, limit: int = 10) -> list[CommandRun]:
        """The newest command runs (of ``target`` if given), newest first, at most ``limit``.

        A run is of ``target`` when it was started for it (``retrain model-x``, ``integrate app-y``) or,
        for a model, against one of its versions (``integrate app-y model=model-x:8``).

        Confirmation requests (keys starting with ``CONFIRMATION_KEY_PREFIX``) are not runs and are left out.
        """
        ...

    async def unfinished_command_runs(self, created_after: datetime) -> list[CommandRun]:
        """The runs created after ``created_after`` that are still requested or started, oldest first.

        After a restart these are the runs nobody watches any more. Confirmation requests are left out.
        """
        ...


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

    def unavailable(self, error: BaseException) -> bool:
        """Whether ``error``, raised by a call to this store, is the store out of reach for a while (a connection
        lost or refused, the database not answering in time): trouble that passes, which work retries later,
        rather than a mistake."""
        ...

    async def close(self) -> None: ...


# --- chat platforms -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostedMessage:
    """Where a platform put a message: its id, and the thread it starts or belongs to."""

    message_id: str
    thread_id: str | None = None


class DeliveryFailed(Exception):
    """A platform refused or failed a send.

    Args:
        reason: what happened, safe to log and show in an alert (no secrets).
        retryable: whether trying again later can succeed (429, 5xx, timeouts) or not (a bad
            channel, revoked access, an invalid message).
        retry_after: seconds the platform asked to wait, when it said.
        maybe_sent: the request may have taken effect although its answer was lost (the connection
            dropped after sending, a timeout): a new message must be looked for before posting again.
    """

    def __init__(
        self, reason: str, retryable: bool, retry_after: float | None = None, *, maybe_sent: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class SendLater(DeliveryFailed):
    """Nothing was sent: a limit on sending (the conversation's, the workspace's) has no room for the send
    within the wait an attempt may spend inline, which stays well inside the time the outbox gives it to send.

    Not a failure: the outbox hands the delivery back, to be tried again once ``retry_after`` seconds have
    passed, without counting the attempt.
    """

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason, retryable=True, retry_after=retry_after)


class MessageGone(DeliveryFailed):
    """The message to update or reply under is no longer there: someone deleted it in chat.

    Not worth retrying as it is; the outbox posts the card afresh instead (deleting a card is a normal
    thing to do, not a delivery problem).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


class CredentialsRefused(DeliveryFailed):
    """The platform refuses Handoff's own credentials (its token or app password is revoked, expired or wrong):
    nothing can be sent anywhere on that platform (a Slack workspace, the Teams bot) until they are replaced.

    Retryable, for longer than other failures (a secret being rotated takes a replacement and a restart); the
    ops channel's alert about it names the platform, not a conversation. ``reason`` names the platform's error
    code only, never the credentials.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=True)


class ConversationUnreachable(DeliveryFailed):
    """Handoff cannot post in the conversation at all: it is not a member (a private channel it was never
    invited to, one it was removed from), or the conversation was deleted or archived.

    Not worth retrying until someone adds Handoff back; the outbox marks the conversation inactive.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


class ChatChannel(Protocol):
    """Sends to one chat platform. Implementations raise :class:`DeliveryFailed`, nothing else.

    :meth:`update_card` and :meth:`reply` raise :class:`MessageGone` when the message they address was
    deleted; :meth:`post_card` and :meth:`reply` raise :class:`ConversationUnreachable` when Handoff cannot
    post in the conversation.
    """

    platform: Platform

    async def post_card(self, conversation_id: str, card: Card, *, marker: str | None = None) -> PostedMessage:
        """Post a new top-level message (a new thread in Teams channels).

        ``marker`` tags the message where the platform can, so that :meth:`find_posted` finds it again.
        """
        ...

    async def update_card(self, conversation_id: str, message: PostedMessage, card: Card) -> None:
        """Replace a posted message's content in place."""
        ...

    async def reply(
        self,
        conversation_id: str,
        parent: PostedMessage,
        card: Card,
        *,
        marker: str | None = None,
        broadcast: bool = False,
    ) -> PostedMessage:
        """Post in the thread of ``parent``.

        ``broadcast`` also shows the reply in the conversation itself, where the platform keeps thread
        replies out of it (Slack's "Also send to channel"); where a reply brings its thread back into
        view anyway (Teams) it changes nothing.
        """
        ...

    async def find_posted(
        self, conversation_id: str, marker: str, since: datetime, parent: PostedMessage | None = None
    ) -> PostedMessage | None:
        """The message posted with ``marker`` since ``since`` (in the thread of ``parent``), if the platform
        can tell; None when there is none or the platform offers no way to look."""
        ...


# --- ingest -------------------------------------------------------------------------------------------


class EventSink(Protocol):
    """Where ingest routes hand parsed events: the core routes and stores them durably."""

    async def accept(self, event: DomainEvent) -> bool:
        """Store the event and the deliveries it causes; False when it is a redelivery.

        Raises on internal trouble (the route then answers 503 so the sender retries).
        """
        ...

    async def accept_all(self, events: Sequence[DomainEvent]) -> list[bool]:
        """:meth:`accept` for the events of one delivery, in order, stored together (a sender's batch is
        answered as fast as one event); raises if any could not be stored."""
        ...

    async def stored_before(self, events: Sequence[DomainEvent]) -> list[bool]:
        """For each event, whether it was stored already (all of its parts, see ``per_card``): one cheap read, for a
        route to answer a redelivery without the lookups it would make for a new event. A hint only: the dedupe
        key at :meth:`accept` is the guarantee. Raises on internal trouble."""
        ...


# --- Azure DevOps and Azure ML ------------------------------------------------------------------------


class ServiceRefused(Exception):
    """A service said no to a request (not a transient failure): the reason is for the person asking.

    ``already_decided`` marks an approval that was decided elsewhere first; ``forbidden`` a request the caller's
    identity may never make (not an approver of that approval, or barred from it); ``not_found`` a request about
    something that no longer exists. Asking again cannot change either.
    """

    def __init__(
        self, reason: str, *, already_decided: bool = False, forbidden: bool = False, not_found: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.already_decided = already_decided
        self.forbidden = forbidden
        self.not_found = not_found


class ServiceUnavailable(Exception):
    """A service could not be reached or failed; trying again later may work.

    ``may_have_acted`` marks a request that may have reached the service before the answer was lost (the
    connection dropped or timed out after it was sent): whether the service did what was asked is not known.
    """

    def __init__(self, reason: str, *, may_have_acted: bool = False) -> None:
        super().__init__(reason)
        self.may_have_acted = may_have_acted


@dataclass(frozen=True)
class ApprovalStatus:
    """How one of Azure DevOps' approvals stands now (see :meth:`PipelineService.approval_statuses`).

    ``status`` is Azure DevOps' own word: ``pending``, ``approved``, ``rejected``, ``timedOut``, ``canceled``,
    ``skipped`` (a classic release approval's may also be ``reassigned``). ``decided_by`` and ``comment`` are who
    completed it and what they said, when a person did.
    """

    approval_id: str
    status: str
    decided_by: Person | None = None
    comment: str = ""


@dataclass(frozen=True)
class StartedRun:
    """A run that a service started: its id, a name people recognise, and where to watch it."""

    run_id: str
    name: str
    url: str | None = None
    state: str = "queued"


@dataclass(frozen=True)
class RunStatus:
    run_id: str
    state: str  # queued | running | canceling | completed
    result: str | None = None  # succeeded | failed | canceled
    url: str | None = None
    failing_step: str | None = None
    requested_by: Person | None = None
    branch: str | None = None  # the full ref the run built (``refs/heads/main``), where the service says
    # the template parameters the run was started with (``modelName``, ``modelVersion``), where the service says
    parameters: Mapping[str, str] = field(default_factory=dict)
    # when the run finished, where the service says: an earlier attempt's end, once a stage is retried
    finished_at: datetime | None = None
    # the own name (``Production``) of the stage ``failing_step`` names as shown (``Deploy to production``)
    failing_stage_name: str | None = None
    name: str | None = None  # the run's name (``20261128.3``), where the service says
    reason: str | None = None  # why the run started (``manual``, ``individualCI``, ``pullRequest``…), where it says


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    tags: JsonObject
    signature: JsonObject | None = None


class PipelineService(Protocol):
    """Azure DevOps as the core needs it. Raises ServiceRefused or ServiceUnavailable."""

    async def decide_approval(self, project: str, approval_id: str, approve: bool, comment: str) -> None: ...

    async def decide_release_approval(self, project: str, approval_id: str, approve: bool, comment: str) -> None: ...

    async def approval_details(self, project: str, approval_id: str) -> JsonObject | None: ...

    async def approval_statuses(self, project: str, approval_ids: Sequence[str]) -> list[ApprovalStatus]:
        """How these YAML-pipeline approvals of ``project`` stand now, read in one request; an approval Azure
        DevOps does not know is left out."""
        ...

    async def release_approval_statuses(self, project: str, approvals: Mapping[str, str]) -> list[ApprovalStatus]:
        """How these classic release approvals of ``project`` stand now, ``approvals`` naming each one's release
        (approval id: release id; Azure DevOps lists a release's approvals, it has no lookup by approval id).
        One request while they all wait, a few more (one per completed status, at most four) for those that do
        not; an approval Azure DevOps does not list is left out."""
        ...

    async def approver_identities(
        self, approvers: tuple[Approver, ...], *, fresh: bool = False
    ) -> tuple[Approver, ...]:
        """The approvers with the people behind them: the name and email of one named by id alone, the
        members of a group (see :class:`~bot.events.Approver`). ``fresh`` asks Azure DevOps again rather
        than a cache."""
        ...

    async def own_identity(self) -> Person | None:
        """Handoff's own identity in Azure DevOps (whose credentials decide approvals from chat); None when
        Azure DevOps does not say."""
        ...

    async def project_id(self, project: str) -> str:
        """The id (a GUID) of the project named ``project``, which some of Azure DevOps' hooks name it by."""
        ...

    async def run_pipeline(
        self, project: str, pipeline: str, branch: str | None, parameters: dict[str, str]
    ) -> StartedRun:
        """Queue a run of ``pipeline``. Each call queues one: a ``ServiceUnavailable`` that ``may_have_acted``
        may have queued it (look with :meth:`runs_since` before starting it again)."""
        ...

    async def run_status(self, project: str, run_id: str) -> RunStatus: ...

    async def runs_since(self, project: str, pipeline: str, since: datetime) -> list[RunStatus]:
        """The runs of ``pipeline`` queued at or after ``since`` (oldest first), each with its name, branch and
        template parameters, so that a start whose answer was lost can be found (see
        :meth:`run_pipeline`: one request, up to a page of runs)."""
        ...

    async def cancel_run(self, project: str, run_id: str) -> None: ...

    async def close(self) -> None:
        """Release what the service holds (its threads); called once, as the server stops."""
        ...


class MLService(Protocol):
    """Azure ML as the core needs it. Raises ServiceRefused or ServiceUnavailable."""

    async def submit_job(self, job_file: str, params: dict[str, str], name: str) -> StartedRun:
        """Start the job ``name`` (the idempotency key): submitting a name again returns that job."""
        ...

    async def job_status(self, name: str) -> RunStatus: ...

    async def cancel_job(self, name: str) -> None: ...

    async def model_version(self, name: str, version: str | None = None) -> ModelVersion:
        """One version (the latest when ``version`` is None) with its tags and MLflow signature
        (None when it has none). Raises ServiceRefused when there is no such model or version, its reason
        naming which (``Azure ML has no model <name>.``)."""
        ...

    async def model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model with its tags, oldest first; signatures are not read (None)."""
        ...

    async def latest_model_version(self, name: str) -> str:
        """The version the registry calls the latest of the model (the latest created): one read, no signature.
        Raises ServiceRefused when there is no such model."""
        ...

    async def has_model_version(self, name: str, version: str) -> bool:
        """Whether the registry has this version of the model (archived or not): one read, no signature."""
        ...

    async def tag_model(self, name: str, version: str, tags: dict[str, str]) -> None: ...

    async def close(self) -> None:
        """Release what the service holds (its threads); called once, as the server stops."""
        ...


class HookProvisioner(Protocol):
    """Makes Azure DevOps send Handoff the service hooks that chat subscriptions need (``subscribe <url>``).

    Raises ServiceRefused (the reason is for the person asking: a missing permission, an unknown
    project) or ServiceUnavailable.
    """

    @property
    def organization_url(self) -> str:
        """The organization Handoff is connected to, as configured."""
        ...

    async def ensure_hooks(self, project: str, events: Sequence[str] = ()) -> None:
        """Make sure the project's service hooks deliver to Handoff the events of these routing kinds
        (``run``, ``approval``…; empty: every kind), besides those the configuration needs.

        Creates what is missing and updates what Handoff created that no longer fits; removes nothing.
        """
        ...

    async def pipeline_name(self, project: str, pipeline_id: int) -> str | None:
        """The name of the project's pipeline with this id, or None if there is none."""
        ...

    async def run_pipeline_name(self, project: str, run_id: int) -> str | None:
        """The name of the pipeline a run (build) belongs to, or None if there is no such run."""
        ...

    async def close(self) -> None:
        """Release what the provisioner holds (its threads); called once, as the server stops."""
        ...
