"""Clicks and forms: Block Kit buttons and modals, Adaptive Card actions and refreshes."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.fake_server import FakeHTTPServer
from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient
from .samples import CAROL_SLACK, CAROL_TEAMS, SLACK_RELEASES, TEAMS_RELEASES, adaptive, slack_gate, teams_gate
from .test_composer import assert_signed

APPROVED = teams_gate("Approved", buttons=False)


async def post_teams_gate(suite: EmulatorSuite, connector: ConnectorClient, card: dict[str, object]) -> str:
    bot = {"id": suite.teams.world.bot_id, "name": "Handoff"}
    sent = await connector.conversations.send_to_conversation(
        TEAMS_RELEASES, Activity(type="message", from_property=bot, attachments=[adaptive(card)])
    )
    return str(sent.id)


def invoke_answer(kind: str, value: object, status: int = 200) -> dict[str, object]:
    return {"statusCode": status, "type": kind, "value": value}


async def test_a_button_click_is_a_signed_block_actions_payload(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel=SLACK_RELEASES, text="gate", blocks=slack_gate())
    answer = await console.post(
        "api/slack/actions",
        {
            "user": "carol",
            "channel": SLACK_RELEASES,
            "ts": posted["ts"],
            "action_id": "approve",
            "value": '{"gate":"g-1"}',
        },
    )
    assert answer["ok"] is True
    (request,) = bot.recorder.matching("POST /slack/events")
    assert_signed(suite, request)
    payload = json.loads(parse_qs(request.text())["payload"][0])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == CAROL_SLACK
    assert payload["actions"][0]["action_id"] == "approve" and payload["actions"][0]["value"] == '{"gate":"g-1"}'
    assert payload["container"]["message_ts"] == posted["ts"]
    assert payload["message"]["blocks"] == slack_gate()


async def test_a_modal_the_bot_opens_is_shown_and_submitted(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel=SLACK_RELEASES, text="gate", blocks=slack_gate())
    await console.post(
        "api/slack/actions", {"user": "carol", "channel": SLACK_RELEASES, "ts": posted["ts"], "action_id": "reject"}
    )
    click = json.loads(parse_qs(bot.recorder.requests[-1].text())["payload"][0])
    modal = {
        "type": "modal",
        "callback_id": "handoff.comment",
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "blocks": [
            {
                "type": "input",
                "block_id": "comment",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "comment", "multiline": True},
            }
        ],
    }
    await slack.views_open(trigger_id=click["trigger_id"], view=modal)

    view = (await console.channel("slack", SLACK_RELEASES, user="carol"))["view"]
    assert view["view"]["title"]["text"] == "Reject" and view["errors"] == {}
    assert (await console.channel("slack", SLACK_RELEASES, user="alice"))["view"] is None

    bot.respond("POST /slack/events", 200, {"response_action": "errors", "errors": {"comment": "Say why."}})
    bot.respond("POST /slack/events", 200, b"")  # then the submission is accepted
    answer = await console.post(
        f"api/slack/views/{view['id']}/submit", {"user": "carol", "values": {"comment": {"comment": " "}}}
    )
    assert answer["closed"] is False and answer["errors"] == {"comment": "Say why."}
    submitted = json.loads(parse_qs(bot.recorder.requests[-1].text())["payload"][0])
    assert submitted["type"] == "view_submission"
    assert submitted["view"]["state"]["values"]["comment"]["comment"]["value"] == " "

    answer = await console.post(
        f"api/slack/views/{view['id']}/submit", {"user": "carol", "values": {"comment": {"comment": "tests are red"}}}
    )
    assert answer["closed"] is True
    assert (await console.channel("slack", SLACK_RELEASES, user="carol"))["view"] is None
    # a closed modal cannot be submitted again; someone else's cannot be touched
    await console.post(f"api/slack/views/{view['id']}/submit", {"user": "carol", "values": {}}, status=400)
    await console.post(f"api/slack/views/{view['id']}/close", {"user": "alice"}, status=404)
    await console.post("api/slack/views/V404/submit", {"user": "carol", "values": {"a": "b"}}, status=404)


async def test_slack_clicks_with_bad_input_are_refused(
    console: ConsoleClient, bot: FakeHTTPServer, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel=SLACK_RELEASES, text="gate", blocks=slack_gate())
    base = {"user": "carol", "channel": SLACK_RELEASES, "ts": posted["ts"]}
    assert "no element" in (await console.post("api/slack/actions", {**base, "action_id": "nope"}, status=404))["error"]
    assert (await console.post("api/slack/actions", {**base, "ts": "1.1", "action_id": "approve"}, status=404))["error"]
    assert (await console.post("api/slack/actions", {**base, "action_id": ""}, status=400))["error"]
    await console.post("api/slack/actions", {**base, "channel": "C404", "action_id": "approve"}, status=404)
    await console.post(
        "api/slack/views/V1/submit", {"user": "carol", "values": {"b": {"a": 1}}}, status=404
    )  # unknown view before the shape is looked at
    assert bot.recorder.matching("POST /slack/events") == []


async def test_an_action_execute_is_an_invoke_and_a_refusal_is_shown(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, connector: ConnectorClient
) -> None:
    message_id = await post_teams_gate(suite, connector, teams_gate())
    refusal = invoke_answer(
        "application/vnd.microsoft.error", {"code": "BadRequest", "message": "Alice may not decide."}, 400
    )
    bot.respond("POST /api/messages", 200, refusal)
    action = {
        "type": "Action.Execute",
        "verb": "reject",
        "id": "reject",
        "data": {"gate": "g-1", "comment": "red tests"},
    }
    answer = await console.post("api/teams/actions", {"user": "alice", "message_id": message_id, "action": action})
    assert answer == {"ok": False, "status": 200, "kind": "error", "text": "Alice may not decide."}
    invoke = bot.recorder.matching("POST /api/messages")[0].json()
    assert invoke["type"] == "invoke" and invoke["name"] == "adaptiveCard/action"
    assert invoke["value"]["action"] == {
        "type": "Action.Execute",
        "id": "reject",
        "verb": "reject",
        "data": action["data"],
    }
    assert invoke["replyToId"] == message_id


async def test_a_card_answer_becomes_the_clickers_card(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, connector: ConnectorClient
) -> None:
    message_id = await post_teams_gate(suite, connector, teams_gate())
    bot.respond("POST /api/messages", 200, invoke_answer("application/vnd.microsoft.card.adaptive", APPROVED))
    bot.respond("POST /api/messages", 200, invoke_answer("application/vnd.microsoft.activity.message", "Noted."))
    action = {"type": "Action.Execute", "verb": "approve", "data": {"gate": "g-1"}}
    answer = await console.post("api/teams/actions", {"user": "carol", "message_id": message_id, "action": action})
    assert answer["kind"] == "card" and answer["ok"] is True
    assert bot.recorder.requests[-1].json()["from"]["id"] == CAROL_TEAMS

    (carols,) = (await console.channel("teams", TEAMS_RELEASES, user="carol"))["messages"]
    assert carols["cards"] == [{"content": APPROVED, "personal": True}]
    (alices,) = (await console.channel("teams", TEAMS_RELEASES, user="alice"))["messages"]
    assert alices["cards"][0]["personal"] is False

    answer = await console.post("api/teams/actions", {"user": "bob", "message_id": message_id, "action": action})
    assert answer == {"ok": True, "status": 200, "kind": "message", "text": "Noted."}


async def test_a_card_refreshed_for_a_person_shows_their_version(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, connector: ConnectorClient
) -> None:
    shared = teams_gate(buttons=False, refresh_for=[CAROL_TEAMS])
    await post_teams_gate(suite, connector, shared)
    mine = teams_gate()
    bot.respond("POST /api/messages", 200, invoke_answer("application/vnd.microsoft.card.adaptive", mine))

    (first,) = (await console.channel("teams", TEAMS_RELEASES, user="carol"))["messages"]
    assert first["cards"][0]["personal"] is False  # the shared card stands in until the bot answers
    for _ in range(100):
        (post,) = (await console.channel("teams", TEAMS_RELEASES, user="carol"))["messages"]
        if post["cards"][0]["personal"]:
            break
        await asyncio.sleep(0.02)
    assert post["cards"][0] == {"content": mine, "personal": True}
    (refresh,) = bot.recorder.matching("POST /api/messages")
    value = refresh.json()["value"]
    assert value["action"]["verb"] == "refresh" and value["trigger"] == "automatic"

    # someone the refresh does not name sees the shared card, and no invoke is sent for them
    (alices,) = (await console.channel("teams", TEAMS_RELEASES, user="alice"))["messages"]
    assert alices["cards"][0] == {"content": shared, "personal": False}
    assert len(bot.recorder.matching("POST /api/messages")) == 1


async def test_an_action_submit_is_a_message_with_the_value(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, connector: ConnectorClient
) -> None:
    message_id = await post_teams_gate(suite, connector, teams_gate())
    action = {"type": "Action.Submit", "data": {"verb": "approve", "gate": "g-1"}}
    answer = await console.post("api/teams/actions", {"user": "carol", "message_id": message_id, "action": action})
    assert answer["ok"] is True
    sent = bot.recorder.matching("POST /api/messages")[0].json()
    assert sent["type"] == "message" and sent["value"] == {"verb": "approve", "gate": "g-1"}


async def test_teams_clicks_with_bad_input_are_refused(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite, connector: ConnectorClient
) -> None:
    message_id = await post_teams_gate(suite, connector, teams_gate())
    body = {"user": "carol", "message_id": message_id}
    await console.post("api/teams/actions", {**body, "action": {"type": "Action.OpenUrl"}}, status=400)
    await console.post("api/teams/actions", {**body, "action": {"type": "Action.Execute"}}, status=400)
    await console.post(
        "api/teams/actions", {**body, "action": {"type": "Action.Execute", "verb": "a", "data": [1]}}, status=400
    )
    await console.post("api/teams/actions", {**body, "action": "approve"}, status=400)
    await console.post(
        "api/teams/actions",
        {**body, "message_id": "404", "action": {"type": "Action.Execute", "verb": "a"}},
        status=404,
    )
    assert bot.recorder.matching("POST /api/messages") == []
