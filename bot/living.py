"""Living cards: each event is merged into the state of its card, and the card is drawn from that state.

Merging never moves a card backwards: a stage that completed stays completed when a late
``running`` arrives, a decided approval stays decided (unless Azure DevOps refused to apply the decision
Handoff showed: it never took effect, and the gate waits again). A merge also says which thread replies the
change deserves (a failure with its failing stage, a decision), so that the channel is told about
what needs attention without a message for every step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.cards import Action, Card, Fact, Link, Mention, Status, Step
from bot.events import (
    AppHandoffChanged,
    ApprovalEvent,
    Approver,
    CodePushed,
    Completion,
    DataArrived,
    DataDriftDetected,
    DomainEvent,
    GateChanged,
    ModelChecked,
    ModelDeployed,
    ModelRegistered,
    Person,
    PipelineRef,
    PromotionGateChanged,
    PullRequestChanged,
    Rejection,
    ReleaseDeploymentCompleted,
    RunStateChanged,
    StageStateChanged,
    TrainingRunFinished,
)
from bot.handoff_cards import (
    DECISION_NOUNS,
    HandoffMerge,
    decider_names,
    known_names,
    mention_of,
    merge_app_handoff,
    merge_model_check,
    merge_promotion_gate,
    named_and_counted,
    promotion_refusal,
    render_app_handoff,
    render_model_card,
    render_promotion_gate,
)
from bot.run_reasons import reason_words

State = dict[str, Any]

RUN_STATE_RANK = {"notstarted": 0, "inprogress": 1, "canceling": 2, "completed": 3}
STAGE_STATE_RANK = {"notstarted": 0, "waiting": 1, "running": 2, "inprogress": 2, "completed": 3}
# How a run or stage ended, as Azure DevOps says (a run's or build's result: succeeded, partiallySucceeded, failed,
# canceled; build.complete's status: stopped; a stage's, as its timeline record's: succeededWithIssues, skipped,
# abandoned); a result with none of these (none, unknown) shows as info.
RESULT_STATUS = {
    "succeeded": Status.SUCCEEDED,
    "partiallysucceeded": Status.PARTIAL,
    "succeededwithissues": Status.PARTIAL,
    "failed": Status.FAILED,
    "canceled": Status.CANCELED,
    "cancelled": Status.CANCELED,
    "skipped": Status.SKIPPED,
    "stopped": Status.CANCELED,
    "abandoned": Status.CANCELED,
}
# How a classic release's deployment to an environment ended (its releaseEnvironmentStatus): a deployment
# that failed ends its environment rejected.
RELEASE_STATUS = {**RESULT_STATUS, "rejected": Status.FAILED}
# The results of a run or stage that ended with issues (a warning, a step allowed to fail): not failed.
WITH_ISSUES = frozenset({"partiallysucceeded", "succeededwithissues"})
APPROVAL_STATUS = {
    "pending": Status.WAITING,
    "approved": Status.APPROVED,
    "rejected": Status.REJECTED,
    "timedout": Status.EXPIRED,
    "expired": Status.EXPIRED,
    "superseded": Status.CANCELED,
    "canceled": Status.CANCELED,
    "skipped": Status.CANCELED,
}
# Why an approval Azure DevOps completed with nobody deciding it closed, as its card says after "Closed: "
# (the gatekeeper answers a later click with it too).
CLOSED_IN_AZURE_DEVOPS = {
    "timedout": "timed out in Azure DevOps",
    "canceled": "canceled in Azure DevOps",
    "skipped": "skipped in Azure DevOps",
}


@dataclass
class Merge:
    """The outcome of merging one event into its card's state."""

    state: State
    changed: bool
    replies: list[Card] = field(default_factory=list)


# A group assigned an approval step is expanded into mentions of its members up to this size.
GROUP_MENTION_LIMIT = 10
# An approval step's status while its approver has not acted (Azure DevOps: pending; older APIs: undefined).
_UNDECIDED = frozenset({"", "pending", "undefined", "inprogress", "waiting"})
# What an approval card says when Azure DevOps bars Handoff's own identity from deciding it.
HANDOFF_BARRED = "Handoff started this run, so Azure DevOps lets only people decide it: decide in Azure DevOps."
# What a classic release approval's card says when Handoff's own identity is not its approver.
HANDOFF_NOT_ASSIGNED = (
    "Azure DevOps lets only this release's approvers decide it, and Handoff is not one of them: decide in Azure DevOps."
)
# The statuses of a training run's card that tells how the run ended.
_TRAINING_ENDED = frozenset({Status.SUCCEEDED.value, Status.FAILED.value, Status.CANCELED.value})
# The statuses of a card that tells how things ended.
_ENDED = frozenset(
    {
        Status.SUCCEEDED,
        Status.PARTIAL,
        Status.FAILED,
        Status.CANCELED,
        Status.SKIPPED,
        Status.APPROVED,
        Status.REJECTED,
        Status.EXPIRED,
    }
)


def _norm(value: str | None) -> str:
    return (value or "").lower().replace(" ", "").replace("_", "")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _utc_iso(value: datetime) -> str:
    """A time as text that sorts as the time does."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def merge(state: State | None, event: DomainEvent) -> Merge:
    """Merge ``event`` into ``state`` (None for a card not seen before)."""
    if isinstance(event, ModelDeployed) and event.deployed_version is not None:
        return _merge_deployment(state, event, *event.deployed_version)
    merged = _merge_event(state, event)
    if state and "deployments" in state and "deployments" not in merged.state:
        # a model version's card drawn again from its registration still shows where the version runs
        merged.state = {**merged.state, "deployments": state["deployments"], "model_version": state["model_version"]}
    return merged


def _merge_event(state: State | None, event: DomainEvent) -> Merge:
    handoff = _merge_handoff(state, event)
    if handoff is not None:
        return Merge(handoff.state, handoff.changed, handoff.replies)
    if isinstance(event, RunStateChanged | StageStateChanged):
        return _merge_run(state, event)
    if isinstance(event, ApprovalEvent):
        return _merge_approval(state, event)
    if isinstance(event, GateChanged):
        return _merge_gate_change(state, event)
    return _merge_single(state, event)


def render(state: State) -> Card:
    """Draw the card for a merged state (without the facts that would show no value)."""
    card = _drawn(state)
    if state.get("deployments"):
        card = _with_deployments(card, state)
    shown = tuple(fact for fact in card.facts if fact.value.strip())
    return card if len(shown) == len(card.facts) else replace(card, facts=shown)


def _drawn(state: State) -> Card:
    kind = state.get("type")
    if kind == "promotion_gate":
        return render_promotion_gate(state)
    if kind == "app_handoff":
        return render_app_handoff(state)
    if "handoff" in state:
        return render_model_card(state)
    if kind == "run":
        return _render_run(state)
    if kind == "approval":
        return _render_approval(state)
    return Card.from_json(state["card"])


def stages_told_failed(state: State) -> tuple[str, ...]:
    """The stages a run's card told its thread failed (or were rejected, or had issues), each by its display name
    and its own name: what the stage filters of the conversations that show the card judge its failure by.
    Empty for a card of anything else, and for a run whose failure named no stage."""
    told = set(state.get("failures_announced", [])) - {"run"}
    if not told:
        return ()
    names: list[str] = []
    for name, stage in state.get("stages", {}).items():
        if told & {name, stage["display"]}:
            names += [stage["display"], name]
    names += told  # a stage named only by the run's failure (its own events never came)
    return tuple(dict.fromkeys(names))


def replies_told(before: State, after: State) -> list[Card]:
    """The thread replies the card's state ``before`` an event had told, drawn as the card reads ``after`` it: what
    a conversation that event first shows the card in gets quietly in its thread, as it would have had it been
    shown the card from the start (a failed stage whose hook came before the run's first, when the card was
    shown nowhere yet; an approval decided before its request was routed anywhere). What ``after`` takes back (a
    retried stage or run, a decision refused) is not told. A run's failure, rejection or issues and an Azure
    DevOps approval's outcome are told; other cards tell nothing again."""
    if before.get("type") != after.get("type"):
        return []
    if after.get("type") == "run":
        return _run_replies_told(before, after)
    if after.get("type") == "approval":
        return _approval_replies_told(before, after)
    return []


