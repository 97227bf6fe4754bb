"""The Bot Framework emulator acting as Teams towards a bot: activity shapes, and a real botbuilder bot."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botbuilder.core import MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ConversationReference,
)

from adapters.emulators.base import LocalServer
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.emulators.fake_server import CannedResponse, FakeHTTPServer
from bot.clock import FakeClock

MODELS = "19:mlModels0000000000@thread.tacv2"
TEAM = "19:contosoMlGeneral0000@thread.tacv2"


def assert_has_keys(sample: Any, payload: Any, path: str = "$") -> None:
    """``payload`` has every key of ``sample``, recursively for dicts."""
    if not isinstance(sample, dict):
        return
    assert isinstance(payload, dict), f"{path} is {type(payload).__name__}, the sample has an object"
    for key, value in sample.items():
        assert key in payload, f"{path}.{key} is missing"
        assert_has_keys(value, payload[key], f"{path}.{key}")


def sample(shared_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / "samples/chat/teams" / name).read_text())
    return data


@pytest.fixture
async def teams_to_fake_bot(clock: FakeClock, fake_http_server: FakeHTTPServer) -> AsyncIterator[BotFrameworkEmulator]:
    fake_http_server.default = CannedResponse(201)
    async with BotFrameworkEmulator(clock=clock, bot_endpoint=f"{fake_http_server.url}/api/messages") as emulator:
        yield emulator


async def test_every_activity_has_the_documented_keys(
    teams_to_fake_bot: BotFrameworkEmulator, fake_http_server: FakeHTTPServer, shared_dir: Path
) -> None:
    teams = teams_to_fake_bot
    card = teams.state.post(MODELS, {"type": "message", "text": "Approval needed"}, by_bot=True)
    sent = {
        "installationUpdate.add_team.activity.json": await teams.install_app(),
        "installationUpdate.remove_team.activity.json": await teams.uninstall_app(),
        "conversationUpdate.bot_added_to_team.activity.json": await teams.add_bot_to_team(),
        "message.channel_mention.activity.json": await teams.send_channel_message("status", channel="ML models"),
        "invoke.adaptiveCard_action.activity.json": await teams.click_action(
            card.id, "approve", {"requestId": "req-42"}
        ),
        "message.action_submit.activity.json": await teams.submit_card(
            card.id, {"verb": "approve", "requestId": "req-42"}
        ),
    }
    received = [r.json() for r in fake_http_server.recorder.matching("POST /api/messages")]
    assert [r.activity for r in sent.values()] == received
    for name, response in sent.items():
        assert_has_keys(sample(shared_dir, name), response.activity, name)
        assert response.activity["serviceUrl"] == teams.service_url
    assert all("Authorization" not in r.headers for r in fake_http_server.recorder.requests)


async def test_channel_message_mentions_the_bot_and_is_recorded_in_the_channel(
    teams_to_fake_bot: BotFrameworkEmulator,
) -> None:
    teams = teams_to_fake_bot
    post = await teams.send_channel_message("retrain model-x", channel="ML models", user="bob")
    reply = await teams.send_channel_message("and model-y", channel="ML models", reply_to=post.activity["id"])
    activity = post.activity
    assert activity["text"] == "<at>Handoff</at> retrain model-x"
    assert activity["entities"][0]["mentioned"] == {"id": teams.world.bot_id, "name": "Handoff"}
    assert activity["from"]["aadObjectId"] == "b0b00000-0000-4000-8000-000000000b0b"
    assert activity["conversation"]["id"] == f"{MODELS};messageid={activity['id']}"
    assert reply.activity["conversation"]["id"] == activity["conversation"]["id"]
    assert reply.activity["replyToId"] == activity["id"]
    channel = teams.state.channel("ML models")
    assert [p.text for p in channel.posts] == [activity["text"]]
    assert [r.author_id for r in channel.posts[0].replies] == [teams.world.user("alice").id]


async def test_personal_message_and_invoke_answer(
    teams_to_fake_bot: BotFrameworkEmulator, fake_http_server: FakeHTTPServer
) -> None:
    teams = teams_to_fake_bot
    response = await teams.send_personal_message("help", user="carol")
    assert response.status == 201
    assert response.activity["conversation"]["conversationType"] == "personal"
    assert "entities" not in response.activity or all(e["type"] != "mention" for e in response.activity["entities"])
    card = teams.state.post("a:1personal-carol", {"type": "message", "text": "card"}, by_bot=True)
    body = {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": "Recorded"}
    fake_http_server.respond("POST /api/messages", status=200, body=body)
    clicked = await teams.click_action(card.id, "approve", {"requestId": "r1"}, user="carol")
    assert (clicked.status, clicked.body) == (200, body)
    assert clicked.activity["conversation"]["id"] == "a:1personal-carol"
    assert clicked.activity["from"]["aadObjectId"] == teams.world.user("carol").aad_object_id
    assert teams.deliveries[-1] is clicked


async def test_token_provider_adds_a_bearer_token(clock: FakeClock, fake_http_server: FakeHTTPServer) -> None:
    seen: list[str] = []

    async def provider(activity: Mapping[str, Any]) -> str:
        seen.append(activity["serviceUrl"])
        return "header.payload.signature"

    fake_http_server.respond("POST /api/messages", status=201)
    endpoint = f"{fake_http_server.url}/api/messages"
    async with BotFrameworkEmulator(clock=clock, bot_endpoint=endpoint, token_provider=provider) as teams:
        await teams.install_app()
        assert seen == [teams.service_url]
    request = fake_http_server.recorder.requests[-1]
    assert request.headers["Authorization"] == "Bearer header.payload.signature"


class ProbeBot(TeamsActivityHandler):
    """A small TeamsActivityHandler: stores references, echoes, updates cards on Action.Execute."""

    def __init__(self) -> None:
        self.references: dict[str, ConversationReference] = {}
        self.channels: list[str | None] = []

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        ref = TurnContext.get_conversation_reference(turn_context.activity)
        self.references[turn_context.activity.conversation.id] = ref
        channels = await TeamsInfo.get_team_channels(turn_context)  # synchronous inside botbuilder
        self.channels = [c.name for c in channels]

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        TurnContext.remove_recipient_mention(turn_context.activity)
        await turn_context.send_activity(f"echo: {(turn_context.activity.text or '').strip()}")

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        who = turn_context.activity.from_property.name
        update = MessageFactory.text(f"{invoke_value.action['verb']}d by {who}")
        update.id = turn_context.activity.reply_to_id
        await turn_context.update_activity(update)
        done = {
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [{"type": "TextBlock", "text": update.text}],
        }
        return AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.card.adaptive", value=done)


class NoAuthConfig:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def bot_app(adapter: CloudAdapter, bot: ProbeBot) -> web.Application:
    async def messages(request: web.Request) -> web.Response:
        activity = Activity().deserialize(await request.json())
        invoke = await adapter.process_activity(request.headers.get("Authorization", ""), activity, bot.on_turn)
        if invoke:
            return web.json_response(data=invoke.body, status=invoke.status)
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    return app


async def test_a_real_botbuilder_bot_round_trip(clock: FakeClock) -> None:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(NoAuthConfig()))
    bot = ProbeBot()
    teams = BotFrameworkEmulator(clock=clock)
    async with LocalServer(bot_app(adapter, bot)) as bot_server:
        teams.bot_endpoint = f"{bot_server.url}/api/messages"
        await teams.start(threaded=True)
        try:
            installed = await teams.install_app()
            assert installed.status == 201
            assert bot.channels == [None, "App releases", "ML models"]

            said = await teams.send_channel_message("status", channel="ML models")
            assert said.status == 201
            thread = teams.state.channel("ML models").posts[0]
            assert [r.text for r in thread.replies] == ["echo: status"]

            # proactive: a new thread in a chosen channel, from the stored team reference
            created: list[tuple[ConversationReference, str]] = []

            async def start_thread(turn_context: TurnContext) -> None:
                created.append(
                    await TeamsInfo.send_message_to_teams_channel(
                        turn_context,
                        MessageFactory.text("Approval needed: model-x:7"),
                        MODELS,
                        bot_app_id="h",
                    )
                )

            await adapter.continue_conversation(bot.references[TEAM], start_thread, bot_app_id="handoff")
            ref, card_id = created[0]
            assert ref.conversation.id == f"{MODELS};messageid={card_id}"

            clicked = await teams.click_action(card_id, "approve", {"requestId": "req-7"}, user="bob")
            assert clicked.status == 200
            assert clicked.body["statusCode"] == 200
            assert clicked.body["value"]["body"][0]["text"] == "approved by Bob Chen"
            card = teams.state.message(card_id)
            assert [v.get("text") for v in card.versions] == [
                "Approval needed: model-x:7",
                "approved by Bob Chen",
            ]
        finally:
            await teams.stop()
