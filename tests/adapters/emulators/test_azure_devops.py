"""The Azure DevOps emulator driven by the real, unmodified azure-devops 7.1.0b4 SDK over HTTP."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
from azure.devops.v7_1.build.models import Build, DefinitionReference
from azure.devops.v7_1.pipelines.models import (
    RepositoryResourceParameters,
    RunPipelineParameters,
    RunResourcesParameters,
    Variable,
)
from azure.devops.v7_1.release.models import ReleaseApproval
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.emulators.azure_devops import AzureDevOpsEmulator, WorldError, load_default_world, parse_world
from adapters.emulators.azure_devops.events import (
    APPROVAL_COMPLETED,
    APPROVAL_PENDING,
    BUILD_COMPLETE,
    JOB_STATE_CHANGED,
    RELEASE_APPROVAL_COMPLETED,
    RUN_STATE_CHANGED,
    STAGE_STATE_CHANGED,
)
from adapters.emulators.base import LocalServer, mount
from adapters.emulators.fake_server import FakeHTTPServer
from bot.clock import FakeClock

PROJECT = "mlops"
APPROVALS_CLIENT = "adapters.azure_devops.approvals_client.PipelineApprovalsClient"
T = TypeVar("T")


def connect(ado: AzureDevOpsEmulator, who: str) -> Connection:
    return Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat(who)))


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The SDK is synchronous: run it in a thread so the in-loop emulator can answer."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def approvals_client(ado: AzureDevOpsEmulator, who: str) -> PipelineApprovalsClient:
    client: PipelineApprovalsClient = await call(connect(ado, who).get_client, APPROVALS_CLIENT)
    return client


async def advance(ado: AzureDevOpsEmulator, clock: FakeClock, seconds: float, steps: int = 1) -> None:
    """Let the runs reach their timers, then move the fake clock (``steps`` times)."""
    for _ in range(steps):
        await ado.settled()
        await clock.advance(seconds)


def release_parameters(version: str = "7") -> RunPipelineParameters:
    return RunPipelineParameters(
        template_parameters={"modelName": "model-x", "modelVersion": version},
        resources=RunResourcesParameters(
            repositories={"self": RepositoryResourceParameters(ref_name="refs/heads/release/1.4")}
        ),
    )


async def start_release(ado: AzureDevOpsEmulator, clock: FakeClock, who: str = "alice@contoso.com") -> int:
    """Run release-app-y as ``who`` up to its production approval; return the run id."""
    pipelines = connect(ado, who).clients_v7_1.get_pipelines_client()
    run = await call(pipelines.run_pipeline, release_parameters(), PROJECT, 3)
    await advance(ado, clock, 3, steps=2)  # Build (2 s), Deploy to staging (3 s)
    await ado.wait_for_approval(run.id)
    return int(run.id)


def world_with(**approval: Any) -> dict[str, Any]:
    world = copy.deepcopy(load_default_world())
    production = next(e for e in world["environments"] if e["name"] == "production")
    production["approval"].update(approval)
    return world


# the "done when": a run stops at its approval, is approved over REST, finishes, hooks in order --


async def test_run_stops_at_approval_is_approved_and_emits_hooks_in_order(
    ado: AzureDevOpsEmulator, clock: FakeClock, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /hooks/ado", status=200)
    ado.add_webhook(f"{fake_http_server.url}/hooks/ado", basic=("handoff", "hook-secret"))
    pipelines = connect(ado, "alice@contoso.com").clients_v7_1.get_pipelines_client()
    params = release_parameters()
    params.variables = {}
    run = await call(pipelines.run_pipeline, params, PROJECT, 3)
    assert (run.state, run.name, run.pipeline.name) == ("inProgress", "20260101.1", "release-app-y")
    assert run.template_parameters == {"modelName": "model-x", "modelVersion": "7"}
    assert run.resources.repositories["self"].ref_name == "refs/heads/release/1.4"

    await advance(ado, clock, 3, steps=2)
    approval = await ado.wait_for_approval(run.id)
    seen = await call(pipelines.get_run, PROJECT, 3, run.id)
    assert (seen.state, seen.result) == ("inProgress", None)
    assert ado.run(run.id).stage("Production").state == "waiting"  # type: ignore[union-attr]
    await advance(ado, clock, 600)  # waiting does not end by itself before the timeout
    assert ado.run(run.id).stage("Production").state == "waiting"  # type: ignore[union-attr]

    carol = await approvals_client(ado, "carol@contoso.com")
    pending = await call(carol.query_approvals, PROJECT, state="pending")
    assert [a["id"] for a in pending] == [approval.id]
    assert pending[0]["pipeline"]["owner"]["id"] == run.id
    assert [s["assignedApprover"]["uniqueName"] for s in pending[0]["steps"]] == [
        "carol@contoso.com",
        "bob@contoso.com",
    ]
    assert pending[0]["blockedApprovers"] == []  # (a world that bars the requester: below)
    assert pending[0]["minRequiredApprovers"] == 1
    assert pending[0]["instructions"].startswith("Check the integration test results")

    decided = await call(carol.approve, PROJECT, approval.id, "model-x:7 looks good")
    assert decided["status"] == "approved"
    assert decided["steps"][0]["actualApprover"]["uniqueName"] == "carol@contoso.com"
    assert decided["steps"][0]["comment"] == "model-x:7 looks good"
    assert (await call(carol.get_approval, PROJECT, approval.id))["status"] == "approved"

    await advance(ado, clock, 3)
    finished = await ado.wait_for_run(run.id)
    assert finished.result == "succeeded"
    seen = await call(pipelines.get_run, PROJECT, 3, run.id)
    assert (seen.state, seen.result) == ("completed", "succeeded")

    await ado.drain()
    received = fake_http_server.recorder.matching("POST /hooks/ado")
    bodies = [r.json() for r in received]
    stages = [
        (b["resource"]["stage"]["name"], b["resource"]["stage"]["state"])
        for b in bodies
        if b["eventType"] == STAGE_STATE_CHANGED
    ]
    assert [b["eventType"] for b in bodies] == [
        RUN_STATE_CHANGED,
        *[STAGE_STATE_CHANGED] * 5,
        APPROVAL_PENDING,
        APPROVAL_COMPLETED,
        *[STAGE_STATE_CHANGED] * 2,
        RUN_STATE_CHANGED,
        BUILD_COMPLETE,
    ]
    assert stages == [
        ("Build", "running"),
        ("Build", "completed"),
        ("Staging", "running"),
        ("Staging", "completed"),
        ("Production", "waiting"),
        ("Production", "running"),
        ("Production", "completed"),
    ]
    assert [b["resource"]["run"]["state"] for b in bodies if b["eventType"] == RUN_STATE_CHANGED] == [
        "inProgress",
        "completed",
    ]
    assert bodies[7]["resource"]["approval"]["status"] == "approved"
    assert bodies[-1]["resource"]["result"] == "succeeded" and bodies[-1]["resourceVersion"] == "2.0"
    assert [b["notificationId"] for b in bodies] == list(range(1, len(bodies) + 1))
    expected_auth = "Basic " + base64.b64encode(b"handoff:hook-secret").decode()
    assert all(r.headers["Authorization"] == expected_auth for r in received)
    assert {b["resourceContainers"]["account"]["baseUrl"] for b in bodies} == {f"{ado.org_url}/"}


async def test_custom_header_webhook_and_job_events(
    ado: AzureDevOpsEmulator, clock: FakeClock, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /jobs", status=204)
    sub = ado.add_webhook(f"{fake_http_server.url}/jobs", [JOB_STATE_CHANGED], header=("X-Bot-Token", "t0ken"))
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await advance(ado, clock, 5, steps=2)
    await ado.wait_for_run(run.id)
    await ado.drain()
    received = fake_http_server.recorder.matching("POST /jobs")
    assert [(r.json()["resource"]["job"]["state"], r.json()["resource"]["stage"]["name"]) for r in received] == [
        ("inProgress", "Build"),
        ("completed", "Build"),
        ("inProgress", "IntegrationTests"),
        ("completed", "IntegrationTests"),
    ]
    assert all(r.headers["X-Bot-Token"] == "t0ken" and "Authorization" not in r.headers for r in received)
    assert ado.remove_webhook(sub.id) and not ado.remove_webhook(sub.id)


# approvals: who may decide ------------------------------------------------------------------------------


async def test_not_an_approver_is_refused(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    run_id = await start_release(ado, clock)
    approval = await ado.wait_for_approval(run_id)
    alice = await approvals_client(ado, "alice@contoso.com")
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(alice.approve, PROJECT, approval.id, "I trained it, ship it")
    assert err.value.type_key == "ApprovalUnauthorizedException"
    assert ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")[-1].status == 403
    assert approval.status == "pending"


async def test_already_decided_approval_is_refused(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    run_id = await start_release(ado, clock)
    approval = await ado.wait_for_approval(run_id)
    carol = await approvals_client(ado, "carol@contoso.com")
    bob = await approvals_client(ado, "bob@contoso.com")
    await call(carol.reject, PROJECT, approval.id, "integration tests are red")
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(bob.approve, PROJECT, approval.id, "late")
    assert err.value.type_key == "ApprovalAlreadyCompletedException"
    assert ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")[-1].status == 409
    run = await ado.wait_for_run(run_id)
    assert run.result == "failed"
    assert [(s.definition.name, s.result) for s in run.stages] == [
        ("Build", "succeeded"),
        ("Staging", "succeeded"),
        ("Production", "failed"),
    ]
    assert approval.steps[0].status == "rejected" and approval.steps[1].status == "skipped"


@pytest.mark.parametrize("ado_world", [world_with(requesterCannotBeApprover=True)], ids=["requester barred"])
async def test_requester_cannot_approve_their_own_run(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    run_id = await start_release(ado, clock, who="bob@contoso.com")
    approval = await ado.wait_for_approval(run_id)
    bob = await approvals_client(ado, "bob@contoso.com")
    got = await call(bob.get_approval, PROJECT, approval.id)
    assert [b["uniqueName"] for b in got["blockedApprovers"]] == ["bob@contoso.com"]
    (pending,) = await call(bob.query_approvals, PROJECT, state="pending")
    assert [b["uniqueName"] for b in pending["blockedApprovers"]] == ["bob@contoso.com"]
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(bob.approve, PROJECT, approval.id, "my own change")
    assert err.value.type_key == "ApprovalBlockedException"
    carol = await approvals_client(ado, "carol@contoso.com")
    assert (await call(carol.approve, PROJECT, approval.id))["status"] == "approved"


async def test_the_shipped_world_lets_the_requester_approve(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    """Production's approval does not bar the run's requester: a release Handoff starts for a promoted model
    version can be approved in chat, which Handoff applies as its own identity, the requester."""
    run_id = await start_release(ado, clock, who="bob@contoso.com")
    approval = await ado.wait_for_approval(run_id)
    bob = await approvals_client(ado, "bob@contoso.com")
    assert (await call(bob.get_approval, PROJECT, approval.id))["blockedApprovers"] == []
    assert (await call(bob.approve, PROJECT, approval.id, "my own change"))["status"] == "approved"


async def test_quorum_of_two_needs_both_approvers(clock: FakeClock) -> None:
    async with AzureDevOpsEmulator(world_with(minRequiredApprovers=2), clock=clock) as ado:
        run_id = await start_release(ado, clock)
        approval = await ado.wait_for_approval(run_id)
        carol = await approvals_client(ado, "carol@contoso.com")
        bob = await approvals_client(ado, "bob@contoso.com")
        first = await call(carol.approve, PROJECT, approval.id, "one")
        assert first["status"] == "pending"
        assert [s["status"] for s in first["steps"]] == ["approved", "pending"]
        with pytest.raises(AzureDevOpsServiceError) as err:  # carol's step is no longer pending
            await call(carol.approve, PROJECT, approval.id, "again")
        assert err.value.type_key == "ApprovalStateChangeException"
        await advance(ado, clock, 5)
        assert ado.run(run_id).stage("Production").state == "waiting"  # type: ignore[union-attr]
        second = await call(bob.approve, PROJECT, approval.id, "two")
        assert second["status"] == "approved"
        assert [s["actualApprover"]["uniqueName"] for s in second["steps"]] == [
            "carol@contoso.com",
            "bob@contoso.com",
        ]
        await advance(ado, clock, 3)
        assert (await ado.wait_for_run(run_id)).result == "succeeded"


async def test_in_sequence_group_approver_and_pending_refired(
    clock: FakeClock, fake_http_server: FakeHTTPServer
) -> None:
    world = world_with(
        approvers=["Release Managers", "bob@contoso.com"], minRequiredApprovers=0, executionOrder="inSequence"
    )
    async with AzureDevOpsEmulator(world, clock=clock) as ado:
        fake_http_server.respond("POST /h", status=200)
        ado.add_webhook(f"{fake_http_server.url}/h", [APPROVAL_PENDING, APPROVAL_COMPLETED])
        run_id = await start_release(ado, clock, who="handoff-bot@contoso.com")
        approval = await ado.wait_for_approval(run_id)
        bob = await approvals_client(ado, "bob@contoso.com")
        with pytest.raises(AzureDevOpsServiceError) as err:  # not bob's turn yet
            await call(bob.approve, PROJECT, approval.id)
        assert err.value.type_key == "ApprovalStateChangeException"
        carol = await approvals_client(ado, "carol@contoso.com")  # a member of Release Managers
        assert (await call(carol.approve, PROJECT, approval.id))["status"] == "pending"
        assert (await call(bob.approve, PROJECT, approval.id))["status"] == "approved"
        await ado.drain()
        events = [
            (r.json()["eventType"], r.json()["resource"]["approval"]["status"])
            for r in fake_http_server.recorder.matching("POST /h")
        ]
        assert events == [
            (APPROVAL_PENDING, "pending"),
            (APPROVAL_PENDING, "pending"),
            (APPROVAL_COMPLETED, "approved"),
        ]


async def test_approval_times_out_and_fails_the_run(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    run_id = await start_release(ado, clock)
    await advance(ado, clock, 60 * 60)
    run = await ado.wait_for_run(run_id)
    assert run.result == "failed"
    assert ado.approvals_for(run_id)[0].status == "timedOut"
    carol = await approvals_client(ado, "carol@contoso.com")
    assert await call(carol.query_approvals, PROJECT, state="pending") == []


async def test_unknown_approval_is_not_found(ado: AzureDevOpsEmulator) -> None:
    carol = await approvals_client(ado, "carol@contoso.com")
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(carol.approve, PROJECT, "6f3c1e1a-0000-4000-8000-000000000000")
    assert err.value.type_key == "ApprovalNotFoundException"
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(carol.get_approval, PROJECT, "6f3c1e1a-0000-4000-8000-000000000000")
    assert err.value.type_key == "ApprovalNotFoundException"


# pipelines and builds --------------------------------------------------------------------------------


async def test_pipelines_runs_and_logs(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    pipelines = connect(ado, "bob@contoso.com").clients_v7_1.get_pipelines_client()
    listed = await call(pipelines.list_pipelines, PROJECT)
    assert [p.name for p in listed] == ["integrate-app-y", "release-app-y", "train-model-x"]
    got = await call(pipelines.get_pipeline, PROJECT, 2)
    assert (got.name, got.folder, got.configuration.type) == ("integrate-app-y", "\\app", "yaml")

    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    params = RunPipelineParameters(
        template_parameters={"modelName": "model-x", "modelVersion": "8"},
        variables={"testSuite": Variable(value="full")},
    )
    run = await call(pipelines.run_pipeline, params, PROJECT, 2)
    await advance(ado, clock, 5, steps=2)
    done = await ado.wait_for_run(run.id)
    assert done.result == "failed" and done.variables == {"testSuite": {"value": "full"}}
    runs = await call(pipelines.list_runs, PROJECT, 2)
    assert [(r.id, r.result) for r in runs] == [(run.id, "failed")]

    logs = await call(pipelines.list_logs, PROJECT, 2, run.id)
    assert [lg.id for lg in logs.logs] == [1, 2]
    log = await call(pipelines.get_log, PROJECT, 2, run.id, 2, "signedContent")
    async with aiohttp.ClientSession() as session, session.get(log.signed_content.url) as resp:
        text = await resp.text()
    assert "##[error]Integration tests failed." in text and "Parameter modelVersion=8" in text


async def test_run_pipeline_validates_parameters_and_variables(ado: AzureDevOpsEmulator) -> None:
    pipelines = connect(ado, "bob@contoso.com").clients_v7_1.get_pipelines_client()
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(pipelines.run_pipeline, RunPipelineParameters(template_parameters={"modelName": "x"}), PROJECT, 3)
    assert err.value.type_key == "PipelineValidationException"
    assert "modelVersion" in err.value.message
    bad = RunPipelineParameters(template_parameters={"modelNmae": "x"})
    with pytest.raises(AzureDevOpsServiceError, match="Unexpected parameter 'modelNmae'"):
        await call(pipelines.run_pipeline, bad, PROJECT, 2)
    with pytest.raises(AzureDevOpsServiceError, match="You can't set the following variables"):
        await call(pipelines.run_pipeline, RunPipelineParameters(variables={"X": Variable(value="1")}), PROJECT, 2)
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(pipelines.run_pipeline, RunPipelineParameters(), PROJECT, 99)
    assert err.value.type_key == "DefinitionNotFoundException"
    assert ado.runs == []


async def test_build_api_queue_get_cancel_timeline_logs(ado: AzureDevOpsEmulator, clock: FakeClock) -> None:
    builds = await call(connect(ado, "alice@contoso.com").clients_v7_1.get_build_client)
    queued = await call(
        builds.queue_build,
        Build(
            definition=DefinitionReference(id=1),
            source_branch="refs/heads/main",
            template_parameters={"dataset": "2026-01"},
        ),
        PROJECT,
    )
    assert (queued.status, queued.definition.name, queued.requested_for.unique_name) == (
        "notStarted",
        "train-model-x",
        "alice@contoso.com",
    )
    await advance(ado, clock, 3)  # Prepare data done, Train running
    build = await call(builds.get_build, PROJECT, queued.id)
    assert (build.status, build.source_branch, build.template_parameters) == (
        "inProgress",
        "refs/heads/main",
        {"dataset": "2026-01", "computeTarget": "gpu-cluster"},
    )
    assert build.id == ado.runs[0].id and build.build_number == ado.runs[0].name

    cancelled = await call(builds.update_build, Build(status="cancelling"), PROJECT, queued.id)
    assert cancelled.status == "cancelling"
    run = await ado.wait_for_run(queued.id)
    final = await call(builds.get_build, PROJECT, queued.id)
    assert (final.status, final.result, run.state) == ("completed", "canceled", "completed")

    timeline = await call(builds.get_build_timeline, PROJECT, queued.id)
    stages = [(r.name, r.state, r.result) for r in timeline.records if r.type == "Stage"]
    assert stages == [
        ("Prepare data", "completed", "succeeded"),
        ("Train", "completed", "canceled"),
        ("Evaluate", "completed", "canceled"),
        ("Register model", "completed", "canceled"),
    ]
    jobs = [r for r in timeline.records if r.type == "Job" and r.log is not None]
    assert [j.log.id for j in jobs] == [1, 2]

    logs = await call(builds.get_build_logs, PROJECT, queued.id)
    assert [(lg.id, lg.line_count > 0) for lg in logs] == [(1, True), (2, True)]
    lines = await call(builds.get_build_log_lines, PROJECT, queued.id, 2, 1, 2)
    assert len(lines) == 2 and lines[0].endswith("##[section]Starting: Job")
    raw = b"".join(await call(lambda: list(builds.get_build_log(PROJECT, queued.id, 2))))
    assert b"The operation was canceled." in raw
    listed = await call(builds.get_builds, PROJECT, definitions=[1], status_filter="completed")
    assert [b.id for b in listed] == [queued.id]
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(builds.get_build, PROJECT, 424242)
    assert err.value.type_key == "BuildNotFoundException"


async def test_canceling_a_run_waiting_for_approval_cancels_the_approval(
    ado: AzureDevOpsEmulator, clock: FakeClock
) -> None:
    run_id = await start_release(ado, clock)
    builds = await call(connect(ado, "alice@contoso.com").clients_v7_1.get_build_client)
    await call(builds.update_build, Build(status="cancelling"), PROJECT, run_id)
    run = await ado.wait_for_run(run_id)
    assert run.result == "canceled"
    assert ado.approvals_for(run_id)[0].status == "canceled"


async def test_push_emits_git_push_and_triggers_ci(
    ado: AzureDevOpsEmulator, clock: FakeClock, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /git", status=200)
    ado.add_webhook(f"{fake_http_server.url}/git", ["git.push"])
    resource = ado.push(
        "app-y", "main", ["Pin model-x to 7", {"comment": "Fix feature order", "author": "alice@contoso.com"}]
    )
    assert [c["comment"] for c in resource["commits"]] == ["Pin model-x to 7", "Fix feature order"]
    assert resource["refUpdates"][0]["newObjectId"] == resource["commits"][-1]["commitId"]
    run = ado.runs[-1]
    assert (run.pipeline.name, run.reason, run.source_version) == (
        "integrate-app-y",
        "individualCI",
        resource["commits"][-1]["commitId"],
    )
    await ado.drain()
    body = fake_http_server.recorder.matching("POST /git")[0].json()
    assert body["resource"]["pushedBy"]["uniqueName"] == "bob@contoso.com"
    assert body["message"]["text"] == "Bob Chen pushed updates to branch main of repository app-y."


# classic release approvals ---------------------------------------------------------------------------


async def test_classic_release_approval_patch(ado: AzureDevOpsEmulator, fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.respond("POST /rm", status=200)
    ado.add_webhook(f"{fake_http_server.url}/rm", [RELEASE_APPROVAL_COMPLETED])
    bob = await call(connect(ado, "bob@contoso.com").clients_v7_1.get_release_client)
    with pytest.raises(AzureDevOpsServiceError) as err:
        await call(bob.update_release_approval, ReleaseApproval(status="approved", comments="me?"), PROJECT, 7)
    assert err.value.type_key == "ReleaseManagementSecurityException"
    carol = await call(connect(ado, "carol@contoso.com").clients_v7_1.get_release_client)
    pending = await call(carol.get_approvals, PROJECT, status_filter="pending")
    assert [a.id for a in pending] == [7]
    done = await call(carol.update_release_approval, ReleaseApproval(status="approved", comments="ok"), PROJECT, 7)
    assert (done.status, done.comments, done.approved_by.unique_name) == ("approved", "ok", "carol@contoso.com")
    request = ado.recorder.matching("PATCH /contoso/mlops/_apis/Release/approvals/7")[-1]
    assert request.json() == {"comments": "ok", "status": "approved"}
    with pytest.raises(AzureDevOpsServiceError, match="already been approved"):
        await call(carol.update_release_approval, ReleaseApproval(status="rejected"), PROJECT, 7)
    await ado.drain()
    assert fake_http_server.recorder.matching("POST /rm")[0].json()["resource"]["approval"]["status"] == "approved"


async def test_listed_resource_areas_route_release_to_vsrm(clock: FakeClock) -> None:
    world = {**load_default_world(), "resource_areas": "listed"}
    async with AzureDevOpsEmulator(world, clock=clock) as ado:
        carol = await call(connect(ado, "carol@contoso.com").clients_v7_1.get_release_client)
        done = await call(carol.update_release_approval, ReleaseApproval(status="rejected"), PROJECT, 7)
        assert done.status == "rejected"
        paths = [f"{r.method} {r.path}" for r in ado.recorder.requests]
        assert "OPTIONS /vsrm/contoso/_apis" in paths
        assert "PATCH /vsrm/contoso/mlops/_apis/Release/approvals/7" in paths


# the service's edges ----------------------------------------------------------------------------------


async def test_unknown_pat_gets_401(ado: AzureDevOpsEmulator) -> None:
    conn = Connection(base_url=ado.org_url, creds=BasicAuthentication("", "not-a-pat"))
    with pytest.raises(AzureDevOpsAuthenticationError):
        await call(conn.clients_v7_1.get_pipelines_client().list_pipelines, PROJECT)
    assert [r.status for r in ado.recorder.requests] == [401]


async def test_discovery_versions_and_case_insensitive_routes(ado: AzureDevOpsEmulator) -> None:
    token = base64.b64encode(f":{ado.pat('alice@contoso.com')}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        async with session.options(f"{ado.base_url}/CONTOSO/_apis") as resp:
            locations = (await resp.json())["value"]
        assert {"minVersion", "maxVersion", "releasedVersion", "resourceVersion"} <= set(locations[0])
        assert any(loc["area"] == "approval" and loc["resourceName"] == "approvals" for loc in locations)
        async with session.get(f"{ado.base_url}/contoso/_apis/ResourceAreas") as resp:
            assert await resp.json() == {"count": 0, "value": []}
        url = f"{ado.base_url}/contoso/MLOPS/_apis/PIPELINES"
        async with session.get(url, headers={"Accept": "application/json;api-version=9.0"}) as resp:
            assert resp.status == 400 and (await resp.json())["typeKey"] == "VssVersionOutOfRangeException"
        async with session.get(url, headers={"Accept": "application/json;api-version=7.2"}) as resp:
            assert (await resp.json())["typeKey"] == "VssInvalidPreviewVersionException"
        async with session.get(url, headers={"Accept": "application/json;api-version=7.1"}) as resp:
            assert (await resp.json())["count"] == 3
        async with session.post(f"{url}/2/runs", json={}) as resp:
            assert (await resp.json())["typeKey"] == "VssVersionNotSpecifiedException"
        async with session.get(f"{ado.base_url}/contoso/nope/_apis/pipelines") as resp:
            assert resp.status == 404 and (await resp.json())["typeKey"] == "ProjectDoesNotExistWithNameException"


async def test_mounted_under_a_prefix(clock: FakeClock) -> None:
    ado = AzureDevOpsEmulator(clock=clock)
    root = web.Application()
    mount(root, "/ado", ado.create_app())
    async with LocalServer(root) as server:
        ado.base_url = f"{server.url}/ado"
        pipelines = connect(ado, "alice@contoso.com").clients_v7_1.get_pipelines_client()
        run = await call(pipelines.run_pipeline, RunPipelineParameters(), PROJECT, 1)
        assert run.url.startswith(f"{server.url}/ado/contoso/")
        assert ado.recorder.requests[0].path == "/contoso/_apis"  # recorded relative to the mount
    assert ado.run(run.id).task is not None and ado.run(run.id).task.done()  # cleanup stopped the engine


def test_world_validation_names_the_key() -> None:
    world = copy.deepcopy(load_default_world())
    world["environments"][1]["approval"]["approvers"] = ["mallory@contoso.com"]
    with pytest.raises(WorldError, match=r"environments\[1\]\.approval\.approvers"):
        parse_world(world)
    assert parse_world({"azure_devops": load_default_world()}).organization == "contoso"
