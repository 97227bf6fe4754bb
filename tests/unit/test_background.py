"""Background work: failures are logged, and what is still running or waiting is stopped on close."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from bot.background import BackgroundWork

log = logging.getLogger("handoff.test.background")


async def test_a_failure_is_logged_and_the_rest_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    work = BackgroundWork(log, "test work")
    done: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def succeeds() -> None:
        done.append("ok")

    work.spawn(fails())
    work.spawn(succeeds())
    await asyncio.sleep(0.01)
    assert done == ["ok"]
    assert "test work failed" in caplog.text
    assert not work.tasks


async def test_close_stops_running_work_and_drops_unstarted_work_quietly() -> None:
    work = BackgroundWork(log, "test work")
    started = asyncio.Event()
    stopped: list[str] = []

    async def long_running() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            stopped.append("running")

    async def never_started() -> None:
        stopped.append("never")  # pragma: no cover (it must not run)

    work.spawn(long_running())
    await started.wait()
    unstarted = never_started()
    work.spawn(unstarted)  # closed before its task ever runs
    await work.close()
    assert stopped == ["running"]
    assert not work.tasks
    # closed, not left for the garbage collector to warn that it was "never awaited"
    assert inspect.getcoroutinestate(unstarted) == inspect.CORO_CLOSED


async def test_work_offered_after_close_is_dropped_instead_of_running_unwatched() -> None:
    work = BackgroundWork(log, "test work")
    await work.close()
    ran: list[str] = []

    async def late() -> None:
        ran.append("late")  # pragma: no cover (it must not run)

    offered = late()
    work.spawn(offered)  # another part, still stopping, offers more work
    await asyncio.sleep(0.01)
    assert ran == []
    assert not work.tasks
    assert inspect.getcoroutinestate(offered) == inspect.CORO_CLOSED
