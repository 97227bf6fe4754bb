"""Forgetting old rows a few at a time: every row goes, and the hooks' writes go between."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from adapters.sql import SqlStore
from adapters.sql.retention import forget_rows
from adapters.sql.tables import received_events, repeat_marks
from bot.ports import EventRecord
from bot.records import CardState, ConversationAddress, ReceivedEvent, RepeatMark

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=5)


def received(key: str, at: datetime) -> EventRecord:
    return EventRecord(ReceivedEvent(dedupe_key=key, source="azure-devops", kind="run", received_at=at, payload={}))


async def count(store: SqlStore, table: str) -> int:
    chosen = {"received_events": received_events, "repeat_marks": repeat_marks}[table]
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(chosen))).scalar_one())


async def test_a_backlog_is_forgotten_in_chunks_and_only_what_is_old(store: SqlStore) -> None:
    await store.record_events([received(f"old-{i}", LONG_AGO) for i in range(25)])
    await store.record_events([received(f"new-{i}", NOW) for i in range(3)])
    old = received_events.c.received_at < NOW - timedelta(hours=72)
    assert await forget_rows(store.engine, received_events, old, chunk=4) == 25
    assert await count(store, "received_events") == 3
    assert await forget_rows(store.engine, received_events, old, chunk=4) == 0


async def test_rows_with_a_key_of_several_columns_are_forgotten_in_chunks(store: SqlStore) -> None:
    marks = [
        RepeatMark(ConversationAddress("slack", f"C{i % 3}"), f"pipeline:{i}:failed", f"run:{i}", LONG_AGO)
        for i in range(11)
    ]
    await store.record_events([EventRecord(ReceivedEvent("e", "azure-devops", "run", NOW, {}), repeat_marks=marks)])
    assert await forget_rows(store.engine, repeat_marks, repeat_marks.c.shown_at < NOW, chunk=4) == 11
    assert await count(store, "repeat_marks") == 0


async def test_cards_are_forgotten_in_chunks(store: SqlStore) -> None:
    await store.record_events(
        [
            replace(received(f"e-{i}", LONG_AGO), card_state=CardState(f"run:{i}", 1, {"state": "completed"}))
            for i in range(7)
        ]
    )
    assert await store.forget_cards_before(NOW, chunk=3) == 7
    assert await store.get_card_states([f"run:{i}" for i in range(7)]) == {}


# SQLite has one write lock, which the chunks hand on to the writes waiting for it; PostgreSQL's row locks
# never made an insert wait for a delete
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_the_hooks_writes_go_between_the_chunks(store: SqlStore) -> None:
    await store.record_events([received(f"old-{i}", LONG_AGO) for i in range(40)])
    old = received_events.c.received_at < NOW - timedelta(hours=72)
    forgetting = asyncio.ensure_future(forget_rows(store.engine, received_events, old, chunk=2))
    await asyncio.sleep(0)  # the first chunk has the write lock
    assert await store.record_events([received("arriving", NOW)]) == [True]
    # the event was stored while most of the backlog was still there
    assert await count(store, "received_events") > 20
    assert await forgetting == 40
    assert await count(store, "received_events") == 1
