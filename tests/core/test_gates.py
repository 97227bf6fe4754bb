"""Release gates on a real store: exactly one decision, the authorization matrix, quorum, expiry.

These run the core (Gatekeeper, Policy, Ingest) on SQLite and PostgreSQL; Azure DevOps is left out
(decisions are recorded, not applied) so that the store's compare-and-set is what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.sql import SqlStore
from bot.app import Handoff, add_channel, build_handoff
from bot.cards import Card, Status
from bot.clock import FakeClock
from bot.config import parse_settings
from bot.events import (
    ApprovalCompleted,
    ApprovalPending,
    Approver,
    Person,
    PipelineRef,
    RunStateChanged,
    StageStateChanged,
)
from bot.interactions import ChatUser, CommandRequest
from bot.living import render
from bot.ports import ApprovalStatus, ServiceRefused, ServiceUnavailable
from bot.records import ConversationAddress, GateState
from tests.core.fake_pipelines import FakePipelines
from tests.core.recording_channel import RecordingChannel

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SLACK = ConversationAddress("slack", "C0APPRELEASES")
TEAMS = ConversationAddress("teams", "19:appreleases@thread.tacv2")
RUN = PipelineRef(
    organization="contoso",
    project="mlops",
    pipeline_id="3",
    pipeline_name="release-app-y",
    run_id="77",
    run_name="20261128.4",
    branch="refs/heads/main",
)
SETTINGS = {
    "channels": {"app-releases": {"slack": SLACK.conversation_id, "teams": TEAMS.conversation_id}},
    "subscriptions": [{"channel": "app-releases", "events": ["approval"]}],
    "roles": {"release-managers": {"members": ["dave@contoso.com"]}},
    "gates": {"default": {"approver_roles": ["release-managers"], "expire_after": "72h"}},
}


def person(name: str) -> Person:
    return Person(name=name.capitalize(), email=f"{name}@contoso.com", id=f"id-{name}")


def user(name: str, platform: str = "slack") -> ChatUser:
    return ChatUser(platform=platform, user_id=f"U{name.upper()}", name=name, email=f"{name}@contoso.com")  # type: ignore[arg-type]


def pending(min_required: int = 1, requester: str = "bob") -> ApprovalPending:
    return ApprovalPending(
        source="azure-devops",
        event_id="approval-pending-1",
        occurred_at=T0,
        scope="contoso",
        project="mlops",
        approval_id="a1b2",
        run=RUN,
        stage_name="production",
        environment_name="production",
        min_required_approvers=min_required,
        approvers=(Approver(person=person("carol")), Approver(person=person("bob"))),
        requester=person(requester),
    )


def completed(status: str, *approvers: Approver) -> ApprovalCompleted:
    """The approval decided in Azure DevOps (``status``: approved, rejected, canceled...)."""
    return ApprovalCompleted(
        source="azure-devops",
        event_id=f"approval-{status}-1",
        occurred_at=T0,
        scope="contoso",
        project="mlops",
        approval_id="a1b2",
        status=status,
        run=RUN,
        stage_name="production",
        environment_name="production",
        approvers=approvers,
    )


@pytest.fixture
async def handoff(store_url: str) -> AsyncIterator[Handoff]:
    store = await SqlStore.open(store_url)
    core = build_handoff(parse_settings(SETTINGS, {}), store, FakeClock(T0))
    yield core
    await store.close()


GATE = "azure-devops:contoso:pipeline-approval:a1b2"


async def test_fifty_concurrent_clicks_make_one_decision(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    clickers = [("carol", "approve"), ("bob", "reject"), ("dave", "approve")] * 17
    results = await asyncio.gather(
        *(
            handoff.gatekeeper.decide(user(name, "slack" if i % 2 else "teams"), GATE, decision, "because", SLACK)
            for i, (name, decision) in enumerate(clickers[:50])
        )
    )
    accepted = [r for r in results if r.accepted]
    assert len(accepted) == 1
    assert sum("already" in r.message for r in results) == 49
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state in (GateState.APPROVED, GateState.REJECTED)
    assert len(await handoff.store.gate_decisions(GATE)) == 1
    decided = [e for e in await handoff.store.list_audit() if e.outcome in ("applied", "recorded")]
    assert len(decided) == 1


@pytest.mark.parametrize(
    ("who", "decision", "comment", "allowed", "reason"),
    [
        ("carol", "approve", "", True, ""),  # assigned approver
        ("dave", "approve", "", True, ""),  # in an approver role
        ("mallory", "approve", "", False, "not an approver"),
        ("bob", "approve", "", False, "requester may not approve"),  # requester, though assigned
        ("bob", "reject", "broken", True, ""),  # a requester may still stop their own release
        ("carol", "reject", "", False, "needs a reason"),
    ],
)
async def test_authorization_matrix(
    handoff: Handoff, who: str, decision: str, comment: str, allowed: bool, reason: str
) -> None:
    await handoff.ingest.accept(pending())
    before = await handoff.store.get_gate(GATE)
    result = await handoff.gatekeeper.decide(user(who), GATE, decision, comment, SLACK)
    assert result.accepted is allowed
    after = await handoff.store.get_gate(GATE)
    assert after is not None and before is not None
    if not allowed:
        assert reason in result.message
        assert (after.state, after.version) == (before.state, before.version)  # refusal changes nothing
        assert await handoff.store.gate_decisions(GATE) == []
        assert (await handoff.store.list_audit())[-1].outcome.startswith("refused")


async def test_a_pipeline_approvals_run_requester_may_not_approve_it(handoff: Handoff) -> None:
    """A pipeline approval's hook names no requester: the route reads who asked for the run from the Build API
    into the pending event's actor, and the gate policy's requester_cannot_approve bars them by it (Azure DevOps'
    own check bars nobody here); an approver who completes the approval is no requester."""
    await handoff.ingest.accept(replace(pending(), requester=None, actor=person("bob")))
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.details["requesters"] == ["bob@contoso.com", "aad:id-bob"]
    assert gate.details["requester_names"] == ["Bob"]
    result = await handoff.gatekeeper.decide(user("bob"), GATE, "approve", "mine", SLACK)
    assert not result.accepted
    assert result.message == "You started this run, and its policy says the requester may not approve it."
    assert await handoff.store.gate_decisions(GATE) == []
    state = await handoff.store.get_card_state(GATE)
    assert state is not None and "bob@contoso.com" in state.state["policy_barred"]
    assert [m.email for m in render(state.state).mentions] == ["carol@contoso.com", "dave@contoso.com"]
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "fine", SLACK)).accepted

    # a completion heard before its pending event: its actor decided it, and asked for nothing
    decided = replace(completed("approved"), approval_id="e5f6", event_id="approved-e5f6", actor=person("carol"))
    await handoff.ingest.accept(decided)
    closed = await handoff.store.get_gate("azure-devops:contoso:pipeline-approval:e5f6")
    assert closed is not None and closed.state is GateState.APPROVED and closed.details["requesters"] == []


async def test_an_override_of_an_azure_devops_gate_is_refused_and_skips_no_approver_check(store_url: str) -> None:
    # nothing of Handoff's blocks an Azure DevOps gate: an override there would approve it for someone in an
    # override role who is not among its approvers
    settings = {**SETTINGS, "roles": {**SETTINGS["roles"], "admins": {"members": ["mallory@contoso.com"]}}}
    settings["gates"] = {"default": {**SETTINGS["gates"]["default"], "override_roles": ["admins"]}}
    store = await SqlStore.open(store_url)
    try:
        core = build_handoff(parse_settings(settings, {}), store, FakeClock(T0))
        await core.ingest.accept(pending())
        result = await core.gatekeeper.decide(user("mallory"), GATE, "override", "ship it", SLACK)
        assert not result.accepted
        assert result.message == "Nothing blocks this gate: Approve it instead."
        gate = await store.get_gate(GATE)
        assert gate is not None and gate.state is GateState.PENDING
        assert await store.gate_decisions(GATE) == []
        assert (await store.list_audit())[-1].outcome == "refused: nothing blocks it"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("who", "decision", "refusal"),
    [
        ("carol", "approve", None),  # an approver: the form opens
        ("carol", "reject", None),  # the reason a rejection needs is what the form asks for
        (
            "mallory",
            "approve",
            "You are not an approver of this gate. It can be decided by Carol, dave@contoso.com.",
        ),  # bob asked for the run; dave is in an approver role
        ("bob", "approve", "You started this run, and its policy says the requester may not approve it."),
        ("bob", "reject", None),
        ("dave", "override", "Nobody may override this gate: its gate policy names no override_roles."),
    ],
)
async def test_a_click_is_refused_before_its_comment_is_asked_for_when_no_comment_could_change_that(
    handoff: Handoff, who: str, decision: str, refusal: str | None
) -> None:
    await handoff.ingest.accept(pending())
    before = await handoff.store.get_gate(GATE)
    audit_before = await handoff.store.list_audit()
    assert await handoff.gatekeeper.refuse_before_comment(user(who), GATE, decision, SLACK) == refusal
    after = await handoff.store.get_gate(GATE)
    assert after == before and await handoff.store.gate_decisions(GATE) == []
    audit = (await handoff.store.list_audit())[len(audit_before) :]
    assert [(e.actor, e.outcome) for e in audit] == (
        [] if refusal is None else [(f"{who}@contoso.com", f"refused: {refusal}")]
    )


async def test_a_click_on_a_gate_decided_or_expired_is_refused_before_its_comment(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await clock.advance(timedelta(hours=73).total_seconds())
    assert await handoff.gatekeeper.refuse_before_comment(user("carol"), GATE, "approve", SLACK) == (
        "This gate has expired."
    )
    assert await handoff.gatekeeper.refuse_before_comment(user("carol"), "no-such-gate", "approve", SLACK) == (
        "This gate is not known to Handoff (it may have been cleaned up)."
    )


async def test_a_comment_is_kept_as_long_as_any_platforms_form_allows(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending())
    reason = "the model's latency doubled. " * 100  # 2,800 characters, from a request crafted by hand
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "reject", f"  {reason}  ", SLACK)).accepted
    [decision] = await handoff.store.gate_decisions(GATE)
    assert decision.comment == reason[:1000]


async def test_the_members_of_a_group_approver_may_decide(handoff: Handoff) -> None:
    managers = Approver(
        person=Person(name="[mlops]\\Release Managers", id="id-managers"), group=True, members=(person("erin"),)
    )
    await handoff.ingest.accept(replace(pending(), approvers=(managers,)))
    refused = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)  # not in the group
    assert not refused.accepted and "[mlops]\\Release Managers" in refused.message
    assert (await handoff.gatekeeper.decide(user("erin"), GATE, "approve", "", SLACK)).accepted
    [decision] = await handoff.store.gate_decisions(GATE)
    assert decision.actor == "erin@contoso.com"


MANAGERS = Person(name="[mlops]\\Release Managers", id="id-managers")


@pytest.fixture
async def with_pipelines(store_url: str) -> AsyncIterator[tuple[Handoff, FakePipelines]]:
    """Handoff whose gates are applied to Azure DevOps (a fake that records), and that fake."""
    store, pipelines = await SqlStore.open(store_url), FakePipelines()
    yield build_handoff(parse_settings(SETTINGS, {}), store, FakeClock(T0), pipelines=pipelines), pipelines
    await store.close()


async def test_someone_who_joined_a_group_since_the_gate_opened_may_decide_after_a_fresh_look(
    with_pipelines: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = with_pipelines
    pipelines.groups["id-managers"] = (person("erin"),)
    await handoff.ingest.accept(
        replace(pending(), approvers=(Approver(person=MANAGERS, group=True, members=(person("erin"),)),))
    )
    refused = await handoff.gatekeeper.decide(user("frank"), GATE, "approve", "", SLACK)
    assert not refused.accepted and "[mlops]\\Release Managers" in refused.message
    assert pipelines.group_reads == 1  # a fresh look before refusing

    pipelines.groups["id-managers"] = (person("erin"), person("frank"))  # an administrator adds frank
    again = await handoff.gatekeeper.decide(user("frank"), GATE, "approve", "", SLACK)
    assert not again.accepted and pipelines.group_reads == 1  # not looked at again within a minute
    await handoff.clock.advance(61)  # type: ignore[attr-defined]
    approved = await handoff.gatekeeper.decide(user("frank"), GATE, "approve", "lgtm", SLACK)
    assert approved.accepted and pipelines.group_reads == 2
    assert pipelines.decided == [("mlops", "a1b2", True, "Approved in Slack by frank@contoso.com: lgtm")]
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and "frank@contoso.com" in gate.details["approvers"]


async def test_a_refusal_for_another_reason_than_not_being_an_approver_reads_no_group(
    with_pipelines: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = with_pipelines
    pipelines.groups["id-managers"] = (person("erin"),)
    managers = Approver(person=MANAGERS, group=True, members=(person("erin"),))
    await handoff.ingest.accept(replace(pending(), approvers=(managers,)))
    for who in ("erin", "dave"):  # erin is in the group, dave in an approver role: a rejection needs a reason
        refused = await handoff.gatekeeper.decide(user(who), GATE, "reject", "", SLACK)
        assert refused.message == "A rejection needs a reason."
    assert pipelines.group_reads == 0


async def test_a_group_unseen_when_the_gate_opened_is_read_when_someone_is_refused(
    with_pipelines: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = with_pipelines
    # Azure DevOps did not say who is in the group when the gate opened (no Identity: Read, or too slow)
    await handoff.ingest.accept(replace(pending(), approvers=(Approver(person=MANAGERS, group=True),)))
    pipelines.refuse_next.append(ServiceUnavailable("Azure DevOps is unreachable"))
    still_unseen = await handoff.gatekeeper.decide(user("erin"), GATE, "approve", "", SLACK)
    assert still_unseen.message.endswith("if you are among them, decide it in Azure DevOps.")
    pipelines.groups["id-managers"] = (person("erin"),)
    # a failed read counts as a read: the next click within the minute is answered without asking again
    assert not (await handoff.gatekeeper.decide(user("erin"), GATE, "approve", "", SLACK)).accepted
    assert pipelines.group_reads == 0
    await handoff.clock.advance(61)  # type: ignore[attr-defined]
    assert (await handoff.gatekeeper.decide(user("erin"), GATE, "approve", "", SLACK)).accepted
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.details["unseen_groups"] == []


async def test_an_approval_asked_for_again_of_other_approvers_is_decided_by_them_only(
    with_pipelines: tuple[Handoff, FakePipelines],
) -> None:
    """Azure DevOps fires approval-pending again when an approval is reassigned (or an ``inSequence`` one moves on
    to its next approver): who may decide it from chat follows; a late or redelivered older ask changes nothing."""
    handoff, pipelines = with_pipelines
    await handoff.ingest.accept(pending(requester="erin"))
    reassigned = replace(
        pending(requester="erin"),
        event_id="approval-pending-2",
        occurred_at=T0 + timedelta(minutes=5),
        approvers=(Approver(person=person("frank")),),
    )
    await handoff.ingest.accept(reassigned)
    await handoff.ingest.accept(replace(pending(requester="erin"), event_id="approval-pending-1-late"))
    card = await gate_card(handoff)
    assert ("Approvers", "Frank, dave@contoso.com") in [(f.label, f.value) for f in card.facts]
    refused = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not refused.accepted
    assert refused.message == "You are not an approver of this gate. It can be decided by Frank, dave@contoso.com."
    assert (await handoff.gatekeeper.decide(user("frank"), GATE, "approve", "lgtm", SLACK)).accepted
    assert pipelines.decided == [("mlops", "a1b2", True, "Approved in Slack by frank@contoso.com: lgtm")]


async def test_a_refusal_says_when_handoff_cannot_see_who_an_approver_is(handoff: Handoff) -> None:
    unseen = Approver(person=Person(name="[mlops]\\Release Managers", id="id-managers"), group=True)  # no members
    partly = Approver(  # read only in part: mallory may be among the others
        person=Person(name="[mlops]\\Contributors", id="id-all"),
        group=True,
        members=(person("erin"),),
        members_complete=False,
    )
    chuck = Approver(person=Person(name="Chuck", id="id-chuck"))  # no email
    await handoff.ingest.accept(replace(pending(), approvers=(unseen, partly, chuck, Approver(person=person("carol")))))
    refused = await handoff.gatekeeper.decide(user("mallory"), GATE, "approve", "", SLACK)
    assert not refused.accepted
    assert refused.message.endswith(
        "Handoff cannot tell who is in [mlops]\\Contributors, [mlops]\\Release Managers or which chat account is"
        " Chuck: if you are among them, decide it in Azure DevOps."
    )
    await handoff.ingest.accept(replace(pending(), event_id="again", approval_id="b2c3"))  # everyone is known
    known = await handoff.gatekeeper.decide(
        user("mallory"), "azure-devops:contoso:pipeline-approval:b2c3", "approve", "", SLACK
    )
    # bob is an approver, but he asked for the run, which the policy bars from approving it
    # (dave is in an approver role)
    assert known.message == "You are not an approver of this gate. It can be decided by Carol, dave@contoso.com."
    # nor is an approver Azure DevOps bars named
    barred = replace(
        pending(requester="erin"), event_id="barred", approval_id="c3d4", blocked_approvers=(person("carol"),)
    )
    await handoff.ingest.accept(barred)
    named = await handoff.gatekeeper.decide(
        user("mallory"), "azure-devops:contoso:pipeline-approval:c3d4", "approve", "", SLACK
    )
    assert named.message == "You are not an approver of this gate. It can be decided by Bob, dave@contoso.com."


async def test_quorum_of_two(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(min_required=2, requester="erin"))
    first = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert first.accepted and "1 of 2" in first.message
    again = await handoff.gatekeeper.decide(user("carol", "teams"), GATE, "approve", "", TEAMS)
    assert not again.accepted and "already approved" in again.message
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    second = await handoff.gatekeeper.decide(user("bob"), GATE, "approve", "ok", TEAMS)
    assert second.accepted and second.message.startswith("Approved")
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.APPROVED
    assert second.card is not None and second.card.actions == ()


async def test_expired_and_superseded_gates_refuse(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await clock.advance(timedelta(hours=73).total_seconds())
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not result.accepted and result.message == "This gate has expired."
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.EXPIRED
    # a later click, on any platform, is told the same
    later = await handoff.gatekeeper.decide(user("carol", "teams"), GATE, "approve", "", TEAMS)
    assert not later.accepted and later.message == "This gate has expired."


async def test_decision_in_azure_devops_closes_the_gate_and_updates_both_cards(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    done = completed("approved", Approver(person=person("carol"), status="approved", comment="from the web"))
    await handoff.ingest.accept(done)
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.APPROVED
    refused = await handoff.gatekeeper.decide(user("carol"), GATE, "reject", "late", SLACK)
    assert not refused.accepted and "already approved" in refused.message
    state = await handoff.store.get_card_state(GATE)
    assert state is not None and state.state["status"] == "approved"
    assert sorted(map(tuple, state.state["conversations"])) == [
        ("slack", SLACK.conversation_id),
        ("teams", TEAMS.conversation_id),
    ]


async def test_a_gate_canceled_in_azure_devops_is_superseded_and_refuses_clicks(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    canceled = completed("canceled")
    await handoff.ingest.accept(canceled)
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.SUPERSEDED
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not result.accepted
    assert result.message == "This approval is closed: canceled in Azure DevOps. There is nothing left to decide."
    after = await handoff.store.get_gate(GATE)
    assert after is not None and after.version == gate.version
    card = await handoff.store.get_card_state(GATE)
    assert card is not None and card.state["status"] == "canceled"


async def test_an_approval_that_timed_out_in_azure_devops_closes_its_card_and_answers_clicks(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    await handoff.ingest.accept(completed("timedOut"))
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.EXPIRED
    assert gate.details["closed"] == "timed out in Azure DevOps"
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not result.accepted
    assert result.message == "This approval is closed: timed out in Azure DevOps. There is nothing left to decide."
    state = await handoff.store.get_card_state(GATE)
    assert state is not None
    card = render(state.state)
    assert card.status is Status.EXPIRED and card.actions == ()
    assert card.summary.startswith("Closed: timed out in Azure DevOps.")
    assert "Decided by" not in [f.label for f in card.facts]


async def test_a_gate_whose_stage_ended_closes_without_asking_azure_devops(handoff: Handoff) -> None:
    """No Azure DevOps client (decisions recorded only): the stage's end alone closes its gate."""
    await handoff.ingest.accept(pending(requester="erin"))
    ended = StageStateChanged(
        source="azure-devops",
        event_id="stage-production-completed",
        occurred_at=T0,
        scope="contoso",
        project="mlops",
        run=RUN,
        stage_name="production",
        state="completed",
        result="skipped",
    )
    await handoff.ingest.accept(ended)
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.SUPERSEDED
    assert gate.details["closed"] == "the stage was skipped"
    state = await handoff.store.get_card_state(GATE)
    assert state is not None and render(state.state).summary.startswith("Closed: the stage was skipped.")


