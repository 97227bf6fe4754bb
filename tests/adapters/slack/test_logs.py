"""No secret reaches the logs: not the signing secret, not the bot token, not a payload's token."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator

import aiohttp
import pytest

from adapters.emulators.base import LocalServer
from adapters.emulators.fake_server import FakeHTTPServer
from adapters.slack import mount_slack
from adapters.sql import SqlStore
from bot.cards import Card
from bot.config import Secret, SlackOAuthSettings, SlackSettings
from bot.logs import configure_logging
from bot.ports import DeliveryFailed

from .harness import MODELS, Harness, RecordingHandler, gate_card, handoff_app
from .test_oauth import script_slack


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_flows_log_no_secrets(harness: Harness, caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level)
    slack = harness.slack
    await slack.send_slash_command("/retrain", "model-x", channel="ml-models", user="alice")
    await slack.mention_bot("status", channel="ml-models")
    ts = (await harness.integration.channel.post_card(MODELS, gate_card())).message_id
    await slack.click_button(ts, "reject", user="carol")
    await harness.settle()
    view_id = next(iter(slack.state.views))
    await slack.submit_view(view_id, {"comment": {"comment": "no"}})
    harness.handler.fail = True
    await slack.send_slash_command("/handoff", "status", channel="ml-models", user="bob")
    slack.faults.add("POST /api/chat.postMessage", ["429", "429"])
    await harness.settle()
    with contextlib.suppress(DeliveryFailed):  # the failure is what gets logged
        await harness.integration.channel.post_card(MODELS, Card("x"))

    text = caplog.text
    assert caplog.records
    for secret in (slack.signing_secret, slack.bot_token, slack.world.verification_token):
        assert secret not in text


def test_the_environments_slack_variables_neither_warn_nor_turn_oauth_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SLACK_BOT_TOKEN is where handoff.yaml conventionally points slack.bot_token; Bolt would read it too
    environment = {"SLACK_BOT_TOKEN": "xoxb-env", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "client-secret"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    settings = SlackSettings(
        signing_secret=Secret("SLACK_SIGNING_SECRET", "signing"),
        bot_token=Secret("SLACK_BOT_TOKEN", "xoxb-configured"),
        api_base_url="http://127.0.0.1:9/api/",
    )

    integration = mount_slack(handoff_app(), settings, RecordingHandler())

    assert [r.getMessage() for r in caplog.records if r.name.startswith("handoff.slack")] == []
    assert integration.bolt.oauth_flow is None  # one workspace, as configured
    assert integration.channel.client.token == "xoxb-configured"
    assert integration.identity is not None and integration.identity.token == "xoxb-configured"
    assert {name: os.environ.get(name) for name in environment} == environment


DRIVERS = ("aiosqlite", "asyncpg", "sqlalchemy")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    drivers = {name: logging.getLogger(name).level for name in DRIVERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, driver_level in drivers.items():
        logging.getLogger(name).setLevel(driver_level)


@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
async def test_an_install_at_debug_logs_no_statement_and_no_token(
    store_url: str, fake_http_server: FakeHTTPServer, restore_logging: None
) -> None:
    """At ``log_level: DEBUG`` the database drivers would log each statement with its values: the install's
    tokens (a rotating bot token and its ``xoxe-`` refresh token), its workspace, the OAuth state."""
    bot_token, refresh_token = "xoxe.xoxb-1-rotating-bot-token-9f2e", "xoxe-1-refresh-token-7a1c0d"
    team_name = "Canary workspace 5d41"  # stored, never a log line of Handoff's own
    fake_http_server.respond(
        "POST /api/oauth.v2.access",
        body={
            "ok": True,
            "access_token": bot_token,
            "refresh_token": refresh_token,
            "expires_in": 43200,
            "token_type": "bot",
            "scope": "commands,chat:write",
            "bot_user_id": "U9HANDOFF01",
            "app_id": "A0HANDOFF01",
            "team": {"id": "T9WORKSPACE", "name": team_name},
            "authed_user": {"id": "U9INSTALLER"},
            "is_enterprise_install": False,
        },
    )
    script_slack(fake_http_server)  # the rest of the Web API (its own oauth.v2.access answer comes second)
    stream = io.StringIO()
    configure_logging("DEBUG", "text", secrets=["oauth-signing-secret", "client-secret-value"], stream=stream)
    store = await SqlStore.open(store_url)
    settings = SlackSettings(
        signing_secret=Secret("SLACK_SIGNING_SECRET", "oauth-signing-secret"),
        oauth=SlackOAuthSettings(
            client_id="1234.5678", client_secret=Secret("SLACK_CLIENT_SECRET", "client-secret-value")
        ),
        api_base_url=f"{fake_http_server.url}/api/",
    )
    app = handoff_app()
    integration = mount_slack(app, settings, RecordingHandler(), store.engine)
    try:
        async with LocalServer(app) as server, aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/slack/install") as page:
                found = re.search(r"state=([0-9a-f-]{36})", await page.text())
            assert found is not None
            redirect = f"{server.url}/slack/oauth_redirect"
            params = {"code": "granted-code", "state": found.group(1)}
            cookie = {"Cookie": f"slack-app-oauth-state={found.group(1)}"}
            async with session.get(redirect, params=params, headers=cookie) as done:
                assert done.status == 200, await done.text()
        assert integration.stores is not None
        assert await integration.stores.bot_token("T9WORKSPACE") == bot_token  # it was stored
    finally:
        await store.close()

    output = stream.getvalue()
    assert " DEBUG " in output  # the level was DEBUG
    assert not re.findall(r"(?m)^.* (?:aiosqlite|asyncpg|sqlalchemy)[\w.]*: .*$", output)
    for value in (bot_token, refresh_token, "rotating-bot-token", "refresh-token-7a1c0d", team_name):
        assert value not in output
