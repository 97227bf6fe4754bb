"""Commands typed in Slack and Teams, against the emulators (issue: commands that start work).

Every command answers the person on both platforms; policy refuses politely, confirmation can be
accepted, declined or left to expire, the same command twice starts one run, the answer comes at once
while Azure ML is stalled, and a run's card follows it to its end: a new model version, a failed stage,
a cancellation.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from adapters.emulators.azure_devops.errors import internal_error
from adapters.emulators.base import Fault
from bot.events import StageStateChanged
from bot.ingest import SUBSCRIPTION_CACHE_SECONDS
from bot.records import CommandRun, CommandRunState, ConversationAddress, DeliveryState, GateState
from bot.routing import DEFAULT_FILTERS, Filters, Subscription
from bot.runner import REFUSED_POLLS, job_name
from bot.stored_events import event_from_json
from tests.e2e.conftest import (
    TEAMS_CHANNELS,
    Loop,
    Person,
    blocks_text,
    card_text,
    command_run,
    eventually,
    is_running,
    production_approved_by_a_group,
    slack_messages,
    teams_message_text,
    teams_posts,
)

ALICE, BOB = "U0A11CE0001", "U0B0B000002"


def ephemerals(loop: Loop, user: str) -> list[Any]:
    return list(loop.suite.slack.state.ephemeral_for(user))


def ephemeral_text(loop: Loop, ts: str) -> str:
    """What Alice's private message ``ts`` says now (Handoff replaces it in place)."""
    return next((m.text for m in ephemerals(loop, ALICE) if m.ts == ts), "")


def button(message: Any, action_id: str) -> dict[str, Any] | None:
    for block in message.blocks or []:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    return None


async def confirmation(loop: Loop, user: str) -> tuple[Any, dict[str, Any]]:
    def found() -> tuple[Any, dict[str, Any]] | None:
        for message in reversed(ephemerals(loop, user)):
            if (confirm := button(message, "confirm")) is not None:
                return message, confirm
        return None

    return await eventually(found)


def jobs(loop: Loop) -> list[Any]:
    return loop.suite.aml.recorder.matching("PUT /subscriptions/**/jobs/*")


async def test_retrain_is_for_data_scientists_and_asks_first(loop: Loop) -> None:
    slack = loop.suite.slack
    answer = await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="bob")
    assert answer.status == 200
    refusal = await eventually(lambda: next((m for m in ephemerals(loop, BOB) if "data-scientists" in m.text), None))
    assert "can't run that" in refusal.text

    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    assert "Confirm" in json.dumps(message.blocks) and "train-model-x" in json.dumps(message.blocks)
    await slack.click_button(message.ts, "decline", user="alice", value=button(message, "decline")["value"])  # type: ignore[index]
    await eventually(lambda: any("Canceled" in json.dumps(m.blocks) + m.text for m in ephemerals(loop, ALICE)))
    await asyncio.sleep(1)
    assert jobs(loop) == []  # nothing started
    assert confirm["value"]
    # a confirmation is no run: `runs` does not list it
    await Person(loop, "slack", "alice", "ml-models").say("runs", "Handoff has started no runs yet.")


async def test_an_expired_confirmation_starts_nothing(start_loop: Callable[..., Awaitable[Loop]]) -> None:
    loop = await start_loop(lambda config: config["commands"]["retrain"].update(confirm_expires="1s"))
    slack = loop.suite.slack
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    await asyncio.sleep(1.2)
    await slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"])
    await eventually(lambda: any("expired" in m.text for m in ephemerals(loop, ALICE)))
    assert jobs(loop) == []


async def test_confirmed_retrain_is_acknowledged_while_azure_ml_stalls_then_runs(loop: Loop) -> None:
    slack = loop.suite.slack
    loop.suite.aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault("stall", stall_seconds=4)])
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    clicked = await slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"])
    assert clicked.status == 200
    # the answer came while Azure ML was still holding the job submission
    assert [r.status for r in jobs(loop)] in ([], [None])
    await eventually(lambda: any("Confirmed" in m.text for m in ephemerals(loop, ALICE)))
    card = await eventually(
        lambda: next((m for m in slack_messages(loop, "ml-models") if "Training run" in m.text), None), timeout=60
    )
    await eventually(lambda: "Succeeded" in card.text, timeout=60)
    assert len([r for r in jobs(loop) if r.status in (200, 201)]) == 1


async def test_the_same_integrate_twice_starts_one_run(loop: Loop) -> None:
    slack = loop.suite.slack
    await asyncio.gather(
        slack.send_slash_command("/integrate", "app-y model=model-x:7", channel="app-releases", user="bob"),
        slack.send_slash_command("/integrate", "app-y model=model-x:7", channel="app-releases", user="bob"),
    )
    await eventually(lambda: any("already asked" in m.text for m in ephemerals(loop, BOB)))
    await eventually(lambda: len(loop.suite.ado.runs) == 1)
    await asyncio.sleep(1)
    (run,) = loop.suite.ado.runs
    assert run.pipeline.name == "integrate-app-y"
    assert run.template_parameters["modelVersion"] == "7"


async def test_the_same_integrate_twice_starts_one_run_when_slack_says_who_asked_only_once(loop: Loop) -> None:
    slack = loop.suite.slack
    slack.faults.add("* /api/users.info", [Fault("500")])  # the first command's lookup fails: no email
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting: Run")
    first = await command_run(loop)
    answer = await bob.say("integrate app-y model=model-x:7", "You already asked for this")
    assert f"(run {first.id})" in answer
    await command_run(loop, is_running, first.id)
    await asyncio.sleep(0.5)
    assert len(loop.suite.ado.runs) == 1
    assert next(r.status for r in slack.recorder.matching("* /api/users.info")) == 500
    # the run is his, however Slack named him when he asked (it may have ended already: the world is fast)
    answer = await bob.say(f"cancel {first.id}", f"{first.id} (`integrate app-y model=model-x:7`")
    assert "can't cancel" not in answer


async def test_a_mute_until_a_time_of_day_is_read_in_utc_and_says_so_when_slack_does_not_say_who_asked(
    loop: Loop,
) -> None:
    loop.suite.slack.faults.add("* /api/users.info", [Fault("500")] * 10)  # no time zone: Slack did not answer
    bob = Person(loop, "slack", "bob", "app-releases")
    number = await subscription_id(bob)
    answer = await bob.say(f"mute {number} until=17:00", f"Muted subscription {number} until")
    five = datetime.now(UTC).replace(hour=17, minute=0, second=0, microsecond=0)
    five += timedelta(days=1) if five <= datetime.now(UTC) else timedelta(0)
    [stored] = await loop.server.store.list_subscriptions()
    assert stored.muted_until in (five, five + timedelta(days=1))  # (17:00 may have passed meanwhile)
    assert f"until {stored.muted_until:%Y-%m-%d} 17:00 UTC." in answer
    assert "Handoff does not know your time zone, so it read `17:00` in UTC." in answer
    # a time with its offset needs no time zone: nothing to say
    answer = await bob.say(f"mute {number} until={five:%Y-%m-%dT%H:%M}Z", f"Muted subscription {number} until")
    assert "time zone" not in answer


async def test_a_confirmation_is_confirmed_by_who_asked_when_slack_said_who_they_are_only_at_the_click(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    def alice_by_her_slack_id(config: dict[str, Any]) -> None:
        config["roles"]["data-scientists"]["members"].append(f"slack:{ALICE}")  # (she may retrain without email)

    loop = await start_loop(alice_by_her_slack_id)
    slack = loop.suite.slack
    slack.faults.add("* /api/users.info", [Fault("500")])
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    await slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"])
    run = await command_run(loop, is_running)
    assert run.command == "retrain model-x" and len(jobs(loop)) == 1


async def confirm_retrain(loop: Loop, text: str = "model-x") -> Any:
    """Alice's `/retrain <text>` in ml-models, confirmed; the confirmation once it no longer asks."""
    slack = loop.suite.slack
    await slack.send_slash_command("/retrain", text, channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    await slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"])
    return await eventually(
        lambda: next((m for m in ephemerals(loop, ALICE) if m.ts == message.ts and not button(m, "confirm")), None)
    )


async def test_a_confirmed_retrain_is_one_run_under_its_confirmations_number_to_its_end(loop: Loop) -> None:
    loop.suite.aml.script_next_job(duration=0.5)
    slack, store = loop.suite.slack, loop.server.store
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    number = int(json.loads(confirm["value"])["v"]["run"])  # the number the Confirm button carries
    # a double click: one run, under that number
    clicks = [slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"]) for _ in range(2)]
    assert [c.status for c in await asyncio.gather(*clicks)] == [200, 200]
    confirmed = await eventually(
        lambda: next((m for m in ephemerals(loop, ALICE) if m.ts == message.ts and not button(m, "confirm")), None)
    )
    await eventually(lambda: "Started: Retrain model-x" in ephemeral_text(loop, confirmed.ts))
    assert f"(run {number}). Run {number} runs as Azure ML job" in ephemeral_text(loop, confirmed.ts)
    run = await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED, number)
    assert run.backend_run_id == job_name("model-x", run)
    # no other retrain was recorded, and none is left unfinished (the new version's integration is a run of
    # its own, started by the model handoff)
    assert [r.id for r in await store.list_command_runs() if r.command == "retrain model-x"] == [number]
    unfinished = await store.unfinished_command_runs(datetime.now(UTC) - timedelta(hours=1))
    assert [r for r in unfinished if r.command == "retrain model-x"] == []
    # status, runs and cancel tell the truth about it, by that number
    alice = Person(loop, "slack", "alice", "ml-models")
    answer = await alice.say(f"status {number}", f"Run {number} (")
    assert f"Run {number} (Azure ML job {run.backend_run_id}): `retrain model-x` by Alice Martin, succeeded." in answer
    answer = await alice.say("runs", "newest first")
    assert f"• {number}: `retrain model-x` by Alice Martin, succeeded, Azure ML job " in answer
    assert set(re.findall(r"• (\d+): `retrain model-x`", answer)) == {str(number)}
    answer = await alice.say(f"cancel {number}", f"Run {number} (")
    assert (
        f"Run {number} (`retrain model-x`, Azure ML job {run.backend_run_id}) is no longer running (succeeded)."
        in answer
    )
    assert [r.status for r in jobs(loop)] == [201]  # the double click submitted one job


async def test_the_audit_log_says_who_started_what_and_how_its_start_went(loop: Loop) -> None:
    store = loop.server.store

    async def said(target: str, outcome: str) -> list[str]:
        def found() -> list[str] | None:
            entries = [f"{e.actor} {e.platform}: {e.outcome}" for e in audited if e.target == target]
            return entries if any(outcome in e for e in entries) else None

        for _ in range(100):
            audited = [e for e in await store.list_audit() if e.action == "command"]
            if (entries := found()) is not None:
                return entries
            await asyncio.sleep(0.1)
        raise AssertionError(f"no audit entry of {target} saying {outcome}: {audited}")

    await confirm_retrain(loop)
    retrain = await command_run(loop, lambda r: r.backend_run_id is not None)
    assert await said("retrain model-x", "started run") == [
        f"alice@contoso.com slack: asked to confirm (run {retrain.id})",
        f"alice@contoso.com slack: confirmed run {retrain.id}",
        f"alice@contoso.com slack: started run {retrain.id} as Azure ML job {retrain.backend_run_id}",
    ]
    await confirm_retrain(loop, "model-x compute=cpu-small")
    refused = await said("retrain model-x compute=cpu-small", "could not start")
    assert refused[-1].endswith("could not start: Azure ML refused the job: The workspace has no compute cpu-small.")

    bob = Person(loop, "teams", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting:")
    integrate = await command_run(loop, lambda r: r.backend_run_id is not None and r.command.startswith("integrate"))
    assert await said("integrate app-y model=model-x:7", "started run") == [
        f"bob@contoso.com teams: asked for run {integrate.id}",
        f"bob@contoso.com teams: started run {integrate.id} as Azure DevOps run integrate-app-y "
        f"{integrate.details['name']}",
    ]
    await bob.say("integrate app-y model=model-x:99", "nothing was started")
    assert await said("integrate app-y model=model-x:99", "not started") == [
        "bob@contoso.com teams: not started: model-x has no version 99 in Azure ML, so nothing was started."
    ]


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_an_integration_does_not_wait_for_an_azure_ml_that_stopped_answering(loop: Loop, platform: str) -> None:
    runner = loop.server.handoff.runner
    assert runner is not None
    runner.lookup_seconds = 1.0  # (8 s by default)
    # Azure ML takes the request for the version's check and never answers (its SDK would wait minutes)
    stalled = [Fault("stall", stall_seconds=30)] * 4
    loop.suite.aml.faults.add("GET /subscriptions/**/models/model-x/versions/*", stalled)
    bob = Person(loop, platform, "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting:")  # the registry being down holds nothing up
    integrate = await command_run(loop, lambda r: r.backend_run_id is not None and r.command.startswith("integrate"))
    assert integrate.details["name"]
    assert len(loop.suite.ado.runs) == 1


async def test_the_same_retrain_once_its_run_succeeded_starts_a_new_run(loop: Loop) -> None:
    loop.suite.aml.script_next_job(duration=0.5)
    confirmed = await confirm_retrain(loop)
    await eventually(lambda: "Started: Retrain model-x" in ephemeral_text(loop, confirmed.ts))
    first = await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED)

    confirmed = await confirm_retrain(loop)
    await eventually(lambda: "Started: Retrain model-x" in ephemeral_text(loop, confirmed.ts))
    assert "already asked" not in ephemeral_text(loop, confirmed.ts)
    second = await command_run(loop, is_running)
    assert second.id != first.id and second.backend_run_id != first.backend_run_id
    assert [r.status for r in jobs(loop)] == [201, 201]
    assert not any("already asked" in m.text for m in ephemerals(loop, ALICE))


async def test_the_same_retrain_once_azure_ml_refused_it_asks_azure_ml_again(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x compute=cpu-small", "Starting: Retrain model-x")
    first = await command_run(loop, lambda r: r.state is CommandRunState.FAILED)
    assert first.backend_run_id is None  # never started

    await alice.say("retrain model-x compute=cpu-small", "Starting: Retrain model-x")
    second = await command_run(loop, lambda r: r.state is CommandRunState.FAILED and r.id != first.id)
    assert [r.status for r in jobs(loop)] == [400, 400]
    assert second.id != first.id


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_cancel_of_a_run_that_has_not_started_says_why_there_is_nothing_to_cancel(
    start_loop: Callable[..., Awaitable[Loop]], platform: str
) -> None:
    loop = await start_loop(no_confirmation)
    alice = Person(loop, platform, "alice", "ml-models")
    await alice.say("retrain model-x compute=cpu-small", "Starting: Retrain model-x")
    refused = await command_run(loop, lambda r: r.state is CommandRunState.FAILED)
    answer = await alice.say(f"cancel {refused.id}", f"Run {refused.id} (")
    assert (
        f"Run {refused.id} (`retrain model-x compute=cpu-small`) did not start, so there is nothing to cancel. "
        "Azure ML refused the job: The workspace has no compute cpu-small."
    ) in answer
    assert "started no run" not in answer

    loop.suite.aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault("stall", stall_seconds=3)])
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    starting = await command_run(loop, lambda r: r.state is CommandRunState.REQUESTED)
    answer = await alice.say(f"cancel {starting.id}", f"Run {starting.id} (")
    assert "is still starting, so there is nothing to cancel yet. Ask again in a moment." in answer
    await command_run(loop, is_running, starting.id)
    assert [r.status for r in jobs(loop)][-1] == 201  # the start went on
    await alice.say(f"cancel {(starting.id or 0) + 1}", f"Handoff started no run {(starting.id or 0) + 1}.")


async def test_the_same_retrain_while_its_run_starts_or_runs_says_how_it_stands_and_where(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    aml = loop.suite.aml
    aml.script_next_job(duration=120)
    aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault("stall", stall_seconds=3)])
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop)
    answer = await alice.say("retrain model-x", "You already asked for this")
    assert f"it is still starting (run {run.id}). Its card will follow in this channel." in answer

    run = await command_run(loop, is_running, run.id)
    answer = await alice.say("retrain model-x", "You already asked for this")
    assert f"it is running as {run.backend_run_id} (run {run.id}). Its card is in this channel." in answer
    # asked in another conversation: the card is not there, the run is named so that `status` finds it
    answer = await Person(loop, "teams", "alice", "ml-models").say("retrain model-x", "You already asked for this")
    assert f"it is running as {run.backend_run_id} (run {run.id}). `status {run.id}` shows how it stands." in answer
    assert "Its card" not in answer
    assert len(jobs(loop)) == 1


