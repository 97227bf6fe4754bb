"""The Store contract: every database Handoff supports must pass the same suite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adapters.sql import SqlStore
from adapters.sql.engine import SqliteEngine
from adapters.sql.tables import received_events
from bot.jsonable import as_json, tagged_json
from bot.ports import CHAT_RECEIPT_SOURCES, EventRecord, StaleWrite
from bot.records import (
    CONFIRMATION_KEY_PREFIX,
    AuditEntry,
    CardState,
    CommandRun,
    CommandRunState,
    ConversationAddress,
    ConversationRecord,
    DeliveryState,
    Gate,
    GateDecision,
    GateState,
    NewDelivery,
    PostedCard,
    ReceivedEvent,
    RepeatMark,
    StoredSubscription,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SLACK = ConversationAddress("slack", "C0MLMODELS")
TEAMS = ConversationAddress("teams", "19:appreleases@thread.tacv2")


def event(key: str, at: datetime = NOW) -> ReceivedEvent:
    return ReceivedEvent(dedupe_key=key, source="azure-devops", kind="run", received_at=at, payload={"k": key})


def delivery(key: str, where: ConversationAddress = SLACK) -> NewDelivery:
    return NewDelivery(conversation=where, grouping_key=key, payload={"title": key})


async def test_is_ready_after_migration(store: SqlStore) -> None:
    assert await store.is_ready()


async def test_event_and_deliveries_are_stored_once(store: SqlStore) -> None:
    assert await store.record_event(event("e1"), [delivery("run:1"), delivery("run:1", TEAMS)])
    assert not await store.record_event(event("e1"), [delivery("run:1")])
    assert await store.has_event("e1")
    assert await store.count_deliveries() == {"pending": 2, "sent": 0, "dead": 0, "unreachable": 0}


async def test_an_event_payload_serialized_once_is_stored_as_the_same_json(store: SqlStore) -> None:
    received = ReceivedEvent("e7", "azure-devops", "run", NOW, tagged_json(event("inner")))
    assert await store.record_events([EventRecord(received)])
    async with store.engine.connect() as conn:
        payload = (await conn.execute(select(received_events.c.payload))).scalar_one()
    assert payload == {"type": "ReceivedEvent", **as_json(event("inner"))}
    assert payload["payload"] == {"k": "inner"}


async def test_concurrent_redelivery_records_one_event(store: SqlStore) -> None:
    results = await asyncio.gather(*(store.record_event(event("same"), [delivery("run:9")]) for _ in range(10)))
    assert results.count(True) == 1
    assert (await store.count_deliveries())["pending"] == 1


async def test_forgetting_old_events_allows_them_again(store: SqlStore) -> None:
    await store.record_event(event("old", NOW - timedelta(hours=80)), [])
    await store.record_event(event("new", NOW - timedelta(hours=1)), [])
    assert await store.forget_events_before(NOW - timedelta(hours=72)) == 1
    assert not await store.has_event("old")
    assert await store.has_event("new")


async def test_recent_events_are_the_newest_first(store: SqlStore) -> None:
    assert await store.recent_events(10) == []
    for hours, key in ((5, "a"), (1, "c"), (3, "b")):
        await store.record_event(event(key, NOW - timedelta(hours=hours)), [])
    await store.record_event(event("d", NOW - timedelta(hours=1)), [])  # received with c: the later one first
    await store.record_events([EventRecord(ReceivedEvent("e", "azure-ml", "model", NOW, tagged_json(event("x"))))])
    recent = await store.recent_events(4)
    assert [r.dedupe_key for r in recent] == ["e", "d", "c", "b"]
    assert recent[0].payload == {"type": "ReceivedEvent", **as_json(event("x"))} and recent[0].received_at == NOW
    assert (recent[1].source, recent[1].kind, recent[1].payload) == ("azure-devops", "run", {"k": "d"})
    assert [r.dedupe_key for r in await store.recent_events(100)] == ["e", "d", "c", "b", "a"]
    # what the chat platforms send again is remembered in the same log, but is no service's event
    for source in CHAT_RECEIPT_SOURCES:
        assert await store.record_event(ReceivedEvent(f"{source}:event:1", source, "message", NOW), [])
    assert [r.dedupe_key for r in await store.recent_events(2)] == ["e", "d"]


async def test_claims_are_exclusive_and_leased(store: SqlStore) -> None:
    conversations = [ConversationAddress("slack", f"C{i}") for i in range(6)]
    await store.record_event(event("e"), [delivery(f"run:{i}", c) for i, c in enumerate(conversations)])
    lease = timedelta(seconds=30)
    first, second = await asyncio.gather(
        store.claim_deliveries("w1", NOW, lease, 4), store.claim_deliveries("w2", NOW, lease, 4)
    )
    ids = [d.id for d in first] + [d.id for d in second]
    assert len(ids) == len(set(ids)) == 6
    assert all(d.attempts == 1 for d in first + second)
    # leased deliveries are not handed out again until the lease runs out
    assert await store.claim_deliveries("w3", NOW + timedelta(seconds=10), lease, 10) == []
    again = await store.claim_deliveries("w3", NOW + timedelta(seconds=31), lease, 10)
    assert sorted(d.id for d in again) == sorted(ids)
    assert all(d.attempts == 2 for d in again)


async def test_complete_retry_dead_letter_and_unreachable(store: SqlStore) -> None:
    where = [ConversationAddress("slack", name) for name in ("CA", "CB", "CC", "CD")]
    await store.record_event(event("e"), [delivery(k, c) for k, c in zip("abcd", where, strict=True)])
    a, b, c, d = await store.claim_deliveries("w", NOW, timedelta(seconds=30), 10)
    assert not await store.complete_delivery(a.id, "someone-else")
    assert await store.complete_delivery(a.id, "w")
    assert await store.retry_delivery(b.id, "w", "429 Too Many Requests", NOW + timedelta(seconds=5))
    assert await store.dead_letter_delivery(c.id, "w", "400 invalid_blocks")
    assert not await store.unreachable_delivery(d.id, "someone-else", "chat.postMessage: channel_not_found")
    assert await store.unreachable_delivery(d.id, "w", "chat.postMessage: channel_not_found")
    assert (await store.get_delivery(a.id)).state is DeliveryState.SENT  # type: ignore[union-attr]
    unreachable = await store.get_delivery(d.id)
    assert unreachable is not None and unreachable.state is DeliveryState.UNREACHABLE
    assert unreachable.last_error == "chat.postMessage: channel_not_found" and unreachable.claimed_by is None
    retried = await store.get_delivery(b.id)
    assert retried is not None and retried.last_error == "429 Too Many Requests"
    assert await store.claim_deliveries("w", NOW + timedelta(seconds=4), timedelta(seconds=30), 10) == []
    due = await store.claim_deliveries("w", NOW + timedelta(seconds=5), timedelta(seconds=30), 10)
    assert [d.id for d in due] == [b.id]
    assert await store.count_deliveries() == {"pending": 1, "sent": 1, "dead": 1, "unreachable": 1}
    assert await store.count_deliveries([DeliveryState.DEAD, DeliveryState.PENDING]) == {"dead": 1, "pending": 1}
    assert await store.count_deliveries([DeliveryState.UNREACHABLE]) == {"unreachable": 1}


async def test_dead_letters_are_counted_per_conversation_since_a_time(store: SqlStore) -> None:
    other = ConversationAddress("slack", "C0OTHER")

    async def give_up(at: datetime) -> None:
        """Claim and give up every delivery due at ``at`` (one per conversation at a time)."""
        while claimed := await store.claim_deliveries("w", at, timedelta(seconds=30), 10):
            for given_up in claimed:
                if given_up.grouping_key == "gone":  # the channel was archived: no dead letter
                    await store.unreachable_delivery(given_up.id, "w", "chat.postMessage: is_archived")
                    continue
                too_long = given_up.grouping_key == "e"
                reason = "chat.update: msg_too_long" if too_long else "chat.postMessage: not_in_channel"
                await store.dead_letter_delivery(given_up.id, "w", reason)

    await store.record_event(event("yesterday", NOW - timedelta(days=1)), [delivery("a"), delivery("b")])
    await give_up(NOW - timedelta(days=1))
    await store.record_event(event("today"), [delivery(k) for k in ("c", "d", "gone", "e")] + [delivery("f", other)])
    await give_up(NOW)
    since = NOW - timedelta(hours=1)
    assert await store.count_dead_letters(SLACK, since) == 3  # whatever the reason, but not the unreachable one
    assert await store.count_dead_letters(other, since) == 1
    assert await store.count_dead_letters(SLACK, since - timedelta(days=1)) == 5


async def test_forgetting_finished_deliveries_keeps_pending_and_recent_ones(store: SqlStore) -> None:
    long_ago = NOW - timedelta(days=20)
    where = [ConversationAddress("slack", name) for name in ("CA", "CB", "CC", "CD", "CE")]
    await store.record_event(event("old", long_ago), [delivery(k, c) for k, c in zip("abcdf", where, strict=True)])
    a, b, c, _, f = await store.claim_deliveries("w", long_ago, timedelta(seconds=30), 10)
    await store.complete_delivery(a.id, "w")
    await store.retry_delivery(b.id, "w", "503", long_ago + timedelta(seconds=5))
    await store.dead_letter_delivery(c.id, "w", "400 invalid_blocks")
    await store.unreachable_delivery(f.id, "w", "chat.postMessage: channel_not_found")
    await store.record_event(event("new", NOW - timedelta(days=1)), [delivery("e", SLACK)])
    claimed = await store.claim_deliveries("w", NOW, timedelta(seconds=30), 10)
    recent = next(d for d in claimed if d.grouping_key == "e")
    await store.complete_delivery(recent.id, "w")

    assert await store.forget_deliveries_before(NOW - timedelta(days=14)) == 3
    assert await store.get_delivery(a.id) is None and await store.get_delivery(c.id) is None
    assert await store.get_delivery(f.id) is None
    assert await store.count_deliveries() == {"pending": 2, "sent": 1, "dead": 0, "unreachable": 0}
    assert await store.forget_deliveries_before(NOW - timedelta(days=14)) == 0


async def test_the_latest_sends_are_found_per_window_and_per_conversation(store: SqlStore) -> None:
    teams = ConversationAddress("teams", SLACK.conversation_id)  # another platform's conversation of that id
    for n in range(5):
        await store.record_send(SLACK, NOW + timedelta(seconds=0.3 * n))  # 0, 0.3, 0.6, 0.9, 1.2 s
    await store.record_send(teams, NOW + timedelta(seconds=1.25))
    windows = [(1, 1.0), (3, 1.0), (4, 1.0), (5, 2.0)]
    at = NOW + timedelta(seconds=1.3)  # the last second holds the sends at 0.6, 0.9 and 1.2 s
    assert await store.latest_sends(SLACK, windows, at) == [
        NOW + timedelta(seconds=1.2),
        NOW + timedelta(seconds=0.6),
        None,  # only three were sent in the last second
        NOW,
    ]
    assert await store.latest_sends(teams, windows, at) == [NOW + timedelta(seconds=1.25), None, None, None]
    assert await store.latest_sends(ConversationAddress("slack", "C0OTHER"), windows, at) == [None] * 4
    assert await store.forget_sends_before(NOW + timedelta(seconds=1)) == 4
    assert await store.latest_sends(SLACK, [(1, 60.0), (2, 60.0)], at) == [NOW + timedelta(seconds=1.2), None]


async def test_forgetting_old_cards_keeps_those_still_on_their_way_or_waiting(store: SqlStore) -> None:
    long_ago = NOW - timedelta(days=100)
    shown = [delivery("run:1"), delivery("run:1", TEAMS)]
    await store.record_event(event("a", long_ago), shown, CardState("run:1", 1, {"state": "completed"}))
    for claimed in await store.claim_deliveries("w", long_ago, timedelta(seconds=30), 10):
        await store.complete_delivery(claimed.id, "w")
    await store.save_card(PostedCard("run:1", SLACK, message_id="1700000000.000100"))
    await store.save_card(PostedCard("run:1", TEAMS, message_id="1:abc"))
    # an update still on its way, a gate still waiting for a decision, a card updated yesterday
    await store.record_event(event("b", long_ago), [delivery("run:2", TEAMS)], CardState("run:2", 1, {"s": "x"}))
    assert await store.create_gate(gate("ado:approval:9"))
    await store.record_event(event("c", long_ago), [], CardState("ado:approval:9", 1, {"state": "waiting"}))
    await store.record_event(event("d", NOW - timedelta(days=1)), [], CardState("run:3", 1, {"state": "running"}))
    await store.save_card(PostedCard("run:3", SLACK, message_id="1700000000.000300"))

    assert await store.forget_cards_before(NOW - timedelta(days=90)) == 1
    states = await store.get_card_states(["run:1", "run:2", "ado:approval:9", "run:3"])
    assert {key for key, state in states.items() if state is not None} == {"run:2", "ado:approval:9", "run:3"}
    assert await store.cards_for("run:1") == []
    assert [c.message_id for c in await store.cards_for("run:3")] == ["1700000000.000300"]
    assert await store.forget_cards_before(NOW - timedelta(days=90)) == 0


async def test_forgetting_old_cards_keeps_every_card_a_waiting_gate_belongs_to(store: SqlStore) -> None:
    long_ago = NOW - timedelta(days=100)
    run_waiting, run_decided = "azure-devops:contoso:mlops:run:7", "azure-devops:contoso:mlops:run:8"
    model_waiting, model_decided = "azure-ml:ws:model:model-x:7", "azure-ml:ws:model:model-x:6"
    gates = {
        # a YAML approval: its own card, and the card of the run it waits in (which its run's events update)
        "azure-devops:contoso:pipeline-approval:a7": {"approval_kind": "pipeline", "run_key": run_waiting},
        "azure-devops:contoso:pipeline-approval:a8": {"approval_kind": "pipeline", "run_key": run_decided},
        # a classic release approval: it has no run, and its card is its own
        "azure-devops:contoso:release-approval:r1": {"approval_kind": "release", "run_key": ""},
        # Handoff's promotion gates: their own cards, the model version's card and its apps' cards
        "handoff:promotion:model-x:7": {"model_card_key": model_waiting, "apps": {"app-y": {}}},
        "handoff:promotion:model-x:6": {"model_card_key": model_decided, "apps": {"app-y": {}}},
    }
    for gate_id, details in gates.items():
        assert await store.create_gate(replace(gate(gate_id), created_at=long_ago, details=details))
    for decided in ("azure-devops:contoso:pipeline-approval:a8", "handoff:promotion:model-x:6"):
        assert await store.update_gate(decided, 1, GateState.APPROVED, decided_at=long_ago)
    states = {
        **{gate_id: {"state": "waiting"} for gate_id in gates},
        run_waiting: {"type": "run", "state": "waiting"},
        run_decided: {"type": "run", "state": "waiting"},
        model_waiting: {"handoff": {}},
        model_decided: {"handoff": {}},
        "handoff:model:model-x:7:app:app-y": {"type": "app_handoff", "model_card_key": model_waiting},
        "handoff:model:model-x:6:app:app-y": {"type": "app_handoff", "model_card_key": model_decided},
        "azure-devops:contoso:release:1:production": {"state": "succeeded"},
    }
    for n, (key, state) in enumerate(states.items()):
        await store.record_event(event(f"e{n}", long_ago), [], CardState(key, 1, state))
    await store.save_card(PostedCard(run_waiting, SLACK, message_id="1700000000.000700"))

    forgotten = {
        "azure-devops:contoso:pipeline-approval:a8",
        "handoff:promotion:model-x:6",
        run_decided,
        model_decided,
        "handoff:model:model-x:6:app:app-y",
        "azure-devops:contoso:release:1:production",
    }
    assert await store.forget_cards_before(NOW - timedelta(days=90)) == len(forgotten)
    kept = await store.get_card_states(list(states))
    assert {key for key, state in kept.items() if state is not None} == set(states) - forgotten
    assert [c.message_id for c in await store.cards_for(run_waiting)] == ["1700000000.000700"]
    assert await store.forget_cards_before(NOW - timedelta(days=90)) == 0


async def test_forgetting_decided_gates_keeps_waiting_and_recent_ones(store: SqlStore) -> None:
    long_ago = NOW - timedelta(days=100)
    for gate_id in ("old", "recent", "waiting"):
        assert await store.create_gate(replace(gate(gate_id), created_at=long_ago))
    decision = GateDecision("old", "carol@contoso.com", "slack", "approve", long_ago, "")
    assert await store.update_gate("old", 1, GateState.APPROVED, decision=decision, decided_at=long_ago)
    assert await store.update_gate("recent", 1, GateState.EXPIRED, decided_at=NOW - timedelta(days=1))

    assert await store.forget_gates_decided_before(NOW - timedelta(days=90)) == 1
    assert await store.get_gate("old") is None and await store.gate_decisions("old") == []
    assert {g.gate_id for g in await store.list_gates()} == {"recent", "waiting"}
    assert await store.forget_gates_decided_before(NOW - timedelta(days=90)) == 0


async def test_enqueue_without_an_event(store: SqlStore) -> None:
    ids = await store.enqueue([delivery("reply:1"), delivery("reply:2")], NOW)
    assert len(ids) == 2
    claimed = await store.claim_deliveries("w", NOW, timedelta(seconds=5), 10)
    assert [d.payload for d in claimed] == [{"title": "reply:1"}]
    assert claimed[0].event_key is None
    await store.complete_delivery(claimed[0].id, "w")
    claimed = await store.claim_deliveries("w", NOW, timedelta(seconds=5), 10)
    assert [d.payload for d in claimed] == [{"title": "reply:2"}]


async def test_cards_upsert_per_conversation(store: SqlStore) -> None:
    card = PostedCard("run:1", SLACK, message_id="1700000000.000100", rank=1, content={"s": "running"})
    await store.save_card(card)
    await store.save_card(PostedCard("run:1", TEAMS, message_id="1:abc", thread_id="19:x;messageid=1"))
    await store.save_card(PostedCard("run:1", SLACK, message_id="1700000000.000100", rank=3, content={"s": "done"}))
    found = await store.get_card("run:1", SLACK)
    assert found is not None and found.rank == 3 and found.content == {"s": "done"}
    assert found.first_rank == 1  # the version first posted there is kept
    await store.save_card(PostedCard("run:4", SLACK, message_id="1700000000.000400", rank=4, first_rank=2))
    again = await store.get_card("run:4", SLACK)
    assert again is not None and (again.rank, again.first_rank) == (4, 2)
    assert {c.conversation for c in await store.cards_for("run:1")} == {SLACK, TEAMS}
    assert await store.get_card("run:2", SLACK) is None


def gate(gate_id: str = "ado:approval:1") -> Gate:
    return Gate(
        gate_id=gate_id,
        source="azure-devops",
        external_id="1",
        title="Release app-y to production",
        state=GateState.PENDING,
        version=1,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=72),
        policy={"min_approvers": 1},
    )


async def test_gate_compare_and_set(store: SqlStore) -> None:
    assert await store.create_gate(gate())
    assert not await store.create_gate(gate())
    decision = GateDecision("ado:approval:1", "carol@contoso.com", "slack", "approve", NOW, "looks good")
    updated = await store.update_gate("ado:approval:1", 1, GateState.APPROVED, decision=decision, decided_at=NOW)
    assert updated is not None and updated.state is GateState.APPROVED and updated.version == 2
    stale = GateDecision("ado:approval:1", "bob@contoso.com", "teams", "reject", NOW, "no")
    assert await store.update_gate("ado:approval:1", 1, GateState.REJECTED, decision=stale) is None
    assert await store.gate_decisions("ado:approval:1") == [decision]
    current = await store.get_gate("ado:approval:1")
    assert current is not None and current.state is GateState.APPROVED and current.decided_at == NOW


async def test_a_reopened_gate_waits_again_without_the_withdrawn_decision(store: SqlStore) -> None:
    await store.create_gate(replace(gate("g"), policy={"min_approvers": 2}))
    dave = GateDecision("g", "dave@contoso.com", "slack", "approve", NOW)
    carol = GateDecision("g", "carol@contoso.com", "teams", "approve", NOW + timedelta(seconds=1))
    assert await store.update_gate("g", 1, GateState.PENDING, decision=dave)
    assert await store.update_gate("g", 2, GateState.APPROVED, decision=carol, decided_at=NOW)
    assert await store.reopen_gate("g", 2, {"refused": "stale"}, carol) is None  # another change won
    reopened = await store.reopen_gate("g", 3, {"refused": carol.actor}, carol)
    assert reopened is not None and (reopened.state, reopened.version) == (GateState.PENDING, 4)
    assert reopened.decided_at is None and reopened.details == {"refused": carol.actor}
    assert await store.gate_decisions("g") == [dave]
    assert await store.get_gate("g") == reopened


async def test_concurrent_decisions_one_winner(store: SqlStore) -> None:
    await store.create_gate(gate("g"))

    async def decide(i: int) -> bool:
        d = GateDecision("g", f"user{i}@contoso.com", "slack", "approve" if i % 2 else "reject", NOW)
        state = GateState.APPROVED if i % 2 else GateState.REJECTED
        return await store.update_gate("g", 1, state, decision=d) is not None

    results = await asyncio.gather(*(decide(i) for i in range(20)))
    assert results.count(True) == 1
    assert len(await store.gate_decisions("g")) == 1
    assert [g.gate_id for g in await store.list_gates(GateState.PENDING)] == []


async def test_audit_is_append_only_and_ordered(store: SqlStore) -> None:
    for i in range(3):
        await store.append_audit(
            AuditEntry(NOW + timedelta(minutes=i), f"user{i}", "approve", "gate g", "applied", "slack", "C1", "ok")
        )
    entries = await store.list_audit()
    assert [e.actor for e in entries] == ["user0", "user1", "user2"]
    assert [e.actor for e in await store.list_audit(since=NOW + timedelta(minutes=1))] == ["user1", "user2"]


async def test_text_with_a_nul_character_is_stored_without_it(store: SqlStore) -> None:
    # PostgreSQL cannot store NUL in text: a comment typed in chat, a title from a payload
    assert await store.create_gate(replace(gate("g"), external_id="1\u00002", title="Release\u0000 app-y"))
    said = GateDecision("g", "carol\u0000@contoso.com", "slack", "reject", NOW, "not\u0000 yet")
    assert await store.update_gate("g", 1, GateState.REJECTED, decision=said, decided_at=NOW)
    stored = await store.get_gate("g")
    assert stored is not None and (stored.external_id, stored.title) == ("12", "Release app-y")
    assert await store.gate_decisions("g") == [replace(said, actor="carol@contoso.com", comment="not yet")]
    await store.append_audit(
        AuditEntry(NOW, "carol\u0000", "reject", "gate\u0000 g", "applied\u0000", "slack", "C1\u0000", "no\u0000")
    )
    [entry] = await store.list_audit()
    assert (entry.actor, entry.target, entry.outcome, entry.conversation, entry.comment) == (
        "carol",
        "gate g",
        "applied",
        "C1",
        "no",
    )


async def test_subscriptions(store: SqlStore) -> None:
    sid, added = await store.add_subscription(StoredSubscription(SLACK, {"events": ["run"]}, "alice", NOW))
    assert added
    await store.add_subscription(StoredSubscription(TEAMS, {"events": ["approval"]}, "bob", NOW))
    assert [s.filters for s in await store.list_subscriptions(SLACK)] == [{"events": ["run"]}]
    assert await store.mute_subscription(sid, NOW + timedelta(hours=1))
    assert (await store.list_subscriptions(SLACK))[0].muted_until == NOW + timedelta(hours=1)
    assert await store.remove_subscription(sid)
    assert not await store.remove_subscription(sid)
    assert len(await store.list_subscriptions()) == 1


async def test_a_removed_subscription_id_is_never_given_to_another(store: SqlStore) -> None:
    """Chat and the audit log name subscriptions by id: a stale `unsubscribe 2` must not remove a newer one."""
    kept, _ = await store.add_subscription(StoredSubscription(SLACK, {"events": ["run"]}, "alice", NOW))
    newest, _ = await store.add_subscription(StoredSubscription(SLACK, {"events": ["approval"]}, "alice", NOW))
    assert await store.remove_subscription(newest)
    made, added = await store.add_subscription(StoredSubscription(TEAMS, {"events": ["stage"]}, "bob", NOW))
    assert added and made not in (kept, newest)
    assert not await store.remove_subscription(newest)
    assert [s.id for s in await store.list_subscriptions()] == [kept, made]


async def test_the_same_subscription_stored_at_once_by_several_replicas_is_stored_once(store_url: str) -> None:
    """Two replicas (or a double click) store the same subscription at the same moment: one is added, the others
    are told its id; the same filters elsewhere, or other filters here, are other subscriptions."""
    replicas = [await SqlStore.open(store_url) for _ in range(4)]
    try:
        same: list[dict[str, Any]] = [
            {"events": ["run", "approval"], "branches": []},
            {"events": ["approval", "run"], "mentions": None},
        ]

        async def subscribe(i: int) -> tuple[int, bool]:
            made = StoredSubscription(SLACK, same[i % 2], f"person{i}", NOW)
            return await replicas[i % len(replicas)].add_subscription(made)

        answers = await asyncio.gather(*(subscribe(i) for i in range(12)))
        assert [added for _, added in answers].count(True) == 1
        [(kept, _)] = [a for a in answers if a[1]]
        assert {sid for sid, _ in answers} == {kept}
        assert [s.id for s in await replicas[0].list_subscriptions(SLACK)] == [kept]

        elsewhere, added_elsewhere = await replicas[1].add_subscription(StoredSubscription(TEAMS, same[0], "bob", NOW))
        other, added_other = await replicas[2].add_subscription(
            StoredSubscription(SLACK, {"events": ["run"]}, "b", NOW)
        )
        assert added_elsewhere and added_other and len({kept, elsewhere, other}) == 3
        # once it is gone, it can be made again
        assert await replicas[3].remove_subscription(kept)
        again, added_again = await replicas[0].add_subscription(StoredSubscription(SLACK, same[1], "carol", NOW))
        assert added_again and again != kept
    finally:
        for replica in replicas:
            await replica.close()


async def test_conversations_upsert_and_deactivate(store: SqlStore) -> None:
    ref = {"conversation": {"id": TEAMS.conversation_id}, "serviceUrl": "http://127.0.0.1/"}
    await store.save_conversation(ConversationRecord(TEAMS, "App releases", "tenant-1", "team-1", ref, True, NOW))
    await store.save_conversation(ConversationRecord(TEAMS, "App releases (renamed)", "tenant-1", "team-1", ref))
    found = await store.get_conversation(TEAMS)
    assert found is not None and found.name == "App releases (renamed)" and found.tenant_id == "tenant-1"
    assert await store.deactivate_conversation(TEAMS)
    assert not await store.deactivate_conversation(TEAMS)
    assert await store.list_conversations() == []
    assert len(await store.list_conversations(active_only=False)) == 1
    assert await store.inactive_conversations() == {TEAMS}
    await store.save_conversation(ConversationRecord(TEAMS, "App releases", "tenant-1", "team-1", ref))  # back
    assert await store.inactive_conversations() == frozenset()


def command(at: datetime) -> CommandRun:
    return CommandRun(
        idempotency_key="alice:retrain:model-x",
        actor="alice@contoso.com",
        platform="slack",
        conversation="C0MLMODELS",
        command="retrain model-x",
        target="model-x",
        state=CommandRunState.REQUESTED,
        created_at=at,
    )


async def test_command_runs_dedupe_within_window(store: SqlStore) -> None:
    window = timedelta(minutes=10)
    results = await asyncio.gather(*(store.start_command_run(command(NOW), window) for _ in range(8)))
    assert [new for _, new in results].count(True) == 1
    assert len({run.id for run, _ in results}) == 1
    first = results[0][0]
    assert first.id is not None
    assert await store.update_command_run(
        first.id, CommandRunState.STARTED, NOW, backend_run_id="job-1", expected=CommandRunState.REQUESTED
    )
    later, new = await store.start_command_run(command(NOW + timedelta(minutes=11)), window)
    assert new and later.id != first.id
    kept = await store.get_command_run(first.id)
    assert kept is not None and kept.backend_run_id == "job-1" and kept.state is CommandRunState.STARTED


@pytest.mark.parametrize("ending", [s for s in CommandRunState if s.ended])
async def test_a_command_run_counts_until_it_ends_when_asked_so(store: SqlStore, ending: CommandRunState) -> None:
    window = timedelta(minutes=10)
    first, new = await store.start_command_run(command(NOW), window, until_ended=True)
    assert new and first.id is not None
    for before, state in (
        (CommandRunState.REQUESTED, CommandRunState.REQUESTED),
        (CommandRunState.REQUESTED, CommandRunState.STARTED),
    ):  # still starting, then running
        assert await store.update_command_run(first.id, state, NOW, backend_run_id="job-1", expected=before)
        again, new = await store.start_command_run(command(NOW + timedelta(minutes=1)), window, until_ended=True)
        assert not new and again.id == first.id and again.state is state
    assert await store.update_command_run(
        first.id, ending, NOW + timedelta(minutes=2), expected=CommandRunState.STARTED
    )
    # ended within the window: two identical requests at once record exactly one new run
    results = await asyncio.gather(
        *(store.start_command_run(command(NOW + timedelta(minutes=3)), window, until_ended=True) for _ in range(8))
    )
    assert [new for _, new in results].count(True) == 1
    assert len({run.id for run, _ in results}) == 1
    second = results[0][0]
    assert second.id != first.id and second.state is CommandRunState.REQUESTED
    kept = await store.get_command_run(first.id)
    assert kept is not None and kept.state is ending and kept.backend_run_id == "job-1"
    # without until_ended, an ended run still counts for its window (a model version's integration runs once)
    assert await store.update_command_run(
        second.id or 0, ending, NOW + timedelta(minutes=4), expected=CommandRunState.REQUESTED
    )
    held, new = await store.start_command_run(command(NOW + timedelta(minutes=5)), window)
    assert not new and held.id == second.id


async def test_a_command_runs_state_changes_by_compare_and_set_across_replicas(store_url: str) -> None:
    """Two replicas' sweeps and a late writer change one run at once: of the changes from the state each saw,
    one is made; a writer that saw the run before it started never takes an ended run back to running."""
    replicas = [await SqlStore.open(store_url) for _ in range(2)]
    try:
        first, second = replicas
        run, _ = await first.start_command_run(command(NOW), timedelta(minutes=10))
        assert run.id is not None
        assert await first.update_command_run(
            run.id, CommandRunState.STARTED, NOW, backend_run_id="job-1", expected=CommandRunState.REQUESTED
        )
        later = NOW + timedelta(minutes=1)
        endings = [CommandRunState.SUCCEEDED, CommandRunState.FAILED, CommandRunState.CANCELED] * 4
        changes = [
            (replicas[n % 2], state, CommandRunState.STARTED, {"by": f"sweep {n}"}) for n, state in enumerate(endings)
        ]
        # writers that read the run while it was still starting
        changes += [
            (replicas[n % 2], CommandRunState.STARTED, CommandRunState.REQUESTED, {"by": "stale"}) for n in range(6)
        ]
        made = await asyncio.gather(
            *(
                replica.update_command_run(run.id, state, later, details=details, expected=expected)
                for replica, state, expected, details in changes
            )
        )
        [(_, won_state, _, won_details)] = [change for change, was_made in zip(changes, made, strict=True) if was_made]
        kept = await second.get_command_run(run.id)
        assert kept is not None and (kept.state, kept.details) == (won_state, won_details)
        assert won_state.ended and kept.backend_run_id == "job-1"
        # a writer that saw the run running changes nothing once it ended
        assert not await second.update_command_run(
            run.id, CommandRunState.STARTED, later, expected=CommandRunState.STARTED
        )
        assert not await first.update_command_run(
            run.id + 1000, CommandRunState.FAILED, later, expected=CommandRunState.STARTED
        )
        assert (await first.get_command_run(run.id)) == kept
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_confirmation_becomes_its_run_once_under_its_own_number(store: SqlStore) -> None:
    window = timedelta(minutes=10)

    async def confirmation(n: int) -> CommandRun:
        asked = replace(command(NOW), idempotency_key=f"{CONFIRMATION_KEY_PREFIX}alice:retrain model-x:{n}")
        pending, new = await store.start_command_run(asked, timedelta(0))
        assert new and pending.id is not None
        return pending

    first = await confirmation(1)
    run = replace(command(NOW + timedelta(minutes=2)), details={"summary": "Retrain model-x"})
    # a double click, on two replicas: one makes the run, the others change nothing
    results = await asyncio.gather(
        *(store.confirm_command_run(first.id or 0, run, window, until_ended=True) for _ in range(8))
    )
    assert [new for _, new in results].count(True) == 1
    assert all(found is None for found, new in results if not new)
    [became] = [found for found, new in results if new]
    assert became is not None and became.id == first.id
    assert (became.idempotency_key, became.created_at, became.details) == (
        run.idempotency_key,
        run.created_at,
        run.details,
    )
    assert [r.id for r in await store.list_command_runs()] == [first.id]
    assert [r.id for r in await store.unfinished_command_runs(NOW)] == [first.id]
    # another confirmation of the same command while that run counts is closed, naming it
    second = await confirmation(2)
    held, new = await store.confirm_command_run(second.id or 0, run, window, until_ended=True)
    assert not new and held is not None and held.id == first.id
    closed = await store.get_command_run(second.id or 0)
    assert closed is not None and closed.state is CommandRunState.CANCELED and closed.details["same_as"] == first.id
    assert await store.confirm_command_run(second.id or 0, run, window, until_ended=True) == (None, False)
    # once the run has ended, two confirmations of the same command at once make one new run
    assert await store.update_command_run(
        first.id or 0, CommandRunState.SUCCEEDED, NOW + timedelta(minutes=3), expected=CommandRunState.REQUESTED
    )
    later = replace(run, created_at=NOW + timedelta(minutes=4))
    third, fourth = await confirmation(3), await confirmation(4)
    both = await asyncio.gather(
        *(store.confirm_command_run(c.id or 0, later, window, until_ended=True) for c in (third, fourth))
    )
    assert [new for _, new in both].count(True) == 1
    assert {found.id for found, _ in both if found is not None} <= {third.id, fourth.id}
    assert len([r for r in await store.list_command_runs()]) == 2
    kept = await store.get_command_run(first.id or 0)
    assert kept is not None and kept.state is CommandRunState.SUCCEEDED


async def test_recent_command_runs_newest_first_by_target_without_confirmations(store: SqlStore) -> None:
    def run(key: str, target: str, minutes: int, command: str = "") -> CommandRun:
        return CommandRun(
            idempotency_key=key,
            actor="alice@contoso.com",
            platform="slack",
            conversation="C0MLMODELS",
            command=command or f"retrain {target}",
            target=target,
            state=CommandRunState.REQUESTED,
            created_at=NOW + timedelta(minutes=minutes),
            details={"service": "azure-ml", "url": f"https://ml.azure.com/runs/{key}"},
        )

    assert await store.list_command_runs() == []
    for minutes in range(4):
        await store.start_command_run(run(f"alice:retrain model-x:{minutes}", "model-x", minutes), timedelta(0))
    await store.start_command_run(run("bob:integrate app-y", "app-y", 10), timedelta(0))
    await store.start_command_run(run("confirm:alice:retrain model-x:1", "model-x", 20), timedelta(0))

    newest = await store.list_command_runs(limit=3)
    assert [r.idempotency_key for r in newest] == [
        "bob:integrate app-y",
        "alice:retrain model-x:3",
        "alice:retrain model-x:2",
    ]
    assert newest[0].details["url"] == "https://ml.azure.com/runs/bob:integrate app-y"
    of_model = await store.list_command_runs("model-x", limit=10)
    assert [r.created_at for r in of_model] == sorted((r.created_at for r in of_model), reverse=True)
    assert len(of_model) == 4 and all(r.target == "model-x" for r in of_model)
    assert not any(r.idempotency_key.startswith("confirm:") for r in of_model)
    assert await store.list_command_runs("model-z") == []
    # a model's runs include the integrations against its versions (and not those of a model-x2)
    against = run("handoff:model-x:8:app-y", "app-y", 30, "integrate app-y model=model-x:8")
    await store.start_command_run(against, timedelta(0))
    await store.start_command_run(run("x2", "app-y", 31, "integrate app-y model=model-x2:1"), timedelta(0))
    assert [r.idempotency_key for r in await store.list_command_runs("model-x", limit=2)] == [
        "handoff:model-x:8:app-y",
        "alice:retrain model-x:3",
    ]
    assert len(await store.list_command_runs("app-y")) == 3


async def test_unfinished_command_runs_are_the_requested_and_started_ones_oldest_first(store: SqlStore) -> None:
    def run(key: str, minutes: int) -> CommandRun:
        return CommandRun(
            idempotency_key=key,
            actor="alice@contoso.com",
            platform="slack",
            conversation="C0MLMODELS",
            command=f"retrain {key}",
            target="model-x",
            state=CommandRunState.REQUESTED,
            created_at=NOW + timedelta(minutes=minutes),
        )

    ids: dict[str, int] = {}
    for minutes, key in enumerate(["too old", "requested", "started", "succeeded", "failed", "confirm:asked"]):
        stored, _ = await store.start_command_run(run(key, minutes), timedelta(0))
        assert stored.id is not None
        ids[key] = stored.id
    await store.update_command_run(
        ids["started"], CommandRunState.STARTED, NOW, backend_run_id="job-2", expected=CommandRunState.REQUESTED
    )
    await store.update_command_run(ids["succeeded"], CommandRunState.SUCCEEDED, NOW, expected=CommandRunState.REQUESTED)
    await store.update_command_run(ids["failed"], CommandRunState.FAILED, NOW, expected=CommandRunState.REQUESTED)

    unfinished = await store.unfinished_command_runs(NOW)
    assert [(r.idempotency_key, r.state, r.backend_run_id) for r in unfinished] == [
        ("requested", CommandRunState.REQUESTED, None),
        ("started", CommandRunState.STARTED, "job-2"),
    ]
    assert await store.unfinished_command_runs(NOW + timedelta(minutes=10)) == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_sqlite_file_survives_reopen(store_url: str) -> None:
    first = await SqlStore.open(store_url)
    await first.record_event(event("kept"), [delivery("x")])
    await first.close()
    second = await SqlStore.open(store_url)
    try:
        assert await second.has_event("kept")
        assert await second.is_ready()
    finally:
        await second.close()


async def test_not_ready_before_migration(store_url: str) -> None:
    unmigrated = await SqlStore.open(store_url, migrate=False)
    try:
        assert not await unmigrated.is_ready()
        await unmigrated.migrate()
        assert await unmigrated.is_ready()
    finally:
        await unmigrated.close()


async def test_card_state_compare_and_set(store: SqlStore) -> None:
    first = CardState("run:1", 1, {"state": "inProgress"})
    assert await store.record_event(event("a"), [delivery("run:1")], first)
    with pytest.raises(StaleWrite):
        await store.record_event(event("b"), [delivery("run:1")], CardState("run:1", 1, {"state": "x"}))
    # the losing write stored nothing, not even its event
    assert not await store.has_event("b")
    assert (await store.count_deliveries())["pending"] == 1
    assert await store.record_event(event("b"), [], CardState("run:1", 2, {"state": "completed"}))
    with pytest.raises(StaleWrite):
        await store.record_event(event("c"), [], CardState("run:1", 2, {"state": "late"}))
    saved = await store.get_card_state("run:1")
    assert saved is not None and saved.version == 2 and saved.state == {"state": "completed"}
    # a duplicate is reported as such, whatever its card state says
    assert not await store.record_event(event("a"), [], CardState("run:1", 3, {"state": "x"}))


async def test_only_the_head_of_each_conversation_is_due(store: SqlStore) -> None:
    await store.record_event(event("e"), [delivery("one", SLACK), delivery("two", SLACK), delivery("three", TEAMS)])
    lease = timedelta(seconds=30)
    claimed = await store.claim_deliveries("w", NOW, lease, 10)
    assert sorted(d.grouping_key for d in claimed) == ["one", "three"]
    assert await store.claim_deliveries("w2", NOW, lease, 10) == []
    head = next(d for d in claimed if d.grouping_key == "one")
    await store.complete_delivery(head.id, "w")
    assert [d.grouping_key for d in await store.claim_deliveries("w2", NOW, lease, 10)] == ["two"]


async def test_latest_card_delivery(store: SqlStore) -> None:
    card = {"op": "card", "card": {}}
    reply = {"op": "reply", "card": {}}

    def version(rank: int, where: ConversationAddress = SLACK) -> NewDelivery:
        return NewDelivery(where, "run:1", {**card, "rank": rank})

    await store.record_event(
        event("e"), [version(1), delivery("run:2"), version(1, TEAMS), NewDelivery(SLACK, "run:1", reply)]
    )
    await store.enqueue([version(2), NewDelivery(SLACK, "run:1", reply)], NOW)
    claimed = await store.claim_deliveries("w", NOW, timedelta(seconds=5), 10)
    (first,) = [d for d in claimed if d.conversation == SLACK]
    # the newest card for the same conversation, past the reply between them
    assert (await store.latest_card_delivery(first)).payload == {**card, "rank": 2}
    (teams_one,) = [d for d in claimed if d.conversation == TEAMS]
    assert await store.latest_card_delivery(teams_one) == teams_one


# --- record_events: a batch of events in one transaction -----------------------------------------------


def card(key: str, version: int, state: str) -> CardState:
    return CardState(key, version, {"state": state})


def record(key: str, state: CardState | None = None, *deliveries: NewDelivery) -> EventRecord:
    return EventRecord(event(key), deliveries, state)


async def test_a_batch_is_stored_in_order_with_each_card_once(store: SqlStore) -> None:
    results = await store.record_events(
        [
            record("a", card("run:1", 1, "queued"), delivery("run:1")),
            record("b", card("run:2", 1, "queued"), delivery("run:2", TEAMS)),
            record("c", None),
            record("d", card("run:1", 2, "running"), delivery("run:1")),
            record("e", card("run:1", 3, "done"), delivery("run:1"), delivery("run:1", TEAMS)),
        ]
    )
    assert results == [True] * 5
    assert await store.known_events(["a", "b", "c", "d", "e", "f"]) == {"a", "b", "c", "d", "e"}
    states = await store.get_card_states(["run:1", "run:2", "run:3"])
    assert {k: (s.version, s.state) for k, s in states.items()} == {
        "run:1": (3, {"state": "done"}),
        "run:2": (1, {"state": "queued"}),
    }
    # deliveries keep the order of the records, whatever conversation they go to
    claimed = []
    while batch := await store.claim_deliveries("w", NOW, timedelta(seconds=30), 10):
        for d in batch:
            claimed.append((d.id, d.event_key, d.conversation))
            await store.complete_delivery(d.id, "w")
    assert [key for _, key, _ in sorted(claimed)] == ["a", "b", "d", "e", "e"]
    assert [key for _, key, where in sorted(claimed) if where == SLACK] == ["a", "d", "e"]


async def test_redeliveries_in_and_before_a_batch_store_nothing(store: SqlStore) -> None:
    assert await store.record_event(event("old"), [delivery("run:1")], card("run:1", 1, "queued"))
    results = await store.record_events(
        [
            record("old", card("run:2", 1, "stale"), delivery("run:2")),
            record("new", card("run:1", 2, "running"), delivery("run:1")),
            record("new", card("run:1", 3, "again"), delivery("run:1")),
        ]
    )
    assert results == [False, True, False]
    saved = await store.get_card_state("run:1")
    assert saved is not None and (saved.version, saved.state) == (2, {"state": "running"})
    assert await store.get_card_state("run:2") is None
    assert (await store.count_deliveries())["pending"] == 2


async def test_a_state_built_on_a_redelivery_is_a_lost_compare_and_set(store: SqlStore) -> None:
    assert await store.record_event(event("old"), [], card("run:1", 1, "queued"))
    # "old" comes again and its merge gave version 2; "new" was merged on top of that, as version 3
    with pytest.raises(StaleWrite):
        await store.record_events([record("old", card("run:1", 2, "x")), record("new", card("run:1", 3, "y"))])
    # and so was one that found nothing to change on top of it
    with pytest.raises(StaleWrite):
        await store.record_events(
            [record("old", card("run:1", 2, "x")), EventRecord(event("new"), grouping_key="run:1")]
        )
    assert not await store.has_event("new")
    # alone, the redelivery is just that, whatever the state it carries
    assert await store.record_events([record("old", card("run:1", 2, "x"))]) == [False]
    saved = await store.get_card_state("run:1")
    assert saved is not None and saved.version == 1


async def test_a_lost_compare_and_set_stores_nothing_of_the_batch(store: SqlStore) -> None:
    assert await store.record_event(event("first"), [], card("run:1", 1, "queued"))
    with pytest.raises(StaleWrite):
        await store.record_events(
            [
                record("x", card("run:2", 1, "queued"), delivery("run:2")),
                record("y", card("run:1", 1, "lost"), delivery("run:1")),
            ]
        )
    with pytest.raises(StaleWrite):  # a gap in one card's versions is a lost compare-and-set too
        await store.record_events([record("x", card("run:1", 2, "a")), record("z", card("run:1", 4, "b"))])
    assert await store.known_events(["x", "y", "z"]) == set()
    assert await store.get_card_state("run:2") is None
    saved = await store.get_card_state("run:1")
    assert saved is not None and saved.version == 1
    assert (await store.count_deliveries())["pending"] == 0


async def test_a_card_created_twice_in_parallel_batches_is_a_lost_compare_and_set(store: SqlStore) -> None:
    outcomes = await asyncio.gather(
        store.record_events([record("p", card("run:1", 1, "one"), delivery("run:1"))]),
        store.record_events([record("q", card("run:1", 1, "other"), delivery("run:1"))]),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["StaleWrite", "list"]
    assert (await store.count_deliveries())["pending"] == 1


async def test_concurrent_batches_record_each_event_once(store: SqlStore) -> None:
    keys = [f"e{i}" for i in range(30)]
    batches = [[record(k, None, delivery(f"run:{k}")) for k in keys[i::3] + keys[: 10 * (i + 1)]] for i in range(3)]
    results = await asyncio.gather(*(store.record_events(b) for b in batches))
    assert sum(r.count(True) for r in results) == 30
    assert (await store.count_deliveries())["pending"] == 30
    assert await store.record_events([]) == []


async def test_complete_shown(store: SqlStore) -> None:
    def version(rank: int, where: ConversationAddress = SLACK, key: str = "run:1") -> NewDelivery:
        return NewDelivery(where, key, {"op": "card", "rank": rank, "card": {}})

    reply = NewDelivery(SLACK, "run:1", {"op": "reply", "card": {}})
    await store.enqueue(
        [version(1), version(2), reply, version(3), version(4), version(2, TEAMS), version(2, key="run:2")], NOW
    )
    claimed = await store.claim_deliveries("w", NOW, timedelta(seconds=5), 10)
    (first,) = [d for d in claimed if d.conversation == SLACK]
    # the card saved; this delivery sent; versions 2 and 3 here superseded; not the reply, not 4
    shown = PostedCard("run:1", SLACK, "1700000000.000100", rank=3, content={"v": 3}, first_rank=1)
    assert await store.complete_shown(first, "w", shown) == [first.id + 1, first.id + 3]
    saved = await store.get_card("run:1", SLACK)
    assert saved is not None and (saved.message_id, saved.rank, saved.content, saved.first_rank) == (
        "1700000000.000100",
        3,
        {"v": 3},
        1,
    )
    assert (await store.get_delivery(first.id)).state is DeliveryState.SENT  # type: ignore[union-attr]
    assert not await store.complete_delivery(first.id, "w")  # no longer held
    rest = []
    batch = [d for d in claimed if d != first]
    while batch:
        for d in batch:
            rest.append((d.conversation, d.grouping_key, d.payload.get("op"), d.payload.get("rank")))
            await store.complete_delivery(d.id, "w")
        batch = await store.claim_deliveries("w", NOW, timedelta(seconds=5), 10)
    assert sorted(rest, key=str) == sorted(
        [
            (SLACK, "run:1", "reply", None),
            (SLACK, "run:1", "card", 4),
            (TEAMS, "run:1", "card", 2),
            (SLACK, "run:2", "card", 2),
        ],
        key=str,
    )


async def test_an_attempt_whose_lease_ran_out_records_nothing_over_the_attempt_that_claimed_it_since(
    store: SqlStore,
) -> None:
    def version(rank: int) -> NewDelivery:
        return NewDelivery(SLACK, "run:1", {"op": "card", "rank": rank, "card": {}})

    first_id, second_id = await store.enqueue([version(1), version(2)], NOW)
    lease = timedelta(seconds=30)
    (stale,) = await store.claim_deliveries("w1", NOW, lease, 10)
    (current,) = await store.claim_deliveries("w2", NOW + lease + timedelta(seconds=1), lease, 10)
    assert current.id == stale.id == first_id and current.recovered
    # w1's attempt outlived its lease: whatever it records now is refused, and changes nothing
    late = PostedCard("run:1", SLACK, "1700000000.000100", rank=2, content={"v": 2})
    assert await store.complete_shown(stale, "w1", late) == []
    assert await store.get_card("run:1", SLACK) is None
    assert not await store.complete_delivery(first_id, "w1")
    assert not await store.retry_delivery(first_id, "w1", "late", NOW)
    assert not await store.defer_delivery(first_id, "w1", "late", NOW)
    assert not await store.postpone_delivery(stale, "w1", NOW)
    assert not await store.dead_letter_delivery(first_id, "w1", "late")
    held = await store.get_delivery(first_id)
    assert held is not None and (held.state, held.claimed_by, held.attempts) == (DeliveryState.PENDING, "w2", 2)
    assert (await store.get_delivery(second_id)).state is DeliveryState.PENDING  # type: ignore[union-attr]
    # the attempt that holds the claim records its outcome
    shown = PostedCard("run:1", SLACK, "1700000000.000200", rank=2, content={"v": 2})
    assert await store.complete_shown(current, "w2", shown) == [second_id]
    saved = await store.get_card("run:1", SLACK)
    assert saved is not None and saved.message_id == "1700000000.000200"


async def test_a_batch_reads_back_exactly_as_written(store: SqlStore) -> None:
    # (on a SQLite file the batch is written straight through the driver; every other query reads it)
    later = NOW + timedelta(seconds=1, microseconds=250)
    text = {"title": "Modèle « x » — 🚀", "nested": {"n": [1, 2.5, None, True, 2**70]}}
    state = CardState("run:9", 1, {"state": "running", "text": text})
    coalesced = NewDelivery(SLACK, "run:9", {"op": "card", "card": text}, not_before=later)
    assert await store.record_events([EventRecord(event("e9", NOW), [delivery("run:9"), coalesced], state)]) == [True]
    saved = await store.get_card_state("run:9")
    assert saved is not None and (saved.version, saved.state, saved.updated_at) == (1, state.state, NOW)
    lease = timedelta(seconds=30)
    (first,) = await store.claim_deliveries("w", NOW, lease, 10)
    assert first.payload == {"title": "run:9"} and first.conversation == SLACK and first.event_key == "e9"
    assert await store.complete_delivery(first.id, "w")
    assert await store.claim_deliveries("w", later - timedelta(microseconds=1), lease, 10) == []
    (second,) = await store.claim_deliveries("w", later, lease, 10)
    assert second.payload == {"op": "card", "card": text}
    assert await store.known_events(["e9"]) == {"e9"}


async def test_a_claim_tells_whether_an_earlier_attempt_may_have_sent_it(store: SqlStore) -> None:
    lease = timedelta(seconds=30)
    (delivery_id,) = await store.enqueue([delivery("run:5")], NOW)
    (first,) = await store.claim_deliveries("w1", NOW, lease, 10)
    assert not first.recovered
    # w1 stopped without a word: once its lease ran out, the next claim is a recovery
    (second,) = await store.claim_deliveries("w2", NOW + timedelta(seconds=31), lease, 10)
    assert second.recovered and second.attempts == 2
    # a failure known not to have sent anything is an ordinary retry
    later = NOW + timedelta(seconds=40)
    assert await store.retry_delivery(delivery_id, "w2", "429", later)
    (third,) = await store.claim_deliveries("w3", later, lease, 10)
    assert not third.recovered
    # a failure that may have sent it (the answer was lost) is tried again as a recovery
    assert await store.defer_delivery(delivery_id, "w3", "connection dropped", later + timedelta(seconds=5))
    assert not await store.defer_delivery(delivery_id, "someone-else", "x", later)
    assert await store.claim_deliveries("w4", later + timedelta(seconds=4), lease, 10) == []
    (fourth,) = await store.claim_deliveries("w4", later + timedelta(seconds=6), lease, 10)
    assert fourth.recovered and fourth.last_error == "connection dropped"


async def test_a_claim_is_renewed_only_while_it_is_still_the_workers_as_it_left_it(store: SqlStore) -> None:
    lease = timedelta(seconds=15)
    where = [ConversationAddress("slack", name) for name in ("CA", "CB", "CC", "CD")]
    await store.enqueue([delivery(f"run:{i}", c) for i, c in enumerate(where)], NOW)
    renewing, deferred, done, lapsed = await store.claim_deliveries("host-a:41:w1", NOW, lease, 10)
    assert {d.lease_until for d in (renewing, deferred, done, lapsed)} == {NOW + lease}
    # what its attempts recorded since it looked (a deferral keeps its name on the delivery, with a lease of its
    # own) is not undone, nor is a claim another worker made once the lease ran out
    retry_at = NOW + timedelta(seconds=40)
    assert await store.defer_delivery(deferred.id, "host-a:41:w1", "connection dropped", retry_at)
    assert await store.complete_delivery(done.id, "host-a:41:w1")
    later = NOW + lease + timedelta(seconds=1)
    leases = {d.id: NOW + lease for d in (renewing, deferred, done, lapsed)}
    assert await store.renew_claims("host-a:41:w1", {renewing.id: NOW + lease}, later + lease) == {renewing.id}
    (taken,) = await store.claim_deliveries("host-b:7:w2", later, lease, 10)
    assert taken.id == lapsed.id and taken.recovered and taken.recovered_from == "host-a:41:w1"
    leases[renewing.id] = later + lease
    assert await store.renew_claims("host-a:41:w1", leases, later + 2 * lease) == {renewing.id}
    assert await store.renew_claims("someone-else", {renewing.id: later + 2 * lease}, later + 3 * lease) == set()
    assert await store.renew_claims("host-a:41:w1", {renewing.id: later + lease}, later + 3 * lease) == set()  # stale
    assert await store.renew_claims("host-a:41:w1", {}, later) == set()

    stored = {d.id: await store.get_delivery(d.id) for d in (renewing, deferred, done, lapsed)}
    assert {i: (d.state, d.claimed_by, d.lease_until) for i, d in stored.items() if d is not None} == {
        renewing.id: (DeliveryState.PENDING, "host-a:41:w1", later + 2 * lease),
        deferred.id: (DeliveryState.PENDING, "host-a:41:w1", retry_at),
        done.id: (DeliveryState.SENT, None, None),
        lapsed.id: (DeliveryState.PENDING, "host-b:7:w2", later + lease),
    }
    # a renewed lease holds its delivery past the lease it was claimed with; one not renewed runs out
    again = await store.claim_deliveries("host-c:9:w3", later + lease + timedelta(seconds=1), lease, 10)
    assert [(d.id, d.recovered_from) for d in again] == [(lapsed.id, "host-b:7:w2")]


async def test_a_postponed_delivery_keeps_its_turn_and_its_recovery_and_the_attempt_is_not_counted(
    store: SqlStore,
) -> None:
    lease = timedelta(seconds=30)
    first_id, second_id = await store.enqueue([delivery("run:5"), delivery("run:6")], NOW)
    (first,) = await store.claim_deliveries("w1", NOW, lease, 10)
    later = NOW + timedelta(seconds=100)
    assert not await store.postpone_delivery(first, "someone-else", later)
    assert await store.postpone_delivery(first, "w1", later)
    # nothing is due until then, the next delivery of the conversation included
    assert await store.claim_deliveries("w2", later - timedelta(microseconds=1), lease, 10) == []
    (again,) = await store.claim_deliveries("w2", later, lease, 10)
    assert (again.id, again.attempts, again.recovered) == (first_id, 1, False)
    # a recovery postponed is claimed as a recovery again
    (recovery,) = await store.claim_deliveries("w3", later + lease + timedelta(seconds=1), lease, 10)
    assert recovery.recovered and recovery.attempts == 2
    at = later + timedelta(seconds=200)
    assert await store.postpone_delivery(recovery, "w3", at)
    assert await store.claim_deliveries("w4", at - timedelta(microseconds=1), lease, 10) == []
    (still,) = await store.claim_deliveries("w4", at, lease, 10)
    assert (still.id, still.attempts, still.recovered) == (first_id, 2, True)
    assert await store.complete_delivery(first_id, "w4")
    (following,) = await store.claim_deliveries("w4", at, lease, 10)
    assert following.id == second_id


# --- repeat marks: written with the new records of a batch ---------------------------------------------


def mark(
    repeat_key: str,
    grouping_key: str,
    at: datetime = NOW,
    where: ConversationAddress = SLACK,
    replaces: RepeatMark | None = None,
) -> RepeatMark:
    return RepeatMark(where, repeat_key, grouping_key, at, replaces=replaces)


def marked(key: str, *marks: RepeatMark, state: CardState | None = None) -> EventRecord:
    return EventRecord(event(key), card_state=state, repeat_marks=marks)


async def marks_of(store: SqlStore, *keys: tuple[ConversationAddress, str]) -> set[RepeatMark]:
    return set((await store.get_repeat_marks(keys)).values())


async def test_a_new_records_repeat_marks_are_stored(store: SqlStore) -> None:
    shown = NOW + timedelta(seconds=1, microseconds=250)
    failing = mark("pipeline:42:failed", "run:7", shown)
    registered = mark("model:model-x", "model:model-x:3", NOW, TEAMS)
    assert await store.record_events([marked("e1", failing, registered)]) == [True]
    found = await store.get_repeat_marks([(SLACK, "pipeline:42:failed"), (TEAMS, "model:model-x")])
    assert found == {(SLACK, "pipeline:42:failed"): failing, (TEAMS, "model:model-x"): registered}
    assert found[(SLACK, "pipeline:42:failed")].shown_at.utcoffset() == timedelta(0)


async def test_a_redelivered_records_repeat_marks_are_not_written(store: SqlStore) -> None:
    first = mark("pipeline:42:failed", "run:1")
    assert await store.record_events([marked("old", first)]) == [True]
    results = await store.record_events(
        [
            marked("old", mark("pipeline:42:failed", "run:2")),
            marked("new", mark("model:model-x", "model:model-x:3")),
            marked("new", mark("model:model-x", "model:model-x:4"), mark("pipeline:43:failed", "run:3")),
        ]
    )
    assert results == [False, True, False]
    keys = [(SLACK, "pipeline:42:failed"), (SLACK, "model:model-x"), (SLACK, "pipeline:43:failed")]
    assert await marks_of(store, *keys) == {first, mark("model:model-x", "model:model-x:3")}


async def test_a_later_batch_replaces_the_mark_it_saw(store: SqlStore) -> None:
    first, other = mark("pipeline:42:failed", "run:1"), mark("model:model-x", "model:model-x:3")
    await store.record_events([marked("a", first), marked("b", other)])
    (seen,) = (await store.get_repeat_marks([(SLACK, "pipeline:42:failed")])).values()
    later = mark("pipeline:42:failed", "run:2", NOW + timedelta(hours=2), replaces=seen)
    assert await store.record_events([marked("c", later)]) == [True]
    assert await marks_of(store, (SLACK, "pipeline:42:failed"), (SLACK, "model:model-x")) == {later, other}


async def test_a_mark_written_over_another_than_the_one_stored_is_a_lost_compare_and_set(store: SqlStore) -> None:
    """Two processes that saw the same mark (or none) both fold nothing: the second one's write fails and
    its events are planned again on the first one's mark."""
    first = mark("pipeline:42:failed", "run:1")
    assert await store.record_events([marked("a", first)]) == [True]
    for stale in (None, mark("pipeline:42:failed", "run:0", NOW - timedelta(hours=1))):
        with pytest.raises(StaleWrite):
            await store.record_events([marked(f"b-{stale}", mark("pipeline:42:failed", "run:2", replaces=stale))])
    assert await marks_of(store, (SLACK, "pipeline:42:failed")) == {first}
    assert await store.known_events(["b-None"]) == set()  # the whole batch was undone


