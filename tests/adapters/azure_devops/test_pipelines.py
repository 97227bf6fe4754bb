"""Starting a pipeline run when Azure DevOps does not answer it: whether the run may have started is told apart.
Asking how classic release approvals stand, by their releases, in few requests."""

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
from bot.clock import FakeClock
from bot.events import Person
from bot.ports import ApprovalStatus, ServiceUnavailable

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


TROUBLE = "Azure DevOps is having trouble on its side (503); try again"


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Fault("500", body=internal_error().body()), "Azure DevOps failed (500)"),  # its own failure, in its JSON
        (Fault("503", retry_after=0), f"{TROUBLE} shortly"),  # turned away, whoever answered
        (Fault("503", retry_after=0, body=internal_error().body()), f"{TROUBLE} shortly"),
        (Fault("503", retry_after=45), f"{TROUBLE} in 45 s"),
        (Fault("429", retry_after=30), "Azure DevOps is throttling Handoff's requests (429); try again in 30 s"),
    ],
    ids=["500 of its own", "503", "503 of its own", "503 saying when", "429 saying when"],
)
async def test_an_error_answer_is_told_by_its_status_code_and_when_to_try_again(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines, fault: Fault, said: str
) -> None:
    ado.faults.add(RUNS, [fault])
    error = await start(pipelines)
    assert not error.may_have_acted and ado.runs == []
    assert str(error) == said


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


RELEASE_APPROVALS = "GET /contoso/mlops/_apis/Release/approvals"


async def test_the_run_a_lost_start_queued_is_found_among_the_runs_queued_since_it_was_tried(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines, clock: FakeClock
) -> None:
    """A start whose answer was lost is looked for in one request to the Build API, bounded by the time it was
    tried: the runs queued since, oldest first, each with its name, branch and template parameters."""
    earlier = await pipelines.run_pipeline("mlops", "integrate-app-y", None, {"modelVersion": "7"})
    await clock.advance(60)
    tried = clock.now()
    ado.faults.add(RUNS, [Fault("reset_after")])
    assert (await start(pipelines)).may_have_acted
    await pipelines.run_pipeline("mlops", "integrate-app-y", "main", {"modelVersion": "9"})
    ado.recorder.clear()

    found = await pipelines.runs_since("mlops", "integrate-app-y", tried)
    lost, later = ado.runs[1:]
    assert [(r.run_id, r.name, r.branch, dict(r.parameters)) for r in found] == [
        (str(lost.id), lost.name, "refs/heads/main", {"modelName": "model-x", "modelVersion": "7"}),
        (str(later.id), later.name, "refs/heads/main", {"modelName": "model-x", "modelVersion": "9"}),
    ]
    assert earlier.run_id not in [r.run_id for r in found]
    [asked] = ado.recorder.matching("GET /**/_apis/build/builds")
    assert asked.query["queryOrder"] == "queueTimeAscending" and asked.query["definitions"] == str(lost.pipeline.id)


async def test_release_approvals_all_waiting_are_asked_about_in_one_request(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines
) -> None:
    first = ado.add_release_approval("carol@contoso.com", release_id=2)
    second = ado.add_release_approval("carol@contoso.com", release_id=3)
    found = await pipelines.release_approval_statuses("mlops", {str(first.id): "2", str(second.id): "3"})
    assert sorted((s.approval_id, s.status) for s in found) == [(str(first.id), "pending"), (str(second.id), "pending")]
    [asked] = ado.recorder.matching(RELEASE_APPROVALS)
    assert (asked.query["statusFilter"], asked.query["releaseIdsFilter"]) == ("pending", "2,3")


async def test_release_approvals_no_longer_waiting_are_looked_for_among_each_completed_status(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines
) -> None:
    """Pending first; then approved, rejected, canceled, skipped in turn, only for the releases of the approvals
    not found yet, until every one is: who decided and what they said come with it."""
    waiting = ado.add_release_approval("carol@contoso.com", release_id=2)
    approved = ado.add_release_approval("carol@contoso.com", release_id=3)
    canceled = ado.add_release_approval("carol@contoso.com", release_id=4)
    ado.add_release_approval("carol@contoso.com", release_id=3, environment_name="QA")  # another, not asked about
    ado.complete_release_approval(approved.id, "approved", by="carol@contoso.com", comments="ship it", hook=False)
    ado.complete_release_approval(canceled.id, "canceled", hook=False)
    asked = {str(waiting.id): "2", str(approved.id): "3", str(canceled.id): "4"}

    found = {s.approval_id: s for s in await pipelines.release_approval_statuses("mlops", asked)}

    carol = ado.identity("carol@contoso.com")
    assert found == {
        str(waiting.id): ApprovalStatus(str(waiting.id), "pending"),
        str(approved.id): ApprovalStatus(
            str(approved.id), "approved", Person(carol.display_name, "carol@contoso.com", carol.id), "ship it"
        ),
        str(canceled.id): ApprovalStatus(str(canceled.id), "canceled"),
    }
    requests = [
        (r.query["statusFilter"], r.query["releaseIdsFilter"]) for r in ado.recorder.matching(RELEASE_APPROVALS)
    ]
    assert requests == [("pending", "2,3,4"), ("approved", "3,4"), ("rejected", "4"), ("canceled", "4")]


async def test_a_release_approval_azure_devops_does_not_list_is_left_out_after_five_requests(
    ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines
) -> None:
    assert await pipelines.release_approval_statuses("mlops", {"99": "42"}) == []
    statuses = [r.query["statusFilter"] for r in ado.recorder.matching(RELEASE_APPROVALS)]
    assert statuses == ["pending", "approved", "rejected", "canceled", "skipped"]


async def test_a_runs_status_says_why_it_started(ado: AzureDevOpsEmulator, pipelines: AzureDevOpsPipelines) -> None:
    """The Build API's ``reason``, which a run's and a stage's hooks leave out: a ``reasons`` filter reads it."""
    by_hand = ado.start_run("integrate-app-y", requested_by="carol@contoso.com")
    for_a_pull_request = ado.start_run("integrate-app-y", requested_by="carol@contoso.com", reason="pullRequest")
    assert (await pipelines.run_status("mlops", str(by_hand.id))).reason == "manual"
    assert (await pipelines.run_status("mlops", str(for_a_pull_request.id))).reason == "pullRequest"
