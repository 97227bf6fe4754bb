"""How a release gate ends when nobody approves it: rejected (the run's card tells a rejection, not a failure), or
closed because its run ended (no buttons left, a later click answered). Emulators → Handoff → Slack and Teams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from msrest.authentication import BasicAuthentication

from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from bot.cards import Status
from bot.living import render
from bot.records import GateState
from tests.e2e.conftest import Loop, blocks_text, card_text, eventually, slack_messages, teams_posts

APPROVAL_COMPLETED = "ms.vss-pipelinechecks-events.approval-completed"


async def waiting_release(loop: Loop) -> tuple[Any, Any]:
    """A release of app-y alice asked for, waiting at production's approval: the run and the gate's Slack card."""
    run = loop.suite.ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "app-releases") if '"action_id": "approve"' in blocks_text(m)), None
        )
    )
    return run, gate_card


def run_card(loop: Loop) -> Any:
    """The release run's Slack card (the one listing its stages, not the gate's)."""
    return next((m for m in slack_messages(loop, "app-releases") if "Deploy to staging" in blocks_text(m)), None)


async def reject_in_slack(loop: Loop, gate_card: Any, user: str, reason: str) -> None:
    slack = loop.suite.slack
    opened_before = set(slack.state.views)
    assert (await slack.click_button(gate_card.ts, "reject", user=user)).status == 200
    view_id = await eventually(lambda: next(iter(set(slack.state.views) - opened_before), None))
    assert (await slack.submit_view(view_id, {"comment": {"comment": reason}})).status == 200


async def assert_run_reads_rejected(loop: Loop, run: Any, by: str) -> None:
    """The run's cards, its thread and its stored card say the approval was rejected, by ``by``; nothing failed."""
    ado = loop.suite.ado
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    assert ado.run(run.id).result == "failed"  # what Azure DevOps reports of a run whose approval was rejected
    told = f"Rejected at stage Deploy to production by {by}"
    card = await eventually(lambda: (found := run_card(loop)) and told in blocks_text(found) and found)
    reply = await eventually(lambda: next((r for r in card.replies if "rejected at stage" in r.text), None))
    await asyncio.sleep(1.0)  # let every later event of the run land
    assert f"release-app-y {ado.run(run.id).name} rejected at stage Deploy to production by {by}" in reply.text
    assert not reply.reply_broadcast and "<@" not in reply.text  # no alarm, nobody called on
    assert "Failed" not in blocks_text(card) and "Logs" not in blocks_text(card)
    assert not any("failed" in r.text for r in card.replies)
    teams_card = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if told in card_text(p)), None)
    )
    assert not any("failed in stage" in card_text(r) for r in teams_card.replies)
    key = f"azure-devops:contoso:mlops:run:{run.id}"
    stored = await loop.server.store.get_card_state(key)
    assert stored is not None
    drawn = render(stored.state)
    assert drawn.status is Status.REJECTED and drawn.summary == told
    assert [s.status for s in drawn.steps] == [Status.SUCCEEDED, Status.SUCCEEDED, Status.REJECTED]


async def test_a_release_rejected_from_slack_reads_as_rejected_on_its_run_card(loop: Loop) -> None:
    run, gate_card = await waiting_release(loop)
    await reject_in_slack(loop, gate_card, "carol", "the model card is stale")
    await assert_run_reads_rejected(loop, run, "Carol Diaz")
    [approval] = loop.suite.ado.approvals_for(run.id)
    assert approval.status == "rejected"


async def test_a_release_rejected_in_azure_devops_reads_as_rejected_on_its_run_card(loop: Loop) -> None:
    ado = loop.suite.ado
    run, _ = await waiting_release(loop)
    [approval] = ado.approvals_for(run.id)
    client = PipelineApprovalsClient(ado.org_url, BasicAuthentication("", ado.pat("bob@contoso.com")))
    update = {"approvalId": approval.id, "status": "rejected", "comment": "not this week"}
    await asyncio.to_thread(client.update_approvals, "mlops", [update])
    await assert_run_reads_rejected(loop, run, "Bob Chen")


async def test_a_failing_stage_still_reads_as_a_failure(loop: Loop) -> None:
    ado = loop.suite.ado
    ado.script_next_run("release-app-y", fail_stage="Deploy to staging")
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    card = await eventually(
        lambda: (found := run_card(loop)) and "Failed at stage Deploy to staging" in blocks_text(found) and found
    )
    await eventually(lambda: any("failed in stage Deploy to staging" in r.text for r in card.replies))
    assert "Rejected" not in blocks_text(card)


