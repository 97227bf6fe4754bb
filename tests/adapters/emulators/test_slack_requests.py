"""The Slack emulator acting as Slack towards an app: signing, payload shapes, response URLs, and a
real slack_bolt AsyncApp driven end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.base import LocalServer
from adapters.emulators.fake_server import CannedResponse, FakeHTTPServer
from adapters.emulators.slack import SlackEmulator, default_world, sign
from bot.clock import FakeClock

MODELS = "C0MLM0DELS1"
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
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "req-42",
                "text": {"type": "plain_text", "text": "No"},
            },
        ],
    },
]


class SlackClockOn(SlackClock):
    """slack_sdk's verifier clock, reading the emulator's clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()


def assert_has_keys(sample: Any, payload: Any, path: str = "$") -> None:
    """``payload`` has every key of ``sample``, recursively for dicts."""
    if not isinstance(sample, dict):
        return
    assert isinstance(payload, dict), f"{path} is {type(payload).__name__}, the sample has an object"
    for key, value in sample.items():
        assert key in payload, f"{path}.{key} is missing"
        assert_has_keys(value, payload[key], f"{path}.{key}")


def decoded(body: bytes) -> dict[str, Any]:
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    if set(fields) == {"payload"}:
        payload: dict[str, Any] = json.loads(fields["payload"])
        return payload
    return fields


@pytest.fixture
async def slack_to_fake_app(clock: FakeClock, fake_http_server: FakeHTTPServer) -> AsyncIterator[SlackEmulator]:
    fake_http_server.default = CannedResponse(200)
    world = default_world()
    world["enterprise"] = {"id": "E0C0NT050", "name": "Contoso"}  # Grid adds the enterprise_* fields
    async with SlackEmulator(world, clock=clock, events_url=f"{fake_http_server.url}/slack/events") as emulator:
        yield emulator


def test_signature_test_vectors_reproduce(shared_dir: Path) -> None:
    folder = shared_dir / "samples/chat/slack"
    vectors = json.loads((folder / "signature.test_vectors.json").read_text())
    for case in vectors["cases"]:
        body = (folder / case["body_file"]).read_bytes()
        assert sign(vectors["signing_secret"], vectors["timestamp"], body) == case["x_slack_signature"]


async def test_requests_are_signed_and_carry_the_documented_keys(
    slack_to_fake_app: SlackEmulator, fake_http_server: FakeHTTPServer, clock: FakeClock, shared_dir: Path
) -> None:
    slack = slack_to_fake_app
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    card = await client.chat_postMessage(channel=MODELS, text="Approval needed", blocks=BLOCKS)
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="bob")
    await slack.click_button(card["ts"], "approve", user="alice")
    await slack.verify_url("c-123")
    await slack.mention_bot("status model-x", channel="app-releases")

    requests = fake_http_server.recorder.matching("POST /slack/events")
    verifier = SignatureVerifier(slack.signing_secret, clock=SlackClockOn(clock))
    for request in requests:
        assert verifier.is_valid_request(request.body, request.headers)
    assert not SignatureVerifier("another-secret", clock=SlackClockOn(clock)).is_valid_request(
        requests[0].body, requests[0].headers
    )
    command, click = decoded(requests[0].body), decoded(requests[1].body)
    challenge, mention = requests[2].json(), requests[3].json()
    samples = shared_dir / "samples/chat/slack"
    assert_has_keys(json.loads((samples / "slash_command.fields.json").read_text()), command)
    assert_has_keys(json.loads((samples / "block_actions.payload.json").read_text()), click)
    assert_has_keys(json.loads((samples / "url_verification.event.json").read_text()), challenge)
    assert requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (command["command"], command["text"], command["user_id"]) == ("/retrain", "model-x", "U0B0B000002")
    assert command["response_url"].startswith(f"{slack.base_url}/hooks/commands/")
    assert click["actions"][0]["action_id"] == "approve"
    assert click["actions"][0]["block_id"] == "req-42:decide"
    assert click["container"] == {
        "type": "message",
        "message_ts": card["ts"],
        "channel_id": MODELS,
        "is_ephemeral": False,
    }
    assert click["message"]["blocks"] == BLOCKS
    assert challenge["challenge"] == "c-123"
    assert mention["event"]["type"] == "app_mention"
    assert mention["event"]["text"] == "<@U0HANDOFFBT> status model-x"
    assert slack.state.channel("app-releases").messages[0].user == ALICE


async def test_response_url_replace_delete_and_ephemeral(
    slack_to_fake_app: SlackEmulator, fake_http_server: FakeHTTPServer
) -> None:
    slack = slack_to_fake_app
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    card = await client.chat_postMessage(channel=MODELS, text="Approval needed", blocks=BLOCKS)
    await slack.click_button(card["ts"], "approve")
    await slack.send_slash_command("/handoff", "status")
    click, command = (decoded(r.body) for r in fake_http_server.recorder.matching("POST /slack/events"))

    async with aiohttp.ClientSession() as session:

        async def respond(url: str, body: dict[str, Any]) -> tuple[int, Any]:
            async with session.post(url, json=body) as resp:
                return resp.status, await resp.json()

        assert await respond(click["response_url"], {"replace_original": True, "text": "Approved"}) == (
            200,
            {"ok": True},
        )
        assert await respond(command["response_url"], {"text": "only you"}) == (200, {"ok": True})
        await respond(command["response_url"], {"response_type": "in_channel", "text": "for all"})
        await respond(click["response_url"], {"delete_original": True})
        for _ in range(3):  # five uses in all
            await respond(command["response_url"], {"text": "again"})
        assert await respond(command["response_url"], {"text": "sixth"}) == (
            404,
            {"ok": False, "error": "used_url"},
        )

    original = slack.state.find(MODELS, card["ts"])
    assert original is not None
    assert (original.text, original.blocks, original.deleted) == ("Approved", None, True)
    assert [m.text for m in slack.state.ephemeral_for("alice", "ml-models")] == [
        "only you",
        "again",
        "again",
        "again",
    ]
    assert [m.text for m in slack.state.channel(MODELS).messages] == ["Approved", "for all"]


