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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bot.cards import Card, Fact, Link, Status
from bot.clock import Clock
from bot.events import (
    ApprovalCompleted,
    ApprovalEvent,
    ApprovalPending,
    Approver,
    Completion,
    DomainEvent,
    GateChanged,
    Person,
    Rejection,
    RunStateChanged,
    StageStateChanged,
    bounded_key,
)
from bot.events import GateDecision as DecisionView
from bot.handoff_cards import DECISION_NOUNS
from bot.ingest import Ingest
from bot.interactions import MAX_COMMENT, ActionResult, ChatUser, link
from bot.living import CLOSED_IN_AZURE_DEVOPS, HANDOFF_BARRED, render
from bot.lookups import INTERACTIVE_SECONDS, answered_within
from bot.outbox import ALERT_PREFIX
from bot.pipeline_runs import RELEASE_KEY_PREFIX, ended_state, pipeline_run_event, release_command, release_key
from bot.policy import Policy
from bot.ports import (
    ApprovalStatus,
    MLService,
    PipelineService,
    RunStatus,
    ServiceRefused,
    ServiceUnavailable,
    StartedRun,
    Store,
)
from bot.records import (
    AuditEntry,
    CommandRun,
    CommandRunState,
    ConversationAddress,
    Gate,
    GateDecision,
    GateState,
    JsonObject,
    NewDelivery,
)

log = logging.getLogger("handoff.gates")
T = TypeVar("T")

STATUS_FROM_AZURE_DEVOPS = {
    "approved": GateState.APPROVED,
    "rejected": GateState.REJECTED,
    "timedout": GateState.EXPIRED,
    "canceled": GateState.SUPERSEDED,
    "skipped": GateState.SUPERSEDED,
}

HANDOFF = "handoff"
# Someone refused on a gate assigned to a group may have joined it since the gate opened: the refusal reads
# the groups again, at most this often per gate (each read is a few calls to Azure DevOps), waiting at most
# GROUP_READ_SECONDS for the answer (a click is answered within seconds). A read that failed counts too:
# while Azure DevOps is down, the next refusals are answered at once.
GROUP_REREAD = timedelta(seconds=60)
GROUP_READ_SECONDS = 3.0
# How long a replica that claimed applying a decision has before another one may try again (a claim is released
# as soon as the service did not answer, so that the next sweep tries again at once).
APPLY_LEASE = timedelta(minutes=10)
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
APPROVED_TAGS = {"approved": "true"}
# The completion event of an approval may be lost: a waiting gate's approval is looked up in Azure DevOps at
# most this often, and at most RECONCILE_BATCH gates per sweep (those looked up longest ago first).
RECONCILE_EVERY = timedelta(minutes=5)
RECONCILE_BATCH = 50
# A gate expired in Handoff (its policy's expire_after, Handoff's own) whose approval may still wait in Azure DevOps:
# its approval is looked up at most this often (after the waiting gates'), within RECONCILE_EXPIRED_FOR of the gate's
# opening (an approval check's timeout: 43200 minutes in Azure DevOps' documentation, reference §2.1).
RECONCILE_EXPIRED_EVERY = timedelta(hours=1)
RECONCILE_EXPIRED_FOR = timedelta(days=30)
# What a reminder keeps of its gate's card: who may decide, how many approvals it needs, how far it got, and
# when it expires (the evidence and the buttons stay on the card).
REMINDER_FACTS = ("Approvers", "Approvals needed", "Approved so far", "Expires")
# A release Handoff started stays its one run of that gate for as long as a gate can wait and be retried.
RELEASE_ONCE = timedelta(days=90)
# How long the sweep polls a release Handoff started (as the runner polls the runs it starts).
RELEASE_FOLLOWED = timedelta(hours=12)
# A release start whose answer was lost may have queued the run: its run is looked for among the pipeline's runs
# queued since RELEASE_CLOCK_SKEW before the start (Azure DevOps' clock is not Handoff's), and the release is
# started again only once RELEASE_LOOKED_FOR has passed since the last start without its run showing up.
RELEASE_CLOCK_SKEW = timedelta(minutes=10)
RELEASE_LOOKED_FOR = timedelta(minutes=2)
_START_UNKNOWN = ("start_unknown", "error", "tried_at", "last_tried_at")


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


def _not_known_yet(pipeline: str) -> Applied:
    """How applying a promotion stands while it is not known whether its release started."""
    return Applied(
        "pending: not known whether Azure DevOps started the release",
        f"Azure DevOps did not say whether it started {pipeline}: Handoff looks for the run there, and starts the "
        "release only if it did not.",
        retry=True,
    )


def _releases(run: RunStatus, branch: str | None, parameters: Mapping[str, str]) -> bool:
    """Whether ``run`` is a run of the release with ``parameters`` (the model version among them), on ``branch``
    where one is configured."""
    if branch and run.branch and run.branch != (branch if branch.startswith("refs/") else f"refs/heads/{branch}"):
        return False
    return all(run.parameters.get(name) == value for name, value in parameters.items())


def _known(details: JsonObject) -> JsonObject:
    """A release run's details without what said its start was not known."""
    return {k: v for k, v in details.items() if k not in _START_UNKNOWN}


async def _within(call: Awaitable[T], seconds: float | None) -> T:
    """``call``'s answer; with ``seconds`` (someone waits for it in chat), Azure DevOps not answering within them
    counts as :class:`~bot.ports.ServiceUnavailable`."""
    return await (answered_within(call, "Azure DevOps", seconds) if seconds is not None else call)


def _release_parameters(gate: Gate) -> dict[str, str]:
    """The template parameters the release of promotion ``gate`` runs with: the configured ones and the version."""
    release: dict[str, Any] = dict(gate.details.get("release") or {})
    parameters = {str(k): str(v) for k, v in dict(release.get("parameters") or {}).items()}
    parameters.update(modelName=str(gate.details.get("model", "")), modelVersion=str(gate.details.get("version", "")))
    return parameters


def _canceled_unstarted(gate: Gate, run: CommandRun) -> bool:
    """Whether ``run``, the release of ``gate``, was canceled from chat before it was known to have started."""
    mark = gate.details.get("release_canceled")
    return (
        isinstance(mark, dict)
        and mark.get("run") == run.id
        and run.state is CommandRunState.CANCELED
        and not run.backend_run_id
    )


def _canceled_there(gate: Gate, run: CommandRun) -> Applied:
    """How applying ``gate``'s approval stands once the run the start of its release queued, although someone had
    canceled that release from chat (``run``), was canceled in Azure DevOps, or Azure DevOps refused to cancel it."""
    by, pipeline = _canceler(gate), str(run.details.get("pipeline", ""))
    named = f"{pipeline} {run.details.get('name') or run.backend_run_id}"
    if refusal := str(run.details.get("cancel_refused") or ""):
        why = f"{_clause(refusal)}. Cancel it among the runs of the pipeline {pipeline}"
        return Applied(
            f"release canceled by {by}; Azure DevOps refused to cancel {run.backend_run_id}: {refusal}",
            f"Release canceled by {by}, but Azure DevOps refused to cancel {named}, which it had started: {why}.",
            answer=f"Azure DevOps had started it as {named}, and refused to cancel it: {why}.",
        )
    return Applied(
        f"release canceled by {by}",
        f"Release canceled by {by}: Azure DevOps had started {named} (run {run.id}), and Handoff canceled it.",
        answer=f"Azure DevOps had started it as {named}, though its answer was lost: Handoff canceled that run.",
    )


def _canceler(gate: Gate) -> str:
    """Who canceled ``gate``'s release from chat, as chat names them."""
    mark = gate.details.get("release_canceled") or {}
    by = mark.get("by") if isinstance(mark, dict) else None
    return str(by.get("name") or by.get("who") or "") if isinstance(by, dict) else ""


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


def _completed_how(outcome: Outcome) -> str:
    """How Azure DevOps completed an approval, in users' words: ``rejected in Azure DevOps by Bob``, ``canceled in
    Azure DevOps``, ``timed out in Azure DevOps``."""
    if outcome.state in (GateState.APPROVED, GateState.REJECTED):
        return f"{outcome.state.value} in Azure DevOps" + (f" by {outcome.by}" if outcome.by else "")
    if outcome.closed:
        return outcome.closed
    return "timed out in Azure DevOps" if outcome.state is GateState.EXPIRED else "canceled in Azure DevOps"


