"""The Teams ChatChannel against the connector emulator: threads, updates, replies, people, failures, pacing."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from adapters.emulators.base import Fault
from adapters.emulators.botframework import default_world
from adapters.teams import MAX_CARD_BYTES
from adapters.teams.channel import SUMMARY_LENGTH
from adapters.teams.sending import SendPolicy
from bot.cards import Card, Mention, Status
from bot.outbox import OutboxWorker, RetryPolicy
from bot.ports import ConversationUnreachable, DeliveryFailed, MessageGone, PostedMessage, SendLater
from bot.records import ConversationAddress, NewDelivery

from .conftest import (
    BOB,
    GENERAL,
    MODELS,
    RELEASES,
    TENANT,
    Harness,
    adaptive_card,
    gate_card,
    shown_texts,
    texts,
    verbs,
    with_time_passing,
)


async def test_a_proactive_card_starts_a_thread_in_the_channel(
    harness: Harness, card_validator: jsonschema.protocols.Validator
) -> None:
    await harness.teams.install_app()

    posted = await harness.integration.channel.post_card(RELEASES, gate_card())

    thread = harness.teams.state.channel("App releases").posts
    assert [p.id for p in thread] == [posted.message_id]
    assert posted == PostedMessage(thread[0].id, thread[0].id)
    card = adaptive_card(thread[0].activity)
    card_validator.validate(card)
    assert texts(card)[0] == "Release app-y 2.3 with model-x:7 to prod"
    assert thread[0].activity["summary"] == "Waiting: Release app-y 2.3 with model-x:7 to prod. " + (
        "The integration tests passed; the release waits for approval."
    )
    # the thread was created with the channel's id, as send_message_to_teams_channel does
    created = harness.teams.recorder.matching("POST /v3/conversations")
    assert created[0].json()["channelData"]["channel"]["id"] == RELEASES


@pytest.mark.parametrize(
    "changed",
    [
        {"summary": "请在批准前检查集成测试结果和模型卡。" * 1500},
        {"title": "Release " + "ü🚀" * 5000},
    ],
    ids=["long instructions", "long run name"],
)
async def test_a_card_with_a_long_non_ascii_text_is_posted_with_a_short_summary(
    harness: Harness, changed: dict[str, str]
) -> None:
    await harness.teams.install_app()
    card = replace(gate_card(), **changed)

    posted = await harness.integration.channel.post_card(RELEASES, card)

    [post] = harness.teams.state.channel("App releases").posts
    assert post.id == posted.message_id
    summary = post.activity["summary"]
    assert len(summary) <= SUMMARY_LENGTH and summary.endswith("…")
    assert card.text.startswith(summary.removesuffix("…"))
    assert texts(adaptive_card(post.activity))[0].startswith("Release ")
    # the fitted card and the longest summary (12 bytes of JSON a character) leave room for the rest
    limit = default_world()["limits"]["max_message_bytes"]
    assert limit > MAX_CARD_BYTES + 12 * SUMMARY_LENGTH + 8_000


async def test_an_update_replaces_the_card_in_place(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, gate_card())

    await channel.update_card(RELEASES, posted, Card(title="Release app-y 2.3", status=Status.APPROVED))

    message = harness.teams.state.message(posted.message_id)
    assert len(message.versions) == 2
    assert texts(adaptive_card(message.activity))[:2] == ["Release app-y 2.3", "✅ Approved"]
    assert harness.teams.recorder.matching("PUT /v3/conversations/**")[0].status == 200


async def test_the_people_a_card_calls_on_are_mentioned_and_looked_up_once(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    bob = harness.teams.world.user("bob")
    calls_on = (Mention("Bob Chen", bob.user_principal_name.upper()), Mention("Dana", "dana@contoso.com"))
    gate = replace(gate_card(), mentions=calls_on)  # dana is not a member of the channel

    posted = await channel.post_card(RELEASES, gate)
    await channel.update_card(RELEASES, posted, replace(gate, summary="One approval recorded"))
    await channel.reply(RELEASES, posted, Card(title="Approved by carol", status=Status.WAITING, mentions=calls_on))

    message = harness.teams.state.message(posted.message_id)
    reply = harness.teams.state.channel("App releases").posts[0].replies[0]
    for activity in (message.versions[0], message.activity, reply.activity):
        card = adaptive_card(activity)
        assert card["body"][-1]["text"] == f"<at>{bob.name}</at>"
        assert [e["mentioned"]["id"] for e in card["msteams"]["entities"]] == [BOB]
    # bob's answer and dana's "not a member" are each asked for once, then reused
    lookups = harness.teams.recorder.matching(f"GET /v3/conversations/{RELEASES}/members/*")
    assert sorted(r.path.rsplit("/", 1)[1].lower() for r in lookups) == sorted(
        [bob.user_principal_name.lower(), "dana@contoso.com"]
    )


async def test_people_called_on_by_teams_or_aad_id_are_mentioned_and_slack_ids_never_shown(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    alice, bob = harness.teams.world.user("alice"), harness.teams.world.user("bob")
    calls_on = (
        Mention("", user_id=f"aad:{alice.aad_object_id}"),
        Mention("", user_id=f"teams:{bob.id}"),
        Mention("", user_id="slack:U0B0B000002"),  # someone Teams cannot mention
        Mention("Bob Chen", bob.user_principal_name),  # bob again, by email
    )

    failed = Card(title="Integration failed", status=Status.FAILED, mentions=calls_on)
    posted = await channel.post_card(RELEASES, failed)
    await channel.reply(RELEASES, posted, failed)

    message = harness.teams.state.message(posted.message_id)
    reply = harness.teams.state.channel("App releases").posts[0].replies[0]
    for activity in (message.activity, reply.activity):
        card = adaptive_card(activity)
        assert card["body"][-1]["text"] == f"<at>{alice.name}</at> <at>{bob.name}</at>"
        assert [e["mentioned"] for e in card["msteams"]["entities"]] == [
            {"id": alice.id, "name": alice.name},
            {"id": bob.id, "name": bob.name},
        ]
        assert "slack:" not in json.dumps(activity) and "U0B0B000002" not in json.dumps(activity)


async def test_a_reply_goes_into_the_cards_thread(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    root = await channel.post_card(MODELS, Card(title="Training run 88 of model-x", status=Status.RUNNING))

    first = await channel.reply(MODELS, root, Card(title="Stage train: succeeded", status=Status.SUCCEEDED))
    second = await channel.reply(MODELS, root, Card(title="Stage evaluate: failed", status=Status.FAILED))
    await channel.update_card(MODELS, first, Card(title="Stage train: succeeded (12 min)", status=Status.SUCCEEDED))

    posts = harness.teams.state.channel("ML models").posts
    assert [p.id for p in posts] == [root.message_id]
    replies = posts[0].replies
    assert [r.id for r in replies] == [first.message_id, second.message_id]
    assert (first.thread_id, second.thread_id) == (root.message_id, root.message_id)
    assert [shown_texts(adaptive_card(r.activity))[0] for r in replies] == [
        "Stage train: succeeded (12 min)",
        "Stage evaluate: failed",
    ]


async def test_a_person_gets_a_personal_message(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel

    first = await channel.post_card(BOB, Card(title="You are asked to approve release app-y 2.3"))
    second = await channel.post_card(BOB, Card(title="Reminder: release app-y 2.3 waits for you"))

    chat = harness.teams.state.conversation("a:1personal-bob")
    assert [p.id for p in chat.posts] == [first.message_id, second.message_id]
    assert texts(adaptive_card(chat.posts[1].activity))[0] == "Reminder: release app-y 2.3 waits for you"
    # the chat was created once, for the tenant, and is kept for the next message
    created = [r.json() for r in harness.teams.recorder.matching("POST /v3/conversations")]
    assert [c["members"] for c in created] == [[{"id": BOB}]]
    assert created[0]["channelData"] == {"tenant": {"id": TENANT}}
    record = await harness.record("a:1personal-bob")
    assert record is not None and record.tenant_id == TENANT


async def test_a_personal_chat_from_an_install_is_used_directly(harness: Harness) -> None:
    await harness.teams.install_personal_app(user="carol")

    posted = await harness.integration.channel.post_card("a:1personal-carol", Card(title="Your run finished"))

    assert harness.teams.state.conversation("a:1personal-carol").posts[0].id == posted.message_id
    assert not harness.teams.recorder.matching("POST /v3/conversations")


async def test_an_unknown_conversation_is_not_retryable(harness: Harness) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await harness.integration.channel.post_card(RELEASES, Card(title="x"))
    assert not failed.value.retryable


async def test_a_configured_channel_not_yet_seen_is_reached_through_the_tenant(harness: Harness) -> None:
    await harness.teams.install_personal_app(user="alice")  # only a personal chat is known

    posted = await harness.integration.channel.post_card(MODELS, Card(title="model-x:8 registered"))

    assert harness.teams.state.channel("ML models").posts[0].id == posted.message_id


async def test_a_channel_teams_does_not_know_is_a_permanent_failure(harness: Harness) -> None:
    await harness.teams.install_app()
    with pytest.raises(DeliveryFailed) as failed:
        await harness.integration.channel.post_card("19:gone0000@thread.tacv2", Card(title="x"))
    assert (failed.value.retryable, failed.value.reason) == (False, "Teams answered 404 ConversationNotFound")


async def test_429_is_retried_after_retry_after(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [Fault("429", retry_after=2)])

    posted = await with_time_passing(harness.clock, harness.integration.channel.post_card(RELEASES, gate_card()))

    assert [r.status for r in harness.teams.recorder.matching("POST /v3/conversations")] == [429, 201]
    assert harness.teams.state.channel("App releases").posts[0].id == posted.message_id
    assert harness.clock.monotonic() >= 2


async def test_an_update_is_retried_by_the_channel_not_by_msrest(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, gate_card())
    harness.teams.faults.add("PUT /v3/conversations/**", ["502", "504"])

    await with_time_passing(harness.clock, channel.update_card(RELEASES, posted, Card(title="done")))

    assert [r.status for r in harness.teams.recorder.matching("PUT /v3/conversations/**")] == [502, 504, 200]
    assert harness.clock.monotonic() >= 0.8 + 1.6  # two backoffs on the fake clock, none in msrest
    assert texts(adaptive_card(harness.teams.state.message(posted.message_id).activity))[0] == "done"


async def test_an_update_teams_failed_with_its_own_500_is_retried(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, gate_card())
    harness.teams.faults.add("PUT /v3/conversations/**", ["500"])

    await with_time_passing(harness.clock, channel.update_card(RELEASES, posted, Card(title="done")))

    assert [r.status for r in harness.teams.recorder.matching("PUT /v3/conversations/**")] == [500, 200]
    assert texts(adaptive_card(harness.teams.state.message(posted.message_id).activity))[0] == "done"


@pytest.mark.parametrize("status", ["500", "502", "504"])
async def test_a_post_teams_may_have_taken_goes_back_to_the_outbox_unsent(harness: Harness, status: Any) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [Fault(status, after_acting=True)])

    with pytest.raises(DeliveryFailed) as failed:
        await with_time_passing(harness.clock, harness.integration.channel.post_card(RELEASES, gate_card()))

    # retryable, but not here: the outbox looks for the post before it posts again
    assert (failed.value.retryable, failed.value.maybe_sent) == (True, True)
    assert [r.status for r in harness.teams.recorder.matching("POST /v3/conversations")] == [int(status)]
    assert len(harness.teams.state.channel("App releases").posts) == 1


async def test_persistent_trouble_becomes_a_retryable_failure(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", ["503", "503", "503"])

    with pytest.raises(DeliveryFailed) as failed:
        await with_time_passing(harness.clock, harness.integration.channel.post_card(RELEASES, gate_card()))

    assert failed.value.retryable
    assert failed.value.reason == "Teams answered 503 ServiceUnavailable"
    assert len(harness.teams.recorder.matching("POST /v3/conversations")) == 3


async def test_a_post_whose_answer_was_lost_is_not_sent_again_by_the_channel(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [Fault("reset_after")])

    with pytest.raises(DeliveryFailed) as failed:
        await with_time_passing(harness.clock, harness.integration.channel.post_card(RELEASES, gate_card()))

    # Teams took it: the outbox must look for it rather than post it again
    assert failed.value.retryable and failed.value.maybe_sent
    assert len(harness.teams.recorder.matching("POST /v3/conversations")) == 1
    assert len(harness.teams.state.channel("App releases").posts) == 1


async def test_an_update_whose_answer_was_lost_is_sent_again(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, gate_card())
    harness.teams.faults.add("PUT /v3/conversations/**", [Fault("reset_after")])

    await with_time_passing(harness.clock, channel.update_card(RELEASES, posted, Card(title="done")))

    assert len(harness.teams.recorder.matching("PUT /v3/conversations/**")) == 2  # replacing twice is harmless
    assert texts(adaptive_card(harness.teams.state.message(posted.message_id).activity))[0] == "done"


async def test_a_long_retry_after_is_handed_to_the_outbox(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [Fault("429", retry_after=45)])

    with pytest.raises(DeliveryFailed) as failed:
        await harness.integration.channel.post_card(RELEASES, gate_card())

    assert (failed.value.retryable, failed.value.retry_after) == (True, 45)
    assert len(harness.teams.recorder.matching("POST /v3/conversations")) == 1


async def test_a_send_whose_turn_is_further_off_than_a_call_may_wait_is_handed_back_unsent(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [Fault("429", retry_after=45)])
    with pytest.raises(DeliveryFailed):
        await harness.integration.channel.post_card(RELEASES, gate_card())

    with pytest.raises(SendLater) as later:  # the conversation is held for the Retry-After
        await harness.integration.channel.post_card(RELEASES, gate_card())

    assert SendPolicy().max_wait < (later.value.retry_after or 0) <= 45
    assert len(harness.teams.recorder.matching("POST /v3/conversations")) == 1
    assert harness.teams.state.channel("App releases").posts == []


@pytest.mark.parametrize("status", ["400"])
async def test_other_errors_are_not_retried(harness: Harness, status: Any) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [status])

    with pytest.raises(DeliveryFailed) as failed:
        await harness.integration.channel.post_card(RELEASES, gate_card())

    assert not failed.value.retryable
    assert len(harness.teams.recorder.matching("POST /v3/conversations")) == 1


class TestAWorldWithASmallMessageLimit:
    @pytest.fixture
    def world(self) -> dict[str, Any]:
        data = default_world()
        data["limits"] = {**data.get("limits", {}), "max_message_bytes": 1500}
        return data

    async def test_a_message_teams_refuses_as_too_big_is_not_retried(self, harness: Harness) -> None:
        await harness.teams.install_app()
        with pytest.raises(DeliveryFailed) as failed:
            await harness.integration.channel.post_card(RELEASES, gate_card())
        assert (failed.value.retryable, failed.value.reason) == (False, "Teams answered 413 MessageSizeTooBig")


async def test_a_burst_into_one_channel_is_paced_under_teams_limits(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    root = await channel.post_card(MODELS, Card(title="Batch scoring of model-x"))

    async def burst() -> list[PostedMessage]:
        return [await channel.reply(MODELS, root, Card(title=f"shard {i} done")) for i in range(20)]

    replies = await with_time_passing(harness.clock, burst(), step=0.25)

    thread = harness.teams.state.channel("ML models").posts[0].replies
    assert [r.id for r in thread] == [r.message_id for r in replies]
    assert [texts(adaptive_card(r.activity))[0] for r in thread] == [f"shard {i} done" for i in range(20)]
    statuses = [r.status for r in harness.teams.recorder.requests if r.method == "POST"]
    assert 429 not in statuses
    # 21 sends at 8 per 2 s (after the first 7 in one second) take about 4 s of the fake clock
    assert harness.clock.monotonic() >= 4


class TestABurstAcrossConversations:
    """Teams also limits a bot's requests across all its conversations (made small here: 5 a second)."""

    @pytest.fixture
    def world(self) -> dict[str, Any]:
        data = default_world()
        data["limits"] = {**data.get("limits", {}), "app": [[5, 1]]}
        return data

    @pytest.fixture
    def send_policy(self) -> SendPolicy:
        return SendPolicy(app_windows=((5, 1.0),))

    async def test_is_paced_under_the_apps_limit(self, harness: Harness) -> None:
        await harness.teams.install_app()
        await harness.clock.advance(1.0)  # what installing asked of Teams is out of the window
        channel = harness.integration.channel
        conversations = {GENERAL: "General", RELEASES: "App releases", MODELS: "ML models"}

        async def burst() -> list[PostedMessage]:
            cards = [(c, Card(title=f"{name} {i}")) for i in range(4) for c, name in conversations.items()]
            return list(await asyncio.gather(*(channel.post_card(c, card) for c, card in cards)))

        started = harness.clock.monotonic()
        await with_time_passing(harness.clock, burst(), step=0.25)

        for name in conversations.values():
            posts = harness.teams.state.channel(name).posts
            assert sorted(texts(adaptive_card(p.activity))[0] for p in posts) == [f"{name} {i}" for i in range(4)]
        assert 429 not in [r.status for r in harness.teams.recorder.requests]
        # each channel has room for all four at once: only the app's 5 a second spreads the 12 over 2 s
        assert harness.clock.monotonic() - started >= 2


