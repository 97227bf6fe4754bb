"""Who Azure DevOps lets decide an approval, held to in chat, where Azure DevOps sees only Handoff's identity: its
blocked approvers, a classic release's creator (named by id alone), and a classic release's approver that is not
Handoff. A refused click sends Azure DevOps nothing."""

from __future__ import annotations

import json
from typing import Any

from adapters.demo import BOT_IDENTITY
from adapters.emulators.base import Fault
from tests.e2e.conftest import Loop, approve_in_slack, blocks_text, card_text, eventually, slack_messages, teams_posts

APPROVALS = "/contoso/mlops/_apis/pipelines/approvals"
RELEASE_APPROVALS = "/vsrm/contoso/mlops/_apis/Release/approvals"
IDENTITIES = "/contoso/_apis/identities"


def release_gates_in_ops(config: dict[str, Any]) -> None:
    """The ops channel follows classic release approvals; alice may approve gates too (a release manager)."""
    config["subscriptions"].append({"channel": "ops", "events": ["approval"], "pipelines": ["app-y-classic.*"]})
    config["roles"]["release-managers"]["members"].append("alice@contoso.com")


def release_gates_in_app_releases(config: dict[str, Any]) -> None:
    config["subscriptions"].append(
        {"channel": "app-releases", "events": ["approval"], "pipelines": ["app-y-classic.*"]}
    )


async def gate_card(loop: Loop, channel: str, release: str) -> Any:
    return await eventually(lambda: next((m for m in slack_messages(loop, channel) if release in blocks_text(m)), None))


def told(loop: Loop, user: str) -> list[str]:
    slack = loop.suite.slack
    return [e.text for e in slack.state.ephemeral_for(slack.world.user(user).id)]


async def test_azure_devops_blocked_approver_is_refused_whatever_handoffs_own_policy(start_loop: Any) -> None:
    """The production check bars the requester (requesterCannotBeApprover) while Handoff's own policy lets a requester
    approve. Bob starts the run and is one of its approvers: his Approve in Teams is refused, politely, and nothing
    goes to Azure DevOps, which sees only Handoff's identity and could not refuse him itself. The card names only
    Carol as an approver; Bob may still reject."""

    def bar_requester(world: dict[str, Any]) -> None:
        [prod] = [e for e in world["azure_devops"]["environments"] if e["name"] == "production"]
        prod["approval"]["requesterCannotBeApprover"] = True

    def self_approval_allowed(config: dict[str, Any]) -> None:
        config["gates"]["default"]["requester_cannot_approve"] = False

    loop = await start_loop(tweak=self_approval_allowed, world=bar_requester)
    ado, teams = loop.suite.ado, loop.suite.teams
    run = ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    post = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if '"verb": "approve"' in card_text(p)), None)
    )
    [approval] = await eventually(lambda: ado.approvals_for(run.id))
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"

    clicked = await teams.click_action(post.id, "approve", {"gate": gate_id, "comment": "mine"}, user="bob")

    assert clicked.body is not None and clicked.body["statusCode"] == 400
    assert clicked.body["value"]["message"].startswith(
        "Azure DevOps does not let the person who started this run approve it"
    )
    assert ado.recorder.matching(f"PATCH {APPROVALS}") == []
    assert approval.status == "pending"
    shown = json.loads(card_text(teams.state.message(post.id)))["attachments"][0]["content"]
    facts = {f["title"]: f["value"] for b in shown["body"] if b.get("type") == "FactSet" for f in b["facts"]}
    assert facts["Approvers"] == "Carol Diaz"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state.value == "pending"

    # the rule is Azure DevOps' for approving: Bob may still stop his own run
    await teams.click_action(post.id, "reject", {"gate": gate_id, "comment": "wrong model"}, user="bob")
    await eventually(lambda: approval.status == "rejected")


