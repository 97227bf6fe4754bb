"""What a gate keeps of an Azure DevOps approval (a YAML pipeline's check, or a classic release's approval): the
gate an approval opens, who may decide it, and which run and stages it holds, so that it closes when they end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.events import ApprovalEvent, ApprovalPending, Approver, Person, RunStateChanged, StageStateChanged
from bot.gate_outcomes import HANDOFF
from bot.policy import Policy
from bot.records import Gate, GateState

# What a gate keeps of whom Azure DevOps asks to decide its approval: taken again when it asks anew.
ASSIGNED = (
    "approvers",
    "approver_names",
    "groups",
    "unseen_groups",
    "unmatched",
    "blocked",
    "blocked_names",
    "requester_names",
    "handoff_not_assigned",
)
_ENDED_UNAPPROVED = frozenset({"failed", "rejected", "canceled", "cancelled", "stopped", "skipped"})


def gate_for(event: ApprovalEvent, now: datetime, policy: Policy) -> Gate:
    """The pending gate, opened ``now``, for an approval Azure DevOps asks for; it expires at the approval's timeout,
    else after the ``default`` gate policy's ``expire_after``."""
    requester = _requester(event)
    default = policy.settings.gates.get("default")
    expires = event.timeout_at or now + (default.expire_after if default else timedelta(hours=72))
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
            # a group's step may be decided by any of its members
            "approvers": deciders(event.approvers),
            "approver_names": [a.person.display for a in event.approvers],
            # the groups, to read again when someone who may have joined one since is refused
            "groups": [{"id": a.person.id, "name": a.person.display} for a in event.approvers if a.group],
            # approvers Handoff cannot match a chat user to: groups whose members Azure DevOps did not tell,
            # people it named without an email
            "unseen_groups": unseen_groups(event.approvers),
            "unmatched": [a.person.display for a in event.approvers if not a.group and not a.person.email],
            "requesters": [
                i
                for p in ((requester,) if requester else ()) + event.blocked_approvers
                for i in _identities(p.email, p.id)
            ],
            # who Azure DevOps bars from approving (requesterCannotBeApprover): refused in chat whatever Handoff's
            # own policy says, since Azure DevOps sees only Handoff's identity and cannot refuse them itself
            "blocked": _blocked(event, requester),
            # the approvers a refusal must not name as who may decide: Azure DevOps bars them, or they
            # asked for the run (barred where the policy says so)
            "blocked_names": _named_among(event.approvers, event.blocked_approvers),
            "requester_names": _named_among(event.approvers, (requester,) if requester else ()),
            "min_required": event.min_required_approvers,
            # a classic release's approval Handoff may not decide (not its approver): decided in Azure DevOps only
            "handoff_not_assigned": False,
            "applied": False,
            # when Azure DevOps asked for the approval (last), so that only a newer ask changes its approvers
            "pending_at": event.occurred_at.isoformat(),
            # the run and stage it holds, to close it once they end (and to tell the run's card of a rejection)
            "run_key": event.run.run_key if event.run else "",
            "stages": list(event.stage_names),
        },
        policy={"name": "default"},
    )
    if (creator := event.requester) is not None and creator.id and not creator.email:
        # a classic release's creator named by id alone, whom the Identities API did not tell (or who has no
        # email): a click to approve asks it again
        gate.details["requester_unresolved"] = {"id": creator.id, "name": creator.name}
    if event.approval_kind == "release" and event.release_id:
        gate.details["release_id"] = event.release_id  # how Azure DevOps is asked about its approval
    if event.handoff is not None:
        handoff = _identities(event.handoff.email, event.handoff.id)
        barred = {i for p in event.blocked_approvers for i in _identities(p.email, p.id)}
        gate.details["handoff"] = handoff
        gate.details["handoff_barred"] = not barred.isdisjoint(handoff)
        gate.details["handoff_not_assigned"] = event.handoff_not_assigned
        # people read the approvers' names: Handoff's own account is not one of them
        gate.details["approver_names"] = [
            a.person.display
            for a in event.approvers
            if a.group or set(_identities(a.person.email, a.person.id)).isdisjoint(handoff)
        ]
    return gate


def deciders(approvers: Sequence[Approver]) -> list[str]:
    """The identities that may decide for ``approvers``: each person, and each member of a group."""
    return [i for a in approvers for p in (a.person, *a.members) for i in _identities(p.email, p.id)]


