"""The model handoff end to end: the Azure ML emulator registers a version whose MLmodel signature
breaks app-y; Handoff, unchanged behind its real adapters, puts the verdict on the data scientists'
and the app team's cards, starts app-y's integration in the Azure DevOps emulator, and opens a
promotion gate whose Approve stays blocked until carol overrides it from Slack with a reason. Then
the release runs in Azure DevOps with the version, and the version is tagged in Azure ML.

The second test reads real MLmodel files through the emulator: tabular and tensor signatures with
each kind of difference, and a version without a signature, compared by the `diff` command.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

import bot.gates
from adapters.demo import BOT_IDENTITY
from adapters.emulators.base import Fault
from bot.interactions import ChatUser, CommandRequest
from bot.records import CommandRunState, ConversationAddress
from tests.e2e.conftest import (
    Loop,
    Person,
    approve_in_slack,
    card_text,
    command_run,
    eventually,
    slack_messages,
    teams_posts,
    teams_shown,
)
from tests.lost_answers import LOST_ANSWER_IDS, LOST_ANSWERS

AGE_AS_TEXT = {
    "inputs": [
        {"name": "age", "type": "string"},
        {"name": "income", "type": "double"},
        {"name": "segment", "type": "string"},
    ],
    "outputs": [{"name": "prediction", "type": "double"}],
}


@pytest.fixture
async def loop(start_loop: Callable[..., Awaitable[Loop]]) -> Loop:
    """The demo's emulators and Handoff, following integration runs quickly."""
    started = await start_loop()
    assert started.server.handoff is not None and started.server.handoff.model_handoff is not None
    started.server.handoff.model_handoff.poll_interval = 0.2
    return started


def words(node: Any) -> str:
    """Every text a Block Kit message or an Adaptive Card shows, in one string."""
    if isinstance(node, dict):
        return " ".join(words(v) for k, v in node.items() if k not in ("data", "action_id", "url"))
    if isinstance(node, list):
        return " ".join(words(v) for v in node)
    return node if isinstance(node, str) and not node.startswith("{") else ""  # not a button's JSON value


def slack_text(loop: Loop, channel: str) -> str:
    return " ".join(words(m.blocks or []) for m in slack_messages(loop, channel))


def teams_text(loop: Loop, channel: str) -> str:
    return " ".join(words(teams_shown(p.activity)) for p in teams_posts(loop, channel))


def buttons(message: Any) -> list[str]:
    return [
        str(element.get("action_id"))
        for block in message.blocks or []
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]


def integration_runs(loop: Loop, pipeline: str) -> list[Any]:
    return [r for r in loop.suite.ado.runs if r.pipeline.name == pipeline]


async def test_a_breaking_version_is_handed_off_and_gated_without_a_human_step(loop: Loop) -> None:
    suite = loop.suite
    suite.aml.register_model("model-x", signature=AGE_AS_TEXT, tags={"owner": "data-science"})

    # an integration run of app-y against the new version, started by Handoff
    (run,) = await eventually(lambda: integration_runs(loop, "integrate-app-y"), timeout=30)
    assert run.template_parameters == {"modelName": "model-x", "modelVersion": "8"}
    # the verdict, each difference named, on the data scientists' card (Slack and Teams)
    verdict = "Breaking: input `age`: long → string"
    await eventually(lambda: verdict in slack_text(loop, "ml-models"), timeout=30)
    await eventually(lambda: verdict in teams_text(loop, "ML models"), timeout=30)
    # and on the app team's card, with the integration run
    await eventually(lambda: "New model model-x:8 for app-y: breaking" in slack_text(loop, "app-releases"))
    await eventually(lambda: "input `age`: long → string" in teams_text(loop, "App releases"))
    await eventually(lambda: "integrate-app-y" in slack_text(loop, "app-releases"))
    # the gate: Approve is not offered, Override is
    gate = await eventually(
        lambda: next((m for m in slack_messages(loop, "ml-models") if "override" in buttons(m)), None), timeout=30
    )
    assert "approve" not in buttons(gate)
    assert "Approve is blocked: app-y: breaking change" in words(gate.blocks)
    assert integration_runs(loop, "release-app-y") == []

    # carol overrides from Slack, with a reason
    slack = suite.slack
    opened = set(slack.state.views)
    assert (await slack.click_button(gate.ts, "override", user="carol")).status == 200
    view = await eventually(lambda: next(iter(set(slack.state.views) - opened), None))
    reason = "app-y 2.4 sends age as text"
    assert (await slack.submit_view(view, {"comment": {"comment": reason}})).status == 200

    (release,) = await eventually(lambda: integration_runs(loop, "release-app-y"), timeout=30)
    assert release.template_parameters == {"modelName": "model-x", "modelVersion": "8"}
    # the release run's card, and its approval's, say which version it releases
    await eventually(
        lambda: any(
            "Release release-app-y to production" in m.text and "*Model*\\nmodel-x:8" in json.dumps(m.blocks)
            for m in slack_messages(loop, "app-releases")
        ),
        timeout=30,
    )
    await eventually(
        lambda: any(
            m.text.split(": ", 1)[-1].startswith(f"release-app-y {release.name}")  # running, or waiting
            and "*Model*\\nmodel-x:8" in json.dumps(m.blocks)
            for m in slack_messages(loop, "app-releases")
        ),
        timeout=30,
    )
    # the version is tagged once the release has started
    tags = await eventually(lambda: "approved" in (t := suite.aml.state.models["model-x"]["8"].tags) and t)
    assert (tags["approved"], tags["override_reason"]) == ("true", reason)
    decided = await eventually(
        lambda: next((m for m in slack_messages(loop, "ml-models") if m.ts == gate.ts and not buttons(m)), None),
        timeout=30,
    )
    assert "Overridden by" in words(decided.blocks) and f"Carol Diaz: {reason}" in words(
        decided.blocks
    )  # as Slack names her
    # its thread reads in the order things happened: the decision, then the release it started
    told = await eventually(lambda: len(decided.replies) >= 2 and [r.text for r in decided.replies], timeout=30)
    assert [text.split(" ", 2)[:2] for text in told] == [["Approved,", "overriding"], ["Running:", "Started"]]
    audit = await loop.server.store.list_audit()
    assert [(e.actor, e.outcome, e.comment) for e in audit if e.action == "override"] == [
        ("carol@contoso.com", "applied", reason)
    ]


