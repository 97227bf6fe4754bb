"""Ingest on a real store: redeliveries, group commit, and cards under concurrent events.

Each test runs on SQLite and PostgreSQL. "Two processes" are two stores (two engines, two connection
pools) with an Ingest each on the same database: they share nothing but the database.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sql import SqlStore
from bot.cards import Status
from bot.clock import FakeClock
from bot.events import (
    AppHandoffChanged,
    ApprovalCompleted,
    ApprovalPending,
    Approver,
    DataArrived,
    DomainEvent,
    ModelDeployed,
    ModelRegistered,
    Person,
    RunStateChanged,
    StageStateChanged,
    TrainingRunFinished,
)
from bot.ingest import SUBSCRIPTION_CACHE_SECONDS, Ingest, IngestFailed
from bot.living import merge, render
from bot.outbox import OutboxWorker
from bot.ports import EventRecord
from bot.ratelimit import SlidingWindowLimiter
from bot.records import (
    CardState,
    ConversationAddress,
    ConversationRecord,
    Delivery,
    PostedCard,
    RepeatMark,
    StoredSubscription,
)
from bot.routing import Filters, Subscription
from tests.adapters.ingest.test_hook_deadline import write_lock_held
from tests.core.pipeline_runs import run, run_state
from tests.core.recording_channel import RecordingChannel

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SLACK = ConversationAddress("slack", "C0RELEASES")
TEAMS = ConversationAddress("teams", "19:releases@thread.tacv2")
SUBSCRIPTIONS = [Subscription((SLACK, TEAMS), Filters.from_mapping({"events": ["run", "stage"]}))]
STAGES = [f"stage-{i}" for i in range(12)]


def started(run_id: str = "77", event_id: str | None = None) -> RunStateChanged:
    return replace(run_state("inProgress", T0, run_id=run_id), event_id=event_id or f"run-{run_id}-started")


def stage_done(stage: str, run_id: str = "77", result: str = "succeeded") -> StageStateChanged:
    return StageStateChanged(
        source="azure-devops",
        event_id=f"run-{run_id}-{stage}-done",
        occurred_at=T0,
        scope="contoso",
        run=run(run_id),
        stage_name=stage,
        state="completed",
        result=result,
    )


def ingest_for(store: SqlStore) -> Ingest:
    return Ingest(store, SUBSCRIPTIONS, FakeClock(T0))


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    first = await SqlStore.open(store_url)
    second = await SqlStore.open(store_url, migrate=False)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def delivered(store: SqlStore) -> list[Delivery]:
    """Every delivery, in the order the outbox hands them out (each completed in turn, a card's recorded as
    posted, as the outbox records it)."""
    later = T0 + timedelta(hours=1)
    out: list[Delivery] = []
    while batch := await store.claim_deliveries("w", later, timedelta(seconds=30), 1000):
        for d in batch:
            if d.payload["op"] == "card":
                shown = await store.get_card(d.grouping_key, d.conversation)
                message_id = shown.message_id if shown is not None else f"m{d.id}"
                rank = int(d.payload["rank"])
                await store.save_card(PostedCard(d.grouping_key, d.conversation, message_id, rank=rank))
            await store.complete_delivery(d.id, "w")
        out += batch
    return sorted(out, key=lambda d: d.id)


async def test_a_redelivery_stores_nothing(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    assert await ingest.accept(started())
    before = await store.count_deliveries()
    assert not await ingest.accept(started())
    assert await store.count_deliveries() == before == {"pending": 2, "sent": 0, "dead": 0, "unreachable": 0}


async def test_concurrent_redeliveries_store_one_event(stores: tuple[SqlStore, SqlStore]) -> None:
    first, second = stores
    one, other = ingest_for(first), ingest_for(second)
    results = await asyncio.gather(*((one if i % 2 else other).accept(started()) for i in range(10)))
    assert results.count(True) == 1
    assert (await first.count_deliveries())["pending"] == 2


def batch_sizes(store: SqlStore) -> list[int]:
    """The sizes of the batches the store is asked to record from now on, in order."""
    batches: list[int] = []
    record_events = store.record_events

    async def spy(records: Sequence[EventRecord]) -> list[bool]:
        batches.append(len(records))
        return await record_events(records)

    store.record_events = spy  # type: ignore[method-assign]
    return batches


async def test_concurrent_events_are_written_together(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    batches = batch_sizes(store)
    ingest = ingest_for(store)
    events: list[DomainEvent] = [started(str(i)) for i in range(20)]
    results = await asyncio.gather(*(ingest.accept(e) for e in [*events, events[3], events[7]]))
    assert results == [True] * 20 + [False, False]
    assert sum(batches) == 20 and len(batches) < 20  # the redeliveries never reached the store
    assert (await store.count_deliveries())["pending"] == 40


async def test_events_arriving_over_a_few_turns_of_the_loop_join_one_batch(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    batches = batch_sizes(store)
    ingest = ingest_for(store)

    async def arriving(event: DomainEvent, turns: int) -> bool:
        for _ in range(turns):  # a request whose handler reaches the ingest a little later
            await asyncio.sleep(0)
        return await ingest.accept(event)

    results = await asyncio.gather(*(arriving(started(str(i)), i // 4) for i in range(12)))
    assert results == [True] * 12
    assert batches == [12]
    assert (await store.count_deliveries())["pending"] == 24

    await arriving(started("lone"), 0)  # an idle ingest writes a lone event at once
    assert batches == [12, 1]


async def test_a_card_keeps_every_concurrent_change(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    await ingest.accept(started())
    await asyncio.gather(*(ingest.accept(stage_done(s)) for s in STAGES))
    card = await store.get_card_state(run().run_key)
    assert card is not None
    assert {name for name, stage in card.state["stages"].items() if stage["state"] == "completed"} == set(STAGES)
    assert card.version == 1 + len(STAGES)
    ranks = [d.payload["rank"] for d in await delivered(store) if d.conversation == SLACK]
    assert ranks == sorted(ranks) and ranks[-1] == card.version


async def test_two_processes_never_lose_a_change_to_the_same_card(stores: tuple[SqlStore, SqlStore]) -> None:
    first, second = stores
    one, other = ingest_for(first), ingest_for(second)
    await one.accept(started())
    results = await asyncio.gather(
        *((one if i % 2 else other).accept(stage_done(s)) for i, s in enumerate(STAGES)),
        *((other if i % 2 else one).accept(stage_done(s)) for i, s in enumerate(STAGES)),  # and each again
    )
    assert results.count(True) == len(STAGES)
    card = await first.get_card_state(run().run_key)
    assert card is not None
    assert all(card.state["stages"][s]["state"] == "completed" for s in STAGES)
    assert card.version == 1 + len(STAGES)
    # both still agree after the other wrote: their remembered states were checked, not trusted
    assert await one.accept(stage_done("late-one"))
    assert await other.accept(stage_done("late-other"))
    final = await second.get_card_state(run().run_key)
    assert final is not None and final.version == 3 + len(STAGES)
    assert {"late-one", "late-other"} <= set(final.state["stages"])


async def test_a_redelivery_another_process_stored_first(stores: tuple[SqlStore, SqlStore]) -> None:
    first, second = stores
    one, other = ingest_for(first), ingest_for(second)
    assert await one.accept(started())  # this process now remembers the card at version 1
    assert await other.accept(stage_done("build"))  # version 2, stored by the other process
    before = (await first.count_deliveries())["pending"]
    # here, the same event again with a new one for the same card, in one batch
    results = await asyncio.gather(one.accept(stage_done("build")), one.accept(stage_done("test")))
    assert results == [False, True]
    card = await first.get_card_state(run().run_key)
    assert card is not None and card.version == 3
    assert {name for name, stage in card.state["stages"].items() if stage["state"] == "completed"} == {"build", "test"}
    assert (await first.count_deliveries())["pending"] == before + 2  # the new event's update, to each conversation


async def test_a_card_never_moves_backwards(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    done = RunStateChanged(
        source="azure-devops",
        event_id="run-77-done",
        occurred_at=T0,
        scope="contoso",
        run=run(),
        state="completed",
        result="succeeded",
    )
    await asyncio.gather(ingest.accept(done), ingest.accept(started(event_id="late-start")))
    card = await store.get_card_state(run().run_key)
    assert card is not None and (card.state["state"], card.state["result"]) == ("completed", "succeeded")


@dataclass(frozen=True, kw_only=True)
class Unstorable(DomainEvent):
    """An event whose payload cannot be written as JSON."""

    kind: ClassVar[str] = "run"
    blob: Any = None


async def test_the_events_of_one_delivery_are_written_together(stores: tuple[SqlStore, SqlStore]) -> None:
    # an Event Grid delivery brings up to a megabyte of events in one request: awaited one by one, each would
    # wait for a commit of its own, and the sender would time out before the answer
    store, _ = stores
    batches = batch_sizes(store)
    ingest = ingest_for(store)
    events: list[DomainEvent] = [started(str(i)) for i in range(300)]
    assert await ingest.accept_all([*events, events[3]]) == [True] * 300 + [False]
    assert batches == [256, 45]  # (the redelivery comes after the first batch was stored: the store catches it)
    assert (await store.count_deliveries())["pending"] == 600
    assert await ingest.accept_all([]) == []


async def test_a_deployment_of_two_model_versions_updates_each_versions_card_once(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    following_fraud = Subscription((TEAMS,), Filters.from_mapping({"events": ["model_deployed"], "models": ["fraud"]}))
    ingest = Ingest(store, [*SUBSCRIPTIONS, following_fraud], FakeClock(T0))
    churn = ModelRegistered(
        source="azure-ml", event_id="reg", occurred_at=T0, scope="ws", model_name="churn", model_version="1"
    )
    deployed = ModelDeployed(
        source="azure-ml",
        event_id="dep",
        occurred_at=T0,
        scope="ws",
        service_name="scoring",
        compute_type="AKS",
        model_ids=("churn:1", "fraud:2"),
    )
    assert await ingest.accept_all([churn, deployed]) == [True, True]  # one answer for the delivery's event
    assert await ingest.accept(deployed) is False  # delivered again: nothing doubles
    fraud_key = replace(churn, model_name="fraud", model_version="2").grouping_key
    cards = await store.get_card_states([churn.grouping_key, fraud_key])
    shown = {key: render(card.state) for key, card in cards.items() if card is not None}
    assert {key: card.title for key, card in shown.items()} == {
        churn.grouping_key: "Model churn:1 deployed",
        fraud_key: "Model fraud:2 deployed",
    }
    assert all(("Deployed to", "scoring (AKS)") in [(f.label, f.value) for f in c.facts] for c in shown.values())
    # the channel following fraud's deployments got fraud's card, not churn's
    for key, conversations in ((churn.grouping_key, []), (fraud_key, [[TEAMS.platform, TEAMS.conversation_id]])):
        state = cards[key]
        assert state is not None and state.state["conversations"] == conversations


async def test_stored_before_tells_an_event_stored_once_all_of_its_parts_are(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """The read a route makes before its lookups: an event is stored when each card's part of it is."""
    store, other = stores
    ingest = ingest_for(store)
    deployed = ModelDeployed(
        source="azure-ml",
        event_id="dep",
        occurred_at=T0,
        scope="ws",
        service_name="scoring",
        compute_type="AKS",
        model_ids=("churn:1", "fraud:2"),
    )
    churn_alone = deployed.per_card()[0]
    assert await ingest.stored_before([deployed, started("1")]) == [False, False]
    assert await ingest.accept(churn_alone) is True
    assert await ingest.stored_before([deployed, churn_alone, started("1")]) == [False, True, False]
    assert await ingest.accept_all([deployed, started("1")]) == [True, True]
    # what another process stored counts (the store is asked, not this process's memory)
    assert await ingest_for(other).stored_before([deployed, started("1"), started("2")]) == [True, True, False]