def repeat_reply(card: Card, limit: timedelta) -> Card:
    """The thread reply that stands for ``card`` where a subscription's repeat limit folded it under an
    earlier card of the same kind (the same pipeline failing again within the limit)."""
    again = f"Again within {_span(limit)}: shown in this thread instead of as a new card."
    summary = card.summary if not card.summary or card.summary.endswith((".", "!", "?")) else f"{card.summary}."
    return Card(
        title=card.title,
        status=card.status,
        summary=f"{summary} {again}" if summary else again,
        facts=card.facts,
        links=card.links,
        context=card.context,
        mentions=card.mentions,
    )


def _span(limit: timedelta) -> str:
    minutes = round(limit.total_seconds() / 60)
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _merge_handoff(state: State | None, event: DomainEvent) -> HandoffMerge | None:
    """The model handoff's cards (:mod:`bot.handoff_cards`); None for every other event."""
    if isinstance(event, ModelChecked):
        return merge_model_check(state, event)
    if isinstance(event, AppHandoffChanged):
        return merge_app_handoff(state, event)
    if isinstance(event, PromotionGateChanged):
        return merge_promotion_gate(state, event)
    if isinstance(event, ModelRegistered) and state and "handoff" in state:
        # the checks came first (or the registration again): draw the registration, keep the checks
        plain = {k: v for k, v in state.items() if k != "handoff"}
        merged = _merge_single(plain if "occurred" in plain else None, event)
        return HandoffMerge({**merged.state, "handoff": state["handoff"]}, merged.changed, merged.replies)
    return None


# --- pipeline runs ------------------------------------------------------------------------------------


def _run_base(run: PipelineRef) -> State:
    return {
        "type": "run",
        "organization": run.organization,
        "project": run.project,
        "pipeline": run.pipeline_name,
        "pipeline_id": run.pipeline_id,
        "run_id": run.run_id,
        "run_name": run.run_name,
        "branch": run.branch,
        "state": "notstarted",
        "result": None,
        "stages": {},
        "failures_announced": [],
    }


def _merge_run(state: State | None, event: RunStateChanged | StageStateChanged) -> Merge:
    before = state if state else _run_base(event.run)
    new = dict(before)
    new["stages"] = {k: dict(v) for k, v in before.get("stages", {}).items()}
    new["failures_announced"] = list(before.get("failures_announced", []))
    run = event.run
    # what an earlier event of the run left out (a hook with no definition, say) is filled in by later ones
    for key, value in (
        ("run_name", run.run_name),
        ("branch", run.branch),
        ("reason", run.reason),
        ("pipeline", run.pipeline_name),
        ("pipeline_id", run.pipeline_id),
        ("project", run.project),
    ):
        if value and not new.get(key):
            new[key] = value
    if event.web_url and isinstance(event, RunStateChanged):
        new["url"] = event.web_url
    new.setdefault("url", event.web_url)
    if event.actor and not new.get("requested_by"):
        new["requested_by"] = event.actor.display
        if event.actor.email:
            new["requested_by_email"] = event.actor.email
    replies: list[Card] = []
    if isinstance(event, RunStateChanged):
        _merge_run_state(new, event)
        if event.for_model and not new.get("for_model"):
            new["for_model"] = event.for_model
        if event.canceled_by and not new.get("canceled_by"):
            new["canceled_by"] = event.canceled_by  # shown while the card reads canceled
        if event.started_at and not new.get("started_at"):
            new["started_at"] = _iso(event.started_at)
        if event.finished_at and new["state"] == "completed":
            new["finished_at"] = new.get("finished_at") or _iso(event.finished_at)
        for rejection in event.rejections:
            _mark_rejected(new, rejection)
        failed = new["state"] == "completed" and new.get("result") in ("failed", "partiallysucceeded")
        rejected = _rejected_at(new) if failed and not _failed_stages(new) else []
        if rejected and not new["failures_announced"]:
            # a rejected approval ended the run, which Azure DevOps reports failed: told as the rejection it is
            new["failures_announced"] += ["run", *(stage for stage, _ in rejected)]
            replies.append(_rejection_reply(new, rejected))
        elif failed and not new["failures_announced"] and new["result"] in WITH_ISSUES:
            # the run partially succeeded: told as that, naming the stages with issues where known
            issues = [event.failing_stage] if event.failing_stage else _issue_stages(new)
            new["failures_announced"] += ["run", *issues]
            replies.append(_issues_reply(new, issues))
        elif failed and not new["failures_announced"]:  # a failed stage already told the thread
            where = event.failing_stage
            new["failures_announced"] += ["run", where] if where else ["run"]
            if where:
                new["failed_stage"] = where
            replies.append(_failure_reply(new, where))
    else:
        name = event.stage_name
        stage = new["stages"].setdefault(
            name,
            {"display": event.stage_display_name or name, "state": "notstarted", "order": len(new["stages"])},
        )
        # a stage is listed where it started: its earliest event, whichever of its events came first
        started = _utc_iso(event.occurred_at)
        if not stage.get("first_at") or started < stage["first_at"]:
            stage["first_at"] = started
        _merge_stage_state(new, stage, event)
        if stage["state"] == "completed" and (event.rejection or stage.get("result") == "rejected"):
            by = event.rejection.by if event.rejection else ""
            if by or "rejected_by" not in stage:
                stage["rejected_by"] = by
        if new["state"] == "notstarted":
            new["state"] = "inprogress"
        announced = new["failures_announced"]
        told = bool({name, stage["display"]} & set(announced))
        if "rejected_by" in stage and not told:
            told_by_the_run = announced == ["run"]
            new["failures_announced"].append(name)
            if not told_by_the_run:
                replies.append(_rejection_reply(new, [(stage["display"], stage["rejected_by"])]))
        # (the run's own failure may have named this stage already, by its display name)
        elif _stage_failed(stage) and not told:
            # the run's own failure, told before without a stage, was this one: the card names the stage now
            told_by_the_run = announced == ["run"]
            new["failures_announced"].append(name)
            new["failed_stage"] = stage["display"]
            if not told_by_the_run:
                replies.append(_failure_reply(new, stage["display"]))
    changed = new != before  # (``before`` is untouched: what changed was copied first)
    return Merge(new, changed, replies if changed else [])


def _run_replies_told(before: State, after: State) -> list[Card]:
    """What the run's thread was told of its failures ``before`` (see :func:`replies_told`), as ``after`` reads:
    each failed stage's failure, else the stages' rejections, else the run's own rejection, issues or failure."""
    told = set(before.get("failures_announced", [])) & set(after.get("failures_announced", []))
    if not told:
        return []
    stages = sorted((s for name, s in after["stages"].items() if {name, s["display"]} & told), key=_stage_place)
    if failed := [stage for stage in stages if _stage_failed(stage)]:
        return [_failure_reply(after, stage["display"]) for stage in failed]
    if "run" not in told:
        return [_rejection_reply(after, [(s["display"], s["rejected_by"])]) for s in stages if "rejected_by" in s]
    if rejected := _rejected_at(after):
        return [_rejection_reply(after, rejected)]
    if after.get("result") in WITH_ISSUES:
        return [_issues_reply(after, _issue_stages(after))]
    return [_failure_reply(after, after.get("failed_stage"))]


# Attempts: hooks number none, so they are told apart by when Azure DevOps created each event (``created_at``).
# Within an attempt a run or stage goes on (inProgress, waiting, running) before it completes. So an event
# created after the one that completed it, saying it goes on, is a newer attempt (a retry: "Rerun failed
# stages"); and an event created before the newest that said it goes on (``going_at``) is an earlier
# attempt's, left out. A late or redelivered event of the attempt the card shows changes nothing either.


