"""Slash commands and mentions, end to end: the Slack emulator sends signed requests to the running
application, the recording handler plays the core, and the emulator's workspace shows the outcome."""

from __future__ import annotations

import asyncio
import json

import pytest

from adapters.emulators.slack import SlackEmulator
from adapters.emulators.slack.state import ChannelState
from adapters.sql import SqlStore
from bot.cards import Card, Status
from bot.interactions import CommandRequest, Reply, Visibility

from .harness import ALICE, BOB, MODELS, OPS, RELEASES, Harness, RecordingHandler, start_harness, timed


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("/handoff", "status", "status"),
        ("/handoff", "", "help"),
        ("/handoff", "retrain  model-x   data=lake:7", "retrain model-x data=lake:7"),
        ("/retrain", "model-x", "retrain model-x"),
        ("/integrate", "app-y model=model-x:7", "integrate app-y model=model-x:7"),
        ("/handoff", "subscribe &lt;all&gt; &amp; more", "subscribe <all> & more"),
        # Handoff's own mention before the command, as Slack writes it with and without the name
        ("/handoff", "<@U0HANDOFFBT> retrain model-x", "retrain model-x"),
        ("/handoff", " <@U0HANDOFFBT|handoff>", "help"),
        ("/retrain", "<@U0HANDOFFBT|handoff> model-x", "retrain model-x"),
        # someone else's: named as Slack shows them where the command goes, by email elsewhere
        ("/handoff", "<@U0CA201003> status", "'@Carol Diaz' status"),
        ("/handoff", "subscribe actors_include=<@U0CA201003|carol>", "subscribe actors_include=carol@contoso.com"),
    ],
)
async def test_each_command_reaches_the_core_as_text(harness: Harness, command: str, text: str, expected: str) -> None:
    response = await harness.slack.send_slash_command(command, text, channel="ml-models", user="alice")
    await harness.settle()

    assert (response.status, response.body) == (200, b"")
    [request] = harness.handler.commands
    assert request.text == expected
    assert request.conversation.platform == "slack"
    assert request.conversation.conversation_id == MODELS
    assert request.thread is None
    assert (request.user.user_id, request.user.email, request.user.name) == (ALICE, "alice@contoso.com", "Alice Martin")
    assert request.user.identities >= {"slack:U0A11CE0001", "alice@contoso.com"}
    assert request.user.workspace_id == "T0C0NT050"


async def test_thread_reply_to_a_command_starts_a_thread_in_the_channel(harness: Harness) -> None:
    await harness.slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="bob")
    await harness.settle()

    [posted] = harness.messages(MODELS)
    assert posted.by_bot
    assert posted.text == "ok: retrain model-x"
    assert "<@U0B0B000002> asked `/retrain model-x`" in str(posted.blocks)


async def test_private_reply_and_refusal_are_ephemeral(harness: Harness) -> None:
    harness.handler.command_reply = lambda r: Reply("You may not retrain model-x.", None, Visibility.PRIVATE)
    await harness.slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    await harness.settle()

    assert harness.messages(MODELS) == []
    [private] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert private.text == "You may not retrain model-x."


async def test_channel_reply_with_a_card(harness: Harness) -> None:
    card = Card("model-x retraining started", Status.RUNNING, summary="job retrain-model-x-42")
    harness.handler.command_reply = lambda r: Reply("Started", card, Visibility.CHANNEL)
    await harness.slack.send_slash_command("/handoff", "retrain model-x", channel="app-releases", user="carol")
    await harness.settle()

    [posted] = harness.messages(RELEASES)
    assert posted.text == "Started"
    assert posted.blocks is not None
    assert posted.blocks[0]["type"] == "header"
    assert posted.blocks[0]["text"]["text"] == "model-x retraining started"


async def test_mention_strips_the_bot_and_answers_in_the_thread(harness: Harness) -> None:
    response = await harness.slack.mention_bot("retrain model-x", channel="ml-models", user="bob")
    await harness.settle()

    assert response.status == 200
    [request] = harness.handler.commands
    assert request.text == "retrain model-x"
    assert request.user.email == "bob@contoso.com"
    [mention] = harness.messages(MODELS)
    assert request.thread is not None
    assert request.thread.message_id == mention.ts
    assert [r.text for r in mention.replies] == ["ok: retrain model-x"]
    assert mention.replies[0].by_bot


