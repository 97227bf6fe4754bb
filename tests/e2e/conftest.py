"""Shared end-to-end fixtures: the four emulators and Handoff wired to them, as `handoff demo` does."""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.demo import BOT_IDENTITY, connect_emulators, local_config, local_world
from adapters.emulators.suite import EmulatorSuite
from bot.app import RunningServer, start_server
from bot.config import parse_settings
from bot.records import CommandRun

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


async def approve_in_slack(loop: Loop, gate_card: Any, user: str, comment: str) -> None:
    """``user`` clicks Approve on the card and submits ``comment`` in the form that opens."""
    slack = loop.suite.slack
    opened_before = set(slack.state.views)
    assert (await slack.click_button(gate_card.ts, "approve", user=user)).status == 200
    view_id = await eventually(lambda: next(iter(set(slack.state.views) - opened_before), None))
    assert (await slack.submit_view(view_id, {"comment": {"comment": comment}})).status == 200


def teams_posts(loop: Loop, channel: str) -> list[Any]:
    return [p for p in loop.suite.teams.state.channel(channel).posts if not p.deleted]


def card_text(post: Any) -> str:
    return json.dumps(teams_shown(post.activity))


_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def teams_shown(node: Any) -> Any:
    """``node`` (an activity, a card) with every text as Teams shows it: markdown's backslash escapes undone."""
    if isinstance(node, str):
        return _MARKDOWN_ESCAPE.sub(r"\1", node)
    if isinstance(node, dict):
        return {key: teams_shown(value) for key, value in node.items()}
    if isinstance(node, list):
        return [teams_shown(item) for item in node]
    return node


# --- people typing commands ------------------------------------------------------------------------

TEAMS_CHANNELS = {"ml-models": "ML models", "app-releases": "App releases"}


@dataclass
class Person:
    """Someone typing commands in one channel of one platform, and reading what Handoff answers them."""

    loop: Loop
    platform: str
    user: str
    channel: str  # the channel's Slack name; TEAMS_CHANNELS gives its Teams name

    async def say(
        self, text: str, expect: str, *, mention: bool = True, mentions: Mapping[str, str] | None = None
    ) -> str:
        """Type ``text`` (a Slack slash command, a Teams channel message); the answer that says ``expect``.
        In Teams, the message @mentions the bot first unless ``mention`` is false, and ``mentions`` says whom
        the ``<at>Name</at>`` typed in it name (see the emulator's ``send_channel_message``)."""
        sending = self._slack(text) if self.platform == "slack" else self._teams(text, mention, mentions)
        answers = await sending
        return await eventually(lambda: next((a for a in answers() if expect in a), None))

    async def _slack(self, text: str) -> Callable[[], list[str]]:
        """Send a slash command; what the person sees afterwards: ephemeral answers and the bot's posts."""
        slack = self.loop.suite.slack
        user = slack.world.user(self.user).id

        def seen() -> list[Any]:
            return [*slack.state.ephemeral_for(user), *(m for m in slack_messages(self.loop, self.channel) if m.by_bot)]

        before = {id(m) for m in seen()}
        await slack.send_slash_command("/handoff", text, channel=self.channel, user=self.user)
        # each answer as it reads now, then as it read before Handoff edited it ("Starting: …", now "Started: …")
        return lambda: [
            html.unescape(json.dumps(face["blocks"] or [], ensure_ascii=False) + face["text"])
            for m in seen()
            if id(m) not in before
            for face in [{"text": m.text, "blocks": m.blocks}, *reversed(getattr(m, "edits", []))]
        ]

    async def _teams(
        self, text: str, mention: bool = True, mentions: Mapping[str, str] | None = None
    ) -> Callable[[], list[str]]:
        """Send a channel message; the bot's replies in its thread and its new posts in the channel."""
        teams = self.loop.suite.teams
        channel = teams.state.channel(TEAMS_CHANNELS[self.channel])
        before = {p.id for p in channel.posts}
        sent = await teams.send_channel_message(
            text, channel=channel.name, user=self.user, mention=mention, mentions=mentions
        )
        assert sent.status in (200, 201)
        root = sent.activity["id"]

        def answers() -> list[str]:
            thread = next(p for p in channel.posts if p.id == root).replies
            posts = [p for p in channel.posts if p.id not in before and p.id != root]
            shown = [m for m in [*thread, *posts] if m.by_bot and not m.deleted]
            # each answer as Teams shows it now, then as it read before Handoff updated it
            return [
                teams_shown(version.get("text") or "")
                + json.dumps(teams_shown(version.get("attachments") or []), ensure_ascii=False)
                for m in shown
                for version in reversed(m.versions)
            ]

        return answers


def teams_message_text(message: Any) -> str:
    """What a Teams message shows: its text and its cards."""
    return teams_shown(message.text or "") + json.dumps(teams_shown(message.attachments), ensure_ascii=False)


async def command_run(
    loop: Loop, started: Callable[[CommandRun], bool] = lambda run: True, run_id: int | None = None
) -> CommandRun:
    """The newest command run (or run ``run_id``) once it satisfies ``started`` (runs change in the background)."""
    store = loop.server.store
    for _ in range(200):
        found = [await store.get_command_run(run_id)] if run_id else await store.list_command_runs(None, 1)
        if found and found[0] is not None and started(found[0]):
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no command run as expected; the newest is {found}")


def is_running(run: CommandRun) -> bool:
    return run.backend_run_id is not None
