"""The Bot Framework emulator's Microsoft Graph and Entra ID token routes, over HTTP on 127.0.0.1.

Messages are posted the way the bot posts them (botbuilder's connector client) and read back the way
Handoff reads them (plain aiohttp against Graph, with a client-credentials token).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from botbuilder.schema import Activity, Attachment, ChannelAccount, ConversationParameters
from botbuilder.schema.teams import ChannelInfo, TeamsChannelData
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials

from adapters.emulators.base import Fault, LocalServer, mount
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.emulators.botframework.graph import TOKEN_LIFETIME
from bot.clock import FakeClock

TENANT = "7b0c1f2e-0000-4000-8000-00000c0a7050"
GROUP = "c0a7050e-0000-4000-8000-0000000c0a70"  # the team's Microsoft 365 group id
TEAM = "19:contosoMlGeneral0000@thread.tacv2"  # its Bot Framework id, which Graph does not know
MODELS = "19:mlModels0000000000@thread.tacv2"
RELEASES = "19:appReleases00000000@thread.tacv2"
BOT_APP_ID = "00000000-0000-4000-8000-0000000b0ff0"
ALICE_MRI = "29:1a1iceContosoMlUserMri"
ALICE_AAD = "a11ce000-0000-4000-8000-0000000a11ce"
BOB_MRI = "29:1b0bContosoMlUserMri"
SECRET = "graph-secret"
SCOPE = "https://graph.microsoft.com/.default"
CARD = "application/vnd.microsoft.card.adaptive"
CHANNEL_FORBIDDEN = (
    "Missing role permissions on the request. API requires one of "
    "'ChannelMessage.Read.All, ChannelMessage.Read.Group'. Roles on the request ''."
)
CHAT_FORBIDDEN = (
    "Missing role permissions on the request. API requires one of "
    "'Chat.Read.All, ChatMessage.Read.Chat'. Roles on the request ''."
)


@pytest.fixture
async def teams(clock: FakeClock) -> AsyncIterator[BotFrameworkEmulator]:
    """The emulator with Graph credentials configured: Graph wants a token."""
    async with BotFrameworkEmulator(clock=clock, graph_credentials={BOT_APP_ID: SECRET}) as emulator:
        yield emulator


@pytest.fixture
async def connector(teams: BotFrameworkEmulator) -> AsyncIterator[ConnectorClient]:
    async with ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.service_url) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def token(teams: BotFrameworkEmulator, http: aiohttp.ClientSession) -> str:
    status, body = await request_token(http, teams)
    assert status == 200, body
    return str(body["access_token"])


# helpers


def token_form(**changes: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "client_id": BOT_APP_ID,
        "client_secret": SECRET,
        "grant_type": "client_credentials",
        "scope": SCOPE,
        **changes,
    }
    return {k: v for k, v in form.items() if v is not None}


async def request_token(
    http: aiohttp.ClientSession, teams: BotFrameworkEmulator, tenant: str = TENANT, **changes: str | None
) -> tuple[int, dict[str, Any]]:
    url = f"{teams.login_url}/{tenant}/oauth2/v2.0/token"
    async with http.post(url, data=token_form(**changes)) as response:
        return response.status, await response.json()


async def get(
    http: aiohttp.ClientSession,
    url: str,
    token: str | None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with http.get(url, params=params, headers=sent) as response:
        return response.status, await response.json()


async def all_pages(
    http: aiohttp.ClientSession, url: str, token: str | None, params: dict[str, str] | None = None
) -> list[list[dict[str, Any]]]:
    """Every page of a Graph list, following ``@odata.nextLink`` (at most 10 pages: a broken cursor ends)."""
    pages = []
    status, body = await get(http, url, token, params)
    for _ in range(10):
        assert status == 200, body
        pages.append(body["value"])
        if "@odata.nextLink" not in body:
            return pages
        status, body = await get(http, body["@odata.nextLink"], token)
    raise AssertionError(f"more than 10 pages: {[ids(p) for p in pages]}")


def channel_url(teams: BotFrameworkEmulator, channel: str = MODELS, group: str = GROUP) -> str:
    return f"{teams.graph_url}/teams/{quote(group, safe='')}/channels/{quote(channel, safe='')}/messages"


def replies_url(teams: BotFrameworkEmulator, root_id: str, channel: str = MODELS) -> str:
    return f"{channel_url(teams, channel)}/{quote(root_id, safe='')}/replies"


def chat_url(teams: BotFrameworkEmulator, chat_id: str) -> str:
    return f"{teams.graph_url}/chats/{quote(chat_id, safe='')}/messages"


def card(text: str) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": text}],
    }


def card_activity(text: str, activity_id: str | None = None) -> Activity:
    return Activity(type="message", id=activity_id, attachments=[Attachment(content_type=CARD, content=card(text))])


def message(text: str) -> Activity:
    return Activity(type="message", text=text)


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [str(m["id"]) for m in items]


def card_text(item: dict[str, Any]) -> str:
    """The TextBlock text of a Graph item's card (its attachment content is a JSON string)."""
    content = item["attachments"][0]["content"]
    assert isinstance(content, str)
    return str(json.loads(content)["body"][0]["text"])


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return data

    header, payload, _ = token.split(".")
    return part(header), part(payload)


