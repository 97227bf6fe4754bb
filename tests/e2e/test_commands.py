"""Commands that start work, typed in Slack and Teams, against the emulators (issue: retrain, integrate).

Policy refuses politely, confirmation can be accepted, declined or left to expire, the same command
twice starts one run, the answer comes at once while Azure ML is stalled, and a run's card follows it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.emulators.base import Fault
from tests.e2e.conftest import Loop, card_text, eventually, slack_messages, teams_posts

ALICE, BOB = "U0A11CE0001", "U0B0B000002"


def ephemerals(loop: Loop, user: str) -> list[Any]:
    return list(loop.suite.slack.state.ephemeral_for(user))


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


async def test_unknown_commands_get_help(loop: Loop) -> None:
    slack = loop.suite.slack
    await slack.send_slash_command("/handoff", "retrian model-x", channel="ml-models", user="alice")
    answer = await eventually(lambda: next((m for m in ephemerals(loop, ALICE) if "Did you mean" in m.text), None))
    assert "`retrain`" in answer.text
