"""The PostgreSQL engine's own ingest connection: it survives the server dropping it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from adapters.sql import SqlStore
from adapters.sql.engine import PostgresEngine
from bot.ports import EventRecord, StaleWrite
from bot.records import CardState, ReceivedEvent
from tests.databases import POSTGRES_URL

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def event(key: str) -> EventRecord:
    return EventRecord(ReceivedEvent(key, "azure-devops", "run", NOW, {"n": key}))


# the shared ``store`` fixture, on PostgreSQL only
pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


def engine_of(store: SqlStore) -> PostgresEngine:
    engine = store.engine
    assert isinstance(engine, PostgresEngine)
    return engine


async def drop_ingest_connection(store: SqlStore) -> None:
    """The server ends the ingest connection (a restart, a failover, an administrator)."""
    raw = engine_of(store)._raw
    assert raw is not None
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", raw.get_server_pid())
    finally:
        await admin.close()


async def test_a_connection_dropped_while_idle_is_replaced_before_the_next_write(store: SqlStore) -> None:
    assert await store.record_events([event("e1")]) == [True]
    await drop_ingest_connection(store)
    engine_of(store)._raw_used_at = 0.0

    assert await store.record_events([event("e2"), event("e1")]) == [True, False]

    assert await store.known_events(["e1", "e2"]) == {"e1", "e2"}


async def test_a_connection_the_server_ended_is_replaced_at_once(store: SqlStore) -> None:
    assert await store.record_events([event("e1")]) == [True]
    old = engine_of(store)._raw
    assert old is not None
    await drop_ingest_connection(store)
    for _ in range(500):  # the client sees the connection end as soon as the server's side closes
        if old.is_closed():
            break
        await asyncio.sleep(0.01)

    assert await store.record_events([event("e2")]) == [True]  # no quiet spell: the loss itself was noticed

    assert engine_of(store)._raw is not old
    assert await store.known_events(["e1", "e2"]) == {"e1", "e2"}


async def test_a_lost_compare_and_set_keeps_the_connection(store: SqlStore) -> None:
    assert await store.record_events([event("e1")]) == [True]
    kept = engine_of(store)._raw
    stale = EventRecord(ReceivedEvent("e2", "azure-devops", "run", NOW), card_state=CardState("run:9", 5, {}))

    with pytest.raises(StaleWrite):
        await store.record_events([stale])

    assert engine_of(store)._raw is kept and await store.known_events(["e2"]) == set()


async def test_closing_the_store_closes_the_ingest_connection(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    await store.record_events([event("e1")])
    raw = engine_of(store)._raw
    assert raw is not None and not raw.is_closed()

    await store.close()

    assert raw.is_closed()