async def test_a_newer_version_supersedes_the_older_ones_promotion_on_both_platforms(loop: Loop) -> None:
    """model-x:8 and then model-x:9 are registered: model-x:8's promotion gate is superseded on its Slack and
    Teams cards, and a click on a Teams card that still shows its buttons releases nothing."""
    suite = loop.suite

    def gate_card(version: str) -> Any:
        return next(
            (m for m in slack_messages(loop, "ml-models") if f"Promote model-x:{version}?" in words(m.blocks)), None
        )

    def teams_gate(version: str) -> Any:
        return next((p for p in teams_posts(loop, "ML models") if f"Promote model-x:{version}?" in card_text(p)), None)

    suite.aml.register_model("model-x", signature=AGE_AS_TEXT)  # version 8
    slack_8 = await eventually(lambda: gate_card("8"), timeout=30)
    teams_8 = await eventually(lambda: teams_gate("8"), timeout=30)
    assert "override" in buttons(slack_8)
    # what a Teams client that has not refreshed the card yet still sends when carol overrides
    [stale] = re.findall(r'"verb": "override", "data": (\{[^{}]*\})', card_text(teams_8))

    suite.aml.register_model("model-x", signature=AGE_AS_TEXT)  # version 9
    await eventually(lambda: gate_card("9"), timeout=30)
    superseded = "Promotion of model-x:8: superseded by model-x:9"
    slack_8 = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "ml-models") if m.ts == slack_8.ts and superseded in words(m.blocks)), None
        ),
        timeout=30,
    )
    assert buttons(slack_8) == []
    # its thread is told
    await eventually(lambda: any("Superseded by model-x:9" in r.text for r in slack_8.replies), timeout=30)
    await eventually(lambda: superseded in card_text(teams_8), timeout=30)
    assert '"verb": "override"' not in card_text(teams_8) and '"verb": "approve"' not in card_text(teams_8)
    assert "model-x:9 is newer and has its own promotion gate: decide there." in card_text(teams_8)
    assert "override" in buttons(await eventually(lambda: gate_card("9")))

    answer = await suite.teams.click_action(
        teams_8.id, "override", {**json.loads(stale), "comment": "app-y 2.4 sends age as text"}, user="carol"
    )
    assert answer.status == 200 and answer.body is not None and answer.body["statusCode"] != 200
    assert "model-x:8 was superseded by model-x:9" in json.dumps(answer.body)
    # nothing was released or tagged for model-x:8; the audit log says why
    await asyncio.sleep(1)
    assert integration_runs(loop, "release-app-y") == []
    assert "approved" not in suite.aml.state.models["model-x"]["8"].tags
    audit = await loop.server.store.list_audit()
    assert [(e.actor, e.outcome) for e in audit if e.action in ("supersede", "override")] == [
        ("Handoff", "superseded by model-x:9"),
        ("carol@contoso.com", "refused: superseded by model-x:9"),
    ]


TABULAR = {"inputs": AGE_AS_TEXT["inputs"], "outputs": AGE_AS_TEXT["outputs"]}
VERSIONS: list[tuple[dict[str, Any] | None, str]] = [
    # (signature of the next version, the diff against the version before it)
    (
        {**TABULAR, "inputs": [{"name": "age", "type": "long"}, *TABULAR["inputs"][1:]]},
        "breaking\n• input `age`: string → long",
    ),
    ({**TABULAR, "inputs": [{"name": "age", "type": "long"}, *TABULAR["inputs"][1:]]}, "compatible"),
    (
        {
            **TABULAR,
            "inputs": [
                {"name": "age", "type": "long"},
                {"name": "income", "type": "double"},
                {"name": "customer_segment", "type": "string"},
                {"name": "region", "type": "string", "required": False},
            ],
            "outputs": [{"name": "prediction", "type": "double"}, {"name": "probability", "type": "double"}],
        },
        "breaking\n• input `segment` renamed to `customer_segment`\n• input `region`: added (optional)\n"
        "• output `probability`: added",
    ),
    (
        {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]},
        "breaking\n• inputs: column-based → tensor-based\n• outputs: model-x:12 declares none",
    ),
    (
        {
            "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, -1]}}],
            "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}],
        },
        "additive\n• input #0: float32 → float64\n• input #0: shape [-1, 4] → [-1, -1]\n"
        "• outputs: now declared by model-x:13",
    ),
    (
        {
            "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}],
            "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1, 1]}}],
        },
        "breaking\n• input #0: shape [-1, -1] → [-1, 3]\n• output #0: float32 → int64",
    ),
    (None, "unknown\n• model-x:15 has no signature"),
]