def _merge_run_state(new: State, event: RunStateChanged) -> None:
    """Move the run's state by ``event``: forwards within an attempt, or on to a newer attempt."""
    at = _utc_iso(event.created_at) if event.created_at else None
    state = _norm(event.state)
    if new["state"] == "completed" and not new.get("result") and state == "completed" and event.result:
        new["result"] = _norm(event.result)  # the completion seen first did not say how the run ended
        return
    if at and at < new.get("going_at", ""):
        return  # an earlier attempt's
    if at and _run_goes_on(new, event, at):
        _reopen_run(new, at)
    elif RUN_STATE_RANK.get(state, 0) < RUN_STATE_RANK.get(new["state"], 0) or new["state"] == "completed":
        return
    if state == "completed" and not at:
        # a completion Azure DevOps did not stamp (Handoff's own polling) is dated by when Handoff learned of it:
        # the finished attempt's events were all created before then, and a rerun's after
        at = _utc_iso(event.occurred_at)
    _move(new, state, event.result, at)


def _move(item: State, state: str, result: str | None, at: str | None) -> None:
    """Put a run or a stage in ``state``, told by an event Azure DevOps created ``at``: how it ended and when,
    or when it was last said to go on."""
    item["state"] = state
    if state == "completed":
        item["result"] = _norm(result)
        if at:
            item["completed_at"] = at
    elif at:
        item["going_at"] = at


def _run_goes_on(run: State, event: RunStateChanged, at: str) -> bool:
    """Whether ``event`` is of a newer attempt than the completed run the card shows: it says the run goes on,
    or it ended again later (the event of a retry that started unseen)."""
    if run["state"] != "completed" or not run.get("completed_at") or at <= run["completed_at"]:
        return False
    if _norm(event.state) != "completed":
        return True
    # both of an attempt's completions (run-state-changed, build.complete) name one finish
    shown = run.get("finished_at")
    return bool(event.finished_at and shown and event.finished_at > datetime.fromisoformat(shown))


def _reopen_run(run: State, at: str) -> None:
    """The run goes on in a newer attempt: its end, and what the thread was told of it, are the last attempt's."""
    run.update(state="inprogress", result=None, going_at=at, failures_announced=[])
    for key in ("completed_at", "finished_at", "failed_stage", "canceled_by", "rejected"):
        run.pop(key, None)


def _merge_stage_state(run: State, stage: State, event: StageStateChanged) -> None:
    """Move a stage's state by ``event``: forwards within an attempt, or on to a newer attempt (a retry),
    which takes its run on with it."""
    at = _utc_iso(event.created_at) if event.created_at else None
    state = _norm(event.state)
    if at and at < stage.get("going_at", ""):
        return  # an earlier attempt's
    if at and stage["state"] == "completed" and stage.get("completed_at") and at > stage["completed_at"]:
        stage.pop("result", None)
        stage.pop("completed_at", None)
        stage.pop("rejected_by", None)
        # its next failure is news for the thread again
        retried = {event.stage_name, stage["display"]}
        run["failures_announced"] = [s for s in run["failures_announced"] if s not in retried]
        if run.get("failed_stage") == stage["display"]:
            del run["failed_stage"]
        if run["state"] == "completed" and run.get("completed_at") and at > run["completed_at"]:
            _reopen_run(run, at)
        else:  # an end of the run created before this retry is an earlier attempt's
            run["going_at"] = max(run.get("going_at", ""), at)
    elif STAGE_STATE_RANK.get(state, 0) < STAGE_STATE_RANK.get(stage["state"], 0) or stage["state"] == "completed":
        return
    _move(stage, state, event.result, at)


def _run_status(state: State) -> Status:
    if state["state"] == "completed":
        if state.get("result") == "failed" and _rejected_at(state) and not _failed_stages(state):
            return Status.REJECTED  # Azure DevOps reports it failed: an approval was rejected, nothing broke
        return RESULT_STATUS.get(state.get("result") or "", Status.INFO)
    if state["state"] == "canceling":
        return Status.CANCELED
    if any(s["state"] == "waiting" for s in state["stages"].values()):
        return Status.WAITING
    return Status.RUNNING if state["state"] == "inprogress" else Status.QUEUED


def _stage_shown(stage: State, run: State) -> Status:
    """How a stage shows on its run's card: as it stands, except that a run that ended has no stage still
    going (one whose end was never told, or told before a late event of its start): the stage under way
    when the run was canceled shows canceled, any other did not run."""
    status = _stage_status(stage)
    if run["state"] != "completed" or stage["state"] == "completed":
        return status
    if run.get("result") in ("canceled", "cancelled") and status in (Status.RUNNING, Status.WAITING):
        return Status.CANCELED
    return Status.SKIPPED


def _stage_status(stage: State) -> Status:
    if stage["state"] == "completed" and "rejected_by" in stage:
        return Status.REJECTED
    if stage["state"] == "completed":
        return RESULT_STATUS.get(stage.get("result") or "", Status.INFO)
    return {"waiting": Status.WAITING, "running": Status.RUNNING, "inprogress": Status.RUNNING}.get(
        stage["state"], Status.QUEUED
    )


def _stage_place(stage: State) -> tuple[str, str, int]:
    """Where a stage is listed on its run's card: by when it started, stages that started together by name.
    (A card stored before stages kept their start is listed in the order its stages' events arrived.)"""
    return stage.get("first_at", ""), stage["display"] if "first_at" in stage else "", stage["order"]


def _stage_failed(stage: State) -> bool:
    """Whether a stage failed (a stage whose approval was rejected did not: it never ran; nor did one that
    succeeded with issues)."""
    return stage.get("result") == "failed" and "rejected_by" not in stage


def _issue_stages(state: State) -> list[str]:
    """The run's stages that succeeded with issues, by name."""
    return sorted(
        s["display"] for s in state["stages"].values() if s.get("result") in WITH_ISSUES and "rejected_by" not in s
    )


def _failed_stages(state: State) -> list[str]:
    """The run's failed stages, by name (whatever order their events came in)."""
    return sorted(s["display"] for s in state["stages"].values() if _stage_failed(s))


def _mark_rejected(state: State, rejection: Rejection) -> None:
    """Mark the stage ``rejection`` names rejected on the run's card; a stage the card does not list (its events
    were not subscribed to) is kept with the run."""
    wanted = _norm(rejection.stage)
    for name, stage in state["stages"].items():
        if wanted in (_norm(name), _norm(stage["display"])):
            if rejection.by or "rejected_by" not in stage:
                stage["rejected_by"] = rejection.by
            return
    told = [r for r in state.get("rejected", []) if _norm(r["stage"]) != wanted]
    state["rejected"] = [*told, {"stage": rejection.stage, "by": rejection.by}]


def _rejected_at(state: State) -> list[tuple[str, str]]:
    """The stages whose approval was rejected, each with who rejected it ("" when not known), by name."""
    found = {s["display"]: s["rejected_by"] for s in state["stages"].values() if "rejected_by" in s}
    for rejection in state.get("rejected", []):
        found.setdefault(rejection["stage"], rejection["by"])
    return sorted(found.items())


def _rejected_summary(rejected: list[tuple[str, str]]) -> str:
    """``Rejected at stage Production by Carol Diaz``."""
    stages = [stage for stage, _ in rejected]
    where = f"stage {stages[0]}" if len(stages) == 1 else f"stages {', '.join(stages[:-1])} and {stages[-1]}"
    deciders = list(dict.fromkeys(who for _, who in rejected if who))
    return f"Rejected at {where}" + (f" by {_and(deciders)}" if deciders else "")


def _failed_at(state: State) -> str:
    """Where the run failed: its failed stages by name (whatever order their events came in), else the stage
    the run named; "" where nobody said (the card's status says it failed)."""
    failed = _failed_stages(state)
    if not failed and state.get("failed_stage"):
        failed = [state["failed_stage"]]
    if not failed:
        return ""
    if len(failed) == 1:
        return f"Failed at stage {failed[0]}"
    return f"Failed at stages {', '.join(failed[:-1])} and {failed[-1]}"


def _duration(state: State) -> str | None:
    if not (state.get("started_at") and state.get("finished_at")):
        return None
    seconds = int(
        (datetime.fromisoformat(state["finished_at"]) - datetime.fromisoformat(state["started_at"])).total_seconds()
    )
    return _elapsed(max(seconds, 0))


def _elapsed(seconds: int) -> str:
    """A duration in its two largest units: ``45s``, ``4m 05s``, ``3h 05m``, ``1d 0h``."""
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _canceled_by(state: State) -> str:
    """Who canceled a run or job from chat, as its card says while it reads canceled ("" when not known)."""
    return f"Canceled by {state['canceled_by']}" if state.get("canceled_by") else ""


