"""A running Handoff Slack side against the Slack emulator, with a recording InteractionHandler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.base import LocalServer
from adapters.emulators.slack import SlackEmulator, SlackMessage
from adapters.slack import SlackIntegration, mount_slack
from adapters.web.errors import error_middleware
from adapters.web.limits import BODY_LIMITS, body_limit_middleware
from bot.cards import Action, Card, Fact, Link, Status
from bot.config import Secret, SlackSettings
from bot.interactions import ActionRequest, ActionResult, CommandRequest, Reply, Visibility
from bot.ports import EventLog

MODELS = "C0MLM0DELS1"
RELEASES = "C0APPRELS01"
OPS = "C00PS000001"
ALICE, BOB, CAROL = "U0A11CE0001", "U0B0B000002", "U0CA201003"


def gate_card(status: Status = Status.WAITING) -> Card:
    return Card(
        title="Release app-y 1.4 to prod",
        status=status,
        summary="integrate-app-y #57 passed; model-x:7",
        facts=(Fact("Pipeline", "release-app-y"), Fact("Model", "model-x:7")),
        links=(Link("Run", "https://dev.azure.com/contoso/mlops/_build/results?buildId=57"),),
        actions=(
            Action("approve", "Approve", {"gate": "g-1"}, style="primary", comment_prompt="Comment (optional)"),
            Action(
                "reject", "Reject", {"gate": "g-1"}, style="danger", needs_comment=True, comment_prompt="Why reject?"
            ),
        )
        if status is Status.WAITING
        else (),
        context="Needs 1 of release-managers",
    )


@dataclass
class RecordingHandler:
    """The core's InteractionHandler, as a test wants it: records requests, answers what it is told."""

    commands: list[CommandRequest] = field(default_factory=list)
    actions: list[ActionRequest] = field(default_factory=list)
    checked: list[ActionRequest] = field(default_factory=list)
    command_reply: Callable[[CommandRequest], Reply] = lambda r: Reply(f"ok: {r.text}", None, Visibility.THREAD)
    decide: Callable[[ActionRequest], ActionResult] | None = None
    delay: float = 0.0
    fail: bool = False
    deciders: frozenset[str] = frozenset({"carol@contoso.com"})

    async def on_command(self, request: CommandRequest) -> Reply:
        self.commands.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend exploded")
        return self.command_reply(request)

    async def refuse_before_comment(self, request: ActionRequest) -> str | None:
        self.checked.append(request)
        if self.fail:
            raise RuntimeError("backend exploded")
        if self.decide is None and not (request.user.identities & self.deciders):
            return f"{request.user.display} may not decide this gate."
        return None

    async def on_action(self, request: ActionRequest) -> ActionResult:
        self.actions.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend exploded")
        if self.decide is not None:
            return self.decide(request)
        if not (request.user.identities & self.deciders):
            return ActionResult(False, f"{request.user.display} may not decide this gate.")
        status = Status.APPROVED if request.action_id == "approve" else Status.REJECTED
        card = Card(
            title="Release app-y 1.4 to prod",
            status=status,
            summary=f"{status.label} by {request.user.display}" + (f": {request.comment}" if request.comment else ""),
        )
        return ActionResult(True, f"{status.label}", card)


@dataclass
class Harness:
    slack: SlackEmulator
    handler: RecordingHandler
    integration: SlackIntegration
    server: LocalServer
    client: AsyncWebClient

    @property
    def url(self) -> str:
        return f"{self.server.url}/slack/events"

    async def settle(self, timeout: float = 10.0) -> None:
        assert await self.integration.wait_idle(timeout), "background work did not finish"

    def messages(self, channel: str) -> list[SlackMessage]:
        return self.slack.state.channel(channel).messages


def settings_for(slack: SlackEmulator, **extra: Any) -> SlackSettings:
    return SlackSettings(
        signing_secret=Secret("SLACK_SIGNING_SECRET", slack.signing_secret),
        bot_token=Secret("SLACK_BOT_TOKEN", slack.bot_token),
        api_base_url=slack.api_url,
        **extra,
    )


def handoff_app() -> web.Application:
    """An aiohttp app with Handoff's edge middlewares, as create_app builds it."""
    app = web.Application(middlewares=[error_middleware, body_limit_middleware], client_max_size=3 * 1024 * 1024)
    app[BODY_LIMITS] = {}
    return app


async def start_harness(
    handler: RecordingHandler | None = None, slack: SlackEmulator | None = None, events: EventLog | None = None
) -> Harness:
    """Handoff's Slack side against ``slack`` (a new emulator if None; a given one must be started),
    remembering handled event ids in ``events`` if given."""
    if slack is None:
        slack = SlackEmulator()
        await slack.start()
    handler = handler or RecordingHandler()
    app = handoff_app()
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    integration = mount_slack(app, settings_for(slack), handler, client=client, events=events)
    server = await LocalServer(app).start()
    slack.events_url = f"{server.url}/slack/events"
    return Harness(slack, handler, integration, server, client)


async def stop_harness(harness: Harness) -> None:
    await harness.server.stop()
    await harness.slack.stop()


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - started