async def test_the_card_shows_buttons_only_to_its_audience(harness: Harness) -> None:
    await harness.teams.install_app()
    posted = await harness.integration.channel.post_card(RELEASES, gate_card(audience=(BOB,)))

    card = adaptive_card(harness.teams.state.message(posted.message_id).activity)

    assert verbs(card) == []
    assert card["refresh"]["userIds"] == [BOB]
    assert [a["type"] for a in card["actions"]] == ["Action.OpenUrl"]


async def test_a_deleted_card_is_posted_afresh_and_its_thread_follows_it(harness: Harness) -> None:
    await harness.teams.install_app()
    outbox = OutboxWorker(
        harness.store,
        {"teams": harness.integration.channel},
        harness.clock,
        ops_channel=(ConversationAddress("teams", MODELS),),
    )
    releases = ConversationAddress("teams", RELEASES)

    async def deliver(op: str, title: str, rank: int = 0) -> None:
        payload = {"op": op, "rank": rank, "card": Card(title=title, status=Status.RUNNING).to_json()}
        await harness.store.enqueue([NewDelivery(releases, "run:412", payload)], harness.clock.now())
        await with_time_passing(harness.clock, outbox.drain())

    def shown() -> list[tuple[str, list[str]]]:
        posts = [p for p in harness.teams.state.channel("App releases").posts if not p.deleted]
        return [
            (texts(adaptive_card(p.activity))[0], [texts(adaptive_card(r.activity))[0] for r in p.replies])
            for p in posts
        ]

    await deliver("card", "Run 412: Build", rank=1)
    [first] = harness.teams.state.channel("App releases").posts
    harness.teams.state.delete(RELEASES, first.id)  # someone deletes the card in Teams

    await deliver("reply", "Stage Build succeeded")  # its thread is gone: the card comes back, the reply under it
    assert shown() == [("Run 412: Build", ["Stage Build succeeded"])]
    harness.teams.state.delete(RELEASES, harness.teams.state.channel("App releases").posts[-1].id)

    await deliver("card", "Run 412: Tests", rank=2)  # the update finds the card gone: posted afresh
    await deliver("card", "Run 412: Failed", rank=3)  # and updated in place from then on
    assert shown() == [("Run 412: Failed", [])]
    [latest] = [p for p in harness.teams.state.channel("App releases").posts if not p.deleted]
    assert len(latest.versions) == 2
    stored = await harness.store.get_card("run:412", releases)
    assert stored is not None and (stored.message_id, stored.rank) == (latest.id, 3)
    assert await harness.store.count_deliveries() == {"pending": 0, "sent": 4, "dead": 0, "unreachable": 0}
    assert harness.teams.state.channel("ML models").posts == []  # no alert for ops