@contextlib.contextmanager
def approval_completions_lost(ado: AzureDevOpsEmulator) -> Any:
    """Azure DevOps' approval-completed hooks are lost meanwhile (Handoff hears only of the run)."""
    lost = [s for s in ado.webhooks.subscriptions.values() if APPROVAL_COMPLETED in s.event_types]
    assert lost
    for subscription in lost:
        subscription.event_types = subscription.event_types - {APPROVAL_COMPLETED}
    try:
        yield
    finally:
        for subscription in lost:
            subscription.event_types = subscription.event_types | {APPROVAL_COMPLETED}


async def test_a_gate_whose_run_was_canceled_closes_and_answers_a_late_click(loop: Loop) -> None:
    ado = loop.suite.ado
    run, gate_card = await waiting_release(loop)
    [approval] = ado.approvals_for(run.id)
    with approval_completions_lost(ado):
        ado.cancel_run(run.id, by="alice@contoso.com")
        await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
        await ado.drain()
    assert approval.status == "canceled"
    closed = "Closed: the run was canceled"
    await eventually(lambda: closed in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    assert "Waiting" not in blocks_text(gate_card)
    await eventually(lambda: any(closed in r.text for r in gate_card.replies))
    teams_gate = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if closed in card_text(p)), None)
    )
    assert '"verb": "approve"' not in card_text(teams_gate)
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.SUPERSEDED
    assert gate.details["closed"] == "the run was canceled"
    # a click on the Teams card as it was (a client that did not refresh) is answered so, and sends nothing
    answer = await loop.suite.teams.click_action(teams_gate.id, "approve", {"gate": gate_id}, user="carol")
    said = "This approval is closed: the run was canceled. There is nothing left to decide."
    assert answer.status == 200 and said in json.dumps(answer.body)
    after = await loop.server.store.get_gate(gate_id)
    assert after is not None and after.version == gate.version
    assert not [p for p in ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")]


APPROVAL_PENDING = "ms.vss-pipelinechecks-events.approval-pending"


@contextlib.contextmanager
def approval_pendings_held(ado: AzureDevOpsEmulator) -> Any:
    """Azure DevOps holds back its approval-pending hooks meanwhile (a delivery late, retried): they are kept, as
    they were, for the test to send later."""
    held: list[Any] = []
    publish = ado.webhooks.publish

    def holding(event: Any) -> Any:
        if event.event_type == APPROVAL_PENDING:
            held.append(event)
            return []
        return publish(event)

    ado.webhooks.publish = holding  # type: ignore[method-assign]
    try:
        yield held
    finally:
        ado.webhooks.publish = publish  # type: ignore[method-assign]


async def test_an_approval_heard_of_only_after_its_run_was_canceled_shows_closed_at_once(loop: Loop) -> None:
    """The approval-pending hook arrives after the run was canceled, its approval-completed lost: the gate's card
    says it closed, with no buttons, without waiting for the sweep to ask Azure DevOps."""
    ado = loop.suite.ado
    with approval_completions_lost(ado), approval_pendings_held(ado) as held:
        run = ado.start_run(
            "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
        )
        approval = await ado.wait_for_approval(run.id, timeout=30)
        ado.cancel_run(run.id, by="alice@contoso.com")
        await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
        await ado.drain()
    run_key = f"azure-devops:contoso:mlops:run:{run.id}"
    await eventually(lambda: run_card(loop) and "Canceled" in blocks_text(run_card(loop)))
    stored_run = await loop.server.store.get_card_state(run_key)
    assert stored_run is not None and stored_run.state["state"] == "completed"
    assert approval.status == "canceled" and held
    slack_before = len(loop.suite.slack.recorder.requests)
    for event in held:  # late
        ado.webhooks.publish(event)
    await ado.drain()
    closed = "Closed: the run was canceled"
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if closed in blocks_text(m)), None)
    )
    assert '"action_id": "approve"' not in blocks_text(gate_card) and "Waiting" not in blocks_text(gate_card)
    sent = [r.text() for r in loop.suite.slack.recorder.requests[slack_before:]]
    assert not any('"action_id": "approve"' in text for text in sent)  # never shown with buttons
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.SUPERSEDED
    assert gate.details["closed"] == "the run was canceled"
    stored = await loop.server.store.get_card_state(gate_id)
    assert stored is not None and render(stored.state).actions == ()
    assert not ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