async def test_the_last_mark_for_a_key_in_a_batch_wins(store: SqlStore) -> None:
    # the last in record order, whatever its time; each written over the one before it in the batch
    newer = mark("pipeline:42:failed", "run:1", NOW + timedelta(minutes=5))
    last = mark("pipeline:42:failed", "run:2", replaces=newer)
    assert await store.record_events([marked("a", newer), marked("b", last)]) == [True, True]
    assert await marks_of(store, (SLACK, "pipeline:42:failed")) == {last}
    between = mark("pipeline:42:failed", "run:1", NOW + timedelta(minutes=5), replaces=last)
    again = mark("pipeline:42:failed", "run:3", NOW + timedelta(minutes=1), replaces=between)
    assert await store.record_events([marked("c", between, again)]) == [True]
    assert await marks_of(store, (SLACK, "pipeline:42:failed")) == {again}


async def test_repeat_marks_of_different_conversations_are_separate(store: SqlStore) -> None:
    same_id_in_teams = ConversationAddress("teams", SLACK.conversation_id)
    where = [SLACK, TEAMS, same_id_in_teams]
    marks = [mark("pipeline:42:failed", f"run:{i}", NOW + timedelta(minutes=i), w) for i, w in enumerate(where)]
    await store.record_events([marked("a", *marks)])
    keys = [(w, "pipeline:42:failed") for w in where]
    assert await store.get_repeat_marks(keys) == dict(zip(keys, marks, strict=True))
    replaced = mark("pipeline:42:failed", "run:9", NOW + timedelta(hours=1), same_id_in_teams, replaces=marks[2])
    await store.record_events([marked("b", replaced)])
    assert await marks_of(store, *keys) == {marks[0], marks[1], replaced}


