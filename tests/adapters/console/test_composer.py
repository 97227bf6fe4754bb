"""Typing into a channel: the console makes the emulators deliver it to the bot as Slack and Teams would."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from adapters.emulators.fake_server import FakeHTTPServer
from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient
from .samples import ALICE_SLACK, ALICE_TEAMS, CAROL_SLACK, SLACK_MODELS, TEAMS_RELEASES


def assert_signed(suite: EmulatorSuite, request: object) -> None:
    headers = request.headers  # type: ignore[attr-defined]
    verifier = SignatureVerifier(suite.slack.signing_secret)
    assert verifier.is_valid(request.body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])  # type: ignore[attr-defined]


async def test_a_slash_command_is_a_signed_form_post_and_its_answer_is_ephemeral(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite
) -> None:
    confirm = {
        "text": "Retrain model-x?",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Retrain *model-x* with `train-model-x`?"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "confirm",
                        "text": {"type": "plain_text", "text": "Retrain"},
                        "style": "primary",
                        "value": "x",
                    }
                ],
            },
        ],
    }
    bot.respond("POST /slack/events", 200, confirm)
    answer = await console.post(
        f"api/channels/slack/{SLACK_MODELS}/messages", {"user": "alice", "text": "/retrain model-x  lr=0.1 <b>"}
    )
    assert answer["ok"] is True and answer["status"] == 200

    (request,) = bot.recorder.matching("POST /slack/events")
    assert_signed(suite, request)
    form = {k: v[0] for k, v in parse_qs(request.text()).items()}
    assert form["command"] == "/retrain"
    assert form["text"] == "model-x  lr=0.1 &lt;b&gt;"  # escaped as Slack's client does
    assert form["user_id"] == ALICE_SLACK and form["channel_id"] == SLACK_MODELS

    view = await console.channel("slack", SLACK_MODELS)
    (reply,) = view["messages"]
    assert reply["ephemeral"] is True and reply["blocks"] == confirm["blocks"]
    assert (await console.channel("slack", SLACK_MODELS, user="bob"))["messages"] == []


async def test_a_mention_posts_the_message_and_sends_app_mention(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite
) -> None:
    await console.post(f"api/channels/slack/{SLACK_MODELS}/messages", {"user": "carol", "text": "@Handoff status"})
    (request,) = bot.recorder.matching("POST /slack/events")
    assert_signed(suite, request)
    event = request.json()["event"]
    assert event["type"] == "app_mention" and event["user"] == CAROL_SLACK
    assert event["text"] == f"<@{suite.slack.world.bot_user_id}> status"
    (message,) = (await console.channel("slack", SLACK_MODELS))["messages"]
    assert message["author"] == CAROL_SLACK and message["bot"] is False


async def test_plain_slack_text_is_a_message_the_bot_does_not_receive(
    console: ConsoleClient, bot: FakeHTTPServer
) -> None:
    await console.post(f"api/channels/slack/{SLACK_MODELS}/messages", {"user": "bob", "text": "lunch? <@U1>"})
    assert bot.recorder.matching("POST /slack/events") == []
    (message,) = (await console.channel("slack", SLACK_MODELS))["messages"]
    assert message["text"] == "lunch? &lt;@U1&gt;"


async def test_a_reply_in_a_slack_thread_mentions_the_bot_in_that_thread(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite
) -> None:
    root = suite.slack.state.post(suite.slack.state.channel(SLACK_MODELS), user=ALICE_SLACK, text="the job")
    await console.post(
        f"api/channels/slack/{SLACK_MODELS}/messages", {"user": "alice", "text": "@handoff why?", "thread": root.ts}
    )
    event = bot.recorder.matching("POST /slack/events")[0].json()["event"]
    assert event["thread_ts"] == root.ts


async def test_a_teams_message_is_an_activity_that_mentions_the_bot(
    console: ConsoleClient, bot: FakeHTTPServer
) -> None:
    answer = await console.post(
        f"api/channels/teams/{TEAMS_RELEASES}/messages", {"user": "alice", "text": "@Handoff retrain model-x"}
    )
    assert answer["ok"] is True
    (request,) = bot.recorder.matching("POST /api/messages")
    activity = request.json()
    assert activity["type"] == "message" and activity["from"]["id"] == ALICE_TEAMS
    assert activity["text"] == "<at>Handoff</at> retrain model-x"
    assert activity["entities"][0]["type"] == "mention"
    (post,) = (await console.channel("teams", TEAMS_RELEASES))["messages"]
    assert post["authorName"] == "Alice Martin" and post["text"] == "<at>Handoff</at> retrain model-x"


async def test_a_teams_reply_goes_to_the_thread_and_the_personal_chat_needs_no_mention(
    console: ConsoleClient, bot: FakeHTTPServer, suite: EmulatorSuite
) -> None:
    await console.post(f"api/channels/teams/{TEAMS_RELEASES}/messages", {"user": "alice", "text": "status"})
    root = suite.teams.state.channel("App releases").posts[0]
    await console.post(
        f"api/channels/teams/{TEAMS_RELEASES}/messages", {"user": "bob", "text": "approvals", "thread": root.id}
    )
    reply = bot.recorder.matching("POST /api/messages")[1].json()
    assert reply["replyToId"] == root.id and reply["conversation"]["id"].endswith(f";messageid={root.id}")

    chat = suite.teams.world.user("carol").personal_conversation_id
    await console.post(f"api/channels/teams/{chat}/messages", {"user": "carol", "text": "help"})
    personal = bot.recorder.matching("POST /api/messages")[2].json()
    assert personal["text"] == "help" and personal["conversation"]["conversationType"] == "personal"


async def test_bad_input_is_a_400_with_a_message(console: ConsoleClient, bot: FakeHTTPServer) -> None:
    where = f"api/channels/slack/{SLACK_MODELS}/messages"
    as_json = {"Content-Type": "application/json"}
    assert "not a valid command" in (await console.post(where, {"text": "/deploy prod"}, status=400))["error"]
    assert "'text' is required" in (await console.post(where, {"text": "   "}, status=400))["error"]
    assert "must be a string" in (await console.post(where, {"text": 42}, status=400))["error"]
    assert "cannot act as" in (await console.post(where, {"text": "hi", "user": "eve"}, status=400))["error"]
    assert "no thread" in (await console.post(where, {"text": "hi", "thread": "1.2"}, status=404))["error"]
    assert (
        "after the mention"
        in (await console.post(f"api/channels/teams/{TEAMS_RELEASES}/messages", {"text": "@Handoff"}, status=400))[
            "error"
        ]
    )
    async with console.session.post(f"{console.url}/{where}", data=b"{not json", headers=as_json) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "The request body is not valid JSON."
    async with console.session.post(f"{console.url}/{where}", data=json.dumps([1]), headers=as_json) as response:
        assert response.status == 400
    async with console.session.post(f"{console.url}/{where}", data=b"x" * 70_000, headers=as_json) as response:
        assert response.status == 413
    assert bot.recorder.matching("POST /slack/events") == []


async def test_a_bot_that_is_not_there_is_a_clear_error(console: ConsoleClient, suite: EmulatorSuite) -> None:
    suite.slack.events_url = None
    answer = await console.post(f"api/channels/slack/{SLACK_MODELS}/messages", {"text": "/handoff help"}, status=503)
    assert "cannot reach the bot" in answer["error"]
    suite.teams.bot_endpoint = "http://127.0.0.1:9/api/messages"  # nothing listens on the discard port
    answer = await console.post(f"api/channels/teams/{TEAMS_RELEASES}/messages", {"text": "help"}, status=502)
    assert "did not answer" in answer["error"]


async def test_a_failing_bot_is_reported_not_raised(console: ConsoleClient, bot: FakeHTTPServer) -> None:
    bot.respond("POST /slack/events", 500, {"error": "boom"})
    answer = await console.post(f"api/channels/slack/{SLACK_MODELS}/messages", {"text": "/handoff status"})
    assert answer == {"ok": False, "status": 500, "answer": '{"error": "boom"}'}