def _run_title(state: State) -> str:
    name = f" {state['run_name']}" if state.get("run_name") else f" #{state['run_id']}"
    return f"{state['pipeline']}{name}"


def _render_run(state: State) -> Card:
    status = _run_status(state)
    summary = {
        Status.FAILED: _failed_at(state),
        Status.WAITING: "Waiting for approval",
        Status.CANCELED: _canceled_by(state),
    }.get(status, "")
    if status is Status.REJECTED:
        summary = _rejected_summary(_rejected_at(state))
    facts = [Fact("Pipeline", state["pipeline"]), Fact("Run", state.get("run_name") or str(state["run_id"]))]
    if state.get("for_model"):
        facts.append(Fact("Model", state["for_model"]))
    if state.get("branch"):
        facts.append(Fact("Branch", str(state["branch"]).removeprefix("refs/heads/")))
    if reason := reason_words(state.get("reason")):
        facts.append(Fact("Reason", reason))
    if state.get("requested_by"):
        facts.append(Fact("Requested by", state["requested_by"]))
    if status is Status.REJECTED and (deciders := [who for _, who in _rejected_at(state) if who]):
        facts.append(Fact("Rejected by", _and(list(dict.fromkeys(deciders)))))
    if duration := _duration(state):
        facts.append(Fact("Duration", duration))
    stages = sorted(state["stages"].values(), key=_stage_place)
    links = [Link("Open run", state["url"])] if state.get("url") else []
    if status in (Status.FAILED, Status.PARTIAL) and state.get("url"):
        links.append(Link("Logs", _logs_url(state["url"])))
    return Card(
        title=_run_title(state),
        status=status,
        summary=summary,
        facts=tuple(facts),
        steps=tuple(Step(s["display"], _stage_shown(s, state)) for s in stages),
        links=tuple(links),
        context=f"Azure DevOps · {state['organization']}/{state['project']}",
        # a failed run calls on who asked for it: where the card is first shown failed, it says so itself
        # (an edit of a card shown before notifies nobody; its failure reply does)
        mentions=_asker(state) if status in (Status.FAILED, Status.PARTIAL) else (),
    )


def _asker(state: State) -> tuple[Mention, ...]:
    """The person who asked for the run, to call on (by email, as the platforms look people up)."""
    email = state.get("requested_by_email")
    return (Mention(state.get("requested_by") or email, email),) if email else ()


def _logs_url(run_url: str) -> str:
    """Where a run's logs are: its results page opened on them."""
    return f"{run_url}&view=logs" if "?" in run_url else run_url


def _rejection_reply(state: State, rejected: list[tuple[str, str]]) -> Card:
    """The thread reply for a run an approval's rejection ended: where and by whom; no logs, nobody called on
    (nothing broke)."""
    said = _rejected_summary(rejected)
    return Card(title=f"{_run_title(state)} {said[0].lower()}{said[1:]}", status=Status.REJECTED)


def _failure_reply(state: State, stage: str | None) -> Card:
    """The thread reply for a failure: where (when known), the logs, and a mention of the person who asked for
    the run."""
    links = (Link("Logs", _logs_url(state["url"])),) if state.get("url") else ()
    tested = f" with {state['for_model']}" if state.get("for_model") else ""
    return Card(
        title=f"{_run_title(state)} failed in stage {stage}" if stage else f"{_run_title(state)} failed{tested}",
        status=Status.FAILED,
        summary=f"Stage {stage} failed{tested}." if stage else "",
        links=links,
        mentions=_asker(state),
    )


def _issues_reply(state: State, stages: list[str]) -> Card:
    """The thread reply for a run that partially succeeded: the stages with issues (when known), the logs, and a
    mention of the person who asked for the run."""
    tested = f" with {state['for_model']}" if state.get("for_model") else ""
    if len(stages) > 1:
        issues = f"Issues in stages {', '.join(stages[:-1])} and {stages[-1]}."
    else:
        issues = f"Issues in stage {stages[0]}." if stages else ""
    return Card(
        title=f"{_run_title(state)} partially succeeded{tested}",
        status=Status.PARTIAL,
        summary=issues,
        links=(Link("Logs", _logs_url(state["url"])),) if state.get("url") else (),
        mentions=_asker(state),
    )


# --- approvals ----------------------------------------------------------------------------------------


def _merge_approval(state: State | None, event: ApprovalEvent) -> Merge:
    new: State = dict(state) if state else {"type": "approval", "status": "pending"}
    before = dict(new)
    status = _norm(event.status)
    decided_before = new["status"] != "pending"
    if decided_before and _expired_in_handoff(new) and status not in _UNDECIDED:
        # Handoff's expiry is its own: the approval waited on in Azure DevOps, which has now completed it
        decided_before = False
        new.pop("note", None)  # (that it still waits in Azure DevOps)
    if not decided_before:
        new["status"] = status
    run = event.run
    for key, value in (
        ("approval_id", event.approval_id),
        ("approval_kind", event.approval_kind),
        ("scope", event.scope),
        ("project", event.project),
        ("pipeline", run.pipeline_name if run else event.release_definition),
        ("run_id", run.run_id if run else None),
        ("run_name", run.run_name if run else None),
        ("release", event.release_name),  # a classic release's, which has no run
        ("stage", event.stage),  # as the run's card names it: its display name
        ("environment", event.environment_name),
        ("instructions", event.instructions),
        ("for_model", event.for_model),
        ("url", event.web_url),
        ("requested_by", event.requester.display if event.requester else None),
        ("timeout_at", _iso(event.timeout_at)),
        ("approval_type", event.approval_type),
    ):
        if value and not new.get(key):
            new[key] = value
    new["min_required"] = event.min_required_approvers
    barred = sorted({p.email.lower() for p in event.blocked_approvers if p.email})
    if barred and not new.get("barred"):
        new["barred"] = barred
    if event.handoff is not None and event.handoff.email and not new.get("handoff_identity"):
        new["handoff_identity"] = event.handoff.email.lower()
    asked_at = _utc_iso(event.occurred_at)
    # an ask older than the one shown (its approval reassigned since, its hook late) names approvers no longer asked
    outdated = status == "pending" and asked_at < new.get("approvers_at", "")
    if event.approvers and (not decided_before or not new.get("approvers")) and not outdated:
        new["approvers"] = [_approver_state(a) for a in event.approvers]
        if status == "pending":
            new["approvers_at"] = asked_at
    if status == "pending" and event.handoff is not None and not outdated:
        # as Azure DevOps asks now (a reassigned approval names its new approver)
        if event.handoff_not_assigned:
            new["handoff_not_assigned"] = True
        else:
            new.pop("handoff_not_assigned", None)
    if (terms := event.terms) is not None:
        # what Handoff's gate policy adds: how many approvals from chat decide it (until a change of the gate
        # says), who else may decide it, who may not, and when it expires
        new.setdefault("needed", terms.needed)
        new["role_approvers"] = list(terms.role_approvers)
        new["policy_barred"] = sorted({b.lower() for b in terms.barred})
        if terms.expires_at is not None:
            new["expires_at"] = _utc_iso(terms.expires_at)
    if status not in _UNDECIDED:
        new["closed_in_azure_devops"] = True  # no later refusal in Handoff takes the card back to waiting
    replies: list[Card] = []
    if not decided_before and (closed := CLOSED_IN_AZURE_DEVOPS.get(new["status"])):
        # nobody decided it: the card says how it closed, and names no decider
        new["closed"] = closed
        replies.append(Card(title=f"Closed: {closed}", status=APPROVAL_STATUS[new["status"]]))
    elif not decided_before and new["status"] != "pending":
        deciders = [a for a in new.get("approvers", []) if _norm(a.get("status")) in ("approved", "rejected")]
        by = ", ".join(dict.fromkeys(a["name"] for a in deciders)) or (
            _person_name(event.actor) if event.actor else "Azure DevOps"
        )
        comment = next((a["comment"] for a in deciders if a.get("comment")), "")
        new["decided_by"] = by
        replies.append(
            Card(
                title=f"{APPROVAL_STATUS.get(new['status'], Status.INFO).label} by {by}",
                status=APPROVAL_STATUS.get(new["status"], Status.INFO),
                summary=comment,
            )
        )
    changed = new != before
    return Merge(new, changed, replies if changed else [])


