"""The whole loop on one machine: emulators → Handoff (real adapters, SQLite) → Slack and Teams.

Handoff runs unchanged, as `handoff serve` would, against the four emulators; the emulators deliver
service hooks, Event Grid events, Slack requests and Teams activities to it over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from azure.devops.connection import Connection
from azure.devops.v7_1.release.models import ReleaseApproval
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.demo import BOT_IDENTITY
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from adapters.emulators.azure_devops.errors import internal_error
from adapters.emulators.base import Fault
from bot.interactions import ChatUser, CommandRequest
from bot.records import ConversationAddress, GateState
from tests.e2e.conftest import (
    Loop,
    approve_in_slack,
    blocks_text,
    card_text,
    eventually,
    production_approved_by_a_group,
    slack_messages,
    teams_posts,
)


async def test_a_failing_integration_run_is_one_living_card_on_both_platforms(loop: Loop) -> None:
    ado = loop.suite.ado
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    await eventually(lambda: "Failed" in "".join(blocks_text(m) for m in slack_messages(loop, "app-releases")))
    await eventually(lambda: any("Integration tests" in card_text(p) for p in teams_posts(loop, "App releases")))
    await asyncio.sleep(1.5)  # let coalesced updates land
    # the card, and (the run having been shown since it started) its failure, in the thread and in the channel
    slack_card, failure = slack_messages(loop, "app-releases")
    assert "Failed at stage Integration tests" in blocks_text(slack_card)
    assert failure in slack_card.replies and failure.reply_broadcast
    assert "failed in stage Integration tests" in failure.text
    assert failure.text.endswith(" <@U0B0B000002>")  # bob asked for the run: the failure calls on him
    (teams_card,) = teams_posts(loop, "App releases")
    assert "Integration tests" in card_text(teams_card)
    [teams_failure] = [r for r in teams_card.replies if "failed in stage" in json.dumps(r.activity)]
    [content] = [a["content"] for a in teams_failure.activity["attachments"]]
    bob = loop.suite.teams.world.user("bob")
    assert content["body"][-1]["text"] == f"<at>{bob.name}</at>"
    assert content["msteams"]["entities"] == [
        {"type": "mention", "text": f"<at>{bob.name}</at>", "mentioned": {"id": bob.id, "name": bob.name}}
    ]
    # the run's card never went anywhere it was not routed
    assert slack_messages(loop, "ml-models") == []
    # and the server's metrics count what the outbox delivered, on each platform
    async with aiohttp.ClientSession() as session, session.get(f"{loop.server.url}/metrics") as resp:
        metrics = await resp.text()
    for platform in ("slack", "teams"):
        assert re.search(rf'^handoff_delivery_seconds_count{{platform="{platform}"}} [1-9]', metrics, re.MULTILINE)


async def test_a_run_that_partially_succeeded_is_told_so_on_both_platforms_with_its_logs(loop: Loop) -> None:
    """A stage that succeeded with issues makes its run partially succeed: an alert (in the thread and the channel,
    calling on who asked), but no failure."""
    ado = loop.suite.ado
    ado.script_next_run("integrate-app-y", results={"Build": "succeededWithIssues"})
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    assert ado.run(run.id).result == "partiallySucceeded"
    await eventually(lambda: len(slack_messages(loop, "app-releases")) == 2)
    await eventually(lambda: any(p.replies for p in teams_posts(loop, "App releases")))
    await asyncio.sleep(1.5)  # let coalesced updates land
    slack_card, told = slack_messages(loop, "app-releases")
    assert ":large_orange_diamond: *Partially succeeded*" in blocks_text(slack_card)
    assert ":large_orange_diamond: Build\\n:white_check_mark: Integration tests" in blocks_text(slack_card)
    assert f"buildId={run.id}&view=logs|Logs>" in blocks_text(slack_card)
    assert told in slack_card.replies and told.reply_broadcast
    assert told.text == (
        f"Partially succeeded: integrate-app-y {run.name} partially succeeded with model-x:latest. "
        f"Issues in stage Build. <@{loop.suite.slack.world.user('bob').id}>"
    )
    assert ":large_orange_diamond:" in blocks_text(told) and f"buildId={run.id}&view=logs|Logs>" in blocks_text(told)
    assert ":x:" not in blocks_text(told) and "failed" not in blocks_text(told).lower()
    (teams_card,) = teams_posts(loop, "App releases")
    [card] = [a["content"] for a in teams_card.activity["attachments"]]
    stages = [fact for block in card["body"] if block["type"] == "FactSet" for fact in block["facts"]]
    assert {"title": "Build", "value": "⚠️ Partially succeeded"} in stages
    assert "Logs" in [a["title"] for a in card.get("actions", [])]
    [teams_told] = teams_card.replies
    [reply] = [a["content"] for a in teams_told.activity["attachments"]]
    assert [b["text"] for b in reply["body"][:3]] == [
        f"integrate-app-y {run.name} partially succeeded with model-x:latest",
        "⚠️ Partially succeeded",
        "Issues in stage Build.",
    ]
    assert [a["title"] for a in reply["actions"]] == ["Logs"]
    bob = loop.suite.teams.world.user("bob")
    assert [e["mentioned"]["id"] for e in reply["msteams"]["entities"]] == [bob.id]


HOSTILE = "integrate-[app](https://evil.example) **all** <!here>"


def a_pipeline_with_a_hostile_name(world: dict[str, Any]) -> None:
    """A ``world`` tweak: a pipeline whose name reads as markup (of Handoff's replies, of Slack's ``mrkdwn``)."""
    pipeline = {"id": 40, "name": HOSTILE, "folder": "\\app", "repository": "app-y", "stages": [{"name": "Build"}]}
    world["azure_devops"]["pipelines"].append(pipeline)


async def test_a_cards_notification_text_says_outside_text_as_it_is(start_loop: Callable[..., Awaitable[Loop]]) -> None:
    """Slack's notification text for a card and for its failure reply: the pipeline's name as written, escaped,
    no link or bold made of it."""
    loop = await start_loop(world=a_pipeline_with_a_hostile_name)
    ado = loop.suite.ado
    ado.script_next_run(40, fail_stage="Build")
    run = ado.start_run(40, requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    await eventually(lambda: len(slack_messages(loop, "app-releases")) == 2)
    await asyncio.sleep(1.5)  # let coalesced updates land
    slack_card, told = slack_messages(loop, "app-releases")
    bob = loop.suite.slack.world.user("bob").id
    shown = "integrate-[app](https://evil.example) **all** &lt;!here&gt;"
    assert slack_card.text == f"Failed: {shown} {run.name}. Failed at stage Build <@{bob}>"
    assert told.text == f"Failed: {shown} {run.name} failed in stage Build. Stage Build failed. <@{bob}>"


async def test_a_release_gate_is_approved_once_from_slack_and_both_cards_follow(loop: Loop) -> None:
    ado = loop.suite.ado
    run = ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    teams_gate = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if "approve" in card_text(p)), None)
    )
    slack = loop.suite.slack
    # the gate calls on carol, an approver; bob asked for the run, which bars him (the gate policy's
    # requester_cannot_approve)
    carol = slack.world.user("carol")
    assert gate_card.text.endswith(f" <@{carol.id}>") and gate_card.text.count("<@") == 1
    teams_carol = loop.suite.teams.world.user("carol")
    [content] = [a["content"] for a in teams_gate.activity["attachments"]]
    assert content["body"][-1]["text"] == f"<at>{teams_carol.name}</at>"
    assert [e["mentioned"]["id"] for e in content["msteams"]["entities"]] == [teams_carol.id]

    async def approve_in_slack(user: str, comment: str) -> None:
        opened_before = set(slack.state.views)
        assert (await slack.click_button(gate_card.ts, "approve", user=user)).status == 200
        view_id = await eventually(lambda: next(iter(set(slack.state.views) - opened_before), None))
        assert (await slack.submit_view(view_id, {"comment": {"comment": comment}})).status == 200

    # bob started the run: the policy refuses him, privately, before a form asks him for a comment
    views_before = set(slack.state.views)
    assert (await slack.click_button(gate_card.ts, "approve", user="bob")).status == 200
    await eventually(lambda: slack.state.ephemeral_for("U0B0B000002"))
    assert "requester" in slack.state.ephemeral_for("U0B0B000002")[-1].text
    assert set(slack.state.views) == views_before
    assert [e.outcome for e in await loop.server.store.list_audit() if e.action == "approve"] == [
        "refused: You started this run, and its policy says the requester may not approve it."
    ]
    assert ado.run(run.id).state != "completed"
    await approve_in_slack("carol", "looks good")
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    patches = ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
    assert len(patches) == 1
    assert "Approved in Slack by carol@contoso.com: looks good" in patches[0].text()
    decided = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "app-releases") if m.ts == gate_card.ts and "Approved" in blocks_text(m)),
            None,
        )
    )
    assert "<@" not in decided.text + blocks_text(decided)  # a decided gate calls on nobody
    # the gate's Teams card shows the decision too (the clicker was on Slack)
    await eventually(
        lambda: any(
            "Approved" in card_text(p) and "release-app-y" in card_text(p) for p in teams_posts(loop, "App releases")
        )
    )
    audit = await loop.server.store.list_audit()
    assert [e.outcome for e in audit if e.action == "approve"][-1] == "applied"


def production_bars_the_requester(world: dict[str, Any]) -> None:
    """A ``world`` tweak: production's approval check bars the run's requester (Azure DevOps refuses their
    approval; the shipped world takes it)."""
    [production] = [e for e in world["azure_devops"]["environments"] if e["name"] == "production"]
    production["approval"]["requesterCannotBeApprover"] = True


async def test_the_requester_of_a_pipeline_run_may_not_approve_it_where_only_the_gate_policy_says_so(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Azure DevOps' check lets the run's requester approve (the shipped world's does), Handoff's gate policy
    (requester_cannot_approve) does not: carol asked for the release, so her Approve is refused in chat, nothing
    reaches Azure DevOps, and the card neither lists her among who may approve nor calls on her; bob's approval
    goes through."""
    loop = await start_loop()
    ado, slack = loop.suite.ado, loop.suite.slack
    run = ado.start_run(
        "release-app-y", requested_by="carol@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    [approval] = ado.approvals_for(run.id)
    assert approval.blocked == []  # Azure DevOps itself bars nobody
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and "carol@contoso.com" in gate.details["requesters"]
    assert gate.details["requester_names"] == ["Carol Diaz"]
    carol, bob = slack.world.user("carol"), slack.world.user("bob")
    assert f"<@{bob.id}>" in gate_card.text and f"<@{carol.id}>" not in gate_card.text
    assert '"text": "*Approvers*\\nBob Chen"' in blocks_text(gate_card)

    views_before = set(slack.state.views)
    assert (await slack.click_button(gate_card.ts, "approve", user="carol")).status == 200
    said = "You started this run, and its policy says the requester may not approve it."
    await eventually(lambda: any(said in e.text for e in slack.state.ephemeral_for(carol.id)))
    assert set(slack.state.views) == views_before  # refused before any form asks her for a comment
    await asyncio.sleep(0.5)
    assert ado.recorder.matching(f"PATCH {APPROVALS}") == [] and approval.status == "pending"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.PENDING
    assert await loop.server.store.gate_decisions(gate_id) == []
    assert [(e.actor, e.outcome) for e in await loop.server.store.list_audit() if e.action == "approve"] == [
        ("carol@contoso.com", f"refused: {said}")
    ]

    await approve_in_slack(loop, gate_card, "bob", "looks good")
    await eventually(lambda: approval.status == "approved")
    [patch] = ado.recorder.matching(f"PATCH {APPROVALS}")
    assert "Approved in Slack by bob@contoso.com: looks good" in patch.text()


async def test_a_release_handoff_started_is_left_to_people_in_azure_devops(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Handoff started the release itself (as a promoted model version does), and production's approval bars
    the run's requester: Azure DevOps would refuse Handoff's identity, so the gate's cards say so up front, offer
    no buttons, and a click from an older card sends nothing."""
    loop = await start_loop(world=production_bars_the_requester)
    ado, teams, slack = loop.suite.ado, loop.suite.teams, loop.suite.slack
    run = ado.start_run(
        "release-app-y", requested_by=BOT_IDENTITY, parameters={"modelName": "model-x", "modelVersion": "8"}
    )
    barred = "Handoff started this run, so Azure DevOps lets only people decide it: decide in Azure DevOps."
    post = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if barred in card_text(p)), None)
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if barred in blocks_text(m)), None)
    )
    assert '"verb": "approve"' not in card_text(post) and '"action_id": "approve"' not in blocks_text(gate_card)
    assert "Open in Azure DevOps" in card_text(post) and "Open in Azure DevOps" in blocks_text(gate_card)
    # the people are named; Handoff's own account is not
    assert "Carol Diaz, Bob Chen" in blocks_text(gate_card) and "Handoff Bot" not in blocks_text(gate_card)
    [approval] = ado.approvals_for(run.id)
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    answer = await teams.click_action(post.id, "approve", {"gate": gate_id}, user="bob")  # an older card's button
    assert answer.status == 200 and answer.body is not None and answer.body["statusCode"] != 200
    assert barred in json.dumps(answer.body)
    assert ado.recorder.matching(f"PATCH {APPROVALS}") == [] and approval.status == "pending"
    # `approvals` does not ask carol to decide it in chat
    handoff = loop.server.handoff
    assert handoff is not None
    carol = ChatUser(platform="slack", user_id="U0CAROL", email="carol@contoso.com")
    where = ConversationAddress("slack", slack.state.channel("app-releases").id)
    listed = await handoff.chat.on_command(CommandRequest(carol, where, "approvals"))
    assert "Gates waiting for you" not in listed.text
    assert "release-app-y → production" in listed.text and barred in listed.text
    await handoff.gatekeeper.sweep()
    assert ado.recorder.matching(f"PATCH {APPROVALS}") == [] and ado.run(run.id).state != "completed"


async def test_an_approval_azure_devops_needs_two_for_waits_there_after_handoffs_one(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Production's approval needs two approvers; Handoff's identity gives one, so the cards say so up front, and
    after carol's approval from Slack is applied the gate waits for the other in Azure DevOps, never shown as
    approved until Azure DevOps completes it."""

    def two_needed(world: dict[str, Any]) -> None:
        [production] = [e for e in world["azure_devops"]["environments"] if e["name"] == "production"]
        production["approval"]["minRequiredApprovers"] = 2

    loop = await start_loop(world=two_needed)
    ado, slack = loop.suite.ado, loop.suite.slack
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    upfront = "Handoff's approval counts once in Azure DevOps, which needs 2 approvers: one more must approve there."
    assert upfront in blocks_text(gate_card)
    assert "2 in Azure DevOps: Handoff's, and 1 more there" in blocks_text(gate_card)
    assert "Handoff Bot" not in blocks_text(gate_card)
    await approve_in_slack(loop, gate_card, "carol", "looks good")
    more = "Handoff's approval counts once in Azure DevOps; it needs 1 more approver there: decide in Azure DevOps."
    await eventually(lambda: more in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card) and "Decided by" not in blocks_text(gate_card)
    assert "Handoff's approval in Azure DevOps, for Carol Diaz" in blocks_text(gate_card)
    told = "Handoff approved in Azure DevOps for Carol Diaz"
    await eventually(lambda: any(told in r.text for r in gate_card.replies))
    assert not any(r.text.startswith("Approved") for r in gate_card.replies)
    [approval] = ado.approvals_for(run.id)
    assert approval.status == "pending" and len(ado.recorder.matching(f"PATCH {APPROVALS}")) == 1
    handoff = loop.server.handoff
    assert handoff is not None
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.PENDING and gate.details["applied"] is True
    # bob's click from chat would add nothing in Azure DevOps: he is told to decide there, and nothing is sent
    bob = ChatUser(platform="slack", user_id="U0B0B000002", email="bob@contoso.com")
    where = ConversationAddress("slack", slack.state.channel("app-releases").id)
    answer = await handoff.gatekeeper.decide(bob, gate_id, "approve", "", where)
    assert not answer.accepted and answer.message == more
    await handoff.gatekeeper.sweep()
    assert len(ado.recorder.matching(f"PATCH {APPROVALS}")) == 1
    # bob approves in Azure DevOps: the gate and its cards take Azure DevOps' outcome
    await decide_in_azure_devops(ado, "bob@contoso.com", approval.id, "approved", "fine by me")
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    await eventually(lambda: "Approved" in blocks_text(gate_card) and "Bob Chen" in blocks_text(gate_card))
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.APPROVED


@pytest.mark.parametrize("refusal", ["not-an-approver", "approval-gone"])
async def test_an_approval_azure_devops_will_never_take_from_handoff_is_left_to_azure_devops(
    start_loop: Callable[..., Awaitable[Loop]], refusal: str
) -> None:
    """Production's approval is assigned to people only (Handoff's identity is not an approver), or it was
    deleted in Azure DevOps: the first approval from chat is refused, and from then on the cards say to decide
    in Azure DevOps in plain words, with no buttons, and no click sends another PATCH."""

    def people_only(world: dict[str, Any]) -> None:
        [production] = [e for e in world["azure_devops"]["environments"] if e["name"] == "production"]
        production["approval"]["approvers"] = ["carol@contoso.com", "bob@contoso.com"]

    loop = await start_loop(world=people_only)
    ado, slack, teams = loop.suite.ado, loop.suite.slack, loop.suite.teams
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    post = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if '"verb": "approve"' in card_text(p)), None)
    )
    [approval] = ado.approvals_for(run.id)
    if refusal == "approval-gone":
        del ado.engine.approvals[approval.id]
    said = (
        "This approval no longer exists in Azure DevOps."
        if refusal == "approval-gone"
        else "Azure DevOps does not let Handoff approve or reject this gate; decide in Azure DevOps."
    )
    await approve_in_slack(loop, gate_card, "carol", "ok")
    carol_id = slack.world.user("carol").id
    await eventually(lambda: any(said in e.text for e in slack.state.ephemeral_for(carol_id)))
    await eventually(lambda: said in blocks_text(gate_card) and '"action_id": "approve"' not in blocks_text(gate_card))
    await eventually(
        lambda: any(
            said in card_text(p) and '"verb": "approve"' not in card_text(p) for p in teams_posts(loop, "App releases")
        )
    )
    thread = [r.text + blocks_text(r) for r in gate_card.replies]
    shown = blocks_text(gate_card) + "".join(thread) + "".join(e.text for e in slack.state.ephemeral_for(carol_id))
    assert approval.id not in shown and "Exception" not in shown
    assert len(ado.recorder.matching(f"PATCH {APPROVALS}")) == 1
    # a click on the Teams card as it was is answered so, and sends nothing
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    answer = await teams.click_action(post.id, "reject", {"gate": gate_id, "comment": "no"}, user="carol")
    assert answer.status == 200 and said in json.dumps(answer.body)
    handoff = loop.server.handoff
    assert handoff is not None
    await handoff.gatekeeper.sweep()
    assert len(ado.recorder.matching(f"PATCH {APPROVALS}")) == 1
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.PENDING


