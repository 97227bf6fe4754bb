"""How Azure DevOps completed the approvals of gates, and the gates taking that outcome: heard from an approval's
completion event, from the end of the run or stage it held, or asked of Azure DevOps by the sweep, should those
events be lost (see :meth:`ApprovalOutcomes.reconcile`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from bot.approval_gates import ended_why, gate_for
from bot.clock import Clock
from bot.events import ApprovalEvent, RunStateChanged, StageStateChanged
from bot.gate_outcomes import Outcome, azure_devops_comment, event_outcome, expired_in_handoff, status_outcome
from bot.gate_updates import GateUpdates
from bot.policy import Policy
from bot.ports import ApprovalStatus, PipelineService, ServiceRefused, ServiceUnavailable, Store
from bot.records import Gate, GateDecision, GateState, JsonObject

log = logging.getLogger("handoff.gates")

# The completion event of an approval may be lost: a waiting gate's approval is looked up in Azure DevOps at
# most this often, and at most RECONCILE_BATCH gates per sweep (those looked up longest ago first).
RECONCILE_EVERY = timedelta(minutes=5)
RECONCILE_BATCH = 50
# A gate expired in Handoff (its policy's expire_after, Handoff's own) whose approval may still wait in Azure DevOps:
# its approval is looked up at most this often (after the waiting gates'), within RECONCILE_EXPIRED_FOR of the gate's
# opening (an approval check's timeout: 43200 minutes in Azure DevOps' documentation, reference §2.1).
RECONCILE_EXPIRED_EVERY = timedelta(hours=1)
RECONCILE_EXPIRED_FOR = timedelta(days=30)


def _said(outcome: Outcome) -> JsonObject:
    """What a gate's details keep of how Azure DevOps completed its approval: who decided it, or why it closed."""
    said: JsonObject = {}
    if outcome.by:
        said["decided_by"] = outcome.by
    if outcome.closed:
        said["closed"] = outcome.closed
    return said


def _asked_at(gate: Gate) -> datetime:
    """When Azure DevOps was last asked how ``gate``'s approval stands (when it opened, if never)."""
    asked = gate.details.get("asked_at")
    return datetime.fromisoformat(str(asked)) if asked else gate.created_at


