"""Console fixtures: the emulator suite, the console served standalone on 127.0.0.1, and a stand-in bot.

The stand-in bot is the shared ``fake_http_server``: the Slack emulator's request URL and the Teams
emulator's bot endpoint point at it, so the tests see exactly what the console made the emulators send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from slack_sdk.web.async_client import AsyncWebClient

from adapters.console import create_console_app
from adapters.emulators.base import LocalServer
from adapters.emulators.fake_server import CannedResponse, FakeHTTPServer
from adapters.emulators.suite import EmulatorSuite


@dataclass
class ConsoleClient:
    """The console's JSON API, as the page calls it."""

    url: str
    session: aiohttp.ClientSession

    async def get(self, path: str, status: int = 200, **params: str) -> Any:
        async with self.session.get(f"{self.url}/{path}", params=params) as response:
            assert response.status == status, await response.text()
            return await response.json()

    async def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.session.post(f"{self.url}/{path}", json=body if body is not None else {}) as response:
            assert response.status == status, await response.text()
            assert response.content_type == "application/json"
            return await response.json()

    async def channel(self, platform: str, channel_id: str, user: str = "alice") -> Any:
        return await self.get(f"api/channels/{platform}/{channel_id}", user=user)


@pytest.fixture
async def suite() -> AsyncIterator[EmulatorSuite]:
    async with EmulatorSuite() as running:
        yield running


@pytest.fixture
async def bot(suite: EmulatorSuite, fake_http_server: FakeHTTPServer) -> FakeHTTPServer:
    """A stand-in bot that answers 200 with an empty body unless a test scripts otherwise."""
    suite.slack.events_url = f"{fake_http_server.url}/slack/events"
    suite.teams.bot_endpoint = f"{fake_http_server.url}/api/messages"
    fake_http_server.default = CannedResponse(200)
    return fake_http_server


@pytest.fixture
async def console(suite: EmulatorSuite) -> AsyncIterator[ConsoleClient]:
    async with LocalServer(create_console_app(suite)) as server, aiohttp.ClientSession() as session:
        yield ConsoleClient(server.url, session)


@pytest.fixture
def slack(suite: EmulatorSuite) -> AsyncWebClient:
    """The bot's side of Slack: slack_sdk against the emulator."""
    return AsyncWebClient(token=suite.slack.bot_token, base_url=suite.slack.api_url)


@pytest.fixture
async def connector(suite: EmulatorSuite) -> AsyncIterator[ConnectorClient]:
    """The bot's side of Teams: botbuilder's connector client against the emulator."""
    async with ConnectorClient(MicrosoftAppCredentials.empty(), base_url=suite.teams.service_url) as client:
        yield client
