"""The hooks while the network to PostgreSQL freezes (packets dropped, nothing refused) as the ingest's writer reads
before it writes: the read gives up after the store's write timeout and fails its batch, so the hook is answered
503 and the writer is free to store the next delivery once the network is back; nothing is lost or stored twice."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.sql import SqlStore
from adapters.sql.engine import PostgresEngine
from adapters.sql.tables import card_states, received_events
from bot.clock import FakeClock
from bot.ingest import Ingest as StoringIngest
from bot.ingest import IngestFailed
from bot.ports import StoreNotAnswering
from tests.adapters.ingest.conftest import STORED_AT, IngestFactory
from tests.adapters.ingest.test_hook_deadline import ANSWER_CEILING, rows
from tests.adapters.ingest.test_store_trouble import run_hook
from tests.silent_proxy import SilentProxy

WRITE_TIMEOUT = 1.0
ACCEPTED = {"accepted": 1, "duplicates": 0, "ignored": 0}


# what the writer reads first for run 2's hook: its card (new to this process), or the subscriptions too (changed
# meanwhile, as `subscribe` in chat changes them)
READS = ["card", "subscriptions"]


@pytest.mark.parametrize("read", READS)
async def test_a_read_the_network_freezes_fails_its_batch_and_the_next_delivery_is_stored_once_it_is_back(
    make_ingest: IngestFactory, postgres_url: str, read: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "handoff")
    proxy = SilentProxy(loses_held=True)
    await proxy.start()
    store = await SqlStore.open(proxy.url_through(postgres_url))
    assert isinstance(store.engine, PostgresEngine)
    store.engine.write_timeout = WRITE_TIMEOUT
    sink = StoringIngest(store, [], FakeClock(STORED_AT))
    try:
        async with make_ingest(sink=sink) as ingest:  # (the hooks wait server.hook_timeout's 10 s)
            assert (await ingest.hook(run_hook(1))).json() == ACCEPTED

            if read == "subscriptions":
                sink.forget_subscriptions()
            # the network freezes as the writer reads for run 2's hook
            proxy.passing.clear()
            frozen = await asyncio.wait_for(ingest.hook(run_hook(2)), ANSWER_CEILING)
            assert frozen.status == 503 and frozen.headers["Retry-After"] == "5"
            # answered so because the store did not answer the writer, not because the hook ran out of time
            [refused] = [r for r in caplog.records if "not stored, asked to retry" in r.getMessage()]
            assert refused.exc_info is not None and isinstance(failure := refused.exc_info[1], IngestFailed)
            assert isinstance(failure.__cause__, StoreNotAnswering)

            # the network is back (the connection the frozen read was on is lost for good): the writer goes on
            proxy.passing.set()
            back = await asyncio.wait_for(ingest.hook(run_hook(3)), ANSWER_CEILING)
            assert back.status == 200 and back.json() == ACCEPTED
            # Azure DevOps delivers run 2's hook again
            again = await asyncio.wait_for(ingest.hook(run_hook(2)), ANSWER_CEILING)
            assert again.status == 200 and again.json() == ACCEPTED
        assert await rows(store, received_events) == 3
        assert await rows(store, card_states) == 3
    finally:
        proxy.passing.set()
        await sink.close()
        await store.close()
        await proxy.close()