def unseen_groups(approvers: Sequence[Approver]) -> list[str]:
    """Groups whose members Azure DevOps did not tell, or told only in part."""
    return [a.person.display for a in approvers if a.group and not (a.members and a.members_complete)]


def _named_among(approvers: Sequence[Approver], people: Sequence[Person]) -> list[str]:
    """The names of the ``approvers`` (people, not groups) who are among ``people``."""
    wanted = {i for p in people for i in _identities(p.email, p.id)}
    return [
        a.person.display
        for a in approvers
        if not a.group and not wanted.isdisjoint(_identities(a.person.email, a.person.id))
    ]


def _blocked(event: ApprovalEvent, requester: Person | None) -> list[str]:
    """The identities of ``event``'s blocked approvers, with those of the approvers and the requester who are the
    same people (a hook names a blocked approver by id alone: their email comes from where it is known)."""
    blocked = {i for p in event.blocked_approvers for i in _identities(p.email, p.id)}
    found = set(blocked)
    for person in (*(a.person for a in event.approvers if not a.group), *((requester,) if requester else ())):
        if not blocked.isdisjoint(known := _identities(person.email, person.id)):
            found.update(known)
    return sorted(found)


def _requester(event: ApprovalEvent) -> Person | None:
    """Who asked for the run or release ``event``'s approval holds, where Handoff knows: a classic release's
    approval names them; a pipeline approval's hook does not, so its pending event carries the run's requester
    (read from the Build API) as its actor. A completion's actor is who decided it: no requester."""
    if event.requester is not None:
        return event.requester
    if isinstance(event, ApprovalPending) and event.approval_kind == "pipeline":
        return event.actor
    return None


def _identities(person_email: str | None, person_id: str | None) -> list[str]:
    found = []
    if person_email:
        found.append(person_email.lower())
    if person_id:
        found.append(f"aad:{person_id.lower()}")
    return found


def gate_place(event: ApprovalEvent) -> str:
    """Where an approval's run or release waits: its environment or stage."""
    return event.environment or event.stage or "next stage"


def approval_named(event: ApprovalEvent) -> str:
    """An approval as the log and the ops channel name it: ``release approval app-y-classic.CD (Release-7) →
    QA in project mlops``."""
    kind = "release" if event.approval_kind == "release" else "pipeline"
    which = event.release_name or (event.run.run_name if event.run else "")
    name = f"{kind} approval {event.pipeline or '?'}" + (f" ({which})" if which else "")
    return f"{name} → {gate_place(event)}" + (f" in project {event.project}" if event.project else "")


def holds(gate: Gate, event: RunStateChanged | StageStateChanged) -> bool:
    """Whether ``gate`` is an approval of ``event``'s run (of its stage, for a stage's event)."""
    if gate.source == HANDOFF or not gate.details.get("run_key") or gate.details["run_key"] != event.run.run_key:
        return False
    if isinstance(event, RunStateChanged):
        return True
    return not {n.lower() for n in gate.details.get("stages", [])}.isdisjoint(n.lower() for n in event.stage_names)


def stage_of(gate: Gate) -> str:
    """The stage ``gate``'s approval held, as the run's card names it."""
    stages = gate.details.get("stages") or []
    return str(stages[0]) if stages else gate.title


def ended_why(event: RunStateChanged | StageStateChanged) -> str:
    """Why the gates of the run or stage ``event`` ended close: ``the run was canceled``."""
    return ended_with(event.result or "", run=isinstance(event, RunStateChanged))


def ended_with(result: str, *, run: bool) -> str:
    """Why the gates of a run (else a stage) that ended with ``result`` close."""
    result = result.lower()
    if result in ("canceled", "cancelled", "stopped"):
        return "the run was canceled"
    if run:
        return "the run failed" if result == "failed" else "the run ended"
    return "the stage was skipped" if result == "skipped" else "the stage ended"


def ended_unapproved(event: RunStateChanged | StageStateChanged) -> bool:
    """Whether ``event`` tells that a run or stage ended otherwise than by passing its approvals: only then may
    its gates still wait, or its failure be a rejection (every run and stage that succeeds, the most of the
    hooks, is spared the gates' reads; a gate a missed approval left waiting is found by the sweep)."""
    return event.state.lower() == "completed" and (event.result or "").lower() in _ENDED_UNAPPROVED
