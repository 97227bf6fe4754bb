"""Message metadata, conversations.history / conversations.replies and the ``reset_after`` fault, with
slack_sdk's real AsyncWebClient against the Slack emulator over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.base import FAULT_KINDS, Fault
from adapters.emulators.slack import SlackEmulator, default_world
from bot.clock import FakeClock

MODELS = "C0MLM0DELS1"
OPS = "C00PS000001"
ALICE = "U0A11CE0001"
BOT = "U0HANDOFFBT"
RUN = {"event_type": "handoff_run", "event_payload": {"run_id": "run-42", "stage": "train", "attempt": 2}}
REPLY = {"event_type": "handoff_stage", "event_payload": {"run_id": "run-42", "stage": "eval"}}


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        await call
    assert info.value.response.status_code == 200
    return str(info.value.response["error"])


async def seed(slack: SlackEmulator, clock: FakeClock, count: int, channel: str = MODELS) -> list[str]:
    """``count`` user messages one second apart; their ts, oldest first."""
    where = slack.state.channel(channel)
    stamps = []
    for i in range(count):
        stamps.append(slack.state.post(where, user=ALICE, text=f"m{i}").ts)
        await clock.advance(1.0)
    return stamps


# metadata


async def test_metadata_round_trip_only_with_include_all_metadata(slack: SlackEmulator, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="Run run-42 needs approval", metadata=RUN)
    assert "metadata" not in root["message"]
    plain = await client.chat_postMessage(channel=MODELS, text="no metadata")
    stored = slack.state.find(MODELS, root["ts"])
    assert stored is not None and stored.metadata == RUN
    assert slack.state.snapshot()["channels"][0]["messages"][0]["metadata"] == RUN

    with_metadata = await client.conversations_history(channel=MODELS, include_all_metadata=True)
    assert [m["ts"] for m in with_metadata["messages"]] == [plain["ts"], root["ts"]]
    assert with_metadata["messages"][1]["metadata"] == RUN
    assert "metadata" not in with_metadata["messages"][0]

    without = await client.conversations_history(channel=MODELS)
    assert all("metadata" not in m for m in without["messages"])
    assert without["messages"][1]["text"] == "Run run-42 needs approval"


async def test_metadata_as_a_json_string_in_a_form_body(slack: SlackEmulator) -> None:
    form = {"token": slack.bot_token, "channel": OPS, "text": "hi", "metadata": json.dumps(RUN)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{slack.api_url}chat.postMessage", data=form) as resp:
            assert (await resp.json())["ok"] is True
        bad = {**form, "metadata": "{not json"}
        async with session.post(f"{slack.api_url}chat.postMessage", data=bad) as resp:
            assert await resp.json() == {"ok": False, "error": "invalid_metadata_format"}
    assert slack.state.channel("ops").messages[0].metadata == RUN


@pytest.mark.parametrize(
    "metadata",
    [
        {"event_payload": {}},
        {"event_type": "", "event_payload": {}},
        {"event_type": 7, "event_payload": {}},
        {"event_type": "handoff_run"},
        {"event_type": "handoff_run", "event_payload": "run-42"},
        {"event_type": "handoff_run", "event_payload": ["run-42"]},
        ["handoff_run"],
    ],
)
async def test_malformed_metadata_is_refused(slack: SlackEmulator, client: AsyncWebClient, metadata: Any) -> None:
    assert await error_of(client.chat_postMessage(channel=MODELS, text="x", metadata=metadata)) == (
        "invalid_metadata_format"
    )
    assert slack.state.channel(MODELS).messages == []


async def test_chat_update_replaces_or_keeps_metadata(slack: SlackEmulator, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="x", metadata=RUN)
    await client.chat_update(channel=MODELS, ts=root["ts"], text="kept")
    stored = slack.state.find(MODELS, root["ts"])
    assert stored is not None and stored.metadata == RUN
    await client.chat_update(channel=MODELS, ts=root["ts"], text="replaced", metadata=REPLY)
    assert stored.metadata == REPLY


# conversations.history


async def test_history_is_newest_first_without_replies_or_deleted_messages(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="root")
    await client.chat_postMessage(channel=MODELS, text="quiet reply", thread_ts=root["ts"])
    loud = await client.chat_postMessage(channel=MODELS, text="loud reply", thread_ts=root["ts"], reply_broadcast=True)
    gone = slack.state.post(slack.state.channel(MODELS), user=ALICE, text="oops")
    slack.state.delete(gone)
    history = await client.conversations_history(channel=MODELS)
    assert [m["text"] for m in history["messages"]] == ["loud reply", "root"]
    assert history["has_more"] is False
    assert "response_metadata" not in history or not history["response_metadata"].get("next_cursor")
    assert history["messages"][0]["thread_ts"] == root["ts"]
    assert history["messages"][0]["parent_user_id"] == BOT
    # a broadcast reply says so, and where it came from; a quiet one stays a bot's message
    assert history["messages"][0]["subtype"] == "thread_broadcast"
    assert history["messages"][0]["root"]["ts"] == root["ts"]
    replies = (await client.conversations_replies(channel=MODELS, ts=root["ts"]))["messages"]
    assert [(m["text"], m["subtype"]) for m in replies] == [
        ("root", "bot_message"),
        ("quiet reply", "bot_message"),
        ("loud reply", "thread_broadcast"),
    ]
    assert (history["messages"][1]["reply_count"], history["messages"][1]["latest_reply"]) == (2, loud["ts"])
    assert (await client.conversations_history(channel=OPS))["messages"] == []


async def test_history_window_with_oldest_latest_and_inclusive(
    slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock
) -> None:
    ts = await seed(slack, clock, 6)

    async def texts(**window: Any) -> list[str]:
        return [m["text"] for m in (await client.conversations_history(channel=MODELS, **window))["messages"]]

    assert await texts() == ["m5", "m4", "m3", "m2", "m1", "m0"]
    assert await texts(oldest=ts[2]) == ["m5", "m4", "m3"]
    assert await texts(oldest=ts[2], inclusive=True) == ["m5", "m4", "m3", "m2"]
    assert await texts(latest=ts[2]) == ["m1", "m0"]
    assert await texts(latest=ts[2], inclusive=True) == ["m2", "m1", "m0"]
    assert await texts(oldest=ts[1], latest=ts[4]) == ["m3", "m2"]
    assert await texts(oldest=ts[1], latest=ts[4], inclusive=1) == ["m4", "m3", "m2", "m1"]
    whole_seconds = ts[3].split(".")[0]  # a ts may be given as whole seconds
    expected = [f"m{i}" for i in range(5, -1, -1) if Decimal(ts[i]) > Decimal(whole_seconds)]
    assert await texts(oldest=whole_seconds) == expected
    assert expected[-1] in ("m3", "m4")
    assert await texts(oldest=ts[5]) == []


async def test_history_pages_with_limit_and_cursor(
    slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock
) -> None:
    await seed(slack, clock, 7)
    first = await client.conversations_history(channel=MODELS, limit=3)
    assert [m["text"] for m in first["messages"]] == ["m6", "m5", "m4"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    second = await client.conversations_history(channel=MODELS, limit=3, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["m3", "m2", "m1"]
    third = await client.conversations_history(
        channel=MODELS, limit=3, cursor=second["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in third["messages"]] == ["m0"]
    assert third["has_more"] is False

    # slack_sdk's own pagination follows next_cursor to the end (its response object is reused per page)
    pages = [
        [m["text"] for m in page["messages"]]
        async for page in await client.conversations_history(channel=MODELS, limit=2)
    ]
    assert pages == [["m6", "m5"], ["m4", "m3"], ["m2", "m1"], ["m0"]]

    # a window and pages together; limit 0 means the default
    windowed = await client.conversations_history(channel=MODELS, oldest="0", limit=2, inclusive=True)
    assert [m["text"] for m in windowed["messages"]] == ["m6", "m5"]
    assert len((await client.conversations_history(channel=MODELS, limit=0))["messages"]) == 7


async def test_history_limit_is_capped_by_the_world(clock: FakeClock) -> None:
    world = default_world()
    world["limits"] = {"history_default_limit": 15, "history_max_limit": 15}
    async with SlackEmulator({"slack": world}, clock=clock) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await seed(slack, clock, 20)
        assert len((await client.conversations_history(channel=MODELS))["messages"]) == 15
        capped = await client.conversations_history(channel=MODELS, limit=999)
        assert (len(capped["messages"]), capped["has_more"]) == (15, True)


# conversations.replies


async def test_replies_are_the_parent_then_its_replies_with_metadata(
    slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock
) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="run-42", metadata=RUN)
    await clock.advance(1.0)
    first = await client.chat_postMessage(channel=MODELS, text="eval", thread_ts=root["ts"], metadata=REPLY)
    await clock.advance(1.0)
    users = slack.state.post(slack.state.channel(MODELS), user=ALICE, text="thanks", thread_ts=root["ts"])
    stored = slack.state.find(MODELS, first["ts"])
    assert stored is not None and stored.metadata == REPLY

    thread = await client.conversations_replies(channel=MODELS, ts=root["ts"], include_all_metadata=True)
    messages = thread["messages"]
    assert [m["ts"] for m in messages] == [root["ts"], first["ts"], users.ts]
    assert [m.get("metadata") for m in messages] == [RUN, REPLY, None]
    assert (messages[0]["thread_ts"], messages[0]["reply_count"]) == (root["ts"], 2)
    assert [m["parent_user_id"] for m in messages[1:]] == [BOT, BOT]
    assert all(m["thread_ts"] == root["ts"] for m in messages)
    assert thread["has_more"] is False

    plain = await client.conversations_replies(channel=MODELS, ts=root["ts"])
    assert all("metadata" not in m for m in plain["messages"])

    # the ts of a reply returns that reply alone
    alone = await client.conversations_replies(channel=MODELS, ts=first["ts"], include_all_metadata=True)
    assert [(m["ts"], m["metadata"]) for m in alone["messages"]] == [(first["ts"], REPLY)]
    # a message without replies is a thread of one
    lone = await client.chat_postMessage(channel=MODELS, text="lone")
    assert [m["ts"] for m in (await client.conversations_replies(channel=MODELS, ts=lone["ts"]))["messages"]] == [
        lone["ts"]
    ]


async def test_replies_window_and_pages(slack: SlackEmulator, client: AsyncWebClient, clock: FakeClock) -> None:
    channel = slack.state.channel(MODELS)
    root = slack.state.post(channel, user=ALICE, text="root")
    await clock.advance(1.0)
    replies = []
    for i in range(5):
        replies.append(slack.state.post(channel, user=BOT, text=f"r{i}", thread_ts=root.ts, bot_id="B0HANDOFF01"))
        await clock.advance(1.0)
    slack.state.delete(replies[4])

    first = await client.conversations_replies(channel=MODELS, ts=root.ts, limit=3)
    assert [m["text"] for m in first["messages"]] == ["root", "r0", "r1"]
    assert first["has_more"] is True
    rest = await client.conversations_replies(
        channel=MODELS, ts=root.ts, limit=3, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["r2", "r3"]
    assert rest["has_more"] is False

    windowed = await client.conversations_replies(channel=MODELS, ts=root.ts, oldest=replies[1].ts)
    assert [m["text"] for m in windowed["messages"]] == ["root", "r2", "r3"]
    windowed = await client.conversations_replies(
        channel=MODELS, ts=root.ts, oldest=replies[1].ts, latest=replies[3].ts, inclusive=True
    )
    assert [m["text"] for m in windowed["messages"]] == ["root", "r1", "r2", "r3"]


# errors


async def test_history_and_replies_errors(slack: SlackEmulator, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="root")
    slack.state.channel("ops").members.discard(BOT)
    slack.state.post(slack.state.channel("ops"), user="U0B0B000001", text="private chatter")
    calls = [
        client.conversations_history(channel="C0NOPE"),
        client.conversations_history(channel=OPS),
        client.conversations_history(channel=MODELS, cursor="not-a-cursor"),
        client.conversations_history(channel=MODELS, oldest="yesterday"),
        client.conversations_history(channel=MODELS, latest="soon"),
        client.conversations_history(channel=MODELS, limit="many"),
        client.conversations_replies(channel="C0NOPE", ts=root["ts"]),
        client.conversations_replies(channel=OPS, ts=root["ts"]),
        client.conversations_replies(channel=MODELS, ts="1.000001"),
        client.conversations_replies(channel=MODELS, ts=root["ts"], cursor="bm9wZQ=="),
    ]
    assert [await error_of(call) for call in calls] == [
        "channel_not_found",
        "not_in_channel",
        "invalid_cursor",
        "invalid_ts_oldest",
        "invalid_ts_latest",
        "invalid_limit",
        "channel_not_found",
        "not_in_channel",
        "thread_not_found",
        "invalid_cursor",
    ]
    await client.chat_delete(channel=MODELS, ts=root["ts"])
    assert await error_of(client.conversations_replies(channel=MODELS, ts=root["ts"])) == "thread_not_found"
    stranger = AsyncWebClient(token="xoxb-someone-else", base_url=slack.api_url)
    assert await error_of(stranger.conversations_history(channel=MODELS)) == "invalid_auth"


async def test_history_and_replies_over_get_with_the_token_in_the_header(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=MODELS, text="root", metadata=RUN)
    headers = {"Authorization": f"Bearer {slack.bot_token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        params = {"channel": MODELS, "include_all_metadata": "true"}
        async with session.get(f"{slack.api_url}conversations.history", params=params) as resp:
            body = await resp.json()
        assert body["messages"][0]["metadata"] == RUN
        async with session.get(f"{slack.api_url}conversations.replies", params={**params, "ts": root["ts"]}) as resp:
            assert (await resp.json())["messages"][0]["ts"] == root["ts"]


# the reset_after fault


def test_reset_after_is_a_fault_kind() -> None:
    assert "reset_after" in FAULT_KINDS
    assert Fault.from_json("reset_after") == Fault("reset_after")


async def test_reset_after_posts_the_message_but_the_client_sees_a_disconnect(
    slack: SlackEmulator, clock: FakeClock
) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    slack.faults.add("POST /api/chat.postMessage", [Fault("reset_after")])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel=MODELS, text="Run run-42 needs approval", metadata=RUN)
    messages = slack.state.channel(MODELS).messages
    assert [(m.text, m.metadata) for m in messages] == [("Run run-42 needs approval", RUN)]
    assert [r.status for r in slack.recorder.matching("POST /api/chat.postMessage")] == [200]
    # the app can find what it posted although it never got the ts
    history = await client.conversations_history(channel=MODELS, include_all_metadata=True)
    assert [m["metadata"] for m in history["messages"]] == [RUN]


async def test_plain_reset_does_not_post(slack: SlackEmulator) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    slack.faults.add("POST /api/chat.postMessage", ["reset"])
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel=MODELS, text="x")
    assert slack.state.channel(MODELS).messages == []


async def test_reset_after_with_the_default_retry_posts_twice(slack: SlackEmulator, client: AsyncWebClient) -> None:
    """slack_sdk retries a disconnect once by default: the call succeeds, and the message is there twice."""
    slack.faults.add("POST /api/chat.postMessage", ["reset_after"])
    sent = await client.chat_postMessage(channel=MODELS, text="twice")
    texts = [m.text for m in slack.state.channel(MODELS).messages]
    assert texts == ["twice", "twice"]
    assert sent["ts"] == slack.state.channel(MODELS).messages[1].ts


async def test_reset_after_on_chat_update_changes_the_message(slack: SlackEmulator) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    root = await client.chat_postMessage(channel=MODELS, text="pending")
    slack.faults.add("POST /api/chat.update", ["reset_after"])
    with pytest.raises(aiohttp.ClientError):
        await client.chat_update(channel=MODELS, ts=root["ts"], text="approved")
    stored = slack.state.find(MODELS, root["ts"])
    assert stored is not None and stored.text == "approved"


async def test_reset_after_through_the_control_route(slack: SlackEmulator) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])
    async with aiohttp.ClientSession() as session:
        script = {"route": "POST /api/chat.postMessage", "faults": [{"kind": "reset_after"}]}
        async with session.post(f"{slack.base_url}/_emulator/faults", json=script) as resp:
            assert resp.status == 200
            assert (await resp.json())["pending"] == {"POST /api/chat.postMessage": 1}
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel=MODELS, text="posted anyway")
    assert [m.text for m in slack.state.channel(MODELS).messages] == ["posted anyway"]
