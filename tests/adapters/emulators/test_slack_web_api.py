"""slack_sdk's real AsyncWebClient against the Slack emulator's Web API, over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.base import Fault
from adapters.emulators.slack import SlackEmulator, default_world
from adapters.emulators.slack.state import ChannelState
from bot.clock import FakeClock

MODELS = "C0MLM0DELS1"
OPS = "C00PS000001"
ALICE = "U0A11CE0001"
BLOCKS: list[dict[str, Any]] = [
    {
        "type": "section",
        "block_id": "req-42:summary",
        "text": {"type": "mrkdwn", "text": "*Approval needed*"},
    },
    {
        "type": "actions",
        "block_id": "req-42:decide",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "req-42",
                "text": {"type": "plain_text", "text": "A"},
            }
        ],
    },
]


async def error_of(call: Any) -> tuple[int, str, str | None]:
    with pytest.raises(SlackApiError) as info:
        await call
    response = info.value.response
    return response.status_code, response["error"], response.headers.get("Retry-After")


async def test_auth_test_and_token_checks(slack: SlackEmulator, client: AsyncWebClient) -> None:
    me = await client.auth_test()
    assert (me["team_id"], me["user_id"], me["bot_id"]) == ("T0C0NT050", "U0HANDOFFBT", "B0HANDOFF01")
    stranger = AsyncWebClient(token="xoxb-someone-else", base_url=slack.api_url)
    assert await error_of(stranger.auth_test()) == (200, "invalid_auth", None)
    anonymous = AsyncWebClient(base_url=slack.api_url)
    assert (await error_of(anonymous.chat_postMessage(channel=MODELS, text="x")))[1] == "not_authed"


async def test_post_thread_broadcast_and_update(slack: SlackEmulator, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="Approval needed", blocks=BLOCKS)
    assert root["message"]["blocks"] == BLOCKS
    assert root["message"]["bot_id"] == "B0HANDOFF01"
    reply = await client.chat_postMessage(channel="#ml-models", text="details", thread_ts=root["ts"])
    loud = await client.chat_postMessage(channel=MODELS, text="failed!", thread_ts=root["ts"], reply_broadcast=True)
    # text only: the blocks stay
    await client.chat_update(channel=MODELS, ts=root["ts"], text="Approved by <@U0A11CE0001>")
    kept = slack.state.find(MODELS, root["ts"])
    assert kept is not None and kept.blocks == BLOCKS
    # blocks=[]: the blocks go
    updated = await client.chat_update(channel=MODELS, ts=root["ts"], text="Approved", blocks=[])
    assert "blocks" not in updated["message"]
    assert updated["message"]["edited"]["user"] == "U0HANDOFFBT"

    channel = slack.state.channel("ml-models")
    assert [m.text for m in channel.messages] == ["Approved", "failed!"]  # the broadcast shows in the channel
    parent = channel.messages[0]
    assert [r.ts for r in parent.replies] == [reply["ts"], loud["ts"]]
    assert [e["text"] for e in parent.edits] == ["Approval needed", "Approved by <@U0A11CE0001>"]
    assert parent.blocks is None
    assert slack.state.snapshot()["channels"][0]["messages"][0]["replies"][0]["text"] == "details"


async def test_form_encoded_calls_with_token_in_the_body(slack: SlackEmulator) -> None:
    form = {"token": slack.bot_token, "channel": OPS, "text": "hi", "blocks": json.dumps(BLOCKS)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.api_url}chat.postMessage", data=form) as resp,
    ):
        body = await resp.json()
    assert body["ok"] is True
    assert slack.state.channel("ops").messages[0].blocks == BLOCKS


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_a_public_channel_takes_posts_without_joining_with_chat_write_public(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    slack.state.channel("ops").members.discard("U0HANDOFFBT")
    secret = ChannelState("G0PR1VATE01", "war-room", {ALICE}, is_private=True)
    slack.state.channels[secret.id] = secret
    posted = await client.chat_postMessage(channel=OPS, text="x")
    assert [m.ts for m in slack.state.channel(OPS).messages] == [posted["ts"]]
    assert (await error_of(client.chat_postMessage(channel=secret.id, text="x")))[:2] == (200, "channel_not_found")
    # without the scope, Slack asks the app to join first
    scopes = tuple(s for s in slack.state.world.bot_scopes if s != "chat:write.public")
    slack.state.world = replace(slack.state.world, bot_scopes=scopes)
    assert (await error_of(client.chat_postMessage(channel=OPS, text="x")))[:2] == (200, "not_in_channel")


# one call leaves out the text on purpose, for the error; slack_sdk warns of it first
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
async def test_errors_are_ok_false(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.state.channel("ops").members.discard("U0HANDOFFBT")
    scopes = tuple(s for s in slack.state.world.bot_scopes if s != "chat:write.public")  # (else ops takes posts)
    slack.state.world = replace(slack.state.world, bot_scopes=scopes)
    root = await client.chat_postMessage(channel=MODELS, text="x")
    users_message = slack.state.post(slack.state.channel(MODELS), user=ALICE, text="mine")
    calls = [
        client.chat_postMessage(channel="C0NOPE", text="x"),
        client.chat_postMessage(channel=OPS, text="x"),
        client.chat_postMessage(channel=MODELS),
        client.chat_postMessage(channel=MODELS, text="x" * 40_001),
        client.chat_postMessage(channel=MODELS, text="x", blocks=[{"type": "divider"}] * 51),
        client.chat_postMessage(channel=MODELS, text="x", thread_ts="1.000001"),
        client.chat_update(channel=MODELS, ts="1.000001", text="x"),
        client.chat_update(channel=MODELS, ts=users_message.ts, text="x"),
        client.chat_update(channel=MODELS, ts=root["ts"], text="x" * 40_001),
        client.chat_postEphemeral(channel=MODELS, user="U0NOBODY", text="x"),
        client.users_info(user="U0NOBODY"),
        client.users_lookupByEmail(email="mallory@contoso.com"),
        client.conversations_info(channel="C0NOPE"),
        client.views_open(trigger_id="123.456.abc", view={"type": "modal", "title": {}, "blocks": []}),
    ]
    errors = [(await error_of(call))[:2] for call in calls]
    assert errors == [
        (200, "channel_not_found"),
        (200, "not_in_channel"),
        (200, "no_text"),
        (200, "msg_too_long"),
        (200, "invalid_blocks"),
        (200, "thread_not_found"),
        (200, "message_not_found"),
        (200, "cant_update_message"),
        (200, "msg_too_long"),
        (200, "user_not_found"),
        (200, "user_not_found"),
        (200, "users_not_found"),
        (200, "channel_not_found"),
        (200, "invalid_trigger_id"),
    ]


async def test_ephemeral_users_and_conversations(slack: SlackEmulator, client: AsyncWebClient) -> None:
    sent = await client.chat_postEphemeral(channel=MODELS, user=ALICE, text="only you", blocks=BLOCKS)
    assert sent["message_ts"]
    assert [m.text for m in slack.state.ephemeral_for("alice")] == ["only you"]
    assert slack.state.channel(MODELS).messages == []
    info = await client.users_info(user=ALICE)
    assert info["user"]["profile"]["email"] == "alice@contoso.com"
    found = await client.users_lookupByEmail(email="carol@contoso.com")
    assert found["user"]["real_name"] == "Carol Diaz"
    conv = await client.conversations_info(channel=MODELS)
    assert (conv["channel"]["name"], conv["channel"]["is_member"]) == ("ml-models", True)
    bot = await client.users_info(user="U0HANDOFFBT")
    assert bot["user"]["is_bot"] is True
    dm = await client.chat_postMessage(channel=ALICE, text="your approval is needed")
    assert dm["channel"] == "D0A11CE0001"
    assert [m.text for m in slack.state.im(ALICE).messages] == ["your approval is needed"]
    assert (await client.conversations_info(channel=dm["channel"]))["channel"]["is_im"] is True


async def test_views_open_and_update_with_a_trigger(
    slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock
) -> None:
    view = {"type": "modal", "callback_id": "integrate", "title": {"type": "plain_text", "text": "Integrate"}}
    trigger = slack.state.new_trigger(ALICE)
    opened = await client.views_open(trigger_id=trigger.id, view=view)
    view_id = opened["view"]["id"]
    assert opened["view"]["callback_id"] == "integrate"
    assert (await error_of(client.views_open(trigger_id=trigger.id, view=view)))[1] == "exchanged_trigger_id"
    late = slack.state.new_trigger(ALICE)
    await clock.advance(3.5)
    assert (await error_of(client.views_open(trigger_id=late.id, view=view)))[1] == "expired_trigger_id"
    again = await client.views_update(view_id=view_id, hash=opened["view"]["hash"], view={**view, "blocks": []})
    assert again["view"]["id"] == view_id
    stale = client.views_update(view_id=view_id, hash=opened["view"]["hash"], view=view)
    assert (await error_of(stale))[1] == "hash_conflict"
    assert slack.state.views[view_id].user == ALICE
    assert len(slack.state.views[view_id].history) == 1


async def test_post_message_rate_limit_is_429_with_retry_after(
    slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock
) -> None:
    for i in range(3):  # the burst
        await client.chat_postMessage(channel=MODELS, text=f"m{i}")
    assert await error_of(client.chat_postMessage(channel=MODELS, text="m3")) == (429, "ratelimited", "1")
    await client.chat_postMessage(channel=OPS, text="another channel")
    await clock.advance(1.0)
    await client.chat_postMessage(channel=MODELS, text="m4")
    assert (await error_of(client.chat_postMessage(channel=MODELS, text="m5")))[0] == 429
    await clock.advance(10.0)  # refills to the burst, not beyond
    for i in range(3):
        await client.chat_postMessage(channel=MODELS, text=f"n{i}")
    assert (await error_of(client.chat_postMessage(channel=MODELS, text="n3")))[0] == 429
    assert len(slack.state.channel(MODELS).messages) == 7
    # updates are not under the per-channel posting limit
    await client.chat_update(channel=MODELS, ts=slack.state.channel(MODELS).messages[0].ts, text="edited")


async def test_updates_are_tier_3_for_the_whole_workspace(
    slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock
) -> None:
    models = await client.chat_postMessage(channel=MODELS, text="card")
    ops = await client.chat_postMessage(channel=OPS, text="card")
    for i in range(50):  # the burst: a minute's worth, in any channels
        where = models if i % 2 else ops
        await client.chat_update(channel=where["channel"], ts=where["ts"], text=f"v{i}")
    assert await error_of(client.chat_update(channel=OPS, ts=ops["ts"], text="over")) == (429, "ratelimited", "2")
    assert (await error_of(client.chat_update(channel=MODELS, ts=models["ts"], text="over")))[0] == 429
    assert slack.state.channel(OPS).messages[0].text == "v48"  # the refused update changed nothing
    await clock.advance(1.2)  # 50 a minute: one more after 1.2 s
    await client.chat_update(channel=OPS, ts=ops["ts"], text="later")
    assert (await error_of(client.chat_update(channel=OPS, ts=ops["ts"], text="over")))[0] == 429
    assert slack.state.channel(OPS).messages[0].text == "later"


async def test_retry_handler_absorbs_a_429_on_the_real_clock() -> None:
    async with SlackEmulator() as slack:  # SystemClock
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
        slack.faults.add("POST /api/chat.postMessage", [Fault("429", retry_after=1)])
        started = time.monotonic()
        sent = await client.chat_postMessage(channel=MODELS, text="eventually")
        assert time.monotonic() - started >= 1.0
        assert sent["ok"] is True
        assert [r.status for r in slack.recorder.matching("POST /api/chat.postMessage")] == [429, 200]


async def test_faults_reach_the_client_as_slack_sends_them(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.faults.add("POST /api/chat.postMessage", [Fault("429", retry_after=7), "503", "malformed_json"])
    assert await error_of(client.chat_postMessage(channel=MODELS, text="x")) == (429, "ratelimited", "7")
    assert await error_of(client.chat_postMessage(channel=MODELS, text="x")) == (
        503,
        "service_unavailable",
        "1",
    )
    with pytest.raises(SlackApiError, match="non-JSON format"):
        await client.chat_postMessage(channel=MODELS, text="x")
    assert slack.state.channel(MODELS).messages == []


async def test_reset_is_retried_once_by_default_then_raises(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.faults.add("POST /api/chat.update", ["reset", "reset"])
    slack.faults.add("GET /api/users.info", ["reset"])
    info = await client.users_info(user=ALICE)  # slack_sdk's default connection-error retry
    assert info["user"]["id"] == ALICE
    root = await client.chat_postMessage(channel=MODELS, text="x")
    with pytest.raises(aiohttp.ClientError):
        await client.chat_update(channel=MODELS, ts=root["ts"], text="y")
    assert [r.status for r in slack.recorder.matching("GET /api/users.info")] == [500, 200]


async def test_custom_world(clock: FakeClock) -> None:
    world = default_world()
    world["limits"] = {"post_message_burst": 1}
    world["channels"].append({"id": "C0SECRET001", "name": "secret", "is_private": True, "members": ["alice"]})
    async with SlackEmulator({"slack": world}, clock=clock) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await client.chat_postMessage(channel="ops", text="one")
        assert (await error_of(client.chat_postMessage(channel="ops", text="two")))[0] == 429
        assert (await error_of(client.chat_postMessage(channel="secret", text="x")))[1] == "channel_not_found"