async def test_an_update_or_reply_of_a_deleted_message_is_message_gone(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, Card(title="Run 412"))
    harness.teams.state.delete(RELEASES, posted.message_id)
    with pytest.raises(MessageGone) as update:
        await channel.update_card(RELEASES, posted, Card(title="Run 412 failed"))
    assert update.value.reason == "Teams answered 404 ActivityNotFoundInConversation"
    with pytest.raises(MessageGone):
        await channel.reply(RELEASES, posted, Card(title="Stage Tests failed"))


async def outbox_alerting_ml_models(harness: Harness) -> OutboxWorker:
    """The app installed, and an outbox sending to Teams whose ops alerts go to ML models."""
    await harness.teams.install_app()
    ops = ConversationAddress("teams", MODELS)
    return OutboxWorker(harness.store, {"teams": harness.integration.channel}, harness.clock, ops_channel=(ops,))


async def test_an_ops_alert_names_the_conversation_as_teams_told_it(harness: Harness) -> None:
    outbox = await outbox_alerting_ml_models(harness)
    releases = ConversationAddress("teams", RELEASES)
    known = await harness.record(RELEASES)
    assert known is not None and known.name
    harness.teams.faults.add("POST /v3/conversations", [Fault("400")])  # Teams refuses the card for good

    card = Card(title="Run 412", status=Status.RUNNING).to_json()
    await harness.store.enqueue(
        [NewDelivery(releases, "run:412", {"op": "card", "rank": 1, "card": card})], harness.clock.now()
    )
    await with_time_passing(harness.clock, outbox.drain())

    [alert] = harness.teams.state.channel("ML models").posts
    shown = texts(adaptive_card(alert.activity))
    assert shown[0] == f"Messages to {known.name} could not be delivered"
    assert f"{known.name} (teams:{RELEASES})" in "\n".join(shown_texts(adaptive_card(alert.activity)))  # the id too