async def the_group_gate(loop: Loop) -> tuple[Any, Any]:
    """Start a release of app-y whose production stage waits for the Release Managers group: the run and the
    gate's Slack card."""
    run = loop.suite.ado.start_run(
        "release-app-y", requested_by="carol@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    return run, gate_card


async def test_a_gate_two_must_approve_calls_on_its_role_approvers_and_names_every_approval(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """The default gate policy wants two approvals and adds alice through its approver role. The card says two
    from the start, lists and calls on alice beside Azure DevOps' approvers (not bob, who asked for the run),
    says when it expires, and once decided names both approvals under the headline it had while waiting."""

    def two_approvals(config: dict[str, Any]) -> None:
        config["roles"]["release-managers"]["members"] = ["carol@contoso.com", "alice@contoso.com"]
        config["gates"]["default"]["min_approvers"] = 2

    loop = await start_loop(two_approvals)
    slack = loop.suite.slack
    carol, alice = slack.world.user("carol"), slack.world.user("alice")
    loop.suite.ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    shown = blocks_text(gate_card)
    assert "Release release-app-y to production" in shown
    assert "*Approvers*\\nCarol Diaz, alice@contoso.com" in shown and "Bob" not in shown
    assert "*Approvals needed*\\n2" in shown and "*Expires*" in shown
    assert gate_card.text.endswith(f" <@{carol.id}> <@{alice.id}>")

    await approve_in_slack(loop, gate_card, "carol", "one")
    # carol has approved: the card waits for alice alone
    await eventually(lambda: "1 of 2: Carol Diaz" in blocks_text(gate_card) and f"<@{alice.id}>" in gate_card.text)
    assert gate_card.text.count("<@") == 1
    await approve_in_slack(loop, gate_card, "alice", "two")
    await eventually(lambda: "Decided by" in blocks_text(gate_card), timeout=30)
    decided = blocks_text(gate_card)
    assert "*Decided by*\\nCarol Diaz and Alice Martin" in decided
    assert "Release release-app-y to production" in decided and "<@" not in gate_card.text


async def test_a_gate_assigned_to_a_group_calls_on_its_members_and_lets_them_decide(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(world=production_approved_by_a_group)
    ado, slack = loop.suite.ado, loop.suite.slack
    run, gate_card = await the_group_gate(loop)
    # the card names the group and calls on its member, found through Azure DevOps' Identities API
    alice = slack.world.user("alice")
    assert "Release Managers" in blocks_text(gate_card)
    assert gate_card.text.endswith(f" <@{alice.id}>") and gate_card.text.count("<@") == 1
    assert ado.recorder.matching("GET /contoso/_apis/identities")

    bob = slack.world.user("bob")
    await approve_in_slack(loop, gate_card, "bob", "lgtm")  # neither in the group nor in a Handoff role
    await eventually(lambda: slack.state.ephemeral_for(bob.id))
    assert "not an approver" in slack.state.ephemeral_for(bob.id)[-1].text
    assert "Release Managers" in slack.state.ephemeral_for(bob.id)[-1].text
    await approve_in_slack(loop, gate_card, "alice", "checked the model card")
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    [patch] = ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
    assert "Approved in Slack by alice@contoso.com: checked the model card" in patch.text()


async def test_someone_added_to_the_group_after_the_gate_opened_may_decide_it(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(world=production_approved_by_a_group)
    ado = loop.suite.ado
    run, gate_card = await the_group_gate(loop)
    looked_up = len(ado.recorder.matching("GET /contoso/_apis/identities"))
    ado.world.add_member("Release Managers", "bob@contoso.com")  # an administrator adds bob
    await approve_in_slack(loop, gate_card, "bob", "on call this week")
    await eventually(lambda: ado.run(run.id).state == "completed", timeout=30)
    [patch] = ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
    assert "Approved in Slack by bob@contoso.com: on call this week" in patch.text()
    # Handoff asked Azure DevOps again, not its cache, before it would refuse him
    assert len(ado.recorder.matching("GET /contoso/_apis/identities")) > looked_up
    assert not loop.suite.slack.state.ephemeral_for(loop.suite.slack.world.user("bob").id)


# --- Azure DevOps completes an approval itself ----------------------------------------------------------

APPROVALS = "/contoso/mlops/_apis/pipelines/approvals"


async def decide_in_azure_devops(
    ado: AzureDevOpsEmulator, who: str, approval_id: str, status: str, comment: str
) -> None:
    """``who`` approves or rejects (``status``) the approval in Azure DevOps itself, through the SDK."""
    client = PipelineApprovalsClient(ado.org_url, BasicAuthentication("", ado.pat(who)))
    update = {"approvalId": approval_id, "status": status, "comment": comment}
    await asyncio.to_thread(client.update_approvals, "mlops", [update])


@contextlib.asynccontextmanager
async def hooks_lost(ado: AzureDevOpsEmulator) -> AsyncIterator[None]:
    """Every service hook Azure DevOps sends meanwhile is lost (they are at-least-once, but may be dropped)."""
    subscriptions = list(ado.webhooks.subscriptions.values())
    for subscription in subscriptions:
        subscription.status = "disabledByUser"
    try:
        yield
        await ado.drain()
    finally:
        for subscription in subscriptions:
            subscription.status = "enabled"


async def unanswered_approval_from_slack(loop: Loop) -> tuple[Any, Any]:
    """A release of app-y (alice asked for it) waits in production; carol approves it in Slack while Azure DevOps
    does not answer, so the gate's cards show her approval as waiting to be applied. The approval and the gate's
    Slack card."""
    ado = loop.suite.ado
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    [approval] = ado.approvals_for(run.id)
    ado.faults.add(f"PATCH {APPROVALS}", ["reset"])  # the connection drops before Azure DevOps sees it
    await approve_in_slack(loop, gate_card, "carol", "looks good")
    await eventually(lambda: "Handoff will apply it when it does" in blocks_text(gate_card))
    await eventually(lambda: any("Approved in Slack by Carol Diaz" in r.text for r in gate_card.replies))
    assert approval.status == "pending"
    return approval, gate_card


def sent_by_handoff(loop: Loop) -> list[str]:
    """The decisions Handoff sent Azure DevOps (its comments), dropped ones included."""
    patches = loop.suite.ado.recorder.matching(f"PATCH {APPROVALS}")
    return [u["comment"] for p in patches for u in p.json() if u["comment"].startswith(("Approved in", "Rejected in"))]


@pytest.mark.parametrize(
    "fault",
    [Fault("429"), Fault("503", retry_after=0, body=internal_error().body())],
    ids=["throttled", "failed"],
)
async def test_an_approval_azure_devops_throttles_or_fails_stands_and_is_sent_again(loop: Loop, fault: Fault) -> None:
    """Azure DevOps answers carol's approval from Slack with a 429 (TF400733), or a 503 in its JSON error shape: as
    it answers a refusal, but no refusal. Her approval stands, the cards say Handoff will apply it, and the sweep
    sends it again."""
    ado = loop.suite.ado
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "approve" in blocks_text(m)), None)
    )
    [approval] = ado.approvals_for(run.id)
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"
    ado.faults.add(f"PATCH {APPROVALS}", [fault])
    await approve_in_slack(loop, gate_card, "carol", "looks good")
    await eventually(lambda: "Handoff will apply it when it does" in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    await eventually(lambda: any("Approved in Slack by Carol Diaz" in r.text for r in gate_card.replies))
    assert not any("refused" in r.text for r in gate_card.replies)
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.APPROVED
    assert gate.details["applied"] is False and "refused" not in gate.details
    assert [d.actor for d in await loop.server.store.gate_decisions(gate_id)] == ["carol@contoso.com"]
    assert approval.status == "pending"
    audit = [(e.actor, e.action, e.outcome) for e in await loop.server.store.list_audit() if "gate" in e.target]
    assert audit == [("carol@contoso.com", "approve", "pending: Azure DevOps unavailable")]

    handoff = loop.server.handoff
    assert handoff is not None
    await handoff.gatekeeper.sweep()  # sends it again: taken
    await eventually(lambda: approval.status == "approved")
    assert [p.status for p in ado.recorder.matching(f"PATCH {APPROVALS}")] == [int(fault.kind), 200]
    assert sent_by_handoff(loop) == ["Approved in Slack by carol@contoso.com: looks good"] * 2
    await eventually(
        lambda: "Handoff will apply it" not in blocks_text(gate_card) and "Approved" in blocks_text(gate_card)
    )
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.APPROVED and gate.details["applied"] is True
    audit = [(e.actor, e.action, e.outcome) for e in await loop.server.store.list_audit() if "gate" in e.target]
    assert ("Handoff", "apply approve", "applied") in audit
    assert not [outcome for _, _, outcome in audit if "refused" in outcome]


async def test_an_approval_rejected_in_azure_devops_while_it_did_not_answer_corrects_the_cards(loop: Loop) -> None:
    """Carol's approval never reached Azure DevOps; bob rejects there, and its event arrives."""
    ado, slack = loop.suite.ado, loop.suite.slack
    approval, gate_card = await unanswered_approval_from_slack(loop)

    await decide_in_azure_devops(ado, "bob@contoso.com", approval.id, "rejected", "the model card is stale")
    # the card says what Azure DevOps did, who did it, and that carol's approval was not applied
    corrected = "Rejected in Azure DevOps by Bob Chen; Carol Diaz's approval from Slack was not applied."
    await eventually(lambda: corrected in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    assert "Handoff will apply it" not in blocks_text(gate_card)
    # the thread too, calling on carol
    carol = slack.world.user("carol")
    reply = await eventually(lambda: next((r for r in gate_card.replies if "Rejected in Azure DevOps" in r.text), None))
    assert "Rejected in Azure DevOps by Bob Chen." in reply.text and reply.text.endswith(f" <@{carol.id}>")
    assert "Carol Diaz's approval from Slack was not applied" in blocks_text(reply)
    assert "the model card is stale" in blocks_text(reply)
    teams_card = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if corrected in card_text(p)), None)
    )
    assert '"verb": "approve"' not in card_text(teams_card)

    handoff = loop.server.handoff
    assert handoff is not None
    gate = await loop.server.store.get_gate(f"azure-devops:contoso:pipeline-approval:{approval.id}")
    assert gate is not None and gate.state is GateState.REJECTED
    assert gate.details["applied"] is True and gate.details["decided_in"] == "Azure DevOps"
    await handoff.gatekeeper.sweep()  # carol's approval is never sent again
    assert sent_by_handoff(loop) == ["Approved in Slack by carol@contoso.com: looks good"]
    assert approval.status == "rejected"
    audit = [(e.actor, e.action, e.outcome) for e in await loop.server.store.list_audit() if "gate" in e.target]
    assert audit == [
        ("carol@contoso.com", "approve", "pending: Azure DevOps unavailable"),
        ("Azure DevOps", "decide", "rejected"),
    ]