async def test_no_repeat_marks_for_no_keys_or_unknown_ones(store: SqlStore) -> None:
    assert await store.get_repeat_marks([]) == {}
    await store.record_events([marked("a", mark("pipeline:42:failed", "run:1"))])
    unknown = [
        (SLACK, "pipeline:43:failed"),
        (TEAMS, "pipeline:42:failed"),
        (ConversationAddress("slack", "C0OTHER"), "pipeline:42:failed"),
        (ConversationAddress("teams", SLACK.conversation_id), "pipeline:42:failed"),
    ]
    assert await store.get_repeat_marks(unknown) == {}


async def test_many_repeat_marks_are_written_and_read_in_one_batch(store: SqlStore) -> None:
    # more than one IN (...) list of keys
    marks = [
        mark(f"pipeline:{i}:failed", f"run:{i}", where=ConversationAddress("slack", f"C{i % 7}")) for i in range(1200)
    ]
    assert await store.record_events([marked("a", *marks[:600]), marked("b", *marks[600:])]) == [True, True]
    keys = [(m.conversation, m.repeat_key) for m in marks]
    found = await store.get_repeat_marks([*keys, *keys[:10], (SLACK, "pipeline:unknown")])
    assert found == {(m.conversation, m.repeat_key): m for m in marks}


