"""Background observers while PostgreSQL is out of reach: one warning, no traceback, and the work tried again until
it gets through (a run's end that only its completion event tells is recorded once the store is back)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from adapters.sql import SqlStore
from bot.app import build_handoff
from bot.cards import Card
from bot.clock import FakeClock
from bot.config import parse_settings
from bot.events import PipelineRef, RunStateChanged
from bot.outbox import OutboxWorker
from bot.records import CommandRun, CommandRunState, ConversationAddress, DeliveryState, NewDelivery
from tests.core.recording_channel import RecordingChannel
from tests.databases import postgres_or_skip
from tests.silent_proxy import SilentProxy


@pytest.fixture
async def proxy() -> AsyncIterator[SilentProxy]:
    postgres_or_skip()
    started = SilentProxy()
    await started.start()
    yield started
    await started.close()


async def test_a_runs_end_told_while_the_store_is_out_of_reach_is_recorded_once_it_is_back(
    postgres_url: str, proxy: SilentProxy, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = await SqlStore.open(proxy.url_through(postgres_url))
    handoff = build_handoff(parse_settings({"store": {"url": postgres_url}}, {}), store, clock)
    runner = handoff.runner
    assert runner is not None
    runner._pipelines = {"integrate-app-y"}  # (a pipeline whose runs `integrate` starts)
    try:
        run, _ = await store.start_command_run(
            CommandRun(
                "integrate:app-y:1",
                "bob",
                "slack",
                "C1",
                "integrate",
                "app-y",
                CommandRunState.STARTED,
                clock.now(),
                backend_run_id="41",
                details={"service": "azure-devops", "pipeline": "integrate-app-y"},
            ),
            timedelta(minutes=10),
        )
        ref = PipelineRef(
            organization="contoso", project="mlops", pipeline_id="2", pipeline_name="integrate-app-y", run_id="41"
        )
        ended = RunStateChanged(
            source="azure-devops",
            event_id="run-41-completed",
            occurred_at=clock.now(),
            run=ref,
            state="completed",
            result="succeeded",
        )
        with caplog.at_level(logging.DEBUG, logger="handoff"):
            proxy.cut()  # every connection dropped, new ones refused
            await runner.observe(ended)
            for _ in range(500):  # until the first try has failed, and said so
                if [r for r in caplog.records if r.name == "handoff.runner" and r.levelno >= logging.WARNING]:
                    break
                await asyncio.sleep(0.01)
            await clock.advance(60)  # the next tries fail too: still one warning
            for _ in range(20):
                await asyncio.sleep(0.01)
            proxy.mend()
            for _ in range(100):
                await clock.advance(30)
                found = await store.get_command_run(run.id or 0)
                if found is not None and found.state is CommandRunState.SUCCEEDED:
                    break
                await asyncio.sleep(0.05)
    finally:
        await handoff.close()
        await store.close()
    found = await store_run_state(postgres_url, run.id or 0)
    assert found is CommandRunState.SUCCEEDED
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warned] == ["background command work failed"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.INFO)


async def store_run_state(url: str, run_id: int) -> CommandRunState | None:
    store = await SqlStore.open(url)
    try:
        found = await store.get_command_run(run_id)
        return found.state if found is not None else None
    finally:
        await store.close()


async def test_a_delivery_the_store_failed_mid_attempt_is_warned_of_once_and_delivered_once_it_is_back(
    postgres_url: str, proxy: SilentProxy, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = await SqlStore.open(proxy.url_through(postgres_url))
    slack = RecordingChannel()
    worker = OutboxWorker(store, {"slack": slack}, clock, lease=timedelta(seconds=30))
    where = ConversationAddress("slack", "C1")
    card = Card(title="run 41 succeeded")
    try:
        [delivery_id] = await store.enqueue(
            [NewDelivery(where, "run:41", {"op": "card", "rank": 1, "card": card.to_json()})], clock.now()
        )
        slack.held["C1"] = asyncio.Event()
        with caplog.at_level(logging.DEBUG, logger="handoff"):
            attempt = asyncio.create_task(worker.run_once())
            for _ in range(500):
                if slack.holding:
                    break
                await asyncio.sleep(0.01)
            proxy.cut()  # the post goes out; recording it fails
            slack.held["C1"].set()
            await attempt
            proxy.mend()
            await clock.advance(31)  # its lease runs out: claimed again
            for _ in range(5):
                if not await worker.run_once():
                    break
        delivered = await store.get_delivery(delivery_id)
    finally:
        await store.close()
    assert delivered is not None and delivered.state is DeliveryState.SENT
    assert [title for call, _, title in slack.calls if call == "post"][-1] == "run 41 succeeded"
    warned = [r for r in caplog.records if r.name == "handoff.outbox" and r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warned] == ["outbox delivery failed"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