async def test_a_decision_sent_again_after_azure_devops_completed_the_approval_takes_its_outcome(loop: Loop) -> None:
    """Carol's approval never reached Azure DevOps; bob rejects there, and that event is lost. Handoff sends carol's
    approval again, Azure DevOps answers it was completed already: the gate takes its outcome, not waits again."""
    ado, slack = loop.suite.ado, loop.suite.slack
    approval, gate_card = await unanswered_approval_from_slack(loop)
    async with hooks_lost(ado):
        await decide_in_azure_devops(ado, "bob@contoso.com", approval.id, "rejected", "the model card is stale")
    handoff = loop.server.handoff
    assert handoff is not None

    await handoff.gatekeeper.sweep()  # sends carol's approval again: too late
    gate = await loop.server.store.get_gate(f"azure-devops:contoso:pipeline-approval:{approval.id}")
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    [asked] = ado.recorder.matching(f"GET {APPROVALS}")
    assert asked.query["approvalIds"] == approval.id
    corrected = "Rejected in Azure DevOps by Bob Chen; Carol Diaz's approval from Slack was not applied."
    await eventually(lambda: corrected in blocks_text(gate_card))
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    carol = slack.world.user("carol")
    reply = await eventually(lambda: next((r for r in gate_card.replies if "Rejected in Azure DevOps" in r.text), None))
    assert reply.text.endswith(f" <@{carol.id}>") and "the model card is stale" in reply.text
    assert not any("refused" in r.text for r in gate_card.replies)
    await eventually(lambda: any(corrected in card_text(p) for p in teams_posts(loop, "App releases")))

    await handoff.gatekeeper.sweep()  # and never again
    assert sent_by_handoff(loop) == ["Approved in Slack by carol@contoso.com: looks good"] * 2
    audit = [(e.action, e.outcome) for e in await loop.server.store.list_audit() if "gate" in e.target]
    assert audit == [
        ("approve", "pending: Azure DevOps unavailable"),
        ("decide", "rejected"),
        ("apply approve", "not applied: rejected in Azure DevOps by Bob Chen first"),
    ]


