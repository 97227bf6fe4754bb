"""Multi-workspace installs: Slack's OAuth flow at /slack/install and /slack/oauth_redirect, installs kept
in Handoff's database (SQLite and PostgreSQL), used to answer, and deleted on uninstall or revocation.

A scripted fake plays the Slack Web API here (``oauth.v2.access`` is not something the emulator serves).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from adapters.emulators.base import LocalServer
from adapters.emulators.fake_server import FakeHTTPServer
from adapters.emulators.slack import sign
from adapters.slack import SlackIntegration, mount_slack
from adapters.sql import SqlStore
from bot.cards import Card
from bot.config import Secret, SlackOAuthSettings, SlackSettings
from bot.ports import DeliveryFailed

from .harness import RecordingHandler, handoff_app

pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

SECRET = "oauth-test-signing-secret"
TEAM = "T9WORKSPACE"
TOKEN = "xoxb-installed-for-t9"
CHANNEL = "C9CHANNEL01"


@dataclass
class OAuthApp:
    fake: FakeHTTPServer
    integration: SlackIntegration
    handler: RecordingHandler
    server: LocalServer

    @property
    def url(self) -> str:
        return self.server.url


def script_slack(fake: FakeHTTPServer) -> None:
    fake.respond(
        "POST /api/oauth.v2.access",
        body={
            "ok": True,
            "access_token": TOKEN,
            "token_type": "bot",
            "scope": "commands,chat:write,users:read,users:read.email",
            "bot_user_id": "U9HANDOFF01",
            "app_id": "A0HANDOFF01",
            "team": {"id": TEAM, "name": "Nine"},
            "enterprise": None,
            "authed_user": {"id": "U9INSTALLER"},
            "is_enterprise_install": False,
        },
    )
    fake.respond(
        "POST /api/auth.test",
        body={
            "ok": True,
            "url": "https://nine.slack.com/",
            "team": "Nine",
            "user": "handoff",
            "team_id": TEAM,
            "user_id": "U9HANDOFF01",
            "bot_id": "B9HANDOFF01",
            "is_enterprise_install": False,
        },
    )
    fake.respond(
        "/api/users.info",
        body={
            "ok": True,
            "user": {
                "id": "U9DECIDER1",
                "team_id": TEAM,
                "name": "dee",
                "profile": {"email": "dee@nine.example", "real_name": "Dee"},
            },
        },
    )
    fake.respond("POST /api/chat.postMessage", body={"ok": True, "channel": CHANNEL, "ts": "1700000001.000100"})
    fake.respond("POST /hooks/**", body={"ok": True})


@pytest.fixture
async def oauth_app(store_url: str, fake_http_server: FakeHTTPServer) -> AsyncIterator[OAuthApp]:
    script_slack(fake_http_server)
    store = await SqlStore.open(store_url)
    handler = RecordingHandler()
    settings = SlackSettings(
        signing_secret=Secret("SLACK_SIGNING_SECRET", SECRET),
        oauth=SlackOAuthSettings(
            client_id="1234.5678", client_secret=Secret("SLACK_CLIENT_SECRET", "client-secret-value")
        ),
        api_base_url=f"{fake_http_server.url}/api/",
    )
    app = handoff_app()
    integration = mount_slack(app, settings, handler, store.engine)
    server = await LocalServer(app).start()
    try:
        yield OAuthApp(fake_http_server, integration, handler, server)
    finally:
        await server.stop()
        await store.close()


async def install(app: OAuthApp) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{app.url}/slack/install", allow_redirects=False) as page:
            assert page.status == 200
            html = await page.text()
            cookie = page.headers["Set-Cookie"]
        state = re.search(r"state=([0-9a-f-]{36})", html)
        assert state is not None and "client_id=1234.5678" in html
        assert f"slack-app-oauth-state={state.group(1)}" in cookie
        async with session.get(
            f"{app.url}/slack/oauth_redirect",
            params={"code": "granted-code", "state": state.group(1)},
            headers={"Cookie": f"slack-app-oauth-state={state.group(1)}"},
        ) as done:
            assert done.status == 200, await done.text()


async def post_signed(app: OAuthApp, body: bytes, content_type: str) -> int:
    ts = str(int(time.time()))
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(SECRET, ts, body),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{app.url}/slack/events", data=body, headers=headers) as r,
    ):
        return r.status


def slash_command(app: OAuthApp, team: str, text: str) -> bytes:
    return urlencode(
        {
            "team_id": team,
            "channel_id": CHANNEL,
            "user_id": "U9DECIDER1",
            "user_name": "dee",
            "command": "/retrain",
            "text": text,
            "api_app_id": "A0HANDOFF01",
            "is_enterprise_install": "false",
            "response_url": f"{app.fake.url}/hooks/commands/{team}/1/x",
            "trigger_id": "1.2.3",
        }
    ).encode()


def event(kind: str, **fields: Any) -> bytes:
    return json.dumps(
        {
            "type": "event_callback",
            "team_id": TEAM,
            "api_app_id": "A0HANDOFF01",
            "event_id": f"Ev{kind}",
            "event_time": int(time.time()),
            "event": {"type": kind, **fields},
        }
    ).encode()


async def test_install_keeps_the_workspace_and_answers_with_its_token(oauth_app: OAuthApp) -> None:
    await install(oauth_app)

    stores = oauth_app.integration.stores
    assert stores is not None
    installed = await stores.installations.async_find_installation(enterprise_id=None, team_id=TEAM)
    assert installed is not None and installed.bot_token == TOKEN
    assert await stores.bot_token(TEAM) == TOKEN
    [exchange] = oauth_app.fake.recorder.matching("POST /api/oauth.v2.access")
    assert "code=granted-code" in exchange.text()

    status = await post_signed(
        oauth_app, slash_command(oauth_app, TEAM, "model-x"), "application/x-www-form-urlencoded"
    )
    await oauth_app.integration.wait_idle(10)
    assert status == 200
    [request] = oauth_app.handler.commands
    assert (request.text, request.user.email) == ("retrain model-x", "dee@nine.example")
    assert request.conversation.conversation_id == f"{TEAM}:{CHANNEL}"
    [reply] = oauth_app.fake.recorder.matching("POST /api/chat.postMessage")
    assert reply.headers["Authorization"] == f"Bearer {TOKEN}"

    posted = await oauth_app.integration.channel.post_card(f"{TEAM}:{CHANNEL}", Card("model-x registered"))
    assert posted.message_id == "1700000001.000100"
    assert (
        oauth_app.fake.recorder.matching("POST /api/chat.postMessage")[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    )


async def test_sending_needs_an_installed_workspace(oauth_app: OAuthApp) -> None:
    channel = oauth_app.integration.channel
    with pytest.raises(DeliveryFailed) as unknown:
        await channel.post_card(f"T0NOTHERE:{CHANNEL}", Card("x"))
    assert unknown.value.retryable is False and "not installed" in unknown.value.reason
    with pytest.raises(DeliveryFailed) as unqualified:
        await channel.post_card(CHANNEL, Card("x"))
    assert unqualified.value.retryable is False and "TEAM_ID:CHANNEL_ID" in unqualified.value.reason


async def test_a_command_from_a_workspace_that_is_not_installed_is_not_run(oauth_app: OAuthApp) -> None:
    body = slash_command(oauth_app, "T0NOTHERE", "model-x")
    status = await post_signed(oauth_app, body, "application/x-www-form-urlencoded")
    assert status == 200
    assert oauth_app.handler.commands == []
    [answer] = oauth_app.fake.recorder.matching("POST /hooks/**")
    assert "reinstall" in answer.text()


async def test_tokens_revoked_forgets_the_install(oauth_app: OAuthApp) -> None:
    await install(oauth_app)
    stores = oauth_app.integration.stores
    assert stores is not None
    status = await post_signed(oauth_app, event("tokens_revoked", tokens={"bot": ["U9HANDOFF01"]}), "application/json")
    assert status == 200
    assert await oauth_app.integration.wait_idle(10)
    assert await stores.bot_token(TEAM) is None
    assert await stores.installations.async_find_installation(enterprise_id=None, team_id=TEAM) is None


async def test_app_uninstalled_forgets_the_install(oauth_app: OAuthApp) -> None:
    await install(oauth_app)
    stores = oauth_app.integration.stores
    assert stores is not None
    assert await post_signed(oauth_app, event("app_uninstalled"), "application/json") == 200
    assert await oauth_app.integration.wait_idle(10)
    assert await stores.bot_token(TEAM) is None
    assert await stores.installations.async_find_installation(enterprise_id=None, team_id=TEAM) is None
    status = await post_signed(
        oauth_app, slash_command(oauth_app, TEAM, "model-x"), "application/x-www-form-urlencoded"
    )
    assert status == 200
    assert oauth_app.handler.commands == []
    assert "reinstall" in oauth_app.fake.recorder.matching("POST /hooks/**")[-1].text()


async def test_a_forged_state_is_refused(oauth_app: OAuthApp) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{oauth_app.url}/slack/oauth_redirect", params={"code": "c", "state": "forged"}) as response,
    ):
        assert response.status == 400
    assert oauth_app.fake.recorder.matching("POST /api/oauth.v2.access") == []


def test_oauth_needs_the_database() -> None:
    settings = SlackSettings(
        signing_secret=Secret("S", SECRET),
        oauth=SlackOAuthSettings(client_id="1", client_secret=Secret("C", "x")),
    )
    with pytest.raises(ValueError, match="engine"):
        mount_slack(handoff_app(), settings, RecordingHandler())
