"""What a team Handoff was removed from had queued is given up as unreachable, not dead-lettered: the ops
channel's alert and the metrics count only the messages Handoff failed to deliver. On each database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from adapters.emulators.base import Fault
from adapters.sql import SqlStore
from bot.cards import Card, Status
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, RetryPolicy
from bot.records import ConversationAddress, DeliveryState, NewDelivery

from .conftest import GENERAL, MODELS, RELEASES, Harness, adaptive_card, shown_texts, with_time_passing

WHERE = ConversationAddress("teams", RELEASES)


@pytest.fixture
async def harness_store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def card(run: int, rank: int = 1, status: Status = Status.RUNNING) -> NewDelivery:
    return NewDelivery(WHERE, f"run:{run}", {"op": "card", "rank": rank, "card": Card(f"Run {run}", status).to_json()})


async def gauge(harness: Harness) -> dict[str, float]:
    """``handoff_deliveries`` by state, as ``GET /metrics`` shows it."""
    url = harness.bot_url.removesuffix("/api/messages") + "/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    prefix = "handoff_deliveries{state="
    return {
        line[len(prefix) + 1 : line.index('"}')]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def test_a_removed_teams_queued_deliveries_are_unreachable_and_only_a_real_dead_letter_counts(
    harness: Harness,
) -> None:
    await harness.teams.install_app()
    metrics = Metrics()
    outbox = OutboxWorker(
        harness.store,
        {"teams": harness.integration.channel},
        harness.clock,
        ops_channel=(ConversationAddress("teams", MODELS),),
        retry=RetryPolicy(max_attempts=1),
    )
    outbox.observer = metrics.outbox
    await harness.store.enqueue([card(412)], harness.clock.now())
    await with_time_passing(harness.clock, outbox.drain())

    await harness.teams.uninstall_app()  # installationUpdate remove: the team's channels are inactive
    harness.teams.state.bot_removed_from.update({GENERAL, RELEASES, MODELS})
    queued = await harness.store.enqueue(
        [
            card(412, rank=2, status=Status.FAILED),
            NewDelivery(WHERE, "run:412", {"op": "reply", "card": Card("Stage Tests failed").to_json()}),
            card(413),
        ],
        harness.clock.now(),
    )
    await with_time_passing(harness.clock, outbox.drain())

    for delivery_id in queued:
        delivery = await harness.store.get_delivery(delivery_id)
        assert delivery is not None and delivery.state is DeliveryState.UNREACHABLE
    assert await gauge(harness) == {"pending": 0, "dead": 0, "unreachable": 3}
    failures = {"platform": "teams", "outcome": "dead"}
    assert metrics.registry.get_sample_value("handoff_delivery_failures_total", failures) is None
    assert not harness.teams.state.channel("ML models").posts  # no alert

    # Handoff is added back, and Teams then refuses a card for good: that one is a dead letter, alerted alone
    await harness.teams.install_app()
    harness.teams.state.bot_removed_from.clear()
    harness.teams.faults.add("POST /v3/conversations", [Fault("400")])
    await harness.store.enqueue([card(414)], harness.clock.now())
    await with_time_passing(harness.clock, outbox.drain())

    assert await gauge(harness) == {"pending": 0, "dead": 1, "unreachable": 3}
    assert metrics.registry.get_sample_value("handoff_delivery_failures_total", failures) == 1
    [alert] = harness.teams.state.channel("ML models").posts
    assert "gave up on 1 message there today" in "\n".join(shown_texts(adaptive_card(alert.activity)))
