"""Starting a pipeline run when Azure DevOps does not answer it: whether the run may have started is told apart."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.pipelines import AzureDevOpsPipelines
from adapters.emulators.azure_devops import AzureDevOpsEmulator
from adapters.emulators.azure_devops.errors import internal_error
from adapters.emulators.base import Fault
from bot.ports import ServiceUnavailable

RUNS = "POST /**/pipelines/*/runs"


@pytest.fixture
async def pipelines(ado: AzureDevOpsEmulator) -> AsyncIterator[AzureDevOpsPipelines]:
    connection = Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat("handoff-bot@contoso.com")))
    service = AzureDevOpsPipelines(connection)
    yield service
    await service.close()


async def start(pipelines: AzureDevOpsPipelines) -> ServiceUnavailable:
    with pytest.raises(ServiceUnavailable) as raised:
        await pipelines.run_pipeline("mlops", "integrate-app-y", None, {"modelName": "model-x", "modelVersion": "7"})
    return raised.value


async def test_a_dropped_answer_may_have_started_the_run(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines
) -> None:
    ado.faults.add(RUNS, [Fault("reset_after")])
    error = await start(pipelines)
    assert error.may_have_acted and len(ado.runs) == 1
    assert str(error) == "The connection to Azure DevOps dropped before it answered"


@pytest.mark.parametrize(
    "fault",
    [
        Fault("500", body=internal_error().body()),  # Azure DevOps' own failure, in its own JSON error
        Fault("503", retry_after=0),  # turned away, whoever answered
        Fault("503", retry_after=0, body=internal_error().body()),
    ],
    ids=["500 of its own", "503", "503 of its own"],
)
async def test_an_error_answer_is_told_by_its_status_code(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines, fault: Fault
) -> None:
    ado.faults.add(RUNS, [fault])
    error = await start(pipelines)
    assert not error.may_have_acted and ado.runs == []
    assert str(error) == f"Azure DevOps failed ({fault.kind})"


@pytest.mark.parametrize(
    "fault",
    [
        Fault("502", after_acting=True),
        Fault("504", after_acting=True),
        Fault("504", after_acting=True, body=internal_error().body()),
        Fault("500", after_acting=True),  # no Azure DevOps error: a proxy's page
    ],
    ids=["502", "504", "504 in its own words", "500 of a proxy"],
)
async def test_a_gateway_error_may_have_started_the_run_but_leaves_a_cancel_as_failed(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines, fault: Fault
) -> None:
    """A gateway answers for a request that may have reached Azure DevOps: a second start would queue a second
    run, so whether the first started is not known. A cancel sent twice does no harm: it stays "did not act"."""
    ado.faults.add(RUNS, [fault])
    error = await start(pipelines)
    assert error.may_have_acted and len(ado.runs) == 1  # it did: Azure DevOps queued it before the gateway answered
    assert str(error) == f"Azure DevOps failed ({fault.kind})"

    cancel = "PATCH /**/build/builds/*"
    ado.faults.add(cancel, [fault])
    with pytest.raises(ServiceUnavailable) as failed:
        await pipelines.cancel_run("mlops", str(ado.runs[0].id))
    assert not failed.value.may_have_acted
    await pipelines.cancel_run("mlops", str(ado.runs[0].id))  # sent again: harmless
    assert [r.status for r in ado.recorder.matching(cancel)] == [int(fault.kind), 200]


async def test_a_connection_never_made_cannot_have_started_the_run() -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    pipelines = AzureDevOpsPipelines(
        Connection(base_url=f"http://127.0.0.1:{port}/contoso", creds=BasicAuthentication("", "pat"))
    )
    try:
        error = await start(pipelines)
    finally:
        await pipelines.close()
    assert not error.may_have_acted
    assert str(error) == "Azure DevOps is unreachable"