def _approval_replies_told(before: State, after: State) -> list[Card]:
    """The reply that told the approval's outcome ``before`` (see :func:`replies_told`), if ``after`` still shows
    that outcome."""
    status = str(after.get("status", "pending"))
    if before.get("status", "pending") in _UNDECIDED or before.get("status") != status:
        return []
    shown = APPROVAL_STATUS.get(status, Status.INFO)
    deciders = [a for a in after.get("approvers", []) if _norm(a.get("status")) in ("approved", "rejected")]
    decisions = after.get("decisions") or [{}]
    comment = next((a["comment"] for a in deciders if a.get("comment")), "") or str(decisions[-1].get("comment") or "")
    links: tuple[Link, ...] = ()
    if after.get("closed"):
        title = f"Closed: {after['closed']}"
    elif superseded := after.get("superseded_by"):
        title = f"Superseded by {superseded['label']}"
        links = (Link(f"{superseded['label']} in Azure ML", superseded["url"]),) if superseded.get("url") else ()
    elif _expired_in_handoff(after):
        title = "Nobody decided in time"
    elif after.get("decided_by"):
        title = f"{shown.label} by {after['decided_by']}"
    else:
        title = shown.label
    return [Card(title=title, status=shown, summary=comment, links=links)]


def _expired_in_handoff(state: State) -> bool:
    """Whether an approval's card shows its gate expired by Handoff's own policy, Azure DevOps not having said how
    the approval completed."""
    return state.get("status") == "expired" and not state.get("closed_in_azure_devops")


def _merge_gate_change(state: State | None, event: GateChanged) -> Merge:
    if state and int(state.get("gate_revision", 0)) > event.revision:
        return Merge(state, False, [])  # a newer change of the gate is shown already
    new: State = dict(state) if state else {"type": "approval", "status": "pending"}
    before = dict(new)
    if event.revision:
        new["gate_revision"] = event.revision
    decided_before = new["status"] != "pending"
    new["decisions"] = [
        {"actor": d.actor, "decision": d.decision, "comment": d.comment, "platform": d.platform}
        | ({"name": d.name} if d.name else {})
        | ({"chat_ids": list(d.chat_ids)} if d.chat_ids else {})
        for d in event.decisions
    ]
    new["needed"] = event.needed
    if event.handoff_approved:
        new["handoff_approved"] = True
    else:
        new.pop("handoff_approved", None)
    if event.only_in_azure_devops:
        new["only_in_azure_devops"] = event.only_in_azure_devops
    else:
        new.pop("only_in_azure_devops", None)
    if event.closed:
        new["closed"] = event.closed
    replies: list[Card] = []
    if event.refused is not None:
        # the decision was refused: it never took effect, so the card waits again, whatever it showed (unless
        # Azure DevOps has completed the approval since)
        refused = event.refused
        new["refused"] = {
            "actor": refused.actor,
            "decision": refused.decision,
            "platform": refused.platform,
            "why": event.note,
        } | ({"name": refused.name} if refused.name else {})
        if not new.get("closed_in_azure_devops"):
            new["status"] = event.status
            new.pop("decided_by", None)
            headline, why = _refusal(new)
            links = (Link("Open in Azure DevOps", new["url"]),) if new.get("url") and new["type"] == "approval" else ()
            replies.append(Card(title=headline, status=Status.WARNING, summary=why, links=links))
    elif event.completed is not None:
        replies += _completed_in_azure_devops(new, before, event, event.completed)
    elif not decided_before or (event.handoff_approved and not new.get("closed_in_azure_devops")):
        if decided_before:  # shown approved while Azure DevOps did not answer: it waits there for more approvers
            new.pop("decided_by", None)
        new["status"] = event.status
        latest = event.decisions[-1] if event.decisions else None
        if event.status != "pending":
            status = APPROVAL_STATUS.get(event.status, Status.INFO)
            approving = [d for d in event.decisions if d.decision in ("approve", "override")]
            if latest is not None and event.status == "approved" and len(approving) > 1:
                # every approval that made it up, each from wherever it was given
                new["decided_by"] = by = _and(list(dict.fromkeys(_name_of(new, d.actor, d.name) for d in approving)))
                replies.append(Card(title=f"{status.label} by {by}", status=status, summary=latest.comment))
            elif latest is not None and event.status in ("approved", "rejected"):
                where = f" in {latest.platform.capitalize()}" if latest.platform else ""
                new["decided_by"] = by = _name_of(new, latest.actor, latest.name)
                # an override approves over what blocked Approve: the thread is told so, with the reason given
                how = "Approved, overriding what blocked it," if latest.decision == "override" else status.label
                replies.append(Card(title=f"{how}{where} by {by}", status=status, summary=latest.comment))
            elif event.superseded_by:
                url = event.superseded_by_url
                new["superseded_by"] = {"label": event.superseded_by} | ({"url": url} if url else {})
                links = (Link(f"{event.superseded_by} in Azure ML", url),) if url else ()
                replies.append(
                    Card(title=f"Superseded by {event.superseded_by}", status=status, summary=event.note, links=links)
                )
            elif event.status == "expired":
                replies.append(Card(title="Nobody decided in time", status=status, summary=event.note))
            else:
                replies.append(Card(title=f"{status.label}", status=status, summary=event.note))
        elif latest is not None and event.handoff_approved:
            names = ", ".join(_name_of(new, d.actor, d.name) for d in event.decisions if d.decision == "approve")
            replies.append(Card(title=f"Handoff approved in Azure DevOps for {names}", status=Status.WAITING))
        elif latest is not None:
            approvals = sum(1 for d in event.decisions if d.decision == "approve")
            replies.append(
                Card(
                    title=f"Approved by {_name_of(new, latest.actor)} ({approvals} of {event.needed})",
                    status=Status.WAITING,
                    summary=latest.comment,
                )
            )
    if event.note and event.refused is None:
        new["note"] = event.note
    else:  # a note tells about the change that made it (Azure DevOps not answering): the next one replaces it
        new.pop("note", None)
    changed = new != before
    return Merge(new, changed, replies if changed else [])


def _completed_in_azure_devops(new: State, before: State, event: GateChanged, completed: Completion) -> list[Card]:
    """Show the outcome Azure DevOps completed the approval with, whatever the card showed (a decision from chat
    that never reached it, ``event.not_applied``, which the card then says did not take effect); the thread reply
    for it, unless the card showed that outcome already."""
    new["status"] = event.status
    new["closed_in_azure_devops"] = True  # no later refusal in Handoff takes the card back to waiting
    if completed.by:
        new["decided_by"] = _readable(completed.by)
    else:
        new.pop("decided_by", None)
    held = event.not_applied
    if held is not None:
        new["not_applied"] = {"actor": held.actor, "decision": held.decision, "platform": held.platform} | (
            {"name": held.name} if held.name else {}
        )
    if before.get("status") == new["status"] and before.get("not_applied") == new.get("not_applied"):
        return []
    status = APPROVAL_STATUS.get(event.status, Status.INFO)
    not_applied = _not_applied(new)
    mentions: tuple[Mention, ...] = ()
    if held is not None and "@" in held.actor:  # the person who decided in chat is told in the thread
        mentions = (Mention(_name_of(new, held.actor, held.name), held.actor),)
    return [
        Card(
            title=_completion_headline(new),
            status=status,
            summary="\n\n".join(part for part in (f"{not_applied}." if not_applied else "", completed.comment) if part),
            mentions=mentions,
        )
    ]


def _completion_headline(state: State) -> str:
    """``Rejected in Azure DevOps by Bob Chen``: what Azure DevOps completed the approval with, and who did;
    ``Closed: the run was canceled`` for an approval that closed with nobody deciding it."""
    if state.get("closed"):
        return f"Closed: {state['closed']}"
    status = APPROVAL_STATUS.get(state["status"], Status.INFO)
    by = state.get("decided_by")
    return f"{status.label} in Azure DevOps" + (f" by {by}" if by else "")