async def test_the_model_cards_link_the_version_in_azure_ml_studio(loop: Loop) -> None:
    loop.suite.aml.register_model("model-x", signature=AGE_AS_TEXT, tags={"owner": "data-science"})
    studio = f"{loop.suite.urls['aml']}/studio/model/model-x:8/details?wsid="

    def linked(channel: str, title: str) -> Any:
        return next(
            (m for m in slack_messages(loop, channel) if m.text.startswith(title) and studio in json.dumps(m.blocks)),
            None,
        )

    model_card = await eventually(lambda: linked("ml-models", "Warning: Model model-x:8 registered"), timeout=30)
    await eventually(lambda: linked("app-releases", "Warning: New model model-x:8 for app-y"), timeout=30)
    [url] = {u for u in re.findall(r"<(http[^|>]+)\|", json.dumps(model_card.blocks)) if u.startswith(studio)}
    async with aiohttp.ClientSession() as session, session.get(url) as page:
        assert page.status == 200
        assert "model-x:8" in await page.text()


async def test_diff_reads_each_kind_of_difference_from_the_emulators_mlmodel_files(loop: Loop) -> None:
    suite = loop.suite
    suite.aml.register_model("model-x", signature=TABULAR)  # version 8
    for signature, _ in VERSIONS:
        if signature is None:
            suite.aml.script_next_model_signature(None)
        suite.aml.register_model("model-x", signature=signature)
    handoff = loop.server.handoff
    assert handoff is not None
    bob = ChatUser(platform="slack", user_id="U0B0B000002", email="bob@contoso.com")
    where = ConversationAddress("slack", suite.slack.state.channel("app-releases").id)
    for number, (_, expected) in enumerate(VERSIONS, start=9):
        reply = await handoff.chat.on_command(CommandRequest(bob, where, f"diff model-x:{number - 1} model-x:{number}"))
        verdict, _, rest = expected.partition("\n")
        assert reply.text == f"model-x:{number - 1} → model-x:{number}: **{verdict}**" + (
            f"\n{rest}" if rest else "\n• the signatures are the same"
        )
    # the version without a signature is never compatible, even with itself
    same = await handoff.chat.on_command(CommandRequest(bob, where, "diff model-x:15 model-x:15"))
    assert same.text.startswith("model-x:15 → model-x:15: **unknown**")
    status = await handoff.chat.on_command(CommandRequest(bob, where, "status model-x"))
    assert status.text.splitlines() == [
        "The latest version of model-x is 15.",
        "• app-y runs v6 (latest approved); model-x:15 is unknown: model-x:15 has no signature",
    ]


async def test_a_failed_integration_is_told_once_in_a_channel_that_also_shows_its_run(loop: Loop) -> None:
    """Where the run's own card tells the failure, the handoff card tells no one again, in its thread or in the
    channel; the model's channel, which follows model versions only, still sees it in the channel."""
    suite = loop.suite
    suite.ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    suite.aml.register_model("model-x", signature=AGE_AS_TEXT)
    (run,) = await eventually(lambda: integration_runs(loop, "integrate-app-y"), timeout=30)

    def told(channel: str, title: str) -> Any:
        """The top-level message of ``channel`` whose text starts with ``title``, once it has a reply."""
        found = [m for m in slack_messages(loop, channel) if not m.thread_ts and m.text.startswith(title)]
        return found[0] if found and found[0].replies else None

    def shown(channel: str, title: str) -> Any:
        return next((m for m in slack_messages(loop, channel) if not m.thread_ts and m.text.startswith(title)), None)

    run_card = await eventually(lambda: told("app-releases", f"Failed: integrate-app-y {run.name}"), timeout=30)
    handoff_card = await eventually(lambda: shown("app-releases", "Failed: New model model-x:8 for app-y"), timeout=30)
    model_card = await eventually(lambda: told("ml-models", "Warning: Model model-x:8 registered"), timeout=30)
    await eventually(lambda: len(model_card.replies) == 2, timeout=30)  # the verdict, then the integration
    await asyncio.sleep(1.5)  # let coalesced updates and any late reply land

    # #app-releases: the handoff card, the run's card, and the run's failure told once, by the run's card
    assert handoff_card.replies == []
    assert f"integrate-app-y {run.name}: failed at Integration tests" in words(handoff_card.blocks)
    [run_failure] = run_card.replies
    assert run_failure.text.startswith(f"Failed: integrate-app-y {run.name} failed in stage Integration tests")
    # in the channel once: by the run's card where it was first posted failed, else by its broadcast reply
    first_posted = run_card.edits[0]["text"] if run_card.edits else run_card.text
    assert run_failure.reply_broadcast is not first_posted.startswith("Failed")
    # the run's card and its failure say which model version the run tested (Azure DevOps' events do not)
    assert "*Model*\\nmodel-x:8" in json.dumps(run_card.blocks)
    assert "Stage Integration tests failed with model-x:8." in run_failure.text
    in_the_channel = [handoff_card.ts, run_card.ts, *([run_failure.ts] if run_failure.reply_broadcast else [])]
    assert sorted(m.ts for m in slack_messages(loop, "app-releases")) == sorted(in_the_channel)
    # #ml-models shows no run card: the model card's reply about the integration shows in the channel, as before
    integration_reply = model_card.replies[-1]
    assert integration_reply.text.startswith(f"Failed: app-y integration against model-x:8: integrate-app-y {run.name}")
    assert integration_reply.reply_broadcast and integration_reply in slack_messages(loop, "ml-models")
    # Azure ML's event does not say who registered the version: the reply calls on app-y's owner (the demo's
    # configuration names bob)
    assert "bob@contoso.com owns app-y: look at the run." in words(integration_reply.blocks)
    assert f"<@{loop.suite.slack.world.user('bob').id}>" in integration_reply.text
    assert "Nobody was called on" not in words(integration_reply.blocks)