async def confirmation_face(loop: Loop, place: str, text: str) -> Callable[[], str]:
    """Alice types ``text`` in ``place`` (Slack's ml-models, Teams' ML models, her Teams personal chat) and
    clicks Confirm; what her confirmation shows from then on."""
    if place == "slack":
        message = await confirm_retrain(loop, text.removeprefix("retrain "))
        return lambda: html.unescape(
            blocks_text(next(m for m in ephemerals(loop, ALICE) if m.ts == message.ts)).replace("\\/", "/")
        )
    teams = loop.suite.teams
    if place == "teams channel":
        sent = await teams.send_channel_message(text, channel="ML models", user="alice")
        channel = teams.state.channel("ML models")

        def posts() -> list[Any]:  # the command's thread
            return list(next(p for p in channel.posts if p.id == sent.activity["id"]).replies)
    else:
        await teams.send_personal_message(text, user="alice")
        chat = teams.world.user("alice").personal_conversation_id

        def posts() -> list[Any]:
            return list(teams.state.conversations[chat].posts)

    post = await eventually(lambda: next((p for p in posts() if '"verb": "confirm"' in card_text(p)), None))
    data = re.search(r'"verb": "confirm", "data": (\{[^{}]*\})', card_text(post))
    assert data is not None
    clicked = await teams.click_action(post.id, "confirm", json.loads(data.group(1)), user="alice")
    assert clicked.status == 200 and "Confirmed" in json.dumps(clicked.body)
    return lambda: card_text(post)


@pytest.mark.parametrize("place", ["slack", "teams channel", "teams personal chat"])
async def test_a_confirmation_reads_started_with_its_run_once_the_run_started_and_stays_so_once_it_ended(
    loop: Loop, place: str
) -> None:
    loop.suite.aml.script_next_job(duration=0.5)
    shown = await confirmation_face(loop, place, "retrain model-x")
    await eventually(lambda: "Started: Retrain model-x with the Azure ML job train-model-x" in shown())
    [retrain] = [r for r in await loop.server.store.list_command_runs() if r.command == "retrain model-x"]
    run = await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED, retrain.id)
    await asyncio.sleep(1.5)  # (the job's own card has said Succeeded by now; nothing changes the confirmation)
    face = shown()
    where = "chat" if place == "teams personal chat" else "channel"
    # settled: which run it is, what runs it (linked) and where its card is; no status that goes stale
    assert f"Started: Retrain model-x with the Azure ML job train-model-x (run {run.id})" in face
    assert f"Run {run.id} runs as Azure ML job {run.backend_run_id}. Its card, in this {where}, shows how" in face
    assert str(run.details["url"]) in face
    assert "Running" not in face and "Confirmed" not in face and "Starting:" not in face


async def test_a_confirmed_retrain_azure_ml_refuses_turns_its_confirmation_card_failed(loop: Loop) -> None:
    confirmed = await confirm_retrain(loop, "model-x compute=cpu-small")
    card = await eventually(lambda: next((m for m in ephemerals(loop, ALICE) if m.ts == confirmed.ts), None))
    await eventually(lambda: "Could not start" in blocks_text(card))
    shown = html.unescape(blocks_text(card))
    assert "Failed" in shown and "Confirmed" not in shown
    assert "Azure ML refused the job: The workspace has no compute cpu-small." in shown
    assert "Code:" not in shown and "Message:" not in shown and "(UserError)" not in shown
    failed = await command_run(loop, lambda r: r.state is CommandRunState.FAILED)
    assert failed.details["error"] == "Azure ML refused the job: The workspace has no compute cpu-small."
    await asyncio.sleep(1)  # (the outbox would have posted by now)
    assert not [m for m in slack_messages(loop, "ml-models") if "Could not start" in m.text]  # no second post


