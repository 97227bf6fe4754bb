"""The outbox worker on a real store: coalescing, order in a conversation, conversations independent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters.sql import SqlStore
from bot.cards import Card
from bot.clock import FakeClock
from bot.outbox import OutboxWorker, post_marker
from bot.ratelimit import SlidingWindowLimiter
from bot.records import ConversationAddress, Delivery, DeliveryState, NewDelivery
from tests.core.recording_channel import RecordingChannel

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
A = ConversationAddress("slack", "C0AAAAAAAA")
B = ConversationAddress("slack", "C0BBBBBBBB")


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.open(sqlite_url)
    yield opened
    await opened.close()


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
def worker(store: SqlStore, channel: RecordingChannel) -> OutboxWorker:
    clock = FakeClock(T0)
    outbox = OutboxWorker(store, {"slack": channel}, clock)
    # rate limits are the platform adapters' and the bench's business here; keep them out of the way
    outbox.limiters = {"slack": SlidingWindowLimiter(((1000, 1.0),), clock)}
    return outbox


def version(n: int, where: ConversationAddress = A, key: str = "run:1") -> NewDelivery:
    return NewDelivery(where, key, {"op": "card", "rank": n, "card": Card(title=f"{key} v{n}").to_json()})


def reply(text: str, where: ConversationAddress = A, key: str = "run:1") -> NewDelivery:
    return NewDelivery(where, key, {"op": "reply", "card": Card(title=text).to_json()})


async def test_a_burst_for_a_new_card_is_one_post_of_its_newest_version(
    store: SqlStore, worker: OutboxWorker, channel: RecordingChannel
) -> None:
    await store.enqueue([version(n) for n in range(1, 6)], T0)
    await worker.drain()
    assert channel.calls == [("post", A.conversation_id, "run:1 v5")]
    shown = await store.get_card("run:1", A)
    assert shown is not None and shown.rank == 5
    assert await store.count_deliveries() == {"pending": 0, "sent": 5, "dead": 0}


async def test_a_reply_comes_after_its_card_which_shows_its_newest_version(
    store: SqlStore, worker: OutboxWorker, channel: RecordingChannel
) -> None:
    await store.enqueue([version(1), reply("failed in stage Tests"), version(2), version(3)], T0)
    await worker.drain()
    assert channel.calls == [
        ("post", A.conversation_id, "run:1 v3"),
        ("reply", A.conversation_id, "failed in stage Tests"),
    ]


async def test_updates_to_a_shown_card_coalesce(
    store: SqlStore, worker: OutboxWorker, channel: RecordingChannel
) -> None:
    await store.enqueue([version(1)], T0)
    await worker.drain()
    await store.enqueue([version(n) for n in range(2, 9)], T0)
    await worker.drain()
    assert channel.calls == [("post", A.conversation_id, "run:1 v1"), ("update", A.conversation_id, "run:1 v8")]


async def test_a_slow_conversation_does_not_hold_up_another(
    store: SqlStore, worker: OutboxWorker, channel: RecordingChannel
) -> None:
    channel.held[A.conversation_id] = asyncio.Event()
    await store.enqueue([version(1, A), version(1, A, "run:2")], T0)
    await store.enqueue([version(1, B, f"run:{i}") for i in range(3, 6)], T0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await channel.until(3)
        assert [c[1] for c in channel.calls] == [B.conversation_id] * 3  # while A's first post hangs
        channel.held[A.conversation_id].set()
        await channel.until(5)
        assert [c[2] for c in channel.calls if c[1] == A.conversation_id] == ["run:1 v1", "run:2 v1"]  # in order
        await store.enqueue([version(2, B, "run:3")], T0)
        worker.wake()
        await channel.until(6)
        assert channel.calls[-1] == ("update", B.conversation_id, "run:3 v2")
    finally:
        stop.set()
        await running
    assert await store.count_deliveries() == {"pending": 0, "sent": 6, "dead": 0}


def test_a_post_marker_names_one_delivery_of_one_handoff() -> None:
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    one = Delivery(7, None, ConversationAddress("slack", "C1"), "run:1", {}, DeliveryState.PENDING, 1, at, at)
    assert post_marker(one) == post_marker(replace(one, attempts=2, recovered=True))  # every attempt alike
    # another Handoff's delivery 7 in the same channel is another card, or the same card another time
    assert post_marker(one) != post_marker(replace(one, grouping_key="run:2"))
    assert post_marker(one) != post_marker(replace(one, created_at=at + timedelta(microseconds=1)))
