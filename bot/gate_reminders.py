"""Waiting gates over time: reminded of in their cards' thread as their gate policy says, and expired once their
time is up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.cards import Card, Fact
from bot.clock import Clock
from bot.gate_outcomes import APPROVAL_GONE, HANDOFF, RELEASE_DECIDED, RELEASE_REASSIGNED
from bot.gate_updates import GateUpdates
from bot.living import render
from bot.policy import Policy
from bot.ports import Store
from bot.records import ConversationAddress, Gate, GateState, NewDelivery

# What a reminder keeps of its gate's card: who may decide, how many approvals it needs, how far it got, and
# when it expires (the evidence and the buttons stay on the card).
REMINDER_FACTS = ("Approvers", "Approvals needed", "Approved so far", "Expires")


def reminder(card: Card, gate: Gate) -> Card:
    """The thread reply that reminds of the waiting ``gate`` shown as ``card``: its title and summary, its
    approvers, the approvals it needs (and has so far) and when it expires; no buttons. An Azure DevOps approval's
    card does not show when it expires (its timeout, else its policy's expiry): the gate knows."""
    facts = [fact for fact in card.facts if fact.label in REMINDER_FACTS]
    if gate.expires_at is not None and not any(fact.label == "Expires" for fact in facts):
        facts.append(Fact("Expires", gate.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return replace(card, title=f"Still waiting for approval: {card.title}", actions=(), facts=tuple(facts))


def _expiry_note(gate: Gate) -> str:
    """What an expired gate's card and thread say of what follows: a promotion released nothing; an Azure DevOps
    approval still waits there (Handoff's expiry is its own, not the approval's timeout)."""
    until = f" (open until {gate.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)" if gate.expires_at else ""
    if gate.source == HANDOFF:
        return f"Nothing was released or tagged{until}."
    if gate.details.get("only_in_azure_devops") == APPROVAL_GONE:
        return f"It can no longer be decided here{until}; the approval no longer exists in Azure DevOps."
    if gate.details.get("only_in_azure_devops") == RELEASE_DECIDED:
        return f"It can no longer be decided here{until}; the approval was already decided in Azure DevOps."
    if gate.details.get("only_in_azure_devops") == RELEASE_REASSIGNED:
        return f"It can no longer be decided here{until}; the approval was reassigned in Azure DevOps."
    return f"It can no longer be decided here{until}; the approval still waits in Azure DevOps."


class GateReminders:
    """Reminds of waiting gates, and expires them.

    Args:
        store: gates, card states, the outbox.
        policy: the gate policies (each gate's ``remind_every``).
        clock: when reminders are due and gates expire.
        updates: where an expired gate's change is shown.
    """

    def __init__(self, store: Store, policy: Policy, clock: Clock, updates: GateUpdates) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.updates = updates

    async def remind(self) -> None:
        """Re-announce each waiting gate once its own gate policy's ``remind_every`` has passed since it opened or
        was last announced (an Azure DevOps approval's policy is ``default``; a model's promotion gate's is the
        one its ``promotion_gate`` names). A policy whose ``remind_every`` is null reminds of nothing."""
        now = self.clock.now()
        for gate in await self.store.list_gates(GateState.PENDING):
            every = self.policy.gate_policy(gate).remind_every
            if every is None or gate.details.get("only_in_azure_devops") in (
                APPROVAL_GONE,
                RELEASE_DECIDED,
                RELEASE_REASSIGNED,
            ):
                continue  # nothing to remind of, or nobody can decide it anywhere
            last = (
                datetime.fromisoformat(gate.details["reminded_at"])
                if "reminded_at" in gate.details
                else gate.created_at
            )
            if now - last < every:
                continue
            details = {**gate.details, "reminded_at": now.isoformat()}
            if await self.store.update_gate(gate.gate_id, gate.version, gate.state, details) is None:
                continue
            state = await self.store.get_card_state(gate.gate_id)
            if state is None:
                continue
            reminding = reminder(render(state.state), gate)
            # it calls on the approvers still awaited, except where the subscriptions turned mentions off
            named_only = reminding.naming_only()
            quiet = {tuple(a) for a in state.state.get("quiet", [])}
            deliveries = [
                NewDelivery(
                    ConversationAddress("teams" if p == "teams" else "slack", c),
                    gate.gate_id,
                    {"op": "reply", "card": (named_only if (p, c) in quiet else reminding).to_json()},
                )
                for p, c in state.state.get("conversations", [])
            ]
            await self.store.enqueue(deliveries, now)

    async def expire(self, gate: Gate) -> None:
        """Expire the waiting ``gate`` (compare-and-set); its cards say what follows."""
        if await self.store.update_gate(gate.gate_id, gate.version, GateState.EXPIRED, decided_at=self.clock.now()):
            await self.updates.publish(
                replace(gate, state=GateState.EXPIRED, version=gate.version + 1), note=_expiry_note(gate)
            )