async def test_a_confirmed_integrate_azure_devops_refuses_turns_its_teams_confirmation_card_failed(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    def refused_parameter(config: dict[str, Any]) -> None:
        config["commands"]["integrate"] = {"confirm": True}
        config["apps"]["app-y"]["integration"]["parameters"] = {"testSuite": "full"}  # no such parameter

    loop = await start_loop(refused_parameter)
    teams = loop.suite.teams
    sent = await teams.send_channel_message("integrate app-y model=model-x:7", channel="App releases", user="bob")
    thread = next(p for p in teams.state.channel("App releases").posts if p.id == sent.activity["id"])

    def confirmation_post() -> Any:
        return next((r for r in thread.replies if '"verb": "confirm"' in card_text(r)), None)

    post = await eventually(confirmation_post)
    data = re.search(r'"verb": "confirm", "data": (\{[^{}]*\})', card_text(post))
    assert data is not None
    clicked = await teams.click_action(post.id, "confirm", json.loads(data.group(1)), user="bob")
    assert clicked.status == 200 and "Confirmed" in json.dumps(clicked.body)
    await eventually(lambda: "Could not start" in card_text(post))
    shown = card_text(post)
    assert "Confirmed" not in shown
    assert "Azure DevOps refused to run integrate-app-y: " in shown and "Unexpected parameter 'testSuite'" in shown
    assert loop.suite.ado.runs == []
    await asyncio.sleep(1)
    assert not [p for p in teams_posts(loop, "App releases") if "Could not start" in card_text(p)]


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_integrate_against_a_version_azure_ml_does_not_have_starts_nothing(loop: Loop, platform: str) -> None:
    assert sorted(loop.suite.aml.state.models["model-x"]) == ["6", "7"]
    answer = await Person(loop, platform, "bob", "app-releases").say("integrate app-y model=model-x:99", "model-x")
    assert "model-x has no version 99 in Azure ML, so nothing was started." in answer
    assert "consumes" not in answer  # app-y does consume model-x
    # a model the app does not consume is said first: a mistyped model name, more likely than a missing version
    answer = await Person(loop, platform, "bob", "app-releases").say("integrate app-y model=model-q:1", "model-q")
    assert "app-y consumes model-x, not model-q; model-q has no version 1 in Azure ML, so nothing was started." in (
        answer
    )
    await asyncio.sleep(0.5)
    assert loop.suite.ado.runs == []
    assert await loop.server.store.list_command_runs() == []


def a_model_azure_ml_does_not_have(config: dict[str, Any]) -> None:
    config["models"]["fraud-detector"] = {}


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_model_or_version_azure_ml_does_not_have_is_named_in_the_answer_and_starts_nothing(
    start_loop: Callable[..., Awaitable[Loop]], platform: str
) -> None:
    loop = await start_loop(a_model_azure_ml_does_not_have)
    assert "fraud-detector" not in loop.suite.aml.state.models
    assert sorted(loop.suite.aml.state.models["model-x"]) == ["6", "7"]
    alice = Person(loop, platform, "alice", "ml-models")
    for text, answer in [
        ("status fraud-detector", "Azure ML has no model fraud-detector."),
        ("diff fraud-detector:4 fraud-detector:5", "Azure ML has no model fraud-detector."),
        ("diff model-x:7 model-x:9", "Azure ML has no version 9 of model model-x; its latest is 7."),
    ]:
        assert answer in await alice.say(text, "Azure ML"), text
    await asyncio.sleep(0.5)
    assert jobs(loop) == []
    assert loop.suite.ado.runs == []
    assert await loop.server.store.list_command_runs() == []


async def test_a_name_typed_in_capitals_or_with_a_typographic_hyphen_is_the_configured_one(loop: Loop) -> None:
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate APP-Y model=model-x:7", "Starting: Run integrate-app-y for app-y against model-x:7")
    first = await command_run(loop)
    assert first.command == "integrate app-y model=model-x:7"  # recorded as configured: one key for both spellings
    # the same command with a non-breaking hyphen (a phone's autocorrect) is the run already asked for
    answer = await bob.say("integrate app\u2011y model=model-x:7", "You already asked for this")
    assert f"(run {first.id})" in answer
    await eventually(lambda: len(loop.suite.ado.runs) == 1)
    assert loop.suite.ado.runs[0].pipeline.name == "integrate-app-y"
    answer = await bob.say("status MODEL\u2013X", "model-x")
    assert "There is no model called" not in answer
    # a name close to none as typed is told what it may have meant, and starts nothing
    answer = await bob.say("integrate app-z", "There is no app called `app-z`.")
    assert "Did you mean `app-y`?" in answer
    alice = Person(loop, "slack", "alice", "ml-models")
    answer = await alice.say("retrain modle-x", "There is no retraining set up for `modle-x`.")
    assert "Did you mean `model-x`?" in answer
    await asyncio.sleep(0.5)
    assert len(loop.suite.ado.runs) == 1
    assert len(await loop.server.store.list_command_runs()) == 1


async def test_integrate_starts_as_asked_when_azure_ml_does_not_answer(loop: Loop) -> None:
    aml = loop.suite.aml
    aml.faults.add("GET /subscriptions/**/models/model-x/versions/99", [Fault("503", retry_after=0)] * 10)
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:99", "Starting: Run integrate-app-y for app-y against model-x:99")
    await eventually(lambda: len(loop.suite.ado.runs) == 1)
    assert loop.suite.ado.runs[0].template_parameters["modelVersion"] == "99"
    asked = aml.recorder.matching("GET /subscriptions/**/models/model-x/versions/99")
    assert asked and all(r.status == 503 for r in asked)


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_integrate_without_a_version_runs_the_version_azure_ml_calls_latest_and_names_it(
    loop: Loop, platform: str
) -> None:
    assert sorted(loop.suite.aml.state.models["model-x"]) == ["6", "7"]
    answer = await Person(loop, platform, "bob", "app-releases").say("integrate app-y", "Starting:")
    assert "Starting: Run integrate-app-y for app-y against model-x:7." in answer
    # Azure DevOps was asked for that version, not for its pipeline's default
    await eventually(lambda: len(loop.suite.ado.runs) == 1)
    parameters = loop.suite.ado.runs[0].template_parameters
    assert (parameters["modelName"], parameters["modelVersion"]) == ("model-x", "7")
    # the store keeps the run as the command for that version: `runs`, `cancel` and a restart see it
    run = await command_run(loop, is_running)
    assert run.command == "integrate app-y model=model-x:7"

    def run_card() -> str:
        if platform == "slack":
            return "".join(blocks_text(m) for m in slack_messages(loop, "app-releases") if "integrate-app-y" in m.text)
        return "".join(card_text(p) for p in teams_posts(loop, "App releases") if "integrate-app-y" in card_text(p))

    await eventually(lambda: "model-x:7" in run_card())
    assert "latest" not in run_card()


@pytest.mark.parametrize("model", ["", " model=model-x:latest"])
async def test_integrate_without_a_version_reads_the_registry_once_and_not_the_signature(
    loop: Loop, model: str
) -> None:
    """Which version is the latest is one read of the model's versions: neither its MLmodel file (the signature)
    nor a second read of whether Azure ML has the version it just named."""
    aml = loop.suite.aml
    aml.recorder.clear()
    answer = await Person(loop, "slack", "bob", "app-releases").say(f"integrate app-y{model}", "Starting:")
    assert "Starting: Run integrate-app-y for app-y against model-x:7." in answer
    read = [f"{r.method} {r.path}" for r in aml.recorder.requests]
    assert [r for r in read if "/models/" in r] == [
        "GET " + next(r.path for r in aml.recorder.matching("GET /subscriptions/**/models/model-x/versions"))
    ]
    assert aml.recorder.matching("/blob/**") == []


@pytest.mark.parametrize("model", ["", " model=model-x:latest"])
async def test_integrate_without_a_version_starts_nothing_when_azure_ml_does_not_say_which_is_latest(
    loop: Loop, model: str
) -> None:
    aml = loop.suite.aml
    for path in ("GET /subscriptions/**/models/model-x", "GET /subscriptions/**/models/model-x/**"):
        aml.faults.add(path, [Fault("503", retry_after=0)] * 20)
    answer = await Person(loop, "slack", "bob", "app-releases").say(f"integrate app-y{model}", "Azure ML did not")
    assert "Azure ML did not say which version of model-x is the latest (" in answer
    assert "so nothing was started. Name the version, for example `integrate app-y model=model-x:<version>`." in answer
    await asyncio.sleep(0.5)
    assert loop.suite.ado.runs == []
    assert await loop.server.store.list_command_runs() == []


async def test_subscribe_and_mute_in_a_teams_channel_answer_in_the_commands_thread(loop: Loop) -> None:
    teams = loop.suite.teams
    channel = teams.state.channel("ML models")

    async def answered(text: str, expect: str) -> None:
        before = {p.id for p in channel.posts}
        sent = await teams.send_channel_message(text, channel=channel.name, user="alice")
        root = sent.activity["id"]
        thread = next(p for p in channel.posts if p.id == root)
        await eventually(lambda: any(expect in teams_message_text(r) for r in thread.replies if r.by_bot))
        await asyncio.sleep(0.5)
        assert [p.id for p in channel.posts if p.id not in before] == [root]  # no post of its own

    await answered("subscribe events=run outcomes=failed", "Subscribed this channel (subscription")
    [subscription] = await loop.server.store.list_subscriptions()
    await answered(f"mute {subscription.id} for=4h", f"Muted subscription {subscription.id} until")
    await answered(f"unmute {subscription.id}", f"Unmuted subscription {subscription.id}.")
    await answered(f"unsubscribe {subscription.id}", f"Removed subscription {subscription.id}.")


async def test_integrate_from_teams_runs_and_its_card_follows_in_the_channel(loop: Loop) -> None:
    teams = loop.suite.teams
    reply = await teams.send_channel_message("integrate app-y model=model-x:7", channel="App releases", user="carol")
    assert reply.status in (200, 201)
    await eventually(lambda: len(loop.suite.ado.runs) == 1)
    run = loop.suite.ado.runs[0]
    await eventually(lambda: run.state == "completed", timeout=30)
    await eventually(
        lambda: any(
            "integrate-app-y" in card_text(p) and "Succeeded" in card_text(p) for p in teams_posts(loop, "App releases")
        )
    )


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_the_answer_to_integrate_reads_started_with_its_run_once_the_run_started(
    loop: Loop, platform: str
) -> None:
    """As a confirmed retrain's confirmation does: the answer names the Azure DevOps run (linked) once it started."""
    before = {m.ts for m in slack_messages(loop, "app-releases")}
    if platform == "slack":
        await loop.suite.slack.send_slash_command(
            "/integrate", "app-y model=model-x:7", channel="app-releases", user="bob"
        )

        def answer() -> str:
            found = [
                m for m in slack_messages(loop, "app-releases") if m.ts not in before and "asked" in blocks_text(m)
            ]
            return blocks_text(found[0]) if found else ""

    else:
        channel = loop.suite.teams.state.channel("App releases")
        sent = await loop.suite.teams.send_channel_message("integrate app-y model=model-x:7", channel=channel.name)
        thread = next(p for p in channel.posts if p.id == sent.activity["id"])

        def answer() -> str:
            return card_text(thread.replies[0]) if thread.replies else ""

    await eventually(lambda: "Starting: Run integrate-app-y" in answer() or "Started:" in answer())
    run = await command_run(loop, lambda r: r.backend_run_id is not None)
    await eventually(lambda: "Started: Run integrate-app-y for app-y against model-x:7" in answer())
    shown = html.unescape(answer())
    assert f"Run {run.id} runs as Azure DevOps run integrate-app-y {run.details['name']}." in shown
    assert str(run.details["url"]) in shown
    assert "Starting:" not in shown


async def test_a_teams_commands_thread_says_truly_where_the_runs_card_follows(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """A run's card is a post of its own in the channel (its thread carries the run's failure and who canceled
    it, and Teams has no thread in a thread): the command's thread says the card follows in this channel."""
    loop = await start_loop(lambda config: config["commands"].update(integrate={"confirm": True}))
    teams = loop.suite.teams
    channel = teams.state.channel("App releases")
    before = {p.id for p in channel.posts}
    sent = await teams.send_channel_message("integrate app-y model=model-x:7", channel=channel.name, user="bob")
    thread = next(p for p in channel.posts if p.id == sent.activity["id"])
    post = await eventually(lambda: next((r for r in thread.replies if '"verb": "confirm"' in card_text(r)), None))
    data = re.search(r'"verb": "confirm", "data": (\{[^{}]*\})', card_text(post))
    assert data is not None
    number = json.loads(data.group(1))["run"]
    clicked = await teams.click_action(post.id, "confirm", json.loads(data.group(1)), user="bob")
    assert clicked.status == 200
    assert f"Its card will follow in this channel (run {number})." in json.dumps(clicked.body)
    # everyone's card shows the answer, then (once the run started) where the run's card is, in this channel
    await eventually(lambda: f"(run {number})" in card_text(post) and "in this channel" in card_text(post))

    def run_card() -> Any:
        return next((p for p in teams_posts(loop, channel.name) if "integrate-app-y" in card_text(p)), None)

    card = await eventually(run_card)
    assert card.id not in before and card.id != thread.id  # a post of its own in the channel, as the thread says
    assert not [r for r in thread.replies if "Pipeline" in card_text(r)]  # not in the command's thread
    await eventually(lambda: "Succeeded" in card_text(run_card()), timeout=30)


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_answers_use_each_platforms_own_markup_and_say_what_a_command_needs(loop: Loop, platform: str) -> None:
    alice = Person(loop, platform, "alice", "ml-models")
    answer = await alice.say("help unsubscribe", "Remove one of this channel's subscriptions.")
    # bold is *…* in Slack's mrkdwn, **…** in Teams' markdown (where *…* is italics)
    if platform == "slack":
        assert "*unsubscribe*: Remove one" in answer and "**" not in answer
    else:
        assert "**unsubscribe**: Remove one" in answer
    answer = await alice.say("diff model-x:6 model-x:7", "model-x:6 → model-x:7: ")
    assert ("model-x:6 → model-x:7: **" in answer) is (platform == "teams")
    # a command without what it needs says what that is, with an example
    for text, needs in [
        ("unsubscribe", "`unsubscribe` needs a subscription id, for example `unsubscribe 3` (`subscriptions` lists"),
        ("mute", "`mute` needs a subscription id, for example `mute 3 for=4h`"),
        ("cancel", "`cancel` needs a run number, for example `cancel 1234` (`runs` lists them)."),
        ("retrain", "`retrain` needs the name of a model, for example `retrain model-x`."),
        ("diff model-x:7", "`diff` needs two model versions, for example `diff model-x:7 model-x:8`."),
    ]:
        await alice.say(text, needs)


async def test_unknown_commands_get_help(loop: Loop) -> None:
    slack = loop.suite.slack
    await slack.send_slash_command("/handoff", "retrian model-x", channel="ml-models", user="alice")
    answer = await eventually(lambda: next((m for m in ephemerals(loop, ALICE) if "Did you mean" in m.text), None))
    assert "`retrain`" in answer.text


# --- every command, on both platforms -----------------------------------------------------------------


def no_confirmation(config: dict[str, Any]) -> None:
    config["commands"]["retrain"]["confirm"] = False


async def retrain(person: Person) -> None:
    person.user, person.channel = "alice", "ml-models"
    answer = await person.say("retrain model-x", "Starting: Retrain model-x with the Azure ML job")
    # the job as Azure ML studio names it (its display name), not the job file's path; no parameters, no ()
    assert "Starting: Retrain model-x with the Azure ML job train-model-x. Its card" in answer
    run = await command_run(person.loop, is_running)
    assert f"(run {run.id})" in answer
    assert run.backend_run_id is not None and run.backend_run_id.startswith(f"handoff-model-x-{run.id}-")
    [put] = jobs(person.loop)
    assert put.path.endswith(f"/jobs/{run.backend_run_id}")
    assert put.json()["properties"]["displayName"] == "train-model-x"


async def integrate(person: Person) -> None:
    answer = await person.say("integrate app-y model=model-x:7", "Starting: Run integrate-app-y for app-y")
    assert "against model-x:7" in answer
    await eventually(lambda: len(person.loop.suite.ado.runs) == 1)
    (run,) = person.loop.suite.ado.runs
    assert run.pipeline.name == "integrate-app-y"
    assert (run.template_parameters["modelName"], run.template_parameters["modelVersion"]) == ("model-x", "7")


async def status(person: Person) -> None:
    answer = await person.say("status model-x", "The latest version of model-x is 7.")
    assert "app-y" in answer


async def runs(person: Person) -> None:
    await person.say("runs", "Handoff has started no runs yet.")
    await person.say("integrate app-y", "Starting:")
    run = await command_run(person.loop, is_running)
    (ado_run,) = person.loop.suite.ado.runs
    answer = await person.say("runs app-y", "The latest runs of app-y Handoff started, newest first:")
    # who asked, by the name chat shows (not their email)
    assert f"{run.id}: `integrate app-y model=model-x:7` by Bob Chen, started" in answer
    # the run named as its card names it (integrate-app-y 20261129.1), not by its number in the API, and
    # linked to it: the link's text is that name, not the whole URL
    assert ado_run.name != str(ado_run.id)
    url = person.loop.suite.ado.links.run_web(ado_run.id)
    name = f"integrate-app-y {ado_run.name}"
    shown = f"<{url}|{name}>" if person.platform == "slack" else f"[{name}]({url})"
    assert f"Azure DevOps run {shown}, " in answer
    answer = await person.say(f"status {run.id}", f"Run {run.id} (")
    assert f"Run {run.id} (Azure DevOps run {name}): `integrate app-y model=model-x:7` by Bob Chen, started." in answer
    # the integration was against model-x:7 (the latest): it counts among model-x's runs
    answer = await person.say("runs model-x", "The latest runs of model-x Handoff started, newest first:")
    assert f"{run.id}: `integrate app-y model=model-x:7` by Bob Chen, started" in answer


async def approvals(person: Person) -> None:
    person.user = "carol"
    await person.say("approvals", "No pending gates are waiting for you.")


async def cancel(person: Person) -> None:
    await person.say("integrate app-y", "Starting:")
    run = await command_run(person.loop, is_running)
    answer = await person.say(f"cancel {run.id}", f"Canceling run {run.id}")
    (ado_run,) = person.loop.suite.ado.runs
    assert (
        f"Canceling run {run.id} (`integrate app-y model=model-x:7`, Azure DevOps run integrate-app-y {ado_run.name})."
        in answer
    )
    assert ado_run.cancel_requested.is_set()  # Azure DevOps was asked before Handoff answered
    await eventually(lambda: ado_run.result == "canceled")
    await person.say(f"cancel {run.id}", "is no longer running (canceled)")

    def run_card() -> str | None:  # the card itself, not its thread, says who canceled the run
        if person.platform == "slack":
            shown = [blocks_text(m) for m in slack_messages(person.loop, person.channel) if m.by_bot]
        else:
            shown = [card_text(p) for p in teams_posts(person.loop, TEAMS_CHANNELS[person.channel])]
        return next((t for t in shown if f"integrate-app-y {ado_run.name}" in t and "Canceled by Bob Chen" in t), None)

    await eventually(run_card)


async def subscribe(person: Person) -> None:
    answer = await person.say("subscribe events=run outcomes=failed", "Subscribed this channel (subscription")
    assert "`events=run outcomes=failed`" in answer
    [stored] = await person.loop.server.store.list_subscriptions()
    assert stored.filters == {"events": ["run"], "outcomes": ["failed"]}
    # a repeat limit is no filter: the channel's defaults stay
    answer = await person.say(
        "subscribe repeat_limit=1h card_format=compact broadcast=off mentions=no",
        "Subscribed this channel (subscription",
    )
    assert (
        "failures, approvals and new models with `repeat_limit=1h card_format=compact broadcast=off mentions=no`"
        in answer
    )
    await person.say("subscribe repeat_limit=2d", "Nothing was subscribed: `repeat_limit`: a repeat limit is between")
    await person.say("subscribe card_format=tiny", "Nothing was subscribed: `card_format`:")
    await person.say(
        "subscribe broadcast=sometimes", "Nothing was subscribed: `broadcast` takes on or off, not `sometimes`."
    )
    _, shaped = await person.loop.server.store.list_subscriptions()
    assert shaped.filters == {
        **DEFAULT_FILTERS,
        "repeat_limit": "1h",
        "card_format": "compact",
        "broadcast": "off",
        "mentions": "no",
    }
    assert Filters.from_mapping(shaped.filters).broadcast is Filters.from_mapping(shaped.filters).mentions is False
    # other filters narrow the defaults: leaving out what you did yourself is not asking for everything else
    answer = await person.say("subscribe actors_exclude=me", "Subscribed this channel (subscription")
    assert f"failures, approvals and new models with `actors_exclude={person.user}@contoso.com`" in answer
    _, _, narrowed = await person.loop.server.store.list_subscriptions()
    assert narrowed.filters == {**DEFAULT_FILTERS, "actors_exclude": [f"{person.user}@contoso.com"]}


async def subscription_id(person: Person) -> int:
    answer = await person.say("subscribe events=run", "Subscribed this channel (subscription")
    match = re.search(r"subscription (\d+)", answer)
    assert match is not None
    return int(match.group(1))


async def unsubscribe(person: Person) -> None:
    number = await subscription_id(person)
    await person.say(f"unsubscribe {number}", f"Removed subscription {number}.")
    assert await person.loop.server.store.list_subscriptions() == []
    await person.say(f"unsubscribe {number}", f"This channel has no subscription {number}.")


async def subscriptions(person: Person) -> None:
    answer = await person.say("subscriptions", "This channel has no subscriptions made from chat.")
    # what the configuration file routes here explains what arrives, though chat cannot change it
    configured = (
        "From Handoff's configuration file (changed there, not from chat; `muted_until:` in an entry mutes it):\n"
    )
    assert configured + "• `events=run,approval pipelines=integrate-*,release-*`" in answer
    number = await subscription_id(person)
    answer = await person.say("subscriptions", f"{number}: `events=run`")
    assert f"Subscriptions of this channel:\n{number}: `events=run`\n{configured}" in answer


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_subscription_no_event_can_match_is_refused_saying_why_and_one_that_keeps_out_a_kind_says_so(
    loop: Loop, platform: str
) -> None:
    """A model registration carries no pipeline, a run is never pending, no kind carries both a stage and a tag:
    such a subscription would stay silent for good, so nothing is stored, and the answer shows what would work."""
    bob = Person(loop, platform, "bob", "app-releases")
    store = loop.server.store
    answer = await bob.say("subscribe events=model_registered pipelines=train-*", "Nothing was subscribed")
    assert (
        "Nothing was subscribed: model registrations carry no pipeline, so nothing would ever come. Did you mean "
        "`subscribe events=run pipelines=train-*`? (Runs, stages, approvals and classic releases' deployments can "
        "match those filters.)"
    ) in answer
    answer = await bob.say("subscribe events=run outcomes=pending dry-run", "Nothing was subscribed")
    assert (
        "Nothing was subscribed: runs are never pending (only succeeded, failed or canceled), so nothing would ever "
        "come. Did you mean `subscribe events=approval outcomes=pending dry-run`?"
    ) in answer
    # subscribe's defaults: failures, approvals and new models, of which none says a stage and a tag
    answer = await bob.say("subscribe stages=Deploy* tags.stage=prod", "Nothing was subscribed")
    assert (
        "Nothing was subscribed: none of the failures, approvals and new models `subscribe` sends unless told "
        "otherwise can say all of `stages=Deploy* tags.stage=prod`: only runs, stages and approvals carry a stage; "
        "only model registrations, model deployments and training runs carry tags. No kind of event carries all of "
        "that: leave a filter out, or subscribe to each kind apart."
    ) in answer
    assert await store.list_subscriptions() == []
    # of the kinds named, a stage carries no model: the runs come, and the answer says the stages will not
    answer = await bob.say("subscribe events=run,stage models=model-x", "Subscribed this channel (subscription")
    assert (
        "`events=run,stage models=model-x`.\nBut stages will not come under these filters: stages carry no model."
        in answer
    )
    [stored] = await store.list_subscriptions()
    assert stored.filters == {"events": ["run", "stage"], "models": ["model-x"]}


async def test_a_subscription_of_the_configuration_file_is_muted_there_and_listed_muted_in_chat(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)

    def muted_releases(config: dict[str, Any]) -> None:
        for entry in config["subscriptions"]:
            if entry["channel"] == "app-releases":
                entry["muted_until"] = f"{until:%Y-%m-%dT%H:%M}:00Z"

    loop = await start_loop(muted_releases)
    ado = loop.suite.ado
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="carol@contoso.com")
    await ado.wait_for_run(run.id, timeout=30)
    await ado.drain(timeout=30)
    await asyncio.sleep(1.5)  # (the outbox would have posted by now)
    assert not any(run.name in blocks_text(m) for m in slack_messages(loop, "app-releases"))
    answer = await Person(loop, "slack", "bob", "app-releases").say("subscriptions", "configuration file")
    local = until.astimezone(ZoneInfo("America/Los_Angeles"))
    assert (
        f"• `events=run,approval pipelines=integrate-*,release-*` (muted until {local:%Y-%m-%d %H:%M} "
        "America/Los_Angeles time (" in answer
    )


async def mute(person: Person) -> None:
    number = await subscription_id(person)
    store = person.loop.server.store
    answer = await person.say(f"mute {number} for=2h", f"Muted subscription {number} until")
    assert f"`unmute {number}` ends it sooner" in answer
    [stored] = await store.list_subscriptions()
    assert stored.muted_until is not None
    assert abs(stored.muted_until - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(minutes=1)
    await person.say(f"mute {number} for=1000d", "A subscription is muted for 1 minute to 90 days")
    await person.say(f"mute {number} for=9999999999w", "`for` is how long, such as 30m, 4h or 7d.")
    await person.say(f"unmute {number}", f"Unmuted subscription {number}.")
    [stored] = await store.list_subscriptions()
    assert stored.muted_until is None
    await person.say(f"unmute {number}", f"Subscription {number} is not muted.")
    await person.say(f"unmute {number + 1}", f"This channel has no subscription {number + 1}.")
    # the duration given where the subscription's number goes: how the command goes, not "no subscription 2h"
    await person.say("mute 2h", "`mute` needs a subscription id first, not `2h`, for example `mute 3 for=4h`;")
    audit = [e.outcome for e in await store.list_audit() if e.action == "command" and "mute" in e.target]
    assert len(audit) == 2  # the refusals changed nothing, and are not recorded
    assert audit[0].startswith(f"subscription {number} muted until ") and audit[1] == f"subscription {number} unmuted"
    await mute_until(person, number)


async def mute_until(person: Person, number: int) -> None:
    """``until=`` in bob's own time zone (Los Angeles, as Slack's users.info and Teams' activities tell), the
    mute's end shown there and in UTC."""
    store = person.loop.server.store
    here = ZoneInfo("America/Los_Angeles")

    async def muted_until() -> datetime | None:
        [stored] = await store.list_subscriptions()
        return stored.muted_until

    answer = await person.say(f"mute {number} until=tomorrow", f"Muted subscription {number} until")
    morning = datetime.combine(datetime.now(here).date() + timedelta(days=1), time(9), tzinfo=here)
    assert f"until {morning:%Y-%m-%d} 09:00 America/Los_Angeles time ({morning.astimezone(UTC):%H:%M} UTC)." in answer
    assert await muted_until() == morning
    answer = await person.say("subscriptions", f"{number}: `events=run`")
    assert f"{number}: `events=run` (muted until {morning:%Y-%m-%d} 09:00 America/Los_Angeles time (" in answer

    await person.say(f"mute {number} until=17:00", f"Muted subscription {number} until")
    five = datetime.combine(datetime.now(here).date(), time(17), tzinfo=here)
    next_five = five if five > datetime.now(UTC) else five + timedelta(days=1)
    assert await muted_until() in (next_five, next_five + timedelta(days=1))  # (17:00 may have passed meanwhile)
    # a date and time with an offset is that moment wherever it is typed; one without is read in bob's zone
    at = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    await person.say(f"mute {number} until={at:%Y-%m-%dT%H:%M}Z", f"Muted subscription {number} until")
    assert await muted_until() == at
    await person.say(f"mute {number} until={at:%Y-%m-%dT%H:%M}", f"Muted subscription {number} until")
    assert await muted_until() == at.replace(tzinfo=here)

    for typed, said in [
        ("until=2020-01-01T09:00", "2020-01-01 09:00 America/Los_Angeles time (17:00 UTC) has passed;"),
        (f"until={(at + timedelta(days=100)):%Y-%m-%d}", "A subscription is muted for 1 minute to 90 days, so until "),
        ("for=tomorrow", "`for` is how long, such as 30m, 4h or 7d. For a time, type `until=tomorrow`."),
        ("for=2026-01-01T10:00Z", "For a time, type `until=2026-01-01T10:00Z`."),
        ("until=4h", "`until` is when the mute ends: 17:00 or 5pm, tomorrow, a date such as 2026-12-01, or a date"),
        ("until=4h", "For how long, type `for=4h`."),
        ("until=25:00", "`until` is when the mute ends"),
        ("for=1h until=17:00", "Give `for` (how long) or `until` (when it ends), not both."),
    ]:
        await person.say(f"mute {number} {typed}", said)
    assert await muted_until() == at.replace(tzinfo=here)  # the refusals changed nothing


async def help_(person: Person) -> None:
    answer = await person.say("help", "Commands (`help <command>` for details):")
    for usage in ("integrate <app>", "runs [<model or app>]", "cancel <run>", "subscribe"):
        assert usage in answer
    assert "retrain" not in answer  # bob is no data scientist: help shows what he may run
    bold = "*cancel*" if person.platform == "slack" else "**cancel**"  # each platform's own bold
    await person.say("help cancel", f"{bold}: Cancel a run Handoff started (`runs` lists them).")


COMMAND_CASES: dict[str, Callable[[Person], Awaitable[None]]] = {
    "retrain": retrain,
    "integrate": integrate,
    "status": status,
    "runs": runs,
    "approvals": approvals,
    "cancel": cancel,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "subscriptions": subscriptions,
    "mute": mute,
    "help": help_,
}


@pytest.mark.parametrize("platform", ["slack", "teams"])
@pytest.mark.parametrize("verb", list(COMMAND_CASES))
async def test_every_command_answers_on_both_platforms(
    start_loop: Callable[..., Awaitable[Loop]], verb: str, platform: str
) -> None:
    loop = await start_loop(no_confirmation)
    await COMMAND_CASES[verb](Person(loop, platform, "bob", "app-releases"))


# --- runs followed to their end -------------------------------------------------------------------------


async def test_a_retrain_from_teams_runs_to_a_new_model_version(start_loop: Callable[..., Awaitable[Loop]]) -> None:
    loop = await start_loop(no_confirmation)
    alice = Person(loop, "teams", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop, is_running)

    aml = loop.suite.aml
    job = await aml.jobs.wait_for(str(run.backend_run_id), timeout=30)
    assert job.status == "Completed"
    assert aml.state.models["model-x"]["8"].job_name == run.backend_run_id

    def posts() -> list[Any]:
        return teams_posts(loop, "ML models")

    card = await eventually(lambda: next((p for p in posts() if f"/{run.backend_run_id}" in card_text(p)), None))
    await eventually(lambda: "Succeeded" in card_text(card))
    await eventually(lambda: any("Model model-x:8 registered" in card_text(p) for p in posts()))
    await command_run(loop, lambda r: r.state.value == "succeeded", run.id)


async def test_a_failed_retrain_is_told_once_in_its_thread_calling_on_who_asked(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    aml = loop.suite.aml
    aml.script_next_job(fail=True, duration=1)
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop, lambda r: r.state is CommandRunState.FAILED)  # Handoff's polling saw it fail
    job_name = str(run.backend_run_id)
    # and Azure ML told it too, through Event Grid (RunStatusChanged)
    await eventually(lambda: [e for e in aml.published if job_name in json.dumps(e.data)])
    await aml.dispatcher.drain()

    def card() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)

    shown = await eventually(card)
    await eventually(lambda: "Failed" in blocks_text(shown))
    for _ in range(100):  # until every delivery was sent
        if not (await loop.server.store.count_deliveries([DeliveryState.PENDING])).get("pending"):
            break
        await asyncio.sleep(0.1)
    failures = [r for r in shown.replies if "failed" in blocks_text(r)]
    assert len(failures) == 1, [blocks_text(r) for r in shown.replies]
    alice_id = loop.suite.slack.world.user("alice").id
    assert f"<@{alice_id}>" in failures[0].text + blocks_text(failures[0])  # who asked for the run


@pytest.mark.parametrize(
    ("fails", "stage_hooks"),
    [(True, True), (False, True), (True, False)],
    ids=["failing", "passing", "failing-known-by-polling"],
)
async def test_an_integrate_run_from_a_slack_mention_tells_its_thread_how_it_ended(
    loop: Loop, fails: bool, stage_hooks: bool
) -> None:
    ado = loop.suite.ado
    if not stage_hooks:  # only the run's own events (and polling) tell Handoff how it went
        for hook in list(ado.webhooks.subscriptions.values()):
            if "ms.vss-pipelines.stage-state-changed-event" in hook.event_types:
                assert ado.remove_webhook(hook.id)
    if fails:
        ado.script_next_run("integrate-app-y", fail_stage="IntegrationTests")
    await loop.suite.slack.mention_bot("integrate app-y model=model-x:7", channel="app-releases", user="bob")
    await eventually(lambda: len(ado.runs) == 1)
    (run,) = ado.runs
    await eventually(lambda: run.state == "completed", timeout=30)
    assert run.result == ("failed" if fails else "succeeded")

    def card() -> Any:
        # (the answer to the mention names the run too, once it started)
        named = [m for m in slack_messages(loop, "app-releases") if f"integrate-app-y {run.name}" in m.text]
        return next((m for m in named if "Started:" not in m.text), None)

    shown = await eventually(card)
    if fails:
        await eventually(lambda: "Failed" in blocks_text(shown))
        reply = await eventually(lambda: next((r for r in shown.replies if "failed in" in r.text), None))
        assert "failed in stage Integration tests" in blocks_text(reply)
        assert "Failed at stage Integration tests" in blocks_text(shown)
    else:
        await eventually(lambda: "Succeeded" in blocks_text(shown))
        assert not [r for r in shown.replies if "failed" in r.text]


async def running_retrain(start_loop: Callable[..., Awaitable[Loop]]) -> tuple[Loop, Person, CommandRun, str]:
    """Alice's `retrain model-x` in Slack, its Azure ML job running (and left running for two minutes)."""
    loop = await start_loop(no_confirmation)
    loop.suite.aml.script_next_job(duration=120)
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop, is_running)
    job_name = str(run.backend_run_id)
    await loop.suite.aml.jobs.wait_for(job_name, "Running", timeout=30)
    return loop, alice, run, job_name


