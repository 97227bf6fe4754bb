"""The outbox at a Teams conversation's hourly limit, sending through the real Teams channel to the connector
emulator: a delivery that cannot be sent within its lease is handed back until there is room, and posted once,
by one replica or two on one database.

Teams offers no way to look for a post without Microsoft Graph (off here): a delivery claimed again while
another attempt still meant to send it would be posted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import insert

from adapters.sql.tables import conversation_sends
from bot.cards import Card, Status
from bot.clock import FakeClock
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.records import DeliveryState, NewDelivery

from .conftest import RELEASES, adaptive_card, texts
from .replicas import RUN, T0, WHERE, Setup, two_replicas

HOUR_LIMIT = 1800


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[Setup]:
    async with two_replicas(store_url) as replicas:  # two replicas' stores
        yield replicas


async def run_for(workers: list[OutboxWorker], clock: FakeClock, seconds: float) -> None:
    """Run ``workers`` side by side while ``seconds`` of the clock pass, a second at a time (the store's and the
    emulator's work takes real time between two steps)."""
    stop = asyncio.Event()
    running = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        for _ in range(int(seconds)):
            await asyncio.sleep(0.01)
            await clock.advance(1)
    finally:
        stop.set()
        for _ in range(3600):  # what is under way finishes, whatever it waits for
            if all(task.done() for task in running):
                break
            await asyncio.sleep(0.001)
            await clock.advance(1)
        await asyncio.gather(*running)


@pytest.mark.parametrize("replicas", [1, 2])
async def test_a_card_for_a_conversation_at_its_hourly_limit_waits_for_room_and_is_posted_once(
    setup: Setup, replicas: int
) -> None:
    store = setup.stores[0]
    # the hour's sends to the conversation, by any replica: the oldest leaves the window in 100 s
    oldest = T0 - timedelta(seconds=3500)
    sends = [
        {"platform": "teams", "conversation_id": RELEASES, "sent_at": oldest + timedelta(microseconds=n)}
        for n in range(HOUR_LIMIT)
    ]
    async with store.engine.begin() as conn:
        await conn.execute(insert(conversation_sends), sends)
    card = Card(title="Release app-y 2.3", status=Status.RUNNING)
    (delivery_id,) = await store.enqueue(
        [NewDelivery(WHERE, RUN, {"op": "card", "rank": 1, "card": card.to_json()})], T0
    )
    metrics = Metrics()
    workers = [
        OutboxWorker(s, {"teams": setup.channel}, setup.clock, worker_id=f"replica-{n}")
        for n, s in enumerate(setup.stores[:replicas])
    ]
    for worker in workers:
        worker.observer = metrics.outbox

    await run_for(workers, setup.clock, 180)

    (post,) = setup.posts()
    assert texts(adaptive_card(setup.teams.state.message(post).activity))[0] == "Release app-y 2.3"
    assert len(setup.teams.recorder.matching("POST /v3/conversations")) == 1
    delivery = await store.get_delivery(delivery_id)
    assert delivery is not None and delivery.state is DeliveryState.SENT
    assert delivery.attempts == 1  # waiting for room is not a failed attempt
    shown = await store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == post
    postponed = metrics.registry.get_sample_value(
        "handoff_delivery_failures_total", {"platform": "teams", "outcome": "postponed"}
    )
    assert postponed is not None and postponed >= 1