def _not_applied(state: State) -> str:
    """``Carol Diaz's approval from Slack was not applied``; "" when no decision from chat was left unapplied."""
    held = state.get("not_applied")
    if not held:
        return ""
    noun = DECISION_NOUNS.get(str(held.get("decision")), "decision")
    who = _name_of(state, str(held.get("actor")), str(held.get("name", "")))
    where = f" from {str(held['platform']).capitalize()}" if held.get("platform") else ""
    return f"{who}'s {noun}{where} was not applied"


def _refusal(state: State) -> tuple[str, str]:
    """Whose decision on the gate Azure DevOps refused, and why; ("", "") if none was refused."""
    if state.get("type") == "promotion_gate":
        return promotion_refusal(state)
    refused = state.get("refused")
    if not refused:
        return "", ""
    noun = DECISION_NOUNS.get(str(refused.get("decision")), "decision")
    who = _name_of(state, str(refused.get("actor")), str(refused.get("name", "")))
    return f"Azure DevOps refused {who}'s {noun}", str(refused.get("why", ""))


def _name_of(state: State, actor: str, chat_name: str = "") -> str:
    """The name the approval's steps give the person ``actor`` (a decider's email) stands for, a group's
    members included; else the name chat gave them (``chat_name``), else ``actor`` itself (never a bare id)."""
    wanted = _norm(actor)
    for approver in state.get("approvers", []):
        people = approver.get("members", []) if approver.get("group") else [approver]
        for person in people:
            if person.get("email") and _norm(person["email"]) == wanted and person.get("name"):
                return str(person["name"])
    return _readable(chat_name or actor)


def _approval_title(state: State) -> str:
    """What the gate asks, from what is known of it: ``Release release-app-y to production``, a classic
    release's ``Release Fabrikam.CD Release-1 to Dev`` or, after its deployment, ``Sign off Fabrikam.CD
    Release-1 in Dev``; a pipeline approval whose run is not known yet, ``Approval in production``."""
    environment, stage = state.get("environment"), state.get("stage")
    # a pipeline's run, or a classic release of its definition (``Fabrikam.CD Release-1``)
    what = " ".join(n for n in (state.get("pipeline"), state.get("release")) if n)
    if state.get("approval_type") == "postDeploy":  # a sign-off of a deployment done
        if what:
            return f"Sign off {what} in {environment}" if environment else f"Sign off {what}"
        return f"Sign-off in {environment}" if environment else "Sign-off after deployment"
    if what:
        return f"Release {what} to {environment or stage or 'the next stage'}"
    if environment:
        return f"Approval in {environment}"
    return f"Approval at stage {stage}" if stage else "Approval"


