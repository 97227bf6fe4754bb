"""The outbox worker while the store fails: it backs off, and the log says so once, not at every poll."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest

from bot.clock import FakeClock
from bot.outbox import OutboxWorker
from bot.records import Delivery


class BrokenStore:
    """A store whose outbox cannot be read while ``broken`` (a dropped schema); empty otherwise."""

    def __init__(self) -> None:
        self.broken = True
        self.claims = 0

    async def claim_deliveries(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        self.claims += 1
        if self.broken:
            try:
                raise OSError('relation "deliveries" does not exist')
            except OSError as cause:
                raise RuntimeError("(driver wrapping) a statement failed\n[SQL: SELECT …]") from cause
        return []


async def spend(clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` of the clock pass in small steps, the worker running between them."""
    for _ in range(int(seconds * 10)):
        await clock.advance(0.1)
        for _ in range(5):
            await asyncio.sleep(0)


async def test_a_failing_store_is_claimed_from_with_backoff_and_logged_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = BrokenStore()
    worker = OutboxWorker(store, {}, clock)  # type: ignore[arg-type]
    stop = asyncio.Event()
    with caplog.at_level(logging.DEBUG, logger="handoff.outbox"):
        running = asyncio.create_task(worker.run(stop))
        await spend(clock, 60)
        claims_while_broken = store.claims
        failing = [r for r in caplog.records if r.levelno >= logging.INFO]
        store.broken = False
        await spend(clock, 30)  # the longest wait (the backoff's cap) that may have begun just before
        claims_since_back = store.claims
        await spend(clock, 40)
        stop.set()
        await running
    # polled every 0.2 s that would be 300 claims; backing off up to 30 s, about ten
    assert 3 <= claims_while_broken <= 12
    assert len(failing) == 1
    assert failing[0].levelno == logging.ERROR
    assert failing[0].getMessage() == (
        'outbox claim failed: OSError: relation "deliveries" does not exist; trying again, and saying so when it works'
    )
    assert failing[0].exc_info is None  # the traceback goes to DEBUG, once
    assert sum(1 for r in caplog.records if r.exc_info) == 1
    recovered = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO][1:]
    assert len(recovered) == 1 and "the store is reachable again" in recovered[0]
    assert store.claims - claims_since_back >= 100  # back to the poll interval once it answers


async def test_a_store_failing_for_long_is_recalled_now_and_then(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    worker = OutboxWorker(BrokenStore(), {}, clock)  # type: ignore[arg-type]
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="handoff.outbox"):
        running = asyncio.create_task(worker.run(stop))
        await spend(clock, 11 * 60)
        stop.set()
        await running
    lines = [r.getMessage() for r in caplog.records]
    assert 2 <= len(lines) <= 3  # the first failure, then a reminder every five minutes
    assert all("still failing" in line for line in lines[1:])
