"""The minute loops (housekeeping, forgetting old rows) while the store fails: one line with the cause."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.sql import SqlStore
from bot.app import build_handoff
from bot.clock import FakeClock
from bot.config import parse_settings


async def test_the_minute_loops_say_in_one_line_why_the_store_failed(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = await SqlStore.open(sqlite_url, migrate=False)  # no tables: every statement fails
    handoff = build_handoff(parse_settings({"store": {"url": sqlite_url}}, {}), store, FakeClock())
    stop = asyncio.Event()
    try:
        with caplog.at_level(logging.DEBUG, logger="handoff"):
            loops = [asyncio.create_task(handoff._retention(stop)), asyncio.create_task(handoff._housekeeping(stop))]
            for _ in range(100):
                if len([r for r in caplog.records if r.levelno >= logging.ERROR]) >= 2:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*loops)
    finally:
        await store.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sorted(r.getMessage().split(":")[0] for r in errors) == ["forgetting old rows failed", "housekeeping failed"]
    for record in errors:
        assert "no such table" in record.getMessage() and "\n" not in record.getMessage()
        assert record.exc_info is None  # the traceback is for DEBUG
