"""Shared by the emulator tests: the Slack emulator on the test's clock, a real slack_sdk client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.slack import SlackEmulator
from bot.clock import FakeClock


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    """The real Web API client, with the emulator's bot token."""
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