async def test_a_run_that_ended_closes_its_gate_unless_azure_devops_says_the_approval_still_waits(
    with_pipelines: tuple[Handoff, FakePipelines],
) -> None:
    """A late completion of an earlier attempt (the stage was rerun, and waits at a new approval) closes nothing."""
    handoff, pipelines = with_pipelines
    await handoff.ingest.accept(pending(requester="erin"))
    ended = RunStateChanged(
        source="azure-devops",
        event_id="run-completed",
        occurred_at=T0,
        scope="contoso",
        project="mlops",
        run=RUN,
        state="completed",
        result="failed",
    )
    pipelines.approvals["a1b2"] = ApprovalStatus("a1b2", "pending")
    await handoff.ingest.accept(ended)
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert pipelines.asked == [("mlops", ("a1b2",))]
    pipelines.approvals["a1b2"] = ApprovalStatus("a1b2", "timedOut")
    await handoff.ingest.accept(replace(ended, event_id="run-completed-again"))
    gate = await handoff.store.get_gate(GATE)
    assert (
        gate is not None and gate.state is GateState.EXPIRED and gate.details["closed"] == "timed out in Azure DevOps"
    )
    del pipelines.approvals["a1b2"]  # (a gate closed already is not looked up again)
    await handoff.ingest.accept(replace(ended, event_id="run-completed-third"))
    assert len(pipelines.asked) == 2


async def test_an_approval_heard_of_after_its_run_ended_closes_unless_it_is_a_reruns_or_still_waits(
    with_pipelines: tuple[Handoff, FakePipelines],
) -> None:
    """Its run's card shows the run ended before the approval was asked for: the gate closes at once (Azure DevOps
    asked once), unless Azure DevOps says it still waits; an approval asked for after the run ended is a rerun's."""
    handoff, pipelines = with_pipelines
    ended = RunStateChanged(
        source="azure-devops",
        event_id="run-canceled",
        occurred_at=T0 + timedelta(minutes=10),
        scope="contoso",
        project="mlops",
        run=RUN,
        state="completed",
        result="canceled",
        created_at=T0 + timedelta(minutes=10),
    )
    await handoff.ingest.accept(ended)
    rerun = "azure-devops:contoso:pipeline-approval:r3"
    await handoff.ingest.accept(
        replace(pending(requester="erin"), event_id="p-r3", approval_id="r3", created_at=T0 + timedelta(minutes=20))
    )
    pipelines.approvals["w2"] = ApprovalStatus("w2", "pending")
    still = "azure-devops:contoso:pipeline-approval:w2"
    await handoff.ingest.accept(
        replace(pending(requester="erin"), event_id="p-w2", approval_id="w2", created_at=T0 + timedelta(minutes=1))
    )
    await handoff.ingest.accept(replace(pending(requester="erin"), created_at=T0 + timedelta(minutes=1)))
    for waits in (rerun, still):
        gate = await handoff.store.get_gate(waits)
        assert gate is not None and gate.state is GateState.PENDING
    assert pipelines.asked == [("mlops", ("w2",)), ("mlops", ("a1b2",))]
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.SUPERSEDED and gate.details["closed"] == "the run was canceled"
    card = await gate_card(handoff)
    assert card.actions == () and card.summary.startswith("Closed: the run was canceled.")


async def test_an_approval_decided_before_its_pending_event_arrived_opens_nothing(handoff: Handoff) -> None:
    """Azure DevOps retries a delivery that failed, so an approval's completion may come first."""
    done = completed("rejected", Approver(person=person("carol"), status="rejected", comment="not today"))
    await handoff.ingest.accept(done)
    await handoff.ingest.accept(pending(requester="erin"))  # late
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    refused = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not refused.accepted and "already rejected" in refused.message
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await pending_replies(handoff)  # the card goes out
    await clock.advance(timedelta(hours=5).total_seconds())
    await handoff.gatekeeper.remind()
    assert await pending_replies(handoff) == []  # nobody is asked to approve what is decided
    card = await handoff.store.get_card_state(GATE)
    assert card is not None and card.state["status"] == "rejected"


async def test_pending_gates_are_reminded_and_expiry_is_announced(handoff: Handoff) -> None:
    await handoff.ingest.accept(pending(requester="erin"))
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await pending_replies(handoff)  # the gate's own card goes out
    await handoff.gatekeeper.remind()
    assert await pending_replies(handoff) == []  # too early
    await clock.advance(timedelta(hours=5).total_seconds())
    await handoff.gatekeeper.remind()
    reminders = await pending_replies(handoff)
    assert sorted(c for c, _ in reminders) == sorted([SLACK.conversation_id, TEAMS.conversation_id])
    assert all(title.startswith("Still waiting for approval") for _, title in reminders)
    await handoff.gatekeeper.remind()  # not again until another interval
    assert await pending_replies(handoff) == []

    await clock.advance(timedelta(hours=70).total_seconds())
    await handoff.gatekeeper.sweep()
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.EXPIRED
    card = await handoff.store.get_card_state(GATE)
    assert card is not None and card.state["status"] == "expired"
    # the thread and the card say what follows: Handoff's expiry is its own, the approval waits in Azure DevOps
    expired = await pending_replies(handoff)
    assert sorted(expired) == sorted((c.conversation_id, "Nobody decided in time") for c in (SLACK, TEAMS))
    until = (gate.created_at + timedelta(hours=72)).astimezone(UTC)
    assert card.state["note"] == (
        f"It can no longer be decided here (open until {until:%Y-%m-%d %H:%M} UTC); "
        "the approval still waits in Azure DevOps."
    )


async def pending_replies(handoff: Handoff, gate_id: str = GATE) -> list[tuple[str, str]]:
    """Take every due delivery off the outbox; the (conversation, title) of the gate's thread replies."""
    found = []
    now = handoff.clock.now() + timedelta(days=30)
    while claimed := await handoff.store.claim_deliveries("test", now, timedelta(seconds=1), 1000):
        for delivery in claimed:
            if delivery.payload.get("op") == "reply" and delivery.grouping_key == gate_id:
                found.append((delivery.conversation.conversation_id, delivery.payload["card"]["title"]))
            await handoff.store.complete_delivery(delivery.id, "test")
    return found


