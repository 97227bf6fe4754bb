"""What the outbox makes of the Bot Connector's refusals: a card update refused for that message alone is posted
afresh and leaves the channel active; only Handoff's removal, a block or a deleted conversation silence it; and
a 401 (Teams refusing Handoff's credentials) is retried for a while, then told of as a credential problem."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.emulators.botframework import refusal
from bot.cards import Card, Status
from bot.clock import FakeClock
from bot.outbox import OutboxWorker
from bot.ports import ConversationUnreachable, MessageGone
from bot.records import ConversationAddress, DeliveryState, NewDelivery

from .conftest import BOT_APP_ID, MODELS, RELEASES, Harness, adaptive_card, gate_card, shown_texts

WHERE = ConversationAddress("teams", RELEASES)
OPS = ConversationAddress("teams", MODELS)
RUN = "run:412"


def card(rank: int, title: str) -> NewDelivery:
    return NewDelivery(WHERE, RUN, {"op": "card", "rank": rank, "card": Card(title, Status.RUNNING).to_json()})


async def settle(outbox: OutboxWorker, clock: FakeClock, minutes: int = 40) -> None:
    """Deliver what is due, minute after minute, the clock moving inside attempts too."""
    for _ in range(minutes):
        task = asyncio.ensure_future(outbox.drain())
        while not task.done():
            await asyncio.sleep(0.01)
            if clock.sleepers:
                await clock.advance(0.5)
        await task
        await clock.advance(60)


async def outbox(harness: Harness) -> OutboxWorker:
    await harness.teams.install_app()
    return OutboxWorker(harness.store, {"teams": harness.integration.channel}, harness.clock, ops_channel=(OPS,))


def shown(activity: dict[str, object]) -> str:
    return "\n".join(shown_texts(adaptive_card(activity)))  # type: ignore[arg-type]


async def test_an_update_teams_refuses_for_that_message_alone_posts_the_card_afresh_and_the_channel_stays_active(
    harness: Harness,
) -> None:
    worker = await outbox(harness)
    await harness.store.enqueue([card(1, "Run 412 running")], harness.clock.now())
    await settle(worker, harness.clock, 1)
    [first] = harness.teams.state.channel("App releases").posts
    # "a bot can only update its own messages", or another refusal of that one message
    harness.teams.faults.add("PUT /v3/conversations/**", [refusal(403, "Forbidden")])

    (update,) = await harness.store.enqueue([card(2, "Run 412 failed")], harness.clock.now())
    await settle(worker, harness.clock, 2)

    old, new = harness.teams.state.channel("App releases").posts
    assert old is first and len(old.versions) == 1
    assert "Run 412 failed" in shown(new.activity)
    delivery = await harness.store.get_delivery(update)
    assert delivery is not None and delivery.state is DeliveryState.SENT
    assert await harness.store.inactive_conversations() == frozenset()
    assert not harness.teams.state.channel("ML models").posts  # nobody told to add Handoff back
    stored = await harness.store.get_card(RUN, WHERE)
    assert stored is not None and stored.message_id == new.id

    await harness.store.enqueue([card(3, "Run 412 retried: succeeded")], harness.clock.now())
    await settle(worker, harness.clock, 2)
    assert harness.teams.state.channel("App releases").posts == [old, new]  # later versions update the new one
    assert "Run 412 retried: succeeded" in shown(new.activity) and len(new.versions) == 2
    assert await harness.store.count_deliveries() == {"pending": 0, "sent": 3, "dead": 0, "unreachable": 0}


async def test_a_card_teams_refuses_to_update_and_to_post_afresh_is_given_up_alone(harness: Harness) -> None:
    worker = await outbox(harness)
    await harness.store.enqueue([card(1, "Run 412 running")], harness.clock.now())
    await settle(worker, harness.clock, 1)
    harness.teams.faults.add("PUT /v3/conversations/**", [refusal(403, "Forbidden")])
    harness.teams.faults.add("POST /v3/conversations", [refusal(403, "Forbidden", matching=RELEASES)])

    (update,) = await harness.store.enqueue([card(2, "Run 412 failed")], harness.clock.now())
    await settle(worker, harness.clock, 2)

    delivery = await harness.store.get_delivery(update)
    assert delivery is not None and delivery.state is DeliveryState.DEAD
    assert delivery.last_error == "Teams answered 403 Forbidden"
    assert await harness.store.inactive_conversations() == frozenset()
    [alert] = harness.teams.state.channel("ML models").posts  # the dead letter's alert, not "cannot post in"
    assert "could not be delivered" in shown(alert.activity) and "cannot post" not in shown(alert.activity)

    # the channel is not silenced: the next card goes there
    run413 = NewDelivery(WHERE, "run:413", {"op": "card", "rank": 1, "card": Card("Run 413").to_json()})
    await harness.store.enqueue([run413], harness.clock.now())
    await settle(worker, harness.clock, 1)
    assert "Run 413" in shown(harness.teams.state.channel("App releases").posts[-1].activity)


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (403, "BotNotInConversationRoster", ConversationUnreachable),
        (403, "ConversationBlockedByUser", ConversationUnreachable),
        (403, "Forbidden", MessageGone),
        (403, "NotEnoughPermissions", MessageGone),
    ],
)
async def test_only_handoffs_removal_or_a_block_makes_a_refused_update_unreachable(
    harness: Harness, status: int, code: str, outcome: type[Exception]
) -> None:
    await harness.teams.install_app()
    channel = harness.integration.channel
    posted = await channel.post_card(RELEASES, gate_card())
    harness.teams.faults.add("PUT /v3/conversations/**", [refusal(status, code)])

    with pytest.raises(outcome) as failed:
        await channel.update_card(RELEASES, posted, Card(title="Run 412 failed"))

    assert type(failed.value) is outcome
    assert failed.value.reason == f"Teams answered {status} {code}"  # type: ignore[attr-defined]


async def test_a_post_refused_with_a_403_of_its_own_is_not_conversation_unreachable(harness: Harness) -> None:
    await harness.teams.install_app()
    harness.teams.faults.add("POST /v3/conversations", [refusal(403, "Forbidden")])
    with pytest.raises(Exception) as failed:
        await harness.integration.channel.post_card(RELEASES, Card(title="x"))
    assert not isinstance(failed.value, ConversationUnreachable)
    assert failed.value.retryable is False  # type: ignore[attr-defined]


async def test_a_401_is_retried_past_the_usual_attempts_and_the_card_is_posted_once_teams_takes_the_credentials(
    harness: Harness,
) -> None:
    worker = await outbox(harness)
    # about 20 minutes of refusals: the usual 6 attempts (10 minutes) would have given it up
    harness.teams.faults.add("POST /v3/conversations", [refusal(401, "Unauthorized", matching=RELEASES)] * 7)

    (posted,) = await harness.store.enqueue([card(1, "Run 412 running")], harness.clock.now())
    await settle(worker, harness.clock)

    delivery = await harness.store.get_delivery(posted)
    assert delivery is not None and delivery.state is DeliveryState.SENT and delivery.attempts == 8
    [shown_card] = harness.teams.state.channel("App releases").posts
    assert "Run 412 running" in shown(shown_card.activity)
    assert not harness.teams.state.channel("ML models").posts
    assert await harness.store.inactive_conversations() == frozenset()


async def test_credentials_teams_keeps_refusing_are_told_once_in_the_log_when_the_alert_is_refused_too(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await outbox(harness)
    harness.teams.faults.add("POST /v3/conversations", [refusal(401, "Unauthorized")] * 20)

    (posted,) = await harness.store.enqueue([card(1, "Run 412 running")], harness.clock.now())
    await settle(worker, harness.clock)

    delivery = await harness.store.get_delivery(posted)
    assert delivery is not None and delivery.state is DeliveryState.DEAD and delivery.attempts == 8
    assert len(harness.teams.recorder.matching("POST /v3/conversations")) == 8 + 1  # its attempts, then the alert
    assert not harness.teams.state.channel("App releases").posts and not harness.teams.state.channel("ML models").posts
    assert await harness.store.count_deliveries() == {"pending": 0, "sent": 0, "dead": 2, "unreachable": 0}
    assert await harness.store.inactive_conversations() == frozenset()
    told = [r for r in caplog.records if r.levelno == logging.ERROR and "refuses Handoff's credentials" in r.message]
    assert len(told) == 1
    assert told[0].message.startswith("Teams refuses Handoff's credentials (Teams answered 401 Unauthorized)")
    assert "teams.app_password" in told[0].message
    assert not [r for r in caplog.records if "bearer" in r.message.lower() or BOT_APP_ID in r.message]


async def test_a_post_refused_as_the_tenants_admin_turned_handoff_off_is_given_up_saying_so_and_the_channel_stays(
    harness: Harness,
) -> None:
    worker = await outbox(harness)
    harness.teams.faults.add("POST /v3/conversations", [refusal(403, "BotDisabledByAdmin", matching=RELEASES)])

    (posted,) = await harness.store.enqueue([card(1, "Run 412 running")], harness.clock.now())
    await settle(worker, harness.clock, 1)

    delivery = await harness.store.get_delivery(posted)
    assert delivery is not None and delivery.state is DeliveryState.DEAD
    meaning = "the tenant's admin turned Handoff off in Teams"
    assert delivery.last_error == f"Teams answered 403 BotDisabledByAdmin ({meaning})"
    # turning Handoff back on sends no event that would reactivate the channel: it is not marked unreachable
    assert await harness.store.inactive_conversations() == frozenset()
    [alert] = harness.teams.state.channel("ML models").posts
    assert meaning in shown(alert.activity)