def _render_approval(state: State) -> Card:
    status = APPROVAL_STATUS.get(state["status"], Status.INFO)
    # the same headline before and after the decision (the status line says how it was decided)
    title = _approval_title(state)
    facts = [Fact("Pipeline", state["pipeline"])] if state.get("pipeline") else []
    if state.get("release"):
        facts.append(Fact("Release", state["release"]))
    if state.get("run_name") or state.get("run_id"):
        facts.append(Fact("Run", str(state.get("run_name") or state.get("run_id"))))
    if state.get("for_model"):
        facts.append(Fact("Model", state["for_model"]))
    if state.get("stage"):
        facts.append(Fact("Stage", state["stage"]))
    if state.get("environment"):
        facts.append(Fact("Environment", state["environment"]))
    if state.get("approval_type") == "postDeploy":
        facts.append(Fact("Approval", "Post-deployment"))
    handoff = state.get("handoff_identity")
    people = [a for a in state.get("approvers", []) if not handoff or _norm(a.get("email")) != handoff]
    if approvers := _approvers_shown(state, people):
        facts.append(Fact("Approvers", approvers))
    required = int(state.get("min_required", 1))
    needed = max(required, int(state.get("needed", 1)))
    # Handoff's identity gives one approval in Azure DevOps, however many people approve in chat
    counts_once = len(people) < len(state.get("approvers", [])) and required > 1
    if counts_once:
        facts.append(Fact("Approvals needed", f"{required} in Azure DevOps: Handoff's, and {required - 1} more there"))
    else:
        facts.append(Fact("Approvals needed", str(needed)))
    if status is Status.WAITING and (expires := state.get("expires_at") or state.get("timeout_at")):
        facts.append(Fact("Expires", datetime.fromisoformat(expires).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")))
    if state.get("requested_by"):
        facts.append(Fact("Requested by", state["requested_by"]))
    approvals = [d for d in state.get("decisions", []) if d["decision"] == "approve"]
    if status is Status.WAITING and approvals:
        names = ", ".join(_name_of(state, d["actor"], d.get("name", "")) for d in approvals)
        if state.get("handoff_approved"):
            facts.append(Fact("Approved so far", f"Handoff's approval in Azure DevOps, for {names}"))
        else:
            facts.append(Fact("Approved so far", f"{len(approvals)} of {needed}: {names}"))
    if state.get("decided_by"):
        facts.append(Fact("Decided by", _readable(state["decided_by"])))
    if state.get("note"):
        facts.append(Fact("Note", state["note"]))
    summary = state.get("instructions", "")
    headline, why = _refusal(state)
    barred = bool(handoff) and handoff in state.get("barred", [])
    closed_to_chat = str(state.get("only_in_azure_devops", "")) or (
        HANDOFF_NOT_ASSIGNED if state.get("handoff_not_assigned") else ""
    )
    only_there = status is Status.WAITING and (barred or bool(state.get("handoff_approved")) or bool(closed_to_chat))
    if status is Status.WAITING and barred:
        summary = HANDOFF_BARRED + (f"\n\n{summary}" if summary else "")
    elif status is Status.WAITING and closed_to_chat:
        summary = closed_to_chat + (f"\n\n{summary}" if summary else "")
    elif status is Status.WAITING and headline:
        summary = f"{headline}: {why}" + (f"\n\n{summary}" if summary else "")
    elif status is Status.WAITING and counts_once and not state.get("handoff_approved"):
        more = f"{required - 1} more must approve there" if required > 2 else "one more must approve there"
        told = f"Handoff's approval counts once in Azure DevOps, which needs {required} approvers: {more}."
        summary = told + (f"\n\n{summary}" if summary else "")
    elif status is not Status.WAITING and (not_applied := _not_applied(state)):
        # Azure DevOps completed it otherwise than the card once said: say so first
        summary = f"{_completion_headline(state)}; {not_applied}." + (f"\n\n{summary}" if summary else "")
    elif status is not Status.WAITING and state.get("closed"):
        summary = f"{_completion_headline(state)}." + (f"\n\n{summary}" if summary else "")
    actions: tuple[Action, ...] = ()
    if status is Status.WAITING and not only_there:
        gate = {
            "gate": f"azure-devops:{state.get('scope', '')}:{state.get('approval_kind')}-approval:"
            f"{state.get('approval_id')}".lower()
        }
        actions = (
            Action("approve", "Approve", gate, style="primary", comment_prompt="Comment (optional)"),
            Action("reject", "Reject", gate, style="danger", needs_comment=True, comment_prompt="Reason"),
        )
    return Card(
        title=title,
        status=status,
        summary=summary,
        facts=tuple(facts),
        links=(Link("Open in Azure DevOps", state["url"]),) if state.get("url") else (),
        actions=actions,
        context="Azure DevOps approval",
        # approvers only through Handoff's gate policy are called on while chat can still decide
        mentions=_awaited_approvers(state, by_policy=not only_there) if status is Status.WAITING else (),
    )


# An Azure DevOps identity's id (a GUID), which names nobody a person would know
_IDENTITY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def _readable(name: str, *, group: bool = False) -> str:
    """A name to show for someone: as given, unless it is an identity's bare id (the hook named them by id and
    the identity service did not answer): then what they are."""
    if name and not _IDENTITY_ID.match(name.strip()):
        return name
    return "a group in Azure DevOps" if group else "an Azure DevOps identity"


def _person_name(person: Person, *, group: bool = False) -> str:
    """Someone's name, else their email, else what they are (never their id)."""
    return _readable(person.name or person.email or "", group=group)


def _approver_state(approver: Approver) -> State:
    """An approval step on the card: who, how it stands, and for a small group the people in it."""
    state: State = {
        "name": _person_name(approver.person, group=approver.group),
        "email": approver.person.email,
        "status": approver.status,
        "comment": approver.comment,
    }
    if approver.group:
        state["group"] = True
        if len(approver.members) <= GROUP_MENTION_LIMIT:
            state["members"] = [{"name": p.display, "email": p.email} for p in approver.members if p.email]
    return state


def _barred(state: State) -> set[str]:
    """Who may not approve the gate: Azure DevOps' blocked approvers, and its requester where Handoff's gate
    policy says the requester may not approve (by email, lowercase, or as the configuration names them)."""
    return set(state.get("barred", [])) | set(state.get("policy_barred", []))


def _role_approvers(state: State) -> list[str]:
    """The people who may decide the gate only through Handoff's gate policy (its ``approver_roles``), as the
    configuration names them: not Azure DevOps' approvers again, nor who may not approve it."""
    assigned = {
        _norm(person.get("email"))
        for approver in state.get("approvers", [])
        for person in (approver.get("members", []) if approver.get("group") else [approver])
        if person.get("email")
    }
    barred = _barred(state)
    return [
        str(p)
        for p in state.get("role_approvers", [])
        if _norm(str(p)) not in assigned and str(p).lower() not in barred and str(p) != state.get("handoff_identity")
    ]


def _approvers_shown(state: State, people: list[State]) -> str:
    """``Carol Diaz, alice@contoso.com and 1 more approver``: Azure DevOps' approvers (but Handoff's own account
    and who may not approve the gate) by name, then those only Handoff's gate policy adds, by name where a
    decision told it, else by email; those known by a chat id only are counted."""
    barred = _barred(state)
    named = [
        _readable(a["name"], group=bool(a.get("group")))
        for a in people
        if a.get("group") or not a.get("email") or a["email"].lower() not in barred
    ]
    by_policy = _role_approvers(state)
    if not named and not by_policy:
        return ""
    return named_and_counted(by_policy, "approver", "approvers", known_names(state), named=named)


def _awaited_approvers(state: State, *, by_policy: bool = True) -> tuple[Mention, ...]:
    """The approvers a waiting gate calls on: the people who have not decided yet and whom Azure DevOps lets
    decide (not its blocked approvers: the requester, where requesterCannotBeApprover is on, nor the requester
    where Handoff's gate policy bars them). A group's step calls on its members, when it is small enough to
    name them (a large one is only named). ``by_policy``: the people Handoff's gate policy lets decide (its
    approver roles' members) too, by email or by chat id."""
    barred = _barred(state) | ({state["handoff_identity"]} if state.get("handoff_identity") else set())
    decided = {_norm(d["actor"]) for d in state.get("decisions", [])}
    mentions: dict[str, Mention] = {}
    for approver in state.get("approvers", []):
        if _norm(approver.get("status")) not in _UNDECIDED:
            continue
        for person in approver.get("members", []) if approver.get("group") else [approver]:
            email = person.get("email")
            if not email or email.lower() in barred or decided & {_norm(email), _norm(person.get("name"))}:
                continue
            mentions.setdefault(email.lower(), Mention(person.get("name") or email, email))
    if by_policy:
        decided_as = {who.lower() for d in state.get("decisions", []) for who in decider_names(d)}
        for person in _role_approvers(state):
            if person.lower() not in decided_as:
                mentions.setdefault(person.lower(), mention_of(person))
    return tuple(mentions.values())


def _and(names: list[str]) -> str:
    """``Carol Diaz and Alice Martin``; ``A, B and C``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# --- a model version's deployments, on the version's card ------------------------------------------------


def _merge_deployment(state: State | None, event: ModelDeployed, name: str, version: str) -> Merge:
    """Add the service a model version went to to the version's card (kept per service: a deployment told
    again, or an older one arriving late, adds nothing). A new service is news for the card's thread; the card
    a deployment posts first (the version's registration came before Handoff watched, or has not arrived yet)
    says it itself."""
    label = f"{name}:{version}"
    if state:
        new = dict(state)
    else:
        # the registration, when it comes, draws the card again and keeps these deployments
        links = (Link("Open", event.web_url),) if event.web_url else ()
        base = Card(title=f"Model {label}", status=Status.SUCCEEDED, links=links, context=_azure_ml(event.scope))
        new = {"type": "model_version", "card": base.to_json()}
    deployments = {service: dict(told) for service, told in new.get("deployments", {}).items()}
    service = event.service_name.lower()
    known = deployments.get(service)
    at = _utc_iso(event.occurred_at)
    if known is None or at > known["at"]:
        deployments[service] = {
            "service": event.service_name,
            "compute": event.compute_type or (known or {}).get("compute", ""),
            "at": at,
        }
    new["deployments"] = deployments
    new["model_version"] = label
    replies = []
    if state and known is None:
        replies.append(
            Card(
                title=f"Model {label} deployed to {_where(deployments[service])}",
                status=Status.SUCCEEDED,
                links=(Link("Open", event.web_url),) if event.web_url else (),
            )
        )
    changed = new != state
    return Merge(new, changed, replies if changed else [])


def _where(deployment: State) -> str:
    """``model-x-prod (AKS)``."""
    compute = deployment.get("compute")
    return f"{deployment['service']} ({compute})" if compute else str(deployment["service"])


def _with_deployments(card: Card, state: State) -> Card:
    """A model version's card once the version is deployed: it says so, and where it runs (first deployed
    first)."""
    deployments = sorted(state["deployments"].values(), key=lambda d: (d["at"], d["service"].lower()))
    return replace(
        card,
        title=f"Model {state['model_version']} deployed",
        facts=(*card.facts, Fact("Deployed to", ", ".join(_where(d) for d in deployments))),
    )


# --- one-shot events: the newest event draws the card ------------------------------------------------


def _merge_single(state: State | None, event: DomainEvent) -> Merge:
    card = _single_card(event)
    new: State = {"type": event.kind, "occurred": event.occurred_at.isoformat(), "card": card.to_json()}
    if isinstance(event, DataArrived) and event.sequencer:
        new["sequencer"] = event.sequencer
    if state and "occurred" in state and _kept(state, new, event):
        return Merge(state, False)
    if isinstance(event, TrainingRunFinished) and (by := event.canceled_by or (state or {}).get("canceled_by")):
        # who canceled the job from chat (Handoff's own event): Azure ML's later events of it do not say
        new["canceled_by"] = by
        if card.status is Status.CANCELED:
            new["card"] = replace(card, summary=_canceled_by(new)).to_json()
    # the person who asked for the run (a command's run, polled): the service's own events do not say
    if event.actor is not None and event.actor.email:
        new["asked_by"] = {"name": event.actor.display, "email": event.actor.email}
    elif state and state.get("asked_by"):
        new["asked_by"] = state["asked_by"]
    replies = []
    if isinstance(event, TrainingRunFinished) and event.outcome == "failed":
        # told once, whichever of the failure's events (Azure ML's, Handoff's own polling) comes first; a
        # card that shows the failure from its first showing says it itself
        if state and not state.get("failure_told"):
            replies.append(_training_failure_reply(event, new.get("asked_by")))
        new["failure_told"] = True
    elif state and state.get("failure_told"):
        new["failure_told"] = True
    return Merge(new, new != state, replies)


def _training_failure_reply(event: TrainingRunFinished, asked_by: State | None) -> Card:
    """The thread reply for a failed training run, calling on the person who asked for it when known."""
    return Card(
        title=f"Training run {event.run_id} failed",
        status=Status.FAILED,
        links=(Link("Open", event.web_url),) if event.web_url else (),
        mentions=(Mention(asked_by["name"], asked_by["email"]),) if asked_by else (),
    )


def _kept(shown: State, new: State, event: DomainEvent) -> bool:
    """Whether the card shown stays over the new event's: :func:`_drawn_after`, except that a training run
    that ended never goes back to going (Azure ML may stamp a late Running after the Failed), and its
    ending is shown whenever it arrives; and that of two writes to one file, the later by Storage's
    sequencer is shown (reference: order blob events by ``sequencer``, not by their times)."""
    if isinstance(event, DataArrived) and shown.get("sequencer") and new.get("sequencer"):
        return bool(shown["sequencer"] >= new["sequencer"])
    if isinstance(event, TrainingRunFinished) and shown.get("type") == event.kind:
        shown_ended, new_ended = _training_ended(shown["card"]), event.outcome is not None
        if shown_ended != new_ended:
            return shown_ended
    return _drawn_after(shown, new)


def _training_ended(card: State) -> bool:
    """Whether a training run's card tells how the run ended (a cancel requested reads canceled, with
    Azure ML's own word for it as a fact, while the run goes on)."""
    return card.get("status") in _TRAINING_ENDED and not any(f.get("label") == "Status" for f in card.get("facts", ()))


def _drawn_after(shown: State, new: State) -> bool:
    """Whether the card shown stays over the new event's: it is about a later moment, or of two about the same
    moment, it is the one that tells how things ended (else the first by its text), whichever arrived first."""
    shown_at, new_at = datetime.fromisoformat(shown["occurred"]), datetime.fromisoformat(new["occurred"])
    if shown_at != new_at:
        return shown_at > new_at
    return _tie_rank(shown["card"]) > _tie_rank(new["card"])


def _tie_rank(card: State) -> tuple[bool, str]:
    return card.get("status") in _ENDED, json.dumps(card, sort_keys=True)


# Tags Azure ML and MLflow set on a run themselves (its compute, its source, its MLflow bookkeeping)
_SYSTEM_TAG_PREFIXES = ("_aml_system", "azureml.", "mlflow.")


def _tag_facts(tags: Mapping[str, str], facts: Sequence[Fact]) -> list[Fact]:
    """A model's or run's tags as facts, sorted, after ``facts`` (a tag that repeats one of them adds nothing);
    the tags set without a value in one fact, ``Tags``."""
    shown = {(f.label.lower(), f.value) for f in facts}
    tags_shown = sorted((k, v) for k, v in tags.items() if (k.lower(), v) not in shown)
    found = [Fact(k, v) for k, v in tags_shown if v.strip()]
    if flags := [k for k, v in tags_shown if not v.strip()]:  # tags set without a value
        found.append(Fact("Tags", ", ".join(flags)))
    return found


def _single_card(event: DomainEvent) -> Card:
    links = (Link("Open", event.web_url),) if event.web_url else ()
    if isinstance(event, ModelRegistered):
        facts = [Fact("Model", event.model_name), Fact("Version", event.model_version)]
        facts += _tag_facts(event.model_tags, facts)
        return Card(
            title=f"Model {event.model_name}:{event.model_version} registered",
            status=Status.SUCCEEDED,
            facts=tuple(facts),
            links=links,
            context=f"Azure ML · {_workspace(event.scope)}",
        )
    if isinstance(event, ModelDeployed):  # of no model version named (a version's deployment is on its card)
        return Card(
            title=f"Deployed to {event.service_name}",
            status=Status.SUCCEEDED,
            facts=(
                Fact("Models", ", ".join(event.model_ids)),
                Fact("Compute", event.compute_type),
            ),
            links=links,
            context=_azure_ml(event.scope),
        )
    if isinstance(event, TrainingRunFinished):
        status = _training_status(event)
        facts = [Fact("Experiment", event.experiment_name), Fact("Run", event.run_id)]
        if event.outcome is None and _norm(event.status) != _norm(status.label):
            # still going: Azure ML's word for where it is, where it says more than the card's status
            facts.append(Fact("Status", event.status))
        if event.run_type:
            facts.append(Fact("Run type", event.run_type))
        # the run's own tags (the model it trains, the data it read), not those Azure ML and MLflow set themselves
        own_tags = {k: v for k, v in event.run_tags.items() if not k.lower().startswith(_SYSTEM_TAG_PREFIXES)}
        facts += _tag_facts(own_tags, facts)
        return Card(
            # Azure ML's events may leave the experiment out (their subject names it by id only)
            title=f"Training run {'/'.join(n for n in (event.experiment_name, event.run_id) if n)}",
            status=status,
            facts=tuple(facts),
            links=links,
            context=f"Azure ML · {_workspace(event.scope)}",
        )
    if isinstance(event, DataDriftDetected):
        return Card(
            title=f"Data drift detected by {event.monitor_name or event.monitor_id}",
            status=Status.WARNING,
            facts=(
                Fact("Drift coefficient", f"{event.drift_coefficient:.3f}"),
                # the datasets are known by ids only; the period compared says more
                *((Fact("Data compared", window),) if (window := _window(event)) else ()),
            ),
            links=links,
            context=f"Azure ML · {_workspace(event.scope)}",
        )
    if isinstance(event, DataArrived):
        return Card(
            title=f"New data in {event.container}/{event.path}",
            status=Status.INFO,
            facts=(
                # (the whole path, where a platform cuts a long title short: a partition's file name comes last)
                Fact("Path", f"{event.container}/{event.path}"),
                Fact("Storage account", event.storage_account),
                Fact("Size", _size(event.size)),
            ),
            links=links,  # where a person can open it; the file's own URL needs a key or token
            context="Data lake",
        )
    if isinstance(event, CodePushed):
        who = event.actor.display if event.actor else "Someone"
        commits = tuple(Fact(c.id[:8], _first_line(c.message) or "(no message)") for c in event.commits[:5])
        return Card(
            title=f"{who} pushed {len(event.commits)} commit(s) to {event.ref.removeprefix('refs/heads/')}",
            facts=(Fact("Repository", event.repository), *commits),
            links=links,
            context=f"Azure DevOps · {event.scope}/{event.project or ''}",
        )
    if isinstance(event, PullRequestChanged):
        status = {"succeeded": Status.SUCCEEDED, "canceled": Status.CANCELED}.get(event.outcome or "", Status.RUNNING)
        return Card(
            title=f"PR {event.pull_request_id}: {event.title}",
            status=status,
            facts=(
                Fact("Repository", event.repository),
                Fact("Into", event.target_ref.removeprefix("refs/heads/")),
                Fact("Status", event.status),
            ),
            links=links,
            context=f"Azure DevOps · {event.scope}/{event.project or ''}",
        )
    if isinstance(event, ReleaseDeploymentCompleted):
        release = " ".join(n for n in (event.definition_name, event.release_name) if n)
        return Card(
            title=f"{release} → {event.environment_name}",
            status=RELEASE_STATUS.get(_norm(event.status), Status.INFO),
            facts=(Fact("Status", event.status),),
            links=links,
            context=f"Azure DevOps · {'/'.join(n for n in (event.scope, event.project) if n)}",
        )
    return Card(title=event.text or event.kind, links=links)


# Azure ML's job statuses (JobStatus) of a job that has not ended, as the card shows them; any other (NotResponding,
# Paused, Unknown) reads Info, with Azure ML's word beside it.
_TRAINING_GOING = {
    "notstarted": Status.QUEUED,
    "starting": Status.QUEUED,
    "provisioning": Status.QUEUED,
    "preparing": Status.QUEUED,
    "queued": Status.QUEUED,
    "running": Status.RUNNING,
    "finalizing": Status.RUNNING,
    "cancelrequested": Status.CANCELED,  # as a pipeline run that is canceling reads
}


def _training_status(event: TrainingRunFinished) -> Status:
    """Where a training job stands: how it ended, else whether it waits to run or runs."""
    ended = {"succeeded": Status.SUCCEEDED, "failed": Status.FAILED, "canceled": Status.CANCELED}
    return ended.get(event.outcome or "") or _TRAINING_GOING.get(_norm(event.status), Status.INFO)


def _window(event: DataDriftDetected) -> str:
    """The period a drift monitor compared, as dates (with times when it does not run from midnight to
    midnight, UTC); "" when the event does not say."""
    start, end = event.window_start, event.window_end
    if start is None or end is None:
        return ""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    midnight = all(t.hour == t.minute == t.second == t.microsecond == 0 for t in (start, end))
    shown = "%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M"
    return f"{start:{shown}} to {end:{shown}} UTC"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _azure_ml(scope: str) -> str:
    return f"Azure ML · {_workspace(scope)}"


def _workspace(scope: str) -> str:
    """An Azure ML workspace's name, from the resource id Event Grid names it by (the id, if it is not one)."""
    head, found, name = scope.rstrip("/").rpartition("/workspaces/")
    return name if found and head and name and "/" not in name else scope


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
