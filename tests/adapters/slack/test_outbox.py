"""The outbox sending through the Slack adapter to the Slack emulator, on a real store: whatever fails between a
post and its record, however long Slack asks to wait or takes to answer, and whenever Handoff stops, a card is
posted once."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text

from adapters.emulators.base import Fault
from adapters.emulators.slack import SlackEmulator
from adapters.slack import SlackChatChannel
from adapters.slack.channel import MAX_INLINE_WAIT, UPDATES_PER_MINUTE, make_client, workspace_update_pacer
from adapters.slack.pacing import ChannelPacer
from adapters.sql import SqlStore
from bot.app import BackgroundWork, add_channel, build_handoff
from bot.cards import Card
from bot.clock import FakeClock
from bot.config import parse_settings
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.ports import PostedMessage
from bot.records import ConversationAddress, DeliveryState, NewDelivery

from .harness import MODELS, OPS, RELEASES

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
WHERE = ConversationAddress("slack", MODELS)
RUN = "azure-devops:contoso:mlops:run:57"


@dataclass
class Setup:
    slack: SlackEmulator
    store: SqlStore
    clock: FakeClock

    def channel(self, client: AsyncWebClient | None = None) -> SlackChatChannel:
        return SlackChatChannel(
            client or make_client(self.slack.bot_token, self.slack.api_url),
            pacer=ChannelPacer(clock=self.clock),
            update_pacer=workspace_update_pacer(self.clock),
        )

    async def card(
        self, rank: int = 1, title: str = "integrate-app-y 20261128.57", where: ConversationAddress = WHERE
    ) -> int:
        payload = {"op": "card", "rank": rank, "card": Card(title=title).to_json()}
        (delivery_id,) = await self.store.enqueue([NewDelivery(where, RUN, payload)], self.clock.now())
        return delivery_id

    def posts(self, channel: str = MODELS) -> list[str]:
        """The timestamps of the messages in the channel."""
        return [m.ts for m in self.slack.state.channel(channel).messages]

    def calls(self, method: str) -> int:
        return sum(1 for r in self.slack.recorder.requests if r.path == f"/api/{method}")


@pytest.fixture
async def setup(store_url: str) -> AsyncIterator[Setup]:
    clock = FakeClock(T0)
    store = await SqlStore.open(store_url)
    try:
        async with SlackEmulator(clock=clock) as slack:
            yield Setup(slack, store, clock)
    finally:
        await store.close()


async def fail_the_first_card_save(store: SqlStore) -> None:
    """Make the store fail when the first attempt records its card: on PostgreSQL the connection drops (the
    server ends it), on SQLite the statement fails (while only one send is counted, that is, the first)."""
    async with store.engine.begin() as conn:
        if store.is_postgres:
            await conn.execute(text("CREATE SEQUENCE card_saves"))
            await conn.execute(
                text(
                    "CREATE FUNCTION drop_first_card_save() RETURNS trigger AS $$ BEGIN "
                    "IF nextval('card_saves') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER drop_first_card_save BEFORE INSERT ON cards "
                    "FOR EACH ROW EXECUTE FUNCTION drop_first_card_save()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER fail_first_card_save BEFORE INSERT ON cards "
                    "WHEN (SELECT count(*) FROM conversation_sends) = 1 "
                    "BEGIN SELECT RAISE(ABORT, 'database is locked'); END"
                )
            )


async def test_a_card_posted_by_an_attempt_the_store_failed_to_record_is_found_not_posted_again(
    setup: Setup,
) -> None:
    await fail_the_first_card_save(setup.store)
    worker = OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock)
    delivery_id = await setup.card()

    await worker.run_once()  # posted; recording it failed
    assert len(setup.posts()) == 1
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and delivery.state is DeliveryState.PENDING
    await setup.clock.advance(600)
    await worker.drain()

    (posted,) = setup.posts()  # the next attempt looked for the post, found it and did not post again
    assert setup.calls("chat.postMessage") == 1
    assert setup.calls("conversations.history") == 1
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted
    assert await setup.store.count_deliveries() == {"pending": 0, "sent": 1, "dead": 0, "unreachable": 0}

    await setup.card(2, "integrate-app-y 20261128.57: tests passed")
    await setup.clock.advance(60)
    await worker.drain()
    assert setup.posts() == [posted]  # later versions update it
    assert setup.slack.state.channel(MODELS).messages[0].text.endswith("tests passed")


def scraped(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "handoff_delivery_failures_total", {"platform": "slack", "outcome": outcome}
    )


async def run_until_done(worker: OutboxWorker, setup: Setup) -> None:
    """Run ``worker`` while the clock moves a second at a time (the store's, the emulator's and slack_sdk's work
    taking real time between two steps) until nothing is pending; then stop it, once what it has under way is
    done."""
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(600):
            if not (await setup.store.count_deliveries([DeliveryState.PENDING]))["pending"]:
                break
            await asyncio.sleep(0.01)
            await setup.clock.advance(1)
    finally:
        stop.set()
        while not running.done():  # (slack_sdk's own waits take real time)
            await asyncio.sleep(0.01)
            await setup.clock.advance(1)
        await running


async def test_a_429_asking_to_wait_past_the_lease_is_waited_out_by_the_outbox_and_the_card_posted_once(
    setup: Setup,
) -> None:
    lease = timedelta(seconds=20)
    retry_after = 30  # past the lease, and past what slack_sdk may wait inline
    assert retry_after > max(lease.total_seconds(), MAX_INLINE_WAIT)
    setup.slack.faults.add("POST /api/chat.postMessage", [Fault("429", retry_after=retry_after)])
    worker = OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock, lease=lease)
    delivery_id = await setup.card()
    started = setup.clock.now()

    await run_until_done(worker, setup)

    (posted,) = setup.posts()
    assert [r.status for r in setup.slack.recorder.matching("POST /api/chat.postMessage")] == [429, 200]
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and delivery.state is DeliveryState.SENT
    assert float(posted) >= started.timestamp() + retry_after  # posted once the Retry-After was over


async def test_card_updates_past_the_workspaces_pace_wait_for_their_turn_in_the_store_not_in_the_call(
    setup: Setup,
) -> None:
    """Slack takes about 50 card updates a minute per workspace: an update whose turn is further off than a call
    may wait goes back to the store until then, and is not counted as a failed attempt."""
    client = make_client(setup.slack.bot_token, setup.slack.api_url)
    update_pacer = ChannelPacer(rate=UPDATES_PER_MINUTE / 60, burst=1, clock=setup.clock)
    channel = SlackChatChannel(client, pacer=ChannelPacer(clock=setup.clock), update_pacer=update_pacer, max_wait=1)
    worker = OutboxWorker(setup.store, {"slack": channel}, setup.clock)
    metrics = Metrics()
    worker.observer = metrics.outbox
    places = [ConversationAddress("slack", c) for c in (MODELS, RELEASES, OPS)]
    for where in places:
        await setup.card(1, "integrate-app-y 20261128.57", where)
    await run_until_done(worker, setup)
    await setup.clock.advance(2)
    updates = [await setup.card(2, "integrate-app-y 20261128.57: passed", where) for where in places]

    await worker.run_once()  # at one moment: one update goes, the others' turns are further off than 1 s
    assert len(setup.slack.recorder.matching("POST /api/chat.update")) == 1
    assert scraped(metrics, "postponed") == 2
    await run_until_done(worker, setup)

    for where in places:
        (message,) = setup.slack.state.channel(where.conversation_id).messages
        assert message.text.endswith("20261128.57: passed")
    assert [r.status for r in setup.slack.recorder.matching("POST /api/chat.update")] == [200] * 3
    for delivery_id in updates:
        delivery = await setup.store.get_delivery(delivery_id)
        assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)
    assert (scraped(metrics, "postponed") or 0) >= 2
    assert scraped(metrics, "retried") is None


HELD = 90.0  # a call to Slack held this long (seconds) outlasts what an attempt may take to send (45 s)


async def test_a_post_slack_holds_past_its_attempts_bound_is_given_up_before_the_lease_runs_out_and_posted_once(
    setup: Setup,
) -> None:
    """A call that outlasts the attempt's bound (``send_within``; its lease is renewed until then) is given up as
    one that may have posted: the delivery is not claimed again while the call is still out, and the next attempt
    looks first."""
    setup.slack.faults.add("POST /api/chat.postMessage", [Fault("hold", stall_seconds=HELD)])
    workers = [
        OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock, worker_id=name) for name in ("w1", "w2")
    ]
    delivery_id = await setup.card()
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
    # the held call was hung up on (so Slack never acted on it); the next attempt looked for it, then posted
    assert [r.status for r in setup.slack.recorder.matching("POST /api/chat.postMessage")] == [499, 200]
    assert setup.calls("conversations.history") == 1
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted


async def handoff_on(setup: Setup, store_url: str) -> BackgroundWork:
    """Handoff's background work (the outbox among it) on the setup's store, sending to the Slack emulator."""
    settings = parse_settings({"store": {"url": store_url}, "channels": {"models": {"slack": MODELS}}}, {})
    handoff = build_handoff(settings, setup.store, setup.clock)
    add_channel(handoff, "slack", setup.channel())
    return BackgroundWork(handoff)


async def claimed(setup: Setup, delivery_id: int) -> None:
    """Until the delivery is claimed (the store tells nothing of it: look a few times)."""
    while (delivery := await setup.store.get_delivery(delivery_id)) is None or delivery.claimed_by is None:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def stop_gracefully(setup: Setup, work: BackgroundWork) -> None:
    """Stop ``work`` as the server does on SIGTERM, the clock moving a few seconds meanwhile, far less than a lease."""
    stopping = asyncio.ensure_future(work.stop())
    for _ in range(5):
        if stopping.done():
            break
        await asyncio.sleep(0.01)
        await setup.clock.advance(1)
    await stopping


async def test_a_graceful_stop_hands_back_a_delivery_waiting_for_room_untouched_and_the_next_worker_sends_it_at_once(
    setup: Setup, store_url: str
) -> None:
    work = await handoff_on(setup, store_url)
    await setup.store.record_send(WHERE, setup.clock.now())  # another replica just sent there: this one waits 1 s
    delivery_id = await setup.card()
    work.start()
    await claimed(setup, delivery_id)
    await work.stop()  # at once, the clock still: nothing was sent, so there is nothing to wait for

    assert setup.posts() == []
    restarted = OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock)
    await setup.clock.advance(1)  # (the other replica's send: the time for room, far less than a lease)
    assert await restarted.run_once() == 1

    (posted,) = setup.posts()
    assert setup.calls("conversations.history") == 0  # nothing was sent: not a recovery
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)
    assert float(posted) < T0.timestamp() + 60


async def test_a_graceful_stop_hands_back_a_delivery_whose_post_is_out_as_a_recovery_and_it_is_posted_once(
    setup: Setup, store_url: str
) -> None:
    setup.slack.faults.add("POST /api/chat.postMessage", [Fault("hold", stall_seconds=HELD)])
    work = await handoff_on(setup, store_url)
    delivery_id = await setup.card()
    work.start()
    await setup.slack.recorder.wait_for("POST /api/chat.postMessage")
    await stop_gracefully(setup, work)  # the post is given its grace, then hung up on

    restarted = OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock)
    await setup.clock.advance(1)
    assert await restarted.run_once() == 1

    (posted,) = setup.posts()
    assert [r.status for r in setup.slack.recorder.matching("POST /api/chat.postMessage")] == [499, 200]
    assert setup.calls("conversations.history") == 1  # it may have posted: looked for first
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    assert float(posted) < T0.timestamp() + 60
    for _ in range(int(HELD)):  # what the first process left in flight comes to nothing
        await setup.clock.advance(1)
    assert setup.posts() == [posted]


async def first_posting_then_both(setup: Setup, workers: Sequence[OutboxWorker], seconds: int) -> None:
    """Run the first worker until its post is out, then both for ``seconds`` of the clock; then stop them."""
    stop = asyncio.Event()
    first = asyncio.create_task(workers[0].run(stop))
    await setup.slack.recorder.wait_for("POST /api/chat.postMessage")
    second = asyncio.create_task(workers[1].run(stop))
    try:
        await spend(setup, seconds)
    finally:
        stop.set()
        while not (first.done() and second.done()):
            await spend(setup, 1)
        await asyncio.gather(first, second)


SHORT_LEASE = timedelta(seconds=15)  # Handoff's lease of a claim, renewed while its attempt goes on


class DiesAfterPosting(SlackChatChannel):
    """The Slack adapter of a process killed (``kill -9``) the moment a post of its went out, before it could
    record it: the post is made, then nothing more happens in that process."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(
            make_client(setup.slack.bot_token, setup.slack.api_url),
            pacer=ChannelPacer(clock=setup.clock),
            update_pacer=workspace_update_pacer(setup.clock),
        )
        self.posted = asyncio.Event()

    async def post_card(self, conversation_id: str, card: Card, *, marker: str | None = None) -> PostedMessage:
        posted = await super().post_card(conversation_id, card, marker=marker)
        self.posted.set()
        await asyncio.Event().wait()  # killed here
        return posted