async def test_a_retrains_card_names_the_azure_ml_experiment_its_job_runs_in(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """The job file's display name is train-model-x and its experiment model-x-train: Azure ML's events name
    the experiment, and the card Handoff shows from polling, before any event, names it too."""
    loop, _, _, job_name = await running_retrain(start_loop)
    assert loop.suite.aml.state.jobs[job_name].experiment_name == "model-x-train"
    assert not [e for e in loop.suite.aml.published if job_name in json.dumps(e.data)]  # only polling so far

    def card() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)

    shown = await eventually(card)
    await eventually(lambda: card().text.startswith("Running: "))  # the card's own status, not Info
    assert f"Training run model-x-train/{job_name}" in card().text
    text = blocks_text(card())
    assert "Experiment" in text and "model-x-train" in text and "train-model-x" not in text, text
    assert shown.ts == card().ts


async def test_cancel_from_chat_stops_the_azure_ml_job_and_polling_ends_its_card(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop, alice, run, job_name = await running_retrain(start_loop)
    aml = loop.suite.aml

    await alice.say(f"cancel {run.id}", f"Canceling run {run.id}")
    assert [r.status for r in aml.recorder.matching(f"POST /subscriptions/**/jobs/{job_name}/cancel")] == [202]
    assert aml.state.jobs[job_name].status == "Canceled"
    assert not [e for e in aml.published if job_name in json.dumps(e.data)]  # no event: polling must tell

    def card() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)

    shown = await eventually(card)
    await eventually(lambda: "Canceled" in blocks_text(shown))
    await command_run(loop, lambda r: r.state.value == "canceled", run.id)
    # the card itself says who canceled the job, as a pipeline run's card does, and keeps saying it once ended
    await eventually(lambda: "Canceled by Alice" in blocks_text(shown))
    await asyncio.sleep(1.5)  # the polling's end of the job, and any update after it, have landed
    assert "Canceled by Alice" in blocks_text(shown)


