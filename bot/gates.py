"""Release gates: pending → approved / rejected / expired / superseded, decided exactly once.

A click becomes a compare-and-set on the gate's version in the store. Only the change that moves
the gate to a final state sends the decision to Azure DevOps, so however many people click, on
however many replicas, Azure DevOps hears it once. Every decision and refusal goes to the audit log,
and every change updates the gate's card in every conversation that shows it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from bot.cards import Card
from bot.clock import Clock
from bot.events import ApprovalCompleted, ApprovalEvent, ApprovalPending, DomainEvent, GateChanged
from bot.events import GateDecision as DecisionView
from bot.ingest import Ingest
from bot.interactions import ActionResult, ChatUser
from bot.living import render
from bot.policy import Policy
from bot.ports import PipelineService, ServiceRefused, ServiceUnavailable, Store
from bot.records import AuditEntry, ConversationAddress, Gate, GateDecision, GateState, NewDelivery

log = logging.getLogger("handoff.gates")

STATUS_FROM_AZURE_DEVOPS = {
    "approved": GateState.APPROVED,
    "rejected": GateState.REJECTED,
    "timedout": GateState.EXPIRED,
    "canceled": GateState.SUPERSEDED,
    "skipped": GateState.SUPERSEDED,
}


def _identities(person_email: str | None, person_id: str | None) -> list[str]:
    found = []
    if person_email:
        found.append(person_email.lower())
    if person_id:
        found.append(f"aad:{person_id.lower()}")
    return found


class Gatekeeper:
    """Opens gates from Azure DevOps approvals, decides them from chat, and keeps them current.

    Args:
        store: gates, decisions, audit log.
        policy: who may decide.
        ingest: how a gate change reaches its cards.
        clock: time for expiry and reminders.
        pipelines: Azure DevOps, where decisions are applied (None: record only).
    """

    def __init__(
        self,
        store: Store,
        policy: Policy,
        ingest: Ingest,
        clock: Clock,
        pipelines: PipelineService | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.ingest = ingest
        self.clock = clock
        self.pipelines = pipelines

    # --- gates from Azure DevOps -------------------------------------------------------------------

    async def observe(self, event: DomainEvent) -> None:
        """Open or close gates for approval events (idempotent: safe on redelivery)."""
        if isinstance(event, ApprovalPending):
            await self._open(event)
        elif isinstance(event, ApprovalCompleted):
            await self._closed_in_azure_devops(event)

    async def _open(self, event: ApprovalEvent) -> None:
        now = self.clock.now()
        approvers = [i for a in event.approvers for i in _identities(a.person.email, a.person.id)]
        requester = event.requester
        policy = self.policy.settings.gates.get("default")
        expires = event.timeout_at or now + (policy.expire_after if policy else timedelta(hours=72))
        gate = Gate(
            gate_id=event.grouping_key,
            source="azure-devops",
            external_id=event.approval_id,
            title=f"{event.pipeline or 'Release'} → {event.environment or event.stage or 'next stage'}",
            state=GateState.PENDING,
            version=1,
            created_at=now,
            expires_at=expires,
            details={
                "approval_kind": event.approval_kind,
                "project": event.project or "",
                "approvers": approvers,
                "approver_names": [a.person.display for a in event.approvers],
                "requesters": [
                    i
                    for p in ((requester,) if requester else ()) + event.blocked_approvers
                    for i in _identities(p.email, p.id)
                ],
                "min_required": event.min_required_approvers,
                "applied": False,
            },
            policy={"name": "default"},
        )
        if await self.store.create_gate(gate):
            log.info("gate %s opened", gate.gate_id)

    async def _closed_in_azure_devops(self, event: ApprovalEvent) -> None:
        gate = await self.store.get_gate(event.grouping_key)
        state = STATUS_FROM_AZURE_DEVOPS.get(event.status.lower())
        if gate is None or state is None or gate.state.is_final:
            return
        details = {**gate.details, "applied": True, "decided_in": "Azure DevOps"}
        if await self.store.update_gate(gate.gate_id, gate.version, state, details, decided_at=self.clock.now()):
            await self._audit("Azure DevOps", "decide", gate, state.value, comment="decided in Azure DevOps")

    # --- decisions from chat -----------------------------------------------------------------------

    async def decide(
        self,
        user: ChatUser,
        gate_id: str,
        decision: str,
        comment: str,
        conversation: ConversationAddress,
    ) -> ActionResult:
        """Apply one person's click; exactly one click moves a gate to a final state."""
        if decision not in ("approve", "reject", "override"):
            return ActionResult(False, f"Unknown decision {decision!r}.")
        for _ in range(10):
            gate = await self.store.get_gate(gate_id)
            if gate is None:
                return ActionResult(False, "This gate is not known to Handoff (it may have been cleaned up).")
            if gate.state.is_final:
                await self._audit(user.display, decision, gate, "refused: already decided", conversation, comment)
                return ActionResult(False, f"This gate was already {gate.state.value}.", await self._card(gate))
            now = self.clock.now()
            if gate.expires_at is not None and now >= gate.expires_at:
                await self._expire(gate)
                await self._audit(user.display, decision, gate, "refused: expired", conversation, comment)
                return ActionResult(False, "This gate has expired.", await self._card(gate))
            decisions = await self.store.gate_decisions(gate.gate_id)
            verdict = self.policy.may_decide(user, gate, decision, comment, decisions)
            if not verdict.allowed:
                await self._audit(user.display, decision, gate, f"refused: {verdict.reason}", conversation, comment)
                return ActionResult(False, verdict.reason)
            record = GateDecision(gate.gate_id, user.display, user.platform, decision, now, comment.strip())  # type: ignore[arg-type]
            approvals = len(
                {d.actor for d in decisions if d.decision == "approve"}
                | ({user.display} if decision != "reject" else set())
            )
            needed = max(int(gate.details.get("min_required", 1)), self.policy.gate_policy(gate).min_approvers)
            if decision == "reject":
                state = GateState.REJECTED
            elif approvals >= needed:
                state = GateState.APPROVED
            else:
                state = GateState.PENDING
            updated = await self.store.update_gate(
                gate.gate_id, gate.version, state, decision=record, decided_at=now if state.is_final else None
            )
            if updated is None:
                continue  # another click changed the gate first: look again
            break
        else:
            return ActionResult(False, "The gate is busy; try again in a moment.")
        outcome = "recorded"
        message = {
            GateState.APPROVED: "Approved.",
            GateState.REJECTED: "Rejected.",
            GateState.PENDING: f"Your approval is recorded ({approvals} of {needed}).",
        }[state]
        # every card shows the decision, and who made it where, before Azure DevOps is told
        await self._publish(updated)
        if state.is_final:
            outcome, note = await self._apply(updated, user, decision, comment)
            if note:
                message = f"{message} {note}"
                current = await self.store.get_gate(updated.gate_id) or updated
                await self._publish(current, note=note)
        await self._audit(user.display, decision, updated, outcome, conversation, comment)
        return ActionResult(True, message, await self._card(updated))

    async def _apply(self, gate: Gate, user: ChatUser, decision: str, comment: str) -> tuple[str, str]:
        """Send the winning decision to Azure DevOps; returns (audit outcome, note for the person)."""
        if self.pipelines is None or gate.source != "azure-devops":
            return "applied", ""
        verb = "Approved" if decision != "reject" else "Rejected"
        text = f"{verb} in {user.platform.capitalize()} by {user.display}" + (f": {comment}" if comment else "")
        project = str(gate.details.get("project", ""))
        try:
            if gate.details.get("approval_kind") == "release":
                await self.pipelines.decide_release_approval(project, gate.external_id, decision != "reject", text)
            else:
                await self.pipelines.decide_approval(project, gate.external_id, decision != "reject", text)
        except ServiceRefused as refused:
            await self._note(gate, applied=False, refusal=refused.reason)
            return f"refused by Azure DevOps: {refused.reason}", f"Azure DevOps refused it: {refused.reason}"
        except ServiceUnavailable:
            return (
                "pending: Azure DevOps unavailable",
                "Azure DevOps is not answering; Handoff will apply it when it does.",
            )
        await self._note(gate, applied=True)
        return "applied", ""

    async def _note(self, gate: Gate, applied: bool, refusal: str | None = None) -> None:
        for _ in range(5):
            current = await self.store.get_gate(gate.gate_id)
            if current is None:
                return
            details = {**current.details, "applied": applied}
            if refusal:
                details["refusal"] = refusal
            if await self.store.update_gate(current.gate_id, current.version, current.state, details):
                return

    async def _expire(self, gate: Gate) -> None:
        if await self.store.update_gate(gate.gate_id, gate.version, GateState.EXPIRED, decided_at=self.clock.now()):
            await self._publish(replace(gate, state=GateState.EXPIRED, version=gate.version + 1), note="Expired")

    # --- keeping gates current ---------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire overdue gates and retry decisions Azure DevOps has not received yet."""
        now = self.clock.now()
        for gate in await self.store.list_gates(GateState.PENDING):
            if gate.expires_at is not None and now >= gate.expires_at:
                await self._expire(gate)
        for state in (GateState.APPROVED, GateState.REJECTED):
            for gate in await self.store.list_gates(state):
                if gate.details.get("applied") is False and not gate.details.get("refusal"):
                    await self._retry_apply(gate)

    async def remind(self, every: timedelta) -> None:
        """Re-announce gates that have waited longer than ``every`` since they opened or were last announced."""
        now = self.clock.now()
        for gate in await self.store.list_gates(GateState.PENDING):
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
            card = render(state.state)
            reminder = replace(card, title=f"Still waiting for approval: {card.title}", actions=(), facts=())
            targets = [
                ConversationAddress("teams" if p == "teams" else "slack", c)
                for p, c in state.state.get("conversations", [])
            ]
            await self.store.enqueue(
                [NewDelivery(t, gate.gate_id, {"op": "reply", "card": reminder.to_json()}) for t in targets], now
            )

    async def _retry_apply(self, gate: Gate) -> None:
        decisions = await self.store.gate_decisions(gate.gate_id)
        if not decisions or self.pipelines is None:
            return
        last = decisions[-1]
        user = ChatUser(platform="teams" if last.platform == "teams" else "slack", user_id=last.actor, email=last.actor)
        outcome, _ = await self._apply(gate, user, last.decision, last.comment)
        await self._audit("Handoff", f"apply {last.decision}", gate, outcome, comment=last.comment)

    # --- helpers -----------------------------------------------------------------------------------

    async def _publish(self, gate: Gate, note: str = "") -> None:
        """Send the gate's change through ingest, which updates its card in every conversation."""
        decisions = await self.store.gate_decisions(gate.gate_id)
        needed = max(int(gate.details.get("min_required", 1)), self.policy.gate_policy(gate).min_approvers)
        change = GateChanged(
            source="handoff",
            event_id=f"{gate.gate_id}:v{gate.version}:{note}"[:400],
            occurred_at=self.clock.now(),
            gate_id=gate.gate_id,
            status=gate.state.value,
            decisions=tuple(
                DecisionView(actor=d.actor, decision=d.decision, comment=d.comment, platform=d.platform)
                for d in decisions
            ),
            needed=needed,
            note=note,
        )
        await self.ingest.accept(change)

    async def _card(self, gate: Gate) -> Card | None:
        state = await self.store.get_card_state(gate.gate_id)
        return render(state.state) if state else None

    async def _audit(
        self,
        actor: str,
        action: str,
        gate: Gate,
        outcome: str,
        conversation: ConversationAddress | None = None,
        comment: str = "",
    ) -> None:
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
