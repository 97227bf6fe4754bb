"""Shared end-to-end fixtures: the four emulators and Handoff wired to them, as `handoff demo` does."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.demo import BOT_IDENTITY, connect_emulators, local_config, local_world
from adapters.emulators.suite import EmulatorSuite
from bot.app import RunningServer, start_server
from bot.config import parse_settings

Tweak = Callable[[dict[str, Any]], None]


@dataclass
class Loop:
    suite: EmulatorSuite
    server: RunningServer
    restart: Callable[..., Awaitable[Loop]]
    """Stop this Handoff, await ``while_down()`` if given, and start another with the same configuration,
    store and port (the emulators go on)."""


def _fast(world: dict[str, Any]) -> dict[str, Any]:
    for pipeline in world["azure_devops"]["pipelines"]:
        for stage in pipeline.get("stages", []):
            stage["duration"] = 0.3
    return world


def production_approved_by_a_group(world: dict[str, Any]) -> None:
    """A ``world`` tweak: production's approval check assigned to the Release Managers group (alice alone in
    it) and to Handoff's own identity."""
    ado = world["azure_devops"]
    [managers] = [g for g in ado["groups"] if g["displayName"] == "Release Managers"]
    managers["members"] = ["alice@contoso.com"]
    [production] = [e for e in ado["environments"] if e["name"] == "production"]
    production["approval"]["approvers"] = ["Release Managers", BOT_IDENTITY]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def start_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Awaitable[Loop]]]:
    """Start the emulators and Handoff; ``tweak`` may change Handoff's configuration first, and ``world``
    the emulators' world."""
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    started: list[tuple[EmulatorSuite, RunningServer]] = []

    async def start(tweak: Tweak | None = None, world: Tweak | None = None) -> Loop:
        emulated = _fast(local_world())
        if world is not None:
            world(emulated)
        suite = await EmulatorSuite(emulated).start()
        port = _free_port()
        public_url = f"http://127.0.0.1:{port}"
        config, environ = local_config(suite, public_url, tmp_path)
        config["server"]["port"] = port
        if tweak is not None:
            tweak(config)
        settings = parse_settings(config, environ)

        async def serve() -> RunningServer:
            server = await start_server(settings, base_dir=tmp_path)
            assert server.handoff is not None and server.handoff.runner is not None
            server.handoff.runner.poll_interval = 0.2
            return server

        async def restart(while_down: Callable[[], Awaitable[None]] | None = None) -> Loop:
            running = next(i for i, (s, _) in enumerate(started) if s is suite)
            await started[running][1].stop()
            if while_down is not None:
                await while_down()
            started[running] = (suite, await serve())
            return Loop(suite, started[running][1], restart)

        server = await serve()
        started.append((suite, server))
        await connect_emulators(suite, server.url, environ)
        return Loop(suite, server, restart)

    yield start
    for suite, server in reversed(started):
        await server.stop()
        await suite.stop()


@pytest.fixture
async def loop(start_loop: Callable[..., Awaitable[Loop]]) -> Loop:
    """The emulators and Handoff with the demo's configuration."""
    return await start_loop()


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.1)


def slack_messages(loop: Loop, channel: str) -> list[Any]:
    return [m for m in loop.suite.slack.state.channel(channel).messages if not m.deleted]


def blocks_text(message: Any) -> str:
    return json.dumps(message.blocks or []) + message.text


def teams_posts(loop: Loop, channel: str) -> list[Any]:
    return [p for p in loop.suite.teams.state.channel(channel).posts if not p.deleted]


def card_text(post: Any) -> str:
    return json.dumps(post.activity)