async def test_owners_known_by_chat_id_are_mentioned_on_their_own_platform(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """app-y's owners configured by chat id: bob by his Slack id, carol by her AAD object id. The failed
    integration's reply @mentions bob on Slack and carol on Teams, and shows neither's raw id anywhere."""
    slack_bob, carol_aad = "U0B0B000002", "ca201000-0000-4000-8000-00000000ca20"  # (the demo world's)

    def owned_by_chat_ids(config: dict[str, Any]) -> None:
        config["apps"]["app-y"]["owners"] = [f"slack:{slack_bob}", f"aad:{carol_aad}"]

    loop = await start_loop(owned_by_chat_ids)
    assert loop.server.handoff is not None and loop.server.handoff.model_handoff is not None
    loop.server.handoff.model_handoff.poll_interval = 0.2
    suite = loop.suite
    carol = suite.teams.world.user("carol")
    assert suite.slack.world.user("bob").id == slack_bob and carol.aad_object_id == carol_aad
    suite.ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    suite.aml.register_model("model-x", signature=AGE_AS_TEXT)
    said = "The 2 owners of app-y are called on: look at the run."

    def slack_reply() -> Any:
        told = [r for m in slack_messages(loop, "ml-models") for r in m.replies if "integration against" in r.text]
        return told[0] if told else None

    def teams_reply() -> Any:
        told = [r for p in teams_posts(loop, "ML models") for r in p.replies if "integration against" in card_text(r)]
        return told[0] if told else None

    on_slack = await eventually(slack_reply, timeout=60)
    assert on_slack.text.endswith(f" <@{slack_bob}>") and on_slack.text.count("<@") == 1
    assert said in words(on_slack.blocks)
    on_teams = await eventually(teams_reply, timeout=30)
    card = on_teams.activity["attachments"][0]["content"]
    assert [e["mentioned"] for e in card["msteams"]["entities"]] == [{"id": carol.id, "name": carol.name}]
    assert card["body"][-1]["text"] == f"<at>{carol.name}</at>" and said in words(card)
    for shown in (on_slack.text + json.dumps(on_slack.blocks), json.dumps(on_teams.activity)):
        assert "slack:" not in shown and "aad:" not in shown
    assert slack_bob not in json.dumps(on_teams.activity) and carol_aad not in on_slack.text


async def test_a_waiting_promotion_gate_mentions_approvers_known_by_slack_id_and_never_shows_the_id(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """release-managers: carol by email and bob by his Slack id. The waiting gate @mentions both on Slack,
    counts bob among its approvers, and shows his configured id nowhere, on Slack or Teams."""
    slack_bob = "U0B0B000002"  # (the demo world's)

    def bob_by_slack_id(config: dict[str, Any]) -> None:
        config["roles"]["release-managers"]["members"] = ["carol@contoso.com", f"slack:{slack_bob}"]

    loop = await start_loop(bob_by_slack_id)
    suite = loop.suite
    assert suite.slack.world.user("bob").id == slack_bob
    suite.aml.register_model("model-x", signature=AGE_AS_TEXT)

    def waiting_gate() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if "override" in buttons(m)), None)

    gate = await eventually(waiting_gate, timeout=30)
    carol = suite.slack.world.user("carol").id
    assert gate.text.endswith(f" <@{carol}> <@{slack_bob}>")  # the text notifies them
    approvers = "*Approvers*\\ncarol@contoso.com and 1 more approver"
    assert approvers in json.dumps(gate.blocks)
    on_teams = await eventually(lambda: "Approvers" in teams_text(loop, "ML models") or None, timeout=30)
    assert on_teams
    for shown in (
        slack_text(loop, "ml-models") + gate.text,
        json.dumps([p.activity for p in teams_posts(loop, "ML models")]),
    ):
        assert "slack:" not in shown
    assert slack_bob not in json.dumps([p.activity for p in teams_posts(loop, "ML models")])


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_runs_and_status_name_a_handoff_integration_as_its_card_does(loop: Loop, platform: str) -> None:
    """The integration Handoff starts for a new version is named by its pipeline and run name in `runs` and
    `status`, as its card names it, not by its number in Azure DevOps' API."""
    loop.suite.aml.register_model("model-x", signature=AGE_AS_TEXT)
    (ado_run,) = await eventually(lambda: integration_runs(loop, "integrate-app-y"), timeout=30)
    await eventually(lambda: f"integrate-app-y {ado_run.name}" in slack_text(loop, "app-releases"), timeout=30)
    run = await command_run(loop, lambda r: r.state is not CommandRunState.REQUESTED)
    bob = Person(loop, platform, "bob", "app-releases")
    answer = await bob.say("runs app-y", "The latest runs of app-y Handoff started, newest first:")
    url, name = loop.suite.ado.links.run_web(ado_run.id), f"integrate-app-y {ado_run.name}"
    shown = f"<{url}|{name}>" if platform == "slack" else f"[{name}]({url})"
    assert f"• {run.id}: `integrate app-y model=model-x:8` by Handoff, " in answer
    assert f"Azure DevOps run {shown}, " in answer
    answer = await bob.say(f"status {run.id}", f"Run {run.id} (")
    assert f"Run {run.id} (Azure DevOps run {name}): `integrate app-y model=model-x:8` by Handoff, " in answer


