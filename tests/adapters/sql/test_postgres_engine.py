"""The PostgreSQL engine's own ingest connection: it survives the server dropping it, and a write it cannot finish
(a lock another session holds, a server gone silent) fails instead of holding up the ingest for ever."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from adapters.sql import SqlStore
from adapters.sql.engine import PostgresEngine
from bot.ports import EventRecord, StaleWrite, StoreNotAnswering
from bot.records import CardState, ReceivedEvent
from tests.databases import POSTGRES_URL
from tests.silent_proxy import SilentProxy

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


# A bound on the test, not a timing assertion: the write fails after its write_timeout; before, it waited for ever.
FAILS_WITHIN = 20.0


async def failure_of(write: Coroutine[Any, Any, object]) -> BaseException | None:
    """What ``write`` raised; the test fails if it is still waiting after FAILS_WITHIN."""
    task = asyncio.ensure_future(write)
    await asyncio.wait({task}, timeout=FAILS_WITHIN)
    if not task.done():
        task.cancel()
        pytest.fail(f"the write was still waiting after {FAILS_WITHIN} s")
    return task.exception()


async def test_a_write_another_session_holds_up_fails_and_the_next_goes_through(store: SqlStore) -> None:
    engine_of(store).write_timeout = 0.5
    assert await store.record_events([event("e1")]) == [True]
    other = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await other.execute("BEGIN")
        await other.execute(f'LOCK TABLE "{engine_of(store).schema}".received_events IN ACCESS EXCLUSIVE MODE')
        assert not_answered_in_time(await failure_of(store.record_events([event("e2")])))
    finally:
        await other.close()

    assert await store.record_events([event("e3")]) == [True]
    assert await store.known_events(["e1", "e2", "e3"]) == {"e1", "e3"}


async def test_a_write_on_a_connection_gone_silent_fails_and_the_next_goes_through_once_it_answers(
    store_url: str,
) -> None:
    proxy = SilentProxy()
    await proxy.start()
    store = await SqlStore.open(proxy.url_through(store_url))
    try:
        engine_of(store).write_timeout = 0.5
        assert await store.record_events([event("e1")]) == [True]

        proxy.passing.clear()
        assert await failure_of(store.record_events([event("e2")])) is not None
        # (the connection is closed; a new one gets no answer either)
        assert not_answered_in_time(await failure_of(store.record_events([event("e2")])))

        proxy.passing.set()
        assert await asyncio.wait_for(store.record_events([event("e3")]), FAILS_WITHIN) == [True]
        assert await store.known_events(["e1", "e2", "e3"]) == {"e1", "e3"}
    finally:
        proxy.passing.set()
        await store.close()
        await proxy.close()


def not_answered_in_time(failure: BaseException | None) -> bool:
    """Whether the store said it did not take the write because the database did not answer in time."""
    return isinstance(failure, StoreNotAnswering) and isinstance(failure.__cause__, TimeoutError)


async def test_a_pooled_connection_the_server_ended_between_two_statements_fails_as_store_trouble_and_is_not_lent_again(
    store_url: str,
) -> None:
    # the server's goodbye reaches Handoff, the end of the connection only seconds later
    proxy = SilentProxy(close_delay=5.0)
    await proxy.start()
    name = f"handoff_test_{uuid.uuid4().hex[:8]}"  # (its own sessions alone are ended: others share the server)
    store = await SqlStore.open(proxy.url_through(f"{store_url}&application_name={name}"))
    try:
        async with store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            lent = (await conn.get_raw_connection()).driver_connection
            await end_sessions_of(name)
            await asyncio.sleep(0.3)
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(text("SELECT 1"))
        assert store.unavailable(failed.value)  # expected trouble, not a mistake
        assert lent.is_closed()  # closed by Handoff, though nothing told it the connection ended yet

        assert await asyncio.wait_for(store.list_gates(), FAILS_WITHIN) == []  # on a new connection
    finally:
        await store.close()
        await proxy.close()


async def end_sessions_of(application_name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1"
        assert await admin.fetch(sql, application_name)
    finally:
        await admin.close()