async def test_one_ops_alert_a_day_per_conversation_whatever_words_each_failure_came_in(harness: Harness) -> None:
    await harness.teams.install_app()
    ops = ConversationAddress("teams", MODELS)
    outbox = OutboxWorker(
        harness.store,
        {"teams": harness.integration.channel},
        harness.clock,
        ops_channel=(ops,),
        retry=RetryPolicy(max_attempts=1),
    )
    releases = ConversationAddress("teams", RELEASES)
    # Teams refuses one card, then another in other words (each given up at its first attempt)
    for run, refusal in (("run:412", "400"), ("run:413", "malformed_json")):
        harness.teams.faults.add("POST /v3/conversations", [Fault(refusal)])  # type: ignore[arg-type]
        card = Card(title=f"Run {run}", status=Status.RUNNING).to_json()
        await harness.store.enqueue(
            [NewDelivery(releases, run, {"op": "card", "rank": 1, "card": card})], harness.clock.now()
        )
        await with_time_passing(harness.clock, outbox.drain())

    assert (await harness.store.count_deliveries())["dead"] == 2
    [alert] = harness.teams.state.channel("ML models").posts  # one card, updated with the count
    shown = "\n".join(shown_texts(adaptive_card(alert.activity)))
    assert "gave up on 2 messages there today; the latest: " in shown and "400" not in shown
    assert len(alert.versions) == 2


