"""What the console shows: channels of both platforms, messages as the bot posted them, per person."""

from __future__ import annotations

from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient
from .samples import (
    CAROL_SLACK,
    SLACK_MODELS,
    SLACK_RELEASES,
    TEAMS_RELEASES,
    adaptive,
    slack_gate,
    slack_job,
    teams_gate,
)


async def test_state_lists_people_channels_and_world_actions(console: ConsoleClient) -> None:
    state = await console.get("api/state")
    assert state["user"] == "alice"
    people = {p["key"]: p for p in state["people"]}
    assert list(people) == ["alice", "bob", "carol"]
    assert people["alice"]["role"] == "data scientist"
    assert people["carol"]["role"] == "release manager"
    assert people["bob"]["slack"] and people["bob"]["teams"]
    slack = {c["name"]: c for c in state["channels"]["slack"]}
    assert slack["ml-models"]["title"] == "#ml-models"
    assert slack["ops"]["member"] is False  # alice is not in #ops
    teams = {c["name"]: c for c in state["channels"]["teams"]}
    assert teams["App releases"]["team"] == "Contoso ML"
    assert any(c["kind"] == "personal" for c in state["channels"]["teams"])
    assert {"land-data", "fail-next-integration", "register-model"} <= {a["name"] for a in state["actions"]}

    carol = await console.get("api/state", user="carol")
    assert carol["user"] == "carol"
    assert {c["name"]: c for c in carol["channels"]["slack"]}["ops"]["member"] is True


async def test_slack_snapshot_has_the_latest_blocks_threads_edits_and_ephemeral(
    console: ConsoleClient, slack: AsyncWebClient
) -> None:
    posted = await slack.chat_postMessage(channel=SLACK_RELEASES, text="Release app-y", blocks=slack_gate())
    await slack.chat_postMessage(channel=SLACK_RELEASES, thread_ts=posted["ts"], text="Integration tests passed")
    await slack.chat_update(
        channel=SLACK_RELEASES, ts=posted["ts"], text="Approved", blocks=slack_gate("Approved", buttons=False)
    )
    await slack.chat_postEphemeral(channel=SLACK_RELEASES, user=CAROL_SLACK, text="Only carol sees this")

    view = await console.channel("slack", SLACK_RELEASES, user="carol")
    assert view["title"] == "#app-releases"
    card, note = view["messages"]
    assert card["bot"] is True and card["edited"] is True
    assert card["blocks"] == slack_gate("Approved", buttons=False)
    assert [r["text"] for r in card["replies"]] == ["Integration tests passed"]
    assert note["ephemeral"] is True and note["text"] == "Only carol sees this"
    assert view["users"][CAROL_SLACK] == "Carol Diaz"
    assert view["bot"]["name"] == "handoff"

    bob = await console.channel("slack", SLACK_RELEASES, user="bob")
    assert [m["ephemeral"] for m in bob["messages"]] == [False]


async def test_slack_deleted_messages_disappear_unless_they_have_a_thread(
    console: ConsoleClient, slack: AsyncWebClient
) -> None:
    lone = await slack.chat_postMessage(channel=SLACK_MODELS, text="oops")
    parent = await slack.chat_postMessage(channel=SLACK_MODELS, text="job", blocks=slack_job())
    await slack.chat_postMessage(channel=SLACK_MODELS, thread_ts=parent["ts"], text="step 1")
    await slack.chat_delete(channel=SLACK_MODELS, ts=lone["ts"])
    await slack.chat_delete(channel=SLACK_MODELS, ts=parent["ts"])
    view = await console.channel("slack", SLACK_MODELS)
    assert [(m["deleted"], m["blocks"], len(m["replies"])) for m in view["messages"]] == [(True, None, 1)]


async def test_teams_snapshot_has_the_card_its_edits_and_thread(
    console: ConsoleClient, connector: ConnectorClient, suite: EmulatorSuite
) -> None:
    bot = {"id": suite.teams.world.bot_id, "name": "Handoff"}
    root = await connector.conversations.send_to_conversation(
        TEAMS_RELEASES, Activity(type="message", from_property=bot, attachments=[adaptive(teams_gate())])
    )
    thread = f"{TEAMS_RELEASES};messageid={root.id}"
    await connector.conversations.send_to_conversation(
        thread, Activity(type="message", from_property=bot, text="Integration tests **passed**")
    )
    await connector.conversations.update_activity(
        thread,
        root.id,
        Activity(
            type="message", id=root.id, from_property=bot, attachments=[adaptive(teams_gate("Approved", buttons=False))]
        ),
    )

    view = await console.channel("teams", TEAMS_RELEASES)
    assert view["title"] == "App releases" and view["team"] == "Contoso ML"
    (post,) = view["messages"]
    assert post["bot"] is True and post["edited"] is True and post["authorName"] == "Handoff"
    assert post["cards"] == [{"content": teams_gate("Approved", buttons=False), "personal": False}]
    assert [r["text"] for r in post["replies"]] == ["Integration tests **passed**"]
    assert post["replies"][0]["cards"] == []


async def test_teams_personal_chat_is_only_the_persons(console: ConsoleClient, suite: EmulatorSuite) -> None:
    alice_chat = suite.teams.world.user("alice").personal_conversation_id
    view = await console.channel("teams", alice_chat)
    assert view["kind"] == "personal"
    assert (await console.get(f"api/channels/teams/{alice_chat}", status=404, user="bob"))["error"]


async def test_unknown_channels_people_and_platforms_are_refused(console: ConsoleClient) -> None:
    assert "no Slack channel" in (await console.get("api/channels/slack/C404", status=404))["error"]
    assert "no Teams conversation" in (await console.get("api/channels/teams/19:nope", status=404))["error"]
    assert (await console.get("api/channels/discord/x", status=404))["error"]
    assert "cannot act as" in (await console.get("api/state", status=400, user="mallory"))["error"]
    assert (await console.get("api/nothing-here", status=404))["error"]
