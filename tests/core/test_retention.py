"""Retention: a pass forgets old event ids and finished deliveries, on a real store, and keeps the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.sql import SqlStore
from bot.app import add_channel, build_handoff
from bot.clock import FakeClock
from bot.config import parse_settings
from bot.records import AuditEntry, ConversationAddress, NewDelivery, ReceivedEvent
from tests.core.pipeline_runs import run_state
from tests.core.recording_channel import RecordingChannel

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
A = ConversationAddress("slack", "C0AAAAAAAA")
B = ConversationAddress("slack", "C0BBBBBBBB")


def received(key: str, at: datetime) -> ReceivedEvent:
    return ReceivedEvent(dedupe_key=key, source="azure-devops", kind="run", received_at=at, payload={})


def card_for(where: ConversationAddress, key: str) -> NewDelivery:
    return NewDelivery(conversation=where, grouping_key=key, payload={"title": key})


async def test_a_pass_forgets_what_is_past_its_retention_and_keeps_the_rest(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    try:
        handoff = build_handoff(parse_settings({"store": {"delivery_retention": "7d"}}, {}), store, FakeClock(T0))
        ten_days_ago = T0 - timedelta(days=10)
        await store.record_event(received("old", ten_days_ago), [card_for(A, "run:1"), card_for(B, "run:1")])
        sent, waiting = await store.claim_deliveries("w", ten_days_ago, timedelta(seconds=30), 10)
        await store.complete_delivery(sent.id, "w")
        await store.retry_delivery(waiting.id, "w", "slack is down", ten_days_ago + timedelta(minutes=1))
        await store.record_event(received("two days ago", T0 - timedelta(days=2)), [card_for(A, "run:2")])
        await store.record_event(received("recent", T0 - timedelta(hours=1)), [])
        await store.record_send(A, T0 - timedelta(minutes=61))  # past the platforms' longest limit window
        await store.record_send(A, T0 - timedelta(minutes=59))

        assert await handoff.forget_old_rows() == {
            "event ids": 1,
            "repeat marks": 0,
            "finished deliveries": 1,
            "send times": 1,
            "cards": 0,
            "decided gates": 0,
            "audit entries": 0,  # kept for good unless store.audit_retention says otherwise
        }
        assert [await store.has_event(k) for k in ("old", "two days ago", "recent")] == [False, True, True]
        assert await store.get_delivery(sent.id) is None
        assert await store.latest_sends(A, [(1, 3600.0), (2, 3600.0)], T0) == [T0 - timedelta(minutes=59), None]
        # a pending one is never lost
        assert await store.count_deliveries() == {"pending": 2, "sent": 0, "dead": 0, "unreachable": 0}
        assert not any((await handoff.forget_old_rows()).values())
    finally:
        await store.close()


async def test_the_audit_log_is_kept_for_as_long_as_it_is_asked_to(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    try:
        for days in (400, 364, 1):
            entry = AuditEntry(T0 - timedelta(days=days), "alice@contoso.com", "approve", f"gate g{days}", "applied")
            await store.append_audit(entry)
        forever = build_handoff(parse_settings({}, {}), store, FakeClock(T0))
        assert (await forever.forget_old_rows())["audit entries"] == 0
        a_year = build_handoff(parse_settings({"store": {"audit_retention": "365d"}}, {}), store, FakeClock(T0))
        assert (await a_year.forget_old_rows())["audit entries"] == 1
        assert [e.target for e in await store.list_audit()] == ["gate g364", "gate g1"]
    finally:
        await store.close()


async def test_a_run_whose_card_was_forgotten_gets_a_new_card_from_its_next_event(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    clock = FakeClock(T0)
    channel = RecordingChannel()
    try:
        settings = parse_settings(
            {
                "store": {"card_retention": "30d"},
                "channels": {"releases": {"slack": A.conversation_id}},
                "subscriptions": [{"channel": "releases", "events": ["run"]}],
            },
            {},
        )
        handoff = build_handoff(settings, store, clock)
        add_channel(handoff, "slack", channel)
        assert await handoff.ingest.accept(run_state("inProgress", T0))
        await handoff.outbox.drain()
        assert [call for call, _, _ in channel.calls] == ["post"]

        await clock.advance(timedelta(days=31).total_seconds())
        assert (await handoff.forget_old_rows())["cards"] == 1
        # the ingest still remembers the card's last state: the store's compare-and-set corrects it
        assert await handoff.ingest.accept(run_state("completed", T0, "succeeded"))
        await handoff.outbox.drain()
        assert [call for call, _, _ in channel.calls] == ["post", "post"]  # a new card, not an update of the old
        key = run_state("completed", T0).grouping_key
        state = (await store.get_card_states([key]))[key]
        assert state is not None and state.version == 1
        assert [c.message_id for c in await store.cards_for(key)] == ["m2"]
    finally:
        await store.close()