async def test_a_conversation_teams_refuses_is_marked_inactive_and_ops_told_once(harness: Harness) -> None:
    outbox = await outbox_alerting_ml_models(harness)
    releases = ConversationAddress("teams", RELEASES)
    known = await harness.record(RELEASES)
    assert known is not None and known.active
    del harness.teams.state.conversations[RELEASES]  # the channel was deleted (Teams' event about it was missed)

    card = Card(title="Run 412", status=Status.FAILED).to_json()
    await harness.store.enqueue(
        [
            NewDelivery(releases, "run:412", {"op": "card", "rank": 1, "card": card}),
            NewDelivery(releases, "run:412", {"op": "reply", "card": card}),
        ],
        harness.clock.now(),
    )
    await with_time_passing(harness.clock, outbox.drain())

    [alert] = harness.teams.state.channel("ML models").posts  # one alert, and none for the reply
    assert texts(adaptive_card(alert.activity))[0] == f"Handoff cannot post in {known.name}"
    assert await harness.store.inactive_conversations() == frozenset({releases})
    assert await harness.store.count_deliveries() == {"pending": 0, "sent": 1, "dead": 0, "unreachable": 2}


async def test_a_post_to_a_conversation_teams_does_not_have_is_conversation_unreachable(harness: Harness) -> None:
    await harness.teams.install_app()
    with pytest.raises(ConversationUnreachable) as failed:
        await harness.integration.channel.post_card("19:gone0000@thread.tacv2", Card(title="x"))
    assert failed.value.reason == "Teams answered 404 ConversationNotFound"