async def test_a_reminder_calls_on_the_awaited_approvers_except_where_mentions_are_off(store_url: str) -> None:
    quiet = ConversationAddress("slack", "C0QUIETRELEASES")
    settings = {
        **SETTINGS,
        "channels": {**SETTINGS["channels"], "quiet-releases": {"slack": quiet.conversation_id}},
        "subscriptions": [
            *SETTINGS["subscriptions"],
            {"channel": "quiet-releases", "events": ["approval"], "mentions": False},
        ],
    }
    store = await SqlStore.open(store_url)
    try:
        handoff = build_handoff(parse_settings(settings, {}), store, FakeClock(T0))
        await handoff.ingest.accept(replace(pending(requester="erin"), blocked_approvers=(person("bob"),)))
        await handoff.clock.advance(timedelta(hours=5).total_seconds())  # type: ignore[attr-defined]
        await handoff.gatekeeper.remind()
        mentioned: dict[str, list[str]] = {}
        now = handoff.clock.now() + timedelta(days=1)
        while claimed := await store.claim_deliveries("test", now, timedelta(seconds=1), 1000):
            for delivery in claimed:
                title = delivery.payload["card"]["title"]
                names = [m["email"] for m in delivery.payload["card"]["mentions"]]
                mentioned[f"{delivery.conversation.conversation_id} {title.split(':')[0]}"] = names
                if delivery.conversation == quiet:  # named there, not pinged
                    card = delivery.payload["card"]
                    assert card["summary"].endswith("For: Carol, dave@contoso.com"), card
                await store.complete_delivery(delivery.id, "test")
        # bob may not decide: Azure DevOps blocks him; dave may, in an approver role
        carol = ["carol@contoso.com", "dave@contoso.com"]
        assert mentioned == {
            f"{SLACK.conversation_id} Release release-app-y to production": carol,
            f"{TEAMS.conversation_id} Release release-app-y to production": carol,
            f"{quiet.conversation_id} Release release-app-y to production": [],
            f"{SLACK.conversation_id} Still waiting for approval": carol,
            f"{TEAMS.conversation_id} Still waiting for approval": carol,
            f"{quiet.conversation_id} Still waiting for approval": [],
        }
    finally:
        await store.close()


# --- decisions Azure DevOps refuses -------------------------------------------------------------------

BLOCKED = "Handoff Bot cannot approve approval a1b2: the requester of the run is not allowed to approve it."
RELEASE_GATE = "azure-devops:contoso:release-approval:a1b2"


@contextlib.asynccontextmanager
async def handoff_applying(store_url: str, settings: dict[str, Any]) -> AsyncIterator[tuple[Handoff, FakePipelines]]:
    """Handoff with ``settings``, applying decisions to a fake Azure DevOps."""
    store = await SqlStore.open(store_url)
    pipelines = FakePipelines()
    core = build_handoff(parse_settings(settings, {}), store, FakeClock(T0), pipelines=pipelines)
    try:
        yield core, pipelines
    finally:
        await core.close()
        await store.close()


@pytest.fixture
async def applying(store_url: str) -> AsyncIterator[tuple[Handoff, FakePipelines]]:
    """Handoff applying decisions to a fake Azure DevOps."""
    async with handoff_applying(store_url, SETTINGS) as applying:
        yield applying


async def gate_card(handoff: Handoff, gate_id: str = GATE) -> Card:
    state = await handoff.store.get_card_state(gate_id)
    assert state is not None
    return render(state.state)


@pytest.mark.parametrize("kind", ["pipeline", "release"])
async def test_a_decision_azure_devops_refuses_is_withdrawn_and_the_gate_waits_again(
    applying: tuple[Handoff, FakePipelines], kind: str
) -> None:
    handoff, pipelines = applying
    gate_id = GATE if kind == "pipeline" else RELEASE_GATE
    sent = pipelines.decided if kind == "pipeline" else pipelines.release_decided
    await handoff.ingest.accept(replace(pending(requester="erin"), approval_kind=kind))
    await pending_replies(handoff, gate_id)  # the gate's card goes out
    pipelines.refuse_decisions.append(ServiceRefused(BLOCKED))

    result = await handoff.gatekeeper.decide(user("carol", "teams"), gate_id, "approve", "ship it", TEAMS)
    why = f"{BLOCKED[:-1]}; decide in Azure DevOps."
    assert not result.accepted and result.message == f"Azure DevOps refused your approval: {why}"
    # the approval did not take effect: the gate waits again, without it
    gate = await handoff.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.PENDING and gate.decided_at is None
    assert await handoff.store.gate_decisions(gate_id) == []
    # its card too, with its buttons, saying whose approval Azure DevOps refused and why
    card = await gate_card(handoff, gate_id)
    assert card.status is Status.WAITING and [a.action_id for a in card.actions] == ["approve", "reject"]
    assert card.summary == f"Azure DevOps refused Carol's approval: {why}"
    assert not {"Decided by", "Note"} & {f.label for f in card.facts}
    # the thread is told that, and never that it was approved
    assert sorted(await pending_replies(handoff, gate_id)) == sorted(
        (conversation.conversation_id, "Azure DevOps refused Carol's approval") for conversation in (SLACK, TEAMS)
    )
    audit = [(e.actor, e.outcome) for e in await handoff.store.list_audit() if e.action == "approve"]
    assert audit == [("carol@contoso.com", f"refused by Azure DevOps: {BLOCKED}")]
    # `approvals` lists it again, and nothing sends the refused approval again
    listed = await handoff.chat.on_command(CommandRequest(user("carol"), SLACK, "approvals"))
    assert "release-app-y → production" in listed.text
    await handoff.gatekeeper.sweep()
    assert sent == [] and await handoff.store.gate_decisions(gate_id) == []

    # a decision Azure DevOps accepts is applied, once, and shown
    again = await handoff.gatekeeper.decide(user("bob"), gate_id, "reject", "not today", SLACK)
    assert again.accepted
    await handoff.gatekeeper.sweep()
    assert sent == [("mlops", "a1b2", False, "Rejected in Slack by bob@contoso.com: not today")]
    gate = await handoff.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["applied"] is True
    assert (await gate_card(handoff, gate_id)).status is Status.REJECTED
    assert [t for _, t in await pending_replies(handoff, gate_id)] == ["Rejected in Slack by Bob"] * 2


