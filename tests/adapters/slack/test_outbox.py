"""The outbox sending through the Slack adapter to the Slack emulator, on a real store: whatever fails between a
post and its record, a card is posted once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text

from adapters.emulators.slack import SlackEmulator
from adapters.slack import SlackChatChannel
from adapters.slack.channel import make_client, workspace_update_pacer
from adapters.slack.pacing import ChannelPacer
from adapters.sql import SqlStore
from bot.cards import Card
from bot.clock import FakeClock
from bot.outbox import OutboxWorker
from bot.records import ConversationAddress, DeliveryState, NewDelivery

from .harness import MODELS

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

    async def card(self, rank: int = 1, title: str = "integrate-app-y 20261128.57") -> int:
        payload = {"op": "card", "rank": rank, "card": Card(title=title).to_json()}
        (delivery_id,) = await self.store.enqueue([NewDelivery(WHERE, RUN, payload)], self.clock.now())
        return delivery_id

    def posts(self) -> list[str]:
        """The timestamps of the messages in the channel."""
        return [m.ts for m in self.slack.state.channel(MODELS).messages]

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
    assert await setup.store.count_deliveries() == {"pending": 0, "sent": 1, "dead": 0}

    await setup.card(2, "integrate-app-y 20261128.57: tests passed")
    await setup.clock.advance(60)
    await worker.drain()
    assert setup.posts() == [posted]  # later versions update it
    assert setup.slack.state.channel(MODELS).messages[0].text.endswith("tests passed")