async def test_a_cancel_whose_job_a_poll_sees_canceled_first_is_still_the_persons_cancel(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Azure ML cancels the job at once but is slow to say so: the run's polls see it canceled while the cancel
    is on its way, and leave its end to the cancel (else Alice would be told it had already ended)."""
    loop, alice, run, job_name = await running_retrain(start_loop)
    aml = loop.suite.aml
    operation = "GET /subscriptions/**/mfeOperationResults/*"
    aml.faults.add(operation, [Fault("stall", stall_seconds=1.0)])  # five of the run's polls meanwhile

    await alice.say(f"cancel {run.id}", f"Canceling run {run.id}")
    [looked] = aml.recorder.matching(operation)
    polls = aml.recorder.matching(f"GET /subscriptions/**/jobs/{job_name}")
    polled = [r for r in polls if looked.at < r.at < looked.at + 1.0 and r.status == 200]
    assert polled, "no poll of the job while the cancel was on its way"
    canceled = await command_run(loop, lambda r: r.state.value == "canceled", run.id)
    assert canceled.details["canceled_by"]["name"] == "Alice Martin"

    def card() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)

    shown = await eventually(card)
    await eventually(lambda: "Canceled by Alice" in blocks_text(shown))
    await asyncio.sleep(1.5)  # the polling's end of the job, and any update after it, have landed
    assert "Canceled by Alice" in blocks_text(shown)


async def test_a_cancel_azure_ml_is_slow_to_carry_out_is_answered_at_once_and_its_card_follows_azure_ml(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """Azure ML accepts the cancel and asks to be asked again in an hour: the answer does not wait for that."""
    loop, alice, run, job_name = await running_retrain(start_loop)
    aml = loop.suite.aml
    aml.cancel_delay, aml.lro_retry_after = 3600, 3600

    began = asyncio.get_running_loop().time()
    answer = await alice.say(f"cancel {run.id}", f"Canceling run {run.id}")
    assert asyncio.get_running_loop().time() - began < 15  # (an hour of one of Azure ML's threads without the cap)
    assert f"Canceling run {run.id} (`retrain model-x`, Azure ML job {job_name})." in answer
    assert [r.status for r in aml.recorder.matching(f"POST /subscriptions/**/jobs/{job_name}/cancel")] == [202]
    assert aml.state.jobs[job_name].status == "CancelRequested"
    await command_run(loop, lambda r: r.state.value == "canceled", run.id)

    def card() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)

    shown = await eventually(card)
    await eventually(lambda: "Canceled by Alice" in blocks_text(shown))
    await asyncio.sleep(1.5)  # the job's polls go on (Azure ML is still canceling it) and leave the card so
    assert "Canceled by Alice" in blocks_text(shown) and "Running" not in shown.text
    assert aml.state.jobs[job_name].status == "CancelRequested"


# --- a restart in the middle -------------------------------------------------------------------------


async def test_a_run_that_ended_while_handoff_was_down_is_polled_again_after_the_restart(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop, _, run, job_name = await running_retrain(start_loop)
    aml = loop.suite.aml

    async def cancel_in_azure_ml() -> None:
        # Azure ML sends no event for a canceled job: only a poll can tell
        assert aml.jobs.cancel(job_name)
        await aml.jobs.wait_for(job_name, "Canceled", timeout=30)

    loop = await loop.restart(cancel_in_azure_ml)
    assert not [e for e in aml.published if job_name in json.dumps(e.data)]
    await command_run(loop, lambda r: r.state.value == "canceled", run.id)

    def card() -> Any:
        return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)

    await eventually(lambda: "Canceled" in blocks_text(card()))
    assert len(jobs(loop)) == 1  # polled again, not submitted again
    # the card names the job as before the restart, not by its address
    assert card().text.startswith(f"Canceled: Training run model-x-train/{job_name}")


def _cut_off(loop: Loop, command: str, target: str, channel: str) -> CommandRun:
    """A run recorded as requested ten minutes ago whose start never got recorded (the process stopped)."""
    return CommandRun(
        idempotency_key=f"alice:{command}:cut-off",
        actor="alice",
        platform="slack",
        conversation=loop.suite.slack.state.channel(channel).id,
        command=command,
        target=target,
        state=CommandRunState.REQUESTED,
        created_at=datetime.now(UTC) - timedelta(minutes=10),
        details={"summary": command},
    )


async def test_an_azure_ml_job_whose_start_was_cut_off_is_submitted_again_under_its_own_name(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    loop.suite.aml.script_next_job(duration=0.5)
    run, _ = await loop.server.store.start_command_run(
        _cut_off(loop, "retrain model-x", "model-x", "ml-models"), timedelta(0)
    )
    assert jobs(loop) == []

    loop = await loop.restart()
    started = await command_run(loop, lambda r: r.state.value == "succeeded", run.id)
    assert started.backend_run_id == job_name("model-x", run)
    [put] = jobs(loop)
    assert put.path.endswith(f"/jobs/{job_name('model-x', run)}")


async def test_a_pipeline_run_whose_start_was_cut_off_is_not_started_twice_and_its_channel_is_told(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop()
    young = replace(_cut_off(loop, "integrate app-y", "app-y", "app-releases"), idempotency_key="young")
    young = replace(young, created_at=datetime.now(UTC))  # perhaps being started by another replica right now
    old, _ = await loop.server.store.start_command_run(
        _cut_off(loop, "integrate app-y", "app-y", "app-releases"), timedelta(0)
    )
    young, _ = await loop.server.store.start_command_run(young, timedelta(0))

    loop = await loop.restart()
    failed = await command_run(loop, lambda r: r.state.value == "failed", old.id)
    assert "cannot tell whether Azure DevOps started it" in failed.details["error"]
    told = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "Not known whether" in m.text), None)
    )
    assert "Look at the pipeline's runs" in blocks_text(told)
    answer = await Person(loop, "slack", "alice", "app-releases").say(f"cancel {old.id}", f"Run {old.id} (")
    assert "cannot be canceled from here: Handoff stopped while starting it" in answer
    await asyncio.sleep(0.5)
    assert loop.suite.ado.runs == []
    assert (await loop.server.store.get_command_run(young.id or 0)).state.value == "requested"  # type: ignore[union-attr]

    # the sweep every minute: the young one has become old, and was cut off too; a start under way is not
    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    loop.suite.ado.faults.add("POST /**/pipelines/*/runs", [Fault("stall", stall_seconds=3)])
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting: Run")
    under_way = await command_run(loop)
    runner.start_cut_off = timedelta(0)
    await runner.sweep()
    await command_run(loop, lambda r: r.state.value == "failed", young.id)
    assert (await loop.server.store.get_command_run(under_way.id or 0)).state.value == "requested"  # type: ignore[union-attr]
    await command_run(loop, is_running, under_way.id)
    assert len(loop.suite.ado.runs) == 1


def start_unknown(run: CommandRun) -> bool:
    return bool(run.details.get("start_unknown"))


@pytest.mark.parametrize(
    "fault",
    [Fault("reset_after"), Fault("malformed_json"), Fault("502", after_acting=True), Fault("504", after_acting=True)],
    ids=["reset_after", "malformed_json", "502", "504"],
)
async def test_a_pipeline_run_whose_start_went_unanswered_is_not_known_and_not_started_twice(
    loop: Loop, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    # reset_after: Azure DevOps starts the run, then the connection drops before its answer;
    # malformed_json: its answer cannot be read; 502, 504: a gateway in front of it answers, after Azure DevOps
    # queued the run. Either way the run may have started.
    loop.suite.ado.faults.add("POST /**/pipelines/*/runs", [fault])
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting: Run")
    run = await command_run(loop, start_unknown)
    assert run.state is CommandRunState.REQUESTED  # it holds the command, as a run that is starting does
    told = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "Not known whether" in m.text), None)
    )
    assert "Handoff cannot tell whether Azure DevOps started this run. Look at the runs of the pipeline " in (
        blocks_text(told)
    )
    assert "Could not start" not in " ".join(m.text for m in slack_messages(loop, "app-releases"))

    again = await bob.say("integrate app-y model=model-x:7", "You already asked for this")
    assert f"(run {run.id}), and Handoff cannot tell whether Azure DevOps started it" in again
    assert "If it did not start, ask again after " in again
    answer = await bob.say(f"cancel {run.id}", f"Run {run.id} (")
    assert "cannot be canceled from here: Handoff cannot tell whether Azure DevOps started it" in answer
    await bob.say(f"status {run.id}", "not known whether it started")

    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    runner.start_cut_off = timedelta(0)
    await runner.sweep()  # within the command's dedupe window it is neither cut off nor told again
    await asyncio.sleep(0.5)
    assert (await loop.server.store.get_command_run(run.id or 0)).state is CommandRunState.REQUESTED  # type: ignore[union-attr]
    assert len([m for m in slack_messages(loop, "app-releases") if "Not known whether" in m.text]) == 1
    assert len(loop.suite.ado.runs) == (0 if fault.kind == "malformed_json" else 1)
    unexpected = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(unexpected) == (1 if fault.kind == "malformed_json" else 0), unexpected


@pytest.mark.parametrize("fault", ["reset_after", "500"])
async def test_a_retrain_whose_answer_azure_ml_lost_is_not_known_then_found_by_its_job_name_and_never_started_twice(
    start_loop: Callable[..., Awaitable[Loop]], fault: str
) -> None:
    # reset_after: Azure ML creates the job and the connection drops before its answer, every try;
    # 500: a gateway's error, every try (here Azure ML did not create it, as far as Handoff can tell it might have)
    loop = await start_loop(no_confirmation)
    aml = loop.suite.aml
    aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault(fault, retry_after=0)] * 4)  # type: ignore[arg-type]
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop, start_unknown)
    name = job_name("model-x", run)
    assert run.state is CommandRunState.REQUESTED and run.backend_run_id is None  # it holds the command
    assert list(aml.state.jobs) == ([name] if fault == "reset_after" else [])
    told = await eventually(
        lambda: next((m for m in slack_messages(loop, "ml-models") if "Not known whether" in m.text), None)
    )
    assert f"Within a minute it submits it again as the same job, {name}, which finds that job" in blocks_text(told)
    assert "Could not start" not in " ".join(m.text for m in slack_messages(loop, "ml-models"))

    again = await alice.say("retrain model-x", "You already asked for this")
    assert f"(run {run.id}), and Handoff cannot tell yet whether Azure ML started it" in again
    assert f"as the same job, {name}" in again
    answer = await alice.say(f"cancel {run.id}", f"Run {run.id} (")
    assert "cannot be canceled yet" in answer and f"`cancel {run.id}` cancels it" in answer
    await alice.say("runs", "not known whether it started")
    submitted = len(jobs(loop))

    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    await runner.sweep()  # every minute: the job submitted again under its name
    started = await command_run(loop, is_running, run.id)
    assert started.backend_run_id == name
    assert not {"start_unknown", "error", "job"} & set(started.details)
    assert list(aml.state.jobs) == [name]
    # where Azure ML had the job, the sweep found it (no PUT); else it submitted it, once
    assert len(jobs(loop)) == submitted + (0 if fault == "reset_after" else 1)
    await runner.sweep()  # a started run is not submitted again
    await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED, run.id)
    assert list(aml.state.jobs) == [name]
    assert len(jobs(loop)) == submitted + (0 if fault == "reset_after" else 1)
    card = await eventually(lambda: next((m for m in slack_messages(loop, "ml-models") if f"/{name}" in m.text), None))
    await eventually(lambda: card.text.startswith("Succeeded: "))
    listed = await alice.say("runs", "The latest runs")
    assert f"• {run.id}: `retrain model-x` by Alice Martin, succeeded, Azure ML job " in listed
    assert len([m for m in slack_messages(loop, "ml-models") if "Not known whether" in m.text]) == 1


async def test_retrains_azure_ml_throttles_for_long_fail_at_once_saying_when_and_azure_ml_still_answers_the_rest(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    # every submission turned away for 15 minutes: waiting that out would hold each of the service's threads
    loop = await start_loop(no_confirmation)
    aml = loop.suite.aml
    aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault("429", retry_after=900)] * 4)
    alice = Person(loop, "slack", "alice", "ml-models")
    throttled = "Azure ML is throttling Handoff's requests; try again in 15 min"
    for extra in ("", " compute=gpu-cluster", " compute=cpu-cluster", " data=lake-data:1"):
        answer = await alice.say(f"retrain model-x{extra}", throttled)
        assert "Could not start: Retrain model-x" in answer
    failed = [r for r in await loop.server.store.list_command_runs(None, 10) if r.target == "model-x"]
    assert [r.state for r in failed] == [CommandRunState.FAILED] * 4
    assert all(r.details["error"] == throttled and "start_unknown" not in r.details for r in failed)
    assert [r.status for r in jobs(loop)] == [429] * 4 and list(aml.state.jobs) == []

    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y", "Starting: Run")  # Azure ML's latest model-x read at once
    await alice.say("status model-x", "model-x:")
    answer = await alice.say(f"cancel {failed[0].id}", "nothing to cancel")
    assert throttled in answer
    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    await runner.sweep()  # a run that was turned away is not submitted again behind Alice's back
    await asyncio.sleep(0.5)
    assert len(jobs(loop)) == 4 and list(aml.state.jobs) == []
    listed = await alice.say("runs", "The latest runs")
    assert f"• {min(r.id or 0 for r in failed)}: `retrain model-x` by Alice Martin, failed, not started" in listed

    aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault("429", retry_after=1)])  # a short throttle: waited out
    await alice.say("retrain model-x", "Started: Retrain model-x")
    assert [r.status for r in jobs(loop)][4:] == [429, 201] and len(aml.state.jobs) == 1


@pytest.mark.parametrize("fault", ["503", "500"])
async def test_a_pipeline_run_azure_devops_failed_to_start_says_so_without_python_names(loop: Loop, fault: str) -> None:
    # 503: Azure DevOps turned the request away; 500 in its own JSON error: its own failure undid the request
    body = internal_error().body() if fault == "500" else None
    loop.suite.ado.faults.add("POST /**/pipelines/*/runs", [Fault(fault, retry_after=0, body=body)])
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting: Run")
    run = await command_run(loop, lambda r: r.state is CommandRunState.FAILED)
    said = {
        "503": "Azure DevOps is having trouble on its side (503); try again shortly",
        "500": "Azure DevOps failed (500)",
    }[fault]
    assert run.details["error"] == said
    told = await eventually(
        lambda: next((m for m in slack_messages(loop, "app-releases") if "Could not start" in m.text), None)
    )
    assert said in blocks_text(told) and "Error" not in blocks_text(told)
    await bob.say("integrate app-y model=model-x:7", "Starting: Run")  # it did not start: asking again starts it
    await eventually(lambda: len(loop.suite.ado.runs) == 1)


async def test_polling_ends_when_azure_ml_keeps_refusing_to_say_how_a_run_stands(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop, _, _, job_name = await running_retrain(start_loop)
    aml = loop.suite.aml

    del aml.state.jobs[job_name]  # deleted in Azure ML: every look at it is now a 404

    def refused() -> list[Any]:
        return [r for r in aml.recorder.matching(f"GET /subscriptions/**/jobs/{job_name}") if r.status == 404]

    await eventually(lambda: len(refused()) >= REFUSED_POLLS)
    await asyncio.sleep(0.5)
    asked = len(refused())
    await asyncio.sleep(1.0)  # five more polls' worth
    assert len(refused()) == asked <= REFUSED_POLLS + 1


def job_looks(loop: Loop, job_name: str) -> list[Any]:
    """Handoff's looks at an Azure ML job: the one before its submission (a 404), then its polls."""
    return loop.suite.aml.recorder.matching(f"GET /subscriptions/**/jobs/{job_name}")


@pytest.mark.parametrize("fail", [False, True])
async def test_a_retrain_that_outlasts_the_polling_limit_ends_in_runs_and_status_as_azure_ml_says(
    start_loop: Callable[..., Awaitable[Loop]], fail: bool
) -> None:
    loop = await start_loop(no_confirmation)
    aml = loop.suite.aml
    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    runner.poll_limit = timedelta(0)  # (12 hours, in production) polled no more once it has started
    aml.script_next_job(duration=1, fail=fail)
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop, is_running)
    name = str(run.backend_run_id)
    await aml.jobs.wait_for(name, timeout=30)
    ended = CommandRunState.FAILED if fail else CommandRunState.SUCCEEDED
    await command_run(loop, lambda r: r.state is ended, run.id)
    # no poll told it: Azure ML's own event (RunCompleted, or RunStatusChanged for a failure) did
    assert [r.status for r in job_looks(loop, name)] == [404]
    assert [e for e in aml.published if e.data.get("runId") == name]
    listed = await alice.say("runs", "The latest runs")
    assert f"• {run.id}: `retrain model-x` by Alice Martin, {ended.value}, Azure ML job " in listed
    await alice.say(f"status {run.id}", f"`retrain model-x` by Alice Martin, {ended.value}.")