async def test_a_gate_waiting_again_closes_when_azure_devops_says_its_approval_is_done(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Handoff started the run, so its gate waits for people to decide in Azure DevOps; carol approves there and
    that event is lost. The sweep asks Azure DevOps, now and then, and closes the gate."""
    loop = await start_loop(world=production_bars_the_requester)
    ado = loop.suite.ado
    run = ado.start_run(
        "release-app-y", requested_by=BOT_IDENTITY, parameters={"modelName": "model-x", "modelVersion": "8"}
    )
    refused = "Handoff started this run"
    post = await eventually(
        lambda: next((p for p in teams_posts(loop, "App releases") if refused in card_text(p)), None)
    )
    [approval] = ado.approvals_for(run.id)
    async with hooks_lost(ado):
        await decide_in_azure_devops(ado, "carol@contoso.com", approval.id, "approved", "ship it")
    handoff = loop.server.handoff
    assert handoff is not None
    gate_id = f"azure-devops:contoso:pipeline-approval:{approval.id}"

    await handoff.gatekeeper.sweep()  # the gate was asked about when it opened: not again so soon
    assert ado.recorder.matching(f"GET {APPROVALS}") == []
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.PENDING

    handoff.gatekeeper.reconcile_every = timedelta(0)  # as if five minutes had passed
    await handoff.gatekeeper.sweep()
    [asked] = ado.recorder.matching(f"GET {APPROVALS}")
    assert asked.query["approvalIds"] == approval.id
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.APPROVED and gate.details["decided_in"] == "Azure DevOps"
    # its cards show it approved, by carol in Azure DevOps, without buttons; their threads are told
    await eventually(lambda: "Approved" in card_text(post) and "Carol Diaz" in card_text(post))
    assert '"verb": "approve"' not in card_text(post) and refused not in card_text(post)
    await eventually(
        lambda: any("Approved in Azure DevOps by Carol Diaz" in json.dumps(r.activity) for r in post.replies)
    )
    gate_card = next(m for m in slack_messages(loop, "app-releases") if "Approvals needed" in blocks_text(m))
    await eventually(
        lambda: '"action_id": "approve"' not in blocks_text(gate_card) and "Carol Diaz" in blocks_text(gate_card)
    )
    await eventually(lambda: any("Approved in Azure DevOps by Carol Diaz" in r.text for r in gate_card.replies))
    assert len(ado.recorder.matching(f"PATCH {APPROVALS}")) == 1  # carol's own
    audit = [(e.actor, e.action, e.outcome) for e in await loop.server.store.list_audit() if "gate" in e.target]
    assert audit[-1] == ("Azure DevOps", "decide", "approved")


RELEASE_APPROVALS = "/contoso/mlops/_apis/Release/approvals"


def classic_releases_in_ops(config: dict[str, Any]) -> None:
    """A configuration tweak: the ops channel follows the approvals of the classic release app-y-classic.CD."""
    config["subscriptions"].append({"channel": "ops", "events": ["approval"], "pipelines": ["app-y-classic.*"]})


async def test_a_classic_release_gate_closes_when_azure_devops_says_its_approval_is_done(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Carol approves a classic release's approval in Azure DevOps and that event is lost. The sweep asks Azure
    DevOps about the approvals of the waiting gates' releases (a release's approvals are listed by status: those
    pending first, then the approved ones of the release whose approval was not pending) and closes her gate; the
    other, still waiting, stays as it was."""
    loop = await start_loop(tweak=classic_releases_in_ops)
    ado = loop.suite.ado
    approval = ado.add_release_approval("carol@contoso.com", release_name="Release-2", release_id=2)
    other = ado.add_release_approval("carol@contoso.com", release_name="Release-3", release_id=3)

    def gate_cards() -> list[Any]:
        return [m for m in slack_messages(loop, "ops") if "app-y-classic.CD Release-" in blocks_text(m)]

    await eventually(lambda: len(gate_cards()) == 2)
    gate_card, other_card = sorted(gate_cards(), key=lambda m: "Release-3" in blocks_text(m))
    carol = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("carol@contoso.com")))
    approve = ReleaseApproval(status="approved", comments="ship it")
    async with hooks_lost(ado):
        client = await asyncio.to_thread(carol.clients_v7_1.get_release_client)
        await asyncio.to_thread(client.update_release_approval, approve, "mlops", approval.id)
    assert approval.status == "approved"
    handoff = loop.server.handoff
    assert handoff is not None
    gate_id = f"azure-devops:contoso:release-approval:{approval.id}"

    await handoff.gatekeeper.sweep()  # not asked about so soon after it opened
    assert ado.recorder.matching(f"GET {RELEASE_APPROVALS}") == []
    handoff.gatekeeper.reconcile_every = timedelta(0)  # as if five minutes had passed
    await handoff.gatekeeper.sweep()
    asked = [
        (r.query["statusFilter"], r.query["releaseIdsFilter"])
        for r in ado.recorder.matching(f"GET {RELEASE_APPROVALS}")
    ]
    assert asked == [("pending", "2,3"), ("approved", "2")]
    gate = await loop.server.store.get_gate(gate_id)
    assert gate is not None and gate.state is GateState.APPROVED and gate.details["decided_in"] == "Azure DevOps"
    await eventually(
        lambda: '"action_id": "approve"' not in blocks_text(gate_card) and "Carol Diaz" in blocks_text(gate_card)
    )
    await eventually(lambda: any("Approved in Azure DevOps by Carol Diaz" in r.text for r in gate_card.replies))
    waiting = await loop.server.store.get_gate(f"azure-devops:contoso:release-approval:{other.id}")
    assert waiting is not None and waiting.state is GateState.PENDING
    assert ":raised_hand: *Waiting*" in blocks_text(other_card) and not other_card.replies

    await handoff.gatekeeper.sweep()  # only the waiting one is asked about again
    asked = [
        (r.query["statusFilter"], r.query["releaseIdsFilter"])
        for r in ado.recorder.matching(f"GET {RELEASE_APPROVALS}")
    ]
    assert asked[2:] == [("pending", "3")]
    audit = [(e.actor, e.action, e.outcome) for e in await loop.server.store.list_audit() if "gate" in e.target]
    assert audit[-1] == ("Azure DevOps", "decide", "approved")