class ApprovalOutcomes:
    """Gives gates the outcome Azure DevOps completed their approvals with, however Handoff hears of it.

    Args:
        store: gates and their decisions.
        policy: the gate policies (a gate Azure DevOps completed before Handoff heard it asked for).
        clock: when things happen.
        updates: where a gate's change is shown and audited.
        pipelines: Azure DevOps, asked how approvals stand (None: only its events are heard).
    """

    def __init__(
        self, store: Store, policy: Policy, clock: Clock, updates: GateUpdates, pipelines: PipelineService | None
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.updates = updates
        self.pipelines = pipelines
        #: How often a waiting gate's approval is looked up in Azure DevOps, and how many gates per sweep.
        self.reconcile_every = RECONCILE_EVERY
        self.reconcile_batch = RECONCILE_BATCH
        #: How often the approval of a gate expired in Handoff is looked up, while it may still wait there.
        self.reconcile_expired_every = RECONCILE_EXPIRED_EVERY

    async def closed_in_azure_devops(self, event: ApprovalEvent) -> None:
        outcome = event_outcome(event)
        if outcome is None:
            return
        state = outcome.state
        for _ in range(10):
            now = self.clock.now()
            gate = await self.store.get_gate(event.grouping_key)
            if gate is None:
                # decided before Handoff heard it asked for (its pending event late, or lost): kept as decided, so
                # that a late pending event opens nothing to click or to be reminded of
                opened = gate_for(event, self.clock.now(), self.policy)
                details = {**opened.details, "applied": True, "decided_in": "Azure DevOps", **_said(outcome)}
                decided = replace(opened, state=state, details=details, decided_at=now)
                if await self.store.create_gate(decided):
                    await self.updates.audit(
                        "Azure DevOps", "decide", decided, state.value, comment="decided in Azure DevOps"
                    )
                    return
                continue  # the pending event opened it meanwhile: close it
            # a waiting gate's card shows the event itself; one that showed a decision from chat, or its expiry, is told
            if await self.settle(gate, outcome, show=gate.state.is_final):
                return

    async def settle(self, gate: Gate, outcome: Outcome, *, show: bool) -> bool:
        """Give ``gate`` the ``outcome`` Azure DevOps completed its approval with (one compare-and-set); False if
        the gate changed meanwhile (look again). ``show`` publishes it to the gate's cards.

        If Handoff's decision had not reached Azure DevOps (it was not answering, or the decision is on its
        way), Azure DevOps' outcome stands: the gate is applied, and nothing sends the decision again or
        takes the gate back to waiting. Unless the outcome is that very decision (applied although its answer
        was lost), the cards say who completed the approval in Azure DevOps and that the decision was not
        applied. A gate that expired in Handoff (its policy's expiry, not the approval's) takes the outcome too:
        its cards no longer say the approval still waits in Azure DevOps, but how it was completed there.
        """
        held: GateDecision | None = None
        details = {**gate.details, "applied": True, "decided_in": "Azure DevOps", **_said(outcome)}
        decided_at = gate.decided_at or self.clock.now()
        expired_here = expired_in_handoff(gate)
        if expired_here:
            # Handoff's expiry is its own: the approval waited on in Azure DevOps, which has now completed it
            decided_at = self.clock.now()
        elif gate.state.is_final:
            unapplied = gate.details.get("applied") is False and not gate.details.get("decided_in")
            if gate.state not in (GateState.APPROVED, GateState.REJECTED) or not unapplied:
                return True  # settled already
            decisions = await self.store.gate_decisions(gate.gate_id)
            held = decisions[-1] if decisions else None
            sent = azure_devops_comment(decisions)
            if held is None or (outcome.state is gate.state and sent in outcome.comments):
                if outcome.state is gate.state:
                    details = {**gate.details, "applied": True}  # Handoff's decision took effect
                held = None
        updated = await self.store.update_gate(
            gate.gate_id, gate.version, outcome.state, details, decided_at=decided_at
        )
        if updated is None:
            return False
        said = "decided in Azure DevOps" if not gate.state.is_final else "completed in Azure DevOps"
        if expired_here:
            said = "decided in Azure DevOps after it expired in Handoff"
        if outcome.closed:
            said = f"closed: {outcome.closed}"
        await self.updates.audit("Azure DevOps", "decide", gate, outcome.state.value, comment=said)
        if held is not None or (show and "decided_in" in details):
            await self.updates.publish(updated, completed=outcome, not_applied=held)
        elif gate.state.is_final:
            await self.updates.publish(
                updated
            )  # Handoff's own decision: its cards no longer say it waits for Azure DevOps
        return True

    async def take_outcome(self, gate_id: str, outcome: Outcome) -> None:
        """Close the gate with the ``outcome`` Azure DevOps completed its approval with, heard otherwise than by
        the approval's own event, and show it on the gate's cards (see :meth:`settle`)."""
        for _ in range(20):
            gate = await self.store.get_gate(gate_id)
            if gate is None or await self.settle(gate, outcome, show=True):
                return
        log.error("gate %s kept changing: Azure DevOps' %s is not shown", gate_id, outcome.state.value)

    async def close_ended(self, waiting: Sequence[Gate], event: RunStateChanged | StageStateChanged | str) -> None:
        """Close the ``waiting`` gates of a run or stage that ended (``event``, or why it ended): with the outcome
        Azure DevOps gives their approvals (rejected, timed out... its completion event may come later, or not at
        all), else as closed because the run or stage ended; one whose approval Azure DevOps says still waits
        stays open."""
        statuses: dict[str, ApprovalStatus] = {}
        if self.pipelines is not None:
            projects: dict[str, list[str]] = {}
            for gate in waiting:
                projects.setdefault(str(gate.details.get("project", "")), []).append(gate.external_id)
            for project, ids in projects.items():
                try:
                    found = await self.pipelines.approval_statuses(project, ids)
                except (ServiceRefused, ServiceUnavailable) as exc:
                    log.warning("could not ask Azure DevOps how %d approvals of %s stand (%s)", len(ids), project, exc)
                    continue
                statuses.update((s.approval_id.lower(), s) for s in found)
        ended = event if isinstance(event, str) else ended_why(event)
        for gate in waiting:
            status = statuses.get(gate.external_id.lower())
            outcome = status_outcome(status) if status else None
            if status is not None and outcome is None:
                # Azure DevOps says it still waits: the event is an earlier attempt's (a stage rerun opened this one)
                continue
            if outcome is None or outcome.state is GateState.SUPERSEDED:
                outcome = Outcome(GateState.SUPERSEDED, closed=ended)  # the run's end says more than "canceled"
            log.info("gate %s: its run or stage ended (%s), so it closes %s", gate.gate_id, ended, outcome.state.value)
            await self.take_outcome(gate.gate_id, outcome)

    async def reconcile(self, waiting: Sequence[Gate]) -> None:
        """Ask Azure DevOps how the approvals of ``waiting`` gates stand, and close those it says are completed
        (approved, rejected, timed out, canceled), as their lost completion event would have; ``waiting`` may
        also hold gates expired in Handoff, whose approval may still wait in Azure DevOps: those it says are
        completed take that outcome.

        Bounded: a waiting gate is asked about at most once per :attr:`reconcile_every` (claimed with a
        compare-and-set, so one replica asks), an expired one at most once per :attr:`reconcile_expired_every`
        and for :data:`RECONCILE_EXPIRED_FOR` after it opened; at most :attr:`reconcile_batch` gates per call, the
        waiting ones first, then those asked about longest ago, in one request per project and kind of approval
        (a few for classic release approvals not all waiting: see
        :meth:`~bot.ports.PipelineService.release_approval_statuses`). A classic release approval is asked about
        by its release, so only a gate that keeps its release id is (not one opened before gates kept it); one
        Azure DevOps says was reassigned is not completed, and its gate waits on, as for its completion event.
        """
        if self.pipelines is None:
            return
        now = self.clock.now()
        due = sorted(
            (g for g in waiting if self._due(g, now)),
            key=lambda g: (g.state is not GateState.PENDING, _asked_at(g)),
        )[: self.reconcile_batch]
        asked: dict[tuple[str, str], list[Gate]] = {}
        for gate in due:
            details = {**gate.details, "asked_at": now.isoformat()}
            claimed = await self.store.update_gate(gate.gate_id, gate.version, gate.state, details)
            if claimed is not None:  # else it changed meanwhile: the next sweep looks again
                kind = str(gate.details.get("approval_kind"))
                asked.setdefault((str(gate.details.get("project", "")), kind), []).append(claimed)
        for (project, kind), gates in asked.items():
            try:
                statuses = await self._approval_statuses(self.pipelines, project, kind, gates)
            except (ServiceRefused, ServiceUnavailable) as exc:
                log.warning("could not ask Azure DevOps how %d approvals of %s stand (%s)", len(gates), project, exc)
                continue
            found = {s.approval_id.lower(): s for s in statuses}
            for gate in gates:
                status = found.get(gate.external_id.lower())
                if status is None or (outcome := status_outcome(status)) is None:
                    continue  # still waiting (or unknown to Azure DevOps: the gate expires in time)
                log.info("gate %s: Azure DevOps says its approval is %s", gate.gate_id, status.status)
                await self.take_outcome(gate.gate_id, outcome)

    @staticmethod
    async def _approval_statuses(
        pipelines: PipelineService, project: str, kind: str, gates: Sequence[Gate]
    ) -> list[ApprovalStatus]:
        """How the approvals of ``gates`` (of ``project``, all of ``kind``) stand in Azure DevOps."""
        if kind == "release":
            releases = {g.external_id: str(g.details["release_id"]) for g in gates}
            return await pipelines.release_approval_statuses(project, releases)
        return await pipelines.approval_statuses(project, [g.external_id for g in gates])

    def _due(self, gate: Gate, now: datetime) -> bool:
        """Whether :meth:`reconcile` asks Azure DevOps about ``gate``'s approval now."""
        kind = gate.details.get("approval_kind")
        askable = kind == "pipeline" or (kind == "release" and bool(gate.details.get("release_id")))
        if gate.source != "azure-devops" or not askable:
            return False
        if gate.state is GateState.PENDING:
            return now - _asked_at(gate) >= self.reconcile_every
        return (
            expired_in_handoff(gate)
            and now - gate.created_at < RECONCILE_EXPIRED_FOR
            and now - _asked_at(gate) >= self.reconcile_expired_every
        )
