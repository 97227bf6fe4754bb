"""Azure DevOps calls through the gateway: Retry-After on any answer pauses the organization's calls."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.gateway import LOW_BUDGET_SPACING, MAX_PAUSE_SECONDS, AzureDevOpsGateway
from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from bot.lifecycle import WORKER_PREFIX
from bot.ports import RunStatus

BUILD = "GET /contoso/mlops/_apis/build/builds/*"


class FakeTime:
    """A monotonic clock and a sleep that moves it, recording each wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Caller:
    """Handoff's Azure DevOps service on a fake clock, asking how one run stands."""

    pipelines: AzureDevOpsPipelines
    time: FakeTime
    run_id: str

    async def ask(self) -> RunStatus:
        return await self.pipelines.run_status("mlops", self.run_id)


@pytest.fixture
async def caller(ado: AzureDevOpsEmulator) -> AsyncIterator[Caller]:
    time = FakeTime()
    connection = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("handoff-bot@contoso.com")))
    pipelines = AzureDevOpsPipelines(connection, AzureDevOpsGateway(clock=time.clock, sleep=time.sleep))
    asking = Caller(pipelines, time, str(ado.start_run("integrate-app-y").id))
    await asking.ask()  # (the SDK's discovery is cached from now on)
    yield asking
    await pipelines.close()


async def test_retry_after_on_a_200_pauses_the_next_call(ado: AzureDevOpsEmulator, caller: Caller) -> None:
    ado.slow_down(retry_after=7)
    status = await caller.ask()  # answered, with advice to wait
    assert status.run_id == caller.run_id and caller.time.slept == []
    assert caller.pipelines.gateway.paused_for == 7
    asked = len(ado.recorder.matching(BUILD))
    await caller.ask()
    assert caller.time.slept == [7]  # the call waited out the pause first…
    assert len(ado.recorder.matching(BUILD)) == asked + 1  # …then went out
    assert caller.pipelines.gateway.paused_for == 0


async def test_an_absurd_retry_after_is_capped(ado: AzureDevOpsEmulator, caller: Caller) -> None:
    ado.slow_down(retry_after=86_400)
    await caller.ask()
    assert caller.pipelines.gateway.paused_for == MAX_PAUSE_SECONDS


async def test_calls_are_spaced_out_while_the_budget_is_nearly_spent(ado: AzureDevOpsEmulator, caller: Caller) -> None:
    ado.slow_down(retry_after=None, answers=2, remaining=15)  # under a tenth of 200 left, twice
    await caller.ask()
    assert caller.time.slept == [] and caller.pipelines.gateway.paused_for == 0  # no Retry-After to wait out…
    await caller.ask()
    assert caller.time.slept == [LOW_BUDGET_SPACING]  # …but the next call starts a second after the last one
    await caller.ask()  # (the answer before it said the same)
    await caller.ask()  # its last answer said nothing: back to normal
    assert caller.time.slept == [LOW_BUDGET_SPACING, LOW_BUDGET_SPACING]


async def test_calls_run_on_the_gateways_own_threads() -> None:
    gateway = AzureDevOpsGateway(workers=2)
    try:
        names = {await gateway.run(lambda: threading.current_thread().name) for _ in range(4)}
    finally:
        gateway.close()
    assert names and all(n.startswith(f"{WORKER_PREFIX}-azure-devops") for n in names)