def _event_outcome(event: ApprovalEvent) -> Outcome | None:
    """The outcome a completion event reports; None for a status that does not close a gate."""
    deciding = [a for a in event.approvers if a.status.lower() in ("approved", "rejected")]
    by = event.actor.display if event.actor else ", ".join(a.person.display for a in deciding)
    return _outcome(event.status, by, tuple(a.comment for a in deciding))


def _status_outcome(status: ApprovalStatus) -> Outcome | None:
    """The outcome an approval Azure DevOps was asked about has; None while it waits."""
    by = status.decided_by.display if status.decided_by else ""
    return _outcome(status.status, by, (status.comment,))


def _azure_devops_comment(decisions: Sequence[GateDecision]) -> str:
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


def _clause(reason: str) -> str:
    """A service's reason, to go on in a sentence."""
    return reason.strip().rstrip(".") or "no reason given"


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


def reminder(card: Card, gate: Gate) -> Card:
    """The thread reply that reminds of the waiting ``gate`` shown as ``card``: its title and summary, its
    approvers, the approvals it needs (and has so far) and when it expires; no buttons. An Azure DevOps approval's
    card does not show when it expires (its timeout, else its policy's expiry): the gate knows."""
    facts = [fact for fact in card.facts if fact.label in REMINDER_FACTS]
    if gate.expires_at is not None and not any(fact.label == "Expires" for fact in facts):
        facts.append(Fact("Expires", gate.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return replace(card, title=f"Still waiting for approval: {card.title}", actions=(), facts=tuple(facts))


def promotion_gate_id(model: str, version: str) -> str:
    """The id (and card key) of a model version's promotion gate."""
    return f"handoff:promotion:{model}:{version}".lower()


def version_order(version: str) -> tuple[int, ...] | None:
    """A model version as the numbers it is ordered by ("12" → (12,), "1.10.0" → (1, 10)); None for a
    version that is not made of numbers, which Handoff cannot order."""
    parts = version.strip().split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    numbers = [int(p) for p in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def is_newer_version(version: str, than: str) -> bool:
    """Whether model version ``version`` is later than ``than``, as numbers ("10" is later than "9"); never
    when either is not made of numbers."""
    mine, theirs = version_order(version), version_order(than)
    return mine is not None and theirs is not None and mine > theirs


def _promotion_target(gate: Gate) -> tuple[str, str, str]:
    """What a promotion gate releases: its model, and the project and pipeline its approval starts."""
    release = gate.details.get("release") or {}
    return (
        str(gate.details.get("model", "")).lower(),
        str(release.get("project", "")).lower(),
        str(release.get("pipeline", "")).lower(),
    )


def _label(gate: Gate) -> str:
    """A promotion gate's model version: ``model-x:12``."""
    return f"{gate.details.get('model')}:{gate.details.get('version')}"


def _newest_over(gate: Gate, others: Sequence[Gate]) -> Gate | None:
    """Of ``others``, the newest whose version is newer than ``gate``'s; None if there is none."""
    version = str(gate.details.get("version", ""))
    newer = [
        other
        for other in others
        if other.gate_id != gate.gate_id and is_newer_version(str(other.details.get("version", "")), version)
    ]
    return max(newer, key=lambda other: version_order(str(other.details.get("version", ""))) or (), default=None)


def _expired_in_handoff(gate: Gate) -> bool:
    """Whether ``gate`` expired in Handoff while its Azure DevOps approval may still wait there: Azure DevOps has
    not said how it completed (someone may yet decide it there, or it time out), nor that it is gone."""
    return (
        gate.state is GateState.EXPIRED
        and gate.source == "azure-devops"
        and not gate.details.get("decided_in")
        and gate.details.get("only_in_azure_devops") != APPROVAL_GONE
    )


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


def _decided_already(gate: Gate) -> str:
    """The answer to a click on ``gate``, closed already (not by a newer model version)."""
    if gate.details.get("closed"):
        return f"This approval is closed: {gate.details['closed']}. There is nothing left to decide."
    if gate.state is GateState.EXPIRED:
        return "This gate has expired."
    if gate.state is GateState.SUPERSEDED:
        return "This approval was canceled in Azure DevOps." if gate.source != HANDOFF else "This gate was canceled."
    where = " in Azure DevOps" if gate.details.get("decided_in") else ""
    return f"This gate was already {gate.state.value}{where}."


def _superseding(gate: Gate) -> dict[str, Any]:
    """What a superseded promotion gate's :class:`GateChanged` says of the version that superseded it."""
    newer = gate.details.get("superseded_by") if gate.state is GateState.SUPERSEDED else None
    if not newer:
        return {}
    return {"superseded_by": f"{newer.get('model')}:{newer.get('version')}", "superseded_by_url": newer.get("url")}


def _deciders(approvers: Sequence[Approver]) -> list[str]:
    """The identities that may decide for ``approvers``: each person, and each member of a group."""
    return [i for a in approvers for p in (a.person, *a.members) for i in _identities(p.email, p.id)]


def _unseen_groups(approvers: Sequence[Approver]) -> list[str]:
    """Groups whose members Azure DevOps did not tell, or told only in part."""
    return [a.person.display for a in approvers if a.group and not (a.members and a.members_complete)]


def handoff_barred(gate: Gate) -> bool:
    """Whether Azure DevOps bars Handoff's own identity from deciding ``gate``'s approval (Handoff started the
    run, and the approval's requester may not decide it): then only people may, in Azure DevOps."""
    return bool(gate.details.get("handoff_barred"))


def _named_among(approvers: Sequence[Approver], people: Sequence[Person]) -> list[str]:
    """The names of the ``approvers`` (people, not groups) who are among ``people``."""
    wanted = {i for p in people for i in _identities(p.email, p.id)}
    return [
        a.person.display
        for a in approvers
        if not a.group and not wanted.isdisjoint(_identities(a.person.email, a.person.id))
    ]


def decided_in_azure_devops_only(gate: Gate) -> str:
    """Why ``gate`` can no longer be decided from chat, only in Azure DevOps ("" when it can): Handoff is barred
    from its approval, or Handoff's one approval is given and Azure DevOps waits for more approvers."""
    if handoff_barred(gate):
        return HANDOFF_BARRED
    if gate.details.get("only_in_azure_devops"):
        return str(gate.details["only_in_azure_devops"])
    if gate.details.get("handoff_approved"):
        return str(gate.details.get("handoff_note", "")) or "Handoff's approval is given: decide in Azure DevOps."
    return ""


def _counts_once(gate: Gate) -> bool:
    """Whether Handoff's identity is one of ``gate``'s approvers, so that all the approvals from chat make one
    approval in Azure DevOps."""
    handoff = set(gate.details.get("handoff", []))
    return bool(handoff) and not handoff.isdisjoint(gate.details.get("approvers", []))


def needed_in_chat(gate: Gate, min_approvers: int) -> int:
    """How many approvals from chat decide ``gate``: its gate policy's ``min_approvers``, and Azure DevOps'
    minimum as far as Handoff can give it (one approval, when its own identity is an approver)."""
    required = int(gate.details.get("min_required", 1))
    return max(min(required, 1) if _counts_once(gate) else required, min_approvers)


def _more_needed(gate: Gate) -> str:
    """What a gate whose Azure DevOps minimum exceeds Handoff's one approval says once that approval is given."""
    more = max(int(gate.details.get("min_required", 1)) - 1, 1)
    people = "approver" if more == 1 else "approvers"
    return (
        f"Handoff's approval counts once in Azure DevOps; it needs {more} more {people} there: decide in Azure DevOps."
    )


def _gate_place(event: ApprovalEvent) -> str:
    """Where an approval's run or release waits: its environment or stage."""
    return event.environment or event.stage or "next stage"


def _approval_named(event: ApprovalEvent) -> str:
    """An approval as the log and the ops channel name it: ``release approval app-y-classic.CD (Release-7) →
    QA in project mlops``."""
    kind = "release" if event.approval_kind == "release" else "pipeline"
    which = event.release_name or (event.run.run_name if event.run else "")
    name = f"{kind} approval {event.pipeline or '?'}" + (f" ({which})" if which else "")
    return f"{name} → {_gate_place(event)}" + (f" in project {event.project}" if event.project else "")


def _holds(gate: Gate, event: RunStateChanged | StageStateChanged) -> bool:
    """Whether ``gate`` is an approval of ``event``'s run (of its stage, for a stage's event)."""
    if gate.source == HANDOFF or not gate.details.get("run_key") or gate.details["run_key"] != event.run.run_key:
        return False
    if isinstance(event, RunStateChanged):
        return True
    return not {n.lower() for n in gate.details.get("stages", [])}.isdisjoint(n.lower() for n in event.stage_names)


def _stage_of(gate: Gate) -> str:
    """The stage ``gate``'s approval held, as the run's card names it."""
    stages = gate.details.get("stages") or []
    return str(stages[0]) if stages else gate.title


def _ended(event: RunStateChanged | StageStateChanged) -> str:
    """Why the gates of the run or stage ``event`` ended close: ``the run was canceled``."""
    return _ended_with(event.result or "", run=isinstance(event, RunStateChanged))


def _ended_with(result: str, *, run: bool) -> str:
    """Why the gates of a run (else a stage) that ended with ``result`` close."""
    result = result.lower()
    if result in ("canceled", "cancelled", "stopped"):
        return "the run was canceled"
    if run:
        return "the run failed" if result == "failed" else "the run ended"
    return "the stage was skipped" if result == "skipped" else "the stage ended"


def _ended_unapproved(event: RunStateChanged | StageStateChanged) -> bool:
    """Whether ``event`` tells that a run or stage ended otherwise than by passing its approvals: only then may
    its gates still wait, or its failure be a rejection (every run and stage that succeeds, the most of the
    hooks, is spared the gates' reads; a gate a missed approval left waiting is found by the sweep)."""
    return event.state.lower() == "completed" and (event.result or "").lower() in _ENDED_UNAPPROVED


_ENDED_UNAPPROVED = frozenset({"failed", "rejected", "canceled", "cancelled", "stopped", "skipped"})


# What a gate keeps of whom Azure DevOps asks to decide its approval: taken again when it asks anew.
_ASSIGNED = ("approvers", "approver_names", "groups", "unseen_groups", "unmatched", "blocked_names", "requester_names")


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
        #: How often a waiting gate's approval is looked up in Azure DevOps, and how many gates per sweep.
        self.reconcile_every = RECONCILE_EVERY
        self.reconcile_batch = RECONCILE_BATCH
        #: How often the approval of a gate expired in Handoff is looked up, while it may still wait there.
        self.reconcile_expired_every = RECONCILE_EXPIRED_EVERY
        #: How long a release whose start's answer was lost is looked for before it is started again.
        self.release_looked_for = RELEASE_LOOKED_FOR

    # --- gates from Azure DevOps -------------------------------------------------------------------

    async def observe(self, event: DomainEvent) -> DomainEvent | None:
        """Open or close gates for approval events (idempotent: safe on redelivery); a pending approval comes
        back with what its gate policy says (:class:`GateTerms`), for its card."""
        if isinstance(event, ApprovalPending):
            gate = await self._reassign(await self._open(event), event)
            if gate.state is GateState.PENDING and (ended := await self._ended_before(event)):
                # its run ended before Handoff heard the approval asked for (a late hook, its completion lost)
                await self._close_ended([gate], ended)
                gate = await self.store.get_gate(gate.gate_id) or gate
            needed = needed_in_chat(gate, self.policy.gate_policy(gate).min_approvers)
            return replace(event, terms=self.policy.terms(gate, needed))
        if isinstance(event, ApprovalCompleted):
            await self._closed_in_azure_devops(event)
        if isinstance(event, RunStateChanged | StageStateChanged) and _ended_unapproved(event):
            return await self._run_ended(event)
        return None

    async def _run_ended(self, event: RunStateChanged | StageStateChanged) -> DomainEvent | None:
        """A run, or one of its stages, ended: the gates still waiting on it close (nothing can decide them any
        more), and a run or stage Azure DevOps reports failed because an approval was rejected comes back with
        that rejection (:class:`Rejection`), so that its card reads as the rejection it is."""
        waiting = [g for g in await self.store.list_gates(GateState.PENDING) if _holds(g, event)]
        if waiting:
            await self._close_ended(waiting, event)
        if (event.result or "").lower() not in ("failed", "rejected"):
            return None
        rejected = [g for g in await self.store.list_gates(GateState.REJECTED) if _holds(g, event)]
        if not rejected:
            return None
        if isinstance(event, StageStateChanged):
            return replace(event, rejection=Rejection(stage=event.stage or "", by=await self._rejected_by(rejected[0])))
        rejections = [Rejection(stage=_stage_of(g), by=await self._rejected_by(g)) for g in rejected]
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
        return _ended_with(str(run.get("result") or ""), run=True)

    async def _close_ended(self, waiting: Sequence[Gate], event: RunStateChanged | StageStateChanged | str) -> None:
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
        ended = event if isinstance(event, str) else _ended(event)
        for gate in waiting:
            status = statuses.get(gate.external_id.lower())
            outcome = _status_outcome(status) if status else None
            if status is not None and outcome is None:
                # Azure DevOps says it still waits: the event is an earlier attempt's (a stage rerun opened this one)
                continue
            if outcome is None or outcome.state is GateState.SUPERSEDED:
                outcome = Outcome(GateState.SUPERSEDED, closed=ended)  # the run's end says more than "canceled"
            log.info("gate %s: its run or stage ended (%s), so it closes %s", gate.gate_id, ended, outcome.state.value)
            await self._take_outcome(gate.gate_id, outcome)

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
        named = _approval_named(event)
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
            title=f"No conversation sees the gate {event.pipeline or 'Release'} → {_gate_place(event)}",
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
        gate = self._gate_for(event)
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
            fresh = self._gate_for(event).details
            same = (
                fresh["approver_names"] == gate.details.get("approver_names")
                and fresh["groups"] == gate.details.get("groups")
                and set(fresh["approvers"]) <= set(gate.details.get("approvers", []))
            )
            details = {**gate.details, "pending_at": at}
            if not same:
                details.update({key: fresh[key] for key in _ASSIGNED})
                details.pop("groups_read_at", None)  # the new groups are read again on the next refusal
            updated = await self.store.update_gate(gate.gate_id, gate.version, gate.state, details)
            if updated is not None:
                if not same:
                    log.info("gate %s: its approval was asked for again, of %s", gate.gate_id, fresh["approver_names"])
                return updated
            gate = await self.store.get_gate(gate.gate_id) or gate
        log.error("gate %s kept changing: its new approvers are not taken", gate.gate_id)
        return gate

    def _gate_for(self, event: ApprovalEvent) -> Gate:
        """The pending gate for an approval Azure DevOps asks for."""
        now = self.clock.now()
        requester = _requester(event)
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
                # a group's step may be decided by any of its members
                "approvers": _deciders(event.approvers),
                "approver_names": [a.person.display for a in event.approvers],
                # the groups, to read again when someone who may have joined one since is refused
                "groups": [{"id": a.person.id, "name": a.person.display} for a in event.approvers if a.group],
                # approvers Handoff cannot match a chat user to: groups whose members Azure DevOps did not tell,
                # people it named without an email
                "unseen_groups": _unseen_groups(event.approvers),
                "unmatched": [a.person.display for a in event.approvers if not a.group and not a.person.email],
                "requesters": [
                    i
                    for p in ((requester,) if requester else ()) + event.blocked_approvers
                    for i in _identities(p.email, p.id)
                ],
                # the approvers a refusal must not name as who may decide: Azure DevOps bars them, or they
                # asked for the run (barred where the policy says so)
                "blocked_names": _named_among(event.approvers, event.blocked_approvers),
                "requester_names": _named_among(event.approvers, (requester,) if requester else ()),
                "min_required": event.min_required_approvers,
                "applied": False,
                # when Azure DevOps asked for the approval (last), so that only a newer ask changes its approvers
                "pending_at": event.occurred_at.isoformat(),
                # the run and stage it holds, to close it once they end (and to tell the run's card of a rejection)
                "run_key": event.run.run_key if event.run else "",
                "stages": list(event.stage_names),
            },
            policy={"name": "default"},
        )
        if event.approval_kind == "release" and event.release_id:
            gate.details["release_id"] = event.release_id  # how Azure DevOps is asked about its approval
        if event.handoff is not None:
            handoff = _identities(event.handoff.email, event.handoff.id)
            barred = {i for p in event.blocked_approvers for i in _identities(p.email, p.id)}
            gate.details["handoff"] = handoff
            gate.details["handoff_barred"] = not barred.isdisjoint(handoff)
            # people read the approvers' names: Handoff's own account is not one of them
            gate.details["approver_names"] = [
                a.person.display
                for a in event.approvers
                if a.group or set(_identities(a.person.email, a.person.id)).isdisjoint(handoff)
            ]
        return gate

    async def _closed_in_azure_devops(self, event: ApprovalEvent) -> None:
        outcome = _event_outcome(event)
        if outcome is None:
            return
        state = outcome.state
        for _ in range(10):
            now = self.clock.now()
            gate = await self.store.get_gate(event.grouping_key)
            if gate is None:
                # decided before Handoff heard it asked for (its pending event late, or lost): kept as decided, so
                # that a late pending event opens nothing to click or to be reminded of
                opened = self._gate_for(event)
                details = {**opened.details, "applied": True, "decided_in": "Azure DevOps", **_said(outcome)}
                decided = replace(opened, state=state, details=details, decided_at=now)
                if await self.store.create_gate(decided):
                    await self._audit("Azure DevOps", "decide", decided, state.value, comment="decided in Azure DevOps")
                    return
                continue  # the pending event opened it meanwhile: close it
            # a waiting gate's card shows the event itself; one that showed a decision from chat, or its expiry, is told
            if await self._settle(gate, outcome, show=gate.state.is_final):
                return

    async def _settle(self, gate: Gate, outcome: Outcome, *, show: bool) -> bool:
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
        expired_here = _expired_in_handoff(gate)
        if expired_here:
            # Handoff's expiry is its own: the approval waited on in Azure DevOps, which has now completed it
            decided_at = self.clock.now()
        elif gate.state.is_final:
            unapplied = gate.details.get("applied") is False and not gate.details.get("decided_in")
            if gate.state not in (GateState.APPROVED, GateState.REJECTED) or not unapplied:
                return True  # settled already
            decisions = await self.store.gate_decisions(gate.gate_id)
            held = decisions[-1] if decisions else None
            sent = _azure_devops_comment(decisions)
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
        await self._audit("Azure DevOps", "decide", gate, outcome.state.value, comment=said)
        if held is not None or (show and "decided_in" in details):
            await self._publish(updated, completed=outcome, not_applied=held)
        elif gate.state.is_final:
            await self._publish(updated)  # Handoff's own decision: its cards no longer say it waits for Azure DevOps
        return True

    async def _take_outcome(self, gate_id: str, outcome: Outcome) -> None:
        """Close the gate with the ``outcome`` Azure DevOps completed its approval with, heard otherwise than by
        the approval's own event, and show it on the gate's cards (see :meth:`_settle`)."""
        for _ in range(20):
            gate = await self.store.get_gate(gate_id)
            if gate is None or await self._settle(gate, outcome, show=True):
                return
        log.error("gate %s kept changing: Azure DevOps' %s is not shown", gate_id, outcome.state.value)

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
        """Open the promotion gate of a newly registered model version; None if it is already open.

        ``release`` is the pipeline to start on approval (``project``, ``pipeline``, ``branch``,
        ``parameters``); ``evidence`` goes into the details as it is (``apps``, ``blockers``...).
        """
        now = self.clock.now()
        settings = self.policy.settings.gates.get(policy) or self.policy.settings.gates.get("default")
        expires = now + (settings.expire_after if settings else timedelta(hours=72))
        gate = Gate(
            gate_id=promotion_gate_id(model, version),
            source=HANDOFF,
            external_id=f"{model}:{version}",
            title=f"Promote {model}:{version}",
            state=GateState.PENDING,
            version=1,
            created_at=now,
            expires_at=expires,
            details={
                **evidence,
                "model": model,
                "version": version,
                "release": release,
                "project": str(release.get("project", "")),
                "approvers": [],
                "approver_names": list(settings.approver_roles) if settings else [],
                "requesters": [r.lower() for r in requesters],
                "min_required": 1,
                "applied": False,
            },
            policy={"name": policy},
        )
        if not await self.store.create_gate(gate):
            return None
        log.info("promotion gate %s opened", gate.gate_id)
        return gate

    async def supersede_older_promotions(self, gate: Gate) -> list[Gate]:
        """Supersede the promotion gates that ``gate``'s model version, or a newer one, puts out of date.

        Each pending promotion gate of the same model and release pipeline whose version is older than one
        that is pending or approved is superseded by the newest of those: ``gate``'s older versions, and
        ``gate`` itself when its version is the older (a registration that arrived late). Superseding is a
        compare-and-set, so a gate decided meanwhile stays decided, and each gate is superseded once, however
        many replicas try; it goes to the audit log, and its cards lose their buttons and name the newer
        version. Idempotent; returns the gates this call superseded.
        """
        if gate.source != HANDOFF:
            return []
        live = await self._promotions_like(gate)
        superseded = []
        for older in live:
            newer = _newest_over(older, live) if older.state is GateState.PENDING else None
            if newer is not None and (done := await self._supersede(older, newer)) is not None:
                superseded.append(done)
        return superseded

    async def _promotions_like(self, gate: Gate) -> list[Gate]:
        """The pending and approved promotion gates that release what ``gate`` releases."""
        target = _promotion_target(gate)
        return [
            found
            for state in (GateState.PENDING, GateState.APPROVED)
            for found in await self.store.list_gates(state)
            if found.source == HANDOFF and _promotion_target(found) == target
        ]

    async def _out_of_date(self, gate: Gate) -> bool:
        """Whether the pending promotion ``gate`` has a newer version's gate pending or approved: then it is
        superseded (or it changed meanwhile), and the caller looks again."""
        if gate.source != HANDOFF:
            return False
        newer = _newest_over(gate, await self._promotions_like(gate))
        if newer is None:
            return False
        await self._supersede(gate, newer)
        return True

    async def _already_decided(self, gate: Gate) -> tuple[str, str]:
        """The audit outcome and the answer for a click on ``gate``, decided already. A superseded promotion
        names the version that superseded it and, if that one is superseded too, the latest since."""
        newer = gate.details.get("superseded_by") if gate.state is GateState.SUPERSEDED else None
        if not newer:
            return "refused: already decided", _decided_already(gate)
        label, by = _label(gate), f"{newer.get('model')}:{newer.get('version')}"
        latest, state, seen = by, GateState.PENDING, {gate.gate_id}
        while newer and newer.get("gate_id") not in seen:
            seen.add(str(newer.get("gate_id")))
            found = await self.store.get_gate(str(newer.get("gate_id")))
            if found is None:
                break
            latest, state = _label(found), found.state
            newer = found.details.get("superseded_by") if found.state is GateState.SUPERSEDED else None
        then = "decide on that one" if state is GateState.PENDING else f"it was {state.value}"
        where = (
            f"{by}, a newer version with its own promotion gate: {then}"
            if latest == by
            else f"{by} and later versions: {latest} is the latest, with its own promotion gate; {then}"
        )
        return (
            f"refused: superseded by {by}",
            f"Thanks, but {label} was superseded by {where}. Nothing is released or tagged for {label}.",
        )

    async def _supersede(self, gate: Gate, newer: Gate) -> Gate | None:
        """Move the pending ``gate`` to superseded by ``newer`` (compare-and-set); None if it was decided
        meanwhile."""
        for _ in range(20):
            current = await self.store.get_gate(gate.gate_id)
            if current is None or current.state is not GateState.PENDING:
                return None
            by = {
                "gate_id": newer.gate_id,
                "model": newer.details.get("model"),
                "version": newer.details.get("version"),
                "url": newer.details.get("model_url"),
            }
            details = {k: v for k, v in current.details.items() if k != "apply_claimed_at"}
            details["superseded_by"] = by
            now = self.clock.now()
            updated = await self.store.update_gate(
                current.gate_id, current.version, GateState.SUPERSEDED, details, decided_at=now
            )
            if updated is None:
                continue  # a click or new evidence changed it first: look again
            label = _label(newer)
            log.info("gate %s superseded by %s", gate.gate_id, label)
            await self._audit("Handoff", "supersede", updated, f"superseded by {label}")
            await self._publish(updated, note=f"{label} is newer and has its own promotion gate.")
            return updated
        log.error("gate %s kept changing: not superseded by %s", gate.gate_id, _label(newer))
        return None

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
        if gate is None:
            return "This gate is not known to Handoff (it may have been cleaned up)."
        outcome, reason = "", ""
        if gate.state.is_final:
            outcome, reason = await self._already_decided(gate)
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
        await self._audit(user.display, decision, gate, outcome, conversation, "")
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
                outcome, answer = await self._already_decided(gate)
                await self._audit(user.display, decision, gate, outcome, conversation, comment)
                return ActionResult(False, answer, await self._card(gate))
            now = self.clock.now()
            if gate.expires_at is not None and now >= gate.expires_at:
                await self._expire(gate)
                await self._audit(user.display, decision, gate, "refused: expired", conversation, comment)
                return ActionResult(False, "This gate has expired.", await self._card(gate))
            if await self._out_of_date(gate):
                continue  # a newer version's gate waits or was approved: this one is superseded now (look again)
            if only_there := decided_in_azure_devops_only(gate):
                await self._audit(user.display, decision, gate, f"refused: {only_there}", conversation, comment)
                return ActionResult(False, only_there, await self._card(gate))
            verdict = self.policy.may_decide(user, gate, decision, comment, decisions)
            if not verdict.allowed and decision != "override" and await self._joined_a_group(gate, user):
                continue  # the gate now lists them among its groups' members: look again
            if not verdict.allowed:
                await self._audit(user.display, decision, gate, f"refused: {verdict.reason}", conversation, comment)
                return ActionResult(False, verdict.reason)
            if decision == "override" and not self.blockers(gate, decisions):
                # an override approves past what blocks Approve: with nothing blocking (as on every Azure DevOps
                # gate), it would only mislabel an approval and skip Approve's rules (who is an approver), so the
                # person is sent to Approve, on the card as it is now
                await self._audit(user.display, decision, gate, "refused: nothing blocks it", conversation, comment)
                return ActionResult(False, "Nothing blocks this gate: Approve it instead.", await self._card(gate))
            blocked = self.blockers(gate, decisions) if decision == "approve" else []
            if blocked:
                reason = self._blocked(gate, blocked)
                await self._audit(user.display, decision, gate, "refused: blocked", conversation, comment)
                return ActionResult(False, reason, await self._card(gate))
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
            await self._publish(updated)
            await self._audit(user.display, decision, updated, "recorded", conversation, comment)
            return ActionResult(
                True, f"Your approval is recorded ({approvals} of {needed}).", await self._card(updated)
            )
        # the cards show the decision once Azure DevOps has it (or is not answering): one it refuses never shows
        applied = await self._apply(updated, record)
        await self._audit(user.display, decision, updated, applied.outcome, conversation, comment)
        if applied.refused:
            return ActionResult(False, applied.note, await self._card(updated))
        if applied.waiting:
            return ActionResult(True, f"Handoff approved it in Azure DevOps. {applied.note}", await self._card(updated))
        message = "Approved." if state is GateState.APPROVED else "Rejected."
        return ActionResult(True, f"{message} {applied.told}".strip(), await self._card(updated))

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
            "approvers": list(dict.fromkeys([*gate.details.get("approvers", []), *_deciders(found)])),
            "unseen_groups": [
                *(u for u in gate.details.get("unseen_groups", []) if u not in named),
                *_unseen_groups(found),
            ],
            "groups_read_at": now.isoformat(),
        }
        updated = await self.store.update_gate(gate.gate_id, gate.version, gate.state, details)
        if updated is None:
            return True  # the gate changed meanwhile: the caller looks again
        return Policy.is_assigned(user, updated)

    async def _apply(self, gate: Gate, record: GateDecision, *, again: bool = False) -> Applied:
        """Send the decision that decided ``gate`` to Azure DevOps, then show the gate as it now is on its cards
        (a refused decision is shown as refused, the gate waiting again). ``again``: it may have been sent before
        (its answer lost: Azure DevOps did not answer, or the process stopped)."""
        if gate.source == HANDOFF:
            applied = await self._apply_promotion(gate, record)
        elif self.pipelines is None or gate.source != "azure-devops":
            applied = Applied("applied")
        else:
            applied = await self._apply_approval(gate, record, self.pipelines, again=again)
        if applied.retry:
            await self._release_claim(gate.gate_id)
        if not applied.refused:
            await self._publish(await self.store.get_gate(gate.gate_id) or gate, note=applied.note)
        if applied.release_started is not None:  # after the decision's reply, in the thread that reads in order
            await self._tell_release(gate, applied.release_started)
        return applied

    async def _sent_for(self, gate: Gate, record: GateDecision) -> str:
        """The comment that goes to Azure DevOps with ``record``, the decision that decided ``gate``."""
        decisions = await self.store.gate_decisions(gate.gate_id)
        last = decisions[-1] if decisions else None
        made = last is not None and (last.actor, last.decision) == (record.actor, record.decision)
        return _azure_devops_comment(decisions if made else [*decisions, record])

    async def _apply_approval(
        self, gate: Gate, record: GateDecision, pipelines: PipelineService, *, again: bool = False
    ) -> Applied:
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
            why = f"{_clause(refused.reason)}; decide in Azure DevOps."
            return await self._refused(gate, record, f"refused by Azure DevOps: {refused.reason}", why)
        except ServiceUnavailable:
            return Applied(
                "pending: Azure DevOps unavailable",
                "Azure DevOps is not answering; Handoff will apply it when it does.",
                retry=True,
            )
        if decision != "reject" and not release and await self._still_waiting(gate, pipelines):
            return await self._waits_for_more(gate)
        await self._note(gate, applied=True)
        return Applied("applied")

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
        outcome = _status_outcome(found) if found is not None else None
        waits = found is not None and found.status.lower() == "pending"
        if waits and again and not release and record.decision != "reject" and _counts_once(gate):
            # Handoff's step was approved by this approval's earlier send (on a first send, a step not pending is
            # an inSequence step whose turn has not come: refused indeed)
            return await self._waits_for_more(gate)
        if outcome is None:
            return None
        if outcome.state is gate.state and await self._sent_for(gate, record) in outcome.comments:
            await self._note(gate, applied=True)  # it was this decision: the gate's cards show it as applied
            return Applied("applied")
        await self._take_outcome(gate.gate_id, outcome)
        noun = DECISION_NOUNS.get(record.decision, "decision")
        done = _completed_how(outcome)
        return Applied(
            f"not applied: {done} first", f"Your {noun} was not applied: the approval was already {done}.", refused=True
        )

    async def _apply_promotion(self, gate: Gate, record: GateDecision) -> Applied:
        """Start the release with the model version, then tag the version approved; each step once.

        A step done is written to the gate before the next, so a retry (see :meth:`sweep`) does only
        what is left.
        """
        decision, comment = record.decision, record.comment
        if decision == "reject":
            await self._note(gate, applied=True)
            return Applied("applied")
        model, version = str(gate.details.get("model", "")), str(gate.details.get("version", ""))
        release: dict[str, Any] = dict(gate.details.get("release") or {})
        pipeline = str(release.get("pipeline", ""))
        current = gate
        started = dict(gate.details.get("release_run") or {})
        told: JsonObject | None = None  # the release started now (a retry's was told by the first attempt)
        if not started and gate.details.get("release_canceled"):
            return replace(await self._settle_canceled_release(gate), answer="")  # (the cards' note tells it)
        if not started:
            begun = await self._start_release(gate, record)
            if isinstance(begun, Applied):
                return await self._canceled_meanwhile(gate.gate_id) or begun
            started = begun
            current = await self._note(gate, applied=False, release_run=started) or gate
            told = {**started, "pipeline": pipeline}
        named = f"{pipeline} {started.get('name') or started.get('run_id')}"
        number = f" (run {started['command_run']})" if started.get("command_run") else ""
        note = f"Started {named} with {model}:{version}{number}."
        url = started.get("url")
        answer = f"Started {link(str(url), named) if url else named} with {model}:{version}{number}."
        if self.ml is not None and not current.details.get("tagged"):
            tags = {**APPROVED_TAGS, "approved_by": record.actor}
            if decision == "override":
                tags["override_reason"] = comment[:250]
            try:
                await self.ml.tag_model(model, version, tags)
            except ServiceRefused as refused:
                await self._note(current, applied=True, tag_refusal=refused.reason)
                tag = f"Azure ML refused the tag: {refused.reason}"
                return Applied(f"applied; {tag}", f"{note} {tag}", answer=f"{answer} {tag}", release_started=told)
            except ServiceUnavailable:
                later = "Azure ML is not answering; Handoff will tag the version when it does."
                return Applied(
                    "pending: Azure ML unavailable",
                    f"{note} {later}",
                    answer=f"{answer} {later}",
                    retry=True,
                    release_started=told,
                )
        await self._note(current, applied=True, tagged=self.ml is not None)
        return Applied("applied", note, answer=answer, release_started=told)

    async def _start_release(self, gate: Gate, record: GateDecision) -> JsonObject | Applied:
        """Start the release ``gate``'s approval starts, once; returns it as the gate keeps it (``release_run``),
        or how applying stands when it did not start (refused), or is not known to have started yet.

        A start whose answer was lost may have queued the run: it is recorded so (``start_unknown``), and the next
        attempts look for that run in Azure DevOps (:meth:`_lost_release`) and take it as the release; only once
        :attr:`release_looked_for` has passed without it showing up is the release started again.
        """
        model, version = str(gate.details.get("model", "")), str(gate.details.get("version", ""))
        release: dict[str, Any] = dict(gate.details.get("release") or {})
        pipeline = str(release.get("pipeline", ""))
        if self.pipelines is None:
            refusal = "Azure DevOps is not connected to this Handoff"
            why = f"{refusal}, so {pipeline} was not started."
            return await self._refused(gate, record, f"refused: {refusal}", why)
        parameters = _release_parameters(gate)
        project, branch = str(release.get("project", "")), release.get("branch")
        recorded = await self._record_release(gate, record, project, pipeline)
        if recorded.details.get("start_unknown"):
            lost = await self._lost_release(recorded, self.pipelines, parameters)
            if isinstance(lost, StartedRun):
                log.info("gate %s: its release %s had started, though its answer was lost", gate.gate_id, lost.run_id)
                return await self._release_started(recorded, lost, f"{model}:{version}")
            if lost is not None:
                return lost
        if (released := await self._released_since(gate)) is not None:
            # a retry of a decision from before a newer version's release: it would roll that back
            why = f"{_label(released)}, a newer version, was released since, so {pipeline} was not started."
            await self._not_started(recorded, why)
            refused = await self._refused(gate, record, f"refused: {_label(released)} released since", why)
            if (reopened := await self.store.get_gate(gate.gate_id)) is not None:
                await self._out_of_date(reopened)
            return refused
        # until Azure DevOps answers, it is not known whether the release started: a process stopped meanwhile
        # leaves it so, and the attempt that takes the decision over looks for the run before starting it again
        recorded = await self._starting(recorded)
        if (canceled := await self._canceled_meanwhile(gate.gate_id)) is not None:
            return canceled  # canceled from chat as it was about to be sent
        try:
            run = await self.pipelines.run_pipeline(project, pipeline, branch, parameters)
        except ServiceRefused as refused:
            why = f"Azure DevOps refused to start {pipeline}: {_clause(refused.reason)}."
            await self._not_started(recorded, why)
            return await self._refused(gate, record, f"refused by Azure DevOps: {refused.reason}", why)
        except ServiceUnavailable as unanswered:
            if unanswered.may_have_acted:
                return await self._release_unknown(recorded, str(unanswered))
            await self._known_not_started(recorded)
            return Applied(
                "pending: Azure DevOps unavailable",
                "Azure DevOps is not answering; Handoff will start the release when it does.",
                retry=True,
            )
        except Exception:  # (a bug, an answer that could not be read): the request may have got through
            log.exception("gate %s: starting its release %s failed unexpectedly", gate.gate_id, pipeline)
            return await self._release_unknown(recorded, "")
        return await self._release_started(recorded, run, f"{model}:{version}")

    async def _starting(self, recorded: CommandRun) -> CommandRun:
        """``recorded``, its start about to be sent: recorded as not known to have started (since now), so that an
        attempt that finds it so, because this one never heard back, looks for the run first."""
        now = self.clock.now()
        details = {
            **recorded.details,
            "start_unknown": True,
            "tried_at": str(recorded.details.get("tried_at") or now.isoformat()),
            "last_tried_at": now.isoformat(),
        }
        updated = await self.store.update_command_run(
            recorded.id or 0, CommandRunState.REQUESTED, now, details=details, expected=recorded.state
        )
        return replace(recorded, state=CommandRunState.REQUESTED, details=details) if updated else recorded

    async def _known_not_started(self, recorded: CommandRun) -> None:
        """Azure DevOps said the start of ``recorded`` did not take effect: it is known not to have started (the
        next attempt starts it without looking for it), unless an earlier attempt's outcome is still unknown."""
        if recorded.details.get("error"):  # an earlier attempt's answer was lost: that one may still have started
            return
        details = _known(recorded.details)
        await self.store.update_command_run(
            recorded.id or 0, recorded.state, self.clock.now(), details=details, expected=recorded.state
        )

    async def _not_started(self, recorded: CommandRun, why: str) -> None:
        """The release ``recorded`` is not started, for good (``why``): ``runs`` and ``status`` say so."""
        failed = {**_known(recorded.details), "error": why}
        await self.store.update_command_run(
            recorded.id or 0, CommandRunState.FAILED, self.clock.now(), details=failed, expected=recorded.state
        )

    async def _release_started(self, recorded: CommandRun, run: StartedRun, for_model: str) -> JsonObject | Applied:
        """Record ``run`` as the release ``recorded`` started, and show its card; returns it as its gate keeps it, or,
        where someone canceled the release from chat meanwhile, how canceling ``run`` went."""
        project, pipeline = str(recorded.details.get("project", "")), str(recorded.details.get("pipeline", ""))
        branch = recorded.details.get("branch")
        if not await self.store.update_command_run(
            recorded.id or 0,
            CommandRunState.STARTED,
            self.clock.now(),
            backend_run_id=run.run_id,
            details={**_known(recorded.details), "name": run.name, "url": run.url},
            expected=recorded.state,
        ):
            gate = await self.store.get_gate(str(recorded.details.get("gate", "")))
            current = await self.store.get_command_run(recorded.id or 0)
            if gate is not None and current is not None and _canceled_unstarted(gate, current):
                return await self._cancel_found(gate, current, run)
        await self._show_release(project, pipeline, str(branch) if branch else None, run, for_model)
        return {"run_id": run.run_id, "name": run.name, "url": run.url, "command_run": recorded.id}

    async def _release_unknown(self, recorded: CommandRun, error: str) -> Applied:
        """Record that it is not known whether the release ``recorded`` was started (the answer to its start was
        lost, ``error``): the next attempt looks for it before starting it again (see :meth:`_start_release`)."""
        now = self.clock.now()
        pipeline = str(recorded.details.get("pipeline", ""))
        problem = f"{error}. " if error else ""
        problem += f"Handoff cannot tell yet whether Azure DevOps started {pipeline}; it looks for the run there."
        details = {
            **recorded.details,
            "start_unknown": True,
            "error": problem,
            "tried_at": str(recorded.details.get("tried_at") or now.isoformat()),  # the first start's
            "last_tried_at": now.isoformat(),
        }
        if not await self.store.update_command_run(
            recorded.id or 0, CommandRunState.REQUESTED, now, details=details, expected=recorded.state
        ):
            await self._may_have_started(recorded, details)
        log.warning("release %s of run %s: not known whether it started: %s", pipeline, recorded.id, error or "?")
        return _not_known_yet(pipeline)

    async def _may_have_started(self, recorded: CommandRun, unknown: JsonObject) -> None:
        """Keep on the release ``recorded``, canceled from chat while its start was on its way, that the start may
        have gone through (``unknown``: when it was sent), so that the run it queued is looked for and canceled."""
        current = await self.store.get_command_run(recorded.id or 0)
        if current is None or current.state is not CommandRunState.CANCELED or current.backend_run_id:
            return
        marks = {k: unknown[k] for k in ("start_unknown", "tried_at", "last_tried_at")}
        marks["tried_at"] = current.details.get("tried_at") or marks["tried_at"]  # the first start's
        await self.store.update_command_run(
            current.id or 0,
            CommandRunState.CANCELED,
            self.clock.now(),
            details={**current.details, **marks},
            expected=CommandRunState.CANCELED,
        )

    async def _lost_release(
        self,
        recorded: CommandRun,
        pipelines: PipelineService,
        parameters: dict[str, str],
        within: float | None = None,
    ) -> StartedRun | Applied | None:
        """Where the release ``recorded``, whose start's answer was lost, stands in Azure DevOps: the run that
        start queued (a run of its pipeline queued since, with its branch and parameters); else, while Azure DevOps
        cannot be asked or :attr:`release_looked_for` has not passed since the last start, how applying waits;
        None once it should be started again. ``within``: how long Azure DevOps has to answer, when someone waits."""
        details = recorded.details
        project, pipeline = str(details.get("project", "")), str(details.get("pipeline", ""))
        tried = datetime.fromisoformat(str(details.get("tried_at")))
        last = datetime.fromisoformat(str(details.get("last_tried_at") or details.get("tried_at")))
        try:
            runs = await _within(pipelines.runs_since(project, pipeline, tried - RELEASE_CLOCK_SKEW), within)
        except (ServiceRefused, ServiceUnavailable) as exc:
            log.info("could not look for release %s of run %s (%s)", pipeline, recorded.id, exc)
            return _not_known_yet(pipeline)
        branch = details.get("branch")
        found = next((r for r in runs if _releases(r, str(branch) if branch else None, parameters)), None)
        if found is not None:
            return StartedRun(found.run_id, found.name or found.run_id, found.url, found.state)
        if self.clock.now() - last < self.release_looked_for:
            return _not_known_yet(pipeline)
        log.info("release %s of run %s: not started, %s after its answer was lost", pipeline, recorded.id, last)
        return None

    async def _record_release(self, gate: Gate, record: GateDecision, project: str, pipeline: str) -> CommandRun:
        """The release ``gate``'s approval starts, recorded as a run Handoff started for its model version (as its
        integrations are), so that ``runs`` lists it and ``status``/``cancel`` reach it by its number: asked for by
        the person whose decision starts it. A retry after Azure DevOps did not answer finds the same run."""
        model, version = str(gate.details.get("model", "")), str(gate.details.get("version", ""))
        configured = self.policy.settings.models.get(model)
        consumers = configured.consumers if configured else []
        app = consumers[0] if len(consumers) == 1 else None  # the release is of that app; else of the model
        name = str((gate.details.get("names") or {}).get(record.actor) or record.actor)
        run, _ = await self.store.start_command_run(
            CommandRun(
                idempotency_key=release_key(gate.gate_id),
                actor=record.actor,
                platform="",
                conversation="",
                command=release_command(model, version, app),
                target=app or model,
                state=CommandRunState.REQUESTED,
                created_at=self.clock.now(),
                details={
                    "model": model,
                    "version": version,
                    "gate": gate.gate_id,
                    "service": "azure-devops",
                    "project": project,
                    "pipeline": pipeline,
                    "branch": (gate.details.get("release") or {}).get("branch"),
                    "asked_by": {"name": name, "email": record.actor},
                },
            ),
            RELEASE_ONCE,
            until_ended=True,
        )
        return run

    # --- a release canceled from chat before it was known to have started ---------------------------------

    async def cancel_unstarted_release(self, run: CommandRun, canceled_by: JsonObject) -> str | None:
        """Cancel ``run``, the release a promotion gate's approval starts, from chat while it is not known to have
        started (its start's answer was lost, or Azure DevOps has not answered yet): Handoff never starts it again.
        ``canceled_by`` (``name``, as chat names them) is kept on the run, as ``cancel`` keeps it on a started run.

        The gate is marked first, so that no attempt to apply its approval starts the release from then on, and
        then the run is recorded canceled. Azure DevOps is asked at once for the run a lost start may have queued:
        found, it is canceled there (through :meth:`~bot.ports.PipelineService.cancel_run`, as ``cancel`` cancels a
        started run). Otherwise the sweep looks for it as long as it would have before starting the release again
        (:attr:`release_looked_for`), cancels it if it shows up, and else records that it never started. The gate's
        cards say who canceled the release and how that went; the version is not tagged approved.

        Returns what Handoff does about it, for the person who canceled it; None when the run is no longer waiting to
        start (it started or ended meanwhile).
        """
        now = self.clock.now()
        gate_id = str(run.details.get("gate", ""))
        gate = await self._mark_release_canceled(gate_id, {"run": run.id, "by": canceled_by, "at": now.isoformat()})
        details = {**run.details, "canceled_by": canceled_by, "canceled_at": now.isoformat()}
        if not await self.store.update_command_run(
            run.id or 0, CommandRunState.CANCELED, now, details=details, expected=CommandRunState.REQUESTED
        ):
            await self._mark_release_canceled(gate_id, None)
            return None
        if gate is None:  # (its gate was cleaned up: nothing would start it)
            return "Handoff will not start it."
        settled = await self._settle_canceled_release(gate, within=INTERACTIVE_SECONDS)
        await self._publish(await self.store.get_gate(gate_id) or gate, note=settled.note)
        by = _canceler(gate)
        await self._reply_in_thread(gate, Card(title=f"Release canceled by {by}", status=Status.CANCELED))
        return settled.told

    async def _mark_release_canceled(self, gate_id: str, mark: JsonObject | None) -> Gate | None:
        """Mark ``gate_id``'s release canceled from chat (``mark``: which run, by whom, when), or take the mark
        back (None); the gate as it now is."""
        for _ in range(20):
            current = await self.store.get_gate(gate_id)
            if current is None:
                return None
            details = {k: v for k, v in current.details.items() if k != "release_canceled"}
            if mark is not None:
                details["release_canceled"] = mark
            updated = await self.store.update_gate(current.gate_id, current.version, current.state, details)
            if updated is not None:
                return updated
        raise RuntimeError(f"gate {gate_id} kept changing")

    async def _canceled_meanwhile(self, gate_id: str) -> Applied | None:
        """How applying ``gate_id``'s approval stands if its release was canceled from chat meanwhile (see
        :meth:`_settle_canceled_release`); None if it was not."""
        current = await self.store.get_gate(gate_id)
        if current is None or not current.details.get("release_canceled") or current.details.get("release_run"):
            return None
        return replace(await self._settle_canceled_release(current), answer="")  # (the cards' note tells it)

    async def _settle_canceled_release(self, gate: Gate, within: float | None = None) -> Applied:
        """Settle ``gate``'s release, canceled from chat before it was known to have started: the run a lost start
        queued, found in Azure DevOps, is canceled there; while that run may still show up, applying waits (the
        sweep looks again); once it no longer may, the release is recorded as never started. Either way the gate
        is then applied, without anything more (the version is not tagged approved). ``within``: how long Azure
        DevOps has to answer each request, when someone waits for the outcome in chat."""
        mark = dict(gate.details.get("release_canceled") or {})
        pipeline = str(dict(gate.details.get("release") or {}).get("pipeline", ""))
        run = await self.store.get_command_run(int(mark.get("run") or 0))
        if run is not None and run.state is CommandRunState.REQUESTED:  # the cancel stopped before recording it
            details = {**run.details, "canceled_by": mark.get("by"), "canceled_at": mark.get("at")}
            await self.store.update_command_run(
                run.id or 0, CommandRunState.CANCELED, self.clock.now(), details=details, expected=run.state
            )
            run = await self.store.get_command_run(run.id or 0)
        if run is None or run.state is not CommandRunState.CANCELED:
            # it started before the cancel took (whose mark is being taken back): applying goes on
            return Applied("pending: its release started as it was canceled", retry=True)
        if run.backend_run_id and run.details.get("cancel_pending"):
            name = str(run.details.get("name") or run.backend_run_id)
            found = StartedRun(run.backend_run_id, name, run.details.get("url"))
            return await self._cancel_found(gate, run, found, within)
        if run.backend_run_id:  # found, and canceled in Azure DevOps, before
            await self._note(gate, applied=True)
            return _canceled_there(gate, run)
        if run.details.get("start_unknown") and self.pipelines is not None:
            lost = await self._lost_release(run, self.pipelines, _release_parameters(gate), within)
            if isinstance(lost, StartedRun):
                return await self._cancel_found(gate, run, lost, within)
            if lost is not None:
                return Applied(
                    "pending: release canceled; looking for the run its lost start may have queued",
                    f"Release canceled by {_canceler(gate)}: Handoff will not start {pipeline}. If Azure DevOps "
                    "started it (its answer to the start was lost), Handoff cancels that run when it finds it.",
                    answer=f"Handoff will not start {pipeline} for it. Azure DevOps may have started it, though its "
                    "answer was lost: Handoff looks for that run and cancels it if it finds it.",
                    retry=True,
                )
            log.info("release %s of run %s: canceled, and never started", pipeline, run.id)
            known = _known(run.details)
            await self.store.update_command_run(
                run.id or 0, run.state, self.clock.now(), details=known, expected=run.state
            )
        await self._note(gate, applied=True)
        return Applied(
            f"release canceled by {_canceler(gate)}",
            f"Release canceled by {_canceler(gate)} before it started: Handoff did not start {pipeline} "
            f"(run {run.id}).",
            answer=f"It had not started, and Handoff will not start {pipeline} for it.",
        )

    async def _cancel_found(
        self, gate: Gate, run: CommandRun, found: StartedRun, within: float | None = None
    ) -> Applied:
        """Cancel in Azure DevOps ``found``, the run the start of ``gate``'s release queued although someone had
        canceled that release from chat (``run``); recorded first, so that a cancel Azure DevOps did not answer is
        sent again by the next sweep."""
        assert self.pipelines is not None
        project, pipeline = str(run.details.get("project", "")), str(run.details.get("pipeline", ""))
        named, by = f"{pipeline} {found.name}", _canceler(gate)
        details: JsonObject = {**_known(run.details), "name": found.name, "url": found.url, "cancel_pending": True}
        await self.store.update_command_run(
            run.id or 0, run.state, self.clock.now(), found.run_id, details, expected=CommandRunState.CANCELED
        )
        try:
            await _within(self.pipelines.cancel_run(project, found.run_id), within)
        except ServiceUnavailable as error:
            log.warning("release %s of run %s: could not cancel it (%s)", found.run_id, run.id, error)
            return Applied(
                "pending: Azure DevOps did not answer the cancel",
                f"Release canceled by {by}: Azure DevOps had started {named}, and Handoff cancels it as soon as "
                "Azure DevOps answers.",
                answer=f"Azure DevOps had started it as {named}, though its answer was lost. Azure DevOps is not "
                "answering now: Handoff cancels that run as soon as it does.",
                retry=True,
            )
        except ServiceRefused as refused:
            details["cancel_refused"] = refused.reason
        else:
            log.info("release %s of run %s: found after it was canceled, and canceled", found.run_id, run.id)
        return await self._canceled_found(gate, run, found, details)

    async def _canceled_found(self, gate: Gate, run: CommandRun, found: StartedRun, details: JsonObject) -> Applied:
        """Record that canceling ``found`` is done with, show its card canceled and by whom, and let the gate be;
        how applying then stands."""
        settled = {k: v for k, v in details.items() if k != "cancel_pending"}
        await self.store.update_command_run(
            run.id or 0, run.state, self.clock.now(), found.run_id, settled, expected=CommandRunState.CANCELED
        )
        branch = run.details.get("branch")
        for_model = f"{run.details.get('model')}:{run.details.get('version')}"
        project, pipeline = str(run.details.get("project", "")), str(run.details.get("pipeline", ""))
        by = _canceler(gate)
        await self._show_release(project, pipeline, str(branch) if branch else None, found, for_model, by)
        await self._note(gate, applied=True)
        return _canceled_there(gate, replace(run, backend_run_id=found.run_id, details=settled))

    async def _tell_release(self, gate: Gate, started: JsonObject) -> None:
        """Say in the thread of ``gate``'s cards that its release started, linked to the run in Azure DevOps."""
        named = f"{started['pipeline']} {started.get('name') or started.get('run_id')}"
        number = started.get("command_run")
        card = Card(
            title=f"Started {named} with {_label(gate)}",
            status=Status.RUNNING,
            summary=f"Run {number}: `status {number}` shows how it stands, `runs` lists it." if number else "",
            links=(Link(named, str(started["url"])),) if started.get("url") else (),
        )
        await self._reply_in_thread(gate, card)

    async def _reply_in_thread(self, gate: Gate, card: Card) -> None:
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

    async def follow_releases(self) -> None:
        """Poll the releases Handoff started on approving promotion gates until they end (for at most
        :data:`RELEASE_FOLLOWED`): their runs end in ``runs`` and ``status`` as they end in Azure DevOps, and their
        cards show it should Azure DevOps' own event be lost. Once per sweep, as a restarted process does too."""
        if self.pipelines is None:
            return
        now = self.clock.now()
        for run in await self.store.unfinished_command_runs(now - RELEASE_FOLLOWED):
            if not run.idempotency_key.startswith(RELEASE_KEY_PREFIX) or not run.backend_run_id:
                continue
            project, pipeline = str(run.details.get("project", "")), str(run.details.get("pipeline", ""))
            try:
                status = await self.pipelines.run_status(project, run.backend_run_id)
            except (ServiceRefused, ServiceUnavailable) as exc:
                log.info("could not ask how release %s stands (%s)", run.backend_run_id, exc)
                continue
            await self._show_release_status(run, project, pipeline, status)
            if (ended := ended_state(status)) is not None:
                await self.store.update_command_run(run.id or 0, ended, now, expected=CommandRunState.STARTED)

    async def _show_release_status(self, run: CommandRun, project: str, pipeline: str, status: RunStatus) -> None:
        started = StartedRun(str(run.backend_run_id), str(run.details.get("name") or run.backend_run_id))
        branch = run.details.get("branch")
        for_model = f"{run.details.get('model')}:{run.details.get('version')}"
        event = pipeline_run_event(
            self.organization,
            self.clock.now(),
            project,
            pipeline,
            str(branch) if branch else None,
            replace(started, url=str(run.details.get("url") or "") or None),
            status,
            for_model=for_model,
        )
        try:
            await self.ingest.accept(event)
        except Exception:  # the run's own events keep its card; its state in `runs` matters more here
            log.warning("the card of release run %s was not updated", run.backend_run_id, exc_info=True)

    async def _released_since(self, gate: Gate) -> Gate | None:
        """The newest promotion of a version newer than ``gate``'s whose release has started, if any."""
        released = [g for g in await self._promotions_like(gate) if g.details.get("release_run")]
        return _newest_over(gate, released)

    async def _show_release(
        self,
        project: str,
        pipeline: str,
        branch: str | None,
        run: StartedRun,
        for_model: str,
        canceled_by: str | None = None,
    ) -> None:
        """The release run's own card, at once and naming the model version it releases (Azure DevOps' events
        about the run do not), canceled and by whom if ``canceled_by`` canceled it from chat. The release has
        started whatever happens here: its events show it anyway."""
        now = self.clock.now()
        event = pipeline_run_event(self.organization, now, project, pipeline, branch, run, for_model=for_model)
        if canceled_by:
            event = replace(event, event_id=f"handoff-cancel:{run.run_id}", state="canceling", canceled_by=canceled_by)
        try:
            await self.ingest.accept(event)
        except Exception:  # the card is not worth failing a release that started
            log.warning("the card of release run %s was not shown at once", run.run_id, exc_info=True)

    async def _refused(self, gate: Gate, record: GateDecision, outcome: str, why: str) -> Applied:
        """``record`` was refused (``why``, to go after "... was refused:"): it did not take effect, so the gate
        waits again without it, and its cards say whose decision was refused and why."""
        reopened = await self._reopen(gate, record, why)
        if reopened is not None:
            await self._publish(reopened, note=why, refused=record)
        noun = DECISION_NOUNS.get(record.decision, "decision")
        told = (
            f"Azure DevOps refused your {noun}: {why}"
            if gate.source != HANDOFF
            else f"Your {noun} was not applied: {why}"
        )
        return Applied(outcome, told, refused=True)

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
        reopened = await self._reopen(gate, record, said, only_in_azure_devops=said)
        if reopened is not None:
            await self._publish(reopened, note=said, refused=record)
        return Applied(f"refused by Azure DevOps: {refused.reason}", said, refused=True)

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

    async def _reopen(self, gate: Gate, record: GateDecision, why: str, **more: Any) -> Gate | None:
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

    async def _note(self, gate: Gate, applied: bool, **more: Any) -> Gate | None:
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

    async def _expire(self, gate: Gate) -> None:
        if await self.store.update_gate(gate.gate_id, gate.version, GateState.EXPIRED, decided_at=self.clock.now()):
            await self._publish(
                replace(gate, state=GateState.EXPIRED, version=gate.version + 1), note=_expiry_note(gate)
            )

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
                await self._expire(gate)
            else:
                waiting.append(gate)
        expired = [g for g in await self.store.list_gates(GateState.EXPIRED) if _expired_in_handoff(g)]
        await self.reconcile([*waiting, *expired])
        for state in (GateState.APPROVED, GateState.REJECTED):
            for gate in await self.store.list_gates(state):
                if gate.details.get("applied") is False and not gate.details.get("refusal"):
                    await self._retry_apply(gate)
        await self.follow_releases()

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
                if status is None or (outcome := _status_outcome(status)) is None:
                    continue  # still waiting (or unknown to Azure DevOps: the gate expires in time)
                log.info("gate %s: Azure DevOps says its approval is %s", gate.gate_id, status.status)
                await self._take_outcome(gate.gate_id, outcome)

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
            _expired_in_handoff(gate)
            and now - gate.created_at < RECONCILE_EXPIRED_FOR
            and now - _asked_at(gate) >= self.reconcile_expired_every
        )

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
        await self._audit("Handoff", f"apply {last.decision}", gate, applied.outcome, comment=last.comment)

    # --- helpers -----------------------------------------------------------------------------------

    async def _publish(
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
