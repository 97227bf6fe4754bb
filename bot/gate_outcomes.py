"""How a gate stands, in words: Azure DevOps' outcome for an approval, how applying a decision from chat went, the
comment a decision carries to Azure DevOps, and what a gate's cards and answers say once it can no longer be decided
from chat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.events import ApprovalEvent
from bot.living import CLOSED_IN_AZURE_DEVOPS, HANDOFF_BARRED, HANDOFF_NOT_ASSIGNED
from bot.ports import ApprovalStatus
from bot.records import Gate, GateDecision, GateState, JsonObject

STATUS_FROM_AZURE_DEVOPS = {
    "approved": GateState.APPROVED,
    "rejected": GateState.REJECTED,
    "timedout": GateState.EXPIRED,
    "canceled": GateState.SUPERSEDED,
    "skipped": GateState.SUPERSEDED,
}

# The source of the gates Handoff opens itself (a model version's promotion gate).
HANDOFF = "handoff"
# What a gate's cards and clicks say once Azure DevOps refused a decision from chat in a way no retry changes
# (the service's own reason, with its ids and error codes, goes to the log).
NOT_PERMITTED = "Azure DevOps does not let Handoff approve or reject this gate; decide in Azure DevOps."
APPROVAL_GONE = "This approval no longer exists in Azure DevOps."
# A classic release approval Azure DevOps says was decided already (Handoff cannot ask it how): its own completion
# event, if it comes, closes the gate with the outcome.
RELEASE_DECIDED = "This approval was already decided in Azure DevOps; see how there."
# A classic release approval Azure DevOps says was reassigned: its new approver decides it there.
RELEASE_REASSIGNED = "This approval was reassigned in Azure DevOps; its new approver decides it there."
# The longest comment Handoff gives Azure DevOps with a decision (the reference documents no limit: kept well
# within what its own forms take).
AZURE_DEVOPS_COMMENT_LIMIT = 2000


@dataclass(frozen=True)
class Applied:
    """How sending a decision went: the audit log's outcome, what the person is told, and whether it was
    refused (then the gate waits again without it)."""

    outcome: str
    note: str = ""
    refused: bool = False
    waiting: bool = False  # Handoff's approval was applied, and Azure DevOps waits for more approvers
    answer: str = ""  # what the person who decided is told, when it says more than the cards' note (links)
    retry: bool = False  # the service did not answer: the decision stands and is sent again by the next sweep
    release_started: JsonObject | None = None  # the release applying it started now, told after the decision

    @property
    def told(self) -> str:
        return self.answer or self.note


@dataclass(frozen=True)
class Outcome:
    """How Azure DevOps completed an approval itself: the gate's state, who completed it (a name; "" when
    nobody did or Azure DevOps did not say), and the comments of the steps that decided it; ``closed`` says why
    an approval nobody decided closed (``timed out in Azure DevOps``, ``the run was canceled``)."""

    state: GateState
    by: str = ""
    comments: tuple[str, ...] = ()
    closed: str = ""

    @property
    def comment(self) -> str:
        """The comment to show: the last one made."""
        return next((c for c in reversed(self.comments) if c), "")


def _outcome(status: str, by: str, comments: tuple[str, ...]) -> Outcome | None:
    """The outcome Azure DevOps' ``status`` word gives a gate (who decided and what they said, for a decision);
    None for a status that does not close a gate."""
    state = STATUS_FROM_AZURE_DEVOPS.get(status.lower())
    if state is None:
        return None
    if state not in (GateState.APPROVED, GateState.REJECTED):
        return Outcome(state, closed=CLOSED_IN_AZURE_DEVOPS.get(status.lower(), ""))
    return Outcome(state, by, comments)


def completed_how(outcome: Outcome) -> str:
    """How Azure DevOps completed an approval, in users' words: ``rejected in Azure DevOps by Bob``, ``canceled in
    Azure DevOps``, ``timed out in Azure DevOps``."""
    if outcome.state in (GateState.APPROVED, GateState.REJECTED):
        return f"{outcome.state.value} in Azure DevOps" + (f" by {outcome.by}" if outcome.by else "")
    if outcome.closed:
        return outcome.closed
    return "timed out in Azure DevOps" if outcome.state is GateState.EXPIRED else "canceled in Azure DevOps"


def event_outcome(event: ApprovalEvent) -> Outcome | None:
    """The outcome a completion event reports; None for a status that does not close a gate."""
    deciding = [a for a in event.approvers if a.status.lower() in ("approved", "rejected")]
    by = event.actor.display if event.actor else ", ".join(a.person.display for a in deciding)
    return _outcome(event.status, by, tuple(a.comment for a in deciding))


def status_outcome(status: ApprovalStatus) -> Outcome | None:
    """The outcome an approval Azure DevOps was asked about has; None while it waits."""
    by = status.decided_by.display if status.decided_by else ""
    return _outcome(status.status, by, (status.comment,))


def azure_devops_comment(decisions: Sequence[GateDecision]) -> str:
    """The comment Handoff gives Azure DevOps with the decision from chat that the last of ``decisions`` made: who
    decided, where, and why; for an approval, every approval from chat that made it up ("Approved in Slack by
    carol@contoso.com: one; in Teams by alice@contoso.com: second"), the people's comments cut short if all of
    it would be longer than :data:`AZURE_DEVOPS_COMMENT_LIMIT`."""
    if not decisions:
        return ""
    last = decisions[-1]
    made_of = [last]
    if last.decision != "reject":
        made_of = list({d.actor: d for d in decisions if d.decision in ("approve", "override")}.values())
    verbs = {"reject": "Rejected", "override": "Approved with an override"}
    heads, said = [], []
    for n, record in enumerate(made_of):
        verb = verbs.get(record.decision, "Approved")
        shown = "" if n and made_of[n - 1].decision == record.decision else f"{verb} "
        heads.append(f"{shown}in {record.platform.capitalize()} by {record.actor}")
        said.append(record.comment)
    room = AZURE_DEVOPS_COMMENT_LIMIT - sum(len(h) + 4 for h in heads)
    if sum(len(c) for c in said) > room:
        share = max(room // len(said), 1)
        said = [c if len(c) <= share else c[: share - 1].rstrip() + "…" for c in said]
    text = "; ".join(head + (f": {comment}" if comment else "") for head, comment in zip(heads, said, strict=True))
    return text if len(text) <= AZURE_DEVOPS_COMMENT_LIMIT else text[: AZURE_DEVOPS_COMMENT_LIMIT - 1] + "…"


def clause(reason: str) -> str:
    """A service's reason, to go on in a sentence."""
    return reason.strip().rstrip(".") or "no reason given"


def expired_in_handoff(gate: Gate) -> bool:
    """Whether ``gate`` expired in Handoff while its Azure DevOps approval may still wait there: Azure DevOps has
    not said how it completed (someone may yet decide it there, or it time out), nor that it is gone."""
    return (
        gate.state is GateState.EXPIRED
        and gate.source == "azure-devops"
        and not gate.details.get("decided_in")
        and gate.details.get("only_in_azure_devops") != APPROVAL_GONE
    )


def decided_already(gate: Gate) -> str:
    """The answer to a click on ``gate``, closed already (not by a newer model version)."""
    if gate.details.get("closed"):
        return f"This approval is closed: {gate.details['closed']}. There is nothing left to decide."
    if gate.state is GateState.EXPIRED:
        return "This gate has expired."
    if gate.state is GateState.SUPERSEDED:
        return "This approval was canceled in Azure DevOps." if gate.source != HANDOFF else "This gate was canceled."
    where = " in Azure DevOps" if gate.details.get("decided_in") else ""
    return f"This gate was already {gate.state.value}{where}."


def handoff_barred(gate: Gate) -> bool:
    """Whether Azure DevOps bars Handoff's own identity from deciding ``gate``'s approval (Handoff started the
    run, and the approval's requester may not decide it): then only people may, in Azure DevOps."""
    return bool(gate.details.get("handoff_barred"))


def decided_in_azure_devops_only(gate: Gate) -> str:
    """Why ``gate`` can no longer be decided from chat, only in Azure DevOps ("" when it can): Handoff is barred
    from its approval, or is not the approver of a classic release's approval, or Handoff's one approval is given
    and Azure DevOps waits for more approvers."""
    if handoff_barred(gate):
        return HANDOFF_BARRED
    if gate.details.get("handoff_not_assigned"):
        return HANDOFF_NOT_ASSIGNED
    if gate.details.get("only_in_azure_devops"):
        return str(gate.details["only_in_azure_devops"])
    if gate.details.get("handoff_approved"):
        return str(gate.details.get("handoff_note", "")) or "Handoff's approval is given: decide in Azure DevOps."
    return ""


def counts_once(gate: Gate) -> bool:
    """Whether Handoff's identity is one of ``gate``'s approvers, so that all the approvals from chat make one
    approval in Azure DevOps."""
    handoff = set(gate.details.get("handoff", []))
    return bool(handoff) and not handoff.isdisjoint(gate.details.get("approvers", []))


def needed_in_chat(gate: Gate, min_approvers: int) -> int:
    """How many approvals from chat decide ``gate``: its gate policy's ``min_approvers``, and Azure DevOps'
    minimum as far as Handoff can give it (one approval, when its own identity is an approver)."""
    required = int(gate.details.get("min_required", 1))
    return max(min(required, 1) if counts_once(gate) else required, min_approvers)