async def test_response_url_expires(slack_to_fake_app: SlackEmulator, clock: FakeClock) -> None:
    slack = slack_to_fake_app
    await slack.send_slash_command("/handoff", "help")
    url = slack.deliveries[-1].request_body.decode()
    response_url = parse_qs(url)["response_url"][0]
    await clock.advance(1801)
    async with aiohttp.ClientSession() as session, session.post(response_url, json={"text": "late"}) as resp:
        assert (resp.status, await resp.json()) == (404, {"ok": False, "error": "expired_url"})


async def test_event_redelivery_headers(slack_to_fake_app: SlackEmulator, fake_http_server: FakeHTTPServer) -> None:
    slack = slack_to_fake_app
    event = {
        "type": "app_mention",
        "user": ALICE,
        "text": "<@U0HANDOFFBT> hi",
        "channel": MODELS,
        "ts": "1.2",
    }
    await slack.send_event(event, event_id="Ev0SAME")
    await slack.send_event(event, event_id="Ev0SAME", retry_num=1)
    first, second = fake_http_server.recorder.matching("POST /slack/events")
    assert first.json()["event_id"] == second.json()["event_id"] == "Ev0SAME"
    assert "X-Slack-Retry-Num" not in first.headers
    assert (second.headers["X-Slack-Retry-Num"], second.headers["X-Slack-Retry-Reason"]) == (
        "1",
        "http_timeout",
    )


def handoff_like_app(client: AsyncWebClient, signing_secret: str) -> AsyncApp:
    bolt = AsyncApp(client=client, signing_secret=signing_secret)

    @bolt.command("/handoff")
    async def handoff(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"handoff {command['text']}: ok")

    @bolt.command("/retrain")
    async def retrain(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(response_type="in_channel", text=f"Retraining {command['text']}")

    @bolt.command("/integrate")
    async def integrate(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        view = {
            "type": "modal",
            "callback_id": "integrate",
            "title": {"type": "plain_text", "text": "Integrate"},
            "submit": {"type": "plain_text", "text": "Start"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "model",
                    "label": {"type": "plain_text", "text": "Model"},
                    "element": {"type": "plain_text_input", "action_id": "value"},
                }
            ],
        }
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @bolt.view("integrate")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        model = view["state"]["values"]["model"]["value"]["value"]
        if ":" not in model:
            await ack(response_action="errors", errors={"model": "use name:version"})
        else:
            await ack()

    @bolt.action("approve")
    async def approve(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_update(
            channel=body["container"]["channel_id"],
            ts=body["container"]["message_ts"],
            text=f"Approved by <@{body['user']['id']}>",
            blocks=[],
        )

    @bolt.event("app_mention")
    async def mentioned(event: dict[str, Any], say: Any) -> None:
        await say(text="on it", thread_ts=event["ts"])

    return bolt


async def test_a_real_bolt_app_round_trip() -> None:
    clock = FakeClock(start=datetime.now(UTC))  # bolt checks signature timestamps against real time
    slack = SlackEmulator(clock=clock)
    await slack.start()
    try:
        bolt = handoff_like_app(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), slack.signing_secret)

        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

        app = web.Application()
        app.router.add_post("/slack/events", events)
        async with LocalServer(app) as server:
            slack.events_url = f"{server.url}/slack/events"

            verified = await slack.verify_url("xyz")
            assert (verified.status, verified.json()) == (200, {"challenge": "xyz"})

            quick = await slack.send_slash_command("/handoff", "status", user="carol")
            assert quick.status == 200
            assert [m.text for m in slack.state.ephemeral_for("carol")] == ["handoff status: ok"]

            retrain = await slack.send_slash_command("/retrain", "model-x", channel="ml-models")
            assert (retrain.status, retrain.body) == (200, b"")
            await slack.recorder.wait_for("POST /hooks/commands/**")
            assert [m.text for m in slack.state.channel("ml-models").messages] == ["Retraining model-x"]

            await slack.send_slash_command("/integrate", "", user="bob")
            await slack.recorder.wait_for("POST /api/views.open")
            (view,) = slack.state.views.values()
            rejected = await slack.submit_view(view.id, {"model": {"value": "model-x"}})
            assert rejected.json()["response_action"] == "errors"
            assert (view.errors, view.closed) == ({"model": "use name:version"}, False)
            await slack.submit_view(view.id, {"model": {"value": "model-x:7"}})
            assert view.closed

            card = await bolt.client.chat_postMessage(channel=MODELS, text="Approval needed", blocks=BLOCKS)
            clicked = await slack.click_button(card["ts"], "approve", user="alice")
            assert clicked.status == 200
            await slack.recorder.wait_for("POST /api/chat.update")
            updated = slack.state.find(MODELS, card["ts"])
            assert updated is not None
            assert (updated.text, updated.blocks) == ("Approved by <@U0A11CE0001>", None)

            mention = await slack.mention_bot("status", channel="app-releases")
            assert mention.status == 200
            await slack.recorder.wait_for("POST /api/chat.postMessage", count=2)
            (thread,) = slack.state.channel("app-releases").messages
            assert [r.text for r in thread.replies] == ["on it"]
            assert len(slack.recorder.matching("POST /api/auth.test")) == 1
    finally:
        await slack.stop()
