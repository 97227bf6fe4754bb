"""Filters on what a run's hooks leave out: who asked for the run, the branch an approval's run built, the
stage an approval waits at as people see it. Handoff fills them in from Azure DevOps (the emulator) and
routes by them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.emulators.base import Fault
from tests.e2e.conftest import Loop, Person, blocks_text, eventually, slack_messages

BUILD_ROUTE = "GET /contoso/mlops/_apis/build/builds/{}"


def only_chat_subscriptions(config: dict[str, Any]) -> None:
    """A configuration tweak: the configuration file routes no run or approval anywhere (chat will)."""
    config["subscriptions"] = [s for s in config["subscriptions"] if s["channel"] != "app-releases"]


def about(loop: Loop, channel: str, what: str) -> list[Any]:
    """The messages in ``channel`` whose card or text names ``what`` (a run's name)."""
    return [m for m in slack_messages(loop, channel) if what in blocks_text(m)]


async def failed_run(
    loop: Loop, requested_by: str, pipeline: str = "integrate-app-y", stage: str = "", **how: Any
) -> Any:
    """A run of ``pipeline`` that ``requested_by`` started and that failed in ``stage`` (Integration tests unless
    said; ``how`` as ``start_run`` takes it), once it has ended."""
    ado = loop.suite.ado
    ado.script_next_run(pipeline, fail_stage=stage or "Integration tests")
    run = ado.start_run(pipeline, requested_by=requested_by, **how)
    await ado.wait_for_run(run.id, timeout=30)
    return run


async def test_actors_exclude_me_leaves_out_the_runs_you_asked_for(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run pipelines=integrate-* actors_exclude=me", "Subscribed this channel")
    assert "actors_exclude=bob@contoso.com" in answer

    # carol's run is not bob's: its card comes, from the start (the run-started hook names no requester)
    carols = ado.start_run("integrate-app-y", requested_by="carol@contoso.com")
    await ado.wait_for_run(carols.id, timeout=30)
    await eventually(lambda: any("Succeeded" in blocks_text(m) for m in about(loop, "app-releases", carols.name)))
    # who asked for the run was read once, for all of its events
    assert len(ado.recorder.matching(BUILD_ROUTE.format(carols.id))) == 1

    bobs = await failed_run(loop, "bob@contoso.com")
    await ado.drain(timeout=30)  # every hook of bob's run answered: routed and stored
    await asyncio.sleep(1.5)  # (the outbox would have posted by now)
    assert about(loop, "app-releases", bobs.name) == []
    channel = loop.suite.slack.state.channel("app-releases")
    assert not any(bobs.name in blocks_text(r) for m in channel.messages for r in m.replies)


async def test_a_dry_run_with_an_actor_filter_tells_apart_the_runs_whose_events_do_not_say_who_asked(
    start_loop: Any,
) -> None:
    """No subscription filtered on people as these runs went, so Handoff did not ask Azure DevOps who asked for
    them (train-model-x starts with no model version to read either): bob's run's hooks never say, carol's failure
    does (and so names who asked for her run's other events). A dry run does not decide bob's run by a requester
    nobody told, as the subscription would not."""
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    quick = {"PrepareData": 0.2, "Train": 0.2, "Evaluate": 0.2, "Register": 0.2}
    ado.script_next_run("train-model-x", durations=quick)
    bobs = ado.start_run("train-model-x", requested_by="bob@contoso.com")
    await ado.wait_for_run(bobs.id, timeout=30)
    ado.script_next_run("train-model-x", fail_stage="Train", durations=quick)
    carols = ado.start_run("train-model-x", requested_by="carol@contoso.com")
    await ado.wait_for_run(carols.id, timeout=30)
    await ado.drain(timeout=30)
    bob = Person(loop, "slack", "bob", "app-releases")
    unsaid = (
        "2 (of 1 run) do not say who asked for the run, so whether `events=run actors_include=bob@contoso.com` "
        "would send them is decided as such events arrive, when Handoff asks Azure DevOps. Of the others, it "
        "would have sent none here."
    )
    answer = await bob.say("subscribe events=run actors_include=me dry-run", "Dry run, nothing subscribed")
    assert unsaid in answer
    assert "• " not in answer
    # carol's run: her failure names her, and with it the run's start, whose hook does not
    answer = await bob.say("subscribe events=run actors_exclude=carol@contoso.com dry-run", "Dry run")
    assert "Of the others, it would have sent none here." in answer
    assert carols.name not in answer
    answer = await bob.say("subscribe events=run actors_include=carol@contoso.com dry-run", "Dry run")
    assert "Of the others, it would have sent 2 here, on 1 card, the newest:\n• Failed: train-model-x" in answer
    # without an actor filter, who asked decides nothing: every run event counts
    answer = await bob.say("subscribe events=run dry-run", "Dry run")
    assert "`events=run` would have sent 4 here, on 2 cards" in answer and "do not say" not in answer
    assert await loop.server.store.list_subscriptions() == []


async def test_a_run_shown_before_its_requester_was_known_calls_on_nobody_where_they_are_left_out(
    start_loop: Any,
) -> None:
    """Azure DevOps did not say in time who asked for the run as it started: its card went to the channel, as
    for anyone's run. Once its failure names bob, who left his own runs out there, the card is kept current
    but calls on nobody, and no reply follows it there."""
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("subscribe events=run pipelines=integrate-* actors_exclude=me", "Subscribed this channel")
    ado.faults.add("GET /contoso/mlops/_apis/build/builds/*", [Fault("stall", stall_seconds=3.0)])
    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    bobs = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    [card] = await eventually(lambda: about(loop, "app-releases", bobs.name))
    await ado.wait_for_run(bobs.id, timeout=30)
    await ado.drain(timeout=30)
    await eventually(lambda: "Failed" in blocks_text(card))
    await asyncio.sleep(1.5)  # (a reply would have been posted by now)
    assert "Integration tests" in blocks_text(card)
    assert card.replies == []
    assert "<@" not in blocks_text(card)
    assert about(loop, "app-releases", bobs.name) == [card]


async def start_release_on_main(loop: Loop) -> None:
    """bob starts a release of app-y on main; it waits at production's approval."""
    ado = loop.suite.ado
    run = ado.start_run(
        "release-app-y",
        requested_by="bob@contoso.com",
        parameters={"modelName": "model-x", "modelVersion": "7"},
        branch="refs/heads/main",
    )
    await ado.wait_for_approval(run.id, timeout=30)
    await ado.drain(timeout=30)


async def test_an_approval_goes_by_its_stage_display_name_as_the_run_card_does(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    releases = Person(loop, "slack", "carol", "app-releases")
    await releases.say("subscribe events=approval stages=Deploy*", "Subscribed this channel")
    await start_release_on_main(loop)
    # the gate waits at stage Production, which people (and the run's card) know as "Deploy to production"
    [gate] = await eventually(lambda: about(loop, "app-releases", "Release release-app-y"))
    assert "Deploy to production" in blocks_text(gate)
    assert '"Production"' not in blocks_text(gate)


async def test_an_approval_matches_the_branch_its_run_built(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    await start_release_on_main(loop)
    # the approval's hook does not say which branch its run built: Azure DevOps' Build API does
    carol = Person(loop, "slack", "carol", "app-releases")
    answer = await carol.say("subscribe events=approval branches=main dry-run", "Dry run, nothing subscribed")
    assert "`events=approval branches=main` would have sent 1 here, on 1 card" in answer
    answer = await carol.say("subscribe events=approval branches=develop dry-run", "Dry run, nothing subscribed")
    assert "would have sent none here." in answer
    await carol.say("subscribe events=approval branches=main", "Subscribed this channel")
    run = loop.suite.ado.start_run(
        "release-app-y",
        requested_by="bob@contoso.com",
        parameters={"modelName": "model-x", "modelVersion": "8"},
        branch="refs/heads/main",
    )
    await eventually(lambda: about(loop, "app-releases", run.name))


async def test_actors_exclude_me_leaves_out_the_gates_of_the_runs_you_asked_for(start_loop: Any) -> None:
    """A pending approval's hook does not say who asked for its run: the Build API does, and the gate goes as
    theirs."""
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("subscribe events=approval actors_exclude=me", "Subscribed this channel")
    releases = {}
    for who, version in (("bob", "7"), ("carol", "8")):
        run = ado.start_run(
            "release-app-y",
            requested_by=f"{who}@contoso.com",
            parameters={"modelName": "model-x", "modelVersion": version},
            branch="refs/heads/main",
        )
        await ado.wait_for_approval(run.id, timeout=30)
        releases[who] = run
    await ado.drain(timeout=30)
    await eventually(lambda: about(loop, "app-releases", releases["carol"].name))
    await asyncio.sleep(1.5)  # (the outbox would have posted bob's gate by now)
    assert about(loop, "app-releases", releases["bob"].name) == []


async def test_runs_go_by_the_branch_they_built_though_their_hooks_name_none(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("subscribe events=run branches=main", "Subscribed this channel")

    on_main = ado.start_run("integrate-app-y", requested_by="carol@contoso.com", branch="refs/heads/main")
    await ado.wait_for_run(on_main.id, timeout=30)
    elsewhere = ado.start_run("integrate-app-y", requested_by="carol@contoso.com", branch="refs/heads/develop")
    await ado.wait_for_run(elsewhere.id, timeout=30)
    await ado.drain(timeout=30)
    card = await eventually(
        lambda: [m for m in about(loop, "app-releases", on_main.name) if "Succeeded" in blocks_text(m)]
    )
    assert "*Branch*\\nmain" in blocks_text(card[0])  # and the card names it
    await asyncio.sleep(1.5)  # (the outbox would have posted the other run by now)
    assert about(loop, "app-releases", elsewhere.name) == []
    # the branch was read once per run, for all of its events
    assert len(ado.recorder.matching(BUILD_ROUTE.format(on_main.id))) == 1


async def test_a_failure_goes_by_the_branch_its_failure_details_name(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("subscribe events=run outcomes=failed branches=main", "Subscribed this channel")

    elsewhere = await failed_run(loop, "carol@contoso.com", branch="refs/heads/develop")
    on_main = await failed_run(loop, "carol@contoso.com", branch="refs/heads/main")
    await ado.drain(timeout=30)
    card = await eventually(lambda: about(loop, "app-releases", on_main.name))
    assert "Integration tests" in blocks_text(card[0])
    await asyncio.sleep(1.5)
    assert about(loop, "app-releases", elsewhere.name) == []


async def test_a_failure_goes_by_the_own_name_of_the_stage_it_failed_in_as_a_stages_events_do(
    start_loop: Any,
) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    bob = Person(loop, "slack", "bob", "app-releases")
    # the stage people see as "Integration tests" is named IntegrationTests in the pipeline's YAML
    await bob.say("subscribe events=run outcomes=failed stages=IntegrationTests", "Subscribed this channel")
    failed = await failed_run(loop, "carol@contoso.com")
    [card] = await eventually(lambda: about(loop, "app-releases", failed.name))
    assert "Integration tests" in blocks_text(card)


@pytest.mark.parametrize("typed", ["environments=production", "stages=Deploy*"])
async def test_an_environment_or_stage_typed_alone_narrows_the_defaults_to_what_has_one(
    start_loop: Any, typed: str
) -> None:
    """`subscribe environments=production` (or `stages=Deploy*`) is the defaults there: production's gate
    comes, and a failed run, which names no environment (and failed in another stage), does not."""
    loop: Loop = await start_loop(only_chat_subscriptions)
    carol = Person(loop, "slack", "carol", "app-releases")
    answer = await carol.say(f"subscribe {typed}", "Subscribed this channel")
    # what can come is said, not what the defaults would bring without the filter
    said = {
        "environments=production": "classic releases' failed deployments and approvals",
        "stages=Deploy*": ("failed runs and approvals"),
    }[typed]
    assert f"{said} with `{typed}`" in answer
    await failed_run(loop, "bob@contoso.com")
    await start_release_on_main(loop)
    [gate] = await eventually(lambda: about(loop, "app-releases", "Release release-app-y"))
    assert "Deploy to production" in blocks_text(gate)
    await asyncio.sleep(1.5)  # (the outbox would have posted the failed run by now)
    assert about(loop, "app-releases", "integrate-app-y") == []


async def test_a_run_that_fails_in_a_stage_the_channel_leaves_out_calls_on_nobody_there(start_loop: Any) -> None:
    """`events=run stages=Integration*`: a run is shown as it starts (which stage it will fail in is not known yet);
    its failure in Train changes its card there, but calls on nobody and is not told in its thread or the
    channel. A failure in Integration tests is told, calling on who asked for the run."""
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    await bob.say("subscribe events=run stages=Integration*", "Subscribed this channel")
    await failed_run(loop, "carol@contoso.com", "train-model-x", stage="Train")
    await failed_run(loop, "carol@contoso.com")
    await ado.drain(timeout=30)

    [card] = await eventually(lambda: about(loop, "app-releases", "train-model-x"))
    await eventually(lambda: "Failed" in blocks_text(card) and "Train" in blocks_text(card))
    [told] = await eventually(lambda: about(loop, "app-releases", "integrate-app-y"))
    await eventually(lambda: told.replies and "<@" in blocks_text(told.replies[0]))
    await asyncio.sleep(1.5)  # (a reply or broadcast of the training run's failure would have been posted by now)
    assert "<@" not in blocks_text(card)
    assert card.replies == []
    assert about(loop, "app-releases", "train-model-x") == [card]  # no broadcast


async def test_a_project_named_by_its_id_brings_its_runs_and_an_unknown_project_is_warned_of(
    start_loop: Any,
) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run projects=mlopz", "Subscribed this channel")
    assert "But `mlopz` is no project Handoff follows (mlops): nothing comes from it." in answer
    answer = await bob.say(f"subscribe events=run,approval projects={ado.world.project_id}", "Subscribed this channel")
    assert "Handoff follows" not in answer
    run = ado.start_run("integrate-app-y", requested_by="carol@contoso.com")
    await ado.wait_for_run(run.id, timeout=30)
    [card] = await eventually(lambda: about(loop, "app-releases", run.name))
    await eventually(lambda: "Succeeded" in blocks_text(card))


async def test_while_the_build_api_is_down_each_runs_failure_is_told_without_asking_it_again(start_loop: Any) -> None:
    """Azure DevOps' Build API answers 503 (its pipelines still send their hooks): the first failure's hook asks it,
    in vain; the other runs' failures are told at once, without the stage or the requester it would have added,
    and without a request each to an organization that is down."""
    loop: Loop = await start_loop()
    ado = loop.suite.ado
    ado.faults.add("GET /contoso/mlops/_apis/build/builds/*", [Fault("503", retry_after=0.1)] * 100)
    runs = []
    for _ in range(3):
        run = await failed_run(loop, "bob@contoso.com")
        await ado.drain(timeout=30)
        runs.append(run)
    for run in runs:
        [card] = await eventually(lambda run=run: about(loop, "app-releases", run.name) or None)
        await eventually(lambda card=card: "Failed" in blocks_text(card))
    assert ado.recorder.matching(BUILD_ROUTE.format(runs[0].id))
    assert [run.id for run in runs[1:] if ado.recorder.matching(BUILD_ROUTE.format(run.id))] == []