@pytest.mark.parametrize(
    "rerun",
    ["integrate app-y model=model-x:8 branch=fix/age-dtype", "integrate app-y branch=fix/age-dtype"],
    ids=["named", "latest"],
)
async def test_the_fixed_integration_run_replaces_the_failed_one_and_approve_is_offered(loop: Loop, rerun: str) -> None:
    """The README's day: the integration against model-x:8 fails, bob runs it again from the fixed branch, it
    passes, and the promotion gate, the model card and the app card show the passing run. Without a version,
    the rerun is of the latest, model-x:8, and counts for it all the same."""
    suite = loop.suite
    suite.ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    as_v6 = {**AGE_AS_TEXT, "inputs": [{"name": "age", "type": "long"}, *AGE_AS_TEXT["inputs"][1:]]}
    suite.aml.register_model("model-x", signature=as_v6)  # version 8, compatible with app-y's v6

    def gate_card(showing: str) -> Any:
        return next(
            (m for m in slack_messages(loop, "ml-models") if "Promote model-x:8?" in m.text and showing in m.text),
            None,
        )

    (failed,) = await eventually(lambda: integration_runs(loop, "integrate-app-y"), timeout=30)
    blocked = await eventually(lambda: gate_card(f"integrate-app-y {failed.name}: failed"), timeout=60)
    assert "approve" not in buttons(blocked)

    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say(rerun, "Starting: Run integrate-app-y for app-y against model-x:8")
    fixed = await eventually(lambda: (runs := integration_runs(loop, "integrate-app-y"))[1:] and runs[1], timeout=30)
    passed = f"integrate-app-y {fixed.name}: passed"
    gate = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "ml-models") if m.ts == blocked.ts and passed in words(m.blocks)), None
        ),
        timeout=60,
    )
    assert buttons(gate) == ["approve", "reject"] and f"{failed.name}: failed" not in words(gate.blocks)
    for channel, card in (
        ("app-releases", "New model model-x:8 for app-y"),
        ("ml-models", "Model model-x:8 registered"),
    ):
        await eventually(
            lambda: any(card in m.text and passed in words(m.blocks) for m in slack_messages(loop, channel)),  # noqa: B023
            timeout=30,
        )


async def test_an_approved_promotion_releases_the_version_and_its_production_gate_is_decided_in_chat(
    loop: Loop,
) -> None:
    """The demo's first path: a compatible model-x:8 passes app-y's integration, carol approves its promotion,
    Handoff starts app-y's release, and the release's production gate (a run Handoff started) offers Approve in
    Slack and Teams; carol's approval from Slack is applied in Azure DevOps and the release finishes."""
    suite = loop.suite
    promotion = await approvable_promotion(loop)
    await approve_in_slack(loop, promotion, "carol", "integration passed")

    (release,) = await eventually(lambda: integration_runs(loop, "release-app-y"), timeout=30)
    assert release.requested_by.unique_name == BOT_IDENTITY  # Handoff started it
    [approval] = await eventually(lambda: suite.ado.approvals_for(release.id), timeout=30)
    gate = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "app-releases") if "Release release-app-y to production" in m.text),
            None,
        ),
        timeout=30,
    )
    gate = await eventually(lambda: "approve" in buttons(gate) and gate, timeout=30)
    assert "decide in Azure DevOps" not in words(gate.blocks)
    await eventually(
        lambda: any(
            "Release release-app-y to production" in card_text(p) and '"verb": "approve"' in card_text(p)
            for p in teams_posts(loop, "App releases")
        ),
        timeout=30,
    )

    await approve_in_slack(loop, gate, "carol", "ship model-x:8")
    await eventually(lambda: approval.status == "approved", timeout=30)
    await eventually(lambda: suite.ado.run(release.id).result == "succeeded", timeout=30)
    decided = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "app-releases") if m.ts == gate.ts and "Approved" in words(m.blocks)),
            None,
        ),
        timeout=30,
    )
    assert buttons(decided) == []


async def approvable_promotion(loop: Loop) -> Any:
    """model-x:8, compatible with app-y's v6, registered: its promotion gate's card in #ml-models once its
    integration passed and it offers Approve."""
    as_v6 = {**AGE_AS_TEXT, "inputs": [{"name": "age", "type": "long"}, *AGE_AS_TEXT["inputs"][1:]]}
    loop.suite.aml.register_model("model-x", signature=as_v6)  # version 8
    promotion = await eventually(
        lambda: next(
            (m for m in slack_messages(loop, "ml-models") if "Promote model-x:8?" in m.text and buttons(m)), None
        ),
        timeout=60,
    )
    return await eventually(lambda: "approve" in buttons(promotion) and promotion, timeout=60)


