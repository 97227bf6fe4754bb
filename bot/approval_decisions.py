"""A decision from chat sent to Azure DevOps, as the approval of a gate opened from Azure DevOps: applied, refused
(for now, or for good: then the gate is decided in Azure DevOps only), too late (Azure DevOps completed the approval
first), or one approval of several Azure DevOps waits for."""

from __future__ import annotations

import logging

from bot.approval_outcomes import ApprovalOutcomes
from bot.gate_outcomes import (
    APPROVAL_GONE,
    NOT_PERMITTED,
    RELEASE_DECIDED,
    RELEASE_REASSIGNED,
    Applied,
    azure_devops_comment,
    clause,
    completed_how,
    counts_once,
    status_outcome,
)
from bot.gate_updates import GateUpdates
from bot.handoff_cards import DECISION_NOUNS
from bot.ports import PipelineService, ServiceRefused, ServiceUnavailable, Store
from bot.records import Gate, GateDecision, GateState

log = logging.getLogger("handoff.gates")


def _more_needed(gate: Gate) -> str:
    """What a gate whose Azure DevOps minimum exceeds Handoff's one approval says once that approval is given."""
    more = max(int(gate.details.get("min_required", 1)) - 1, 1)
    people = "approver" if more == 1 else "approvers"
    return (
        f"Handoff's approval counts once in Azure DevOps; it needs {more} more {people} there: decide in Azure DevOps."
    )


