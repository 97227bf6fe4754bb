"""Azure DevOps calls through the gateway: Retry-After on any answer pauses the organization's calls."""

from __future__ import annotations

import threading

from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.gateway import LOW_BUDGET_SPACING, MAX_PAUSE_SECONDS, AzureDevOpsGateway
from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from bot.lifecycle import WORKER_PREFIX

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


def pipelines_for(ado: AzureDevOpsEmulator, time: FakeTime) -> AzureDevOpsPipelines:
    connection = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("handoff-bot@contoso.com")))
    return AzureDevOpsPipelines(connection, AzureDevOpsGateway(clock=time.clock, sleep=time.sleep))


async def test_retry_after_on_a_200_pauses_the_next_call(ado: AzureDevOpsEmulator) -> None:
    time = FakeTime()
    pipelines = pipelines_for(ado, time)
    run = ado.start_run("integrate-app-y")
    try:
        await pipelines.run_status("mlops", str(run.id))  # (discovery is cached from now on)
        ado.slow_down(retry_after=7)
        status = await pipelines.run_status("mlops", str(run.id))  # answered, with advice to wait
        assert status.run_id == str(run.id) and time.slept == []
        assert pipelines.gateway.paused_for == 7
        asked = len(ado.recorder.matching(BUILD))
        await pipelines.run_status("mlops", str(run.id))
        assert time.slept == [7]  # the call waited out the pause first…
        assert len(ado.recorder.matching(BUILD)) == asked + 1  # …then went out
        assert pipelines.gateway.paused_for == 0
    finally:
        await pipelines.close()


async def test_an_absurd_retry_after_is_capped(ado: AzureDevOpsEmulator) -> None:
    time = FakeTime()
    pipelines = pipelines_for(ado, time)
    run = ado.start_run("integrate-app-y")
    try:
        await pipelines.run_status("mlops", str(run.id))
        ado.slow_down(retry_after=86_400)
        await pipelines.run_status("mlops", str(run.id))
        assert pipelines.gateway.paused_for == MAX_PAUSE_SECONDS
    finally:
        await pipelines.close()


async def test_calls_are_spaced_out_while_the_budget_is_nearly_spent(ado: AzureDevOpsEmulator) -> None:
    time = FakeTime()
    pipelines = pipelines_for(ado, time)
    run = ado.start_run("integrate-app-y")
    try:
        await pipelines.run_status("mlops", str(run.id))
        ado.slow_down(retry_after=None, answers=2, remaining=15)  # under a tenth of 200 left, twice
        await pipelines.run_status("mlops", str(run.id))
        assert time.slept == [] and pipelines.gateway.paused_for == 0  # no Retry-After: nothing to wait out…
        await pipelines.run_status("mlops", str(run.id))
        assert time.slept == [LOW_BUDGET_SPACING]  # …but the next call starts a second after the last one
        await pipelines.run_status("mlops", str(run.id))  # (the answer before it said the same)
        await pipelines.run_status("mlops", str(run.id))  # its last answer said nothing: back to normal
        assert time.slept == [LOW_BUDGET_SPACING, LOW_BUDGET_SPACING]
    finally:
        await pipelines.close()


async def test_calls_run_on_the_gateways_own_threads() -> None:
    gateway = AzureDevOpsGateway(workers=2)
    try:
        names = {await gateway.run(lambda: threading.current_thread().name) for _ in range(4)}
    finally:
        gateway.close()
    assert names and all(n.startswith(f"{WORKER_PREFIX}-azure-devops") for n in names)