@pytest.mark.parametrize(
    "fault",
    [*LOST_ANSWERS, Fault("503")],
    ids=[*LOST_ANSWER_IDS, "503"],
)
async def test_a_release_whose_start_answer_was_lost_runs_once_and_one_never_taken_is_started_by_the_sweep(
    loop: Loop, fault: Fault
) -> None:
    """The release's start is answered with a dropped connection or a gateway's 5xx after Azure DevOps queued
    the run: the gate's card says it is not known whether it started, and the sweep finds the run and takes it
    as the release (no second run). A 503 (turned away, nothing queued): the sweep starts it."""
    suite = loop.suite
    promotion = await approvable_promotion(loop)
    suite.ado.faults.add("POST /**/pipelines/*/runs", [fault])
    await approve_in_slack(loop, promotion, "carol", "integration passed")
    acted = fault.kind == "reset_after" or fault.after_acting
    said = (
        "Azure DevOps did not say whether it started release-app-y: Handoff looks for the run there"
        if acted
        else "Azure DevOps is not answering; Handoff will start the release when it does."
    )

    def gate_card() -> Any:
        return next(m for m in slack_messages(loop, "ml-models") if m.ts == promotion.ts)

    await eventually(lambda: said in words(gate_card().blocks), timeout=30)
    assert len(integration_runs(loop, "release-app-y")) == (1 if acted else 0)

    keeper = loop.server.handoff.gatekeeper  # type: ignore[union-attr]
    await keeper.sweep()  # (every minute)
    await keeper.sweep()
    (release,) = await eventually(lambda: integration_runs(loop, "release-app-y"), timeout=30)
    assert release.template_parameters == {"modelName": "model-x", "modelVersion": "8"}
    assert release.requested_by.unique_name == BOT_IDENTITY
    # the gate's card names the run; the release's own card says which version it releases
    run = await command_run(loop, lambda r: r.backend_run_id is not None and r.command.startswith("release"))
    assert run.backend_run_id == str(release.id)
    started = f"Started release-app-y {release.name} with model-x:8 (run {run.id})."
    await eventually(lambda: started in words(gate_card().blocks), timeout=30)
    await eventually(
        lambda: any(
            m.text.split(": ", 1)[-1].startswith(f"release-app-y {release.name}")
            and "*Model*\\nmodel-x:8" in json.dumps(m.blocks)
            for m in slack_messages(loop, "app-releases")
        ),
        timeout=30,
    )
    await eventually(lambda: "approved" in suite.aml.state.models["model-x"]["8"].tags, timeout=30)
    await keeper.sweep()
    assert len(integration_runs(loop, "release-app-y")) == 1


