"""Who may cancel a run Handoff started, and what a command repeated while its run goes on is told.

Through the real core and the emulators: what Azure ML received, what the store and the audit log hold,
and what Slack and Teams show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from adapters.emulators.base import Fault
from bot.records import CONFIRMATION_KEY_PREFIX, CommandRun, CommandRunState, DeliveryState
from tests.e2e.conftest import (
    Loop,
    Person,
    blocks_text,
    command_run,
    eventually,
    is_running,
    slack_messages,
)
from tests.e2e.test_commands import ALICE, button, confirmation, ephemerals, jobs

ALICE_EMAIL = "alice@contoso.com"


def carol_is_a_data_scientist(config: dict[str, Any]) -> None:
    config["roles"]["data-scientists"]["members"].append("carol@contoso.com")


async def confirmed_retrain(loop: Loop) -> tuple[CommandRun, str]:
    """Alice's `/retrain model-x` in #ml-models, confirmed, its Azure ML job running for two minutes."""
    loop.suite.aml.script_next_job(duration=120)
    slack = loop.suite.slack
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    await slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"])
    run = await command_run(loop, is_running)
    job_name = str(run.backend_run_id)
    await loop.suite.aml.jobs.wait_for(job_name, "Running", timeout=30)
    return run, job_name


def cancels(loop: Loop, job_name: str) -> list[Any]:
    return loop.suite.aml.recorder.matching(f"POST /subscriptions/**/jobs/{job_name}/cancel")


async def all_delivered(loop: Loop) -> None:
    async def pending() -> int:
        return int((await loop.server.store.count_deliveries([DeliveryState.PENDING])).get("pending", 0))

    for _ in range(100):
        if not await pending():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("deliveries still pending")


def run_card(loop: Loop, job_name: str) -> Any:
    return next((m for m in slack_messages(loop, "ml-models") if f"/{job_name}" in m.text), None)


@pytest.mark.parametrize("platform", ["slack", "teams"])
async def test_someone_who_may_not_run_a_runs_command_is_refused_its_cancel_and_the_refusal_is_recorded(
    loop: Loop, platform: str
) -> None:
    run, job_name = await confirmed_retrain(loop)
    bob = Person(loop, platform, "bob", "ml-models")

    answer = await bob.say(f"cancel {run.id}", "can't cancel")
    assert (
        f"Sorry, you can't cancel run {run.id} (`retrain model-x`, Azure ML job {job_name}). "
        "Only Alice Martin, who asked for it, or people in data-scientists may cancel it."
    ) in answer
    assert cancels(loop, job_name) == []  # Azure ML was asked nothing
    assert loop.suite.aml.state.jobs[job_name].status == "Running"
    stored = await loop.server.store.get_command_run(run.id or 0)
    assert stored is not None and stored.state is CommandRunState.STARTED and "canceled_by" not in stored.details
    [refusal] = [e for e in await loop.server.store.list_audit() if e.target == f"cancel {run.id}"]
    assert refusal.actor == "bob@contoso.com" and refusal.platform == platform
    assert refusal.outcome == (
        "refused: Only Alice Martin, who asked for it, or people in data-scientists may cancel it."
    )


async def test_who_asked_for_a_run_cancels_it_from_another_platform_and_its_card_thread_says_who(loop: Loop) -> None:
    run, job_name = await confirmed_retrain(loop)
    card = await eventually(lambda: run_card(loop, job_name))
    # alice asked in Slack's #ml-models; she cancels from Teams' App releases, where the card is not
    alice = Person(loop, "teams", "alice", "app-releases")

    answer = await alice.say(f"cancel {run.id}", f"Canceling run {run.id}")
    assert f"Canceling run {run.id} (`retrain model-x`, Azure ML job {job_name}). Its card's thread says" in answer
    assert [r.status for r in cancels(loop, job_name)] == [202]
    stored = await command_run(loop, lambda r: r.state is CommandRunState.CANCELED, run.id)
    assert stored.details["canceled_by"] == {"name": "Alice Martin", "who": ALICE_EMAIL, "platform": "teams"}
    [entry] = [e for e in await loop.server.store.list_audit() if e.target == f"cancel {run.id}"]
    assert entry.actor == ALICE_EMAIL
    assert entry.outcome == (
        f"canceled run {run.id} (`retrain model-x`, Azure ML job {job_name}), asked for by Alice Martin"
    )
    # the card's own thread in #ml-models says who canceled it: not a post of its own in the channel
    said = await eventually(lambda: next((r for r in card.replies if "Canceled by" in r.text), None))
    assert "Canceled by Alice Martin" in blocks_text(said)
    assert "<@" not in blocks_text(said)  # she canceled her own run: nobody is called on
    await eventually(lambda: "Canceled" in blocks_text(card))
    await all_delivered(loop)
    assert not [m for m in slack_messages(loop, "ml-models") if m.by_bot and "Canceling run" in blocks_text(m)]


