"""botbuilder's real connector clients against the Bot Framework emulator, over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationParameters,
    ErrorResponseException,
)
from botbuilder.schema.teams import ChannelInfo, TeamsChannelData
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from botframework.connector.teams import TeamsConnectorClient
from msrest.exceptions import ClientRequestError, DeserializationError, HttpOperationError

from adapters.emulators.base import Fault
from adapters.emulators.botframework import BotFrameworkEmulator, default_world
from bot.clock import FakeClock

GENERAL = "19:contosoMlGeneral0000@thread.tacv2"
RELEASES = "19:appReleases00000000@thread.tacv2"
MODELS = "19:mlModels0000000000@thread.tacv2"
TEAM = GENERAL
ALICE_MRI = "29:1a1iceContosoMlUserMri"
ALICE_AAD = "a11ce000-0000-4000-8000-0000000a11ce"


@pytest.fixture
async def teams(clock: FakeClock) -> AsyncIterator[BotFrameworkEmulator]:
    async with BotFrameworkEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
async def connector(teams: BotFrameworkEmulator) -> AsyncIterator[ConnectorClient]:
    async with ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url) as client:
        yield client


def message(text: str, **extra: Any) -> Activity:
    return Activity(type="message", text=text, from_property=ChannelAccount(id="28:bot", name="Handoff"), **extra)


def status_of(exc: ErrorResponseException) -> tuple[int, str | None, str | None]:
    code = exc.error.error.code if exc.error is not None and exc.error.error is not None else None
    return exc.response.status_code, exc.response.headers.get("Retry-After"), code


async def test_post_reply_update_delete_build_the_thread(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    root = await connector.conversations.send_to_conversation(RELEASES, message("release 1.4 is rolling out"))
    thread = f"{RELEASES};messageid={root.id}"
    reply = await connector.conversations.send_to_conversation(thread, message("stage build: succeeded"))
    # continue_conversation's route: a reply to a (random) activity id in the thread
    reply2 = await connector.conversations.reply_to_activity(thread, "f0a1-random", message("stage test: running"))
    updated = await connector.conversations.update_activity(
        thread, reply2.id, Activity(type="message", id=reply2.id, text="stage test: succeeded")
    )
    await connector.conversations.delete_activity(thread, reply.id)

    assert updated.id == reply2.id
    channel = teams.state.channel("App releases")
    assert [p.id for p in channel.posts] == [root.id]
    post = channel.posts[0]
    assert post.text == "release 1.4 is rolling out"
    assert post.activity["conversation"]["id"] == thread
    assert [r.id for r in post.replies] == [reply.id, reply2.id]
    assert post.replies[0].deleted
    assert post.replies[1].text == "stage test: succeeded"
    assert [v["text"] for v in post.replies[1].versions] == ["stage test: running", "stage test: succeeded"]
    assert post.replies[1].versions[0]["replyToId"] == "f0a1-random"
    assert teams.state.snapshot()["teams"][0]["channels"][1]["posts"][0]["replies"][1]["versions"] == 2
    assert int(root.id) < int(reply.id) < int(reply2.id)


async def test_bare_channel_reply_route_makes_a_new_post(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    first = await connector.conversations.send_to_conversation(MODELS, message("model-x:7 registered"))
    second = await connector.conversations.reply_to_activity(MODELS, first.id, message("model-x:8 registered"))
    assert [p.id for p in teams.state.channel(MODELS).posts] == [first.id, second.id]


async def test_create_conversation_starts_a_thread_in_a_channel(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    params = ConversationParameters(
        is_group=True,
        channel_data=TeamsChannelData(channel=ChannelInfo(id=MODELS)),
        activity=message("Approval needed: deploy model-x:7"),
    )
    created = await connector.conversations.create_conversation(params)
    assert created.activity_id
    assert created.id == f"{MODELS};messageid={created.activity_id}"
    assert created.service_url == teams.service_url
    await connector.conversations.send_to_conversation(created.id, message("details"))
    post = teams.state.channel("ML models").posts[0]
    assert (post.id, post.text, [r.text for r in post.replies]) == (
        created.activity_id,
        "Approval needed: deploy model-x:7",
        ["details"],
    )


async def test_create_personal_conversation(teams: BotFrameworkEmulator, connector: ConnectorClient) -> None:
    params = ConversationParameters(
        is_group=False, members=[ChannelAccount(id=ALICE_MRI)], activity=message("your run finished")
    )
    created = await connector.conversations.create_conversation(params)
    assert created.id == "a:1personal-alice"
    assert teams.state.conversation(created.id).posts[0].text == "your run finished"


async def test_members_and_paged_members(connector: ConnectorClient) -> None:
    members = await connector.conversations.get_conversation_members(RELEASES)
    assert [m.name for m in members] == ["Alice Martin", "Bob Chen", "Carol Diaz"]
    alice = await connector.conversations.get_conversation_member(GENERAL, ALICE_AAD)
    assert alice.id == ALICE_MRI
    assert alice.additional_properties["email"] == "alice@contoso.com"
    page1 = await connector.conversations.get_teams_conversation_paged_members(TEAM, page_size=2)
    page2 = await connector.conversations.get_teams_conversation_paged_members(
        TEAM, page_size=2, continuation_token=page1.continuation_token
    )
    assert [m.user_principal_name for m in page1.members + page2.members] == [
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
    ]
    assert page1.members[0].aad_object_id == ALICE_AAD
    assert page2.continuation_token is None


async def test_team_details_and_channels_with_the_sync_teams_client(teams: BotFrameworkEmulator) -> None:
    client = TeamsConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url)
    details = await asyncio.to_thread(client.teams.get_team_details, TEAM)
    channels = await asyncio.to_thread(client.teams.get_teams_channels, TEAM)
    assert (details.name, details.channel_count, details.member_count) == ("Contoso ML", 3, 3)
    assert [(c.id, c.name) for c in channels.conversations] == [
        (GENERAL, None),  # Teams leaves the General channel's name out
        (RELEASES, "App releases"),
        (MODELS, "ML models"),
    ]


async def test_unknown_conversation_activity_and_member_are_404(connector: ConnectorClient) -> None:
    calls = [
        connector.conversations.send_to_conversation("19:nope@thread.tacv2", message("x")),
        connector.conversations.send_to_conversation(f"{MODELS};messageid=123", message("x")),
        connector.conversations.update_activity(MODELS, "123", Activity(type="message", id="123", text="x")),
        connector.conversations.delete_activity(MODELS, "123"),
        connector.conversations.get_conversation_member(MODELS, "29:stranger"),
    ]
    codes = []
    for call in calls:
        with pytest.raises(ErrorResponseException) as info:
            await call
        codes.append(status_of(info.value)[::2])
    assert codes == [
        (404, "ConversationNotFound"),
        (404, "ConversationNotFound"),
        (404, "ActivityNotFoundInConversation"),
        (404, "ActivityNotFoundInConversation"),
        (404, "MemberNotFoundInConversation"),
    ]


async def test_a_conversation_the_bot_was_removed_from_refuses_everything_with_403(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    root = await connector.conversations.send_to_conversation(RELEASES, message("release 1.4 is rolling out"))
    teams.state.bot_removed_from.add(RELEASES)
    calls = [
        connector.conversations.send_to_conversation(RELEASES, message("x")),
        connector.conversations.send_to_conversation(f"{RELEASES};messageid={root.id}", message("x")),
        connector.conversations.update_activity(RELEASES, root.id, Activity(type="message", id=root.id, text="x")),
        connector.conversations.create_conversation(
            ConversationParameters(is_group=True, channel_data={"channel": {"id": RELEASES}}, activity=message("x"))
        ),
    ]
    for call in calls:
        with pytest.raises(ErrorResponseException) as info:
            await call
        assert status_of(info.value)[::2] == (403, "BotNotInConversationRoster")
    assert [m.versions[-1]["text"] for m in teams.state.channel(RELEASES).posts] == ["release 1.4 is rolling out"]
    assert not teams.state.channel(RELEASES).posts[0].replies
    # other conversations are not affected
    assert (await connector.conversations.send_to_conversation(MODELS, message("y"))).id


async def test_bot_cannot_edit_a_users_message(teams: BotFrameworkEmulator, connector: ConnectorClient) -> None:
    teams.state.post(MODELS, {"type": "message", "id": "42", "text": "hi", "from": {"id": ALICE_MRI}}, by_bot=False)
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.update_activity(MODELS, "42", Activity(type="message", id="42", text="x"))
    assert status_of(info.value)[0] == 403


async def test_message_over_the_size_limit_is_413(teams: BotFrameworkEmulator, connector: ConnectorClient) -> None:
    # about 100 KB, counted in UTF-16: two bytes a character
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.send_to_conversation(MODELS, message("x" * 52_000))
    assert status_of(info.value) == (413, None, "MessageSizeTooBig")
    assert teams.state.channel(MODELS).posts == []
    ok = await connector.conversations.send_to_conversation(MODELS, message("x" * 50_000))
    assert teams.state.message(ok.id).text == "x" * 50_000


async def test_the_size_limit_counts_utf16_not_the_escaped_json_on_the_wire(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    # 45,000 kana: 90 KB in UTF-16, though 135 KB in UTF-8 and 270 KB as the SDK's \uXXXX escapes
    japanese = "モデル" * 15_000
    ok = await connector.conversations.send_to_conversation(MODELS, message(japanese))
    assert teams.state.message(ok.id).text == japanese
    # an emoji is a surrogate pair, 4 bytes: 26,000 of them are over the limit
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.send_to_conversation(MODELS, message("🚀" * 26_000))
    assert status_of(info.value)[0] == 413
    # an update is held to the same limit
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.update_activity(MODELS, ok.id, message("🚀" * 26_000, id=ok.id))
    assert status_of(info.value)[0] == 413
    assert teams.state.message(ok.id).text == japanese


async def test_the_size_limit_can_be_lowered(clock: FakeClock) -> None:
    world = default_world()
    world["limits"] = {**world["limits"], "max_message_bytes": 40_960}  # as older Teams docs say: 40 KB
    async with (
        BotFrameworkEmulator(world, clock=clock) as teams,
        ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url) as connector,
    ):
        await connector.conversations.send_to_conversation(MODELS, message("x" * 20_000))
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.send_to_conversation(MODELS, message("x" * 21_000))
        assert status_of(info.value) == (413, None, "MessageSizeTooBig")
        assert len(teams.state.channel(MODELS).posts) == 1


async def test_the_eighth_message_in_one_second_gets_429(
    teams: BotFrameworkEmulator, connector: ConnectorClient, clock: FakeClock
) -> None:
    for i in range(7):
        await connector.conversations.send_to_conversation(MODELS, message(f"m{i}"))
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.send_to_conversation(MODELS, message("m7"))
    assert status_of(info.value) == (429, "1", "TooManyRequests")
    # another conversation has its own budget
    await connector.conversations.send_to_conversation(RELEASES, message("elsewhere"))
    # replies and updates in a thread of the channel count against the channel
    thread = teams.state.channel(MODELS).posts[0].thread_conversation_id
    with pytest.raises(ErrorResponseException):
        await connector.conversations.send_to_conversation(thread, message("reply"))

    await clock.advance(1.0)  # the 1 s window is free, the 2 s window (8) has room for one more
    await connector.conversations.send_to_conversation(MODELS, message("m8"))
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.send_to_conversation(MODELS, message("m9"))
    assert status_of(info.value)[:2] == (429, "1")
    await clock.advance(2.0)
    await connector.conversations.send_to_conversation(MODELS, message("m10"))
    assert len(teams.state.channel(MODELS).posts) == 9
    assert [r.status for r in teams.recorder.matching(f"POST /v3/conversations/{MODELS}/activities")].count(429) == 2


async def test_sixty_messages_per_thirty_seconds(connector: ConnectorClient, clock: FakeClock) -> None:
    for i in range(60):
        await connector.conversations.send_to_conversation(MODELS, message(f"m{i}"))
        await clock.advance(0.3)
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.send_to_conversation(MODELS, message("m60"))
    # the first message (t=0) leaves the 30 s window at t=30; now is t=18
    assert status_of(info.value)[:2] == (429, "12")
    await clock.advance(12.0)
    await connector.conversations.send_to_conversation(MODELS, message("m61"))


async def test_fault_429_reaches_the_client_with_retry_after(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    teams.faults.add("POST /v3/conversations/*/activities", [Fault("429", retry_after=2)])
    with pytest.raises(ErrorResponseException) as info:
        await connector.conversations.send_to_conversation(MODELS, message("x"))
    assert status_of(info.value) == (429, "2", "TooManyRequests")
    await connector.conversations.send_to_conversation(MODELS, message("x"))  # the next one goes through


async def test_fault_503_and_502_reach_the_client(teams: BotFrameworkEmulator, connector: ConnectorClient) -> None:
    teams.faults.add("POST /v3/conversations/*/activities", ["503", "502"])
    seen = []
    for _ in range(2):
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.send_to_conversation(MODELS, message("x"))
        seen.append(status_of(info.value))
    assert seen == [(503, "1", "ServiceUnavailable"), (502, None, "BadGateway")]
    assert teams.state.channel(MODELS).posts == []


async def test_fault_reset_and_malformed_json(teams: BotFrameworkEmulator, connector: ConnectorClient) -> None:
    teams.faults.add("POST /v3/conversations/*/activities", ["reset", "malformed_json"])
    with pytest.raises((ClientRequestError, aiohttp.ClientError)):
        await connector.conversations.send_to_conversation(MODELS, message("lost"))
    with pytest.raises(DeserializationError):
        await connector.conversations.send_to_conversation(MODELS, message("garbled"))
    assert [r.status for r in teams.recorder.matching("POST /v3/conversations/*/activities")] == [500, 200]


async def test_reads_and_updates_are_retried_by_msrest_after_a_fault(
    teams: BotFrameworkEmulator, connector: ConnectorClient
) -> None:
    # msrest retries GET/PUT/DELETE on 429/5xx (honouring Retry-After); POSTs are never retried.
    teams.faults.add("GET /v3/conversations/*/pagedmembers", [Fault("503", retry_after=0)])
    teams.faults.add("PUT /v3/conversations/**", ["502"])
    page = await connector.conversations.get_teams_conversation_paged_members(TEAM)
    assert len(page.members) == 3
    assert [r.status for r in teams.recorder.matching("GET /v3/conversations/*/pagedmembers")] == [503, 200]
    sent = await connector.conversations.send_to_conversation(MODELS, message("x"))
    await connector.conversations.update_activity(MODELS, sent.id, Activity(type="message", id=sent.id, text="y"))
    assert [r.status for r in teams.recorder.matching("PUT /v3/conversations/**")] == [502, 200]
    assert teams.state.message(sent.id).text == "y"


async def test_faults_can_be_scripted_over_http(teams: BotFrameworkEmulator, connector: ConnectorClient) -> None:
    async with aiohttp.ClientSession() as session:
        script = {"route": "POST /v3/conversations", "faults": [{"kind": "429", "retry_after": 3}]}
        async with session.post(f"{teams.base_url}/_emulator/faults", json=script) as resp:
            assert resp.status == 200
        params = ConversationParameters(is_group=True, channel_data={"channel": {"id": MODELS}}, activity=message("x"))
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.create_conversation(params)
        assert status_of(info.value)[:2] == (429, "3")
        async with session.get(f"{teams.base_url}/_emulator/state") as resp:
            assert (await resp.json())["teams"][0]["name"] == "Contoso ML"


async def test_a_custom_world_and_limits(clock: FakeClock) -> None:
    world = default_world()
    world["limits"] = {"send": [[2, 1]], "max_message_bytes": 500}
    world["teams"][0]["channels"].append({"id": "19:ops@thread.tacv2", "name": "Ops"})
    async with (
        BotFrameworkEmulator(world, clock=clock) as teams,
        ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url) as connector,
    ):
        await connector.conversations.send_to_conversation("19:ops@thread.tacv2", message("a"))
        await connector.conversations.send_to_conversation("19:ops@thread.tacv2", message("b"))
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.send_to_conversation("19:ops@thread.tacv2", message("c"))
        assert status_of(info.value)[0] == 429
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.send_to_conversation(MODELS, message("x" * 600))
        assert status_of(info.value)[0] == 413
        assert len(teams.state.channel("Ops").posts) == 2


async def test_the_bots_requests_across_conversations_share_one_limit(clock: FakeClock) -> None:
    world = default_world()
    world["limits"] = {"app": [[5, 1]]}
    async with (
        BotFrameworkEmulator(world, clock=clock) as teams,
        ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url) as connector,
    ):
        for conversation in (MODELS, MODELS, RELEASES, RELEASES, GENERAL):
            await connector.conversations.send_to_conversation(conversation, message("fits"))
        # a sixth request in the second, in a conversation with room of its own, is refused
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.send_to_conversation(GENERAL, message("one too many"))
        assert status_of(info.value) == (429, "1", "TooManyRequests")
        # reads count too, and a refused request counts against nothing
        with pytest.raises(HttpOperationError) as refused:
            await connector.conversations.get_conversation_paged_members(GENERAL)
        assert refused.value.response.status_code == 429
        await clock.advance(1.0)
        for conversation in (GENERAL, GENERAL, GENERAL, MODELS, RELEASES):
            await connector.conversations.send_to_conversation(conversation, message("next second"))
        posted = [len(teams.state.channel(name).posts) for name in ("General", "App releases", "ML models")]
        assert posted == [4, 3, 3]


async def test_the_default_limit_across_conversations_is_thirty_a_second(clock: FakeClock) -> None:
    world = default_world()
    world["limits"] = {"send": [[100, 1]]}  # room in each conversation: only the bot's limit refuses
    async with (
        BotFrameworkEmulator(world, clock=clock) as teams,
        ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url) as connector,
    ):
        for i in range(30):
            await connector.conversations.send_to_conversation((MODELS, RELEASES, GENERAL)[i % 3], message(f"{i}"))
        with pytest.raises(ErrorResponseException) as info:
            await connector.conversations.send_to_conversation(MODELS, message("31st"))
        assert status_of(info.value)[0] == 429
        posted = [len(teams.state.channel(name).posts) for name in ("General", "App releases", "ML models")]
        assert posted == [10, 10, 10]