class ApprovalDecisions:
    """Sends the decision that decided a gate to its approval in Azure DevOps, once a click (or the sweep, again)
    decided it; the gate's cards then show how it went.

    Args:
        store: gates and their decisions.
        updates: where a gate's change is recorded, shown and audited.
        outcomes: how a gate takes the outcome Azure DevOps completed its approval with.
    """

    def __init__(self, store: Store, updates: GateUpdates, outcomes: ApprovalOutcomes) -> None:
        self.store = store
        self.updates = updates
        self.outcomes = outcomes

    async def apply(
        self, gate: Gate, record: GateDecision, pipelines: PipelineService, *, again: bool = False
    ) -> Applied:
        """Send ``record``, the decision that decided ``gate``, to its approval in ``pipelines``; how it went.
        ``again``: it may have been sent before (its answer lost)."""
        decision, text = record.decision, await self._sent_for(gate, record)
        project = str(gate.details.get("project", ""))
        release = gate.details.get("approval_kind") == "release"
        try:
            if release:
                await pipelines.decide_release_approval(project, gate.external_id, decision != "reject", text)
            else:
                await pipelines.decide_approval(project, gate.external_id, decision != "reject", text)
        except ServiceRefused as refused:
            if refused.already_decided:
                completed = await self._completed_first(gate, record, pipelines, refused, again=again)
                if completed is not None:
                    return completed
            if refused.forbidden or refused.not_found or (refused.already_decided and release):
                return await self._left_to_azure_devops(gate, record, refused)
            why = f"{clause(refused.reason)}; decide in Azure DevOps."
            return await self.updates.refused(gate, record, f"refused by Azure DevOps: {refused.reason}", why)
        except ServiceUnavailable:
            return Applied(
                "pending: Azure DevOps unavailable",
                "Azure DevOps is not answering; Handoff will apply it when it does.",
                retry=True,
            )
        if decision != "reject" and not release and await self._still_waiting(gate, pipelines):
            return await self._waits_for_more(gate)
        await self.updates.note(gate, applied=True)
        return Applied("applied")

    async def _sent_for(self, gate: Gate, record: GateDecision) -> str:
        """The comment that goes to Azure DevOps with ``record``, the decision that decided ``gate``."""
        decisions = await self.store.gate_decisions(gate.gate_id)
        last = decisions[-1] if decisions else None
        made = last is not None and (last.actor, last.decision) == (record.actor, record.decision)
        return azure_devops_comment(decisions if made else [*decisions, record])

    async def _still_waiting(self, gate: Gate, pipelines: PipelineService) -> bool:
        """Whether Azure DevOps still waits on ``gate``'s approval after Handoff's approval was applied (its minimum
        asks more approvers than Handoff's one identity). Asked of Azure DevOps; if it does not answer, its minimum
        says."""
        project = str(gate.details.get("project", ""))
        try:
            statuses = await pipelines.approval_statuses(project, [gate.external_id])
        except (ServiceRefused, ServiceUnavailable) as exc:
            log.warning("gate %s: could not ask Azure DevOps how its approval stands (%s)", gate.gate_id, exc)
            return int(gate.details.get("min_required", 1)) > 1
        found = next((s for s in statuses if s.approval_id.lower() == gate.external_id.lower()), None)
        return found is not None and found.status.lower() == "pending"

    async def _waits_for_more(self, gate: Gate) -> Applied:
        """Handoff's approval of ``gate`` is applied but Azure DevOps waits for more approvers: the gate waits
        again, to be decided in Azure DevOps (its completion closes it), and its cards say so."""
        note = _more_needed(gate)
        for _ in range(20):
            current = await self.store.get_gate(gate.gate_id)
            if current is None or current.state is not gate.state or current.details.get("decided_in"):
                break  # Azure DevOps completed it meanwhile
            details = {k: v for k, v in current.details.items() if k != "apply_claimed_at"}
            details.update(applied=True, handoff_approved=True, handoff_note=note)
            if await self.store.update_gate(current.gate_id, current.version, GateState.PENDING, details):
                log.info("gate %s: Handoff's approval is applied; Azure DevOps waits for more", gate.gate_id)
                break
        return Applied("applied; Azure DevOps waits for more approvers", note, waiting=True)

    async def _completed_first(
        self,
        gate: Gate,
        record: GateDecision,
        pipelines: PipelineService,
        refused: ServiceRefused,
        *,
        again: bool = False,
    ) -> Applied | None:
        """Azure DevOps refused ``record`` as too late for ``gate``'s approval: how it was completed, asked of Azure
        DevOps. The gate takes that outcome and its cards show it, with ``record`` not applied (unless the
        outcome is ``record`` itself, sent before and applied although the answer was lost). An approval sent
        ``again`` on a gate where Handoff's identity counts once, whose approval still waits, is that approval
        applied before (Handoff's step is no longer pending): it waits for more approvers. None when Azure DevOps
        does not say it is completed: the refusal stands; while it does not answer, the decision is sent again later.
        """
        project = str(gate.details.get("project", ""))
        release = gate.details.get("approval_kind") == "release"
        if release and not gate.details.get("release_id"):
            return None  # (a gate opened before Handoff kept its release) Azure DevOps can be asked by release only
        try:
            if release:
                releases = {gate.external_id: str(gate.details["release_id"])}
                statuses = await pipelines.release_approval_statuses(project, releases)
            else:
                statuses = await pipelines.approval_statuses(project, [gate.external_id])
        except ServiceRefused as exc:
            log.warning("gate %s: could not ask Azure DevOps how its approval stands (%s)", gate.gate_id, exc)
            return None
        except ServiceUnavailable as exc:
            # the approval may have been completed by this very decision, sent before with its answer lost: nothing
            # is refused until Azure DevOps says how it was completed
            log.warning("gate %s: could not ask Azure DevOps how its approval stands (%s)", gate.gate_id, exc)
            return Applied(
                "pending: Azure DevOps unavailable",
                "Azure DevOps is not answering; Handoff will apply it when it does.",
                retry=True,
            )
        found = next((s for s in statuses if s.approval_id.lower() == gate.external_id.lower()), None)
        if release and found is not None and found.status.lower() == "reassigned":
            return await self._left_to_azure_devops(gate, record, refused, said=RELEASE_REASSIGNED)
        outcome = status_outcome(found) if found is not None else None
        waits = found is not None and found.status.lower() == "pending"
        if waits and again and not release and record.decision != "reject" and counts_once(gate):
            # Handoff's step was approved by this approval's earlier send (on a first send, a step not pending is
            # an inSequence step whose turn has not come: refused indeed)
            return await self._waits_for_more(gate)
        if outcome is None:
            return None
        if outcome.state is gate.state and await self._sent_for(gate, record) in outcome.comments:
            await self.updates.note(gate, applied=True)  # it was this decision: the gate's cards show it as applied
            return Applied("applied")
        await self.outcomes.take_outcome(gate.gate_id, outcome)
        noun = DECISION_NOUNS.get(record.decision, "decision")
        done = completed_how(outcome)
        return Applied(
            f"not applied: {done} first", f"Your {noun} was not applied: the approval was already {done}.", refused=True
        )

    async def _left_to_azure_devops(
        self, gate: Gate, record: GateDecision, refused: ServiceRefused, said: str | None = None
    ) -> Applied:
        """Azure DevOps refused ``record`` in a way no retry changes: Handoff's identity may not decide ``gate``'s
        approval, the approval no longer exists, or it was decided already and Azure DevOps does not say how (a
        classic release's gate opened before Handoff kept its release id), or (``said``) it was reassigned to another
        approver. The decision did not take effect: the
        gate waits again, to be decided in Azure DevOps only (its completion event, if it
        comes, closes it); its cards and the person are told so in plain words (no buttons), later clicks are
        answered so without asking Azure DevOps again, and the service's own reason goes to the log."""
        if said is None:
            said = APPROVAL_GONE if refused.not_found else RELEASE_DECIDED if refused.already_decided else NOT_PERMITTED
        log.warning(
            "gate %s: Azure DevOps refused %s's %s for good, so it is left to Azure DevOps: %s",
            gate.gate_id,
            record.actor,
            record.decision,
            refused.reason,
        )
        reopened = await self.updates.reopen(gate, record, said, only_in_azure_devops=said)
        if reopened is not None:
            await self.updates.publish(reopened, note=said, refused=record)
        return Applied(f"refused by Azure DevOps: {refused.reason}", said, refused=True)