async def test_a_click_on_a_classic_release_gate_decided_in_azure_devops_says_how_it_was_decided(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """A classic release's approval, assigned to Handoff, is rejected in Azure DevOps (by Carol) and that event is
    lost; then she clicks Approve on its card in Slack. Azure DevOps refuses the approval as decided already
    (VS402860), and Handoff asks it how, by the approval's release: the gate takes the rejection and its card says
    who rejected it there."""
    loop = await start_loop(tweak=classic_releases_in_ops)
    ado = loop.suite.ado
    approval = ado.add_release_approval(
        BOT_IDENTITY, release_name="Release-2", release_id=2, created_by="alice@contoso.com"
    )
    gate_card = await eventually(
        lambda: next((m for m in slack_messages(loop, "ops") if '"action_id": "approve"' in blocks_text(m)), None)
    )
    ado.complete_release_approval(approval.id, "rejected", by="carol@contoso.com", comments="not this week", hook=False)

    await approve_in_slack(loop, gate_card, "carol", "ship it")

    await eventually(lambda: any("Rejected in Azure DevOps by Carol Diaz" in r.text for r in gate_card.replies))
    gate = await loop.server.store.get_gate(f"azure-devops:contoso:release-approval:{approval.id}")
    assert gate is not None and gate.state is GateState.REJECTED and gate.details["decided_in"] == "Azure DevOps"
    assert [r.status for r in ado.recorder.matching(f"PATCH {RELEASE_APPROVALS}/{approval.id}")] == [400]
    asked = [
        (r.query["statusFilter"], r.query["releaseIdsFilter"])
        for r in ado.recorder.matching(f"GET {RELEASE_APPROVALS}")
    ]
    assert asked == [("pending", "2"), ("approved", "2"), ("rejected", "2")]
    assert '"action_id": "approve"' not in blocks_text(gate_card)
    assert "see how there" not in blocks_text(gate_card)


async def test_an_event_grid_batch_with_an_unreadable_event_still_posts_the_good_events_card(loop: Loop) -> None:
    aml = loop.suite.aml
    [subscription] = aml.dispatcher.subscriptions.values()  # Handoff's, with its delivery secret
    registered = {
        "specversion": "1.0",
        "id": "model-z-4-registered",
        "source": aml.workspace_topic,
        "type": "Microsoft.MachineLearningServices.ModelRegistered",
        "subject": "models/model-z:4",
        "time": "2026-03-01T10:00:00.1234567Z",
        "data": {"modelName": "model-z", "modelVersion": "4"},
    }
    unreadable = {**registered, "id": "model-z-5-registered", "subject": "models/model-z:5", "time": "garbage"}
    unreadable["data"] = {"modelName": "model-z", "modelVersion": "5"}
    headers = {"Content-Type": "application/cloudevents-batch+json; charset=utf-8", "aeg-event-type": "Notification"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(subscription.endpoint, data=json.dumps([registered, unreadable]), headers=headers) as resp,
    ):
        assert (resp.status, await resp.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 1})
    card = await eventually(
        lambda: next((m for m in slack_messages(loop, "ml-models") if "model-z" in blocks_text(m)), None)
    )
    assert "Model model-z:4 registered" in card.text
    await asyncio.sleep(1.0)  # nothing else arrives: the unreadable event was not stored
    assert [m.text for m in slack_messages(loop, "ml-models")] == [card.text]