async def test_a_delivery_with_an_event_that_cannot_be_stored_fails_and_keeps_the_others(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    bad = Unstorable(source="test", event_id="bad", occurred_at=T0, blob={1, 2})
    with pytest.raises(IngestFailed):
        await ingest.accept_all([started("1"), bad, started("2")])
    assert await store.known_events([started(str(i)).dedupe_key for i in (1, 2)]) == {
        started(str(i)).dedupe_key for i in (1, 2)
    }
    assert not await store.has_event(bad.dedupe_key)
    # the sender delivers the whole again: what was stored is a duplicate, nothing doubles
    with pytest.raises(IngestFailed):
        await ingest.accept_all([started("1"), bad, started("2")])
    assert (await store.count_deliveries())["pending"] == 4


async def test_an_event_that_cannot_be_stored_fails_alone(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    bad = Unstorable(source="test", event_id="bad", occurred_at=T0, blob={1, 2})
    results = await asyncio.gather(
        *(ingest.accept(started(str(i))) for i in range(5)), ingest.accept(bad), return_exceptions=True
    )
    assert results[:5] == [True] * 5
    assert isinstance(results[5], IngestFailed)
    assert await store.known_events([started(str(i)).dedupe_key for i in range(5)]) == {
        started(str(i)).dedupe_key for i in range(5)
    }
    assert not await store.has_event(bad.dedupe_key)


async def test_observers_see_every_event_before_it_is_stored(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    seen: list[tuple[str, bool]] = []

    async def observe(event: DomainEvent) -> None:
        seen.append((event.event_id, await store.has_event(event.dedupe_key)))

    ingest.observers.append(observe)
    await ingest.accept(started())
    await ingest.accept(started())
    assert seen == [("run-77-started", False), ("run-77-started", True)]


# --- repeat limits ------------------------------------------------------------------------------------

FAILURES_ONLY = {"events": ["run", "stage"], "outcomes": ["failed"]}
# Slack folds a pipeline failing again within 30 minutes; Teams wants every failure as a card.
LIMITED = [
    Subscription((SLACK,), Filters.from_mapping({**FAILURES_ONLY, "repeat_limit": "30m"})),
    Subscription((TEAMS,), Filters.from_mapping(FAILURES_ONLY)),
]


def failed(run_id: str, branch: str | None = "refs/heads/main") -> RunStateChanged:
    event = run_state("completed", T0, "failed", run_id)
    return replace(event, event_id=f"run-{run_id}-failed", run=replace(event.run, branch=branch))


def cards_to(deliveries: list[Delivery], conversation: ConversationAddress) -> list[str]:
    """The grouping keys of the cards posted to ``conversation``, in order."""
    return [d.grouping_key for d in deliveries if d.conversation == conversation and d.payload["op"] == "card"]


def replies_to(deliveries: list[Delivery], conversation: ConversationAddress) -> list[tuple[str, dict[str, Any]]]:
    """The thread replies posted to ``conversation``: under which card, and the reply's card."""
    return [
        (d.grouping_key, d.payload["card"])
        for d in deliveries
        if d.conversation == conversation and d.payload["op"] == "reply"
    ]


async def test_a_repeat_within_the_limit_is_a_reply_under_the_card_shown(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    clock = FakeClock(T0)
    ingest = Ingest(store, LIMITED, clock)
    assert await ingest.accept(failed("1"))
    first = await delivered(store)
    assert cards_to(first, SLACK) == cards_to(first, TEAMS) == [run("1").run_key]

    await clock.advance(10 * 60)
    assert await ingest.accept(failed("2"))
    second = await delivered(store)
    assert cards_to(second, SLACK) == []  # no second card in Slack
    assert cards_to(second, TEAMS) == [run("2").run_key]  # Teams has no limit
    [(under, reply)] = replies_to(second, SLACK)
    assert under == run("1").run_key
    assert reply["title"] == "release-app-y 2026.2" and reply["status"] == "failed"
    assert "Again within 30 min" in reply["summary"]
    assert [r for r in replies_to(second, TEAMS) if r[0] == run("1").run_key] == []

    card = await store.get_card_state(run("2").run_key)
    assert card is not None
    assert card.state["conversations"] == [["teams", TEAMS.conversation_id]]
    assert card.state["folded"] == [["slack", SLACK.conversation_id]]
    key = failed("2").repeat_key
    assert key is not None and key == failed("1").repeat_key
    marks = await store.get_repeat_marks([(SLACK, key), (TEAMS, key)])
    assert list(marks) == [(SLACK, key)]  # only a limited conversation is marked
    assert marks[(SLACK, key)].grouping_key == run("1").run_key and marks[(SLACK, key)].shown_at == T0

    # the folded run's later events stay out of Slack; a redelivery changes nothing
    assert await ingest.accept(stage_done("deploy", run_id="2", result="failed"))
    assert not await ingest.accept(failed("2"))
    later = await delivered(store)
    assert cards_to(later, SLACK) == [] and replies_to(later, SLACK) == []
    assert cards_to(later, TEAMS) == [run("2").run_key]


async def test_a_pipeline_flapping_within_the_limit_tells_each_runs_outcome_in_the_first_cards_thread(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    clock = FakeClock(T0)
    every_run = {"events": ["run"], "outcomes": ["any"]}
    subscriptions = [
        Subscription((SLACK,), Filters.from_mapping({**every_run, "repeat_limit": "1h"})),
        Subscription((TEAMS,), Filters.from_mapping(every_run)),
    ]
    ingest = Ingest(store, subscriptions, clock)
    deliveries: list[Delivery] = []
    # four runs of the pipeline on main, each shown from its start: succeeded, failed, failed, succeeded
    for run_id, result in (("1", "succeeded"), ("2", "failed"), ("3", "failed"), ("4", "succeeded")):
        assert await ingest.accept(replace(started(run_id), run=failed(run_id).run))  # (on main)
        deliveries += await delivered(store)
        await clock.advance(5 * 60)
        assert await ingest.accept(replace(failed(run_id), result=result))
        deliveries += await delivered(store)
        await clock.advance(5 * 60)
    # Slack: one card, and each later run told once in its thread when it ended (not when it started)
    assert set(cards_to(deliveries, SLACK)) == {run("1").run_key}
    told = [(under, card["title"], card["status"], card["summary"]) for under, card in replies_to(deliveries, SLACK)]
    assert [(under, title, status) for under, title, status, _ in told] == [
        (run("1").run_key, "release-app-y 2026.2", "failed"),
        (run("1").run_key, "release-app-y 2026.3", "failed"),
        (run("1").run_key, "release-app-y 2026.4", "succeeded"),  # the recovery
    ]
    assert all("Again within 1 h" in summary for *_, summary in told)
    assert broadcasts_to(deliveries, SLACK) == [(title, False) for _, title, _, _ in told]
    # Teams has no limit: a card per run, and each failure under its own card
    assert cards_to(deliveries, TEAMS) == [run(r).run_key for r in "1234" for _ in range(2)]
    assert [under for under, _ in replies_to(deliveries, TEAMS)] == [run("2").run_key, run("3").run_key]

    # past the limit, the pipeline's next run is a card again
    await clock.advance(60 * 60)
    await ingest.accept(started("5"))
    card = await store.get_card_state(run("5").run_key)
    assert card is not None and ["slack", SLACK.conversation_id] in card.state["conversations"]
    assert "folded" not in card.state


async def test_after_the_limit_a_repeat_is_a_card_again(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    clock = FakeClock(T0)
    ingest = Ingest(store, LIMITED, clock)
    await ingest.accept(failed("1"))
    await clock.advance(31 * 60)
    await ingest.accept(failed("3"))
    deliveries = await delivered(store)
    assert cards_to(deliveries, SLACK) == [run("1").run_key, run("3").run_key]
    assert not [card for _, card in replies_to(deliveries, SLACK) if "Again" in card["summary"]]
    key = failed("3").repeat_key
    assert key is not None
    mark = (await store.get_repeat_marks([(SLACK, key)]))[(SLACK, key)]
    assert mark.grouping_key == run("3").run_key and mark.shown_at == T0 + timedelta(minutes=31)


async def test_other_branches_the_command_conversation_and_other_processes(stores: tuple[SqlStore, SqlStore]) -> None:
    first, second = stores
    clock = FakeClock(T0)
    await Ingest(first, LIMITED, clock).accept(failed("1"))
    await clock.advance(60)
    # another process folds too: the marks are in the store, not in memory
    other = Ingest(second, LIMITED, clock)
    assert await other.accept(failed("2"))
    # another branch is another thing
    assert await other.accept(failed("4", branch="refs/heads/dev"))
    # the conversation a command started the run from always gets its card
    assert await other.accept(failed("5"), also_to=(SLACK,))
    deliveries = await delivered(first)
    assert cards_to(deliveries, SLACK) == [run("1").run_key, run("4").run_key, run("5").run_key]
    assert [under for under, card in replies_to(deliveries, SLACK) if "Again" in card["summary"]] == [run("1").run_key]


async def test_a_batch_folds_the_repeats_among_its_own_events(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = Ingest(store, LIMITED, FakeClock(T0))
    results = await asyncio.gather(*(ingest.accept(failed(str(i))) for i in range(10, 20)))
    assert results == [True] * 10
    deliveries = await delivered(store)
    assert len(cards_to(deliveries, SLACK)) == 1
    assert len([1 for _, card in replies_to(deliveries, SLACK) if "Again" in card["summary"]]) == 9
    assert len(cards_to(deliveries, TEAMS)) == 10


class MarksHeldStore(SqlStore):
    """A store whose first read of repeat marks waits for ``release``: two processes both read the marks before
    either one writes its own."""

    release: asyncio.Event
    has_read: asyncio.Event

    async def get_repeat_marks(
        self, keys: Sequence[tuple[ConversationAddress, str]]
    ) -> dict[tuple[ConversationAddress, str], RepeatMark]:
        marks = await super().get_repeat_marks(keys)
        self.has_read.set()
        await self.release.wait()
        return marks


async def test_two_processes_that_both_saw_no_mark_show_one_card_and_fold_the_other(store_url: str) -> None:
    release = asyncio.Event()
    first, second = await MarksHeldStore.open(store_url), await MarksHeldStore.open(store_url, migrate=False)
    assert isinstance(first, MarksHeldStore) and isinstance(second, MarksHeldStore)
    try:
        first.release = second.release = release
        first.has_read, second.has_read = asyncio.Event(), asyncio.Event()
        clock = FakeClock(T0)
        one = asyncio.ensure_future(Ingest(first, LIMITED, clock).accept(failed("1")))
        other = asyncio.ensure_future(Ingest(second, LIMITED, clock).accept(failed("2")))
        async with asyncio.timeout(10):  # each plans on no mark at all
            await asyncio.gather(first.has_read.wait(), second.has_read.wait())
        release.set()
        assert await one and await other

        deliveries = await delivered(first)
        assert len(cards_to(deliveries, SLACK)) == 1  # the second write lost, and was planned again: a fold
        (shown,) = cards_to(deliveries, SLACK)
        assert [under for under, card in replies_to(deliveries, SLACK) if "Again" in card["summary"]] == [shown]
        assert sorted(cards_to(deliveries, TEAMS)) == sorted([run("1").run_key, run("2").run_key])
        key = failed("1").repeat_key
        assert key is not None
        assert (await first.get_repeat_marks([(SLACK, key)]))[(SLACK, key)].grouping_key == shown
    finally:
        await second.close()
        await first.close()


async def test_without_repeat_limits_no_marks_are_read(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    reads: list[object] = []
    get_repeat_marks = store.get_repeat_marks

    async def spy(keys: Sequence[tuple[ConversationAddress, str]]) -> dict[Any, Any]:
        reads.append(keys)
        return await get_repeat_marks(keys)

    store.get_repeat_marks = spy  # type: ignore[method-assign]
    ingest = Ingest(store, [Subscription((SLACK,), Filters.from_mapping(FAILURES_ONLY))], FakeClock(T0))
    await ingest.accept(failed("1"))
    await ingest.accept(failed("2"))
    assert reads == []
    assert len(cards_to(await delivered(store), SLACK)) == 2


async def test_a_blob_with_a_path_longer_than_the_store_keeps_is_stored_once(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    path = "raw/" + "/".join(f"partition={i:04d}" for i in range(70)) + "/part-00000.parquet"  # about 1,000 characters

    def arrived(event_id: str, name: str) -> DataArrived:
        return DataArrived(
            source="storage",
            event_id=event_id,
            occurred_at=T0,
            scope="lake",
            storage_account="lake",
            container="raw",
            path=name,
            size=10,
        )

    blob, sibling = arrived("b1", path), arrived("b2", path.replace("part-00000", "part-00001"))
    assert len(path) > 1000 and len(blob.grouping_key) <= 400 and blob.grouping_key != sibling.grouping_key
    subscriptions = [Subscription((SLACK,), Filters.from_mapping({"events": ["data_arrived"], "repeat_limit": "1h"}))]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    assert await ingest.accept(blob)
    assert await ingest.accept(sibling)  # the same folder: a repeat
    assert not await ingest.accept(blob)
    deliveries = await delivered(store)
    assert cards_to(deliveries, SLACK) == [blob.grouping_key]
    assert [under for under, _ in replies_to(deliveries, SLACK)] == [blob.grouping_key]


async def test_training_runs_without_an_experiment_name_are_not_repeats_of_one_another(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores

    def training_run(run_id: str, experiment: str = "") -> TrainingRunFinished:
        return TrainingRunFinished(
            source="azure-ml",
            event_id=f"{run_id}-completed",
            occurred_at=T0,
            scope="ws",
            run_id=run_id,
            experiment_name=experiment,
        )

    subscriptions = [Subscription((SLACK,), Filters.from_mapping({"events": ["training_run"], "repeat_limit": "1h"}))]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    for event in (
        training_run("sweet_apple_1"),
        training_run("brave_lion_2"),
        training_run("churn_1", "churn"),
        training_run("churn_2", "churn"),  # the same experiment: a repeat
    ):
        assert await ingest.accept(event)
    deliveries = await delivered(store)
    assert cards_to(deliveries, SLACK) == [
        training_run("sweet_apple_1").grouping_key,
        training_run("brave_lion_2").grouping_key,
        training_run("churn_1").grouping_key,
    ]
    assert [under for under, _ in replies_to(deliveries, SLACK)] == [training_run("churn_1").grouping_key]


async def test_a_command_brings_a_folded_card_into_its_conversation(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = Ingest(store, LIMITED, FakeClock(T0))
    await ingest.accept(failed("1"))
    await ingest.accept(failed("2"))  # folded in Slack
    await delivered(store)
    # someone in Slack starts something about run 2 (its card must reach them there)
    await ingest.accept(stage_done("retry", run_id="2", result="failed"), also_to=(SLACK,))
    assert cards_to(await delivered(store), SLACK) == [run("2").run_key]
    card = await store.get_card_state(run("2").run_key)
    assert card is not None and card.state["folded"] == []
    assert ["slack", SLACK.conversation_id] in card.state["conversations"]


async def test_events_whose_keys_are_longer_than_the_store_keeps_are_stored_once(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    workspace = (
        f"/subscriptions/{'0' * 36}/resourceGroups/{'rg-' * 30}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{'w' * 33}"
    )
    model = ModelRegistered(
        source="azure-ml", event_id="e" * 600, occurred_at=T0, scope=workspace, model_name="m" * 255, model_version="1"
    )
    assert len(model.dedupe_key) <= 400 and len(model.grouping_key) <= 400
    again = replace(model, event_id="e" * 599 + "f", model_version="2")
    assert (again.dedupe_key, again.grouping_key) != (model.dedupe_key, model.grouping_key)
    ingest = Ingest(store, [Subscription((SLACK,), Filters())], FakeClock(T0))
    assert await ingest.accept(model)
    assert await ingest.accept(again)
    assert not await ingest.accept(model)
    assert sorted(cards_to(await delivered(store), SLACK)) == sorted([model.grouping_key, again.grouping_key])


async def test_a_conversation_that_asked_for_compact_cards_gets_them_posted_and_updated(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    subscriptions = [
        Subscription((SLACK,), Filters.from_mapping({"events": ["run", "stage"], "card_format": "compact"})),
        Subscription((TEAMS,), Filters.from_mapping({"events": ["run", "stage"]})),
    ]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    await ingest.accept(started())
    await ingest.accept(stage_done("build"))
    deliveries = [d for d in await delivered(store) if d.payload["op"] == "card"]
    slack = [d.payload["card"] for d in deliveries if d.conversation == SLACK]
    teams = [d.payload["card"] for d in deliveries if d.conversation == TEAMS]
    assert len(slack) == len(teams) == 2  # the post and the update
    assert all(card["facts"] == [] and card["steps"] == [] and card["context"] == "" for card in slack)
    assert slack[-1]["title"] == teams[-1]["title"] == "release-app-y 2026.77"
    assert slack[-1]["summary"] == "1 of 1 stages done"
    assert teams[-1]["steps"] == [{"name": "build", "status": "succeeded"}] and teams[-1]["facts"]
    card = await store.get_card_state(run().run_key)
    assert card is not None and card.state["compact"] == [["slack", SLACK.conversation_id]]

    # the format a card was first shown in stays, even when no subscription routes its later events there
    ingest.configured = [Subscription((TEAMS,), Filters())]
    await ingest.accept(stage_done("test"))
    [update] = [d.payload["card"] for d in await delivered(store) if d.conversation == SLACK]
    assert update["steps"] == [] and update["summary"] == "2 of 2 stages done"


def broadcasts_to(deliveries: list[Delivery], conversation: ConversationAddress) -> list[tuple[str, bool]]:
    """The thread replies posted to ``conversation``: each one's title, and whether it shows in the channel."""
    return [
        (d.payload["card"]["title"], d.payload.get("broadcast", False))
        for d in deliveries
        if d.conversation == conversation and d.payload["op"] == "reply"
    ]


QUIET = ConversationAddress("slack", "C0QUIET")


def to_quiet(conversation: ConversationAddress = QUIET, **settings: object) -> Subscription:
    """Runs and stages to ``conversation``, with a setting turned off."""
    return Subscription((conversation,), Filters.from_mapping({"events": ["run", "stage"], **settings}))


async def test_a_failure_under_a_card_shown_before_is_broadcast_unless_a_subscription_turned_it_off(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    subscriptions = [*SUBSCRIPTIONS, to_quiet(broadcast="off")]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    await ingest.accept(started())
    await delivered(store)  # the card is posted
    await ingest.accept(stage_done("build"))
    await ingest.accept(stage_done("deploy", result="failed"))
    deliveries = await delivered(store)
    failure = ("release-app-y 2026.77 failed in stage deploy", True)
    assert broadcasts_to(deliveries, SLACK) == broadcasts_to(deliveries, TEAMS) == [failure]
    assert broadcasts_to(deliveries, QUIET) == [(failure[0], False)]

    # a card shown with the failure itself says it: its reply stays in the thread
    failures_only = Subscription((SLACK,), Filters.from_mapping(FAILURES_ONLY))
    ingest.configured = [failures_only]
    await ingest.accept(failed("78"))
    [reply] = broadcasts_to(await delivered(store), SLACK)
    assert reply == ("release-app-y 2026.78 failed", False)

    # several subscriptions to one conversation: one that broadcasts is enough
    ingest.configured = [
        Subscription((SLACK,), Filters.from_mapping({"events": ["run", "stage"], "broadcast": False})),
        Subscription((SLACK,), Filters.from_mapping({"events": ["run"]})),
    ]
    await ingest.accept(started("79"))
    await delivered(store)
    await ingest.accept(failed("79"))
    assert broadcasts_to(await delivered(store), SLACK) == [("release-app-y 2026.79 failed", True)]


async def test_a_failure_told_before_the_card_was_shown_anywhere_is_told_once_where_it_is_first_shown(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """Azure DevOps sends run and stage hooks from separate subscriptions: the failed stage's may come first, when
    only runs are routed and the card is shown nowhere. The card, first shown with the run's next event, shows
    the failed stage; its thread gets the failure, with the stage and the logs, once per conversation."""
    first, second = stores
    runs_only = [Subscription((SLACK, TEAMS), Filters.from_mapping({"events": ["run"]}))]
    one, other = Ingest(first, runs_only, FakeClock(T0)), Ingest(second, runs_only, FakeClock(T0))
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    url = "https://dev.azure.com/contoso/mlops/_build/results?buildId=77"
    stage_failed = replace(stage_done("IntegrationTests", result="failed"), stage_display_name="Integration tests")
    assert await one.accept(replace(stage_failed, web_url=url))
    assert await one.accept(replace(started(), actor=bob))
    # (another process records the end: the conversations the card was shown in are the store's)
    assert await other.accept(replace(failed("77"), actor=bob, web_url=url))
    deliveries = await delivered(first)
    for conversation in (SLACK, TEAMS):
        [(_, reply)] = replies_to(deliveries, conversation)
        assert reply["title"] == "release-app-y 2026.77 failed in stage Integration tests"
        assert reply["links"] == [{"label": "Logs", "url": f"{url}&view=logs"}]
        # the card was first shown running (calling on nobody): the reply calls on bob, in the thread
        assert reply["mentions"] == [{"name": "Bob Chen", "email": "bob@contoso.com"}]
        assert broadcasts_to(deliveries, conversation) == [(reply["title"], False)]
        [*_, card] = [
            d.payload["card"] for d in deliveries if d.conversation == conversation and d.payload["op"] == "card"
        ]
        assert [m["email"] for m in card["mentions"]] == ["bob@contoso.com"]

    # the failed stage's hook again (redelivered), or another hook of that stage: the thread knows already
    assert not await other.accept(stage_failed)
    assert await one.accept(replace(stage_failed, event_id="run-77-IntegrationTests-again"))
    assert await other.accept(replace(failed("77"), event_id="run-77-build-complete"))
    assert await delivered(first) == []

    # a run that failed fast, the start's hook late: the card is first shown failed, calling on bob, so the reply
    # goes quietly in the thread
    assert await one.accept(replace(stage_failed, run=run("78"), event_id="run-78-failed-stage", web_url=url))
    assert await other.accept(replace(failed("78"), actor=bob, web_url=url))
    assert await one.accept(replace(started("78"), actor=bob))
    deliveries = await delivered(first)
    for conversation in (SLACK, TEAMS):
        [(_, reply)] = replies_to(deliveries, conversation)
        assert (reply["title"], reply["mentions"]) == ("release-app-y 2026.78 failed in stage Integration tests", [])
        assert broadcasts_to(deliveries, conversation) == [(reply["title"], False)]


async def test_a_failure_under_a_card_whose_first_post_is_still_queued_is_told_once_by_that_card(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = stores
    ingest = ingest_for(first)
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    bob_mentioned = [{"name": "Bob Chen", "email": "bob@contoso.com"}]

    def failed_by_bob(run_id: str) -> RunStateChanged:
        return replace(failed(run_id), actor=bob)

    # a run failing before its card was posted; one whose events came in one batch; one posted before it failed
    await ingest.accept(started("77"))
    await ingest.accept(failed_by_bob("77"))
    await ingest.accept_all([started("78"), failed_by_bob("78")])
    await ingest.accept(started("79"))
    deliveries = await delivered(first)
    await ingest.accept(failed_by_bob("79"))
    deliveries += await delivered(first)
    for conversation in (SLACK, TEAMS):
        replies = [
            (d.payload["card"]["title"], d.payload.get("broadcast", False), d.payload["card"]["mentions"])
            for d in deliveries
            if d.conversation == conversation and d.payload["op"] == "reply"
        ]
        # the queued post shows the failed card, calling on bob: its reply stays in the thread, quietly
        assert replies == [
            (run_failure("77", False)[0], False, []),
            (run_failure("78", False)[0], False, []),
            (run_failure("79", True)[0], True, bob_mentioned),
        ]
        newest = {
            d.grouping_key: d.payload["card"]
            for d in deliveries
            if d.conversation == conversation and d.payload["op"] == "card"
        }
        assert newest[run("77").run_key]["mentions"] == newest[run("78").run_key]["mentions"] == bob_mentioned

    # a card another process posted counts as posted
    other = ingest_for(second)
    await ingest.accept(started("80"))
    await delivered(second)
    await other.accept(failed_by_bob("80"))
    assert broadcasts_to(await delivered(first), SLACK) == [run_failure("80", True)]


@pytest.mark.parametrize("under_way", [False, True], ids=["first-post-queued", "first-post-under-way"])
async def test_a_failure_while_its_cards_first_post_is_under_way_is_still_told_in_the_conversation(
    stores: tuple[SqlStore, SqlStore], under_way: bool
) -> None:
    """A failure that comes while its card's first post is queued is told by that post (it shows the failed
    card, calling on bob), and its reply stays quietly in the thread. One that comes while that post is under
    way, the running card read already, is told by its reply: the post shows the run going, and the failure
    only changes it."""
    store, _ = stores
    clock = FakeClock(T0)
    ingest = Ingest(store, [Subscription((SLACK,), Filters.from_mapping({"events": ["run", "stage"]}))], clock)
    channel = RecordingChannel()
    outbox = OutboxWorker(store, {"slack": channel}, clock)
    outbox.limiters = {"slack": SlidingWindowLimiter(((1000, 1.0),), clock)}  # the platform's limits aside
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    await ingest.accept(started())
    if under_way:
        channel.held[SLACK.conversation_id] = asyncio.Event()
        posting = asyncio.create_task(outbox.run_once())
        await channel.until_holding(SLACK.conversation_id)
    await ingest.accept(replace(failed("77"), actor=bob))
    if under_way:
        channel.held[SLACK.conversation_id].set()
        await posting
    await clock.advance(5)  # past the moment an update waits to coalesce
    await outbox.drain()

    failure = run_failure("77", under_way)[0]
    [(reply, broadcast)] = channel.replies
    called_on = [m.email for m in reply.mentions]
    assert (reply.title, broadcast, called_on) == (failure, under_way, [bob.email] if under_way else [])
    shown = [(call, card.status) for (call, _, _), card in zip(channel.calls, channel.cards, strict=True)]
    if under_way:
        assert shown == [("post", Status.RUNNING), ("update", Status.FAILED), ("reply", Status.FAILED)]
    else:
        assert shown == [("post", Status.FAILED), ("reply", Status.FAILED)]
    assert [m.email for m in channel.cards[-2].mentions] == [bob.email]  # the card calls on bob in both cases
    assert await store.count_deliveries() == {"pending": 0, "sent": 3, "dead": 0, "unreachable": 0}


async def test_replies_that_report_no_trouble_stay_in_the_thread(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    ingest = Ingest(store, [Subscription((SLACK,), Filters.from_mapping({"events": ["approval"]}))], FakeClock(T0))
    common: dict[str, Any] = {"source": "azure-devops", "occurred_at": T0, "scope": "contoso", "approval_id": "a-1"}
    await ingest.accept(ApprovalPending(event_id="a-1-pending", **common))
    await ingest.accept(ApprovalCompleted(event_id="a-1-done", status="rejected", **common))
    [(title, broadcast)] = broadcasts_to(await delivered(store), SLACK)
    assert title.startswith("Rejected") and broadcast is False


MODELS_ONLY = ConversationAddress("slack", "C0MODELS")  # follows model versions, no runs


async def hand_off(ingest: Ingest, run_id: str, state: str, result: str | None = None) -> bool:
    """The model handoff reports app-y's integration run ``run_id`` (of model-x version ``run_id``) on the
    app's handoff card, shown in SLACK and MODELS_ONLY."""
    integration = {"state": state, "result": result, "pipeline": "release-app-y", "name": f"2026.{run_id}"}
    event = AppHandoffChanged(
        source="handoff",
        event_id=f"app-y-{run_id}-{state}",
        occurred_at=T0,
        model_name="model-x",
        model_version=run_id,
        app="app-y",
        check={"verdict": "compatible", "integration": {**integration, "run_id": run_id, "project": "mlops"}},
    )
    return await ingest.accept(event, also_to=(SLACK, MODELS_ONLY), told_by=run(run_id).run_key)


def handoff_failure(run_id: str, broadcast: bool) -> tuple[str, bool]:
    return (f"Integration release-app-y 2026.{run_id}: failed", broadcast)


def run_failure(run_id: str, broadcast: bool) -> tuple[str, bool]:
    return (f"release-app-y 2026.{run_id} failed", broadcast)


async def test_a_handoff_failure_about_a_run_is_not_told_again_where_the_runs_own_card_tells_it(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    ingest = ingest_for(store)  # runs to SLACK and TEAMS
    for run_id, handoff_first in (("77", True), ("78", False)):
        await hand_off(ingest, run_id, "queued")
        await ingest.accept(started(run_id))  # the run's card, in SLACK since the run started
        await delivered(store)  # both cards are posted
        if handoff_first:  # Handoff's polling saw the failure before Azure DevOps' event came
            await hand_off(ingest, run_id, "completed", "failed")
            await ingest.accept(failed(run_id))
        else:
            await ingest.accept(failed(run_id))
            await hand_off(ingest, run_id, "completed", "failed")
        deliveries = await delivered(store)
        # one notice in the conversation, whichever came first: the run card's own
        assert broadcasts_to(deliveries, SLACK) == [run_failure(run_id, True)]
        # a conversation that shows no card of the run is told in the channel, as before
        assert broadcasts_to(deliveries, MODELS_ONLY) == [handoff_failure(run_id, True)]


async def test_a_handoff_reply_is_broadcast_where_the_runs_card_is_shown_only_after_it(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    ingest = ingest_for(store)
    await hand_off(ingest, "77", "queued")
    await delivered(store)  # the handoff's card is posted
    await hand_off(ingest, "77", "completed", "failed")  # no card of the run anywhere yet
    # Azure DevOps' events come later: the run's card is shown with the failure, which it says itself
    await ingest.accept(failed("77"))
    await ingest.accept(started("77"))
    assert broadcasts_to(await delivered(store), SLACK) == [handoff_failure("77", True), run_failure("77", False)]


async def test_where_a_runs_card_is_shown_is_read_within_the_batch_and_from_other_processes(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = stores
    batches = batch_sizes(first)
    one, other = ingest_for(first), ingest_for(second)
    # the run's card and the handoff's failure written together, the run's event first
    await hand_off(one, "77", "queued")
    await asyncio.gather(one.accept(started("77")), hand_off(one, "77", "completed", "failed"))
    assert batches[-1] == 2
    assert broadcasts_to(await delivered(first), SLACK) == []
    # another process showed the run's card: this one has not seen it, and asks the store
    await hand_off(one, "78", "queued")
    await other.accept(started("78"))
    await hand_off(one, "78", "completed", "failed")
    assert broadcasts_to(await delivered(first), SLACK) == []


async def test_a_failure_mentions_its_requester_unless_every_subscription_turned_mentions_off(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    subscriptions = [*SUBSCRIPTIONS, to_quiet(mentions="off"), to_quiet(TEAMS, mentions=False)]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    await ingest.accept(started())
    await ingest.accept(replace(stage_done("deploy", result="failed"), actor=bob))
    mentioned = {
        d.conversation: d.payload["card"]["mentions"] for d in await delivered(store) if d.payload["op"] == "reply"
    }
    bob_mentioned = [{"name": "Bob Chen", "email": "bob@contoso.com"}]
    # Teams: one of its two subscriptions leaves mentions on
    assert mentioned == {SLACK: bob_mentioned, TEAMS: bob_mentioned, QUIET: []}


async def test_a_repeat_folded_where_mentions_are_off_names_the_requester_once_without_a_mention(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    clock = FakeClock(T0)
    quiet_limited = {**FAILURES_ONLY, "repeat_limit": "30m", "mentions": "off"}
    ingest = Ingest(store, [Subscription((QUIET,), Filters.from_mapping(quiet_limited))], clock)
    bob = Person(name="Bob Okafor", email="bob@contoso.com")

    def failed_by_bob(run_id: str) -> RunStateChanged:
        return replace(failed(run_id), actor=bob, failing_stage="Integration tests")

    assert await ingest.accept(failed_by_bob("1"))
    [first] = [d.payload["card"] for d in await delivered(store) if d.payload["op"] == "card"]
    assert first["mentions"] == []
    assert {"label": "Requested by", "value": "Bob Okafor"} in first["facts"]
    assert "For:" not in first["summary"]  # the fact names him already

    await clock.advance(10 * 60)
    assert await ingest.accept(failed_by_bob("2"))
    [(under, reply)] = replies_to(await delivered(store), QUIET)
    assert under == run("1").run_key
    assert reply["mentions"] == []  # named, not pinged
    assert {"label": "Requested by", "value": "Bob Okafor"} in reply["facts"]
    assert reply["summary"] == (
        "Failed at stage Integration tests. Again within 30 min: shown in this thread instead of as a new card."
    )


async def test_a_compact_card_where_mentions_are_off_still_names_who_it_calls_on(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    ingest = Ingest(store, [to_quiet(mentions="off", card_format="compact")], FakeClock(T0))
    bob = Person(name="Bob Okafor", email="bob@contoso.com")
    assert await ingest.accept(replace(failed("1"), actor=bob))
    [card] = [d.payload["card"] for d in await delivered(store) if d.payload["op"] == "card"]
    assert card["mentions"] == [] and card["facts"] == []
    assert card["summary"] == "For: Bob Okafor"  # no fact left to name him


async def test_a_waiting_gate_calls_on_its_approvers_where_mentions_are_on(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    approvals = {"events": ["approval"]}
    subscriptions = [
        Subscription((SLACK, TEAMS), Filters.from_mapping(approvals)),
        Subscription((QUIET,), Filters.from_mapping({**approvals, "mentions": "off"})),
    ]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    carol = Approver(person=Person(name="Carol", email="carol@contoso.com"))
    common: dict[str, Any] = {"source": "azure-devops", "occurred_at": T0, "scope": "contoso", "approval_id": "a-2"}
    await ingest.accept(ApprovalPending(event_id="a-2-pending", approvers=(carol,), **common))
    cards = {d.conversation: d.payload["card"] for d in await delivered(store) if d.payload["op"] == "card"}
    assert {c: card["mentions"] for c, card in cards.items()} == {
        SLACK: [{"name": "Carol", "email": "carol@contoso.com"}],
        TEAMS: [{"name": "Carol", "email": "carol@contoso.com"}],
        QUIET: [],  # named on the card, not pinged
    }
    assert cards[QUIET]["facts"] == cards[SLACK]["facts"]


async def test_a_conversation_handoff_was_removed_from_gets_nothing_until_it_is_back(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, other_process = stores
    clock = FakeClock(T0)
    ingest = Ingest(store, SUBSCRIPTIONS, clock)
    await store.save_conversation(ConversationRecord(TEAMS, "Contoso ML / Releases", updated_at=T0))
    assert await ingest.accept(started("1"))
    assert {d.conversation for d in await delivered(store)} == {SLACK, TEAMS}

    await other_process.deactivate_conversation(TEAMS)  # removed from the team, as another replica heard
    await clock.advance(SUBSCRIPTION_CACHE_SECONDS + 1)
    assert await ingest.accept(started("2"))
    assert {d.conversation for d in await delivered(store)} == {SLACK}

    await other_process.save_conversation(ConversationRecord(TEAMS, "Contoso ML / Releases", updated_at=T0))
    await clock.advance(SUBSCRIPTION_CACHE_SECONDS + 1)
    assert await ingest.accept(started("3"))
    assert {d.conversation for d in await delivered(store)} == {SLACK, TEAMS}


async def test_a_conversation_showing_a_card_gets_none_of_its_events_while_inactive_and_the_next_once_back(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, other_process = stores
    clock = FakeClock(T0)
    ingest = Ingest(store, SUBSCRIPTIONS, clock)
    command_conversation = ConversationAddress("slack", "C0COMMANDS")
    assert await ingest.accept(started("1"), also_to=[command_conversation])
    assert {d.conversation for d in await delivered(store)} == {SLACK, TEAMS, command_conversation}

    for gone in (TEAMS, command_conversation):  # removed from the team and from the channel, as another replica heard
        await other_process.save_conversation(ConversationRecord(gone, "", active=False, updated_at=T0))
    await clock.advance(SUBSCRIPTION_CACHE_SECONDS + 1)
    assert await ingest.accept(stage_done("stage-0", "1"), also_to=[command_conversation])
    assert await ingest.accept(stage_done("stage-1", "1", result="failed"), also_to=[command_conversation])
    assert [(d.conversation, d.payload["op"]) for d in await delivered(store)] == [
        (SLACK, "card"),
        (SLACK, "card"),
        (SLACK, "reply"),
    ]
    [state] = (await store.get_card_states([started("1").grouping_key])).values()
    assert state is not None and len(state.state["conversations"]) == 3  # still shown there, once back

    await other_process.save_conversation(ConversationRecord(TEAMS, "Contoso ML / Releases", updated_at=T0))
    await clock.advance(SUBSCRIPTION_CACHE_SECONDS + 1)
    assert await ingest.accept(stage_done("stage-2", "1"), also_to=[command_conversation])
    back = await delivered(store)
    assert [(d.conversation, d.payload["op"]) for d in back] == [(SLACK, "card"), (TEAMS, "card")]
    assert "stage-1" in json.dumps(back[1].payload["card"])  # the card as it stands, the stages it missed included


# --- any order, any redelivery, any batching ----------------------------------------------------------------


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[RunStateChanged | StageStateChanged], list[list[Any]]]:
    """A run's events in the order they happened, and as they arrived: in any order, some of them again,
    in groups that arrive together (one batch, or batches that overlap)."""
    names = draw(st.lists(st.sampled_from(["Build", "Tests", "Deploy"]), min_size=1, max_size=3, unique=True))
    failing = draw(st.lists(st.sampled_from(names), unique=True))
    happened: list[RunStateChanged | StageStateChanged] = [started()]
    for name in names:
        happened += [stage_done(name, result="failed" if name in failing else "succeeded")]
    end = run_state("completed", T0, "failed" if failing else "succeeded")
    happened.append(replace(end, failing_stage=failing[0]) if failing and draw(st.booleans()) else end)
    again = draw(st.lists(st.sampled_from(happened), max_size=4))
    arrived: list[Any] = draw(st.permutations([*happened, *again]))
    cuts = sorted(draw(st.sets(st.integers(1, len(arrived) - 1), max_size=3)))
    groups = [arrived[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrived)], strict=True)]
    return happened, groups, draw(st.integers(1, 2))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals())
def test_a_run_ends_in_one_card_as_if_its_events_came_in_order_once(
    history: tuple[list[RunStateChanged | StageStateChanged], list[list[Any]], int],
) -> None:
    """A run's events, in any order, some again, in any batches, end in one card as if they came in order
    once, on one process or on two (replicas on one database: each group goes to the other process than the
    last, and the two ingest their groups together)."""
    happened, groups, processes = history
    state: dict[str, Any] | None = None
    replies = 0
    for event in happened:
        merged = merge(state, event)
        state, replies = merged.state, replies + len(merged.replies)
    assert state is not None

    async def ingest_all() -> tuple[CardState | None, list[Delivery], int]:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/handoff.db"
            stores = [await SqlStore.open(url, migrate=n == 0) for n in range(processes)]
            try:
                ingests = [Ingest(store, SUBSCRIPTIONS, FakeClock(T0)) for store in stores]
                stored = 0
                for turn in range(0, len(groups), processes):  # each group together: one batch, or a few
                    together = zip(ingests, groups[turn : turn + processes], strict=False)
                    stored += sum(await asyncio.gather(*(i.accept(event) for i, group in together for event in group)))
                return await stores[0].get_card_state(run().run_key), await delivered(stores[0]), stored
            finally:
                for store in stores:
                    await store.close()

    card, deliveries, stored = asyncio.run(ingest_all())
    assert stored == len(happened)  # each event once, whatever came again
    assert card is not None
    shown, expected = render(card.state), render(state)
    assert (shown.status, shown.summary, set(shown.steps)) == (expected.status, expected.summary, set(expected.steps))
    for conversation in (SLACK, TEAMS):
        assert cards_to(deliveries, conversation)[:1] == [run().run_key]
        assert len(replies_to(deliveries, conversation)) == replies  # a failure is told once


async def test_a_muted_conversation_keeps_a_card_it_shows_current_silently_until_the_mute_ends(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    runs = Filters.from_mapping({"events": ["run", "stage"]})
    clock = FakeClock(T0)
    ingest = Ingest(store, [Subscription((SLACK,), runs)], clock)
    await ingest.accept(started("77"))
    await ingest.accept(started("78"))
    await delivered(store)  # both cards are shown

    muted = T0 + timedelta(minutes=10)
    ingest.configured = [Subscription((SLACK,), runs, muted_until=muted)]
    await ingest.accept(replace(failed("77"), actor=bob))
    await ingest.accept(started("79"))  # a new run: not shown at all while muted
    deliveries = await delivered(store)
    # the card shows the failure, naming bob without calling on him; nothing is said in its thread
    [update] = [d for d in deliveries if d.payload["op"] == "card"]
    assert update.grouping_key == run("77").run_key and update.payload["card"]["status"] == "failed"
    assert update.payload["card"]["mentions"] == []
    assert broadcasts_to(deliveries, SLACK) == []

    await clock.advance(20 * 60)  # the mute is over: a failure is told, and called on, again
    await ingest.accept(replace(failed("78"), actor=bob))
    deliveries = await delivered(store)
    assert broadcasts_to(deliveries, SLACK) == [run_failure("78", True)]
    [card] = [d for d in deliveries if d.payload["op"] == "card"]
    assert card.payload["card"]["mentions"] == [{"name": "Bob Chen", "email": "bob@contoso.com"}]


async def test_a_muted_subscription_of_runs_keeps_its_card_quiet_beside_an_unmuted_one_of_other_kinds(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """The channel follows runs and, separately, new models; muting the runs' subscription while a run's card is
    shown keeps its failure quiet there: the subscription of models does not speak for runs."""
    store, _ = stores
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    runs = Filters.from_mapping({"events": ["run", "stage"]})
    models = Filters.from_mapping({"events": ["model_registered"]})
    ingest = Ingest(store, [Subscription((SLACK,), runs), Subscription((SLACK,), models)], FakeClock(T0))
    await ingest.accept(started("77"))
    await delivered(store)

    muted = T0 + timedelta(minutes=10)
    ingest.configured = [Subscription((SLACK,), runs, muted_until=muted), Subscription((SLACK,), models)]
    await ingest.accept(replace(failed("77"), actor=bob))
    deliveries = await delivered(store)
    [update] = [d for d in deliveries if d.payload["op"] == "card"]
    assert update.payload["card"]["status"] == "failed" and update.payload["card"]["mentions"] == []
    assert broadcasts_to(deliveries, SLACK) == [] and replies_to(deliveries, SLACK) == []


@pytest.mark.parametrize("settings", [{}, {"card_format": "compact"}])
async def test_a_run_shown_before_it_failed_in_a_stage_a_conversation_leaves_out_is_kept_current_there_quietly(
    stores: tuple[SqlStore, SqlStore], settings: dict[str, str]
) -> None:
    """SLACK follows runs failing in Integration*, TEAMS every run. A run is shown in both as it starts (its stage is
    not known yet); its failure in Train changes its card in SLACK without calling on anyone or saying anything
    in its thread, and is told in TEAMS. A run that fails in Integration tests is told in both (a stage that
    succeeded before it does not silence it)."""
    store, _ = stores
    bob = Person(name="Bob Chen", email="bob@contoso.com")
    integration = Filters.from_mapping({"events": ["run"], "stages": ["Integration*"], **settings})
    subscriptions = [
        Subscription((SLACK,), integration),
        Subscription((TEAMS,), Filters.from_mapping({"events": ["run"]})),
    ]
    ingest = Ingest(store, subscriptions, FakeClock(T0))
    await ingest.accept(replace(started("77"), actor=bob))
    await delivered(store)  # shown in both
    await ingest.accept(stage_done("build"))
    await ingest.accept(stage_done("Train", result="failed"))
    await ingest.accept(replace(failed("77"), actor=bob, failing_stage="Train"))
    deliveries = await delivered(store)
    told = ("release-app-y 2026.77 failed in stage Train", True)
    assert broadcasts_to(deliveries, TEAMS) == [told]
    assert broadcasts_to(deliveries, SLACK) == []
    [*_, card] = [d.payload["card"] for d in deliveries if d.conversation == SLACK and d.payload["op"] == "card"]
    assert card["status"] == "failed" and "Train" in json.dumps(card)
    assert card["mentions"] == []

    await ingest.accept(replace(started("78"), actor=bob))
    await delivered(store)
    await ingest.accept(stage_done("build", run_id="78"))
    tests_failed = replace(stage_done("IntegrationTests", "78", "failed"), stage_display_name="Integration tests")
    await ingest.accept(tests_failed)
    await ingest.accept(replace(failed("78"), actor=bob, failing_stage="Integration tests"))
    deliveries = await delivered(store)
    told = ("release-app-y 2026.78 failed in stage Integration tests", True)
    assert broadcasts_to(deliveries, SLACK) == broadcasts_to(deliveries, TEAMS) == [told]
    [(_, reply)] = replies_to(deliveries, SLACK)
    assert reply["mentions"] == [{"name": "Bob Chen", "email": "bob@contoso.com"}]


async def test_a_gate_comes_where_the_model_its_run_is_for_is_followed(stores: tuple[SqlStore, SqlStore]) -> None:
    store, _ = stores
    # one subscription that shapes its cards (routed with options), one that does not (routed plainly)
    following = [
        Subscription(
            (SLACK,), Filters.from_mapping({"events": ["approval"], "models": ["model-x"], "card_format": "compact"})
        ),
        Subscription((TEAMS,), Filters.from_mapping({"events": ["approval"], "models": ["model-x"]})),
    ]
    ingest = Ingest(store, following, FakeClock(T0))
    assert await ingest.accept(replace(started(), for_model="model-x:8"))
    gate = ApprovalPending(source="azure-devops", event_id="ap-1", occurred_at=T0, approval_id="ap-1", run=run("77"))
    assert await ingest.accept(gate)  # its hook does not say which model version its run is for: the run's card does
    sent = {d.conversation for d in await delivered(store) if d.grouping_key == gate.grouping_key}
    assert sent == {SLACK, TEAMS}


async def test_a_subscription_removed_while_they_are_read_routes_nothing_after(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    store, _ = stores
    subscription_id, _ = await store.add_subscription(StoredSubscription(SLACK, {"events": ["run"]}, "bob", T0))
    ingest = Ingest(store, [], FakeClock(T0))
    list_subscriptions, release = store.list_subscriptions, asyncio.Event()

    async def read_then_wait(conversation: ConversationAddress | None = None) -> list[StoredSubscription]:
        rows = await list_subscriptions(conversation)
        await release.wait()  # (the read is under way while `unsubscribe` removes the subscription)
        return rows

    store.list_subscriptions = read_then_wait  # type: ignore[method-assign]
    first = asyncio.ensure_future(ingest.accept(started("77")))
    await asyncio.sleep(0.05)
    assert await store.remove_subscription(subscription_id)
    ingest.forget_subscriptions()
    release.set()
    assert await first  # read before the removal: it goes where the subscription said
    assert await ingest.accept(started("78"))
    assert {d.grouping_key for d in await delivered(store)} == {started("77").grouping_key}


async def test_events_a_held_up_store_did_not_take_together_fail_together_not_one_at_a_time_again(
    store_url: str,
) -> None:
    """A lock another process or session holds past the write's time limit: the batch fails as a whole, each of its
    callers is told (their hooks answer 503), and its events are not written one at a time after it, each waiting
    as long again; once the lock is gone they are stored."""
    store = await SqlStore.open(store_url)
    try:
        store.engine.write_timeout = 0.3  # type: ignore[attr-defined]
        ingest = ingest_for(store)
        events = [started(str(run_id)) for run_id in range(80, 84)]
        sizes = batch_sizes(store)
        async with write_lock_held(store):
            outcomes = await asyncio.gather(*(ingest.accept(e) for e in events), return_exceptions=True)
        assert all(isinstance(outcome, IngestFailed) for outcome in outcomes), outcomes
        assert sizes == [len(events)]
        assert await asyncio.gather(*(ingest.accept(e) for e in events)) == [True] * len(events)
    finally:
        await store.close()