async def test_a_retrain_azure_ml_refused_to_say_about_ends_when_azure_ml_says_it_completed(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    aml = loop.suite.aml
    aml.script_next_job(duration=2)
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x", "Starting: Retrain model-x")
    run = await command_run(loop, is_running)
    name = str(run.backend_run_id)
    await aml.jobs.wait_for(name, "Running", timeout=30)
    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    runner.poll_interval = 1.0  # the job completes, and Azure ML says so, while its polls are still refused
    job = aml.state.jobs.pop(name)  # Handoff's access to it taken away: every look is refused (404)

    def refused() -> int:
        return len([r for r in job_looks(loop, name) if r.status == 404]) - 1  # (the look before its submission)

    done = await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED, run.id)
    assert job.status == "Completed"
    # recorded once the polling stopped, as Azure ML's event had said (a poll would have recorded it itself)
    assert refused() >= REFUSED_POLLS
    assert done.backend_run_id == name
    await alice.say("runs", f"• {run.id}: `retrain model-x` by Alice Martin, succeeded, Azure ML job ")


async def test_an_integration_from_chat_that_outlasts_the_polling_limit_ends_as_azure_devops_says(loop: Loop) -> None:
    runner = loop.server.handoff.runner  # type: ignore[union-attr]
    assert runner is not None
    runner.poll_limit = timedelta(0)
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("integrate app-y model=model-x:7", "Starting: Run")
    run = await command_run(loop, is_running)
    await eventually(lambda: loop.suite.ado.run(int(str(run.backend_run_id))).state == "completed")
    await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED, run.id)  # never polled: the hook said
    listed = await bob.say("runs", "The latest runs")
    assert f"• {run.id}: `integrate app-y model=model-x:7` by Bob" in listed
    assert "succeeded, Azure DevOps run integrate-app-y" in listed


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_dry_run_shows_what_a_subscription_would_have_sent_and_subscribes_nothing(
    loop: Loop, platform: str
) -> None:
    ado = loop.suite.ado
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    await eventually(lambda: "Failed" in "".join(blocks_text(m) for m in slack_messages(loop, "app-releases")))
    store = loop.server.store
    person = Person(loop, platform, "bob", "app-releases")
    answer = await person.say("subscribe events=run outcomes=failed dry-run", "Dry run, nothing subscribed: of the")
    assert re.search(r"`events=run outcomes=failed` would have sent \d+ here, on 1 card, the newest:", answer)
    [line] = [line for line in answer.split("\n") if line.startswith("• ")]
    # the model version the run's parameters name (the pipeline's defaults: it was started without any)
    assert line.startswith(f"• Failed: integrate-app-y {ado.run(run.id).name}, model model-x:latest · ")
    assert line.endswith("min ago)")
    shown = f"buildId={run.id}|Open run>" if platform == "slack" else f"buildId={run.id})"
    assert shown in (answer if platform == "slack" else line)  # the card's link, as the platform writes it
    answer = await person.say("subscribe events=run outcomes=succeeded dry-run", "Dry run, nothing subscribed")
    assert "`events=run outcomes=succeeded` would have sent none here." in answer
    assert await store.list_subscriptions() == []


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_dry_run_tells_two_gates_of_one_stage_apart_by_their_runs_and_links(loop: Loop, platform: str) -> None:
    ado = loop.suite.ado
    runs = [
        ado.start_run(
            "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": v}
        )
        for v in ("6", "7")
    ]
    store = loop.server.store
    for _ in range(100):
        if len(gates := await store.list_gates(GateState.PENDING)) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(gates) == 2
    person = Person(loop, platform, "carol", "app-releases")

    answer = await person.say("subscribe events=approval stages=Production dry-run", "Dry run, nothing subscribed")

    lines = sorted(line for line in answer.split("\n") if line.startswith("• "))
    assert len(lines) == 2 and lines[0] != lines[1]
    for line, run, version in zip(lines, runs, ("6", "7"), strict=True):
        # Handoff did not start these runs: the model version each deploys is read from its parameters
        title = f"• Waiting: Release release-app-y to production, run {ado.run(run.id).name}, model model-x:{version}"
        assert line.startswith(f"{title} · ")
        # each card's link, as each platform writes it (Slack's in its blocks, its text only names the link)
        shown = f"buildId={run.id}|Open in Azure DevOps>" if platform == "slack" else f"buildId={run.id})"
        assert shown in (answer if platform == "slack" else line)


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_stage_tag_and_text_filters_are_typed_as_the_configuration_file_writes_them(
    loop: Loop, platform: str
) -> None:
    ado = loop.suite.ado
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")

    async def stage_events() -> dict[str, int]:
        received = [event_from_json(r.payload) for r in await loop.server.store.recent_events(100)]
        return dict(Counter(e.stage for e in received if isinstance(e, StageStateChanged) and e.stage))

    await ado.wait_for_run(run.id, timeout=30)
    await ado.drain(timeout=30)  # every stage's hooks answered: stored
    counted = await stage_events()
    assert set(counted) == {"Build", "Integration tests"}
    person = Person(loop, platform, "bob", "app-releases")
    answer = await person.say("subscribe events=stage stages=integration* dry-run", "Dry run, nothing subscribed")
    assert f"would have sent {counted['Integration tests']} here, on 1 card" in answer  # not Build's

    typed = 'subscribe events=stage,model_registered stages="integration *" tags.Stage=prod* text_exclude="dry run"'
    answer = await person.say(typed, "Subscribed this channel")
    shown = "events=stage,model_registered stages='integration *' tags.Stage=prod* text_exclude='dry run'"
    assert shown in answer
    # what the answer shows types back as the same subscription
    again = await person.say(f"subscribe {shown}", "has that subscription already")
    [stored] = await loop.server.store.list_subscriptions()
    assert f"(subscription {stored.id})" in again
    assert stored.filters == {
        "events": ["stage", "model_registered"],
        "stages": ["integration *"],
        "tags": {"Stage": "prod*"},
        "text_exclude": ["dry run"],
    }
    answer = await person.say("subscribe main", "Nothing was subscribed")
    assert "`main` is not a URL" in answer
    answer = await person.say("subscribe text_include=(unclosed", "Nothing was subscribed")
    assert "`text_include`: not a pattern Handoff can match" in answer
    assert len(await loop.server.store.list_subscriptions()) == 1
    # the defaults narrowed by a tag: only what has tags can come
    answer = await person.say("subscribe tags.stage=prod*", "Subscribed this channel")
    assert "failed training runs and new models with `tags.stage=prod*`" in answer


async def test_a_slack_channel_handoff_was_removed_from_gets_nothing_until_it_is_added_back(loop: Loop) -> None:
    slack, ado = loop.suite.slack, loop.suite.ado
    releases = slack.state.channel("app-releases").id
    assert (await slack.remove_bot(releases)).status == 200

    async def removed() -> bool:
        return ConversationAddress("slack", releases) in await loop.server.store.inactive_conversations()

    for _ in range(50):
        if await removed():
            break
        await asyncio.sleep(0.1)
    assert await removed()
    await asyncio.sleep(SUBSCRIPTION_CACHE_SECONDS + 0.5)  # what the ingest holds of the subscriptions is renewed
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    await asyncio.sleep(1.5)  # its hooks have come, and nothing was queued for app-releases
    refused = [r for r in slack.recorder.requests if r.path == "/api/chat.postMessage" and releases in r.text()]
    assert refused == [] and slack_messages(loop, "app-releases") == []
    assert (await loop.server.store.count_deliveries())["dead"] == 0

    assert (await slack.add_bot(releases)).status == 200  # /invite @handoff
    for _ in range(50):
        if not await removed():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(SUBSCRIPTION_CACHE_SECONDS + 0.5)
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    again = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(again.id).state == "completed")
    await eventually(lambda: any("Failed" in blocks_text(m) for m in slack_messages(loop, "app-releases")))

    # archived, then brought back
    for kind, gone in (("channel_archive", True), ("channel_unarchive", False)):
        assert (await slack.send_event({"type": kind, "channel": releases, "user": "U0ALICE"})).status == 200
        for _ in range(50):
            if await removed() is gone:
                break
            await asyncio.sleep(0.1)
        assert await removed() is gone, kind


