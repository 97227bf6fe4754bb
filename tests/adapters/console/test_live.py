"""Live updates: every change in the Slack or Teams emulator, or in the world, reaches open pages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from slack_sdk.web.async_client import AsyncWebClient

from adapters.console import create_console_app
from adapters.emulators.base import LocalServer
from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient
from .samples import SLACK_MODELS, TEAMS_MODELS


async def next_event(stream: aiohttp.StreamReader, timeout: float = 3.0) -> tuple[str, dict[str, Any]]:
    """The next ``event:``/``data:`` pair of a text/event-stream (comments skipped)."""
    name, data = "message", ""
    while True:
        line = (await asyncio.wait_for(stream.readline(), timeout)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and data:
            return name, json.loads(data)


async def wait_for_scope(stream: aiohttp.StreamReader, scope: str) -> dict[str, Any]:
    while True:
        name, data = await next_event(stream)
        if name == "change" and scope in data["scopes"]:
            return data


async def test_changes_are_pushed_as_server_sent_events(
    console: ConsoleClient, suite: EmulatorSuite, slack: AsyncWebClient, connector: ConnectorClient
) -> None:
    async with console.session.get(f"{console.url}/api/events") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        name, hello = await next_event(response.content)
        assert name == "hello" and hello["scopes"] == ["slack", "teams", "world"]

        await slack.chat_postMessage(channel=SLACK_MODELS, text="model-x:8 registered")
        first = await wait_for_scope(response.content, "slack")

        bot = {"id": suite.teams.world.bot_id}
        await connector.conversations.send_to_conversation(
            TEAMS_MODELS, Activity(type="message", text="hi", from_property=bot)
        )
        second = await wait_for_scope(response.content, "teams")
        assert second["version"] > first["version"]

        suite.aml.register_model("model-x")  # not through the console: the world is watched
        await wait_for_scope(response.content, "world")


async def test_bursts_of_changes_are_debounced(console: ConsoleClient, suite: EmulatorSuite) -> None:
    async with console.session.get(f"{console.url}/api/events") as response:
        await next_event(response.content)
        channel = suite.slack.state.channel(SLACK_MODELS)
        for i in range(20):
            suite.slack.state.post(channel, user="U0A11CE0001", text=f"message {i}")
        event = await wait_for_scope(response.content, "slack")
        assert event["scopes"] == ["slack"]
        await console.post(f"api/channels/slack/{SLACK_MODELS}/messages", {"text": "one more"})
        later = await wait_for_scope(response.content, "slack")
        assert later["version"] == event["version"] + 1


async def test_listeners_come_and_go_with_the_app_and_open_streams_end_at_shutdown(suite: EmulatorSuite) -> None:
    assert suite.slack.state.listeners == [] and suite.teams.state.listeners == []
    server = await LocalServer(create_console_app(suite)).start()
    assert len(suite.slack.state.listeners) == 1 and len(suite.teams.state.listeners) == 1
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/api/events") as response:
        await next_event(response.content)
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2
        assert await response.content.read() == b""
    assert suite.slack.state.listeners == [] and suite.teams.state.listeners == []


async def test_a_listener_called_from_another_thread_is_safe(console: ConsoleClient, suite: EmulatorSuite) -> None:
    async with console.session.get(f"{console.url}/api/events") as response:
        await next_event(response.content)
        await asyncio.to_thread(suite.teams.state.changed)
        await wait_for_scope(response.content, "teams")
