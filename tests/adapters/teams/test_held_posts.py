"""A Teams post held past its attempt's bound is given up, and its call with it: the card is posted once, by one
replica of two on one database, on each database.

The outbox sends through the real Teams channel to the connector emulator, which holds the post (``hold``, on
the test's clock) past three quarters of the lease; the next attempt looks for the post in the emulator's Graph
view before posting again. A call that went on after its attempt gave up would post the card a second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.emulators.base import Fault
from adapters.emulators.botframework import BotFrameworkEmulator
from bot.cards import Card, Status
from bot.config import TeamsGraphSettings, TeamsSettings
from bot.outbox import OutboxWorker
from bot.records import DeliveryState, NewDelivery

from .replicas import RUN, T0, WHERE, Setup, two_replicas

POST = "POST /v3/conversations"
CHANNEL_MESSAGES = "GET /graph/v1.0/teams/*/channels/*/messages"
HELD = 90.0  # a post held this long (seconds) outlasts the outbox's lease of its delivery (60 s)


def with_graph(teams: BotFrameworkEmulator) -> TeamsSettings:
    """Teams settings that look for lost posts in the emulator's Graph view."""
    graph = TeamsGraphSettings(find_lost_posts=True, api_url=teams.graph_url, login_url=teams.login_url)
    return TeamsSettings(app_id="", allow_unauthenticated=True, graph=graph)


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[Setup]:
    async with two_replicas(store_url, with_graph) as replicas:  # two replicas' stores
        yield replicas


async def test_a_post_teams_holds_past_its_attempts_bound_is_given_up_with_its_call_and_posted_once(
    setup: Setup,
) -> None:
    setup.teams.faults.add(POST, [Fault("hold", stall_seconds=HELD)])
    card = Card(title="Release app-y 2.3", status=Status.RUNNING)
    (delivery_id,) = await setup.stores[0].enqueue(
        [NewDelivery(WHERE, RUN, {"op": "card", "rank": 1, "card": card.to_json()})], T0
    )
    workers = [
        OutboxWorker(store, {"teams": setup.channel}, setup.clock, worker_id=f"replica-{n}")
        for n, store in enumerate(setup.stores)
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        for _ in range(int(HELD) + 30):  # (past the end of the hold: a call still out then would post)
            await asyncio.sleep(0.01)
            await setup.clock.advance(1)
    finally:
        stop.set()
        while not all(task.done() for task in running):
            await asyncio.sleep(0.01)
            await setup.clock.advance(1)
        await asyncio.gather(*running)

    (posted,) = setup.posts()
    # the held call was hung up on (so Teams never acted on it); the next attempt looked for it, then posted
    assert [r.status for r in setup.teams.recorder.matching(POST)] == [499, 201]
    assert len(setup.teams.recorder.matching(CHANNEL_MESSAGES)) == 1
    delivery = await setup.stores[0].get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    shown = await setup.stores[0].get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted
