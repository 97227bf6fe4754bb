"""Teams clicks on a release gate, through the emulators: a click answered in time while Azure DevOps is slow, and
refusals told only to the person who clicked."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.emulators.base import Fault
from adapters.teams.handler import ANSWER_WITHIN
from tests.e2e.conftest import Loop, card_text, eventually, teams_posts

APPROVALS = "/contoso/mlops/_apis/pipelines/approvals"


async def waiting_gate(loop: Loop) -> tuple[Any, Any, str]:
    """A production release waiting for approval: its Teams post, the Azure DevOps approval and the gate's id."""
    ado = loop.suite.ado
    run = ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    post = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if '"verb": "approve"' in card_text(p)), None)
    )
    [approval] = await eventually(lambda: ado.approvals_for(run.id))
    return post, approval, f"azure-devops:contoso:pipeline-approval:{approval.id}"


async def test_a_teams_approval_is_answered_while_azure_devops_stalls_and_applied_once(loop: Loop) -> None:
    """Azure DevOps takes 8 s to take the approval: Teams would have sent the invoke again after 5 s and shown an
    error; the click is answered within the bound instead, and the approval lands once, the card following it."""
    ado, teams = loop.suite.ado, loop.suite.teams
    post, approval, gate_id = await waiting_gate(loop)
    ado.faults.add(f"PATCH {APPROVALS}", [Fault("stall", stall_seconds=8)])

    started = asyncio.get_running_loop().time()
    clicked = await teams.click_action(post.id, "approve", {"gate": gate_id, "comment": "ok"}, user="carol")
    answered_in = asyncio.get_running_loop().time() - started

    assert answered_in < ANSWER_WITHIN + 1.0
    assert clicked.body is not None
    assert (clicked.body["statusCode"], clicked.body["type"]) == (200, "application/vnd.microsoft.activity.message")
    assert clicked.body["value"].startswith("Applying your approval in Azure DevOps")
    await eventually(lambda: approval.status == "approved", timeout=20)
    message = teams.state.message(post.id)
    await eventually(lambda: "Approved" in card_text(message) and '"verb": "approve"' not in card_text(message))
    handoff = loop.server.handoff
    assert handoff is not None
    await handoff.gatekeeper.sweep()
    patches = ado.recorder.matching(f"PATCH {APPROVALS}")
    assert [p.status for p in patches] == [200]
    assert "Approved in Teams by carol@contoso.com: ok" in patches[0].text()
    audit = await loop.server.store.list_audit()
    assert [e.outcome for e in audit if e.action == "approve"] == ["applied"]
    assert teams.state.conversation("a:1personal-carol").posts == []  # nothing to tell her privately


async def test_action_submit_refusals_are_told_only_to_the_person_who_clicked(loop: Loop) -> None:
    """Older Teams clients send Action.Submit, answered with a message rather than an invoke answer: a refusal goes to
    the person's 1:1 chat with Handoff, as Slack tells it privately, never into the gate's thread."""
    teams = loop.suite.teams
    post, approval, gate_id = await waiting_gate(loop)
    posted_before = [p.id for p in teams_posts(loop, "App releases")]

    no_reason = await teams.submit_card(post.id, {"gate": gate_id, "verb": "reject"}, user="carol")
    not_an_approver = await teams.submit_card(post.id, {"gate": gate_id, "verb": "approve"}, user="alice")

    assert (no_reason.status, not_an_approver.status) == (201, 201)
    assert teams.state.message(post.id).replies == []
    assert [p.id for p in teams_posts(loop, "App releases")] == posted_before
    carol = teams.state.conversation("a:1personal-carol")
    assert [m.text for m in carol.posts] == ["A rejection needs a reason."]
    alice = teams.state.conversation("a:1personal-alice")
    [refused] = [m.text for m in alice.posts]
    assert refused.startswith("You are not an approver of this gate.")
    assert approval.status == "pending"
    assert loop.suite.ado.recorder.matching(f"PATCH {APPROVALS}") == []