async def test_forgetting_old_repeat_marks(store: SqlStore) -> None:
    cutoff = NOW - timedelta(hours=72)
    ages = {"older": timedelta(hours=80), "old": timedelta(hours=72, microseconds=1), "at": timedelta(hours=72)}
    kept = mark("recent", "run:4", NOW - timedelta(hours=1))
    await store.record_events([marked("a", *(mark(k, f"run:{k}", NOW - age) for k, age in ages.items()), kept)])
    assert await store.forget_repeat_marks_before(cutoff) == 2
    assert await marks_of(store, *((SLACK, k) for k in [*ages, "recent"])) == {mark("at", "run:at", cutoff), kept}
    assert await store.forget_repeat_marks_before(cutoff) == 0


async def test_a_lost_compare_and_set_writes_no_repeat_marks(store: SqlStore) -> None:
    before = mark("pipeline:42:failed", "run:0")
    assert await store.record_events([marked("first", before, state=card("run:1", 1, "queued"))]) == [True]
    with pytest.raises(StaleWrite):
        await store.record_events(
            [
                marked("x", mark("pipeline:42:failed", "run:2"), state=card("run:2", 1, "queued")),
                marked("y", mark("pipeline:43:failed", "run:1"), state=card("run:1", 1, "lost")),
            ]
        )
    assert await marks_of(store, (SLACK, "pipeline:42:failed"), (SLACK, "pipeline:43:failed")) == {before}