async def test_a_direct_message_is_a_command_answered_in_the_chat_with_handoff(harness: Harness) -> None:
    response = await harness.slack.message_bot("retrain model-x", user="bob")
    await harness.settle()

    assert response.status == 200
    [request] = harness.handler.commands
    assert request.text == "retrain model-x" and request.in_chat and request.thread is None
    assert request.user.email == "bob@contoso.com"
    chat = harness.slack.state.im(BOB)
    [typed, answer] = chat.messages  # the answer where it was typed, not in a thread of its own
    assert (typed.text, typed.by_bot) == ("retrain model-x", False)
    assert (answer.text, answer.by_bot, typed.replies) == ("ok: retrain model-x", True, [])
    assert "asked" not in json.dumps(answer.blocks)  # (who asked goes without saying there)


async def test_a_direct_message_typed_in_a_thread_is_answered_in_that_thread(harness: Harness) -> None:
    await harness.slack.message_bot("status", user="bob")
    await harness.settle()
    first = harness.slack.state.im(BOB).messages[0]
    await harness.slack.message_bot(f"<@{harness.slack.world.bot_user_id}> help", user="bob", thread_ts=first.ts)
    await harness.settle()

    assert [r.text for r in harness.handler.commands] == ["status", "help"]
    assert [r.text for r in first.replies if r.by_bot] == ["ok: help"]


async def test_handoffs_own_messages_edits_and_other_bots_in_a_direct_chat_are_not_commands(harness: Harness) -> None:
    slack = harness.slack
    chat = slack.state.im(BOB)
    base = {"type": "message", "channel_type": "im", "channel": chat.id, "text": "retrain model-x", "ts": "1.000001"}
    for event in (
        {**base, "user": slack.world.bot_user_id},  # Handoff's own answer, which Slack sends back
        {**base, "user": BOB, "subtype": "message_changed"},
        {**base, "bot_id": "B0THER", "user": "U0THERB0T1"},
    ):
        assert (await slack.send_event(event)).status == 200
    await harness.settle()
    assert harness.handler.commands == []
    assert chat.messages == []


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (
            "subscribe events=run actors_include=<mailto:carol@contoso.com|carol@contoso.com>",
            "subscribe events=run actors_include=carol@contoso.com",
        ),
        ("subscribe text_include=<https://example.com|example.com>", "subscribe text_include=example.com"),
        (
            "subscribe <https://dev.azure.com/contoso/mlops/_build?definitionId=3&amp;view=runs>",
            "subscribe https://dev.azure.com/contoso/mlops/_build?definitionId=3&view=runs",
        ),
        ("subscribe text_include=<#C00PS000001|ops> <!here>", "subscribe text_include=#ops @here"),
        (  # the core names people by email
            "subscribe actors_include=<@U0CA201003>,<@U0N0B0DY999> text_include=a&lt;b",
            "subscribe actors_include=carol@contoso.com,<@U0N0B0DY999> text_include=a<b",
        ),
    ],
)
async def test_mention_text_reaches_the_core_as_typed_without_slacks_markup(
    harness: Harness, typed: str, expected: str
) -> None:
    await harness.slack.mention_bot(typed, channel="ml-models", user="bob")
    await harness.settle()

    [request] = harness.handler.commands
    assert request.text == expected


async def test_mention_private_reply_is_ephemeral_in_the_thread(harness: Harness) -> None:
    harness.handler.command_reply = lambda r: Reply("Not allowed.", None, Visibility.PRIVATE)
    await harness.slack.mention_bot("integrate app-y", channel="ml-models", user="alice")
    await harness.settle()

    [mention] = harness.messages(MODELS)
    assert mention.replies == []
    [private] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert (private.text, private.thread_ts) == ("Not allowed.", mention.ts)


async def test_a_redelivered_mention_runs_once(harness: Harness) -> None:
    slack = harness.slack
    where = slack.state.channel("ml-models")
    user = slack.world.user("alice")
    event = slack.payloads.app_mention(user=user, channel=where, text="<@U0HANDOFFBT> status", ts="1700000000.000100")
    slack.state.post(where, user=user.id, text=event["text"])
    first = await slack.send_event(event, event_id="Ev0001")
    again = await slack.send_event(event, event_id="Ev0001", retry_num=1)
    await harness.settle()

    assert (first.status, again.status) == (200, 200)
    assert [c.text for c in harness.handler.commands] == ["status"]


