"""Every documented service-hook sample, POSTed to the running route and checked field by field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.azure_devops.service_hooks import EVENT_TYPES, parse_service_hook
from bot.cards import Status
from bot.events import (
    ApprovalCompleted,
    ApprovalPending,
    Approver,
    CodePushed,
    Commit,
    Person,
    PipelineRef,
    PullRequestChanged,
    ReleaseDeploymentCompleted,
    RunStateChanged,
    StageStateChanged,
)
from bot.living import merge, render
from tests.adapters.ingest.conftest import Ingest, load_sample

ORG = "contoso"  # the configured organization: the pipelines samples name none
CONTAINER_PROJECT = "be9b3917-87e6-42a4-a549-2bc06a7a878f"
SAMPLE_PROJECT = "863d0a5b-3c91-4bf3-8ad7-7f33736b7f4c"  # the project segment of the samples' web links


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def deliver(ingest: Ingest, shared_dir: Path, name: str) -> Any:
    payload = load_sample(shared_dir, "ado", name)
    reply = await ingest.hook(payload)
    assert reply.status == 200, reply.text
    return reply.json()


def test_every_sample_has_a_parser(shared_dir: Path) -> None:
    names = {p.stem for p in (shared_dir / "samples" / "ado").glob("*.json")}
    assert names <= set(EVENT_TYPES)


async def test_run_state_changed(ingest: Ingest, shared_dir: Path) -> None:
    assert await deliver(ingest, shared_dir, "ms.vss-pipelines.run-state-changed-event.json") == {
        "accepted": 1,
        "duplicates": 0,
        "ignored": 0,
    }
    [event] = ingest.sink.events
    web = f"https://codedev.ms/org/{SAMPLE_PROJECT}/_build/results?buildId=11"
    assert event == RunStateChanged(
        source="azure-devops",
        event_id="62e4351f-1c24-40f9-8510-7af03692ab45",
        occurred_at=at("2019-12-13T04:46:13.683Z"),
        scope=ORG,
        project=SAMPLE_PROJECT,
        project_id=CONTAINER_PROJECT,  # the project container's id: a projects filter matches it too
        actor=None,
        web_url=web,
        text="Run 11 succeeded.",
        # the pipeline id comes from _links (1), not resource.pipeline.id (11): the docs' gotcha
        run=PipelineRef(
            organization=ORG,
            project=SAMPLE_PROJECT,
            pipeline_id="1",
            pipeline_name="TEST-CI",
            run_id="11",
            run_name="11",
        ),
        state="completed",
        result="succeeded",
        started_at=at("2019-12-13T04:46:13.613Z"),
        finished_at=at("2019-12-13T04:46:13.613Z"),
        created_at=at("2019-12-13T04:46:13.683Z"),  # when Azure DevOps created it: attempts are told apart by it
    )
    assert event.outcome == "succeeded"
    assert event.grouping_key == f"azure-devops:{ORG}:{SAMPLE_PROJECT}:run:11"
    assert event.dedupe_key == "azure-devops:contoso:62e4351f-1c24-40f9-8510-7af03692ab45"


async def test_stage_state_changed(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "ms.vss-pipelines.stage-state-changed-event.json")
    [event, run_completed] = ingest.sink.events
    assert event == StageStateChanged(
        source="azure-devops",
        event_id="ac1dd6da-af30-43cb-8434-e1005864b0a3",
        occurred_at=at("2019-12-13T06:10:10.186Z"),
        scope=ORG,
        project=SAMPLE_PROJECT,
        project_id=CONTAINER_PROJECT,
        web_url=f"https://codedev.ms/org/{SAMPLE_PROJECT}/_build/results?buildId=2",
        text="Run 2 stage __default succeeded.",
        run=PipelineRef(
            organization=ORG,
            project=SAMPLE_PROJECT,
            pipeline_id="2",
            pipeline_name="TEST-CI",
            run_id="2",
            run_name="2",
        ),
        stage_name="__default",
        stage_display_name="",
        state="completed",
        result="succeeded",
        created_at=at("2019-12-13T06:10:10.186Z"),
    )
    assert event.stage == "__default"
    # the hook says the run completed: the run's card is completed by it, with no run hook
    assert isinstance(run_completed, RunStateChanged)
    assert (run_completed.state, run_completed.result, run_completed.run) == ("completed", "succeeded", event.run)
    assert run_completed.created_at == event.created_at and run_completed.dedupe_key != event.dedupe_key
    card = render(merge(merge(None, event).state, run_completed).state)
    assert card.status is Status.SUCCEEDED
    assert card.title == "TEST-CI 2"
    # a delivery that does not say when it was created is stamped on receipt, but never counts as newer
    payload = load_sample(shared_dir, "ado", "ms.vss-pipelines.stage-state-changed-event.json")
    del payload["createdDate"]
    (unstamped, _) = parse_service_hook(payload, ORG)
    assert isinstance(unstamped, StageStateChanged) and unstamped.created_at is None
    # a stage's hook while its run goes on says nothing of the run's end
    payload["resource"]["run"].update(state="inProgress", result=None)
    (going,) = parse_service_hook(payload, ORG)
    assert isinstance(going, StageStateChanged)
    assert event.grouping_key == f"azure-devops:{ORG}:{SAMPLE_PROJECT}:run:2"


async def test_job_state_changed_is_ignored(ingest: Ingest, shared_dir: Path) -> None:
    assert await deliver(ingest, shared_dir, "ms.vss-pipelines.job-state-changed-event.json") == {
        "accepted": 0,
        "duplicates": 0,
        "ignored": 1,
    }
    assert ingest.sink.events == []


async def test_approval_pending_with_null_run(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "ms.vss-pipelinechecks-events.approval-pending.json")
    [event] = ingest.sink.events
    assert event == ApprovalPending(
        source="azure-devops",
        event_id="55382df7-24fa-453c-9173-3369b2417a5b",
        occurred_at=at("2019-12-13T06:14:11.671Z"),
        scope=ORG,
        project=CONTAINER_PROJECT,  # resource.projectId is all zeros in the sample
        project_id=CONTAINER_PROJECT,
        actor=None,
        web_url=None,
        text="Approval pending for deployment of pipeline run1 to environment env1.",
        approval_id="0f027b05-0942-4a35-9218-26fa07d8760a",
        approval_kind="pipeline",
        status="pending",
        run=None,
        stage_name=None,
        environment_name="env1",  # no resource in the sample: its message links the environment
        instructions="Instructions",
        min_required_approvers=2,
        approvers=(
            Approver(
                person=Person(id="743f73b7-cdeb-4de7-80b7-00cee17476b8"),
                status="pending",
                comment="Sample comment",
            ),
        ),
        blocked_approvers=(Person(id="d651e716-a205-4b37-a803-e373df09fea6"),),
        created_at=at("2019-12-13T06:14:11.642Z"),
    )
    assert event.outcome == "pending"
    assert event.grouping_key == f"azure-devops:{ORG}:pipeline-approval:0f027b05-0942-4a35-9218-26fa07d8760a"


async def test_approval_completed(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "ms.vss-pipelinechecks-events.approval-completed.json")
    [event] = ingest.sink.events
    approver = Person(id="f8482ec0-3e2f-489b-ba62-ea01cf84afa8")
    assert event == ApprovalCompleted(
        source="azure-devops",
        event_id="5810cce3-55e9-46dc-ad4f-681c57cf620e",
        occurred_at=at("2019-12-13T06:18:22.487Z"),
        scope=ORG,
        project=CONTAINER_PROJECT,
        project_id=CONTAINER_PROJECT,
        actor=approver,
        text="Approval completed for deployment of pipeline run1 to environment env1.",
        approval_id="0f027b05-0942-4a35-9218-26fa07d8760a",
        approval_kind="pipeline",
        status="approved",
        environment_name="env1",
        instructions="Instructions",
        min_required_approvers=2,
        approvers=(Approver(person=approver, status="approved", comment="Sample comment"),),
        blocked_approvers=(Person(id="23241e2e-59af-4b58-842e-5604d508c6b5"),),
        created_at=at("2019-12-13T06:18:22.460Z"),
    )
    assert event.outcome == "succeeded"
    # the same card as the pending approval
    assert event.grouping_key == f"azure-devops:{ORG}:pipeline-approval:0f027b05-0942-4a35-9218-26fa07d8760a"


@pytest.mark.parametrize("status", ["timedOut", "canceled", "skipped"])
async def test_an_approval_nobody_decided_has_no_actor(ingest: Ingest, shared_dir: Path, status: str) -> None:
    """A timeout or a cancel is nobody's doing: the step's assigned approver did not complete the approval."""
    hook = load_sample(shared_dir, "ado", "ms.vss-pipelinechecks-events.approval-completed.json")
    hook["resource"]["approval"]["status"] = status
    hook["resource"]["approval"]["steps"][0]["status"] = status
    assert (await ingest.hook(hook)).status == 200
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalCompleted) and event.status == status
    assert event.actor is None


async def test_build_complete_resource_version_1(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "build.complete.json")
    [event] = ingest.sink.events
    project = "71777fbc-1cf2-4bd1-9540-128c1c71f766"
    assert event == RunStateChanged(
        source="azure-devops",
        event_id="4a5d99d6-1c75-4e53-91b9-ee80057d4ce3",
        occurred_at=at("2016-09-19T13:03:26.4285528Z"),
        scope="fabrikam-fiber-inc",  # from the resource's dev.azure.com URLs
        project=project,
        project_id=CONTAINER_PROJECT,
        actor=Person(
            name="Normal Paulk", email="fabrikamfiber16@hotmail.com", id="d6245f20-2af8-44f4-9451-8107cb2767db"
        ),
        # the build's page, from its Build API URL (reference §1.2): the hook carries no web link
        web_url=f"https://dev.azure.com/fabrikam-fiber-inc/DefaultCollection/{project}/_build/results?buildId=2",
        text="Build ConsumerAddressModule_20150407.2 succeeded",
        run=PipelineRef(
            organization="fabrikam-fiber-inc",
            project=project,
            pipeline_id="2",
            pipeline_name="ConsumerAddressModule",
            run_id="2",
            run_name="ConsumerAddressModule_20150407.1",
            branch="refs/heads/master",
            reason="manual",  # why the build ran, which the run-state hooks do not say
        ),
        state="completed",
        result="succeeded",
        started_at=at("2015-04-07T18:04:06.83Z"),
        finished_at=at("2015-04-07T18:06:10.69Z"),
        created_at=at("2016-09-19T13:03:26.4285528Z"),
    )
    assert event.outcome == "succeeded"


async def test_build_complete_resource_version_2(ingest: Ingest, shared_dir: Path) -> None:
    """The modern Build object (``resourceVersion`` 2.0), as third-party receivers get it."""
    payload = load_sample(shared_dir, "ado", "build.complete.json")
    payload["resourceVersion"] = "2.0"
    payload["resourceContainers"]["account"]["baseUrl"] = "https://dev.azure.com/contoso/"
    payload["resource"] = {
        "id": 1234,
        "buildNumber": "20260301.4",
        "status": "completed",
        "result": "partiallySucceeded",
        "queueTime": "2026-03-01T10:00:00.1234567Z",
        "startTime": "2026-03-01T10:00:05Z",
        "finishTime": "2026-03-01T10:07:00Z",
        "url": "https://dev.azure.com/contoso/6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c/_apis/build/Builds/1234",
        "definition": {"id": 17, "name": "model-x-train", "path": "\\"},
        "project": {"id": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c", "name": "Fabrikam"},
        "sourceBranch": "refs/heads/main",
        "sourceVersion": "33b55f7cb7e7e245323987634f960cf4a6e6bc74",
        "reason": "pullRequest",
        "requestedFor": {"id": "54d1", "displayName": "Jamal Hartnett", "uniqueName": "jamal@contoso.com"},
        "requestedBy": {"id": "0000", "displayName": "Microsoft.VisualStudio.Services.TFS"},
        "_links": {"web": {"href": "https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=1234"}},
    }
    assert (await ingest.hook(payload)).status == 200
    [event] = ingest.sink.events
    assert isinstance(event, RunStateChanged)
    assert event.scope == "contoso" and event.project == "Fabrikam"
    assert event.run == PipelineRef(
        organization="contoso",
        project="Fabrikam",
        pipeline_id="17",
        pipeline_name="model-x-train",
        run_id="1234",
        run_name="20260301.4",
        branch="refs/heads/main",
        reason="pullRequest",
    )
    assert (event.state, event.result, event.outcome) == ("completed", "partiallySucceeded", "failed")
    assert event.actor == Person(name="Jamal Hartnett", email="jamal@contoso.com", id="54d1")
    assert event.web_url == "https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=1234"
    assert event.finished_at == at("2026-03-01T10:07:00Z")
    assert event.branch == "refs/heads/main" and event.pipeline == "model-x-train"


async def test_git_push(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "git.push.json")
    [event] = ingest.sink.events
    remote = "https://fabrikam-fiber-inc.visualstudio.com/DefaultCollection/_git/Fabrikam-Fiber-Git"
    assert event == CodePushed(
        source="azure-devops",
        event_id="03c164c2-8912-4d5e-8009-3707d5f83734",
        occurred_at=at("2016-09-19T13:03:27.0379153Z"),
        scope="fabrikam-fiber-inc",
        project="Fabrikam-Fiber-Git",
        project_id=CONTAINER_PROJECT,
        # uniqueName "Windows Live ID\\fabrikamfiber4@hotmail.com" still yields the email
        actor=Person(name="Jamal Hartnett", email="fabrikamfiber4@hotmail.com", id="00067FFED5C7AF52@Live.com"),
        web_url=remote,
        text="Jamal Hartnett pushed updates to branch master of repository Fabrikam-Fiber-Git.",
        repository="Fabrikam-Fiber-Git",
        ref="refs/heads/master",
        commits=(
            Commit(
                id="33b55f7cb7e7e245323987634f960cf4a6e6bc74",
                message="Fixed bug in web.config file",
                author="Jamal Hartnett",
                url=f"{remote}/commit/33b55f7cb7e7e245323987634f960cf4a6e6bc74",
            ),
        ),
    )
    assert event.branch == "refs/heads/master"


@pytest.mark.parametrize(
    ("name", "event_id", "change", "status", "text", "outcome"),
    [
        (
            "git.pullrequest.created.json",
            "2ab4e3d3-b7a6-425e-92b1-5a9982c1269e",
            "created",
            "active",
            "Jamal Hartnett created a new pull request",
            None,
        ),
        (
            "git.pullrequest.updated.json",
            "af07be1b-f3ad-44c8-a7f1-c4835f2df06b",
            "updated",
            "completed",
            "Jamal Hartnett marked the pull request as completed",
            "succeeded",
        ),
        (
            "git.pullrequest.merged.json",
            "6872ee8c-b333-4eff-bfb9-0d5274943566",
            "merged",
            "completed",
            "Jamal Hartnett has created a pull request merge commit",
            "succeeded",
        ),
    ],
)
async def test_pull_requests(
    ingest: Ingest,
    shared_dir: Path,
    name: str,
    event_id: str,
    change: str,
    status: str,
    text: str,
    outcome: str | None,
) -> None:
    payload = load_sample(shared_dir, "ado", name)
    await deliver(ingest, shared_dir, name)
    [event] = ingest.sink.events
    assert event == PullRequestChanged(
        source="azure-devops",
        event_id=event_id,
        occurred_at=at(payload["createdDate"]),
        scope="fabrikam",
        project="Fabrikam",
        project_id=CONTAINER_PROJECT,
        actor=Person(
            name="Jamal Hartnett", email="fabrikamfiber4@hotmail.com", id="54d125f7-69f7-4191-904f-c5b96b6261c8"
        ),
        web_url="https://fabrikam.visualstudio.com/DefaultCollection/_git/Fabrikam/pullrequest/1",
        text=text,
        repository="Fabrikam",
        pull_request_id="1",
        title="my first pull request",
        change=change,
        status=status,
        source_ref="refs/heads/mytopic",
        target_ref="refs/heads/master",
    )
    assert event.outcome == outcome
    assert event.grouping_key == "azure-devops:fabrikam:fabrikam:pr:fabrikam:1"


RELEASE_PAGE = (
    "http://fabfiber.visualstudio.com/DefaultCollection/Fabrikam-Fiber-Git/_releaseProgress"
    "?_a=release-pipeline-progress&releaseId=1"
)


async def test_release_approval_pending(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "ms.vss-release.deployment-approval-pending-event.json")
    [event] = ingest.sink.events
    chuck = Person(name="Chuck Reinhart", id="4247c988-4060-4712-abca-ff44681dd78a")
    assert event == ApprovalPending(
        source="azure-devops",
        event_id="a73e7272-e96d-4249-93ac-7404eacd6801",
        occurred_at=at("2016-09-19T13:03:28.0320509Z"),
        scope="fabfiber",  # fabfiber.vsrm.visualstudio.com
        project="Fabrikam",
        text="Pre deployment approval pending for release Release-1 on environment Dev.",
        approval_id="0",  # a placeholder in the docs sample
        approval_kind="release",
        release_name="Release-1",
        release_id="1",
        release_definition="Fabrikam.CD",
        approval_type="preDeploy",
        web_url=RELEASE_PAGE,  # the hook links only the Release API: the release's page on the web host
        status="pending",
        environment_name="Dev",
        actor=chuck,  # who created the release: a pending approval is theirs, as the release's run is
        approvers=(Approver(person=chuck, status="pending"),),
        requester=chuck,
        created_at=at("2016-01-21T08:19:17.26Z"),
    )
    assert event.grouping_key == "azure-devops:fabfiber:release-approval:0"
    assert event.environment == "Dev"
    assert event.pipeline == "Fabrikam.CD"  # what pipelines= matches
    # the card says which release of which definition waits for which environment, and links it
    card = render(merge(None, event).state)
    assert card.title == "Release Fabrikam.CD Release-1 to Dev"
    facts = [(f.label, f.value) for f in card.facts]
    assert ("Pipeline", "Fabrikam.CD") in facts and ("Release", "Release-1") in facts
    assert [(link.label, link.url) for link in card.links] == [("Open in Azure DevOps", RELEASE_PAGE)]


async def test_an_approval_assigned_to_a_group_says_so(ingest: Ingest, shared_dir: Path) -> None:
    release = load_sample(shared_dir, "ado", "ms.vss-release.deployment-approval-pending-event.json")
    release["resource"]["approval"]["approver"].update(displayName="[Fabrikam]\\Release Managers", isContainer=True)
    pipeline = load_sample(shared_dir, "ado", "ms.vss-pipelinechecks-events.approval-pending.json")
    steps = pipeline["resource"]["approval"]["steps"]
    steps.append({**steps[0], "assignedApprover": {"id": "6r0up", "descriptor": "vssgp.Uy0xLTk"}})
    for hook in (release, pipeline):
        assert (await ingest.hook(hook)).status == 200
    release_event, pipeline_event = ingest.sink.events
    assert [(a.person.display, a.group) for a in release_event.approvers] == [("[Fabrikam]\\Release Managers", True)]
    assert [(a.person.id, a.group) for a in pipeline_event.approvers] == [
        ("743f73b7-cdeb-4de7-80b7-00cee17476b8", False),  # a person, or not known yet
        ("6r0up", True),
    ]


async def test_release_approval_completed(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "ms.vss-release.deployment-approval-completed-event.json")
    [event] = ingest.sink.events
    chuck = Person(name="Chuck Reinhart", id="4247c988-4060-4712-abca-ff44681dd78a")
    assert event == ApprovalCompleted(
        source="azure-devops",
        event_id="106acb39-c61e-4efd-995e-a9f5e71ba3cd",
        occurred_at=at("2016-09-19T13:03:28.1594606Z"),
        scope="fabfiber",
        project="Fabrikam",
        actor=chuck,
        text="Pre Deployment approval for deployment of release Release-1 on environment Dev Succeeded.",
        approval_id="0",
        approval_kind="release",
        release_name="Release-1",
        release_id="1",
        release_definition="Fabrikam.CD",
        approval_type="preDeploy",
        web_url=RELEASE_PAGE,
        status="approved",
        environment_name="Dev",
        approvers=(Approver(person=chuck, status="approved"),),
        requester=chuck,
        created_at=at("2016-01-21T08:19:17.26Z"),
    )
    assert event.outcome == "succeeded"
    card = render(merge(None, event).state)
    assert card.title == "Release Fabrikam.CD Release-1 to Dev"  # (the same headline as while it waited)
    assert [link.url for link in card.links] == [RELEASE_PAGE]


async def test_release_deployment_completed(ingest: Ingest, shared_dir: Path) -> None:
    await deliver(ingest, shared_dir, "ms.vss-release.deployment-completed-event.json")
    [event] = ingest.sink.events
    assert event == ReleaseDeploymentCompleted(
        source="azure-devops",
        event_id="c3e52c57-187a-45c4-abe2-184a48291bad",
        occurred_at=at("2016-09-19T13:03:28.5345098Z"),
        scope="fabfiber",
        project="Fabrikam",
        text="Deployment of release Release-1 on environment Dev Succeeded.",
        release_id="1",
        release_name="Release-1",
        definition_name="",  # the sample's environment names no definition
        environment_name="Dev",
        status="succeeded",
        web_url=RELEASE_PAGE,
        definition_environment_id="1",
    )
    assert event.outcome == "succeeded"
    card = render(merge(None, event).state)
    assert card.title == "Release-1 → Dev"
    assert [link.url for link in card.links] == [RELEASE_PAGE]
    assert event.grouping_key == "azure-devops:fabfiber:release:1:dev"


def populated_approval(shared_dir: Path, name: str = "ms.vss-pipelinechecks-events.approval-pending.json") -> Any:
    """The approval sample with the fields third-party receivers see populated, as a real delivery."""
    payload = copy.deepcopy(load_sample(shared_dir, "ado", name))
    payload.update(subscriptionId="8f7b1a2c-0000-4000-8000-000000000001", notificationId=42)
    for container in payload["resourceContainers"].values():
        container["baseUrl"] = "https://dev.azure.com/contoso/"
    web = "https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=128"
    payload["resource"].update(
        projectId="6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c",
        pipeline={"id": 7, "name": "model-x-release"},
        stage={"id": "s1", "name": "PRD", "displayName": "Production", "_links": {"web": {"href": web}}},
        run={"id": 128, "name": "20260825.2"},
        resource={"type": "environment", "id": "3", "name": "prd-teams-poc"},
        id=128,
        stageName="PRD",
        attemptId=1,
    )
    step = payload["resource"]["approval"]["steps"][0]
    step["assignedApprover"] = {"id": "743f", "displayName": "Ana Lopez", "uniqueName": "ana@contoso.com"}
    return payload


async def test_populated_approval_pending(ingest: Ingest, shared_dir: Path) -> None:
    assert (await ingest.hook(populated_approval(shared_dir))).status == 200
    [event] = ingest.sink.events
    assert isinstance(event, ApprovalPending)
    assert event.scope == "contoso" and event.project == "Fabrikam"
    assert event.run == PipelineRef(
        organization="contoso",
        project="Fabrikam",
        pipeline_id="7",
        pipeline_name="model-x-release",
        run_id="128",
        run_name="20260825.2",
    )
    assert (event.stage_name, event.stage_display_name, event.environment_name) == (
        "PRD",
        "Production",
        "prd-teams-poc",
    )
    assert event.approvers == (
        Approver(
            person=Person(name="Ana Lopez", email="ana@contoso.com", id="743f"),
            status="pending",
            comment="Sample comment",
        ),
    )
    assert event.web_url == "https://dev.azure.com/contoso/Fabrikam/_build/results?buildId=128"
    # the stage goes by its display name, as the run's card names it; a stages= filter matches either name
    assert (event.pipeline, event.stage, event.environment) == ("model-x-release", "Production", "prd-teams-poc")
    assert event.stage_names == ("Production", "PRD")