async def test_a_release_whose_start_was_cut_off_by_a_restart_runs_once(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handoff stops while the release's start request is on its way (Azure DevOps queues the run after the process
    gave up on the answer). The restarted Handoff, once the click's claim to apply has lapsed, looks for that run
    and takes it as the release instead of starting a second one."""
    promotion = await approvable_promotion(loop)
    loop.suite.ado.faults.add("POST /**/pipelines/*/runs", [Fault("stall", stall_seconds=8)])
    await approve_in_slack(loop, promotion, "carol", "integration passed")
    await command_run(loop, lambda r: r.command.startswith("release"))
    loop = await loop.restart()
    (release,) = await eventually(lambda: integration_runs(loop, "release-app-y"), timeout=30)

    monkeypatch.setattr(bot.gates, "APPLY_LEASE", timedelta(0))  # as if its ten minutes had passed
    keeper = loop.server.handoff.gatekeeper  # type: ignore[union-attr]
    await keeper.sweep()
    await keeper.sweep()
    run = await command_run(loop, lambda r: r.backend_run_id is not None and r.command.startswith("release"))
    assert run.backend_run_id == str(release.id)
    assert len(integration_runs(loop, "release-app-y")) == 1


LOOKED_FOR = "Azure DevOps did not say whether it started release-app-y: Handoff looks for the run there"
BUILDS_LISTED = "GET /contoso/mlops/_apis/build/builds"


@pytest.mark.parametrize("found", ["at_once", "by_the_sweep"])
async def test_a_release_canceled_while_not_known_to_have_started_is_canceled_in_azure_devops_when_found(
    loop: Loop, found: str
) -> None:
    """Azure DevOps queued the release, and the answer was lost (a gateway's 502). carol cancels the release from
    chat: Handoff looks for the run that start queued and cancels it in Azure DevOps, at once or, when Azure DevOps
    cannot be asked then, at the next sweep; it never starts the release again, and the gate's cards, `runs` and
    `status` say carol canceled it. bob, who may not decide the promotion, may not cancel it."""
    suite = loop.suite
    promotion = await approvable_promotion(loop)
    suite.ado.faults.add("POST /**/pipelines/*/runs", [Fault("502", after_acting=True)])
    await approve_in_slack(loop, promotion, "carol", "integration passed")

    def gate_card() -> str:
        return words(next(m for m in slack_messages(loop, "ml-models") if m.ts == promotion.ts).blocks)

    await eventually(lambda: LOOKED_FOR in gate_card(), timeout=30)
    (queued,) = integration_runs(loop, "release-app-y")
    run = await command_run(loop, lambda r: r.command.startswith("release"))
    assert (run.state, run.backend_run_id, run.details.get("start_unknown")) == (CommandRunState.REQUESTED, None, True)

    bob = Person(loop, "slack", "bob", "app-releases")
    refused = await bob.say(f"cancel {run.id}", f"Sorry, you can't cancel run {run.id}")
    assert "Only Carol Diaz, whose approval started it, or people in release-managers may cancel it." in refused
    assert (await command_run(loop, run_id=run.id)).state is CommandRunState.REQUESTED
    assert not queued.cancel_requested.is_set()

    if found == "by_the_sweep":
        suite.ado.faults.add(BUILDS_LISTED, [Fault("503", retry_after=0)] * 4)  # (the SDK tries 4 times)
    carol = Person(loop, "slack", "carol", "app-releases")
    answer = await carol.say(f"cancel {run.id}", f"Canceled run {run.id} (`release app-y model=model-x:8`).")
    keeper = loop.server.handoff.gatekeeper  # type: ignore[union-attr]
    if found == "by_the_sweep":
        assert (
            "Handoff will not start release-app-y for it. Azure DevOps may have started it, though its answer was "
            "lost: Handoff looks for that run and cancels it if it finds it."
        ) in answer
        assert not queued.cancel_requested.is_set()
        await eventually(lambda: "Release canceled by Carol Diaz: Handoff will not start release-app-y." in gate_card())
        # asked again while Handoff still looks for the run: not "before it started", which is not known
        again = await carol.say(f"cancel {run.id}", f"Run {run.id} (`release app-y model=model-x:8`) was already")
        assert "before it started" not in again
        assert "Azure DevOps may have started it, though its answer was lost" in again
        await keeper.sweep()  # (every minute)
    else:
        assert (
            f"Azure DevOps had started it as release-app-y {queued.name}, though its answer was lost: Handoff "
            "canceled that run."
        ) in answer
    # the run the lost start queued is canceled in Azure DevOps, through the same request `cancel` sends
    assert queued.cancel_requested.is_set()
    assert [r.status for r in suite.ado.recorder.matching(f"PATCH /**/_apis/build/builds/{queued.id}")] == [200]
    await eventually(lambda: queued.result == "canceled", timeout=30)
    canceled = await command_run(loop, lambda r: r.backend_run_id is not None, run.id)
    assert (canceled.state, canceled.backend_run_id) == (CommandRunState.CANCELED, str(queued.id))
    assert canceled.details["canceled_by"]["name"] == "Carol Diaz"
    assert not {"start_unknown", "cancel_pending"} & set(canceled.details)
    said = f"Release canceled by Carol Diaz: Azure DevOps had started release-app-y {queued.name} (run {run.id}), "
    await eventually(lambda: said + "and Handoff canceled it." in gate_card(), timeout=30)
    assert "not known whether" not in gate_card().lower()
    listed = await carol.say("runs app-y", f"• {run.id}:")
    line = next(line for line in listed.split("\\n") if line.startswith(f"• {run.id}:"))
    assert "by Carol Diaz, canceled by Carol Diaz, Azure DevOps run <" in line
    assert f"|release-app-y {queued.name}>" in line
    await carol.say(f"status {run.id}", "`release app-y model=model-x:8` by Carol Diaz, canceled by Carol Diaz.")

    keeper.release_looked_for = timedelta(0)  # long after: nothing starts it again
    await keeper.sweep()
    await keeper.sweep()
    assert integration_runs(loop, "release-app-y") == [queued]
    assert "approved" not in suite.aml.state.models["model-x"]["8"].tags
    audit = await loop.server.store.list_audit()
    assert [e.outcome for e in audit if e.actor == "carol@contoso.com" and e.target.startswith("cancel")] == [
        f"canceled run {run.id} (`release app-y model=model-x:8`) before it was known to have started, asked for "
        "by Carol Diaz"
    ]


async def test_a_release_canceled_while_its_start_is_on_its_way_is_canceled_as_azure_devops_answers(
    loop: Loop,
) -> None:
    """carol cancels the release while its start request is still on its way (Azure DevOps is slow to queue it):
    the run it queues is canceled in Azure DevOps as soon as the answer comes, and taken as the canceled release."""
    suite = loop.suite
    promotion = await approvable_promotion(loop)
    suite.ado.faults.add("POST /**/pipelines/*/runs", [Fault("stall", stall_seconds=3)])
    await approve_in_slack(loop, promotion, "carol", "integration passed")
    run = await command_run(loop, lambda r: r.command.startswith("release") and bool(r.details.get("start_unknown")))
    assert integration_runs(loop, "release-app-y") == []

    carol = Person(loop, "slack", "carol", "app-releases")
    answer = await carol.say(f"cancel {run.id}", f"Canceled run {run.id} (`release app-y model=model-x:8`).")
    assert "Handoff will not start release-app-y for it." in answer
    (queued,) = await eventually(lambda: integration_runs(loop, "release-app-y"), timeout=30)
    canceled = await command_run(loop, lambda r: r.backend_run_id is not None, run.id)
    assert (canceled.state, canceled.backend_run_id) == (CommandRunState.CANCELED, str(queued.id))
    assert queued.cancel_requested.is_set()
    await eventually(lambda: queued.result == "canceled", timeout=30)

    def gate_card() -> str:
        return words(next(m for m in slack_messages(loop, "ml-models") if m.ts == promotion.ts).blocks)

    said = f"Release canceled by Carol Diaz: Azure DevOps had started release-app-y {queued.name} (run {run.id}), "
    await eventually(lambda: said + "and Handoff canceled it." in gate_card(), timeout=30)
    keeper = loop.server.handoff.gatekeeper  # type: ignore[union-attr]
    keeper.release_looked_for = timedelta(0)
    await keeper.sweep()
    assert integration_runs(loop, "release-app-y") == [queued]
    assert "approved" not in suite.aml.state.models["model-x"]["8"].tags


async def test_a_release_canceled_whose_lost_start_azure_devops_never_took_is_never_started(loop: Loop) -> None:
    """The release's start was answered with a gateway's 502 and Azure DevOps never queued it. carol cancels it
    from chat: the sweep looks for its run as long as it would have before starting it again, and then records it
    canceled, never started, instead of starting it."""
    suite = loop.suite
    promotion = await approvable_promotion(loop)
    suite.ado.faults.add("POST /**/pipelines/*/runs", [Fault("502")])
    await approve_in_slack(loop, promotion, "carol", "integration passed")

    def gate_card() -> str:
        return words(next(m for m in slack_messages(loop, "ml-models") if m.ts == promotion.ts).blocks)

    await eventually(lambda: LOOKED_FOR in gate_card(), timeout=30)
    run = await command_run(loop, lambda r: r.command.startswith("release"))
    assert run.details.get("start_unknown") and integration_runs(loop, "release-app-y") == []

    carol = Person(loop, "slack", "carol", "app-releases")
    answer = await carol.say(f"cancel {run.id}", f"Canceled run {run.id} (`release app-y model=model-x:8`).")
    assert "Handoff will not start release-app-y for it." in answer
    listed = await carol.say("runs app-y", f"• {run.id}:")
    assert "by Carol Diaz, canceled by Carol Diaz, " in listed and "not known whether it started" not in listed
    await eventually(lambda: "Release canceled by Carol Diaz: Handoff will not start release-app-y." in gate_card())
    thread = next(m for m in slack_messages(loop, "ml-models") if m.ts == promotion.ts).replies
    # its thread is told, after the approval that started it
    await eventually(lambda: [r.text for r in thread][-1:] == ["Canceled: Release canceled by Carol Diaz"])

    keeper = loop.server.handoff.gatekeeper  # type: ignore[union-attr]
    await keeper.sweep()  # still looked for: it may yet show up
    assert integration_runs(loop, "release-app-y") == []
    keeper.release_looked_for = timedelta(0)  # as if its two minutes had passed
    await keeper.sweep()
    await keeper.sweep()
    assert integration_runs(loop, "release-app-y") == []  # never started
    ended = await command_run(loop, lambda r: "start_unknown" not in r.details, run.id)
    assert (ended.state, ended.backend_run_id) == (CommandRunState.CANCELED, None)
    never = f"Release canceled by Carol Diaz before it started: Handoff did not start release-app-y (run {run.id})."
    await eventually(lambda: never in gate_card(), timeout=30)
    listed = await carol.say("runs app-y", f"• {run.id}:")
    assert "by Carol Diaz, canceled by Carol Diaz, not started" in listed
    again = await carol.say(f"cancel {run.id}", f"Run {run.id} (")
    assert "was already canceled by Carol Diaz, before it started; Handoff does not start it." in again
    assert "approved" not in suite.aml.state.models["model-x"]["8"].tags


# --- the integration the handoff started, followed whatever Handoff missed ----------------------------------


def without_promotion_gate(config: dict[str, Any]) -> None:
    """A ``tweak``: model-x has no promotion gate, so no gate waits for app-y's integration."""
    del config["models"]["model-x"]["promotion_gate"]


def top_level(loop: Loop, channel: str, title: str) -> Any:
    """The top-level message of ``channel`` whose text starts with ``title``."""
    return next((m for m in slack_messages(loop, channel) if not m.thread_ts and m.text.startswith(title)), None)


async def _failing_integration(loop: Loop, integration_seconds: float) -> Any:
    """model-x:8 registered; app-y's integration of it, which fails in Integration tests after
    ``integration_seconds``, started by Handoff and recorded as started."""
    loop.suite.ado.script_next_run(
        "integrate-app-y", fail_stage="Integration tests", durations={"Integration tests": integration_seconds}
    )
    loop.suite.aml.register_model("model-x", signature=AGE_AS_TEXT)
    (run,) = await eventually(lambda: integration_runs(loop, "integrate-app-y"), timeout=30)
    await command_run(loop, lambda r: r.state is CommandRunState.STARTED)
    return run


async def _outcome_told_once(loop: Loop, run: Any, handoff_run: int) -> None:
    """The failed integration ended its command run and shows on the app's and the model's cards, the model
    card's thread told once, the run's own card failed and its thread told once."""
    await command_run(loop, lambda r: r.state is CommandRunState.FAILED, handoff_run)
    failed = f"integrate-app-y {run.name}: failed at Integration tests"
    app_card = await eventually(lambda: top_level(loop, "app-releases", "Failed: New model model-x:8 for app-y"))
    await eventually(lambda: failed in words(app_card.blocks))
    model_card = await eventually(lambda: top_level(loop, "ml-models", "Warning: Model model-x:8 registered"))
    await eventually(lambda: failed in words(model_card.blocks))
    run_card = await eventually(lambda: top_level(loop, "app-releases", f"Failed: integrate-app-y {run.name}"))
    await asyncio.sleep(1.5)  # let coalesced updates and any late reply land
    told = [r.text for r in model_card.replies if "integration against model-x:8" in r.text]
    assert len(told) == 1 and told[0].startswith(f"Failed: app-y integration against model-x:8: {failed}")
    assert len(run_card.replies) == 1 and "failed in stage Integration tests" in run_card.replies[0].text
    # the run's own card tells the failure in #app-releases; the handoff card there tells no one again
    assert app_card.replies == []


async def test_an_integration_that_ended_while_handoff_was_down_is_polled_and_told_once_after_the_restart(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(without_promotion_gate)
    run = await _failing_integration(loop, integration_seconds=2)
    handoff_run = await command_run(loop, lambda r: r.state is CommandRunState.STARTED)

    async def ends_unseen() -> None:
        await eventually(lambda: run.done, timeout=30)

    loop = await loop.restart(ends_unseen)
    await _outcome_told_once(loop, run, handoff_run.id or 0)
    # the next sweep finds it ended and tells nothing again
    assert loop.server.handoff is not None and loop.server.handoff.model_handoff is not None
    await loop.server.handoff.model_handoff.sweep()
    await _outcome_told_once(loop, run, handoff_run.id or 0)


async def test_azure_devops_ending_the_integration_the_handoff_started_ends_it_once_before_any_poll(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(without_promotion_gate)
    assert loop.server.handoff is not None and loop.server.handoff.model_handoff is not None
    handoff = loop.server.handoff.model_handoff
    handoff.poll_interval = 3600  # only Azure DevOps' event can tell the run ended
    run = await _failing_integration(loop, integration_seconds=0.5)
    handoff_run = await command_run(loop, lambda r: r.state is CommandRunState.STARTED)
    await _outcome_told_once(loop, run, handoff_run.id or 0)
    # a poll after the event changes nothing
    await handoff.sweep()
    await _outcome_told_once(loop, run, handoff_run.id or 0)
