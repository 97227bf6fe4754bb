"""Teams adapter fixtures: Handoff's app with Teams mounted, served on 127.0.0.1, and the connector emulator
acting as Teams (its ``serviceUrl`` is the emulator), with a recording stand-in for the core."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest

from adapters.emulators.base import LocalServer
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.sql import SqlStore
from adapters.teams import TeamsIntegration, mount_teams
from adapters.teams.sending import SendPolicy
from bot.app import create_app
from bot.cards import Action, Card, Fact, Link, Status
from bot.clock import FakeClock
from bot.config import Settings, TeamsSettings
from bot.interactions import ActionRequest, ActionResult, CommandRequest, Reply
from bot.records import ConversationAddress, ConversationRecord

T = TypeVar("T")

TENANT = "7b0c1f2e-0000-4000-8000-00000c0a7050"
BOT_APP_ID = "00000000-0000-4000-8000-0000000b0ff0"
TEAM = "19:contosoMlGeneral0000@thread.tacv2"
GENERAL = TEAM
RELEASES = "19:appReleases00000000@thread.tacv2"
MODELS = "19:mlModels0000000000@thread.tacv2"
ALICE = "29:1a1iceContosoMlUserMri"
BOB = "29:1b0bContosoMlUserMri"
CAROL = "29:1ca201ContosoMlUserMri"
ALICE_AAD = "a11ce000-0000-4000-8000-0000000a11ce"
BOB_AAD = "b0b00000-0000-4000-8000-000000000b0b"


class RecordingHandler:
    """Stands in for the core: records every request and answers as the test scripts it."""

    def __init__(self) -> None:
        self.commands: list[CommandRequest] = []
        self.actions: list[ActionRequest] = []
        self.reply: Callable[[CommandRequest], Reply] = lambda r: Reply(f"ran: {r.text}")
        self.decide: Callable[[ActionRequest], ActionResult] = decided
        self.deciding_takes = 0.0  # seconds, as a core waiting on Azure DevOps would

    async def on_command(self, request: CommandRequest) -> Reply:
        self.commands.append(request)
        return self.reply(request)

    async def on_action(self, request: ActionRequest) -> ActionResult:
        self.actions.append(request)
        await asyncio.sleep(self.deciding_takes)
        return self.decide(request)

    async def refuse_before_comment(self, request: ActionRequest) -> str | None:
        return None  # Teams asks for a comment on the card itself


def gate_card(audience: tuple[str, ...] = (ALICE, BOB)) -> Card:
    """A pending release gate, as the core would send it."""
    return Card(
        title="Release app-y 2.3 with model-x:7 to prod",
        status=Status.WAITING,
        summary="The integration tests passed; the release waits for approval.",
        facts=(Fact("Pipeline", "release-app-y"), Fact("Model", "model-x:7"), Fact("Requested by", "ci")),
        links=(Link("Run #412", "https://dev.azure.com/contoso/ml/_build/results?buildId=412"),),
        actions=(
            Action("approve", "Approve", {"gate_id": "gate-42"}, style="primary"),
            Action(
                "reject",
                "Reject",
                {"gate_id": "gate-42"},
                style="danger",
                needs_comment=True,
                comment_prompt="Why reject?",
            ),
        ),
        context="Approvers: release managers · expires in 72 h",
        action_audience=audience,
    )


def decided(request: ActionRequest) -> ActionResult:
    """The core's answer to an accepted click: the gate's card without buttons."""
    verb = "Approved" if request.action_id == "approve" else "Rejected"
    card = Card(
        title="Release app-y 2.3 with model-x:7 to prod",
        status=Status.APPROVED if request.action_id == "approve" else Status.REJECTED,
        summary=f"{verb} by {request.user.display}" + (f": {request.comment}" if request.comment else ""),
    )
    return ActionResult(True, f"{verb}.", card)


@dataclass
class Harness:
    teams: BotFrameworkEmulator
    integration: TeamsIntegration
    store: SqlStore
    handler: RecordingHandler
    clock: FakeClock
    bot_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    async def record(self, conversation_id: str) -> ConversationRecord | None:
        return await self.store.get_conversation(ConversationAddress("teams", conversation_id))

    async def teams_records(self, active_only: bool = False) -> list[ConversationRecord]:
        records = await self.store.list_conversations(active_only=active_only)
        return [r for r in records if r.address.platform == "teams"]


def no_auth_settings() -> TeamsSettings:
    return TeamsSettings(app_id="", allow_unauthenticated=True)


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.open(sqlite_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def harness_store(sqlite_store: SqlStore) -> SqlStore:
    """The harness's store: SQLite, unless a module asks for each database (``store_url``)."""
    return sqlite_store


@pytest.fixture
def send_policy() -> SendPolicy:
    return SendPolicy()


@pytest.fixture
def world() -> Mapping[str, Any] | None:
    return None


@pytest.fixture
def teams_settings() -> TeamsSettings:
    return no_auth_settings()


@pytest.fixture
async def harness(
    harness_store: SqlStore,
    clock: FakeClock,
    send_policy: SendPolicy,
    world: Mapping[str, Any] | None,
    teams_settings: TeamsSettings,
) -> AsyncIterator[Harness]:
    store = harness_store
    handler = RecordingHandler()
    app = create_app(Settings(), store)
    integration = mount_teams(app, teams_settings, handler, store, clock=clock, send_policy=send_policy, events=store)
    async with LocalServer(app) as server:
        bot_url = f"{server.url}/api/messages"
        async with BotFrameworkEmulator(world, clock=clock, bot_endpoint=bot_url) as teams:
            yield Harness(teams, integration, store, handler, clock, bot_url)


@pytest.fixture(scope="session")
def card_validator(shared_dir: Path) -> jsonschema.protocols.Validator:
    schema = json.loads((shared_dir / "schemas/adaptive-card-1.5.0.schema.json").read_text())
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


async def with_time_passing(clock: FakeClock, work: Awaitable[T], *, step: float = 0.5, limit: float = 600) -> T:
    """Await ``work`` while moving the fake clock forward, so that its waits and backoffs pass."""
    task = asyncio.ensure_future(work)
    moved = 0.0
    while not task.done():
        await asyncio.sleep(0.01)
        if task.done() or moved >= limit:
            break
        if clock.sleepers:
            await clock.advance(step)
            moved += step
    return await asyncio.wait_for(task, 10)


def adaptive_card(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The Adaptive Card an activity carries."""
    attachments = activity.get("attachments") or []
    assert attachments, "the activity has no attachment"
    assert attachments[0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = attachments[0]["content"]
    return card


def texts(card: Mapping[str, Any]) -> list[str]:
    """Every TextBlock text of a card's body, in order."""
    return [b["text"] for b in card.get("body", []) if b.get("type") == "TextBlock"]


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(text: str) -> str:
    """``text`` as Teams shows it: markdown's backslash escapes undone."""
    return _ESCAPED.sub(r"\1", text)


def shown_texts(card: Mapping[str, Any]) -> list[str]:
    """What Teams shows of the card's body, in order: each TextBlock, each fact as ``title: value``."""
    found: list[str] = []
    for block in card.get("body", []):
        if block.get("type") == "TextBlock":
            found.append(shown(block["text"]))
        elif block.get("type") == "FactSet":
            found.extend(f"{shown(f['title'])}: {shown(f['value'])}" for f in block["facts"])
    return found


def verbs(card: Mapping[str, Any]) -> list[str]:
    """The verbs of every Action.Execute on the card, nested ones included."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute" and node.get("verb") != "refresh":
                found.append(node["verb"])
            for key, value in node.items():
                if key != "refresh":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found