@pytest.mark.parametrize("another_conversation", [False, True], ids=["only the team", "and a personal chat"])
async def test_what_was_queued_for_a_team_handoff_was_removed_from_is_given_up_quietly(
    harness: Harness, caplog: pytest.LogCaptureFixture, another_conversation: bool
) -> None:
    await harness.teams.install_app()
    if another_conversation:  # a reference Handoff could borrow to reach the channel
        await harness.teams.install_personal_app(user="alice")
    ops = ConversationAddress("teams", "a:1personal-alice" if another_conversation else MODELS)
    outbox = OutboxWorker(harness.store, {"teams": harness.integration.channel}, harness.clock, ops_channel=(ops,))
    releases = ConversationAddress("teams", RELEASES)
    card = Card(title="Run 412", status=Status.RUNNING).to_json()
    await harness.store.enqueue(
        [NewDelivery(releases, "run:412", {"op": "card", "rank": 1, "card": card})], harness.clock.now()
    )
    await with_time_passing(harness.clock, outbox.drain())
    [shown] = harness.teams.state.channel("App releases").posts

    await harness.teams.uninstall_app()  # installationUpdate remove: the team's channels are inactive
    harness.teams.state.bot_removed_from.update({GENERAL, RELEASES, MODELS})
    harness.teams.recorder.clear()
    done = Card(title="Run 412", status=Status.FAILED).to_json()
    queued = await harness.store.enqueue(
        [
            NewDelivery(releases, "run:412", {"op": "card", "rank": 2, "card": done}),  # an update
            NewDelivery(releases, "run:412", {"op": "reply", "card": done}),
            NewDelivery(releases, "run:413", {"op": "card", "rank": 1, "card": card}),  # a new post
        ],
        harness.clock.now(),
    )
    await with_time_passing(harness.clock, outbox.drain())

    assert not harness.teams.recorder.requests  # nothing sent there, nor an alert anywhere
    assert len(shown.versions) == 1 and not shown.replies
    # no alert queued, and no dead letter
    assert await harness.store.count_deliveries() == {"pending": 0, "sent": 1, "dead": 0, "unreachable": 3}
    for delivery_id in queued:
        delivery = await harness.store.get_delivery(delivery_id)
        assert delivery is not None
        assert delivery.last_error == f"Handoff was removed from Teams conversation {RELEASES}"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_update_teams_refuses_with_403_is_conversation_unreachable(harness: Harness) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, gate_card())
    harness.teams.state.bot_removed_from.add(RELEASES)  # removed, and Teams' event about it was missed

    with pytest.raises(ConversationUnreachable) as failed:
        await channel.update_card(RELEASES, posted, Card(title="Run 412 failed"))

    assert failed.value.reason == "Teams answered 403 BotNotInConversationRoster"
    assert len(harness.teams.state.message(posted.message_id).versions) == 1