async def test_a_bare_name_in_a_people_filter_is_refused_since_it_matches_nobody(loop: Loop) -> None:
    person = Person(loop, "slack", "bob", "app-releases")
    answer = await person.say("subscribe events=run actors_include=me,dana", "Nothing was subscribed")
    assert "`actors_include`: `dana` is a bare name, which matches nobody: write their email, or me" in answer
    assert await loop.server.store.list_subscriptions() == []


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_me_in_a_people_filter_is_whoever_subscribes(loop: Loop, platform: str) -> None:
    person = Person(loop, platform, "bob", "app-releases")
    answer = await person.say("subscribe events=run actors_exclude=me,dana@contoso.com", "Subscribed this channel")
    assert "events=run actors_exclude=bob@contoso.com,dana@contoso.com" in answer
    [stored] = await loop.server.store.list_subscriptions()
    assert stored.filters["actors_exclude"] == ["bob@contoso.com", "dana@contoso.com"]
    # bob's own run is left out, alice's is not
    subscription = Subscription((stored.conversation,), Filters.from_mapping(stored.filters))
    ado = loop.suite.ado
    for who in ("bob", "alice"):
        run = ado.start_run("integrate-app-y", requested_by=f"{who}@contoso.com")
        await eventually(lambda run=run: ado.run(run.id).state == "completed")

    async def actors(wanted: bool) -> set[str | None]:
        received = [event_from_json(r.payload) for r in await loop.server.store.recent_events(50)]
        now = datetime.now(UTC)
        runs = [e for e in received if e and e.kind == "run" and e.actor]  # (a stage's hook may name who asked too)
        return {e.actor.email for e in runs if e.actor and subscription.wants(e, now) is wanted}

    for _ in range(100):  # (the hooks of both runs arrive after the runs end)
        if {"alice@contoso.com", "bob@contoso.com"} <= await actors(True) | await actors(False):
            break
        await asyncio.sleep(0.1)
    assert await actors(True) == {"alice@contoso.com"}
    assert await actors(False) == {"bob@contoso.com"}


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_personal_subscription_brings_someone_their_own_failures(loop: Loop, platform: str) -> None:
    text = "subscribe events=run outcomes=failed actors_include=me"
    if platform == "teams":
        teams = loop.suite.teams
        chat = teams.state.conversation(teams.world.user("bob").personal_conversation_id)
        assert (await teams.send_personal_message(text, user="bob")).status in (200, 201)

        def said() -> list[str]:
            return [teams_message_text(m) for m in chat.posts if m.by_bot and not m.deleted]

    else:
        slack = loop.suite.slack
        direct = slack.state.im(slack.world.user("bob").id)  # bob's direct messages with Handoff
        assert (await slack.send_slash_command("/handoff", text, channel=direct.id, user="bob")).status == 200

        def said() -> list[str]:
            return [json.dumps(m.blocks or [], ensure_ascii=False) + m.text for m in direct.messages if m.by_bot]

    await eventually(lambda: any("Subscribed this chat (subscription" in s for s in said()))
    [stored] = await loop.server.store.list_subscriptions()
    assert stored.filters["actors_include"] == ["bob@contoso.com"]
    ado = loop.suite.ado
    for who in ("alice", "bob"):
        ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
        run = ado.start_run("integrate-app-y", requested_by=f"{who}@contoso.com")
        await eventually(lambda run=run: ado.run(run.id).state == "completed")

    def cards() -> list[str]:  # (a card names who asked for its run; its failure reply does not)
        return [s for s in said() if "integrate-app-y" in s and "Requested by" in s]

    await eventually(lambda: any("Failed" in card for card in cards()))
    await asyncio.sleep(1.5)  # alice's card would have come by now
    [card] = cards()
    assert "Bob " in card.split("Requested by", 1)[1][:40] and "Alice" not in card


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_group_chat_is_this_chat_and_gets_its_cards(loop: Loop, platform: str) -> None:
    text = "subscribe events=run outcomes=failed"
    if platform == "teams":
        teams = loop.suite.teams
        response = await teams.send_group_chat_message(text, members=("alice", "bob"), user="bob")
        assert response.status in (200, 201)
        chat = teams.state.conversation(response.activity["conversation"]["id"])

        def said() -> list[str]:
            return [teams_message_text(m) for m in chat.posts if m.by_bot and not m.deleted]

    else:
        slack = loop.suite.slack
        group = slack.state.mpim((slack.world.user("alice").id, slack.world.user("bob").id))
        assert (await slack.send_slash_command("/handoff", text, channel=group.id, user="bob")).status == 200

        def said() -> list[str]:
            return [json.dumps(m.blocks or [], ensure_ascii=False) + m.text for m in group.messages if m.by_bot]

    await eventually(lambda: any("Subscribed this chat (subscription" in s for s in said()))
    ado = loop.suite.ado
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="alice@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    await eventually(lambda: any("integrate-app-y" in s and "Failed" in s for s in said()))