async def test_a_mention_redelivered_to_another_replica_runs_once(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    slack = SlackEmulator()
    await slack.start()
    handler = RecordingHandler()
    replicas = [await start_harness(handler, slack, events=store) for _ in range(2)]
    try:
        where, alice = slack.state.channel("ml-models"), slack.world.user("alice")
        mention = slack.state.post(where, user=alice.id, text="<@U0HANDOFFBT> status")
        event = slack.payloads.app_mention(user=alice, channel=where, text=mention.text, ts=mention.ts)
        slack.events_url = replicas[0].url
        first = await slack.send_event(event, event_id="Ev0002")
        await replicas[0].settle()
        slack.events_url = replicas[1].url  # Slack retries through the load balancer, or after a restart
        again = await slack.send_event(event, event_id="Ev0002", retry_num=1)
        await replicas[1].settle()

        assert (first.status, again.status) == (200, 200)
        assert [c.text for c in handler.commands] == ["status"]
        assert [r.text for r in where.messages[0].replies] == ["ok: status"]
    finally:
        for replica in replicas:
            await replica.server.stop()
        await slack.stop()
        await store.close()


async def test_handler_error_becomes_a_private_apology(harness: Harness) -> None:
    harness.handler.fail = True
    response = await harness.slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    await harness.settle()

    assert response.status == 200
    assert harness.messages(MODELS) == []
    [apology] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert apology.text.startswith("Sorry, Handoff hit an internal error while handling `/retrain model-x`")


async def test_the_ack_does_not_wait_for_a_slow_core(harness: Harness) -> None:
    harness.handler.delay = 10.0  # a backend that stalls
    responses = await asyncio.gather(
        *(
            timed(harness.slack.send_slash_command(command, text, channel="ml-models", user="alice"))
            for command, text in [("/handoff", "status"), ("/retrain", "model-x"), ("/integrate", "app-y")]
        ),
        timed(harness.slack.mention_bot("status", channel="app-releases")),
    )
    for response, seconds in responses:
        assert response.status == 200
        assert seconds < 3.0
    await asyncio.sleep(0.2)
    assert len(harness.handler.commands) == 4
    assert harness.messages(MODELS) == []  # the answers come later, when the core has them
    await harness.integration.close(timeout=0.1)


async def test_reply_where_the_bot_is_not_a_member_goes_through_the_response_url_and_says_so(
    harness: Harness,
) -> None:
    members = {harness.slack.state.user("alice").id, harness.slack.state.user("bob").id}
    secret = ChannelState("G0PR1VATE01", "war-room", members, is_private=True)  # Handoff was never invited
    harness.slack.state.channels[secret.id] = secret
    harness.handler.command_reply = lambda r: Reply(
        "Subscribed this channel (subscription 1).", None, Visibility.CHANNEL
    )
    await harness.slack.send_slash_command("/handoff", "subscribe", channel=secret.id, user="bob")
    await harness.settle()

    [posted] = harness.messages(secret.id)  # through the slash command's response_url, for the channel to see
    assert posted.text.startswith("Subscribed this channel (subscription 1).")
    assert "not a member of this channel" in posted.text
    assert "invite @Handoff to this channel first (`/invite @Handoff`)" in posted.text
    assert harness.slack.state.ephemeral_for("bob") == []


async def test_reply_in_a_public_channel_goes_without_joining_it(harness: Harness) -> None:
    harness.slack.state.channel("ops").members.discard("U0HANDOFFBT")  # chat:write.public posts there anyway
    await harness.slack.send_slash_command("/handoff", "status", channel="ops", user="bob")
    await harness.settle()

    [posted] = harness.messages(OPS)
    assert posted.text == "ok: status"
    assert harness.slack.state.ephemeral_for("bob") == []


async def test_command_from_an_unknown_user_still_reaches_the_core_by_id(harness: Harness) -> None:
    seen: list[CommandRequest] = []

    def reply(request: CommandRequest) -> Reply:
        seen.append(request)
        return Reply("ok", None, Visibility.PRIVATE)

    harness.handler.command_reply = reply
    harness.slack.faults.add("/api/users.info", ["500", "500", "500"])
    await harness.slack.send_slash_command("/handoff", "status", channel="ml-models", user="bob")
    await harness.settle()

    assert seen[0].user.user_id == BOB
    assert seen[0].user.email is None


async def test_a_command_mentioning_payload_is_not_lost(harness: Harness) -> None:
    """Bolt reads any form body containing "payload" as an interactivity payload; commands survive it."""
    response = await harness.slack.send_slash_command("/retrain", "payload-model data=payload", channel="ml-models")
    await harness.settle()
    assert response.status == 200
    assert [c.text for c in harness.handler.commands] == ["retrain payload-model data=payload"]
