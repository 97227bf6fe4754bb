"""Two replicas' stores on one database, sending through the real Teams channel to the connector emulator on one
fake clock: the setting of the outbox's Teams tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.emulators.base import LocalServer
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.sql import SqlStore
from adapters.teams import mount_teams
from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings, TeamsSettings
from bot.ports import ChatChannel
from bot.records import ConversationAddress

from .conftest import RELEASES, RecordingHandler, no_auth_settings

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
RUN = "azure-devops:contoso:mlops:run:412"
WHERE = ConversationAddress("teams", RELEASES)


@dataclass
class Setup:
    teams: BotFrameworkEmulator
    channel: ChatChannel
    stores: list[SqlStore]
    clock: FakeClock

    def posts(self) -> list[str]:
        return [p.id for p in self.teams.state.channel("App releases").posts]


@asynccontextmanager
async def two_replicas(
    store_url: str, settings: Callable[[BotFrameworkEmulator], TeamsSettings] = lambda _: no_auth_settings()
) -> AsyncIterator[Setup]:
    """The emulator, Handoff's Teams channel with ``settings(emulator)`` and two stores on ``store_url``."""
    clock = FakeClock(T0)
    stores = [await SqlStore.open(store_url, migrate=n == 0) for n in range(2)]
    try:
        async with BotFrameworkEmulator(clock=clock) as teams:
            app = create_app(Settings(), stores[0])
            integration = mount_teams(app, settings(teams), RecordingHandler(), stores[0], clock=clock)
            async with LocalServer(app) as server:
                teams.bot_endpoint = f"{server.url}/api/messages"
                await teams.install_app()
                yield Setup(teams, integration.channel, stores, clock)
    finally:
        for store in stores:
            await store.close()
