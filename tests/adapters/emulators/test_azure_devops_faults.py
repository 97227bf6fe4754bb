"""Scripted faults on the Azure DevOps emulator, as the real SDK (msrest + urllib3) experiences them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsClientRequestError, AzureDevOpsServiceError
from azure.devops.v7_1.pipelines.models import RunPipelineParameters
from msrest.authentication import BasicAuthentication
from msrest.exceptions import ClientRequestError, DeserializationError

from adapters.emulators.azure_devops import AzureDevOpsEmulator
from adapters.emulators.azure_devops.errors import internal_error
from adapters.emulators.base import Fault
from bot.clock import FakeClock

T = TypeVar("T")
PROJECT = "mlops"
RUN_ROUTE = "GET /contoso/mlops/_apis/pipelines/*/runs/*"


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
def pipelines(ado: AzureDevOpsEmulator) -> Any:
    conn = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("bob@contoso.com")))
    return conn.clients_v7_1.get_pipelines_client()


async def test_429_with_retry_after_is_honoured_by_msrest_on_get(ado: AzureDevOpsEmulator, pipelines: Any) -> None:
    run = ado.start_run("train-model-x")
    ado.faults.add(RUN_ROUTE, [Fault("429", retry_after=1)])
    started = time.monotonic()
    got = await call(pipelines.get_run, PROJECT, 1, run.id)
    assert got.id == run.id
    assert time.monotonic() - started >= 1.0  # urllib3 slept Retry-After before retrying
    first, second = ado.recorder.matching(RUN_ROUTE)
    assert (first.status, second.status) == (429, 200)


async def test_429_on_post_reaches_the_caller_in_the_service_shape(ado: AzureDevOpsEmulator, pipelines: Any) -> None:
    ado.faults.add("POST /contoso/mlops/_apis/pipelines/*/runs", [Fault("429", retry_after=7)])
    seen: list[tuple[int, str | None, str | None]] = []
    pipelines.config.hooks.append(
        lambda resp, *a, **kw: seen.append(
            (resp.status_code, resp.headers.get("Retry-After"), resp.headers.get("X-RateLimit-Remaining"))
        )
    )
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(pipelines.run_pipeline, RunPipelineParameters(), PROJECT, 1)
    assert err.value.type_key == "RequestBlockedException"
    assert err.value.message.startswith("TF400733")
    assert (429, "7", "0") in seen
    assert len(ado.recorder.matching("POST /contoso/mlops/_apis/pipelines/*/runs")) == 1  # POST is not retried
    assert ado.runs == []


async def test_503_is_retried_on_get_and_surfaces_once_on_post(ado: AzureDevOpsEmulator, pipelines: Any) -> None:
    run = ado.start_run("train-model-x")
    ado.faults.add(RUN_ROUTE, [Fault("503", retry_after=0)])
    assert (await call(pipelines.get_run, PROJECT, 1, run.id)).id == run.id
    assert [r.status for r in ado.recorder.matching(RUN_ROUTE)] == [503, 200]

    ado.faults.add("POST /contoso/mlops/_apis/pipelines/*/runs", ["503"])
    with pytest.raises(AzureDevOpsClientRequestError, match="503"):
        await call(pipelines.run_pipeline, RunPipelineParameters(), PROJECT, 1)
    assert len(ado.recorder.matching("POST /contoso/mlops/_apis/pipelines/*/runs")) == 1
    assert len(ado.runs) == 1


async def test_a_5xx_may_answer_in_the_services_json_error_shape(ado: AzureDevOpsEmulator, pipelines: Any) -> None:
    """As Azure DevOps does for a failure of its own: the SDK then raises the error it raises for a refusal."""
    import aiohttp

    body = internal_error("1234").body()
    async with aiohttp.ClientSession() as session:
        script = {"route": "POST /contoso/mlops/_apis/pipelines/*/runs", "faults": [{"kind": "503", "body": body}]}
        async with session.post(f"{ado.base_url}/_emulator/faults", json=script) as resp:
            assert resp.status == 200
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(pipelines.run_pipeline, RunPipelineParameters(), PROJECT, 1)
    assert err.value.message == "TF400898: An Internal Error Occurred. Activity Id: 1234."
    assert [r.status for r in ado.recorder.matching("POST /contoso/mlops/_apis/pipelines/*/runs")] == [503]
    assert ado.runs == []


async def test_connection_reset(ado: AzureDevOpsEmulator, clock: FakeClock, pipelines: Any) -> None:
    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    ado.faults.add(RUN_ROUTE, ["reset"])
    assert (await call(pipelines.get_run, PROJECT, 3, run.id)).id == run.id  # GET is retried
    assert len(ado.recorder.matching(RUN_ROUTE)) == 2

    for seconds in (2, 3):
        await ado.settled()
        await clock.advance(seconds)
    approval = await ado.wait_for_approval(run.id)
    carol = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("carol@contoso.com")))
    client = await call(carol.get_client, "adapters.azure_devops.approvals_client.PipelineApprovalsClient")
    ado.faults.add("PATCH /contoso/mlops/_apis/pipelines/approvals", ["reset"])
    with pytest.raises(ClientRequestError):
        await call(client.approve, PROJECT, approval.id, "ok")
    assert len(ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")) == 1  # not resent
    assert approval.status == "pending"  # the dropped request never reached the service
    assert (await call(client.approve, PROJECT, approval.id, "ok"))["status"] == "approved"


async def test_malformed_json_reaches_the_deserializer(ado: AzureDevOpsEmulator, pipelines: Any) -> None:
    run = ado.start_run("train-model-x")
    ado.faults.add(RUN_ROUTE, ["malformed_json"])
    with pytest.raises(DeserializationError):
        await call(pipelines.get_run, PROJECT, 1, run.id)
    assert (await call(pipelines.get_run, PROJECT, 1, run.id)).id == run.id


async def test_faults_scripted_over_the_control_route(ado: AzureDevOpsEmulator, pipelines: Any) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        body = {"route": "GET /contoso/mlops/_apis/pipelines", "faults": [{"kind": "500"}]}
        async with session.post(f"{ado.base_url}/_emulator/faults", json=body) as resp:
            assert resp.status == 200
    listed = await call(pipelines.list_pipelines, PROJECT)  # 500 on GET: retried by urllib3
    assert len(listed) == 3
    assert [r.status for r in ado.recorder.matching("GET /contoso/mlops/_apis/pipelines")] == [500, 200]