async def start_thread(connector: ConnectorClient, text: str, channel: str = MODELS) -> tuple[str, str]:
    """A new channel thread with a card, as botbuilder starts one: (thread conversation id, root id)."""
    params = ConversationParameters(
        is_group=True, channel_data=TeamsChannelData(channel=ChannelInfo(id=channel)), activity=card_activity(text)
    )
    created = await connector.conversations.create_conversation(params)
    return str(created.id), str(created.activity_id)


async def start_group_chat(connector: ConnectorClient, text: str) -> str:
    params = ConversationParameters(
        is_group=True,
        members=[ChannelAccount(id=ALICE_MRI), ChannelAccount(id=BOB_MRI)],
        activity=message(text),
    )
    return str((await connector.conversations.create_conversation(params)).id)


def assert_graph_error(status: int, body: dict[str, Any], expected_status: int, code: str) -> str:
    assert (status, body["error"]["code"]) == (expected_status, code), body
    assert set(body["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    return str(body["error"]["message"])


# messages


async def test_a_card_thread_its_reply_and_their_updates_show_in_graph(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str, clock: FakeClock
) -> None:
    thread, root_id = await start_thread(connector, "Approve deploy of model-x:7?")
    reply = await connector.conversations.reply_to_activity(thread, root_id, card_activity("approved by alice"))
    await clock.advance(60)
    await connector.conversations.update_activity(thread, reply.id, card_activity("approved by bob", reply.id))
    await connector.conversations.update_activity(thread, root_id, card_activity("deployed", root_id))

    status, body = await get(http, channel_url(teams), token)
    assert status == 200, body
    [root] = body["value"]
    assert (root["id"], root["replyToId"], card_text(root)) == (root_id, None, "deployed")
    attachment = root["attachments"][0]
    assert json.loads(attachment["content"]) == card("deployed")
    assert {k: v for k, v in attachment.items() if k not in ("id", "content")} == {
        "contentType": CARD,
        "contentUrl": None,
        "name": None,
        "thumbnailUrl": None,
        "teamsAppId": None,
    }
    assert root["body"] == {"contentType": "html", "content": f'<attachment id="{attachment["id"]}"></attachment>'}
    assert root["from"] == {
        "application": {
            "@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
            "id": BOT_APP_ID,
            "displayName": "Handoff",
            "applicationIdentityType": "bot",
        },
        "user": None,
        "device": None,
    }
    assert root["channelIdentity"] == {"teamId": GROUP, "channelId": MODELS}
    assert (root["createdDateTime"], root["lastModifiedDateTime"], root["deletedDateTime"]) == (
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:01:00.000Z",
        None,
    )
    assert (root["messageType"], root["importance"], root["locale"], root["subject"], root["summary"]) == (
        "message",
        "normal",
        "en-us",
        None,
        None,
    )
    assert (root["mentions"], root["reactions"], root["etag"]) == ([], [], "1767225660000")
    assert root["webUrl"].startswith("https://teams.microsoft.com/l/message/")

    status, body = await get(http, replies_url(teams, root_id), token)
    assert status == 200, body
    [answer] = body["value"]
    assert (answer["id"], answer["replyToId"], card_text(answer)) == (reply.id, root_id, "approved by bob")
    assert answer["channelIdentity"] == {"teamId": GROUP, "channelId": MODELS}
    # the attachment id is the same on every read
    _, again = await get(http, channel_url(teams), token)
    assert again["value"][0]["attachments"][0]["id"] == attachment["id"]


async def test_channel_threads_are_listed_newest_first_and_paged_by_cursor(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str, clock: FakeClock
) -> None:
    posted = []
    for i in range(5):
        posted.append((await connector.conversations.send_to_conversation(MODELS, message(f"post {i}"))).id)
        await clock.advance(1)
    await connector.conversations.send_to_conversation(RELEASES, message("another channel"))

    status, first = await get(http, channel_url(teams), token, {"$top": "2"})
    assert status == 200, first
    assert ids(first["value"]) == [posted[4], posted[3]]
    link = first["@odata.nextLink"]
    assert link.startswith(f"{teams.graph_url}/teams/{GROUP}/channels/")
    assert "$top=2" in link and "$skiptoken=" in link
    # a post arriving between two pages neither repeats nor hides one
    newest = (await connector.conversations.send_to_conversation(MODELS, message("post 5"))).id
    rest = await all_pages(http, link, token)
    assert [ids(p) for p in rest] == [[posted[2], posted[1]], [posted[0]]]
    pages = await all_pages(http, channel_url(teams), token, {"$top": "4"})
    assert [ids(p) for p in pages] == [[newest, *posted[4:1:-1]], [posted[1], posted[0]]]
    assert [m["body"]["content"] for m in pages[1]] == ["post 1", "post 0"]


async def test_channel_list_defaults_to_twenty_and_allows_fifty(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession, token: str
) -> None:
    for i in range(51):
        teams.state.post(MODELS, {"type": "message", "text": f"m{i}"}, by_bot=True)
    status, body = await get(http, channel_url(teams), token)
    assert (status, len(body["value"]), body["value"][0]["body"]["content"]) == (200, 20, "m50")
    assert "@odata.nextLink" in body
    pages = await all_pages(http, channel_url(teams), token, {"$top": "50"})
    assert [len(p) for p in pages] == [50, 1]
    assert pages[1][0]["body"]["content"] == "m0"


async def test_thread_replies_are_newest_first_and_paged(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str
) -> None:
    thread, root_id = await start_thread(connector, "release 1.4")
    replies = [(await connector.conversations.send_to_conversation(thread, message(f"r{i}"))).id for i in range(3)]
    other_thread, _ = await start_thread(connector, "release 1.5")
    await connector.conversations.send_to_conversation(other_thread, message("elsewhere"))

    pages = await all_pages(http, replies_url(teams, root_id), token, {"$top": "2"})
    assert [ids(p) for p in pages] == [[replies[2], replies[1]], [replies[0]]]
    assert {m["replyToId"] for p in pages for m in p} == {root_id}
    _, threads = await get(http, channel_url(teams), token)
    assert len(threads["value"]) == 2  # replies are not threads


async def test_people_and_deleted_messages(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str, clock: FakeClock
) -> None:
    sent_by_alice = {
        "type": "message",
        "id": "1767225500000",
        "text": "can we ship?",
        "from": {"id": ALICE_MRI, "name": "Alice Martin", "aadObjectId": ALICE_AAD},
    }
    root = teams.state.post(MODELS, sent_by_alice, by_bot=False)
    thread = root.thread_conversation_id
    kept = await connector.conversations.reply_to_activity(thread, root.id, message("yes"))
    gone = await connector.conversations.reply_to_activity(thread, root.id, card_activity("deploying"))
    await clock.advance(30)
    await connector.conversations.delete_activity(thread, gone.id)

    _, threads = await get(http, channel_url(teams), token)
    [question] = threads["value"]
    assert question["from"] == {
        "user": {
            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
            "id": ALICE_AAD,
            "displayName": "Alice Martin",
            "userIdentityType": "aadUser",
            "tenantId": TENANT,
        },
        "application": None,
        "device": None,
    }
    assert question["body"] == {"contentType": "html", "content": "can we ship?"}
    _, replies = await get(http, replies_url(teams, root.id), token)
    assert ids(replies["value"]) == [gone.id, kept.id]  # Graph keeps deleted messages in the list
    deleted, alive = replies["value"]
    assert (deleted["deletedDateTime"], deleted["body"]["content"], deleted["attachments"]) == (
        "2026-01-01T00:00:30.000Z",
        "",
        [],
    )
    assert (alive["deletedDateTime"], alive["body"]["content"]) == (None, "yes")


async def test_group_chat_messages_order_filter_and_paging(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str, clock: FakeClock
) -> None:
    chat_id = await start_group_chat(connector, "first")
    sent = [teams.state.conversation(chat_id).posts[0].id]
    for text in ("second", "third"):
        await clock.advance(60)
        sent.append((await connector.conversations.send_to_conversation(chat_id, message(text))).id)
    url = chat_url(teams, chat_id)
    newest_first = {"$orderby": "createdDateTime desc"}

    status, body = await get(http, url, token, newest_first)
    assert status == 200, body
    assert ids(body["value"]) == sent[::-1]
    assert {(m["chatId"], m["channelIdentity"], m["webUrl"]) for m in body["value"]} == {(chat_id, None, None)}

    since = {**newest_first, "$filter": "createdDateTime gt 2026-01-01T00:00:30.000000Z", "$top": "1"}
    pages = await all_pages(http, url, token, since)
    assert [ids(p) for p in pages] == [[sent[2]], [sent[1]]]

    # without $orderby, Graph lists a chat by last modification: an edited message comes first
    await clock.advance(60)
    await connector.conversations.update_activity(chat_id, sent[0], Activity(type="message", id=sent[0], text="1st"))
    _, body = await get(http, url, token)
    assert ids(body["value"]) == [sent[0], sent[2], sent[1]]
    assert body["value"][0]["body"]["content"] == "1st"


@pytest.mark.parametrize(
    ("where", "params", "fragment"),
    [
        ("channel", {"$top": "51"}, "between 1 and 50"),
        ("channel", {"$top": "0"}, "between 1 and 50"),
        ("channel", {"$top": "ten"}, "$top"),
        ("channel", {"$filter": "createdDateTime gt 2026-01-01T00:00:00Z"}, "$filter"),
        ("channel", {"$orderby": "createdDateTime desc"}, "$orderby"),
        ("channel", {"$skiptoken": "not-a-token"}, "$skiptoken"),
        ("replies", {"$top": "51"}, "between 1 and 50"),
        ("chat", {"$top": "51"}, "between 1 and 50"),
        ("chat", {"$orderby": "createdDateTime asc"}, "createdDateTime desc"),
        ("chat", {"$orderby": "lastModifiedDateTime desc"}, "createdDateTime desc"),
        ("chat", {"$filter": "lastModifiedDateTime gt 2026-01-01T00:00:00Z"}, "filter"),
        ("chat", {"$filter": "createdDateTime lt 2026-01-01T00:00:00Z"}, "filter"),
        ("chat", {"$filter": "createdDateTime gt yesterday"}, "filter"),
        ("chat", {"$search": "deploy"}, "$search"),
    ],
)
async def test_query_options_graph_does_not_take_are_400(
    teams: BotFrameworkEmulator,
    connector: ConnectorClient,
    http: aiohttp.ClientSession,
    token: str,
    where: str,
    params: dict[str, str],
    fragment: str,
) -> None:
    _, root_id = await start_thread(connector, "a thread")
    chat_id = await start_group_chat(connector, "a chat")
    url = {"channel": channel_url(teams), "replies": replies_url(teams, root_id), "chat": chat_url(teams, chat_id)}
    status, body = await get(http, url[where], token, params, {"client-request-id": "c-42"})
    assert fragment in assert_graph_error(status, body, 400, "BadRequest")
    assert body["error"]["innerError"]["client-request-id"] == "c-42"
    # the same list answers without the offending option
    status, _ = await get(http, url[where], token)
    assert status == 200


# authentication and consent


async def test_token_endpoint_issues_a_graph_token(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    status, body = await request_token(http, teams)
    assert status == 200, body
    assert {k: v for k, v in body.items() if k != "access_token"} == {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
    }
    header, claims = claims_of(body["access_token"])
    assert header["alg"] == "none"
    assert (claims["aud"], claims["tid"], claims["appid"]) == ("https://graph.microsoft.com", TENANT, BOT_APP_ID)
    assert "ChannelMessage.Read.Group" in claims["roles"]
    assert claims["exp"] > clock.now().timestamp() + 365 * 86400
    status, _ = await get(http, channel_url(teams), body["access_token"])
    assert status == 200


async def test_token_endpoint_issues_a_bot_connector_token_that_graph_refuses(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession
) -> None:
    status, body = await request_token(http, teams, scope="https://api.botframework.com/.default")
    assert status == 200, body
    assert claims_of(body["access_token"])[1]["aud"] == "https://api.botframework.com"
    status, _ = await get(http, channel_url(teams), body["access_token"])
    assert status == 401


async def test_the_tenants_openid_configuration_names_its_token_endpoint(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{teams.login_url}/{TENANT}/v2.0/.well-known/openid-configuration") as response:
        assert response.status == 200
        body = await response.json()
    assert body["token_endpoint"] == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    async with http.get(f"{teams.login_url}/another-tenant/v2.0/.well-known/openid-configuration") as response:
        assert (response.status, (await response.json())["error"]) == (400, "invalid_tenant")


@pytest.mark.parametrize(
    ("changes", "tenant", "expected"),
    [
        ({"grant_type": "password"}, TENANT, (400, "unsupported_grant_type", 70003)),
        ({"scope": "https://graph.microsoft.com/ChannelMessage.Read.All"}, TENANT, (400, "invalid_scope", 1002012)),
        ({"scope": "https://management.azure.com/.default"}, TENANT, (400, "invalid_scope", 70011)),
        ({"scope": None}, TENANT, (400, "invalid_request", 900144)),
        ({"client_secret": "wrong"}, TENANT, (401, "invalid_client", 7000215)),
        ({"client_secret": None}, TENANT, (401, "invalid_client", 7000218)),
        ({"client_id": "11111111-0000-4000-8000-000000000000"}, TENANT, (401, "invalid_client", 700016)),
        ({}, "another-tenant", (400, "invalid_request", 90002)),
    ],
)
async def test_token_endpoint_refusals_in_entra_shape(
    teams: BotFrameworkEmulator,
    http: aiohttp.ClientSession,
    changes: dict[str, str | None],
    tenant: str,
    expected: tuple[int, str, int],
) -> None:
    status, body = await request_token(http, teams, tenant, **changes)
    assert (status, body["error"], body["error_codes"]) == (expected[0], expected[1], [expected[2]])
    assert body["error_description"].startswith(f"AADSTS{expected[2]}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    assert "access_token" not in body


async def test_graph_refuses_missing_and_foreign_tokens(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession, token: str
) -> None:
    url = channel_url(teams)
    forged_claims = {**claims_of(token)[1], "uti": "someone-elses"}
    forged = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in ({"typ": "JWT", "alg": "none"}, forged_claims)
    )
    async with http.get(url) as response:
        body = await response.json()
        assert "Bearer" in response.headers["WWW-Authenticate"]
    assert assert_graph_error(response.status, body, 401, "InvalidAuthenticationToken") == "Access token is empty."
    status, body = await get(http, url, None, headers={"Authorization": f"Basic {token}"})
    assert assert_graph_error(status, body, 401, "InvalidAuthenticationToken") == "Access token is empty."
    for bad in ("not-a-jwt", f"{forged}.", token[:-10] + "x"):
        status, body = await get(http, url, bad)
        assert "validation failed" in assert_graph_error(status, body, 401, "InvalidAuthenticationToken")
    status, _ = await get(http, url, token)
    assert status == 200


async def test_an_expired_token_is_refused(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession, token: str, clock: FakeClock
) -> None:
    await clock.advance((TOKEN_LIFETIME + timedelta(seconds=1)).total_seconds())
    status, body = await get(http, channel_url(teams), token)
    assert "Lifetime validation failed" in assert_graph_error(status, body, 401, "InvalidAuthenticationToken")
    status, fresh = await request_token(http, teams)
    status, _ = await get(http, channel_url(teams), fresh["access_token"])
    assert status == 200


async def test_without_credentials_any_client_gets_a_token_and_graph_needs_none(
    clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    async with BotFrameworkEmulator(clock=clock) as teams:
        teams.state.post(MODELS, {"type": "message", "text": "open"}, by_bot=True)
        status, body = await request_token(http, teams, client_id="any-app", client_secret="anything")
        assert status == 200, body
        assert claims_of(body["access_token"])[1]["appid"] == "any-app"
        status, body = await request_token(http, teams, grant_type="authorization_code")
        assert (status, body["error"]) == (400, "unsupported_grant_type")
        status, body = await get(http, channel_url(teams), None)
        assert (status, [m["body"]["content"] for m in body["value"]]) == (200, ["open"])


async def test_revoked_consent_is_403_until_granted_again(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str
) -> None:
    _, root_id = await start_thread(connector, "a thread")
    chat_id = await start_group_chat(connector, "a chat")

    teams.set_graph_consent(team="Contoso ML", granted=False)
    for url in (channel_url(teams), channel_url(teams, RELEASES), replies_url(teams, root_id)):
        status, body = await get(http, url, token)
        assert assert_graph_error(status, body, 403, "Forbidden") == CHANNEL_FORBIDDEN
    status, _ = await get(http, chat_url(teams, chat_id), token)
    assert status == 200  # the chat's consent is its own

    teams.set_graph_consent(chat=chat_id, granted=False)
    status, body = await get(http, chat_url(teams, chat_id), token)
    assert assert_graph_error(status, body, 403, "Forbidden") == CHAT_FORBIDDEN

    teams.set_graph_consent(team=GROUP, granted=True)
    teams.set_graph_consent(chat=chat_id, granted=True)
    for url in (channel_url(teams), replies_url(teams, root_id), chat_url(teams, chat_id)):
        status, body = await get(http, url, token)
        assert status == 200, body


def test_set_graph_consent_names_one_known_team_or_chat() -> None:
    teams = BotFrameworkEmulator()
    with pytest.raises(KeyError):
        teams.set_graph_consent(team="No such team", granted=False)
    with pytest.raises(KeyError):
        teams.set_graph_consent(chat="a:1personal-alice", granted=False)
    with pytest.raises(ValueError, match="exactly one"):
        teams.set_graph_consent(granted=False)


async def test_unknown_teams_channels_threads_and_chats_are_404(
    teams: BotFrameworkEmulator, connector: ConnectorClient, http: aiohttp.ClientSession, token: str
) -> None:
    thread, root_id = await start_thread(connector, "a thread")
    reply = await connector.conversations.send_to_conversation(thread, message("a reply"))
    urls = [
        channel_url(teams, group="00000000-0000-4000-8000-00000000dead"),
        channel_url(teams, group=TEAM),  # Graph names teams by group id, not by the Bot Framework id
        channel_url(teams, channel="19:nope@thread.tacv2"),
        replies_url(teams, "1234"),
        replies_url(teams, reply.id),  # a reply is no thread
        replies_url(teams, root_id, channel=RELEASES),  # the thread is in another channel
        chat_url(teams, "19:nochat@thread.v2"),
        chat_url(teams, "a:1personal-alice"),  # 1:1 chats have other ids in Graph
        chat_url(teams, MODELS),  # a channel is no chat
    ]
    for url in urls:
        status, body = await get(http, url, token)
        assert_graph_error(status, body, 404, "NotFound")


# faults and URLs


async def test_scripted_faults_answer_graph_and_token_requests(
    teams: BotFrameworkEmulator, http: aiohttp.ClientSession, token: str
) -> None:
    teams.faults.add("GET /graph/v1.0/**", ["503", Fault("429", retry_after=4)])
    teams.faults.add("POST /login/*/oauth2/v2.0/token", ["500"])
    url = channel_url(teams)
    seen = []
    for _ in range(3):
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            body = await response.json()
            seen.append((response.status, response.headers.get("Retry-After"), body.get("error", {}).get("code")))
    assert seen == [(503, "1", "ServiceUnavailable"), (429, "4", "TooManyRequests"), (200, None, None)]
    status, _ = await request_token(http, teams)
    assert status == 500
    status, _ = await request_token(http, teams)
    assert status == 200
    assert [r.status for r in teams.recorder.matching("GET /graph/v1.0/teams/*/channels/*/messages")] == [503, 429, 200]


async def test_urls_follow_the_base_url_under_a_mount_prefix(clock: FakeClock, http: aiohttp.ClientSession) -> None:
    teams = BotFrameworkEmulator(clock=clock, graph_credentials={BOT_APP_ID: SECRET})
    root = web.Application()
    mount(root, "/botframework", teams.create_app())
    async with LocalServer(root) as server:
        teams.base_url = f"{server.url}/botframework"
        assert teams.graph_url == f"{server.url}/botframework/graph/v1.0"
        assert teams.login_url == f"{server.url}/botframework/login"
        for i in range(3):
            teams.state.post(MODELS, {"type": "message", "text": f"m{i}"}, by_bot=True)
        status, body = await request_token(http, teams)
        assert status == 200, body
        pages = await all_pages(http, channel_url(teams), body["access_token"], {"$top": "2"})
        assert [[m["body"]["content"] for m in p] for p in pages] == [["m2", "m1"], ["m0"]]
        assert teams.recorder.requests[-1].path == f"/graph/v1.0/teams/{GROUP}/channels/{MODELS}/messages"
    await teams.close()