REPEAT_MARK_TESTS: list[Callable[[SqlStore], Awaitable[None]]] = [
    test_a_new_records_repeat_marks_are_stored,
    test_a_redelivered_records_repeat_marks_are_not_written,
    test_a_later_batch_replaces_the_mark_it_saw,
    test_a_mark_written_over_another_than_the_one_stored_is_a_lost_compare_and_set,
    test_the_last_mark_for_a_key_in_a_batch_wins,
    test_repeat_marks_of_different_conversations_are_separate,
    test_no_repeat_marks_for_no_keys_or_unknown_ones,
    test_many_repeat_marks_are_written_and_read_in_one_batch,
    test_forgetting_old_repeat_marks,
    test_a_lost_compare_and_set_writes_no_repeat_marks,
]


@pytest.mark.parametrize("scenario", REPEAT_MARK_TESTS, ids=lambda test: test.__name__.removeprefix("test_"))
async def test_repeat_marks_on_sqlite_in_memory(scenario: Callable[[SqlStore], Awaitable[None]]) -> None:
    # a database in memory writes its batches through SQLAlchemy, not on the driver
    in_memory = await SqlStore.open("sqlite://")
    try:
        assert isinstance(in_memory.engine, SqliteEngine) and not in_memory.engine.has_raw_writer
        await scenario(in_memory)
    finally:
        await in_memory.close()
