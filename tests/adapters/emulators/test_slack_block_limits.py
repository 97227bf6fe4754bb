"""The Slack emulator refuses blocks that real Slack refuses (HTTP 200, ``invalid_blocks``), on chat.postMessage
and chat.update alike, and takes blocks at the limits, through slack_sdk's real AsyncWebClient."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.slack import SlackEmulator

MODELS = "C0MLM0DELS1"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(label: str = "Approve", value: str = "v", action_id: str = "approve") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value}


def fields(count: int, size: int) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * size}] * count}


def header(size: int) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": "h" * size}}


def context(count: int) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * count}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


REFUSED: dict[str, list[dict[str, Any]]] = {
    "header over 150": [header(151)],
    "section text over 3,000": [section("s" * 3001)],
    "section text far over": [section("s" * 12_000)],
    "11 fields": [fields(11, 1)],
    "a field over 2,000": [fields(1, 2001)],
    "context of 11 elements": [context(11)],
    "duplicate block_id": [{**section("a"), "block_id": "x"}, {**section("b"), "block_id": "x"}],
    "button label over 75": [actions(button(label="b" * 76))],
    "button value over 2,000": [actions(button(value="v" * 2001))],
    "26 elements in actions": [actions(*(button(action_id=f"a{i}") for i in range(26)))],
    "empty section text": [section("")],
    "section without text or fields": [{"type": "section"}],
    "unknown block type": [{"type": "bogus"}],
}
AT_THE_LIMITS: list[dict[str, Any]] = [
    {**header(150), "block_id": "b" * 255},
    section("s" * 3000),
    fields(10, 2000),
    context(10),
    actions(*(button(label="b" * 75, value="v" * 2000, action_id=f"a{i}") for i in range(25))),
    {"type": "divider"},
]


async def refusal(call: Any) -> tuple[int, str, list[str]]:
    with pytest.raises(SlackApiError) as info:
        await call
    response = info.value.response
    return response.status_code, response["error"], response["response_metadata"]["messages"]


@pytest.mark.parametrize("blocks", REFUSED.values(), ids=REFUSED.keys())
async def test_blocks_slack_refuses_are_refused_on_post_and_update(
    slack: SlackEmulator, client: AsyncWebClient, blocks: list[dict[str, Any]]
) -> None:
    status, error, messages = await refusal(client.chat_postMessage(channel=MODELS, text="x", blocks=blocks))
    assert (status, error) == (200, "invalid_blocks")
    assert messages and messages[0].startswith("[ERROR] ") and "[json-pointer:/blocks/" in messages[0]
    assert slack.state.channel(MODELS).messages == []

    posted = await client.chat_postMessage(channel=MODELS, text="x", blocks=[section("ok")])
    status, error, _ = await refusal(client.chat_update(channel=MODELS, ts=posted["ts"], text="y", blocks=blocks))
    assert (status, error) == (200, "invalid_blocks")
    [message] = slack.state.channel(MODELS).messages
    assert (message.text, message.blocks) == ("x", [section("ok")])  # unchanged


async def test_blocks_at_the_limits_are_taken(slack: SlackEmulator, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=MODELS, text="x", blocks=AT_THE_LIMITS)
    updated = await client.chat_update(channel=MODELS, ts=posted["ts"], text="y", blocks=AT_THE_LIMITS[1:])
    assert updated["ok"]
    [message] = slack.state.channel(MODELS).messages
    assert message.blocks == AT_THE_LIMITS[1:]
