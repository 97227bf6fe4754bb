"""Handoff running against the four emulators, with nothing connected yet: the state before `handoff connect`.

Slack and Teams are pointed at Handoff (that is done in their own consoles, not by `connect`); Azure DevOps
has no service hook and Azure ML no Event Grid subscription until a test connects them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.demo import local_config, local_world
from adapters.emulators.suite import EmulatorSuite
from bot.app import RunningServer, start_server
from bot.config import Settings, parse_settings

LAKE_PATH = {"storage_account": "stmlopslake", "filesystem": "lake", "path": "raw/customers/"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_world() -> dict[str, Any]:
    world = local_world()
    for pipeline in world["azure_devops"]["pipelines"]:
        for stage in pipeline.get("stages", []):
            stage["duration"] = 0.2
    return world


@dataclass
class Wired:
    """The emulators, Handoff serving on ``public_url``, and the configuration it runs with."""

    suite: EmulatorSuite
    server: RunningServer
    config: dict[str, Any]
    environ: dict[str, str]
    tmp_path: Path

    @property
    def public_url(self) -> str:
        return str(self.config["server"]["public_url"])

    @property
    def settings(self) -> Settings:
        return parse_settings(self.config, self.environ)

    def variant(self, change: Callable[[dict[str, Any], dict[str, str]], None]) -> Settings:
        """Settings with a change applied to copies of the configuration and the environment."""
        import copy

        config, environ = copy.deepcopy(self.config), dict(self.environ)
        change(config, environ)
        return parse_settings(config, environ)

    def slack_messages(self, channel: str) -> list[Any]:
        return [m for m in self.suite.slack.state.channel(channel).messages if not m.deleted]


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def wired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Wired]:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    async with EmulatorSuite(fast_world()) as suite:
        port = free_port()
        config, environ = local_config(suite, f"http://127.0.0.1:{port}", tmp_path)
        config["server"]["port"] = port
        config["eventgrid"]["data_lake_paths"] = [dict(LAKE_PATH)]
        server = await start_server(parse_settings(config, environ), base_dir=tmp_path)
        assert server.handoff is not None
        try:
            suite.slack.events_url = f"{server.url}/slack/events"
            suite.teams.bot_endpoint = f"{server.url}/api/messages"
            await suite.teams.install_app()
            yield Wired(suite, server, config, environ, tmp_path)
        finally:
            await server.stop()
