"""Handoff's own Teams token, from Entra ID (the emulator's token endpoint, through MSAL): got off the event loop
within a bound, and whatever keeps it from Handoff (the password refused, Entra ID hanging) is retried, not
dead-lettered, with nothing posted and no secret logged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from adapters.emulators.base import Fault, LocalServer
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.sql import SqlStore
from adapters.teams import TeamsIntegration, mount_teams
from adapters.teams.connector import ConnectorSessions
from adapters.teams.sending import SendPolicy
from adapters.teams.tokens import BotTokens
from bot.app import create_app
from bot.cards import Card, Status
from bot.clock import FakeClock
from bot.config import Settings, TeamsSettings
from bot.outbox import OutboxWorker
from bot.records import ConversationAddress, DeliveryState, NewDelivery

from .conftest import BOT_APP_ID, MODELS, RELEASES, TENANT, RecordingHandler, no_auth_settings

SECRET = "hV8Q~handoff-test-secret-value"
TOKEN = "POST /login/*/oauth2/v2.0/token"
TOKEN_TIMEOUT = 1.0
HANG = 6.0  # seconds the token endpoint hangs: well past TOKEN_TIMEOUT
WHERE = ConversationAddress("teams", RELEASES)
OPS = ConversationAddress("teams", MODELS)


@dataclass
class Setup:
    teams: BotFrameworkEmulator
    integration: TeamsIntegration
    store: SqlStore
    clock: FakeClock
    url: str  # Handoff's

    def outbox(self) -> OutboxWorker:
        return OutboxWorker(self.store, {"teams": self.integration.channel}, self.clock, ops_channel=(OPS,))

    def posts(self) -> int:
        return sum(len(self.teams.state.channel(name).posts) for name in ("App releases", "ML models"))


@pytest.fixture
async def setup(sqlite_store: SqlStore, clock: FakeClock) -> AsyncIterator[Setup]:
    # Entra ID on a thread of its own, as another host: Handoff's event loop stalling does not stall it
    teams = BotFrameworkEmulator(clock=clock, graph_credentials={BOT_APP_ID: SECRET})
    await teams.start(threaded=True)
    try:
        # the channels are known, installed while authentication was off
        seeding = create_app(Settings(), sqlite_store)
        mount_teams(seeding, no_auth_settings(), RecordingHandler(), sqlite_store, clock=clock)
        async with LocalServer(seeding) as seeder:
            teams.bot_endpoint = f"{seeder.url}/api/messages"
            await teams.install_app()
        settings = TeamsSettings.model_validate(
            {
                "app_id": BOT_APP_ID,
                "app_password": "${TEAMS_APP_PASSWORD}",
                "app_type": "SingleTenant",
                "tenant_id": TENANT,
            },
            context={"environ": {"TEAMS_APP_PASSWORD": SECRET}},
        )
        app = create_app(Settings(), sqlite_store)
        connector = ConnectorSessions(tokens=BotTokens(TOKEN_TIMEOUT, login_url=teams.login_url))
        integration = mount_teams(
            app,
            settings,
            RecordingHandler(),
            sqlite_store,
            clock=clock,
            events=sqlite_store,
            connector=connector,
            send_policy=SendPolicy(attempts=1),  # (no retry inline: each attempt of the outbox asks once)
        )
        async with LocalServer(app) as server:
            yield Setup(teams, integration, sqlite_store, clock, server.url)
    finally:
        await teams.stop()


async def enqueue(setup: Setup, run: int = 412) -> int:
    card = Card(f"Run {run} running", Status.RUNNING).to_json()
    payload = {"op": "card", "rank": 1, "card": card}
    (delivery_id,) = await setup.store.enqueue([NewDelivery(WHERE, f"run:{run}", payload)], setup.clock.now())
    return delivery_id


async def test_a_card_is_signed_with_a_token_from_entra_id_which_is_asked_once(setup: Setup) -> None:
    await enqueue(setup)
    await asyncio.wait_for(setup.outbox().drain(), 10)
    await enqueue(setup, 413)
    await asyncio.wait_for(setup.outbox().drain(), 10)

    assert len(setup.teams.state.channel("App releases").posts) == 2
    posted = setup.teams.recorder.matching("POST /v3/conversations")
    assert posted and all(r.headers["Authorization"].startswith("Bearer ey") for r in posted)
    assert len(setup.teams.recorder.matching(TOKEN)) == 1  # (MSAL's cache served the second send)


async def test_a_password_entra_id_refuses_is_retried_as_refused_credentials_and_nothing_is_posted(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.teams.graph.credentials = {BOT_APP_ID: "the-secret-that-replaced-it"}  # (rotated in the app registration)
    delivery_id = await enqueue(setup)

    with caplog.at_level(logging.DEBUG):
        await asyncio.wait_for(setup.outbox().drain(), 10)

    (asked,) = setup.teams.recorder.matching(TOKEN)
    assert asked.status == 401
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and delivery.state is DeliveryState.PENDING and delivery.attempts == 1
    assert delivery.last_error == "Entra ID refused Handoff's app id or password (invalid_client)"
    assert not delivery.recovered  # (nothing was sent: nothing to look for)
    assert setup.posts() == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged and "AADSTS" not in logged and "error_description" not in logged

    # the password is put right: the next attempt posts the card
    setup.teams.graph.credentials = {BOT_APP_ID: SECRET}
    await setup.clock.advance(3600)
    await asyncio.wait_for(setup.outbox().drain(), 10)
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and delivery.state is DeliveryState.SENT
    assert len(setup.teams.state.channel("App releases").posts) == 1


async def test_an_entra_id_that_hangs_holds_neither_the_event_loop_nor_the_card(setup: Setup) -> None:
    setup.teams.faults.add(TOKEN, [Fault("stall", stall_seconds=HANG)])
    delivery_id = await enqueue(setup)

    def healthz_while_the_token_hangs() -> tuple[float, int | None]:
        """How long /healthz took, asked once the token is asked for; and what the token endpoint had answered."""
        deadline = time.monotonic() + HANG
        while not setup.teams.recorder.matching(TOKEN) and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        requests.get(f"{setup.url}/healthz", timeout=HANG).raise_for_status()
        took = time.monotonic() - started
        return took, setup.teams.recorder.matching(TOKEN)[0].status

    with ThreadPoolExecutor(1) as checker:
        checked = checker.submit(healthz_while_the_token_hangs)
        started = time.monotonic()
        await asyncio.wait_for(setup.outbox().drain(), 10)
        attempt_took = time.monotonic() - started
        took, token_status = await asyncio.wrap_future(checked)

    assert took < 0.5 and token_status is None  # answered while the token endpoint still hung
    assert attempt_took < HANG / 2  # the attempt gave up waiting for the token
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and delivery.state is DeliveryState.PENDING and delivery.attempts == 1
    assert delivery.last_error == f"Entra ID did not give Handoff's Teams token within {TOKEN_TIMEOUT:g} s"
    assert not delivery.recovered
    assert setup.posts() == 0
