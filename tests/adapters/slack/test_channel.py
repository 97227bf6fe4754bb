"""SlackChatChannel against the Slack emulator: posting, updating, threading, ephemeral messages,
failures as DeliveryFailed, Slack's 429 retried after Retry-After, and pacing per channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.base import Fault, FaultKind
from adapters.emulators.slack import SlackEmulator
from adapters.emulators.slack.state import ChannelState
from adapters.slack import SlackChatChannel
from adapters.slack.channel import (
    MAX_INLINE_WAIT,
    UPDATE_BURST,
    UPDATES_PER_MINUTE,
    make_client,
    workspace_update_pacer,
)
from adapters.slack.manifest import PLACEHOLDER_URL, manifest_data
from adapters.slack.pacing import ChannelPacer
from adapters.slack.renderer import SlackContent
from bot.cards import Card, Mention, Status
from bot.clock import FakeClock
from bot.ports import CredentialsRefused, DeliveryFailed, MessageGone, PostedMessage, SendLater

from .harness import MODELS, Harness, gate_card


async def test_post_update_reply_and_ephemeral(harness: Harness) -> None:
    channel = harness.integration.channel
    assert channel.platform == "slack"
    parent = await channel.post_card(MODELS, gate_card())
    assert parent.thread_id == parent.message_id

    await channel.update_card(MODELS, parent, gate_card(Status.APPROVED))
    reply = await channel.reply(MODELS, parent, Card("Stage deploy succeeded", Status.SUCCEEDED))
    await channel.post_ephemeral(MODELS, "U0A11CE0001", Card("only for you"), thread=parent)

    [message] = harness.messages(MODELS)
    assert message.ts == parent.message_id
    assert message.text.startswith("Approved:")
    assert len(message.edits) == 1
    assert "actions" not in [b["type"] for b in message.blocks or []]
    [threaded] = message.replies
    assert (threaded.ts, reply.thread_id) == (reply.message_id, parent.message_id)
    assert threaded.blocks is not None and threaded.blocks[0]["type"] == "section"  # compact in threads
    [private] = harness.slack.state.ephemeral_for("alice", "ml-models")
    assert (private.text, private.thread_ts) == ("Info: only for you", parent.message_id)


async def test_people_called_on_by_slack_id_or_email_are_mentioned_once_and_other_platforms_ids_never_shown(
    harness: Harness,
) -> None:
    alice, bob = "U0A11CE0001", "U0B0B000002"
    calls_on = (
        Mention("bob@contoso.com", "bob@contoso.com"),
        Mention("", user_id=f"slack:{alice}"),
        Mention("", user_id=f"slack:{bob}"),  # bob again, by his id
        Mention("", user_id="aad:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),  # someone Slack cannot mention
    )
    channel = harness.integration.channel
    parent = await channel.post_card(MODELS, Card("Integration failed", Status.FAILED, mentions=calls_on))
    await channel.reply(MODELS, parent, Card("Integration failed", Status.FAILED, mentions=calls_on))

    [message] = harness.messages(MODELS)
    for posted in (message, message.replies[0]):
        shown = posted.text + json.dumps(posted.blocks)
        assert posted.text.endswith(f" <@{bob}> <@{alice}>")  # the text notifies them, each once
        assert f"<@{bob}> <@{alice}>" in json.dumps(posted.blocks)
        assert "aad:" not in shown and "slack:" not in shown and "0f1e2d3c" not in shown
    # only the person known by email was looked up
    assert len(harness.slack.recorder.matching("/api/users.lookupByEmail")) == 1


async def test_reply_to_a_reply_joins_the_parent_thread(harness: Harness) -> None:
    channel = harness.integration.channel
    parent = await channel.post_card(MODELS, Card("run"))
    first = await channel.reply(MODELS, parent, Card("one"))
    second = await channel.reply(MODELS, PostedMessage(first.message_id), Card("two"))
    [message] = harness.messages(MODELS)
    assert [r.ts for r in message.replies] == [first.message_id, second.message_id]


@pytest.mark.parametrize(
    ("conversation", "reason"),
    [("C0NOSUCHCH1", "chat.postMessage: channel_not_found"), ("", "not a Slack conversation id")],
)
async def test_permanent_failures_are_not_retryable(harness: Harness, conversation: str, reason: str) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        await harness.integration.channel.post_card(conversation, Card("x"))
    assert failure.value.retryable is False
    assert failure.value.reason.startswith(reason)


async def test_not_in_channel_invalid_auth_and_invalid_blocks(harness: Harness) -> None:
    harness.slack.state.channel("ops").members.discard("U0HANDOFFBT")
    scopes = tuple(s for s in harness.slack.state.world.bot_scopes if s != "chat:write.public")
    harness.slack.state.world = replace(harness.slack.state.world, bot_scopes=scopes)  # (else ops takes posts)
    channel = harness.integration.channel
    with pytest.raises(DeliveryFailed) as not_member:
        await channel.post_card("C00PS000001", Card("x"))
    assert (not_member.value.reason, not_member.value.retryable) == ("chat.postMessage: not_in_channel", False)

    stranger = SlackChatChannel(make_client("xoxb-revoked", harness.slack.api_url))
    with pytest.raises(DeliveryFailed) as revoked:
        await stranger.post_card(MODELS, Card("x"))
    # (Handoff's token refused: retried for a while, as a token being replaced)
    assert (revoked.value.reason, revoked.value.retryable) == ("chat.postMessage: invalid_auth", True)
    assert isinstance(revoked.value, CredentialsRefused)

    too_many = SlackContent("x", [{"type": "section", "text": {"type": "mrkdwn", "text": "b"}}] * 51)
    with pytest.raises(DeliveryFailed) as invalid:
        await channel.send(harness.client, MODELS, too_many)
    assert (invalid.value.reason, invalid.value.retryable) == ("chat.postMessage: invalid_blocks", False)

    with pytest.raises(DeliveryFailed) as missing:
        await channel.update_card(MODELS, PostedMessage("1.000001"), Card("x"))
    assert (missing.value.reason, missing.value.retryable) == ("chat.update: message_not_found", False)
    assert isinstance(missing.value, MessageGone)  # a deleted message is not an invalid request
    assert not isinstance(not_member.value, MessageGone) and not isinstance(invalid.value, MessageGone)


async def test_one_429_is_retried_after_retry_after(harness: Harness) -> None:
    harness.slack.faults.add("POST /api/chat.postMessage", ["429"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    posted = await harness.integration.channel.post_card(MODELS, Card("after a 429"))
    assert loop.time() - started >= 1.0  # Retry-After: 1 was honoured
    assert [m.ts for m in harness.messages(MODELS)] == [posted.message_id]
    assert [r.status for r in harness.slack.recorder.matching("POST /api/chat.postMessage")] == [429, 200]


@pytest.mark.parametrize(
    ("faults", "reason", "retry_after"),
    [
        (["429", "429"], "chat.postMessage: ratelimited", 1.0),
        (["500"], "chat.postMessage: internal_error", None),
        (["503"], "chat.postMessage: service_unavailable", 1.0),
        (["malformed_json"], "chat.postMessage: unreadable_response", None),
    ],
)
async def test_transient_failures_are_retryable(
    harness: Harness, faults: list[FaultKind], reason: str, retry_after: float | None
) -> None:
    harness.slack.faults.add("POST /api/chat.postMessage", faults)
    with pytest.raises(DeliveryFailed) as failure:
        await harness.integration.channel.post_card(MODELS, Card("x"))
    assert failure.value.retryable is True
    assert failure.value.reason == reason
    assert failure.value.retry_after == retry_after
    assert harness.messages(MODELS) == []


async def test_connection_reset_and_timeout_are_retryable(harness: Harness) -> None:
    harness.slack.faults.add("POST /api/chat.update", ["reset", "reset", "reset", "reset"])
    channel = harness.integration.channel
    parent = await channel.post_card(MODELS, Card("x"))
    with pytest.raises(DeliveryFailed) as reset:
        await channel.update_card(MODELS, parent, Card("y"))
    assert reset.value.retryable is True
    assert reset.value.reason.startswith("chat.update: connection failed")

    impatient = SlackChatChannel(
        AsyncWebClient(token=harness.slack.bot_token, base_url=harness.slack.api_url, timeout=1)
    )
    harness.slack.faults.add("POST /api/chat.postMessage", [Fault("stall", stall_seconds=3)])
    with pytest.raises(DeliveryFailed) as slow:
        await impatient.post_card(MODELS, Card("x"))
    assert slow.value.retryable is True


@pytest.fixture
async def fake_time_slack(clock: FakeClock) -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(clock=clock) as slack:
        yield slack


async def test_posts_to_one_channel_are_paced_to_slacks_limit(fake_time_slack: SlackEmulator, clock: FakeClock) -> None:
    slack = fake_time_slack
    channel = SlackChatChannel(
        AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), pacer=ChannelPacer(clock=clock)
    )
    sends = [asyncio.create_task(channel.post_card(MODELS, Card(f"event {i}"))) for i in range(10)]
    other = asyncio.create_task(channel.post_card("C0APPRELS01", Card("elsewhere")))
    for _ in range(200):
        if all(t.done() for t in sends) and other.done():
            break
        await asyncio.sleep(0.01)
        await clock.advance(0.25)
    posted = await asyncio.gather(*sends)
    await other
    assert [m.text for m in slack.state.channel(MODELS).messages] == [f"Info: event {i}" for i in range(10)]
    assert [p.message_id for p in posted] == [m.ts for m in slack.state.channel(MODELS).messages]
    statuses = [r.status for r in slack.recorder.matching("POST /api/chat.postMessage")]
    assert statuses == [200] * 11  # never a 429 from the emulator's 1/s limit
    assert clock.monotonic() >= 6.5  # 3 at once, then about one a second


async def test_card_updates_are_paced_per_workspace_to_tier_3(fake_time_slack: SlackEmulator, clock: FakeClock) -> None:
    slack = fake_time_slack
    channel = SlackChatChannel(
        AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        pacer=ChannelPacer(clock=clock),
        update_pacer=workspace_update_pacer(clock),
        max_wait=60,  # (each waits its turn, however far)
    )
    shown = [(where, await channel.post_card(where, Card(where))) for where in (MODELS, "C0APPRELS01")]
    updates = [
        asyncio.create_task(channel.update_card(where, card, Card(f"v{i}"))) for i in range(30) for where, card in shown
    ]
    for _ in range(400):
        if all(t.done() for t in updates):
            break
        await asyncio.sleep(0.01)
        await clock.advance(0.25)
    await asyncio.gather(*updates)
    statuses = [r.status for r in slack.recorder.matching("POST /api/chat.update")]
    assert statuses == [200] * 60
    # 40 at once, then 50 a minute for the whole workspace, whichever channel they are in
    assert clock.monotonic() >= (60 - UPDATE_BURST) / (UPDATES_PER_MINUTE / 60)
    assert clock.monotonic() < 40


async def test_an_update_whose_turn_is_further_off_than_a_call_may_wait_is_handed_back_unsent(
    fake_time_slack: SlackEmulator, clock: FakeClock
) -> None:
    slack = fake_time_slack
    channel = SlackChatChannel(
        AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        pacer=ChannelPacer(clock=clock),
        update_pacer=workspace_update_pacer(clock),
    )
    shown = await channel.post_card(MODELS, Card("v0"))
    turns = UPDATE_BURST + int(MAX_INLINE_WAIT * UPDATES_PER_MINUTE / 60)  # those due within the wait allowed
    updates = [asyncio.create_task(channel.update_card(MODELS, shown, Card(f"v{i}"))) for i in range(turns + 5)]
    for _ in range(100):
        if all(t.done() for t in updates):
            break
        await asyncio.sleep(0.01)
        await clock.advance(0.5)
    outcomes = await asyncio.gather(*updates, return_exceptions=True)
    assert outcomes[:turns] == [None] * turns
    later = [o for o in outcomes[turns:] if isinstance(o, SendLater)]
    assert len(later) == 5
    # each is told how long until a turn is free: just past the wait allowed
    assert all(MAX_INLINE_WAIT < (o.retry_after or 0) <= MAX_INLINE_WAIT + 60 / UPDATES_PER_MINUTE for o in later)
    assert len(slack.recorder.matching("POST /api/chat.update")) == turns  # those handed back sent nothing
    assert clock.monotonic() < MAX_INLINE_WAIT + 2


async def test_a_429_on_a_card_update_holds_every_channels_updates_in_the_workspace(
    fake_time_slack: SlackEmulator, clock: FakeClock
) -> None:
    """Slack limits chat.update per workspace: once it says to wait, no channel's card is updated until then."""
    slack = fake_time_slack
    channel = SlackChatChannel(
        AsyncWebClient(token=slack.bot_token, base_url=slack.api_url),
        pacer=ChannelPacer(clock=clock),
        update_pacer=workspace_update_pacer(clock),
    )
    models = await channel.post_card(MODELS, Card("Model card"))
    releases = await channel.post_card("C0APPRELS01", Card("Release card"))
    # refused, and refused again when slack_sdk tries once more after the Retry-After
    slack.faults.add("POST /api/chat.update", [Fault("429", retry_after=1), Fault("429", retry_after=1)])
    with pytest.raises(DeliveryFailed) as refused:
        await channel.update_card(MODELS, models, Card("Model card, v2"))
    assert refused.value.retry_after == 1

    update = asyncio.create_task(channel.update_card("C0APPRELS01", releases, Card("Release card, v2")))
    await asyncio.sleep(0.2)
    assert not update.done()  # another channel's card waits too
    await clock.advance(1.1)
    await asyncio.wait_for(update, 10)
    assert [r.status for r in slack.recorder.matching("POST /api/chat.update")] == [429, 429, 200]
    assert [m.text for m in slack.state.channel("C0APPRELS01").messages] == ["Info: Release card, v2"]