async def test_someone_else_who_may_run_its_command_cancels_a_run_and_its_thread_calls_on_who_asked(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    loop = await start_loop(carol_is_a_data_scientist)
    run, job_name = await confirmed_retrain(loop)
    card = await eventually(lambda: run_card(loop, job_name))
    carol = Person(loop, "slack", "carol", "ml-models")

    answer = await carol.say(f"cancel {run.id}", f"Canceling run {run.id}")
    assert "can't cancel" not in answer
    assert [r.status for r in cancels(loop, job_name)] == [202]
    stored = await command_run(loop, lambda r: r.state is CommandRunState.CANCELED, run.id)
    assert stored.details["canceled_by"]["who"] == "carol@contoso.com"
    said = await eventually(lambda: next((r for r in card.replies if "Canceled by" in r.text), None))
    alice_id = loop.suite.slack.world.user("alice").id
    assert "Canceled by Carol" in blocks_text(said) and f"<@{alice_id}>" in blocks_text(said)
    assert f"canceled run {run.id}, which Alice Martin asked for." in blocks_text(said)
    # `status` and `runs` say who canceled it
    answer = await carol.say(f"status {run.id}", f"Run {run.id} (")
    assert "`retrain model-x` by Alice Martin, canceled by Carol " in answer
    answer = await carol.say("runs", "newest first")
    assert f"• {run.id}: `retrain model-x` by Alice Martin, canceled by Carol " in answer
    # the answer to carol is hers alone: the channel hears it from the card's thread
    await all_delivered(loop)
    assert not [m for m in slack_messages(loop, "ml-models") if m.by_bot and "Canceling run" in blocks_text(m)]


async def test_the_same_confirmed_command_while_its_run_starts_or_runs_says_how_it_stands_without_asking_again(
    loop: Loop,
) -> None:
    aml = loop.suite.aml
    aml.script_next_job(duration=120)
    aml.faults.add("PUT /subscriptions/**/jobs/*", [Fault("stall", stall_seconds=3)])
    slack = loop.suite.slack
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    message, confirm = await confirmation(loop, ALICE)
    await slack.click_button(message.ts, "confirm", user="alice", value=confirm["value"])
    starting = await command_run(loop, lambda r: "confirmed_at" in r.details)
    assert starting.state is CommandRunState.REQUESTED  # Azure ML is still holding the submission
    await eventually(lambda: not [m for m in ephemerals(loop, ALICE) if button(m, "confirm")])  # Confirmed

    alice = Person(loop, "slack", "alice", "ml-models")
    answer = await alice.say("retrain model-x", "You already asked for this")
    assert f"it is still starting (run {starting.id}). Its card will follow in this channel." in answer

    run = await command_run(loop, is_running, starting.id)
    answer = await alice.say("retrain model-x", "You already asked for this")
    assert f"it is running as {run.backend_run_id} (run {run.id}). Its card is in this channel." in answer
    answer = await Person(loop, "teams", "alice", "ml-models").say("retrain model-x", "You already asked for this")
    assert f"it is running as {run.backend_run_id} (run {run.id}). `status {run.id}` shows how it stands." in answer

    # nothing asked for a confirmation again: no Confirm button, and no confirmation waits
    assert not [m for m in ephemerals(loop, ALICE) if button(m, "confirm")]
    assert await waiting_confirmations(loop, "retrain model-x") == []
    assert len(jobs(loop)) == 1

    # other options make another run: that asks first, as before
    await alice.say("retrain model-x compute=cpu-small", "Confirm: Retrain model-x")
    assert len(await waiting_confirmations(loop, "retrain model-x compute=cpu-small")) == 1


async def waiting_confirmations(loop: Loop, command: str) -> list[CommandRun]:
    """The confirmations of ``command`` still waiting for a click (the store's run lists leave them out)."""
    found = []
    newest = await command_run(loop)
    for number in range(1, (newest.id or 0) + 5):
        run = await loop.server.store.get_command_run(number)
        if (
            run is not None
            and run.idempotency_key.startswith(CONFIRMATION_KEY_PREFIX)
            and run.command == command
            and run.state is CommandRunState.REQUESTED
        ):
            found.append(run)
    return found