async def test_subscriptions_lists_what_the_configuration_file_routes_here(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    def shaped(config: dict[str, Any]) -> None:
        config["subscriptions"].append(
            {
                "channel": "app-releases",
                "events": ["run"],
                "outcomes": ["failed"],
                "tags": {"team": "apps"},
                "text_exclude": ["flaky", "nightly"],
                "actors_exclude": ["build-bot@contoso.com"],
                "repeat_limit": "90m",
                "card_format": "compact",
                "mentions": False,
            }
        )

    loop = await start_loop(shaped)
    answer = await Person(loop, "slack", "bob", "app-releases").say("subscriptions", "configuration file")
    assert answer.endswith(
        "• `events=run,approval pipelines=integrate-*,release-*`\n"
        "• `events=run outcomes=failed actors_exclude=build-bot@contoso.com tags.team=apps "
        "text_exclude=(2 patterns) repeat_limit=1h30m card_format=compact mentions=off`"
    )
    # as it is listed, it can be typed: a duration of several units, in any case
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run repeat_limit=1h30m", "Subscribed this channel (subscription")
    [made] = await loop.server.store.list_subscriptions()
    assert Filters.from_mapping(made.filters).repeat_limit == timedelta(minutes=90)
    answer = await bob.say(f"mute {made.id} for=4H", f"Muted subscription {made.id} until")
    [made] = await loop.server.store.list_subscriptions()
    assert made.muted_until is not None
    assert abs(made.muted_until - (datetime.now(UTC) + timedelta(hours=4))) < timedelta(minutes=1)


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_approvals_lists_the_gates_waiting_for_you_with_their_age_and_link(loop: Loop, platform: str) -> None:
    parameters = {"modelName": "model-x", "modelVersion": "7"}
    loop.suite.ado.start_run("release-app-y", requested_by="bob@contoso.com", parameters=parameters)
    store = loop.server.store
    for _ in range(100):
        if gates := await store.list_gates(GateState.PENDING):
            break
        await asyncio.sleep(0.1)
    [gate] = gates
    carol = Person(loop, platform, "carol", "app-releases")
    answer = await carol.say("approvals", "Gates waiting for you, oldest first:")
    # the gate's title links to where to look before deciding
    card = await store.get_card_state(gate.gate_id)
    assert card is not None
    url = card.state["url"]
    assert "/_build/results?buildId=" in url or "/_environments/" in url
    linked = f"<{url}|{gate.title}>" if platform == "slack" else f"[{gate.title}]({url})"
    assert f"• {linked} (waiting 0 min, expires in " in answer
    # bob asked for the run: he may not decide it, so nothing waits for him
    await Person(loop, platform, "bob", "app-releases").say("approvals", "No pending gates are waiting for you.")


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_approvals_lists_a_gate_to_the_members_of_its_group(
    start_loop: Callable[..., Awaitable[Loop]], platform: str
) -> None:
    loop = await start_loop(world=production_approved_by_a_group)
    parameters = {"modelName": "model-x", "modelVersion": "7"}
    loop.suite.ado.start_run("release-app-y", requested_by="carol@contoso.com", parameters=parameters)
    for _ in range(100):
        if gates := await loop.server.store.list_gates(GateState.PENDING):
            break
        await asyncio.sleep(0.1)
    [gate] = gates
    alice = Person(loop, platform, "alice", "app-releases")  # in the Release Managers group
    listed = f"• {gate.title} (waiting" if platform == "slack" else f"• [{gate.title}]("  # Teams shows the link
    assert listed in await alice.say("approvals", "Gates waiting for you, oldest first:")
    await Person(loop, platform, "bob", "app-releases").say("approvals", "No pending gates are waiting for you.")


# --- every bad input gets a clear answer, and nothing else happens ---------------------------------------


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_someone_who_may_not_retrain_is_told_who_may_however_they_type_it(loop: Loop, platform: str) -> None:
    bob = Person(loop, platform, "bob", "app-releases")
    refusal = "Sorry, you can't run that here. `retrain` is for data-scientists; you are not in that role."
    for typed in ("retrain", "retrain model-x", "retrain model-x gpu=1"):
        answer = await bob.say(typed, refusal)
        assert "needs the name of a model" not in answer and "Did you mean" not in answer
    answer = await bob.say(
        "help retrain", "retrain*: Start the retraining job" if platform == "slack" else "retrain**: Start"
    )
    assert "Usage: `retrain <model> [data=…] [compute=…] [dry-run]`" in answer
    assert "You can't run it here: `retrain` is for data-scientists; you are not in that role." in answer
    assert "not a command" not in answer
    refused = [e for e in await loop.server.store.list_audit() if e.outcome.startswith("refused: `retrain`")]
    assert [e.target for e in refused] == ["retrain", "retrain model-x", "retrain"]
    assert jobs(loop) == []


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_who_may_not_subscribe_may_not_unsubscribe_mute_or_unmute_either(
    start_loop: Callable[..., Awaitable[Loop]], platform: str
) -> None:
    loop = await start_loop(lambda config: config["commands"].update(subscribe={"roles": ["release-managers"]}))
    carol = Person(loop, platform, "carol", "app-releases")  # a release manager
    alice = Person(loop, platform, "alice", "app-releases")
    await carol.say("subscribe events=run", "Subscribed this channel (subscription")
    [made] = await loop.server.store.list_subscriptions()
    await carol.say(f"mute {made.id} for=1h", f"Muted subscription {made.id} until")
    [made] = await loop.server.store.list_subscriptions()
    for typed in (f"unsubscribe {made.id}", f"mute {made.id} for=4h", f"unmute {made.id}"):
        verb = typed.split()[0]
        refusal = (
            f"Sorry, you can't run that here. `{verb}` is for release-managers, as `subscribe` is; you are not in "
            "that role."
        )
        await alice.say(typed, refusal)
    [kept] = await loop.server.store.list_subscriptions()
    assert kept.id == made.id and kept.muted_until == made.muted_until  # neither removed nor muted again
    refused = [e.target for e in await loop.server.store.list_audit() if e.outcome.startswith("refused: ")]
    assert refused == [f"unsubscribe {made.id}", f"mute {made.id} for=4h", f"unmute {made.id}"]
    answer = await alice.say("help", "Commands (`help <command>` for details):")
    assert "unsubscribe" not in answer and "subscriptions" in answer
    await alice.say("subscriptions", f"{made.id}: `events=run`")
    await carol.say(f"unsubscribe {made.id}", f"Removed subscription {made.id}.")


async def test_slash_retrain_alone_from_someone_who_may_not_retrain_says_who_may(loop: Loop) -> None:
    await loop.suite.slack.send_slash_command("/retrain", "", channel="app-releases", user="bob")
    answer = await eventually(lambda: next((m for m in ephemerals(loop, BOB) if "can't run" in m.text), None))
    assert answer.text == "Sorry, you can't run that here. `retrain` is for data-scientists; you are not in that role."


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_retrain_takes_its_data_asset_as_name_and_version_as_its_help_says(loop: Loop, platform: str) -> None:
    alice = Person(loop, platform, "alice", "ml-models")
    for typed in ("retrain model-x data=foo", "retrain model-x data=foo: dry-run", "retrain model-x data=:3"):
        answer = await alice.say(typed, "name:version")
        assert "Write the data asset as name:version, for example `data=lake-data:8`." in answer, typed
    answer = await alice.say("retrain model-x data=lake-data:8 dry-run", "Dry run")
    assert "inputs.training_data.path=azureml:lake-data:8" in answer
    await asyncio.sleep(0.5)
    assert jobs(loop) == []
    assert await loop.server.store.list_command_runs() == []


async def test_retrain_with_a_data_asset_gives_the_jobs_data_input_that_version_and_its_compute_the_one_named(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    alice = Person(loop, "slack", "alice", "ml-models")
    await alice.say("retrain model-x data=lake-data:6 compute=gpu-cluster", "Starting: Retrain model-x")
    run = await command_run(loop, is_running)
    assert run.command == "retrain model-x compute=gpu-cluster data=lake-data:6"
    [put] = jobs(loop)
    assert put.status in (200, 201)
    sent = put.json()["properties"]
    # the job file's uri_folder input, read from the asset's version 6 (not a literal string beside it)
    assert sent["inputs"]["training_data"]["jobInputType"] == "uri_folder"
    assert sent["inputs"]["training_data"]["uri"].endswith("/data/lake-data/versions/6")
    assert sent["inputs"]["learning_rate"] == {"value": "0.01", "jobInputType": "literal"}
    assert sent["computeId"].endswith("/computes/gpu-cluster")
    await command_run(loop, lambda r: r.state is CommandRunState.SUCCEEDED, run.id)


async def test_retrain_with_a_data_asset_of_a_job_without_a_data_input_starts_nothing_and_says_why(
    start_loop: Callable[..., Awaitable[Loop]], tmp_path: Path
) -> None:
    job_file = tmp_path / "train-literal.yml"

    def literal_job(config: dict[str, Any]) -> None:
        no_confirmation(config)
        config["models"]["model-x"]["retrain"]["azure_ml_job"]["job_file"] = str(job_file)

    loop = await start_loop(literal_job)
    job = loop.suite.aml.job_yaml("train-model-x")
    job["inputs"] = {"learning_rate": 0.01}
    job["command"] = "python train.py --lr ${{inputs.learning_rate}}"
    job_file.write_text(yaml.safe_dump(job), encoding="utf-8")
    alice = Person(loop, "slack", "alice", "ml-models")
    answer = await alice.say("retrain model-x data=lake-data:6", "nothing was started")
    assert f"The Azure ML job file {job_file} has no data input `training_data` (with a type and a path)" in answer
    await asyncio.sleep(0.5)
    assert jobs(loop) == []
    assert await loop.server.store.list_command_runs() == []


def pipeline_retrain(config: dict[str, Any]) -> None:
    """model-x retrained by the Azure DevOps pipeline train-model-x, with one parameter configured."""
    no_confirmation(config)
    project = config["models"]["model-x"]["promotion_gate"]["release"]["project"]
    config["models"]["model-x"]["retrain"] = {
        "azure_devops_pipeline": {"project": project, "pipeline": "train-model-x", "parameters": {"dataset": "lake"}}
    }


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_retrain_by_a_pipeline_refuses_the_options_it_cannot_pass_and_starts_nothing(
    start_loop: Callable[..., Awaitable[Loop]], platform: str
) -> None:
    loop = await start_loop(pipeline_retrain)
    alice = Person(loop, platform, "alice", "ml-models")
    for typed, given in (
        ("retrain model-x data=lake-data:6 compute=gpu-cluster", "`compute=` or `data=`"),
        ("retrain model-x compute=gpu-cluster", "`compute=`"),
        ("retrain model-x data=lake-data:6 dry-run", "`data=`"),
    ):
        answer = await alice.say(typed, "Nothing was started")
        assert (
            f"model-x is retrained by the Azure DevOps pipeline train-model-x, which takes no {given} from chat: it "
            "runs with the parameters configured for it (dataset=lake). Nothing was started; `retrain model-x` alone "
            "starts it."
        ) in answer, typed
    await asyncio.sleep(0.5)
    assert loop.suite.ado.runs == []
    assert await loop.server.store.list_command_runs() == []
    refused = [e.outcome for e in await loop.server.store.list_audit() if e.outcome.startswith("not started:")]
    assert len(refused) == 3

    await alice.say("retrain model-x", "Starting: Retrain model-x with the Azure DevOps pipeline train-model-x")
    await eventually(lambda: len(loop.suite.ado.runs) == 1)
    assert loop.suite.ado.runs[0].template_parameters["dataset"] == "lake"


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_an_option_given_twice_starts_nothing(loop: Loop, platform: str) -> None:
    bob = Person(loop, platform, "bob", "app-releases")
    answer = await bob.say("integrate app-y model=model-x:8 model=model-x:7", "is given twice")
    assert "`model` is given twice (`model=model-x:8` and `model=model-x:7`); give it once." in answer
    await asyncio.sleep(1)
    assert loop.suite.ado.runs == []
    assert await loop.server.store.list_command_runs(None, 10) == []


async def test_the_same_subscribe_twice_at_once_subscribes_the_channel_once(loop: Loop) -> None:
    """A double click (or bob and carol at the same moment): one subscription, so each event is posted once."""
    slack = loop.suite.slack
    typed = [
        ("bob", "subscribe events=run,approval pipelines=integrate-*"),
        ("bob", "subscribe events=run,approval pipelines=integrate-*"),
        ("carol", "subscribe pipelines=integrate-* events=approval,run"),
    ]
    await asyncio.gather(
        *(slack.send_slash_command("/handoff", text, channel="app-releases", user=user) for user, text in typed)
    )

    def answers() -> list[str] | None:
        posted = [m.text for m in slack_messages(loop, "app-releases") if m.by_bot]
        told = [m.text for user in ("bob", "carol") for m in slack.state.ephemeral_for(slack.world.user(user).id)]
        found = [a for a in posted + told if "subscription" in a]
        return found if len(found) == len(typed) else None

    said = await eventually(answers)
    [subscription] = await loop.server.store.list_subscriptions()
    assert sum(f"Subscribed this channel (subscription {subscription.id})" in a for a in said) == 1
    assert sum(f"has that subscription already (subscription {subscription.id})" in a for a in said) == 2


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_subscribe_combines_a_list_given_twice_or_with_spaces_and_answers_mistakes_plainly(
    loop: Loop, platform: str
) -> None:
    store = loop.server.store
    bob = Person(loop, platform, "bob", "app-releases")
    answer = await bob.say("subscribe events=run pipelines=integrate-* pipelines=release-*", "Subscribed this channel")
    assert "`events=run pipelines=integrate-*,release-*`" in answer
    [first] = await store.list_subscriptions()
    assert first.filters == {"events": ["run"], "pipelines": ["integrate-*", "release-*"]}

    answer = await bob.say("subscribe mentions=maybe", "Nothing was subscribed")
    assert "Nothing was subscribed: `mentions` takes on or off, not `maybe`. `help subscribe`" in answer
    answer = await bob.say("subscribe events=runs", "Nothing was subscribed")
    assert "`events`: `runs` is not one of run, stage, approval," in answer and "did you mean `run`?" in answer
    # a filter that does not exist, or one without a value: one line, as the other filter mistakes
    for typed, said in [
        ("subscribe colour=red", "`colour` is not a filter of `subscribe`."),
        ("subscribe branch=main", "`branch` is not a filter of `subscribe`. Did you mean `branches`?"),
        ("subscribe tag=prod", "`tag` is not a filter of `subscribe`. Did you mean `tags.<key>`?"),
        ("subscribe tag.stage=prod", "`tag.stage` is not a filter of `subscribe`. Did you mean `tags.<key>`?"),
        (
            "subscribe mute=1h",
            "`mute` is not a filter of `subscribe`. Did you mean the command `mute`, such as `mute 3 for=4h`?",
        ),
        ("subscribe branches=", "the filter `branches=` needs a value."),
    ]:
        answer = await bob.say(typed, "Nothing was subscribed")
        assert f"Nothing was subscribed: {said} `help subscribe` shows the filters." in answer, typed
        assert "Usage" not in answer and "text_include" not in answer, typed  # not the whole help
    # an outcome filter on kinds that have none would let every one of them through: said, not subscribed
    answer = await bob.say("subscribe events=model_registered outcomes=failed", "Nothing was subscribed")
    assert "`outcomes=failed` never applies to model_registered: it has no outcome, so every one would be sent." in (
        answer
    )
    # filters that contradict each other would match nothing: said, not subscribed
    answer = await bob.say("subscribe actors_include=me actors_exclude=me", "Nothing was subscribed")
    assert "`actors_include` and `actors_exclude` both name bob@contoso.com, so nothing would ever come." in answer
    answer = await bob.say("subscribe events=model_registered tags.stage=prod tags.Stage=dev", "Nothing was subscribed")
    assert "`tags.stage` and `tags.Stage` name the same tag (tag names go without case): give it once." in answer
    assert len(await store.list_subscriptions()) == 1

    answer = await bob.say("subscribe events=run,  approval", "Subscribed this channel")
    assert "`events=run,approval`" in answer
    second = (await store.list_subscriptions())[-1]
    assert second.filters == {"events": ["run", "approval"]}
    # the same subscription again, in another order, adds nothing and says which it is
    answer = await bob.say("subscribe events=approval,run", "has that subscription already")
    assert f"This channel has that subscription already (subscription {second.id}): `events=run,approval`." in answer
    assert [s.id for s in await store.list_subscriptions()] == [first.id, second.id]

    answer = await bob.say("""subscribe text_exclude="bob's run" """, "Subscribed this channel")
    assert """failures, approvals and new models with `text_exclude="bob's run"`""" in answer  # the defaults, narrowed
    assert (await store.list_subscriptions())[-1].filters["text_exclude"] == ["bob's run"]


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_run_is_named_by_its_number_with_or_without_a_hash(loop: Loop, platform: str) -> None:
    bob = Person(loop, platform, "bob", "app-releases")
    answer = await bob.say("cancel abc", "`cancel` takes a run number")
    assert "`cancel` takes a run number, such as `cancel 12`, and `abc` is none. `runs` lists" in answer
    await bob.say("status #abc", "`#abc` is no run number: `status 12` or `status #12` shows run 12")
    await bob.say("integrate app-y", "Starting:")
    run = await command_run(loop, is_running)
    await bob.say(f"status #{run.id}", f"Run {run.id} (Azure DevOps run integrate-app-y ")
    await bob.say(f"cancel #{run.id}", f"Canceling run {run.id} (`integrate app-y model=model-x:7`")
    (ado_run,) = loop.suite.ado.runs
    await eventually(lambda: ado_run.result == "canceled")


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_a_run_number_too_big_for_any_run_names_no_run(loop: Loop, platform: str) -> None:
    bob = Person(loop, platform, "bob", "app-releases")
    await bob.say("status 99999999999999999999", "Handoff started no run 99999999999999999999.")
    await bob.say("cancel #9223372036854775808", "Handoff started no run 9223372036854775808.")
    await bob.say("status 1000000000000000000", "Handoff started no run 1000000000000000000.")


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_integrate_against_a_model_without_a_name_says_so_and_starts_nothing(loop: Loop, platform: str) -> None:
    bob = Person(loop, platform, "bob", "app-releases")
    answer = await bob.say("integrate app-y model=:8", "names no model name")
    assert "`model=:8` names no model name. Write the model as name:version, for example `model=model-x:8`." in answer
    await asyncio.sleep(0.5)
    assert loop.suite.ado.runs == []


# --- a command that starts with a mention ------------------------------------------------------------


@pytest.mark.parametrize("written", ["<@{bot}>", "<@{bot}|handoff>"], ids=["id", "id-and-name"])
async def test_a_slash_command_that_starts_with_handoffs_mention_runs_the_command_after_it(
    start_loop: Callable[..., Awaitable[Loop]], written: str
) -> None:
    loop = await start_loop(no_confirmation)
    bot = loop.suite.slack.world.bot_user_id
    alice = Person(loop, "slack", "alice", "ml-models")
    answer = await alice.say(f"{written.format(bot=bot)} retrain model-x", "Starting: Retrain model-x")
    assert bot not in answer and "not a command" not in answer
    run = await command_run(loop, is_running)
    assert run.command == "retrain model-x"
    [job] = await eventually(lambda: [r for r in jobs(loop) if r.status in (200, 201)])
    assert job.json()["properties"]["displayName"] == "train-model-x"


async def test_a_command_that_starts_with_someone_elses_mention_names_them_as_slack_shows_them(loop: Loop) -> None:
    slack = loop.suite.slack
    carol, nobody = slack.world.user("carol").id, "U0N0B0DY999"
    bob = Person(loop, "slack", "bob", "ml-models")
    answer = await bob.say(f"<@{carol}> retrain model-x", "is not a command")
    assert "`@Carol Diaz` is not a command." in answer and "Type `help` to see the commands." in answer
    assert carol not in answer and carol.lower() not in answer
    # someone Slack says nothing of is named by the id the mention carries, never by its markup
    answer = await bob.say(f"<@{nobody}|someone> status", "is not a command")
    assert "`@someone` is not a command." in answer and "<@" not in answer

    # @Handoff @Carol retrain model-x, as a mention in the channel: answered in its thread
    await slack.mention_bot(f"<@{carol}> retrain model-x", channel="ml-models", user="bob")
    [mention] = [m for m in slack_messages(loop, "ml-models") if not m.by_bot and carol in m.text]
    bob_id = slack.world.user("bob").id

    def answers() -> list[str]:
        private = [m for m in slack.state.ephemeral_for(bob_id) if m.thread_ts == mention.ts]
        return [html.unescape(blocks_text(m)) for m in [*private, *mention.replies]]

    answer = await eventually(lambda: next((a for a in answers() if "is not a command" in a), None))
    assert "`@Carol Diaz` is not a command." in answer and carol not in answer
    await asyncio.sleep(0.5)
    assert jobs(loop) == [] and await loop.server.store.list_command_runs(None, 1) == []


async def test_teams_commands_drop_handoffs_mentions_wherever_they_are_and_name_other_people(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(no_confirmation)
    bot = loop.suite.teams.world.bot_id
    alice = Person(loop, "teams", "alice", "ml-models")
    # several mentions: the first one is the command's, and it is a person, not a command
    answer = await alice.say("<at>Handoff</at> <at>Carol Diaz</at> retrain model-x", "is not a command", mention=False)
    assert "`@Carol Diaz` is not a command." in answer
    answer = await alice.say("<at>Bob Chen</at> <at>Handoff</at> status", "is not a command", mention=False)
    assert "`@Bob Chen` is not a command." in answer
    await asyncio.sleep(0.5)
    assert jobs(loop) == []
    # Handoff's name in a command's words is a word like any other, not its mention
    answer = await alice.say("help Handoff", "is not a command")
    assert "`Handoff` is not a command." in answer
    # Handoff mentioned after the command, by the name its team gave it
    answer = await alice.say(
        "retrain model-x <at>Handoff (MLOps)</at>",
        "Starting: Retrain model-x",
        mention=False,
        mentions={"Handoff (MLOps)": bot},
    )
    assert "Handoff" not in answer.split("Starting:", 1)[0]
    run = await command_run(loop, is_running)
    assert run.command == "retrain model-x"
    assert len([r for r in jobs(loop) if r.status in (200, 201)]) == 1


async def test_a_command_typed_in_ones_own_slack_chat_with_handoff_is_answered_there_and_brings_its_cards(
    loop: Loop,
) -> None:
    """Bob types to Handoff in its Messages tab, no mention: his subscription is made for that chat, and the
    failure of a run he asked for comes there."""
    slack, ado = loop.suite.slack, loop.suite.ado
    bob = slack.world.user("bob")
    await slack.message_bot("subscribe events=run outcomes=failed actors_include=me", user="bob")
    chat = slack.state.im(bob.id)
    answer = await eventually(lambda: next((m for m in chat.messages if m.by_bot), None))
    assert "Subscribed" in answer.text and "actors_include=bob@contoso.com" in blocks_text(answer)
    [stored] = await loop.server.store.list_subscriptions()
    assert stored.conversation.conversation_id.endswith(chat.id)

    ado.script_next_run(
        "integrate-app-y", fail_stage="Integration tests", durations={"Build": 1, "Integration tests": 1}
    )
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    card = await eventually(lambda: next((m for m in chat.messages if run.name in blocks_text(m)), None), timeout=30)
    await eventually(lambda: "Failed" in blocks_text(card), timeout=30)
