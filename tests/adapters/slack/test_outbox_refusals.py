"""What the outbox makes of Slack's refusals: a card that can no longer be edited is posted afresh, and later
versions update the new message; a token Slack refuses is retried for a while, then told of as a credential
problem of the workspace (in the log, when the ops alert is refused too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from adapters.emulators.slack import SlackEmulator, method_error
from adapters.slack import SlackChatChannel
from adapters.slack.channel import make_client, workspace_update_pacer
from adapters.slack.pacing import ChannelPacer
from adapters.sql import SqlStore
from bot.cards import Card
from bot.clock import FakeClock
from bot.outbox import OutboxWorker
from bot.records import ConversationAddress, DeliveryState, NewDelivery

from .harness import MODELS, OPS

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
WHERE = ConversationAddress("slack", MODELS)
OPS_CHANNEL = ConversationAddress("slack", OPS)
RUN = "azure-devops:contoso:mlops:run:57"


@dataclass
class Setup:
    slack: SlackEmulator
    store: SqlStore
    clock: FakeClock

    def outbox(self, token: str | None = None) -> OutboxWorker:
        channel = SlackChatChannel(
            make_client(token or self.slack.bot_token, self.slack.api_url),
            pacer=ChannelPacer(clock=self.clock),
            update_pacer=workspace_update_pacer(self.clock),
        )
        names = {WHERE: "ml-models", OPS_CHANNEL: "ops"}
        return OutboxWorker(
            self.store, {"slack": channel}, self.clock, ops_channel=(OPS_CHANNEL,), conversation_names=names
        )

    async def card(self, rank: int, title: str) -> int:
        payload = {"op": "card", "rank": rank, "card": Card(title=title).to_json()}
        (delivery_id,) = await self.store.enqueue([NewDelivery(WHERE, RUN, payload)], self.clock.now())
        return delivery_id

    def texts(self, channel: str) -> list[str]:
        return [m.text for m in self.slack.state.channel(channel).messages]

    def calls(self, method: str) -> int:
        return len(self.slack.recorder.matching(f"POST /api/{method}"))

    async def settle(self, outbox: OutboxWorker, minutes: int = 40) -> None:
        """Deliver what is due, minute after minute, the clock moving inside attempts too."""
        for _ in range(minutes):
            task = asyncio.ensure_future(outbox.drain())
            while not task.done():
                await asyncio.sleep(0.01)
                if self.clock.sleepers:
                    await self.clock.advance(0.5)
            await task
            await self.clock.advance(60)


@pytest.fixture
async def setup(sqlite_url: str) -> AsyncIterator[Setup]:
    clock = FakeClock(T0)
    store = await SqlStore.open(sqlite_url)
    try:
        async with SlackEmulator(clock=clock) as slack:
            yield Setup(slack, store, clock)
    finally:
        await store.close()


@pytest.mark.parametrize("error", ["cant_update_message", "edit_window_closed"])
async def test_a_card_slack_will_not_let_handoff_edit_is_posted_afresh_and_later_versions_update_the_new_one(
    setup: Setup, error: str
) -> None:
    outbox = setup.outbox()
    await setup.card(1, "Run 57 running")
    await setup.settle(outbox, 1)
    setup.slack.faults.add("POST /api/chat.update", [method_error(error)])

    update = await setup.card(2, "Run 57 failed")
    await setup.settle(outbox, 2)

    old, new = setup.slack.state.channel(MODELS).messages
    assert "Run 57 running" in old.text and "Run 57 failed" in new.text
    delivery = await setup.store.get_delivery(update)
    assert delivery is not None and delivery.state is DeliveryState.SENT
    shown = await setup.store.get_card(RUN, WHERE)
    assert shown is not None and shown.message_id == new.ts
    assert setup.texts(OPS) == []  # nothing to alert anyone of

    await setup.card(3, "Run 57 retried: succeeded")
    await setup.settle(outbox, 2)
    assert [m.ts for m in setup.slack.state.channel(MODELS).messages] == [old.ts, new.ts]
    assert "Run 57 retried: succeeded" in setup.slack.state.channel(MODELS).messages[1].text
    assert await setup.store.count_deliveries() == {"pending": 0, "sent": 3, "dead": 0, "unreachable": 0}


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "account_inactive"])
async def test_a_token_slack_refuses_is_retried_past_the_usual_attempts_and_the_card_posted_once_it_is_taken(
    setup: Setup, error: str
) -> None:
    outbox = setup.outbox()
    # about 20 minutes of refusals (a token being replaced): the usual 6 attempts would have given it up
    setup.slack.faults.add("POST /api/chat.postMessage", [method_error(error, matching=MODELS)] * 7)

    posted = await setup.card(1, "Run 57 running")
    await setup.settle(outbox)

    delivery = await setup.store.get_delivery(posted)
    assert delivery is not None and delivery.state is DeliveryState.SENT and delivery.attempts == 8
    assert len(setup.texts(MODELS)) == 1 and setup.texts(OPS) == []


async def test_a_token_slack_keeps_refusing_is_told_as_the_workspaces_credential_problem(setup: Setup) -> None:
    outbox = setup.outbox()
    setup.slack.faults.add("POST /api/chat.postMessage", [method_error("token_revoked", matching=MODELS)] * 20)

    posted = await setup.card(1, "Run 57 running")
    await setup.settle(outbox)

    delivery = await setup.store.get_delivery(posted)
    assert delivery is not None and delivery.state is DeliveryState.DEAD and delivery.attempts == 8
    [alert] = setup.slack.state.channel(OPS).messages
    assert "Slack refuses Handoff's credentials" in alert.text
    blocks = str(alert.blocks)
    assert "token_revoked" in blocks and "slack.bot_token" in blocks and "could not be delivered" not in blocks
    assert await setup.store.inactive_conversations() == frozenset()


async def test_a_token_slack_refuses_everywhere_is_told_once_in_the_log_when_the_alert_is_refused_too(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = setup.outbox(token="xoxb-rotated-away-0000")  # what Handoff holds is no longer Slack's

    posted = await setup.card(1, "Run 57 running")
    await setup.settle(outbox)

    delivery = await setup.store.get_delivery(posted)
    assert delivery is not None and delivery.state is DeliveryState.DEAD and delivery.attempts == 8
    assert setup.calls("chat.postMessage") == 8 + 1  # its attempts, then the alert's one
    assert setup.texts(MODELS) == [] and setup.texts(OPS) == []
    assert await setup.store.count_deliveries() == {"pending": 0, "sent": 0, "dead": 2, "unreachable": 0}
    told = [r for r in caplog.records if r.levelno == logging.ERROR and "refuses Handoff's credentials" in r.message]
    assert len(told) == 1
    assert told[0].message.startswith("Slack refuses Handoff's credentials (chat.postMessage: invalid_auth)")
    assert "slack.bot_token" in told[0].message
    assert not [r for r in caplog.records if "xoxb" in r.getMessage()]
