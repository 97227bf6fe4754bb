"""Readiness: health probes share one check of the store, and a ready answer holds a second."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from adapters.sql import SqlStore
from adapters.sql.migrate import head_revision
from adapters.sql.readiness import Readiness


class Store:
    """What a readiness check asks: how often, and what it answers next (True unless told)."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.asked = 0
        self.answer_now = asyncio.Event()
        self.answer_now.set()

    async def check(self) -> bool:
        self.asked += 1
        await self.answer_now.wait()
        return self.answers.pop(0) if self.answers else True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_probes_that_arrive_together_share_one_check() -> None:
    store = Store()
    store.answer_now.clear()
    ready = Readiness(store.check)
    probes = [asyncio.ensure_future(ready()) for _ in range(30)]
    await asyncio.sleep(0)
    store.answer_now.set()
    assert await asyncio.gather(*probes) == [True] * 30
    assert store.asked == 1


async def test_a_ready_answer_holds_for_its_time_then_the_store_is_asked_again() -> None:
    store, clock = Store(True, False), Clock()
    ready = Readiness(store.check, ready_for=1.0, monotonic=clock)
    assert await ready()
    clock.now += 0.9
    assert await ready()
    assert store.asked == 1
    clock.now += 0.2
    assert not await ready()
    assert store.asked == 2


async def test_not_ready_is_never_kept() -> None:
    store = Store(False, False, True)
    ready = Readiness(store.check, monotonic=Clock())
    assert [await ready() for _ in range(3)] == [False, False, True]
    assert store.asked == 3


async def test_a_probe_that_gives_up_does_not_cancel_the_check_others_wait_for() -> None:
    store = Store()
    store.answer_now.clear()
    ready = Readiness(store.check)
    impatient, patient = asyncio.ensure_future(ready()), asyncio.ensure_future(ready())
    await asyncio.sleep(0)
    impatient.cancel()
    store.answer_now.set()
    assert await patient
    assert impatient.cancelled()
    assert store.asked == 1


async def test_a_store_whose_schema_moved_is_not_ready_once_the_answer_expires(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    try:
        assert await store.is_ready()
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        assert await store.is_ready()  # the answer of a moment ago still holds
        store.readiness.forget()
        assert not await store.is_ready()
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
        assert await store.is_ready()  # not ready was not kept
    finally:
        await store.close()
