"""Release gates: pending → approved / rejected / expired / superseded, decided exactly once.

A click becomes a compare-and-set on the gate's version in the store. Only the change that moves
the gate to a final state sends the decision to Azure DevOps, so however many people click, on
however many replicas, Azure DevOps hears it once. Every decision and refusal goes to the audit log,
and every change updates the gate's card in every conversation that shows it.

A decision Azure DevOps refuses to apply (Handoff's identity may not decide that approval, or may not
start the release) did not take effect: the gate waits again without it, its cards say who was refused
and why, and nothing ever sends it again. Azure DevOps not answering is another matter: the decision
stands and is sent again until it is applied. An approval Azure DevOps completed itself meanwhile (someone
decided it there, or it timed out) keeps Azure DevOps' outcome: the gate takes it, and its cards say who
completed it there and that the decision from chat was not applied.

Azure DevOps' service hooks may be lost, so the sweep also asks it now and then how the approvals of the
waiting gates stand (see :meth:`Gatekeeper.reconcile`).

Gates come from Azure DevOps approvals (``source="azure-devops"``) and from Handoff itself: a model's
promotion gate (``source="handoff"``), opened when a new version is registered, whose approval starts
the configured release pipeline with that version and tags the version approved in Azure ML. Its
details carry the evidence (the contract verdict and the integration run per consuming app) and what
blocks Approve; a blocked gate can only be approved by an ``override`` from someone in one of the
policy's ``override_roles``, with a reason, which goes to the audit log and onto the model version (an
override of a promotion gate nothing blocks is refused: the person is asked to approve it instead).
A newer version's promotion gate supersedes the model's older ones still waiting (versions compared as
numbers: "10" is newer than "9"), so that approving one cannot release an older version over a newer one;
see :meth:`Gatekeeper.supersede_older_promotions`.

:class:`Gatekeeper` is what the rest of Handoff uses; it decides gates from chat itself and leaves the rest to
the collaborators it owns: :class:`~bot.approval_outcomes.ApprovalOutcomes` (Azure DevOps' own outcomes, and the
sweep's reconciling), :class:`~bot.approval_decisions.ApprovalDecisions` (a decision sent to Azure DevOps),
:class:`~bot.promotions.Promotions` (promotion gates, superseded by newer versions),
:class:`~bot.promotion_releases.PromotionReleases` (the releases their approvals start),
:class:`~bot.gate_reminders.GateReminders` (reminders and expiry) and :class:`~bot.gate_updates.GateUpdates`
(a gate's changes shown on its cards and audited).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from bot.approval_decisions import ApprovalDecisions
from bot.approval_gates import (
    ASSIGNED,
    approval_named,
    deciders,
    ended_unapproved,
    ended_with,
    gate_for,
    gate_place,
    holds,
    stage_of,
    unseen_groups,
)
from bot.approval_outcomes import ApprovalOutcomes
from bot.cards import Card, Fact, Link, Status
from bot.clock import Clock
from bot.events import (
    ApprovalCompleted,
    ApprovalEvent,
    ApprovalPending,
    Approver,
    DomainEvent,
    Person,
    Rejection,
    RunStateChanged,
    StageStateChanged,
    bounded_key,
)
from bot.gate_outcomes import HANDOFF, Applied, decided_in_azure_devops_only, expired_in_handoff, needed_in_chat
from bot.gate_reminders import GateReminders
from bot.gate_updates import GateUpdates
from bot.ingest import Ingest
from bot.interactions import MAX_COMMENT, ActionResult, ChatUser
from bot.outbox import ALERT_PREFIX
from bot.policy import Policy
from bot.ports import MLService, PipelineService, ServiceRefused, ServiceUnavailable, Store
from bot.promotion_releases import PromotionReleases
from bot.promotions import Promotions
from bot.records import CommandRun, ConversationAddress, Gate, GateDecision, GateState, JsonObject, NewDelivery

log = logging.getLogger("handoff.gates")

# Someone refused on a gate assigned to a group may have joined it since the gate opened: the refusal reads
# the groups again, at most this often per gate (each read is a few calls to Azure DevOps), waiting at most
# GROUP_READ_SECONDS for the answer (a click is answered within seconds). A read that failed counts too:
# while Azure DevOps is down, the next refusals are answered at once.
GROUP_REREAD = timedelta(seconds=60)
GROUP_READ_SECONDS = 3.0
# How long a replica that claimed applying a decision has before another one may try again (a claim is released
# as soon as the service did not answer, so that the next sweep tries again at once).
APPLY_LEASE = timedelta(minutes=10)


def _with_decider(details: JsonObject, user: ChatUser) -> JsonObject | None:
    """A gate's details that also know, under the email (or name) ``user``'s decisions are kept by, their name
    as chat gave it and their chat ids (``slack:<id>``, ``aad:<id>``...: how the configuration may name them,
    so that a card stops calling on a role member known by chat id once they decided); None when they know
    both already."""
    names = dict(details.get("names") or {})
    chat_ids = dict(details.get("chat_ids") or {})
    ids = sorted(i for i in user.identities if "@" not in i)
    named = bool(user.name) and user.name != user.display and names.get(user.display) != user.name
    if not named and chat_ids.get(user.display) == ids:
        return None
    if named:
        names[user.display] = user.name
    return {**details, "names": names, "chat_ids": {**chat_ids, user.display: ids}}


class Gatekeeper:
    """Opens gates from Azure DevOps approvals, decides them from chat, and keeps them current.

    Args:
        store: gates, decisions, audit log.
        policy: who may decide.
        ingest: how a gate change reaches its cards.
        clock: time for expiry and reminders.
        pipelines: Azure DevOps, where decisions are applied and releases started (None: record only).
        ml: Azure ML, where an approved model version is tagged.
        organization: the Azure DevOps organization as its events name it, for the cards of the releases
            Handoff starts (see :func:`bot.pipeline_runs.organization_name`).
        ops_channel: where a gate no conversation sees is announced, if anywhere (see :meth:`unrouted`).
    """

    def __init__(
        self,
        store: Store,
        policy: Policy,
        ingest: Ingest,
        clock: Clock,
        pipelines: PipelineService | None = None,
        ml: MLService | None = None,
        organization: str = "",
        ops_channel: Sequence[ConversationAddress] = (),
    ) -> None:
        self.store = store
        self.policy = policy
        self.ingest = ingest
        self.clock = clock
        self.pipelines = pipelines
        self.ml = ml
        self.organization = organization
        self.ops_channel = tuple(ops_channel)
        self._failed_group_reads: dict[str, datetime] = {}  # gate id: when reading its groups last failed
        self.updates = GateUpdates(store, policy, ingest, clock)
        self.outcomes = ApprovalOutcomes(store, policy, clock, self.updates, pipelines)
        self.approvals = ApprovalDecisions(store, self.updates, self.outcomes)
        self.promotions = Promotions(store, policy, clock, self.updates)
        self.releases = PromotionReleases(
            store, policy, ingest, clock, self.updates, self.promotions, pipelines, ml, organization
        )
        self.reminders = GateReminders(store, policy, clock, self.updates)

    @property
    def reconcile_every(self) -> timedelta:
        """How often a waiting gate's approval is looked up in Azure DevOps."""
        return self.outcomes.reconcile_every

    @reconcile_every.setter
    def reconcile_every(self, every: timedelta) -> None:
        self.outcomes.reconcile_every = every

    @property
    def reconcile_batch(self) -> int:
        """How many gates' approvals one sweep looks up in Azure DevOps at most."""
        return self.outcomes.reconcile_batch

    @reconcile_batch.setter
    def reconcile_batch(self, batch: int) -> None:
        self.outcomes.reconcile_batch = batch

    @property
    def reconcile_expired_every(self) -> timedelta:
        """How often the approval of a gate expired in Handoff is looked up, while it may still wait there."""
        return self.outcomes.reconcile_expired_every

    @reconcile_expired_every.setter
    def reconcile_expired_every(self, every: timedelta) -> None:
        self.outcomes.reconcile_expired_every = every

    @property
    def release_looked_for(self) -> timedelta:
        """How long a release whose start's answer was lost is looked for before it is started again."""
        return self.releases.release_looked_for

    @release_looked_for.setter
    def release_looked_for(self, looked_for: timedelta) -> None:
        self.releases.release_looked_for = looked_for

    # --- gates from Azure DevOps -------------------------------------------------------------------

    async def observe(self, event: DomainEvent) -> DomainEvent | None:
        """Open or close gates for approval events (idempotent: safe on redelivery); a pending approval comes
        back with what its gate policy says (:class:`GateTerms`), for its card."""
        if isinstance(event, ApprovalPending):
            gate = await self._reassign(await self._open(event), event)
            if gate.state is GateState.PENDING and (ended := await self._ended_before(event)):
                # its run ended before Handoff heard the approval asked for (a late hook, its completion lost)
                await self.outcomes.close_ended([gate], ended)
                gate = await self.store.get_gate(gate.gate_id) or gate
            needed = needed_in_chat(gate, self.policy.gate_policy(gate).min_approvers)
            return replace(event, terms=self.policy.terms(gate, needed))
        if isinstance(event, ApprovalCompleted):
            await self.outcomes.closed_in_azure_devops(event)
        if isinstance(event, RunStateChanged | StageStateChanged) and ended_unapproved(event):
            return await self._run_ended(event)
        return None

    async def _run_ended(self, event: RunStateChanged | StageStateChanged) -> DomainEvent | None:
        """A run, or one of its stages, ended: the gates still waiting on it close (nothing can decide them any
        more), and a run or stage Azure DevOps reports failed because an approval was rejected comes back with
        that rejection (:class:`Rejection`), so that its card reads as the rejection it is."""
        waiting = [g for g in await self.store.list_gates(GateState.PENDING) if holds(g, event)]
        if waiting:
            await self.outcomes.close_ended(waiting, event)
        if (event.result or "").lower() not in ("failed", "rejected"):
            return None
        rejected = [g for g in await self.store.list_gates(GateState.REJECTED) if holds(g, event)]
        if not rejected:
            return None
        if isinstance(event, StageStateChanged):
            return replace(event, rejection=Rejection(stage=event.stage or "", by=await self._rejected_by(rejected[0])))
        rejections = [Rejection(stage=stage_of(g), by=await self._rejected_by(g)) for g in rejected]
        return replace(event, rejections=tuple(rejections))

    async def _ended_before(self, event: ApprovalPending) -> str:
        """Why the run of ``event``'s approval, as its card shows it, ended before the approval was asked for ("the
        run was canceled"); "" when it did not (it goes on, or the approval is a newer attempt's: a rerun), or
        its card does not say. One read of the run's card; Azure DevOps is not asked."""
        if event.run is None:
            return ""
        card = await self.store.get_card_state(event.run.run_key)
        run = card.state if card is not None else {}
        if run.get("state") != "completed":
            return ""
        done = run.get("completed_at")
        if event.created_at is not None and done and event.created_at > datetime.fromisoformat(str(done)):
            return ""  # asked for after the run ended: a rerun's, whose own events are on their way
        return ended_with(str(run.get("result") or ""), run=True)

    async def _rejected_by(self, gate: Gate) -> str:
        """Who rejected ``gate``, as its card names them ("" when nobody said)."""
        card = await self.store.get_card_state(gate.gate_id)
        if card is not None and card.state.get("decided_by"):
            return str(card.state["decided_by"])
        if gate.details.get("decided_by"):
            return str(gate.details["decided_by"])
        decisions = await self.store.gate_decisions(gate.gate_id)
        last = decisions[-1] if decisions else None
        return str((gate.details.get("names") or {}).get(last.actor) or last.actor) if last else ""

    async def unrouted(self, event: ApprovalPending) -> None:
        """The pending approval ``event`` opened a gate whose card reaches no conversation (the ingest tells, once
        per approval): nobody can decide it from chat or learns of it from Handoff. The log says so, and the ops
        channel, if there is one."""
        named = approval_named(event)
        log.warning(
            "gate %s opened for %s, but no subscription routes it to any conversation: "
            "it must be decided in Azure DevOps",
            event.grouping_key,
            named,
        )
        if not self.ops_channel:
            return
        facts = [Fact("Approval", named)]
        if event.approvers:
            facts.append(Fact("Approvers", ", ".join(a.person.display for a in event.approvers)))
        notice = Card(
            title=f"No conversation sees the gate {event.pipeline or 'Release'} → {gate_place(event)}",
            status=Status.WARNING,
            summary="No subscription routes this approval to any conversation: decide it in Azure DevOps.",
            facts=tuple(facts),
            links=(Link("Open in Azure DevOps", event.web_url),) if event.web_url else (),
            context="Handoff",
        )
        key = bounded_key(f"{ALERT_PREFIX}unrouted-gate:{event.grouping_key}")
        payload = {"op": "card", "rank": 1, "card": notice.to_json()}
        await self.store.enqueue([NewDelivery(target, key, payload) for target in self.ops_channel], self.clock.now())
        if self.ingest.on_enqueued is not None:
            self.ingest.on_enqueued()

    async def _open(self, event: ApprovalEvent) -> Gate:
        gate = gate_for(event, self.clock.now(), self.policy)
        if await self.store.create_gate(gate):
            log.info("gate %s opened", gate.gate_id)
            return gate
        return await self.store.get_gate(gate.gate_id) or gate

    async def _reassign(self, gate: Gate, event: ApprovalPending) -> Gate:
        """Give the waiting ``gate`` the approvers of ``event``, its approval asked for again (reassigned, or an
        ``inSequence`` approval moved on to its next approver), so that who may decide it from chat is who Azure
        DevOps asks now (compare-and-set). An event no newer than the one the gate holds (a redelivery, or one
        that arrived late) changes nothing; so does one naming the same approvers (the members of its groups
        read since are kept)."""
        at = event.occurred_at.isoformat()
        for _ in range(20):
            held = gate.details.get("pending_at")
            if gate.state is not GateState.PENDING or gate.source != "azure-devops":
                return gate
            if held and datetime.fromisoformat(str(held)) >= event.occurred_at:
                return gate
            fresh = gate_for(event, self.clock.now(), self.policy).details
            same = (
                fresh["approver_names"] == gate.details.get("approver_names")
                and fresh["groups"] == gate.details.get("groups")
                and set(fresh["approvers"]) <= set(gate.details.get("approvers", []))
            )
            details = {**gate.details, "pending_at": at}
            if not same:
                details.update({key: fresh[key] for key in ASSIGNED})
                details.pop("groups_read_at", None)  # the new groups are read again on the next refusal
            updated = await self.store.update_gate(gate.gate_id, gate.version, gate.state, details)
            if updated is not None:
                if not same:
                    log.info("gate %s: its approval was asked for again, of %s", gate.gate_id, fresh["approver_names"])
                return updated
            gate = await self.store.get_gate(gate.gate_id) or gate
        log.error("gate %s kept changing: its new approvers are not taken", gate.gate_id)
        return gate

    # --- gates from Handoff: a model version's promotion ---------------------------------------------

    async def open_promotion_gate(
        self,
        *,
        model: str,
        version: str,
        release: JsonObject,
        policy: str,
        evidence: JsonObject,
        requesters: Sequence[str] = (),
    ) -> Gate | None:
        """Open the promotion gate of a newly registered model version; None if it is already open (see
        :meth:`bot.promotions.Promotions.open_gate`)."""
        return await self.promotions.open_gate(
            model=model, version=version, release=release, policy=policy, evidence=evidence, requesters=requesters
        )

    async def supersede_older_promotions(self, gate: Gate) -> list[Gate]:
        """Supersede the promotion gates that ``gate``'s model version, or a newer one, puts out of date; the gates
        this call superseded (see :meth:`bot.promotions.Promotions.supersede_older`)."""
        return await self.promotions.supersede_older(gate)

    async def cancel_unstarted_release(self, run: CommandRun, canceled_by: JsonObject) -> str | None:
        """Cancel ``run``, the release a promotion gate's approval starts, from chat while it is not known to have
        started; what Handoff does about it, or None when it is no longer waiting to start (see
        :meth:`bot.promotion_releases.PromotionReleases.cancel_unstarted_release`)."""
        return await self.releases.cancel_unstarted_release(run, canceled_by)

    async def follow_releases(self) -> None:
        """Poll the releases Handoff started on approving promotion gates until they end (see
        :meth:`bot.promotion_releases.PromotionReleases.follow_releases`)."""
        await self.releases.follow_releases()

    async def update_evidence(self, gate_id: str, change: Callable[[JsonObject], JsonObject]) -> Gate | None:
        """Replace a gate's details with ``change(details)``, compare-and-set; None if there is no such gate.

        A decision racing with the change loses its compare-and-set and looks again, so it is always
        made on the evidence the gate holds.
        """
        for _ in range(50):
            gate = await self.store.get_gate(gate_id)
            if gate is None:
                return None
            updated = await self.store.update_gate(gate.gate_id, gate.version, gate.state, change(dict(gate.details)))
            if updated is not None:
                return updated
        raise RuntimeError(f"gate {gate_id} kept changing")

    @staticmethod
    def blockers(gate: Gate, decisions: Sequence[GateDecision]) -> list[str]:
        """What keeps Approve disabled on ``gate``: nothing once someone overrode it."""
        if gate.source != HANDOFF or any(d.decision == "override" for d in decisions):
            return []
        return [str(b) for b in gate.details.get("blockers", [])]

    # --- decisions from chat -----------------------------------------------------------------------

    async def refuse_before_comment(
        self, user: ChatUser, gate_id: str, decision: str, conversation: ConversationAddress
    ) -> str | None:
        """Why ``user``'s click on ``gate_id`` is refused whatever comment they would give (recorded in the audit
        log), so that no form asks them for one; None when it may go on to the form.

        What only the decision itself can settle is left to :meth:`decide`: a reason the form asks for, a newer
        version superseding the gate, a group of its approvers the person may have joined since.
        """
        gate, decisions = await self._gate_and_decisions(gate_id)
        if gate is not None and decision == "approve" and not gate.state.is_final and await self._creator_told(gate):
            gate, decisions = await self._gate_and_decisions(gate_id)  # as it now knows who created its release
        if gate is None:
            return "This gate is not known to Handoff (it may have been cleaned up)."
        outcome, reason = "", ""
        if gate.state.is_final:
            outcome, reason = await self.promotions.already_decided(gate)
        elif gate.expires_at is not None and self.clock.now() >= gate.expires_at:
            outcome, reason = "refused: expired", "This gate has expired."
        elif only_there := decided_in_azure_devops_only(gate):
            outcome, reason = f"refused: {only_there}", only_there
        elif not (verdict := self.policy.may_decide(user, gate, decision, None, decisions)).allowed:
            if decision != "override" and gate.details.get("groups"):
                return None  # they may be in one of its groups by now: the decision asks Azure DevOps again
            outcome, reason = f"refused: {verdict.reason}", verdict.reason
        elif decision == "override" and not self.blockers(gate, decisions):
            outcome, reason = "refused: nothing blocks it", "Nothing blocks this gate: Approve it instead."
        elif decision == "approve" and (blocked := self.blockers(gate, decisions)):
            outcome, reason = "refused: blocked", self._blocked(gate, blocked)
        if not reason:
            return None
        await self.updates.audit(user.display, decision, gate, outcome, conversation, "")
        return reason

    def _blocked(self, gate: Gate, blocked: list[str]) -> str:
        """The answer to an Approve that ``blocked`` (what blocks ``gate``) keeps from it."""
        roles = ", ".join(self.policy.gate_policy(gate).override_roles)
        return f"Approve is blocked: {'; '.join(blocked)}. " + (
            f"Someone in {roles} may override it with a reason."
            if roles
            else "Its gate policy names no override_roles, so nobody may override it."
        )

    async def decide(
        self,
        user: ChatUser,
        gate_id: str,
        decision: str,
        comment: str,
        conversation: ConversationAddress,
    ) -> ActionResult:
        """Apply one person's click; exactly one click moves a gate to a final state."""
        comment = comment.strip()[:MAX_COMMENT]  # however it came, as long as any platform's form allows
        if decision not in ("approve", "reject", "override"):
            return ActionResult(False, f"Unknown decision {decision!r}.")
        for _ in range(10):
            gate, decisions = await self._gate_and_decisions(gate_id)
            if gate is None:
                return ActionResult(False, "This gate is not known to Handoff (it may have been cleaned up).")
            if gate.state.is_final:
                outcome, answer = await self.promotions.already_decided(gate)
                await self.updates.audit(user.display, decision, gate, outcome, conversation, comment)
                return ActionResult(False, answer, await self.updates.card(gate))
            now = self.clock.now()
            if gate.expires_at is not None and now >= gate.expires_at:
                await self.reminders.expire(gate)
                await self.updates.audit(user.display, decision, gate, "refused: expired", conversation, comment)
                return ActionResult(False, "This gate has expired.", await self.updates.card(gate))
            if await self.promotions.out_of_date(gate):
                continue  # a newer version's gate waits or was approved: this one is superseded now (look again)
            if only_there := decided_in_azure_devops_only(gate):
                await self.updates.audit(user.display, decision, gate, f"refused: {only_there}", conversation, comment)
                return ActionResult(False, only_there, await self.updates.card(gate))
            if decision == "approve" and await self._creator_told(gate):
                continue  # the gate now knows who created its release: look again
            verdict = self.policy.may_decide(user, gate, decision, comment, decisions)
            if not verdict.allowed and decision != "override" and await self._joined_a_group(gate, user):
                continue  # the gate now lists them among its groups' members: look again
            if not verdict.allowed:
                await self.updates.audit(
                    user.display, decision, gate, f"refused: {verdict.reason}", conversation, comment
                )
                return ActionResult(False, verdict.reason)
            if decision == "override" and not self.blockers(gate, decisions):
                # an override approves past what blocks Approve: with nothing blocking (as on every Azure DevOps
                # gate), it would only mislabel an approval and skip Approve's rules (who is an approver), so the
                # person is sent to Approve, on the card as it is now
                await self.updates.audit(
                    user.display, decision, gate, "refused: nothing blocks it", conversation, comment
                )
                return ActionResult(
                    False, "Nothing blocks this gate: Approve it instead.", await self.updates.card(gate)
                )
            blocked = self.blockers(gate, decisions) if decision == "approve" else []
            if blocked:
                reason = self._blocked(gate, blocked)
                await self.updates.audit(user.display, decision, gate, "refused: blocked", conversation, comment)
                return ActionResult(False, reason, await self.updates.card(gate))
            record = GateDecision(gate.gate_id, user.display, user.platform, decision, now, comment.strip())  # type: ignore[arg-type]
            approvals = len(
                {d.actor for d in decisions if d.decision in ("approve", "override")}
                | ({user.display} if decision != "reject" else set())
            )
            needed = needed_in_chat(gate, self.policy.gate_policy(gate).min_approvers)
            if decision == "reject":
                state = GateState.REJECTED
            elif approvals >= needed:
                state = GateState.APPROVED
            else:
                state = GateState.PENDING
            # the decider's name and chat ids as chat knows them, for the cards (a decision keeps only the email)
            named = _with_decider(gate.details, user)
            # a decision is claimed for applying in the same change that makes it, so that no sweep sends it while
            # this click does (see _retry_apply)
            claim = {**(named or gate.details), "apply_claimed_at": now.isoformat()}
            updated = await self.store.update_gate(
                gate.gate_id,
                gate.version,
                state,
                details=claim if state.is_final else named,
                decision=record,
                decided_at=now if state.is_final else None,
            )
            if updated is None:
                continue  # another click changed the gate first: look again
            break
        else:
            return ActionResult(False, "The gate is busy; try again in a moment.")
        if not state.is_final:
            await self.updates.publish(updated)
            await self.updates.audit(user.display, decision, updated, "recorded", conversation, comment)
            return ActionResult(
                True, f"Your approval is recorded ({approvals} of {needed}).", await self.updates.card(updated)
            )
        # the cards show the decision once Azure DevOps has it (or is not answering): one it refuses never shows
        applied = await self._apply(updated, record)
        await self.updates.audit(user.display, decision, updated, applied.outcome, conversation, comment)
        if applied.refused:
            return ActionResult(False, applied.note, await self.updates.card(updated))
        if applied.waiting:
            return ActionResult(
                True, f"Handoff approved it in Azure DevOps. {applied.note}", await self.updates.card(updated)
            )
        message = "Approved." if state is GateState.APPROVED else "Rejected."
        return ActionResult(True, f"{message} {applied.told}".strip(), await self.updates.card(updated))

    async def _gate_and_decisions(self, gate_id: str) -> tuple[Gate | None, list[GateDecision]]:
        """The gate and its decisions as they stood together: a decision is stored in the same change that moves
        the gate's version, so decisions read between two reads of the same version are that version's (else a
        click racing the same person's other click would be told they had approved already, on a gate approved)."""
        gate = await self.store.get_gate(gate_id)
        for _ in range(20):
            if gate is None:
                return None, []
            decisions = await self.store.gate_decisions(gate_id)
            again = await self.store.get_gate(gate_id)
            if again is not None and again.version == gate.version:
                return again, decisions
            gate = again
        raise RuntimeError(f"gate {gate_id} kept changing")

    async def _joined_a_group(self, gate: Gate, user: ChatUser) -> bool:
        """Whether ``user``, neither among the members ``gate`` knows of its groups nor in an approver role, is
        in one of its groups now.

        Azure DevOps is asked again (not its cache), at most once per :data:`GROUP_REREAD` per gate; what it
        says is kept on the gate (compare-and-set), so the card and other clicks see it too.
        """
        groups = [g for g in gate.details.get("groups", []) if g.get("id")]
        if not groups or self.pipelines is None or gate.source != "azure-devops":
            return False
        if Policy.is_assigned(user, gate) or self.policy.in_approver_role(user, gate):
            return False  # refused for another reason than not being an approver
        now = self.clock.now()
        read_at = gate.details.get("groups_read_at")
        if read_at and now - datetime.fromisoformat(read_at) < GROUP_REREAD:
            return False
        failed_at = self._failed_group_reads.get(gate.gate_id)
        if failed_at is not None and now - failed_at < GROUP_REREAD:
            return False
        asked = tuple(Approver(person=Person(name=g.get("name"), id=g["id"]), group=True) for g in groups)
        try:
            async with asyncio.timeout(GROUP_READ_SECONDS):
                found = await self.pipelines.approver_identities(asked, fresh=True)
        except (ServiceRefused, ServiceUnavailable, TimeoutError) as exc:
            log.warning("gate %s: could not read its groups again (%s)", gate.gate_id, exc or type(exc).__name__)
            self._failed_group_reads = {
                **{gate_id: at for gate_id, at in self._failed_group_reads.items() if now - at < GROUP_REREAD},
                gate.gate_id: now,
            }
            return False
        self._failed_group_reads.pop(gate.gate_id, None)
        named = {g["name"] for g in groups}
        details = {
            **gate.details,
            "approvers": list(dict.fromkeys([*gate.details.get("approvers", []), *deciders(found)])),
            "unseen_groups": [
                *(u for u in gate.details.get("unseen_groups", []) if u not in named),
                *unseen_groups(found),
            ],
            "groups_read_at": now.isoformat(),
        }
        updated = await self.store.update_gate(gate.gate_id, gate.version, gate.state, details)
        if updated is None:
            return True  # the gate changed meanwhile: the caller looks again
        return Policy.is_assigned(user, updated)

    async def _creator_told(self, gate: Gate) -> bool:
        """Whether Azure DevOps' Identities API now tells who created ``gate``'s classic release, named by id alone
        and not told when the gate opened (kept on the gate, compare-and-set: their email joins its requesters,
        whom its policy may bar from approving). False when it was told already, or Azure DevOps cannot say now:
        approving from chat then stays refused (:meth:`Policy.may_decide`)."""
        unresolved = gate.details.get("requester_unresolved") or {}
        if not unresolved.get("id") or self.pipelines is None or gate.source != "azure-devops":
            return False
        asked = (Approver(person=Person(name=str(unresolved.get("name") or ""), id=str(unresolved["id"]))),)
        try:
            async with asyncio.timeout(GROUP_READ_SECONDS):
                found = await self.pipelines.approver_identities(asked)
        except (ServiceRefused, ServiceUnavailable, TimeoutError) as exc:
            log.warning("gate %s: could not read who created its release (%s)", gate.gate_id, exc or type(exc).__name__)
            return False
        email = found[0].person.email if found else None
        details = {k: v for k, v in gate.details.items() if k != "requester_unresolved"}
        if email:  # (an identity without one, a service account, is nobody in chat)
            details["requesters"] = list(dict.fromkeys([*details.get("requesters", []), email.lower()]))
        await self.store.update_gate(gate.gate_id, gate.version, gate.state, details)
        return True  # told, or the gate changed meanwhile: the caller looks again

    async def _apply(self, gate: Gate, record: GateDecision, *, again: bool = False) -> Applied:
        """Send the decision that decided ``gate`` to Azure DevOps, then show the gate as it now is on its cards
        (a refused decision is shown as refused, the gate waiting again). ``again``: it may have been sent before
        (its answer lost: Azure DevOps did not answer, or the process stopped)."""
        if gate.source == HANDOFF:
            applied = await self.releases.apply(gate, record)
        elif self.pipelines is None or gate.source != "azure-devops":
            applied = Applied("applied")
        else:
            applied = await self.approvals.apply(gate, record, self.pipelines, again=again)
        if applied.retry:
            await self._release_claim(gate.gate_id)
        if not applied.refused:
            await self.updates.publish(await self.store.get_gate(gate.gate_id) or gate, note=applied.note)
        if applied.release_started is not None:  # after the decision's reply, in the thread that reads in order
            await self.releases.tell_started(gate, applied.release_started)
        return applied

    async def _release_claim(self, gate_id: str) -> None:
        """Let the next sweep send ``gate_id``'s decision again at once: the service did not answer this time."""
        for _ in range(20):
            current = await self.store.get_gate(gate_id)
            if current is None or "apply_claimed_at" not in current.details:
                return
            details = {k: v for k, v in current.details.items() if k != "apply_claimed_at"}
            if await self.store.update_gate(current.gate_id, current.version, current.state, details) is not None:
                return
        log.warning("gate %s kept changing: its claim to apply is left to lapse", gate_id)

    async def _retry_apply(self, gate: Gate) -> None:
        decisions = await self.store.gate_decisions(gate.gate_id)
        if not decisions or (self.pipelines is None and gate.source != HANDOFF):
            return
        # one sender at a time (a click, or a sweep on any replica): claim it, unless another's claim is still fresh
        now = self.clock.now()
        claimed = gate.details.get("apply_claimed_at")
        if claimed and now - datetime.fromisoformat(str(claimed)) < APPLY_LEASE:
            return
        claimed_gate = await self.store.update_gate(
            gate.gate_id, gate.version, gate.state, {**gate.details, "apply_claimed_at": now.isoformat()}
        )
        if claimed_gate is None:
            return
        gate = claimed_gate
        last = decisions[-1]
        applied = await self._apply(gate, last, again=True)
        await self.updates.audit("Handoff", f"apply {last.decision}", gate, applied.outcome, comment=last.comment)

    # --- keeping gates current ---------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire overdue gates, close waiting gates whose approval Azure DevOps says is completed and give gates
        expired in Handoff the outcome of theirs (its event may have been lost; see :meth:`reconcile`), and retry
        decisions Azure DevOps has not received yet (a refused decision is withdrawn, its gate waiting again; a
        gate marked ``refusal`` is one refused before that)."""
        now = self.clock.now()
        waiting: list[Gate] = []
        for gate in await self.store.list_gates(GateState.PENDING):
            if gate.expires_at is not None and now >= gate.expires_at:
                await self.reminders.expire(gate)
            else:
                waiting.append(gate)
        expired = [g for g in await self.store.list_gates(GateState.EXPIRED) if expired_in_handoff(g)]
        await self.reconcile([*waiting, *expired])
        for state in (GateState.APPROVED, GateState.REJECTED):
            for gate in await self.store.list_gates(state):
                if gate.details.get("applied") is False and not gate.details.get("refusal"):
                    await self._retry_apply(gate)
        await self.follow_releases()

    async def reconcile(self, waiting: Sequence[Gate]) -> None:
        """Ask Azure DevOps how the approvals of ``waiting`` gates stand, and close those it says are completed (see
        :meth:`bot.approval_outcomes.ApprovalOutcomes.reconcile`)."""
        await self.outcomes.reconcile(waiting)

    async def remind(self) -> None:
        """Re-announce each waiting gate once its own gate policy's ``remind_every`` has passed since it opened or
        was last announced (see :meth:`bot.gate_reminders.GateReminders.remind`)."""
        await self.reminders.remind()