async def spend(setup: Setup, seconds: int) -> None:
    """Let ``seconds`` of the clock pass a second at a time, the store's and the emulator's work taking real time
    between two steps (enough for a renewal's write on a busy machine: a lease is 15 steps)."""
    for _ in range(seconds):
        await asyncio.sleep(0.03)
        await setup.clock.advance(1)


async def test_the_deliveries_of_a_worker_that_died_are_sent_within_one_short_lease_and_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker renews the lease of its claims while it lives; once it is gone (killed, not stopped: it hands
    nothing back), what it held is another's to send within one short lease, not a minute, and what it posted
    before dying is found, not posted again."""
    caplog.set_level(logging.INFO, logger="handoff.outbox")
    dying = DiesAfterPosting(setup)
    killed = OutboxWorker(setup.store, {"slack": dying}, setup.clock)
    assert f"{socket.gethostname()}:{os.getpid()}:" in killed.worker_id  # whose claim, in the log
    delivery_id = await setup.card()
    running = asyncio.create_task(killed.run(asyncio.Event()))
    async with asyncio.timeout(10):  # (a safety net, not a timing)
        await dying.posted.wait()
    await spend(setup, 28)  # alive past its first lease: the claim is still its own, renewed
    held = await setup.store.get_delivery(delivery_id)
    assert held is not None and (held.claimed_by, held.attempts) == (killed.worker_id, 1)

    running.cancel()  # the process is killed: nothing is handed back, nothing more renewed
    await asyncio.gather(running, return_exceptions=True)
    await spend(setup, int(SHORT_LEASE.total_seconds()) + 1)
    restarted = OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock)
    assert await restarted.run_once() == 1

    (posted,) = setup.posts()  # posted once: the recovery looked for the post first, found it and used it
    assert setup.calls("chat.postMessage") == 1
    assert setup.calls("conversations.history") == 1
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted
    recoveries = [r.getMessage() for r in caplog.records if "ended without a recorded outcome" in r.getMessage()]
    assert len(recoveries) == 1 and killed.worker_id in recoveries[0]


async def test_a_long_send_of_a_live_worker_keeps_its_claim_past_the_short_lease(setup: Setup) -> None:
    """Slack holds a post twice as long as the lease: the worker sending it renews its claim meanwhile, so another
    worker watching the outbox never takes the delivery, and the post goes out once, from the first attempt."""
    held = 2 * SHORT_LEASE.total_seconds()
    setup.slack.faults.add("POST /api/chat.postMessage", [Fault("hold", stall_seconds=held)])
    workers = [
        OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock, lease=SHORT_LEASE, worker_id=name)
        for name in ("w1", "w2")
    ]
    delivery_id = await setup.card()
    await first_posting_then_both(setup, workers, int(held) + 10)

    (posted,) = setup.posts()
    assert [r.status for r in setup.slack.recorder.matching("POST /api/chat.postMessage")] == [200]
    assert setup.calls("conversations.history") == 0  # never a recovery
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted


class CannotRenew:
    """The store, except that renewing leases fails (a statement that keeps failing)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.renewals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def renew_claims(self, worker: str, leases: Mapping[int, datetime], until: datetime) -> set[int]:
        self.renewals += 1
        raise OSError("server closed the connection unexpectedly")


async def test_a_send_whose_lease_cannot_be_renewed_is_given_up_before_the_lease_runs_out_and_posted_once(
    setup: Setup,
) -> None:
    """Slack holds a post longer than a lease while the worker's renewals fail: the worker hangs up before its
    lease runs out (so no other worker claims the delivery while the call is out), and the next attempt looks for
    the post before posting it."""
    setup.slack.faults.add("POST /api/chat.postMessage", [Fault("hold", stall_seconds=30)])
    failing = CannotRenew(setup.store)
    workers = [
        OutboxWorker(failing, {"slack": setup.channel()}, setup.clock, worker_id="w1"),  # type: ignore[arg-type]
        OutboxWorker(setup.store, {"slack": setup.channel()}, setup.clock, worker_id="w2"),
    ]
    delivery_id = await setup.card()
    await first_posting_then_both(setup, workers, 60)  # (past the end of the hold: a call still out then would post)

    (posted,) = setup.posts()
    assert [r.status for r in setup.slack.recorder.matching("POST /api/chat.postMessage")] == [499, 200]
    assert failing.renewals > 0
    assert setup.calls("conversations.history") == 1
    delivery = await setup.store.get_delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == posted