def open_conversation(slack: SlackEmulator, kind: str) -> str:
    """A conversation of ``kind`` that Handoff is in: a public or private channel, a DM or a group DM."""
    state = slack.state
    alice, bob = state.user("alice").id, state.user("bob").id
    if kind == "im":
        return state.im(alice).id
    if kind == "mpim":
        return state.mpim((alice, bob)).id
    if kind == "private":
        members = {alice, slack.world.bot_user_id}
        state.channels["G0PR1VATE01"] = ChannelState("G0PR1VATE01", "release-war-room", members, is_private=True)
        return "G0PR1VATE01"
    return MODELS


@pytest.mark.parametrize("kind", ["public", "private", "im", "mpim"])
async def test_the_manifests_scopes_find_a_lost_post_in_every_kind_of_conversation(harness: Harness, kind: str) -> None:
    slack = harness.slack
    bot_scopes = manifest_data(PLACEHOLDER_URL)["oauth_config"]["scopes"]["bot"]
    slack.state.world = replace(slack.state.world, bot_scopes=tuple(bot_scopes))
    conversation = open_conversation(slack, kind)
    since = datetime.now(UTC)
    posted = await harness.integration.channel.post_card(conversation, Card("run 7"), marker="delivery-7")
    found = await harness.integration.channel.find_posted(conversation, "delivery-7", since)
    assert found is not None and found.message_id == posted.message_id
    # without the history scope of the conversation's kind, Slack refuses the lookup
    needed = {"public": "channels:history", "private": "groups:history"}.get(kind, f"{kind}:history")
    slack.state.world = replace(slack.state.world, bot_scopes=tuple(s for s in bot_scopes if s != needed))
    with pytest.raises(DeliveryFailed, match="missing_scope"):
        await harness.integration.channel.find_posted(conversation, "delivery-7", since)