async def test_an_update_refused_with_403_marks_the_channel_inactive_and_tells_ops_once(harness: Harness) -> None:
    outbox = await outbox_alerting_ml_models(harness)
    releases = ConversationAddress("teams", RELEASES)
    known = await harness.record(RELEASES)
    assert known is not None
    card = Card(title="Run 412", status=Status.RUNNING).to_json()
    await harness.store.enqueue(
        [NewDelivery(releases, "run:412", {"op": "card", "rank": 1, "card": card})], harness.clock.now()
    )
    await with_time_passing(harness.clock, outbox.drain())
    harness.teams.state.bot_removed_from.add(RELEASES)
    harness.teams.recorder.clear()

    done = Card(title="Run 412", status=Status.FAILED).to_json()
    await harness.store.enqueue(
        [
            NewDelivery(releases, "run:412", {"op": "card", "rank": 2, "card": done}),
            NewDelivery(releases, "run:412", {"op": "reply", "card": done}),
        ],
        harness.clock.now(),
    )
    await with_time_passing(harness.clock, outbox.drain())

    [alert] = harness.teams.state.channel("ML models").posts
    assert texts(adaptive_card(alert.activity))[0] == f"Handoff cannot post in {known.name}"
    assert await harness.store.inactive_conversations() == frozenset({releases})
    [shown] = harness.teams.state.channel("App releases").posts
    assert len(shown.versions) == 1 and not shown.replies
    # one PUT refused; the reply queued after it is given up without a request
    assert len(harness.teams.recorder.matching("PUT /v3/conversations/**")) == 1
    assert not harness.teams.recorder.matching(f"POST /v3/conversations/{RELEASES}*")
    assert await harness.store.count_deliveries() == {"pending": 0, "sent": 2, "dead": 0, "unreachable": 2}
