"""`reasons=`: a channel takes the runs started for the reasons it names (manual, ci, pr…), and not the others.
A run's and a stage's hooks do not say why the run started (Handoff asks the Build API, once per run);
build.complete does. Emulators → Handoff → the Slack emulator."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.conftest import Loop, Person, blocks_text, eventually
from tests.e2e.test_routing_by_run import BUILD_ROUTE, about, only_chat_subscriptions


async def test_a_channel_following_manual_runs_gets_their_cards_and_not_a_pull_requests(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run reasons=manual", "Subscribed this channel")
    assert "`events=run reasons=manual`" in answer

    by_hand = ado.start_run("integrate-app-y", requested_by="carol@contoso.com")
    await ado.wait_for_run(by_hand.id, timeout=30)
    for_a_pull_request = ado.start_run("integrate-app-y", requested_by="carol@contoso.com", reason="pullRequest")
    await ado.wait_for_run(for_a_pull_request.id, timeout=30)
    await ado.drain(timeout=30)  # every hook of both runs answered: routed and stored

    [card] = await eventually(lambda: about(loop, "app-releases", by_hand.name))
    await eventually(lambda: "Succeeded" in blocks_text(card))
    assert "*Reason*\\nManual" in blocks_text(card)  # and the card says why the run started
    await asyncio.sleep(1.5)  # (the outbox would have posted the pull request's run by now)
    assert about(loop, "app-releases", for_a_pull_request.name) == []
    # why each run started was read once per run, for all of its events
    assert len(ado.recorder.matching(BUILD_ROUTE.format(by_hand.id))) == 1
    assert len(ado.recorder.matching(BUILD_ROUTE.format(for_a_pull_request.id))) == 1

    # the events were stored with what routing learned: a dry run tells them apart by reason too
    answer = await bob.say("subscribe events=run reasons=pr dry-run", "Dry run, nothing subscribed")
    assert "`events=run reasons=pr` would have sent" in answer and "on 1 card" in answer
    assert for_a_pull_request.name in answer and by_hand.name not in answer
    answer = await bob.say("subscribe events=run reasons=ci,schedule dry-run", "Dry run, nothing subscribed")
    assert "would have sent none here." in answer


async def test_a_dry_run_counts_apart_the_runs_whose_events_do_not_say_why_they_started(start_loop: Any) -> None:
    """No subscription filtered on reasons as the run went, so Handoff did not ask Azure DevOps why it started (a
    pipeline no model version is configured for): a dry run does not decide it by a reason nobody told."""
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    run = ado.start_run("train-model-x", requested_by="carol@contoso.com")
    await ado.wait_for_run(run.id, timeout=30)
    await ado.drain(timeout=30)
    assert ado.recorder.matching(BUILD_ROUTE.format(run.id)) == []
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run reasons=manual dry-run", "Dry run, nothing subscribed")
    assert "(of 1 run) do not say why the run started, so whether `events=run reasons=manual` would send" in answer


async def test_an_unknown_reason_is_refused_with_the_valid_ones(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run reasons=manual,nightly", "Nothing was subscribed")
    assert "`reasons`: `nightly` is not a reason a run starts for: use manual, ci, pr" in answer
    answer = await bob.say("subscribe events=run reasons=!pr", "Nothing was subscribed")
    assert "takes no negation" in answer
    assert await loop.server.store.list_subscriptions() == []


async def test_the_same_reasons_typed_another_way_are_the_same_subscription(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    bob = Person(loop, "slack", "bob", "app-releases")
    answer = await bob.say("subscribe events=run reasons=pull_request,Scheduled,individualci", "Subscribed")
    assert "`events=run reasons=pr,schedule,individualCI`" in answer
    answer = await bob.say("subscribe events=run reasons=pullRequest,schedule,individualCI", "already")
    [stored] = await loop.server.store.list_subscriptions()
    assert f"(subscription {stored.id})" in answer
    assert stored.filters["reasons"] == ["pr", "schedule", "individualCI"]


async def test_build_complete_says_why_the_run_started_without_asking_the_build_api(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    for subscription_id, subscription in list(ado.webhooks.subscriptions.items()):
        ado.remove_webhook(subscription_id)
        ado.add_webhook(subscription.url, ["build.complete"], basic=subscription.basic)
    carol = Person(loop, "slack", "carol", "app-releases")
    await carol.say("subscribe events=run reasons=PR", "Subscribed this channel")

    by_hand = ado.start_run("train-model-x", requested_by="bob@contoso.com")
    await ado.wait_for_run(by_hand.id, timeout=30)
    for_a_pull_request = ado.start_run("train-model-x", requested_by="bob@contoso.com", reason="pullRequest")
    await ado.wait_for_run(for_a_pull_request.id, timeout=30)
    await ado.drain(timeout=30)

    [card] = await eventually(lambda: about(loop, "app-releases", for_a_pull_request.name))
    assert "*Reason*\\nPull request" in blocks_text(card)
    await asyncio.sleep(1.5)
    assert about(loop, "app-releases", by_hand.name) == []
    assert ado.recorder.matching("GET /contoso/mlops/_apis/build/builds/*") == []


async def test_an_approval_goes_by_why_its_run_started(start_loop: Any) -> None:
    loop: Loop = await start_loop(only_chat_subscriptions)
    ado = loop.suite.ado
    carol = Person(loop, "slack", "carol", "app-releases")
    await carol.say("subscribe events=approval reasons=manual,schedule", "Subscribed this channel")
    releases = {}
    for reason, version in (("manual", "7"), ("pullRequest", "8")):
        run = ado.start_run(
            "release-app-y",
            requested_by="bob@contoso.com",
            parameters={"modelName": "model-x", "modelVersion": version},
            branch="refs/heads/main",
            reason=reason,
        )
        await ado.wait_for_approval(run.id, timeout=30)
        releases[reason] = run
    await ado.drain(timeout=30)
    await eventually(lambda: about(loop, "app-releases", releases["manual"].name))
    await asyncio.sleep(1.5)  # (the outbox would have posted the pull request's gate by now)
    assert about(loop, "app-releases", releases["pullRequest"].name) == []
