"""YAML-pipeline approvals: who may decide, quorum, separation of duties, and the service's refusals.

Rules (reference/azure-devops.md §2.1):

- The caller's identity (from the PAT) is the approver. A PATCH acts on every pending step assigned to the
  caller, directly or through a group.
- ``minRequiredApprovers`` approved steps approve the whole approval (0 means every approver); one
  rejected step rejects it. ``inSequence`` approvals open their steps one at a time.
- With ``requesterCannotBeApprover`` the identity that queued the run is in ``blockedApprovers``.
- Refusals, as ``typeKey`` and status: ``ApprovalNotFoundException`` 404, ``ApprovalAlreadyCompletedException``
  409, ``ApprovalUnauthorizedException`` and ``ApprovalBlockedException`` 403, ``ApprovalStateChangeException``
  409, ``ApprovalIdNotProvidedException`` / ``ArgumentException`` 400. The 403/409 for the last three are
  the emulator's choice: the service's mapping is not documented and the SDK does not expose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.emulators.azure_devops.errors import ServiceError, bad_request
from adapters.emulators.azure_devops.model import Approval, ApprovalStep, Run
from adapters.emulators.azure_devops.world import Environment, Identity, World, stable_id

DECISIONS = ("approved", "rejected")


@dataclass(frozen=True)
class ApprovalUpdate:
    """One item of the ``PATCH _apis/pipelines/approvals`` body."""

    approval_id: str
    status: str
    comment: str

    @classmethod
    def parse(cls, item: Any) -> ApprovalUpdate:
        if not isinstance(item, dict):
            raise bad_request("Each approval update must be an object.")
        approval_id = str(item.get("approvalId") or "")
        if not approval_id:
            raise ServiceError(400, "ApprovalIdNotProvidedException", "Approval id must be provided.")
        if item.get("reassignTo") or item.get("assignedApprover"):
            raise bad_request("Reassigning approvals is not supported by the emulator.")
        status = str(item.get("status") or "")
        if status not in DECISIONS:
            raise bad_request(f"Invalid status '{status}' for approval {approval_id}: use approved or rejected.")
        return cls(approval_id=approval_id, status=status, comment=str(item.get("comment") or ""))


def create_approval(world: World, run: Run, stage_name: str, environment: Environment, now: datetime) -> Approval:
    """The approval an environment's check opens when ``run`` reaches the stage."""
    check = environment.approval
    assert check is not None
    in_sequence = check.execution_order == "inSequence"
    steps = [
        ApprovalStep(
            assigned=who,
            order=n + 1,
            status="uninitiated" if in_sequence and n > 0 else "pending",
            initiated_on=None if in_sequence and n > 0 else now,
            last_modified_on=now,
        )
        for n, who in enumerate(check.approvers)
    ]
    minimum = check.min_required_approvers or len(steps)
    return Approval(
        id=stable_id("approval", run.id, stage_name, now.isoformat()),
        run_id=run.id,
        stage_name=stage_name,
        environment=environment,
        check=check,
        created_on=now,
        last_modified_on=now,
        steps=steps,
        min_required=min(minimum, len(steps)),
        blocked=[run.requested_by] if check.requester_cannot_be_approver else [],
    )


def caller_steps(world: World, approval: Approval, caller: Identity, status: str) -> list[ApprovalStep]:
    """The steps ``caller`` may act on, or the refusal the service would answer."""
    if not approval.is_pending:
        raise ServiceError(
            409,
            "ApprovalAlreadyCompletedException",
            f"Approval {approval.id} has already been completed with status {approval.status}.",
        )
    mine = [s for s in approval.steps if caller.id in world.members(s.assigned)]
    if not mine:
        raise ServiceError(
            403,
            "ApprovalUnauthorizedException",
            f"{caller.display_name} is not authorized to update approval {approval.id}: "
            "only its assigned approvers can approve or reject it.",
        )
    if any(b.id == caller.id for b in approval.blocked):
        raise ServiceError(
            403,
            "ApprovalBlockedException",
            f"{caller.display_name} cannot {status[:-1]} approval {approval.id}: "
            "the requester of the run is not allowed to approve it.",
        )
    pending = [s for s in mine if s.status == "pending"]
    if not pending:
        raise ServiceError(
            409,
            "ApprovalStateChangeException",
            f"Approval {approval.id} has no pending step for {caller.display_name}.",
        )
    return pending


def apply_decision(
    world: World, approval: Approval, caller: Identity, status: str, comment: str, now: datetime
) -> bool:
    """Record ``caller``'s decision; return True when a new step was opened (an ``inSequence`` hand-over).

    Sets ``approval.decided`` once the approval is no longer pending.
    """
    steps = caller_steps(world, approval, caller, status)
    for step in steps:
        step.status = "approved" if status == "approved" else "rejected"
        step.actual_approver = caller
        step.comment = comment
        step.last_modified_on = now
        step.last_modified_by = caller
    approval.last_modified_on = now
    approved = sum(1 for s in approval.steps if s.status == "approved")
    if any(s.status == "rejected" for s in approval.steps):
        _finish(approval, "rejected", now)
    elif approved >= approval.min_required:
        _finish(approval, "approved", now)
    elif approval.check.execution_order == "inSequence":
        nxt = next((s for s in approval.steps if s.status == "uninitiated"), None)
        if nxt is not None:
            nxt.status = "pending"
            nxt.initiated_on = now
            nxt.last_modified_on = now
            return True
    return False


def close(approval: Approval, status: str, now: datetime) -> None:
    """End a pending approval without a decision: ``timedOut`` or ``canceled``."""
    if not approval.is_pending:
        return
    for step in approval.steps:
        if step.status in ("pending", "uninitiated"):
            step.status = "timedOut" if status == "timedOut" else "canceled"
            step.last_modified_on = now
    _finish(approval, status, now)


def _finish(approval: Approval, status: str, now: datetime) -> None:
    for step in approval.steps:
        if step.status in ("pending", "uninitiated"):
            step.status = "skipped"
            step.last_modified_on = now
    approval.status = status  # type: ignore[assignment]
    approval.last_modified_on = now
    approval.decided.set()