async def test_a_classic_release_creator_named_by_id_alone_may_not_approve_it(start_loop: Any) -> None:
    """Carol creates Release-9 (its ``createdBy`` names her by id and display name only, as the documented sample
    does); its approval is assigned to Handoff, and she is a release manager. Handoff asks the Identities API who
    she is: her Approve is refused before any form asks her for a comment, Azure DevOps is sent nothing, and the card
    does not call on her. Alice, another release manager, approves it."""
    loop = await start_loop(tweak=release_gates_in_ops)
    ado, slack = loop.suite.ado, loop.suite.slack
    approval = ado.add_release_approval(
        BOT_IDENTITY, release_name="Release-9", release_id=9, created_by="carol@contoso.com"
    )
    card = await gate_card(loop, "ops", "Release-9")
    assert '"action_id": "approve"' in blocks_text(card)
    # named as who asked for it, not as an approver, and not called on
    assert "*Requested by*\\nCarol Diaz" in blocks_text(card)
    assert '*Approvers*\\nalice@contoso.com"' in blocks_text(card)
    assert card.text.count("<@") == 1 and f"<@{loop.suite.slack.world.user('alice').id}>" in card.text

    views_before = set(slack.state.views)
    assert (await slack.click_button(card.ts, "approve", user="carol")).status == 200
    await eventually(lambda: any("You created this release" in t for t in told(loop, "carol")))
    assert set(slack.state.views) == views_before
    assert ado.recorder.matching(f"PATCH {RELEASE_APPROVALS}/*") == []
    gate = await loop.server.store.get_gate(f"azure-devops:contoso:release-approval:{approval.id}")
    assert gate is not None and "carol@contoso.com" in gate.details["requesters"]

    await approve_in_slack(loop, card, "alice", "ship it")
    await eventually(lambda: approval.status == "approved")
    assert approval.approved_by is not None and approval.approved_by.unique_name == BOT_IDENTITY


async def test_a_classic_release_creator_azure_devops_cannot_name_yet_is_not_let_approve(start_loop: Any) -> None:
    """The Identities API fails while Release-9's approval is asked for, so Handoff cannot tell which chat account
    created it: nobody may approve it from chat (its policy bars the creator), and each is told to try again.
    Once the API answers, a click asks it again: Carol, the creator, is refused; Alice approves."""
    loop = await start_loop(tweak=release_gates_in_ops)
    ado, slack = loop.suite.ado, loop.suite.slack
    ado.faults.add(f"GET {IDENTITIES}", [Fault("500")] * 50)
    approval = ado.add_release_approval(
        BOT_IDENTITY, release_name="Release-9", release_id=9, created_by="carol@contoso.com"
    )
    card = await gate_card(loop, "ops", "Release-9")
    gate_id = f"azure-devops:contoso:release-approval:{approval.id}"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.details["requester_unresolved"]["name"] == "Carol Diaz"

    views_before = set(slack.state.views)
    assert (await slack.click_button(card.ts, "approve", user="alice")).status == 200
    await eventually(lambda: any("cannot tell yet whether you created this release" in t for t in told(loop, "alice")))
    assert set(slack.state.views) == views_before

    ado.faults.clear()
    assert (await slack.click_button(card.ts, "approve", user="carol")).status == 200
    await eventually(lambda: any("You created this release" in t for t in told(loop, "carol")))
    assert set(slack.state.views) == views_before
    assert ado.recorder.matching(f"PATCH {RELEASE_APPROVALS}/*") == []

    await approve_in_slack(loop, card, "alice", "ship it")
    await eventually(lambda: approval.status == "approved")
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and "requester_unresolved" not in gate.details


async def test_a_classic_release_assigned_to_someone_else_is_decided_in_azure_devops(start_loop: Any) -> None:
    """Release-9's approval is assigned to Carol, not to Handoff: Azure DevOps lets only her decide it, so its
    cards say to decide it in Azure DevOps, with no buttons, and still call on her; a click from a card sent before
    is answered so, and Azure DevOps is sent nothing."""
    loop = await start_loop(tweak=release_gates_in_app_releases)
    ado, teams = loop.suite.ado, loop.suite.teams
    approval = ado.add_release_approval("carol@contoso.com", release_name="Release-9", release_id=9)
    card = await gate_card(loop, "app-releases", "Release-9")
    post = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if "Release-9" in card_text(p)), None)
    )
    said = "Azure DevOps lets only this release's approvers decide it, and Handoff is not one of them"
    assert said in blocks_text(card) and '"action_id": "approve"' not in blocks_text(card)
    assert said in card_text(post) and '"verb": "approve"' not in card_text(post)
    assert "<@" in card.text or "Carol" in blocks_text(card)

    gate_id = f"azure-devops:contoso:release-approval:{approval.id}"
    clicked = await teams.click_action(post.id, "approve", {"gate": gate_id, "comment": "ok"}, user="carol")

    assert clicked.body is not None and said in json.dumps(clicked.body)
    assert ado.recorder.matching(f"PATCH {RELEASE_APPROVALS}/*") == []
    assert approval.status == "pending"
