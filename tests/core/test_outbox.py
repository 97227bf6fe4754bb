"""The outbox worker on a real store: coalescing, order in a conversation, conversations independent."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from adapters.sql import SqlStore
from adapters.sql.tables import cards
from bot.cards import Card
from bot.clock import FakeClock
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, RetryPolicy, post_marker
from bot.ratelimit import SlidingWindowLimiter
from bot.records import ConversationAddress, Delivery, DeliveryState, NewDelivery, PostedCard
from tests.core.flaky_channel import Fault, FlakyChannel
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


@pytest.fixture
def metrics(worker: OutboxWorker) -> Metrics:
    counted = Metrics()
    worker.observer = counted.outbox  # as the server wires it
    return counted


def scraped(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"platform": "slack", **labels})


def endings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the outbox logged of deliveries that ended unsent."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "handoff.outbox" and r.levelno == logging.INFO and "ended unsent" in r.getMessage()
    ]


def version(n: int, where: ConversationAddress = A, key: str = "run:1") -> NewDelivery:
    return NewDelivery(where, key, {"op": "card", "rank": n, "card": Card(title=f"{key} v{n}").to_json()})


def reply(text: str, where: ConversationAddress = A, key: str = "run:1") -> NewDelivery:
    return NewDelivery(where, key, {"op": "reply", "card": Card(title=text).to_json()})


def quieted(version: int, where: ConversationAddress = A, key: str = "run:1") -> NewDelivery:
    """A reply the ingest made quiet for a first post queued with ``version`` of its card still to come."""
    planned = {"op": "reply", "card": Card(title="failed, in the channel").to_json(), "broadcast": True}
    quiet = {"op": "reply", "card": Card(title="failed, in the thread").to_json()}
    return NewDelivery(where, key, {**quiet, "version": version, "planned": planned})


@pytest.mark.parametrize(
    ("first_rank", "sent"),
    [
        (1, ("failed, in the channel", True)),
        (2, ("failed, in the thread", False)),
        (None, ("failed, in the thread", False)),
    ],
    ids=["first-posted-before-the-event", "first-posted-with-the-event", "first-post-unknown"],
)
async def test_a_quiet_reply_goes_as_planned_where_its_cards_first_post_showed_an_older_version(
    store: SqlStore, worker: OutboxWorker, channel: RecordingChannel, first_rank: int | None, sent: tuple[str, bool]
) -> None:
    await store.save_card(PostedCard("run:1", A, "m1", "m1", rank=2, first_rank=first_rank))
    if first_rank is None:  # a card posted before the store recorded which version was first posted
        async with store.engine.begin() as conn:
            await conn.execute(update(cards).values(first_rank=None))
    await store.enqueue([quieted(2)], T0)
    await worker.drain()
    assert [(card.title, broadcast) for card, broadcast in channel.replies] == [sent]


async def test_a_burst_for_a_new_card_is_one_post_of_its_newest_version(
    store: SqlStore, worker: OutboxWorker, channel: RecordingChannel
) -> None:
    await store.enqueue([version(n) for n in range(1, 6)], T0)
    await worker.drain()
    assert channel.calls == [("post", A.conversation_id, "run:1 v5")]
    shown = await store.get_card("run:1", A)
    assert shown is not None and shown.rank == 5
    assert await store.count_deliveries() == {"pending": 0, "sent": 5, "dead": 0, "unreachable": 0}


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
    assert await store.count_deliveries() == {"pending": 0, "sent": 6, "dead": 0, "unreachable": 0}


async def test_two_replicas_keep_to_a_channel_s_limit_together(store_url: str) -> None:
    """Two replicas (each a worker with a store of its own, on one database) take turns at one Slack
    channel's cards: together they keep to Slack's one message a second there, as one would alone."""
    clock = FakeClock(T0)
    channel = RecordingChannel(clock)
    stores = [await SqlStore.open(store_url, migrate=n == 0) for n in range(2)]
    try:
        replicas = [OutboxWorker(s, {"slack": channel}, clock) for s in stores]  # Slack's limits
        await stores[0].enqueue([version(1, A, f"run:{i}") for i in range(4)] + [version(1, B, "run:9")], T0)

        async def turn(replica: OutboxWorker) -> int:
            """One claim and its sends, the clock moving only while the replica waits on it."""
            sending = asyncio.create_task(replica.run_once())
            while not sending.done():
                if clock.sleepers:
                    await clock.advance(0.01)
                else:
                    await asyncio.sleep(0.001)  # the store's work takes real time
            return await sending

        assert [await turn(replicas[n % 2]) for n in range(4)] == [2, 1, 1, 1]
        sent_to_a = [t for t, call in zip(channel.times, channel.calls, strict=True) if call[1] == A.conversation_id]
        assert sent_to_a == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.02)
        assert channel.times[[c[1] for c in channel.calls].index(B.conversation_id)] == 0.0  # B had room
    finally:
        for store in stores:
            await store.close()


class Extreme(random.Random):
    """Jitter at its least (``low``) or its most, every time."""

    def __init__(self, low: bool) -> None:
        super().__init__(0)
        self.low = low

    def uniform(self, a: float, b: float) -> float:
        return a if self.low else b


@pytest.mark.parametrize("rng", [Extreme(low=True), Extreme(low=False), *map(random.Random, range(20))])
def test_the_default_retries_span_about_ten_minutes_the_first_ones_quick(rng: random.Random) -> None:
    policy = RetryPolicy()
    waits = [policy.delay(attempt, None, rng) for attempt in range(1, policy.max_attempts)]  # between the attempts
    assert waits[0] <= 6 and waits[1] <= 18  # a glitch costs seconds
    assert all(later > 2 * earlier for earlier, later in itertools.pairwise(waits))  # exponential
    assert 8 * 60 <= sum(waits) <= 12 * 60


def test_a_retry_after_longer_than_the_backoff_is_waited_out() -> None:
    assert RetryPolicy().delay(1, 90.0, random.Random(7)) == 90.0
    assert RetryPolicy().delay(5, 1.0, Extreme(low=True)) == pytest.approx(0.85 * 5 * 3**4)


async def test_a_delivery_failing_every_time_is_given_up_about_ten_minutes_after_its_first_attempt(
    store: SqlStore,
) -> None:
    clock = FakeClock(T0)
    channel = FlakyChannel(["refused"] * 10)
    worker = OutboxWorker(store, {"slack": channel}, clock, rng=random.Random(3))
    (delivery_id,) = await store.enqueue([version(1)], T0)
    while (await store.count_deliveries())["dead"] == 0:
        await worker.run_once()
        await clock.advance(1)
    delivery = await store.get_delivery(delivery_id)
    assert delivery is not None and delivery.attempts == RetryPolicy().max_attempts
    assert timedelta(minutes=8) <= clock.now() - T0 <= timedelta(minutes=12, seconds=10)
    assert channel.messages == {}


async def test_the_reply_to_a_card_given_up_in_a_reachable_conversation_is_a_dead_letter_too(
    store: SqlStore, metrics: Metrics
) -> None:
    """Only where the conversation cannot be posted in is what is given up there unreachable."""
    clock = FakeClock(T0)
    worker = OutboxWorker(store, {"slack": FlakyChannel(["refused"])}, clock, retry=RetryPolicy(max_attempts=1))
    worker.observer = metrics.outbox
    card, answer = await store.enqueue([version(1), reply("failed in stage Tests")], T0)
    await worker.drain()
    ended = {i: await store.get_delivery(i) for i in (card, answer)}
    assert {i: (d.state, d.last_error) for i, d in ended.items() if d is not None} == {
        card: (DeliveryState.DEAD, "503 service unavailable"),
        answer: (DeliveryState.DEAD, "its card was never posted"),
    }
    assert scraped(metrics, "handoff_delivery_failures_total", outcome="dead") == 1
    assert scraped(metrics, "handoff_delivery_unsent_total", reason="parent_never_posted") == 1


def test_a_post_marker_names_one_delivery_of_one_handoff() -> None:
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    one = Delivery(7, None, ConversationAddress("slack", "C1"), "run:1", {}, DeliveryState.PENDING, 1, at, at)
    assert post_marker(one) == post_marker(replace(one, attempts=2, recovered=True))  # every attempt alike
    # another Handoff's delivery 7 in the same channel is another card, or the same card another time
    assert post_marker(one) != post_marker(replace(one, grouping_key="run:2"))
    assert post_marker(one) != post_marker(replace(one, created_at=at + timedelta(microseconds=1)))


@st.composite
def traffic(draw: st.DrawFn) -> tuple[list[NewDelivery], list[Fault], int, int]:
    """Two runs' cards in two conversations, a few versions each with thread replies among them, interleaved;
    the platform's failures; in how many waves the deliveries are queued; and how many processes send them."""
    streams = []
    for key in ("run:1", "run:2"):
        for where in (A, B):
            stream: list[NewDelivery] = [version(n, where, key) for n in range(1, draw(st.integers(1, 4)) + 1)]
            for number in range(draw(st.integers(0, 2))):
                stream.insert(draw(st.integers(1, len(stream))), reply(f"{key} reply {number}", where, key))
            streams.append(stream)
    queued: list[NewDelivery] = []
    while any(streams):
        queued.append(streams[draw(st.sampled_from([i for i, s in enumerate(streams) if s]))].pop(0))
    faults = draw(st.lists(st.sampled_from([None, None, "refused", "rate_limited", "lost"]), max_size=12))
    return queued, faults, draw(st.integers(1, 3)), draw(st.integers(1, 2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic())
def test_whatever_fails_each_card_is_posted_once_shows_its_newest_version_and_each_reply_comes_once(
    case: tuple[list[NewDelivery], list[Fault], int, int],
) -> None:
    queued, faults, waves, processes = case
    channel = FlakyChannel(faults)

    async def deliver() -> dict[str, int]:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/handoff.db"
            stores = [await SqlStore.open(url, migrate=n == 0) for n in range(processes)]  # (no shared state)
            try:
                clock = FakeClock(T0)
                outboxes = [
                    OutboxWorker(s, {"slack": channel}, clock, retry=RetryPolicy(max_attempts=20)) for s in stores
                ]
                for outbox in outboxes:
                    outbox.limiters = {"slack": SlidingWindowLimiter(((1000, 1.0),), clock)}
                size = -(-len(queued) // waves)
                for wave in range(0, len(queued), size):
                    await stores[0].enqueue(queued[wave : wave + size], clock.now())
                    for _ in range(len(faults) + 2):  # each failure waits at most the longest backoff
                        await asyncio.gather(*(outbox.drain() for outbox in outboxes))
                        await clock.advance(RetryPolicy.max_delay + 1)
                return await stores[0].count_deliveries()
            finally:
                for store in stores:
                    await store.close()

    assert asyncio.run(deliver()) == {"pending": 0, "sent": len(queued), "dead": 0, "unreachable": 0}
    for where in (A, B):
        shown = channel.shown(where.conversation_id)
        for key in ("run:1", "run:2"):
            sent = [d.payload for d in queued if d.grouping_key == key and d.conversation == where]
            newest = max(int(p["rank"]) for p in sent if p["op"] == "card")
            (card,) = [m for m in shown if m.parent is None and m.title.startswith(f"{key} v")]  # posted once
            assert card.title == f"{key} v{newest}"
            card_id = next(i for i, m in channel.messages.items() if m is card)
            replies = sorted(m.title for m in shown if m.parent == card_id)
            assert replies == sorted(p["card"]["title"] for p in sent if p["op"] == "reply")  # each once, under it


async def test_versions_a_newer_one_was_shown_in_place_of_are_counted_and_logged_as_superseded(
    store: SqlStore,
    worker: OutboxWorker,
    channel: RecordingChannel,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="handoff.outbox")
    burst = await store.enqueue([version(n) for n in range(1, 6)], T0)
    await worker.drain()
    assert channel.calls == [("post", A.conversation_id, "run:1 v5")]
    assert scraped(metrics, "handoff_delivery_seconds_count") == 1  # the first, which posted v5
    assert scraped(metrics, "handoff_delivery_unsent_total", reason="superseded") == 4
    assert endings(caplog) == [
        f"deliveries {', '.join(map(str, burst[1:]))} to {A} ended unsent (superseded): "
        f"delivery {burst[0]} showed version 5 of their card"
    ]

    caplog.clear()
    (stale,) = await store.enqueue([version(3)], T0)  # an event that arrived out of order
    await worker.drain()
    assert len(channel.calls) == 1
    delivery = await store.get_delivery(stale)
    assert delivery is not None and delivery.state is DeliveryState.SENT
    assert scraped(metrics, "handoff_delivery_seconds_count") == 1
    assert scraped(metrics, "handoff_delivery_unsent_total", reason="superseded") == 5
    assert endings(caplog) == [f"delivery {stale} to {A} ended unsent (superseded): version 5 of its card is shown"]


async def test_what_goes_unsent_after_a_conversation_is_found_unreachable_is_counted_by_reason(
    store: SqlStore,
    worker: OutboxWorker,
    channel: RecordingChannel,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first delivery refused marks the conversation inactive and is unreachable (alerted); the reply to its
    card, never posted, and a card queued there before it was marked end unsent, each counted by why: all three
    unreachable, none a dead letter."""
    caplog.set_level(logging.INFO, logger="handoff.outbox")
    channel.unreachable.add(A.conversation_id)
    card, answer, other, elsewhere = await store.enqueue(
        [version(1), reply("failed in stage Tests"), version(1, key="run:2"), version(1, B)], T0
    )
    await worker.drain()
    assert channel.calls == [
        ("post", A.conversation_id, "run:1 v1"),
        ("post", B.conversation_id, "run:1 v1"),
        ("post", A.conversation_id, "run:2 v1"),
    ]  # the reply is not even tried

    ended = {i: await store.get_delivery(i) for i in (card, answer, other, elsewhere)}
    assert {i: (d.state, d.last_error) for i, d in ended.items() if d is not None} == {
        card: (DeliveryState.UNREACHABLE, "chat.post: channel_not_found"),
        answer: (DeliveryState.UNREACHABLE, "its card was never posted"),
        other: (DeliveryState.UNREACHABLE, "chat.post: channel_not_found"),
        elsewhere: (DeliveryState.SENT, None),
    }
    assert A in await store.inactive_conversations()
    assert scraped(metrics, "handoff_delivery_failures_total", outcome="unreachable") == 1  # the first, alerted
    assert scraped(metrics, "handoff_delivery_failures_total", outcome="dead") is None
    assert scraped(metrics, "handoff_delivery_unsent_total", reason="parent_never_posted") == 1
    assert scraped(metrics, "handoff_delivery_unsent_total", reason="conversation_unreachable") == 1
    assert scraped(metrics, "handoff_delivery_seconds_count") == 1  # B's card alone
    assert sorted(endings(caplog)) == [
        f"delivery {answer} to {A} ended unsent (parent_never_posted): its card was never posted",
        f"delivery {other} to {A} ended unsent (conversation_unreachable): chat.post: channel_not_found",
    ]