async def test_a_decision_sent_again_that_azure_devops_then_refuses_is_withdrawn(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = applying
    await handoff.ingest.accept(pending(requester="erin"))
    pipelines.refuse_decisions += [ServiceUnavailable("Azure DevOps is unreachable"), ServiceRefused(BLOCKED)]
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert result.accepted and "Handoff will apply it when it does" in result.message
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.APPROVED and gate.details["applied"] is False

    await handoff.gatekeeper.sweep()  # sent again: refused
    await handoff.gatekeeper.sweep()  # and never again
    assert pipelines.decided == []
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert await handoff.store.gate_decisions(GATE) == []
    card = await gate_card(handoff)
    assert card.status is Status.WAITING and card.summary.startswith("Azure DevOps refused Carol's approval: ")
    assert [(e.action, e.outcome) for e in await handoff.store.list_audit() if "approve" in e.action] == [
        ("approve", "pending: Azure DevOps unavailable"),
        ("apply approve", f"refused by Azure DevOps: {BLOCKED}"),
    ]


async def test_an_approval_completed_in_azure_devops_meanwhile_is_not_taken_back_to_waiting(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """Someone decided in Azure DevOps while Handoff sent carol's approval: its outcome stands."""
    handoff, pipelines = applying
    await handoff.ingest.accept(pending(requester="erin"))
    await pending_replies(handoff)
    bob_rejected = completed("rejected", Approver(person=person("bob"), status="rejected", comment="broken"))

    async def bob_rejects_in_azure_devops() -> None:
        await handoff.ingest.accept(bob_rejected)

    pipelines.while_deciding = bob_rejects_in_azure_devops
    pipelines.refuse_decisions.append(
        ServiceRefused("Approval a1b2 has already been completed with status rejected.", already_decided=True)
    )
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not result.accepted and "already been completed" in result.message
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    card = await gate_card(handoff)
    assert card.status is Status.REJECTED and card.actions == ()
    assert card.summary.startswith("Rejected in Azure DevOps by Bob; Carol's approval from Slack was not applied.")
    assert [t for _, t in await pending_replies(handoff)] == ["Rejected in Azure DevOps by Bob"] * 2
    pipelines.while_deciding = None
    await handoff.gatekeeper.sweep()
    assert pipelines.decided == []


@pytest.mark.parametrize(
    ("status", "state", "said"),
    [
        ("canceled", GateState.SUPERSEDED, "canceled in Azure DevOps"),
        ("timedOut", GateState.EXPIRED, "timed out in Azure DevOps"),
        ("approved", GateState.APPROVED, "approved in Azure DevOps by Bob"),
    ],
)
async def test_a_decision_too_late_for_its_approval_says_how_it_was_completed_in_plain_words(
    applying: tuple[Handoff, FakePipelines], status: str, state: GateState, said: str
) -> None:
    handoff, pipelines = applying
    await handoff.ingest.accept(pending(requester="erin"))
    pipelines.approvals["a1b2"] = ApprovalStatus("a1b2", status, person("bob") if status == "approved" else None)
    pipelines.refuse_decisions.append(
        ServiceRefused(f"Approval a1b2 has already been completed with status {status}.", already_decided=True)
    )
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "reject", "not now", SLACK)
    assert not result.accepted and result.message == f"Your rejection was not applied: the approval was already {said}."
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is state


@pytest.mark.parametrize(
    ("status", "state", "said"),
    [
        ("approved", GateState.APPROVED, "approved in Azure DevOps by Bob"),
        ("rejected", GateState.REJECTED, "rejected in Azure DevOps by Bob"),
        ("canceled", GateState.SUPERSEDED, "canceled in Azure DevOps"),
    ],
)
async def test_a_decision_too_late_for_a_classic_release_approval_says_how_it_was_completed(
    applying: tuple[Handoff, FakePipelines], status: str, state: GateState, said: str
) -> None:
    """Decided in Azure DevOps first, its event lost: Azure DevOps refuses carol's rejection (VS402860), and Handoff
    asks it how the approval was completed, by its release, instead of saying to look there."""
    handoff, pipelines = applying
    await handoff.ingest.accept(replace(classic_release_pending("r1"), release_id="7"))
    decided = status in ("approved", "rejected")
    pipelines.approvals["r1"] = ApprovalStatus("r1", status, person("bob") if decided else None, "done there")
    pipelines.refuse_decisions.append(
        ServiceRefused(f"VS402860: The approval has already been {status}.", already_decided=True)
    )
    result = await handoff.gatekeeper.decide(user("carol"), release_gate_id("r1"), "reject", "not now", SLACK)
    assert not result.accepted and result.message == f"Your rejection was not applied: the approval was already {said}."
    assert pipelines.release_asked == [("mlops", {"r1": "7"})]
    gate = await handoff.store.get_gate(release_gate_id("r1"))
    assert gate is not None and gate.state is state
    card = await gate_card(handoff, gate.gate_id)
    assert card.actions == () and "see how there" not in card.summary


async def test_a_click_on_a_reassigned_classic_release_approval_says_it_was_reassigned(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """The approval was reassigned in Azure DevOps (its event lost): carol's click is refused as decided already,
    and Azure DevOps, asked, says reassigned: the card and carol are told its new approver decides it there, and
    its expiry says so too."""
    handoff, pipelines = applying
    await handoff.ingest.accept(replace(classic_release_pending("r1"), release_id="7"))
    gate_id = release_gate_id("r1")
    pipelines.approvals["r1"] = ApprovalStatus("r1", "reassigned")
    pipelines.refuse_decisions.append(
        ServiceRefused("VS402860: The approval has already been reassigned.", already_decided=True)
    )
    said = "This approval was reassigned in Azure DevOps; its new approver decides it there."
    result = await handoff.gatekeeper.decide(user("carol"), gate_id, "approve", "ok", SLACK)
    assert not result.accepted and result.message == said
    card = await gate_card(handoff, gate_id)
    assert card.status is Status.WAITING and card.actions == () and card.summary == said
    await handoff.clock.advance(timedelta(hours=73).total_seconds())  # type: ignore[attr-defined]
    await handoff.gatekeeper.sweep()
    expired = await gate_card(handoff, gate_id)
    assert expired.status is Status.EXPIRED and "the approval was reassigned in Azure DevOps" in str(expired)


@pytest.mark.parametrize("kind", ["pipeline", "release"])
async def test_a_decision_azure_devops_says_is_too_late_waits_while_it_cannot_say_how_it_was_completed(
    applying: tuple[Handoff, FakePipelines], kind: str
) -> None:
    """Azure DevOps refuses carol's rejection as too late, then fails when asked how the approval was completed
    (the approval may even have been completed by this very decision, its first answer lost): nothing is refused
    yet; the decision is sent again, and once Azure DevOps answers, the gate takes its outcome."""
    handoff, pipelines = applying
    if kind == "release":
        await handoff.ingest.accept(replace(classic_release_pending("a1b2"), release_id="7"))
        gate_id = release_gate_id("a1b2")
    else:
        await handoff.ingest.accept(pending(requester="erin"))
        gate_id = GATE
    too_late = ServiceRefused("VS402860: The approval has already been rejected.", already_decided=True)
    pipelines.refuse_decisions.extend([too_late, too_late])
    pipelines.statuses_fail.append(ServiceUnavailable("Azure DevOps failed (503)"))
    result = await handoff.gatekeeper.decide(user("carol"), gate_id, "reject", "not now", SLACK)
    assert result.message == "Rejected. Azure DevOps is not answering; Handoff will apply it when it does."
    card = await gate_card(handoff, gate_id)
    assert "refused" not in card.summary and "see how there" not in card.summary

    pipelines.approvals["a1b2"] = ApprovalStatus("a1b2", "rejected", person("bob"), "broken")
    await handoff.clock.advance(11 * 60)  # type: ignore[attr-defined]
    await handoff.gatekeeper.sweep()
    gate = await handoff.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    assert "Rejected in Azure DevOps by Bob" in [t for _, t in await pending_replies(handoff, gate_id)]


async def test_the_sweep_asks_azure_devops_now_and_then_about_a_bounded_number_of_waiting_gates(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """A lost completion event leaves a gate waiting: the sweep asks Azure DevOps how the waiting gates' approvals
    stand, each at most once per five minutes, a few gates per sweep (those asked about longest ago first)."""
    handoff, pipelines = applying
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    ids = [f"a{n}" for n in range(7)]
    for n, approval_id in enumerate(ids):
        await handoff.ingest.accept(
            replace(pending(requester="erin"), event_id=f"pending-{n}", approval_id=approval_id)
        )
        await clock.advance(1)
    handoff.gatekeeper.reconcile_batch = 3
    await handoff.gatekeeper.sweep()
    assert pipelines.asked == []  # opened less than five minutes ago

    await clock.advance(300)
    pipelines.approvals["a4"] = ApprovalStatus("a4", "approved", person("carol"), "ship it")
    for _ in range(4):
        await handoff.gatekeeper.sweep()
    assert pipelines.asked == [("mlops", ("a0", "a1", "a2")), ("mlops", ("a3", "a4", "a5")), ("mlops", ("a6",))]
    closed = await handoff.store.get_gate("azure-devops:contoso:pipeline-approval:a4")
    assert closed is not None and closed.state is GateState.APPROVED and closed.details["decided_in"] == "Azure DevOps"
    card = await gate_card(handoff, closed.gate_id)
    assert card.status is Status.APPROVED and card.actions == ()
    assert ("Decided by", "Carol") in [(f.label, f.value) for f in card.facts]
    assert [t for _, t in await pending_replies(handoff, closed.gate_id)] == ["Approved in Azure DevOps by Carol"] * 2

    await clock.advance(300)
    await handoff.gatekeeper.sweep()  # the gate closed is not asked about again
    assert pipelines.asked[3:] == [("mlops", ("a0", "a1", "a2"))]
    assert pipelines.decided == []


async def expired_in_handoff(handoff: Handoff) -> None:
    """The gate, its approval's card sent out, expires in Handoff (its policy's 72 h) with nobody deciding it."""
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await handoff.ingest.accept(pending(requester="erin"))
    await clock.advance(timedelta(hours=73).total_seconds())
    await handoff.gatekeeper.sweep()
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.EXPIRED
    assert "the approval still waits in Azure DevOps" in str(await gate_card(handoff))
    assert [t for _, t in await pending_replies(handoff)] == ["Nobody decided in time"] * 2


@pytest.mark.parametrize(
    ("status", "step", "state", "shown", "told"),
    [
        ("approved", "approved", GateState.APPROVED, Status.APPROVED, ["Approved in Azure DevOps by Bob"] * 2),
        ("rejected", "rejected", GateState.REJECTED, Status.REJECTED, ["Rejected in Azure DevOps by Bob"] * 2),
        ("timedOut", "timedOut", GateState.EXPIRED, Status.EXPIRED, []),
    ],
)
async def test_a_gate_expired_in_handoff_takes_how_azure_devops_completed_its_approval(
    applying: tuple[Handoff, FakePipelines], status: str, step: str, state: GateState, shown: Status, told: list[str]
) -> None:
    """Handoff's expiry is its own: the approval waited on in Azure DevOps, where bob decided it (or it timed out)
    later. Its completion event gives the gate and its cards that outcome, with no buttons."""
    handoff, pipelines = applying
    await expired_in_handoff(handoff)
    await handoff.ingest.accept(completed(status, Approver(person=person("bob"), status=step, comment="my call")))

    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is state and gate.details["decided_in"] == "Azure DevOps"
    assert gate.decided_at == handoff.clock.now()
    card = await gate_card(handoff)
    facts = {f.label: f.value for f in card.facts}
    assert card.status is shown and card.actions == () and "Note" not in facts
    assert "still waits in Azure DevOps" not in str(card)
    if status == "timedOut":
        assert gate.details["closed"] == "timed out in Azure DevOps" and "decided_by" not in gate.details
        assert card.summary.startswith("Closed: timed out in Azure DevOps.") and "Decided by" not in facts
    else:
        assert gate.details["decided_by"] == "Bob" and facts["Decided by"] == "Bob"
    assert [t for _, t in await pending_replies(handoff)] == told
    audit = await handoff.store.list_audit()
    assert (audit[-1].actor, audit[-1].outcome) == ("Azure DevOps", state.value)
    result = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "", SLACK)
    assert not result.accepted and "expired" not in result.message
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await clock.advance(timedelta(hours=2).total_seconds())
    await handoff.gatekeeper.sweep()
    assert pipelines.decided == []
    assert pipelines.asked == [("mlops", ("a1b2",))]  # when it expired, not once it is completed


async def test_the_sweep_asks_azure_devops_about_a_gate_expired_in_handoff_once_an_hour_for_30_days(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """The completion event of an approval whose gate expired in Handoff may be lost too: the sweep asks Azure DevOps
    how it stands, less often than a waiting gate's (once an hour), after the waiting gates, and within 30 days of
    the gate's opening (Azure DevOps' approval timeout)."""
    handoff, pipelines = applying
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await expired_in_handoff(handoff)
    assert pipelines.asked == [("mlops", ("a1b2",))]  # by the sweep that expired it (it still waits there)
    await clock.advance(timedelta(minutes=30).total_seconds())
    await handoff.gatekeeper.sweep()
    assert len(pipelines.asked) == 1
    await clock.advance(timedelta(minutes=30).total_seconds())
    for _ in range(3):
        await handoff.gatekeeper.sweep()
    assert pipelines.asked == [("mlops", ("a1b2",))] * 2  # once an hour, however often the sweep runs

    await handoff.ingest.accept(replace(pending(requester="erin"), event_id="pending-w1", approval_id="w1"))
    handoff.gatekeeper.reconcile_batch = 1
    await clock.advance(timedelta(hours=1).total_seconds())
    await handoff.gatekeeper.sweep()  # one gate per sweep: the waiting one first
    assert pipelines.asked[-1] == ("mlops", ("w1",))
    handoff.gatekeeper.reconcile_batch = 50

    # bob rejects it in Azure DevOps, its event lost; a sweep within 30 days of its opening asks and learns it
    await clock.advance(timedelta(days=26).total_seconds())
    before = len(pipelines.asked)
    pipelines.approvals["a1b2"] = ApprovalStatus("a1b2", "rejected", person("bob"), "not this one")
    await handoff.gatekeeper.sweep()
    assert any("a1b2" in ids for _, ids in pipelines.asked[before:])
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    card = await gate_card(handoff)
    assert card.status is Status.REJECTED and card.actions == () and "still waits" not in str(card)
    assert ("Decided by", "Bob") in [(f.label, f.value) for f in card.facts]
    assert [t for _, t in await pending_replies(handoff)] == ["Rejected in Azure DevOps by Bob"] * 2
    audit = await handoff.store.list_audit()
    assert (audit[-1].actor, audit[-1].action, audit[-1].outcome) == ("Azure DevOps", "decide", "rejected")
    assert audit[-1].comment == "decided in Azure DevOps after it expired in Handoff"


async def test_the_sweep_stops_asking_about_a_gate_expired_in_handoff_30_days_after_it_opened(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = applying
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await expired_in_handoff(handoff)
    await clock.advance(timedelta(days=27).total_seconds())  # 30 days and 1 hour after it opened
    before = len(pipelines.asked)
    await handoff.gatekeeper.sweep()
    assert pipelines.asked[before:] == []
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.EXPIRED


def release_gate_id(approval_id: str) -> str:
    return f"azure-devops:contoso:release-approval:{approval_id}"


async def test_the_sweep_asks_azure_devops_about_classic_release_approvals_by_their_release(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """A classic release approval's completion event may be lost too: the sweep asks Azure DevOps about the waiting
    release gates by their releases, as often and as many as pipeline gates. A gate opened before gates kept their
    release (its event named none) is not asked about."""
    handoff, pipelines = applying
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    for approval_id, release_id in (("r1", "7"), ("r2", "8"), ("r3", "9"), ("old", "")):
        await handoff.ingest.accept(replace(classic_release_pending(approval_id), release_id=release_id))
        await clock.advance(1)
    await handoff.ingest.accept(pending(requester="erin"))  # a pipeline approval's gate, asked about apart
    handoff.gatekeeper.reconcile_batch = 2
    await clock.advance(300)
    pipelines.approvals["r1"] = ApprovalStatus("r1", "approved", person("carol"), "ship it")
    for _ in range(3):
        await handoff.gatekeeper.sweep()
    assert pipelines.release_asked == [("mlops", {"r1": "7", "r2": "8"}), ("mlops", {"r3": "9"})]
    assert pipelines.asked == [("mlops", ("a1b2",))]

    closed = await handoff.store.get_gate(release_gate_id("r1"))
    assert closed is not None and closed.state is GateState.APPROVED and closed.details["decided_in"] == "Azure DevOps"
    card = await gate_card(handoff, closed.gate_id)
    assert card.status is Status.APPROVED and card.actions == ()
    assert ("Decided by", "Carol") in [(f.label, f.value) for f in card.facts]
    assert [t for _, t in await pending_replies(handoff, closed.gate_id)] == ["Approved in Azure DevOps by Carol"] * 2
    for waiting in ("r2", "r3", "old"):
        gate = await handoff.store.get_gate(release_gate_id(waiting))
        assert gate is not None and gate.state is GateState.PENDING

    await clock.advance(300)
    handoff.gatekeeper.reconcile_batch = 50
    await handoff.gatekeeper.sweep()  # the gate closed is not asked about again, nor the one without a release
    assert pipelines.release_asked[2:] == [("mlops", {"r2": "8", "r3": "9"})]
    assert pipelines.release_decided == []


@pytest.mark.parametrize(
    ("status", "state", "said"),
    [
        ("rejected", GateState.REJECTED, "Rejected in Azure DevOps by Bob"),
        ("canceled", GateState.SUPERSEDED, "Closed: canceled in Azure DevOps"),
        ("skipped", GateState.SUPERSEDED, "Closed: skipped in Azure DevOps"),
        ("reassigned", GateState.PENDING, ""),
        ("pending", GateState.PENDING, ""),
    ],
)
async def test_the_sweep_closes_a_classic_release_gate_as_azure_devops_completed_its_approval(
    applying: tuple[Handoff, FakePipelines], status: str, state: GateState, said: str
) -> None:
    """Rejected, canceled or skipped in Azure DevOps, its event lost: the gate closes so. A reassigned approval is
    not completed (nor does its completion event close the gate): the gate waits on."""
    handoff, pipelines = applying
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    await handoff.ingest.accept(replace(classic_release_pending("r1"), release_id="7"))
    decided = status in ("approved", "rejected")
    pipelines.approvals["r1"] = ApprovalStatus("r1", status, person("bob") if decided else None, "no")
    await clock.advance(300)
    await handoff.gatekeeper.sweep()
    assert pipelines.release_asked == [("mlops", {"r1": "7"})]
    gate = await handoff.store.get_gate(release_gate_id("r1"))
    assert gate is not None and gate.state is state
    assert [t for _, t in await pending_replies(handoff, gate.gate_id)] == ([said] * 2 if said else [])
    card = await gate_card(handoff, gate.gate_id)
    assert (card.actions == ()) is (state is not GateState.PENDING)


async def test_the_sweep_gives_a_classic_release_gate_expired_in_handoff_how_its_approval_was_completed(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """Expired in Handoff (its 72 h) while the release approval still waited in Azure DevOps, where bob rejects it
    and the event is lost: the sweep asks about it once an hour, and the gate takes the rejection."""
    handoff, pipelines = applying
    clock = handoff.clock
    assert isinstance(clock, FakeClock)
    gate_id = release_gate_id("r1")
    await handoff.ingest.accept(replace(classic_release_pending("r1"), release_id="7"))
    await clock.advance(timedelta(hours=73).total_seconds())
    await handoff.gatekeeper.sweep()
    gate = await handoff.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.EXPIRED
    assert pipelines.release_asked == [("mlops", {"r1": "7"})]  # by the sweep that expired it
    await clock.advance(timedelta(minutes=30).total_seconds())
    await handoff.gatekeeper.sweep()
    assert len(pipelines.release_asked) == 1

    pipelines.approvals["r1"] = ApprovalStatus("r1", "rejected", person("bob"), "not this one")
    await clock.advance(timedelta(minutes=30).total_seconds())
    await handoff.gatekeeper.sweep()
    assert pipelines.release_asked == [("mlops", {"r1": "7"})] * 2
    gate = await handoff.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    card = await gate_card(handoff, gate_id)
    assert card.status is Status.REJECTED and card.actions == () and "still waits" not in str(card)
    audit = await handoff.store.list_audit()
    assert audit[-1].comment == "decided in Azure DevOps after it expired in Handoff"


@pytest.mark.parametrize("by_handoff", [False, True], ids=["bob-in-azure-devops", "handoff-answer-lost"])
async def test_an_approval_completed_the_same_way_while_azure_devops_did_not_answer(
    applying: tuple[Handoff, FakePipelines], by_handoff: bool
) -> None:
    """Carol's approval waits to be applied when Azure DevOps reports the approval approved: by bob there (carol's
    was not applied), or by Handoff's identity with carol's approval (applied, though its answer was lost)."""
    handoff, pipelines = applying
    await handoff.ingest.accept(pending(requester="erin"))
    pipelines.refuse_decisions.append(ServiceUnavailable("Azure DevOps is unreachable"))
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "ok", SLACK)).accepted
    await pending_replies(handoff)
    step = (
        Approver(
            person=Person(name="Handoff Bot"), status="approved", comment="Approved in Slack by carol@contoso.com: ok"
        )
        if by_handoff
        else Approver(person=person("bob"), status="approved", comment="lgtm")
    )
    await handoff.ingest.accept(completed("approved", step))

    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.APPROVED and gate.details["applied"] is True
    card = await gate_card(handoff)
    facts = {f.label: f.value for f in card.facts}
    assert card.status is Status.APPROVED and "Note" not in facts  # it no longer waits for Azure DevOps
    if by_handoff:
        assert "decided_in" not in gate.details and facts["Decided by"] == "Carol"
        assert await pending_replies(handoff) == []
    else:
        assert gate.details["decided_in"] == "Azure DevOps" and facts["Decided by"] == "Bob"
        assert card.summary.startswith("Approved in Azure DevOps by Bob; Carol's approval from Slack was not applied.")
        assert [t for _, t in await pending_replies(handoff)] == ["Approved in Azure DevOps by Bob"] * 2
    await handoff.gatekeeper.sweep()
    assert pipelines.decided == []


HANDOFF_BOT = Person(name="Handoff Bot", email="handoff@contoso.com", id="id-handoff")


async def test_an_approval_applied_though_its_answer_was_lost_waits_for_more_approvers_when_sent_again(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """Handoff's identity is one of the 2 approvers Azure DevOps needs: its approval was applied but the answer
    lost, so the sweep sends it again, which Azure DevOps refuses (Handoff's step is no longer pending) while the
    approval waits for one more approver. That approval stands; it is not withdrawn as refused."""
    handoff, pipelines = applying
    approvers = (Approver(person=person("carol")), Approver(person=person("bob")), Approver(person=HANDOFF_BOT))
    counts_once = replace(pending(min_required=2, requester="erin"), approvers=approvers, handoff=HANDOFF_BOT)
    not_my_turn = ServiceRefused("Approval has no pending step for Handoff Bot.", already_decided=True)
    # sent the first time, such a refusal is an inSequence step whose turn has not come: it stands
    await handoff.ingest.accept(replace(counts_once, event_id="p-first", approval_id="f1"))
    pipelines.approvals["f1"] = ApprovalStatus("f1", "pending")
    pipelines.refuse_decisions.append(not_my_turn)
    first = await handoff.gatekeeper.decide(
        user("carol"), "azure-devops:contoso:pipeline-approval:f1", "approve", "", SLACK
    )
    assert not first.accepted and first.message.startswith("Azure DevOps refused your approval")

    await handoff.ingest.accept(counts_once)
    pipelines.refuse_decisions.append(ServiceUnavailable("timed out"))  # applied in Azure DevOps, the answer lost
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "ok", SLACK)).accepted
    pipelines.approvals["a1b2"] = ApprovalStatus("a1b2", "pending")
    pipelines.refuse_decisions.append(not_my_turn)
    await handoff.gatekeeper.sweep()
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.PENDING
    assert (
        gate.details["applied"] is True and gate.details["handoff_approved"] is True and "refused" not in gate.details
    )
    assert [d.actor for d in await handoff.store.gate_decisions(GATE)] == ["carol@contoso.com"]
    card = await gate_card(handoff)
    facts = {f.label: f.value for f in card.facts}
    assert card.status is Status.WAITING and card.actions == () and "Azure DevOps refused" not in card.summary
    assert facts["Approved so far"] == "Handoff's approval in Azure DevOps, for Carol" and "Decided by" not in facts
    assert facts["Note"].startswith("Handoff's approval counts once in Azure DevOps; it needs 1 more approver there")
    audit = [(e.action, e.outcome) for e in await handoff.store.list_audit() if e.target.startswith(f"gate {GATE}")]
    assert audit[-1] == ("apply approve", "applied; Azure DevOps waits for more approvers")


async def test_an_approvals_reminder_names_its_approvers_the_approvals_needed_and_when_it_times_out(
    handoff: Handoff,
) -> None:
    timeout = T0 + timedelta(hours=48)  # Azure DevOps' own timeout, sooner than the policy's 72 h
    await handoff.ingest.accept(replace(pending(min_required=2, requester="erin"), timeout_at=timeout))
    await pending_replies(handoff)  # the gate's own card goes out
    await handoff.clock.advance(timedelta(hours=5).total_seconds())  # type: ignore[attr-defined]
    await handoff.gatekeeper.remind()
    sent = []
    now = handoff.clock.now() + timedelta(days=1)
    while claimed := await handoff.store.claim_deliveries("test", now, timedelta(seconds=1), 1000):
        for delivery in claimed:
            if delivery.payload.get("op") == "reply":
                sent.append(delivery.payload["card"])
            await handoff.store.complete_delivery(delivery.id, "test")
    assert len(sent) == 2  # in Slack and in Teams
    for card in sent:
        assert card["title"] == "Still waiting for approval: Release release-app-y to production"
        assert [(f["label"], f["value"]) for f in card["facts"]] == [
            ("Approvers", "Carol, Bob, dave@contoso.com"),  # dave in an approver role
            ("Approvals needed", "2"),
            ("Expires", "2026-11-30 09:00 UTC"),
        ]
        assert card["actions"] == []


# Azure DevOps' own words for refusals no retry changes: ids and error codes, for operators only
NOT_THE_APPROVER = (
    "VS402904: Handoff Bot is not the approver of approval 8; it is assigned to Carol Diaz.",
    "forbidden",
)
NOT_AUTHORIZED = (
    "Handoff Bot is not authorized to update approval e4dae749-2b4c-4a35-9d2c-0d6a1f5b7c11: "
    "only its assigned approvers can approve or reject it.",
    "forbidden",
)
NOT_FOUND = ("Approval with id e4dae749-2b4c-4a35-9d2c-0d6a1f5b7c11 was not found.", "not_found")
DECIDED_THERE = ("VS402860: The approval has already been approved.", "already_decided")  # its hook lost
NOT_PERMITTED = "Azure DevOps does not let Handoff approve or reject this gate; decide in Azure DevOps."
GONE = "This approval no longer exists in Azure DevOps."
RELEASE_DECIDED = "This approval was already decided in Azure DevOps; see how there."


@pytest.mark.parametrize(
    ("kind", "refusal", "said"),
    [
        ("pipeline", NOT_AUTHORIZED, NOT_PERMITTED),
        ("release", NOT_THE_APPROVER, NOT_PERMITTED),
        ("pipeline", NOT_FOUND, GONE),
        ("release", DECIDED_THERE, RELEASE_DECIDED),
    ],
    ids=["not-authorized", "classic-not-the-approver", "approval-gone", "classic-decided-already"],
)
async def test_a_refusal_no_retry_changes_leaves_the_gate_to_azure_devops_in_plain_words(
    applying: tuple[Handoff, FakePipelines],
    caplog: pytest.LogCaptureFixture,
    kind: str,
    refusal: tuple[str, str],
    said: str,
) -> None:
    """Handoff's identity may not decide the approval, it no longer exists, or (a classic release's whose gate has
    no release id, so Handoff cannot ask about it) it was decided already: after the first refusal the cards say so
    without buttons, nobody is told an id or an error code, and no later click or sweep asks again."""
    handoff, pipelines = applying
    gate_id = GATE if kind == "pipeline" else RELEASE_GATE
    sent = pipelines.decided if kind == "pipeline" else pipelines.release_decided
    reason, flag = refusal
    await handoff.ingest.accept(replace(pending(requester="erin"), approval_kind=kind))
    await pending_replies(handoff, gate_id)
    pipelines.refuse_decisions.append(ServiceRefused(reason, **{flag: True}))

    with caplog.at_level(logging.INFO, logger="handoff"):
        result = await handoff.gatekeeper.decide(user("carol", "teams"), gate_id, "approve", "ok", TEAMS)
    assert not result.accepted and result.message == said
    # the service's own reason is in the log, for operators
    assert any(reason in r.getMessage() and r.levelno >= logging.INFO for r in caplog.records)
    gate = await handoff.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.PENDING
    assert await handoff.store.gate_decisions(gate_id) == []
    card = await gate_card(handoff, gate_id)
    assert card.status is Status.WAITING and card.actions == ()
    assert card.summary == said
    assert [t for _, t in await pending_replies(handoff, gate_id)] == ["Azure DevOps refused Carol's approval"] * 2
    state = await handoff.store.get_card_state(gate_id)
    assert state is not None
    shown = json.dumps(state.state)
    assert "e4dae749" not in shown and "VS4029" not in shown and "VS4028" not in shown

    # later clicks, before and after the form, are answered so and send nothing
    assert await handoff.gatekeeper.refuse_before_comment(user("bob"), gate_id, "reject", SLACK) == said
    again = await handoff.gatekeeper.decide(user("bob"), gate_id, "reject", "broken", SLACK)
    assert not again.accepted and again.message == said
    await handoff.gatekeeper.sweep()
    assert sent == [] and await handoff.store.gate_decisions(gate_id) == []
    if said == GONE:  # nobody can decide it anywhere: nothing reminds of it, and its expiry says why
        await handoff.clock.advance(timedelta(hours=73).total_seconds())  # type: ignore[attr-defined]
        await handoff.gatekeeper.remind()
        await handoff.gatekeeper.sweep()
        assert [t for _, t in await pending_replies(handoff, gate_id)] == ["Nobody decided in time"] * 2
        expired = await gate_card(handoff, gate_id)
        assert expired.status is Status.EXPIRED and "the approval no longer exists in Azure DevOps" in str(expired)
        return
    # Azure DevOps' own outcome still closes the gate
    await handoff.ingest.accept(
        replace(
            completed("approved", Approver(person=person("carol"), status="approved", comment="done there")),
            approval_kind=kind,
        )
    )
    closed = await handoff.store.get_gate(gate_id)
    assert closed is not None and closed.state is GateState.APPROVED


@pytest.fixture
async def two_needed(store_url: str) -> AsyncIterator[tuple[Handoff, FakePipelines]]:
    """Handoff applying decisions to a fake Azure DevOps, its default gate policy asking two approvals."""
    settings = {**SETTINGS, "gates": {"default": {**SETTINGS["gates"]["default"], "min_approvers": 2}}}  # type: ignore[dict-item]
    async with handoff_applying(store_url, settings) as applying:
        yield applying


async def test_azure_devops_hears_every_approval_from_chat_that_made_the_decision(
    two_needed: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = two_needed
    await handoff.ingest.accept(pending(requester="erin"))
    first = await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "one", SLACK)
    assert first.accepted and pipelines.decided == []
    second = await handoff.gatekeeper.decide(user("dave", "teams"), GATE, "approve", "second", TEAMS)
    assert second.accepted
    assert pipelines.decided == [
        ("mlops", "a1b2", True, "Approved in Slack by carol@contoso.com: one; in Teams by dave@contoso.com: second")
    ]


async def test_a_long_comment_to_azure_devops_is_cut_with_every_approver_kept(
    two_needed: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = two_needed
    await handoff.ingest.accept(pending(requester="erin"))
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "a" * 1000, SLACK)).accepted
    assert (await handoff.gatekeeper.decide(user("dave", "teams"), GATE, "approve", "b" * 1000, TEAMS)).accepted
    [(_, _, approve, comment)] = pipelines.decided
    assert approve and len(comment) <= 2000
    carol, dave = comment.split("; ")
    assert carol.startswith("Approved in Slack by carol@contoso.com: aaa") and carol.endswith("a…")
    assert dave.startswith("in Teams by dave@contoso.com: bbb") and dave.endswith("b…")


async def test_the_sweep_never_sends_a_decision_whose_click_is_still_sending_it(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    """Azure DevOps is slow to answer carol's approval; a sweep meanwhile (on any replica) leaves it to the click:
    one PATCH per decision."""
    handoff, pipelines = applying
    await handoff.ingest.accept(pending(requester="erin"))

    async def a_sweep_meanwhile() -> None:
        pipelines.while_deciding = None
        await handoff.clock.advance(2)  # type: ignore[attr-defined]
        await handoff.gatekeeper.sweep()

    pipelines.while_deciding = a_sweep_meanwhile
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "ok", SLACK)).accepted
    await handoff.gatekeeper.sweep()
    assert pipelines.decided == [("mlops", "a1b2", True, "Approved in Slack by carol@contoso.com: ok")]
    gate = await handoff.store.get_gate(GATE)
    assert gate is not None and gate.state is GateState.APPROVED and gate.details["applied"] is True


async def test_a_decision_azure_devops_did_not_answer_is_sent_again_by_the_next_sweep(
    applying: tuple[Handoff, FakePipelines],
) -> None:
    handoff, pipelines = applying
    await handoff.ingest.accept(pending(requester="erin"))
    pipelines.refuse_decisions.append(ServiceUnavailable("Azure DevOps is unreachable"))
    assert (await handoff.gatekeeper.decide(user("carol"), GATE, "approve", "ok", SLACK)).accepted
    await asyncio.gather(handoff.gatekeeper.sweep(), handoff.gatekeeper.sweep())
    await handoff.gatekeeper.sweep()
    assert pipelines.decided == [("mlops", "a1b2", True, "Approved in Slack by carol@contoso.com: ok")]


async def test_the_same_persons_simultaneous_clicks_are_never_told_the_gate_needs_another_approver(
    handoff: Handoff,
) -> None:
    """Carol clicks Approve four times at once on a gate one approval decides: one click approves it, and no
    other is told she approved already and it needs another approver."""
    for n in range(10):
        event = replace(pending(requester="erin"), event_id=f"pending-{n}", approval_id=f"race{n}")
        await handoff.ingest.accept(event)
        gate_id = f"azure-devops:contoso:pipeline-approval:race{n}"
        results = await asyncio.gather(
            *(handoff.gatekeeper.decide(user("carol", "teams"), gate_id, "approve", "", TEAMS) for _ in range(4))
        )
        assert sum(r.accepted for r in results) == 1
        assert [r.message for r in results if not r.accepted] == ["This gate was already approved."] * 3


def classic_release_pending(approval_id: str = "r9") -> ApprovalPending:
    """A classic release approval (no run), as Azure DevOps' release hooks tell it."""
    return ApprovalPending(
        source="azure-devops",
        event_id=f"release-approval-pending-{approval_id}",
        occurred_at=T0,
        scope="contoso",
        project="mlops",
        approval_id=approval_id,
        approval_kind="release",
        environment_name="QA",
        release_name="Release-7",
        release_definition="app-y-classic.CD",
        approvers=(Approver(person=person("carol")),),
        web_url="https://dev.azure.com/contoso/mlops/_release?releaseId=7",
    )


OPS = ConversationAddress("slack", "C0OPS")
ROUTES_NO_CLASSIC_RELEASE = {
    **SETTINGS,
    "channels": {"app-releases": {"slack": SLACK.conversation_id}, "ops": {"slack": OPS.conversation_id}},
    "ops_channel": "ops",
    "subscriptions": [{"channel": "app-releases", "events": ["approval"], "pipelines": ["release-*"]}],
}


@pytest.fixture
async def routing_releases_only(store_url: str) -> AsyncIterator[tuple[Handoff, RecordingChannel]]:
    """Handoff whose one subscription routes the approvals of ``release-*`` pipelines, with an ops channel;
    what it posts on Slack recorded."""
    async with handoff_applying(store_url, ROUTES_NO_CLASSIC_RELEASE) as (handoff, _):
        channel = RecordingChannel()
        add_channel(handoff, "slack", channel)
        yield handoff, channel


async def test_a_gate_no_subscription_routes_is_told_once_in_the_log_and_the_ops_channel(
    routing_releases_only: tuple[Handoff, RecordingChannel], caplog: pytest.LogCaptureFixture
) -> None:
    handoff, channel = routing_releases_only
    with caplog.at_level(logging.INFO, logger="handoff"):
        assert await handoff.ingest.accept(classic_release_pending())
        # a redelivery, and the same approval told again by another event, say nothing more
        assert not await handoff.ingest.accept(classic_release_pending())
        assert await handoff.ingest.accept(replace(classic_release_pending(), event_id="told-again"))
        await handoff.outbox.drain()

    gate = await handoff.store.get_gate("azure-devops:contoso:release-approval:r9")
    assert gate is not None and gate.state is GateState.PENDING
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "release approval app-y-classic.CD (Release-7) → QA in project mlops" in warnings[0]
    assert "no subscription routes it" in warnings[0] and "decided in Azure DevOps" in warnings[0]
    # nothing went to the subscribed channel; the ops channel got one notice
    assert channel.calls == [("post", OPS.conversation_id, "No conversation sees the gate app-y-classic.CD → QA")]


async def test_a_gate_a_subscription_routes_gives_no_warning(
    routing_releases_only: tuple[Handoff, RecordingChannel], caplog: pytest.LogCaptureFixture
) -> None:
    handoff, channel = routing_releases_only
    with caplog.at_level(logging.INFO, logger="handoff"):
        assert await handoff.ingest.accept(pending())  # release-app-y: routed to app-releases
        await handoff.outbox.drain()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(call, where) for call, where, _ in channel.calls] == [("post", SLACK.conversation_id)]


async def test_a_gate_shown_only_where_a_command_started_its_run_gives_no_warning(
    routing_releases_only: tuple[Handoff, RecordingChannel], caplog: pytest.LogCaptureFixture
) -> None:
    handoff, channel = routing_releases_only
    started_from = ConversationAddress("slack", "C0ASKER")
    with caplog.at_level(logging.INFO, logger="handoff"):
        assert await handoff.ingest.accept(classic_release_pending(), also_to=(started_from,))
        await handoff.outbox.drain()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(call, where) for call, where, _ in channel.calls] == [("post", started_from.conversation_id)]
