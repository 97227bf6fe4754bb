"""How a release gate ends when nobody approves it: rejected (the run's card tells a rejection, not a failure),
closed because its run ended (no buttons left, a later click answered), or expired in Handoff and then completed in
Azure DevOps. Emulators → Handoff → Slack and Teams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from msrest.authentication import BasicAuthentication

from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from bot.cards import Status
from bot.living import render
from bot.records import GateState
from tests.e2e.conftest import Loop, blocks_text, card_text, eventually, slack_messages, teams_posts
from tests.e2e.test_local_loop import decide_in_azure_devops

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


STILL_WAITS = "the approval still waits in Azure DevOps"


def expiring_in_handoff(config: dict[str, Any]) -> None:
    """A configuration tweak: the default gate policy expires a gate after 2 s (the approval waits on in Azure
    DevOps: its check's timeout is its own)."""
    config["gates"]["default"]["expire_after"] = "2s"


async def expired_release(loop: Loop) -> tuple[Any, Any, str]:
    """A release of app-y whose gate expired in Handoff, nobody having decided it, while its approval waits in
    Azure DevOps: the run, the gate's Slack card and the gate's id."""
    run, gate_card = await waiting_release(loop)
    [approval] = loop.suite.ado.approvals_for(run.id)
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.expires_at is not None
    await asyncio.sleep(max(0.0, (gate.expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
    handoff = loop.server.handoff
    assert handoff is not None
    await handoff.gatekeeper.sweep()
    await eventually(lambda: STILL_WAITS in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    assert approval.status == "pending"
    return run, gate_card, gate_id


async def assert_shows_completed_in_azure_devops(
    loop: Loop, gate_card: Any, gate_id: str, state: GateState, headline: str, by: str
) -> None:
    """The gate, and its cards on both platforms, show how Azure DevOps completed the approval and who did, not
    that it still waits there; no buttons; the threads are told."""
    told = f"{headline} in Azure DevOps by {by}"
    await eventually(lambda: headline in blocks_text(gate_card) and STILL_WAITS not in blocks_text(gate_card))
    assert f'"text": "*Decided by*\\n{by}"' in blocks_text(gate_card)
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    await eventually(lambda: any(told in r.text for r in gate_card.replies))
    teams_card = await eventually(
        lambda: next(
            (p for p in teams_posts(loop, "App releases") if "release-app-y" in card_text(p) and by in card_text(p)),
            None,
        )
    )
    assert STILL_WAITS not in card_text(teams_card) and '"verb": "approve"' not in card_text(teams_card)
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is state
    assert gate.details["decided_in"] == "Azure DevOps" and gate.details["decided_by"] == by
    stored = await loop.server.store.get_card_state(gate_id)
    assert stored is not None and stored.state["status"] == state.value and stored.state["decided_by"] == by
    assert render(stored.state).actions == ()
    audit = [(e.actor, e.action, e.outcome) for e in await loop.server.store.list_audit() if gate_id in e.target]
    assert audit[-1] == ("Azure DevOps", "decide", state.value)


async def test_a_gate_expired_in_handoff_shows_the_approval_decided_later_in_azure_devops(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Handoff's expiry is its own: the approval still waits in Azure DevOps, where carol approves it. Its
    approval-completed event gives the gate, and its cards, her approval."""
    loop = await start_loop(expiring_in_handoff)
    ado = loop.suite.ado
    run, gate_card, gate_id = await expired_release(loop)
    [approval] = ado.approvals_for(run.id)
    await decide_in_azure_devops(ado, "carol@contoso.com", approval.id, "approved", "ok in ado")
    await assert_shows_completed_in_azure_devops(loop, gate_card, gate_id, GateState.APPROVED, "Approved", "Carol Diaz")
    assert any("ok in ado" in r.text for r in gate_card.replies)
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    assert ado.run(run.id).result == "succeeded"
    [carols] = ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")  # Handoff sent nothing
    assert "ok in ado" in carols.text()


async def test_a_gate_expired_in_handoff_learns_from_the_sweep_of_a_decision_whose_event_was_lost(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Bob rejects the approval in Azure DevOps after its gate expired in Handoff, and the approval-completed event
    is lost: the sweep asks Azure DevOps, at most once an hour for such a gate, and the gate takes the rejection."""
    loop = await start_loop(expiring_in_handoff)
    ado = loop.suite.ado
    run, gate_card, gate_id = await expired_release(loop)
    [approval] = ado.approvals_for(run.id)
    with approval_completions_lost(ado):
        await decide_in_azure_devops(ado, "bob@contoso.com", approval.id, "rejected", "not this week")
        await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
        await ado.drain()
    handoff = loop.server.handoff
    assert handoff is not None
    await handoff.gatekeeper.sweep()  # asked about less than an hour ago (when it opened): not yet
    assert ado.recorder.matching("GET /contoso/mlops/_apis/pipelines/approvals") == []
    assert STILL_WAITS in blocks_text(gate_card)

    handoff.gatekeeper.reconcile_expired_every = timedelta(0)  # as if an hour had passed
    await handoff.gatekeeper.sweep()
    [asked] = ado.recorder.matching("GET /contoso/mlops/_apis/pipelines/approvals")
    assert asked.query["approvalIds"] == approval.id
    await assert_shows_completed_in_azure_devops(loop, gate_card, gate_id, GateState.REJECTED, "Rejected", "Bob Chen")
    await handoff.gatekeeper.sweep()  # decided: not asked about again
    assert len(ado.recorder.matching("GET /contoso/mlops/_apis/pipelines/approvals")) == 1


async def test_a_gate_expired_in_handoff_shows_its_approval_timed_out_in_azure_devops(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Production's approval check times out after 6 s, after Handoff's own expiry: the card says it closed so,
    not that it still waits there."""

    def timing_out(world: dict[str, Any]) -> None:
        [production] = [e for e in world["azure_devops"]["environments"] if e["name"] == "production"]
        production["approval"]["timeout"] = 0.1  # minutes

    loop = await start_loop(expiring_in_handoff, world=timing_out)
    ado = loop.suite.ado
    run, gate_card, gate_id = await expired_release(loop)
    [approval] = ado.approvals_for(run.id)
    await eventually(lambda: approval.status == "timedOut", timeout=15)
    closed = "Closed: timed out in Azure DevOps."
    await eventually(lambda: closed in blocks_text(gate_card) and STILL_WAITS not in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    await eventually(lambda: any(closed in card_text(p) for p in teams_posts(loop, "App releases")))
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.EXPIRED
    assert gate.details["decided_in"] == "Azure DevOps" and gate.details["closed"] == "timed out in Azure DevOps"
    stored = await loop.server.store.get_card_state(gate_id)
    assert stored is not None and render(stored.state).status is Status.EXPIRED and "note" not in stored.state
    assert not ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
