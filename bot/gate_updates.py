"""A gate's changes written where they show: its details (compare-and-set), its cards in every conversation that
shows it, the thread under them, and the audit log."""

from __future__ import annotations

import logging
from typing import Any

from bot.cards import Card
from bot.clock import Clock
from bot.events import Completion, GateChanged
from bot.events import GateDecision as DecisionView
from bot.gate_outcomes import HANDOFF, Applied, Outcome, needed_in_chat
from bot.handoff_cards import DECISION_NOUNS
from bot.ingest import Ingest
from bot.living import render
from bot.policy import Policy
from bot.ports import Store
from bot.records import AuditEntry, ConversationAddress, Gate, GateDecision, GateState, NewDelivery

log = logging.getLogger("handoff.gates")


def _superseding(gate: Gate) -> dict[str, Any]:
    """What a superseded promotion gate's :class:`GateChanged` says of the version that superseded it."""
    newer = gate.details.get("superseded_by") if gate.state is GateState.SUPERSEDED else None
    if not newer:
        return {}
    return {"superseded_by": f"{newer.get('model')}:{newer.get('version')}", "superseded_by_url": newer.get("url")}


class GateUpdates:
    """Writes what happens to gates: shows each change on the gate's cards (through ingest), replies in their thread,
    records how applying a decision went, puts a refused decision's gate back to waiting, and keeps the audit log.

    Args:
        store: gates, decisions, card states, the outbox, the audit log.
        policy: the gate policies (how many approvals a gate's card counts).
        ingest: how a gate change reaches its cards.
        clock: when things happen.
    """

    def __init__(self, store: Store, policy: Policy, ingest: Ingest, clock: Clock) -> None:
        self.store = store
        self.policy = policy
        self.ingest = ingest
        self.clock = clock

    async def publish(
        self,
        gate: Gate,
        note: str = "",
        refused: GateDecision | None = None,
        completed: Outcome | None = None,
        not_applied: GateDecision | None = None,
    ) -> None:
        """Send the gate's change through ingest, which updates its card in every conversation (``completed``:
        the gate took the outcome Azure DevOps completed its approval with, ``not_applied`` being the decision
        from chat that then never took effect)."""
        decisions = await self.store.gate_decisions(gate.gate_id)
        needed = needed_in_chat(gate, self.policy.gate_policy(gate).min_approvers)
        names = dict(gate.details.get("names") or {})
        chat_ids = dict(gate.details.get("chat_ids") or {})

        def shown(d: GateDecision) -> DecisionView:
            name, ids = str(names.get(d.actor, "")), tuple(str(i) for i in chat_ids.get(d.actor, ()))
            return DecisionView(
                actor=d.actor, decision=d.decision, comment=d.comment, platform=d.platform, name=name, chat_ids=ids
            )

        change = GateChanged(
            source="handoff",
            event_id=f"{gate.gate_id}:v{gate.version}:{note}"[:400],
            occurred_at=self.clock.now(),
            gate_id=gate.gate_id,
            status=gate.state.value,
            decisions=tuple(shown(d) for d in decisions),
            needed=needed,
            note=note,
            revision=gate.version,
            refused=shown(refused) if refused else None,
            completed=Completion(by=completed.by, comment=completed.comment) if completed else None,
            not_applied=shown(not_applied) if not_applied else None,
            handoff_approved=gate.state is GateState.PENDING and bool(gate.details.get("handoff_approved")),
            only_in_azure_devops=str(gate.details.get("only_in_azure_devops", ""))
            if gate.state is GateState.PENDING
            else "",
            closed=str(gate.details.get("closed", "")) if gate.state.is_final else "",
            **_superseding(gate),
        )
        await self.ingest.accept(change)

    async def card(self, gate: Gate) -> Card | None:
        """``gate``'s card as it stands now; None before it was drawn."""
        state = await self.store.get_card_state(gate.gate_id)
        return render(state.state) if state else None

    async def reply_in_thread(self, gate: Gate, card: Card) -> None:
        """Post ``card`` in the thread of ``gate``'s cards, wherever they are shown."""
        state = await self.store.get_card_state(gate.gate_id)
        shown = state.state.get("conversations", []) if state is not None else []
        replies = [
            NewDelivery(
                ConversationAddress("teams" if p == "teams" else "slack", c),
                gate.gate_id,
                {"op": "reply", "card": card.to_json()},
            )
            for p, c in shown
        ]
        if replies:
            await self.store.enqueue(replies, self.clock.now())
            if self.ingest.on_enqueued:
                self.ingest.on_enqueued()

    async def audit(
        self,
        actor: str,
        action: str,
        gate: Gate,
        outcome: str,
        conversation: ConversationAddress | None = None,
        comment: str = "",
    ) -> None:
        """Record in the audit log what ``actor`` did (``action``) to ``gate`` and how it came out."""
        await self.store.append_audit(
            AuditEntry(
                at=self.clock.now(),
                actor=actor,
                action=action,
                target=f"gate {gate.gate_id} ({gate.title})",
                outcome=outcome,
                platform=conversation.platform if conversation else "",
                conversation=conversation.conversation_id if conversation else "",
                comment=comment,
            )
        )

    async def note(self, gate: Gate, applied: bool, **more: Any) -> Gate | None:
        """Record how applying went in the gate's details; returns the gate as it now is."""
        for _ in range(20):
            current = await self.store.get_gate(gate.gate_id)
            if current is None:
                return None
            details = {**current.details, **more, "applied": applied}
            updated = await self.store.update_gate(current.gate_id, current.version, current.state, details)
            if updated is not None:
                return updated
        return None

    async def reopen(self, gate: Gate, record: GateDecision, why: str, **more: Any) -> Gate | None:
        """Put ``gate``, decided by ``record``, back to waiting without it (compare-and-set), its details taking
        ``more``; None if it is settled otherwise meanwhile (Azure DevOps completed the approval, or the release
        has started)."""
        for _ in range(20):
            current = await self.store.get_gate(gate.gate_id)
            if (
                current is None
                or current.state is not gate.state
                or current.details.get("applied") is not False
                or current.details.get("decided_in")
                or current.details.get("release_run")
                or current.details.get("release_canceled")
            ):
                return None
            details = {k: v for k, v in current.details.items() if k not in ("refusal", "apply_claimed_at")}
            details.update(more)
            details["refused"] = {
                "actor": record.actor,
                "decision": record.decision,
                "platform": record.platform,
                "why": why,
                "at": self.clock.now().isoformat(),
            }
            reopened = await self.store.reopen_gate(current.gate_id, current.version, details, record)
            if reopened is not None:
                log.info("gate %s waits again: %s's %s was refused", gate.gate_id, record.actor, record.decision)
                return reopened
        log.error(
            "gate %s kept changing: %s's refused %s is not withdrawn", gate.gate_id, record.actor, record.decision
        )
        return None

    async def refused(self, gate: Gate, record: GateDecision, outcome: str, why: str) -> Applied:
        """``record`` was refused (``why``, to go after "... was refused:"): it did not take effect, so the gate
        waits again without it, and its cards say whose decision was refused and why."""
        reopened = await self.reopen(gate, record, why)
        if reopened is not None:
            await self.publish(reopened, note=why, refused=record)
        noun = DECISION_NOUNS.get(record.decision, "decision")
        told = (
            f"Azure DevOps refused your {noun}: {why}"
            if gate.source != HANDOFF
            else f"Your {noun} was not applied: {why}"
        )
        return Applied(outcome, told, refused=True)
