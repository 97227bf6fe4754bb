"""Service-hook events: the documented payloads, snapshotted when something happens.

An :class:`Event` holds the resource as it was at that moment (rendered for every resource version the
event type supports) and becomes one envelope per subscription, with that subscription's
``subscriptionId``, ``notificationId`` and ``resourceVersion`` (reference/azure-devops.md §1.1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.emulators.azure_devops.links import Links
from adapters.emulators.azure_devops.model import Approval, ReleaseApproval, Run, StageRun
from adapters.emulators.azure_devops.shapes import Shapes, href, iso
from adapters.emulators.azure_devops.world import Identity, Repository, World

RUN_STATE_CHANGED = "ms.vss-pipelines.run-state-changed-event"
STAGE_STATE_CHANGED = "ms.vss-pipelines.stage-state-changed-event"
JOB_STATE_CHANGED = "ms.vss-pipelines.job-state-changed-event"
APPROVAL_PENDING = "ms.vss-pipelinechecks-events.approval-pending"
APPROVAL_COMPLETED = "ms.vss-pipelinechecks-events.approval-completed"
BUILD_COMPLETE = "build.complete"
GIT_PUSH = "git.push"
RELEASE_APPROVAL_PENDING = "ms.vss-release.deployment-approval-pending-event"
RELEASE_APPROVAL_COMPLETED = "ms.vss-release.deployment-approval-completed-event"

EVENT_TYPES = (
    RUN_STATE_CHANGED,
    STAGE_STATE_CHANGED,
    JOB_STATE_CHANGED,
    APPROVAL_PENDING,
    APPROVAL_COMPLETED,
    BUILD_COMPLETE,
    GIT_PUSH,
    RELEASE_APPROVAL_PENDING,
    RELEASE_APPROVAL_COMPLETED,
)
#: What a subscription created without ``event_types`` receives: everything but the noisy job events.
DEFAULT_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t != JOB_STATE_CHANGED)

_RESULT_WORDS = {
    "succeeded": "succeeded",
    "partiallySucceeded": "partially succeeded",
    "succeededWithIssues": "succeeded with issues",
    "failed": "failed",
    "canceled": "was canceled",
    "skipped": "was skipped",
}


@dataclass(frozen=True)
class Event:
    """One occurrence, before it is addressed to a subscription."""

    id: str
    event_type: str
    publisher_id: str
    resources: dict[str, Any]  # resource version -> resource
    default_version: str
    message: dict[str, str]
    detailed_message: dict[str, str]
    created: datetime
    containers: dict[str, Any]
    context: dict[str, Any]  # what filters look at: pipelineId, stageName, environmentName, branch…

    def envelope(self, subscription_id: str, notification_id: int, resource_version: str | None) -> dict[str, Any]:
        """The JSON body POSTed to one subscription."""
        version = resource_version if resource_version in self.resources else self.default_version
        body: dict[str, Any] = {
            "subscriptionId": subscription_id,
            "notificationId": notification_id,
            "id": self.id,
            "eventType": self.event_type,
            "publisherId": self.publisher_id,
            "message": dict(self.message),
            "detailedMessage": dict(self.detailed_message),
            "resource": self.resources[version],
            "resourceVersion": version,
            "resourceContainers": self.containers,
            "createdDate": iso(self.created),
        }
        if self.publisher_id in ("tfs", "rm"):
            body["scope"] = "all"
        return body


def _messages(text: str, html: str | None = None, markdown: str | None = None) -> dict[str, str]:
    return {"text": text, "html": html or text, "markdown": markdown or text}


class ServiceHookEvents:
    """Builds the events the emulator publishes, in the documented shapes."""

    def __init__(self, world: World, links: Links, shapes: Shapes) -> None:
        self.world = world
        self.links = links
        self.shapes = shapes

    def _containers(self) -> dict[str, Any]:
        base = f"{self.links.org_url}/"
        return {
            "collection": {"id": self.world.collection_id, "baseUrl": base},
            "account": {"id": self.world.account_id, "baseUrl": base},
            "project": {"id": self.world.project_id, "baseUrl": base},
        }

    def _event(
        self,
        event_type: str,
        publisher: str,
        resources: dict[str, Any],
        message: dict[str, str],
        now: datetime,
        detailed: dict[str, str] | None = None,
        **context: Any,
    ) -> Event:
        return Event(
            id=str(uuid.uuid4()),
            event_type=event_type,
            publisher_id=publisher,
            resources=resources,
            default_version=next(iter(resources)),
            message=message,
            detailed_message=detailed or message,
            created=now,
            containers=self._containers(),
            context=context,
        )

    # pipelines ---------------------------------------------------------------------------------------

    def run_state_changed(self, run: Run, now: datetime) -> Event:
        word = {"inProgress": "is in progress", "canceling": "is being canceled"}.get(
            run.state, _RESULT_WORDS.get(run.result or "", str(run.result))
        )
        web = self.links.run_web(run.id)
        resource = {
            "run": {
                "_links": self.shapes.run_links(run),
                "url": self.links.run(run.pipeline.id, run.id),
                **self.shapes.run_summary(run),
            },
            "pipeline": self.shapes.pipeline_ref(run.pipeline),
        }
        message = _messages(
            f"Run {run.name} {word}.",
            f'Run <a href="{web}">{run.name}</a> {word}.',
            f"Run [{run.name}]({web}) {word}.",
        )
        return self._event(
            RUN_STATE_CHANGED,
            "pipelines",
            {"5.1-preview.1": resource},
            message,
            now,
            pipelineId=run.pipeline.id,
            runState=run.state,
            result=run.result,
        )

    def _stage(self, run: Run, stage: StageRun) -> dict[str, Any]:
        return {
            "_links": {
                "web": href(self.links.run_web(run.id)),
                "pipeline.web": href(self.links.pipeline_web(run.pipeline.id)),
            },
            "id": stage.id,
            "name": stage.definition.name,
            "displayName": stage.definition.display_name,
            "state": stage.state,
            "result": stage.result,
            "startTime": iso(stage.start_time),
            "finishTime": iso(stage.finish_time),
        }

    def stage_state_changed(self, run: Run, stage: StageRun, now: datetime) -> Event:
        word = {"waiting": "is waiting", "running": "is running", "notStarted": "has not started"}.get(
            stage.state, _RESULT_WORDS.get(stage.result or "", str(stage.result))
        )
        name = stage.definition.display_name
        web = self.links.run_web(run.id)
        resource = {
            "stage": self._stage(run, stage),
            "run": self.shapes.run_summary(run),
            "pipeline": self.shapes.pipeline_ref(run.pipeline),
        }
        message = _messages(
            f"Run {run.name} stage {name} {word}.",
            f'Run {run.name} stage <a href="{web}">{name}</a> {word}.',
            f"Run {run.name} stage [{name}]({web}) {word}.",
        )
        return self._event(
            STAGE_STATE_CHANGED,
            "pipelines",
            {"5.1-preview.1": resource},
            message,
            now,
            pipelineId=run.pipeline.id,
            stageName=stage.definition.name,
            stageState=stage.state,
        )

    def job_state_changed(self, run: Run, stage: StageRun, now: datetime) -> Event:
        job_state = {"running": "inProgress"}.get(stage.job_state, stage.job_state)
        word = "is running" if stage.job_state == "running" else _RESULT_WORDS.get(stage.job_result or "", "")
        web = self.links.run_web(run.id)
        job = stage.definition.job
        repositories = []
        if run.repository is not None:
            author = {
                "name": run.requested_by.display_name,
                "email": run.requested_by.unique_name,
                "date": iso(run.created),
            }
            repositories.append(
                {
                    "type": "Git",
                    "change": {"author": author, "committer": author, "message": f"Queued {run.pipeline.name}"},
                    "url": self.links.repository_remote(run.repository.name),
                }
            )
        resource = {
            "job": {
                "_links": {
                    "web": href(web),
                    "pipeline.web": href(self.links.pipeline_web(run.pipeline.id)),
                },
                "id": stage.job_id,
                "name": job,
                "state": job_state,
                "result": stage.job_result,
                "startTime": iso(stage.job_start),
                "finishTime": iso(stage.job_finish),
            },
            "stage": {k: v for k, v in self._stage(run, stage).items() if k != "_links"},
            "run": self.shapes.run_summary(run),
            "pipeline": self.shapes.pipeline_ref(run.pipeline),
            "repositories": repositories,
        }
        name = stage.definition.display_name
        message = _messages(
            f"Run {run.name} stage {name} job {job} {word}.",
            f'Run {run.name} stage {name} job <a href="{web}">{job}</a> {word}.',
            f"Run {run.name} stage {name} job [{job}]({web}) {word}.",
        )
        return self._event(
            JOB_STATE_CHANGED,
            "pipelines",
            {"5.1-preview.1": resource},
            message,
            now,
            pipelineId=run.pipeline.id,
            stageName=stage.definition.name,
            jobName=job,
        )

    def _approval(self, kind: str, run: Run, approval: Approval, now: datetime) -> Event:
        env = approval.environment
        stage = run.stage(approval.stage_name)
        env_web = self.links.environment_web(env.id)
        web = f"{self.links.run_web(run.id)}&view=results"
        resource = {
            "approval": self.shapes.approval(approval, run, expand="steps"),
            "projectId": self.world.project_id,
            "pipeline": self.shapes.pipeline_ref(run.pipeline),
            "stage": self._stage(run, stage) if stage else None,
            "run": {"id": run.id, "name": run.name, "url": self.links.run(run.pipeline.id, run.id)},
            "resource": {"type": "environment", "id": str(env.id), "name": env.name},
            "id": run.id,
            "url": self.links.run(run.pipeline.id, run.id),
            "stageName": approval.stage_name,
            "attemptId": 1,
        }
        verb = "pending" if kind == APPROVAL_PENDING else "completed"
        message = _messages(
            f"Approval {verb} for deployment of pipeline {run.name} to environment {env.name}.",
            f"Approval {verb} for deployment of pipeline <a href={web}> {run.name} </a> to environment "
            f"<a href={env_web}>{env.name}</a>.",
            f"Approval {verb} for deployment of pipeline [{run.name}]({web}) to environment [{env.name}]({env_web})",
        )
        return self._event(
            kind,
            "pipelines",
            {"5.1-preview.1": resource},
            message,
            now,
            pipelineId=run.pipeline.id,
            stageName=approval.stage_name,
            environmentName=env.name,
        )

    def approval_pending(self, run: Run, approval: Approval, now: datetime) -> Event:
        return self._approval(APPROVAL_PENDING, run, approval, now)

    def approval_completed(self, run: Run, approval: Approval, now: datetime) -> Event:
        return self._approval(APPROVAL_COMPLETED, run, approval, now)

    def build_complete(self, run: Run, now: datetime) -> Event:
        word = {"succeeded": "succeeded", "partiallySucceeded": "partially succeeded", "canceled": "was stopped"}.get(
            run.result or "", "failed"
        )
        web = self.links.run_web(run.id)
        message = _messages(
            f"Build {run.name} {word}",
            f'Build <a href="{web}">{run.name}</a> {word}',
            f"Build [{run.name}]({web}) {word}",
        )
        resources = {"2.0": self.shapes.build(run), "1.0": self.shapes.build_legacy(run)}
        return self._event(
            BUILD_COMPLETE,
            "tfs",
            resources,
            message,
            now,
            definitionName=run.pipeline.name,
            pipelineId=run.pipeline.id,
            result=run.result,
        )

    # code --------------------------------------------------------------------------------------------

    def git_push(
        self,
        repo: Repository,
        ref_name: str,
        old: str,
        new: str,
        commits: list[dict[str, Any]],
        pusher: Identity,
        push_id: int,
        now: datetime,
    ) -> Event:
        branch = ref_name.removeprefix("refs/heads/")
        remote = self.links.repository_remote(repo.name)
        resource = {
            "commits": commits,
            "refUpdates": [{"name": ref_name, "oldObjectId": old, "newObjectId": new}],
            "repository": {
                "id": repo.id,
                "name": repo.name,
                "url": self.links.repository(repo.id),
                "project": {k: v for k, v in self.shapes.project().items() if k in ("id", "name", "url", "state")},
                "defaultBranch": repo.default_branch,
                "remoteUrl": remote,
            },
            "pushedBy": {
                k: v
                for k, v in (self.shapes.identity(pusher) or {}).items()
                if k in ("id", "displayName", "uniqueName")
            },
            "pushId": push_id,
            "date": iso(now),
            "url": self.links.push(repo.id, push_id),
        }
        branch_web = f"{remote}/#version=GB{branch}"
        n = len(commits)
        lines = "\n".join(f" - {c['comment']} {c['commitId'][:8]}" for c in commits)
        message = _messages(
            f"{pusher.display_name} pushed updates to branch {branch} of repository {repo.name}.",
            f"{pusher.display_name} pushed updates to branch {branch} of repository {repo.name}.",
            f"{pusher.display_name} pushed updates to branch `{branch}` of repository `{repo.name}`.",
        )
        detailed = _messages(
            f"{pusher.display_name} pushed {n} commit{'s' if n != 1 else ''} to branch {branch} of repository "
            f"{repo.name}.\n{lines}",
            f'{pusher.display_name} pushed {n} commit{"s" if n != 1 else ""} to branch <a href="{branch_web}">'
            f'{branch}</a> of repository <a href="{remote}/">{repo.name}</a>.',
            f"{pusher.display_name} pushed {n} commit{'s' if n != 1 else ''} to branch [{branch}]({branch_web}) "
            f"of repository [{repo.name}]({remote}/).\n{lines}",
        )
        return self._event(
            GIT_PUSH,
            "tfs",
            {"1.0": resource},
            message,
            now,
            detailed,
            repository=repo.id,
            branch=ref_name,
            pushedBy=pusher.id,
        )

    # classic release ---------------------------------------------------------------------------------

    def _release(self, a: ReleaseApproval) -> dict[str, Any]:
        creator = a.created_by or a.approver
        # as the documented sample names them: by id and display name only
        owner = {"id": creator.id, "displayName": creator.display_name}
        when = iso(a.created_on)
        release_url = self.links.release(a.release_id)
        definition = {
            "id": a.definition_id,
            "name": a.definition_name,
            "url": self.links.release_definition(a.definition_id),
        }
        environment = {
            "id": a.environment_id,
            "releaseId": a.release_id,
            "name": a.environment_name,
            "status": "notStarted" if a.status == "pending" else "inProgress",
            "variables": {},
            "preDeployApprovals": [],
            "postDeployApprovals": [],
            "preApprovalsSnapshot": {
                "approvals": [],
                "approvalOptions": {"requiredApproverCount": 1, "releaseCreatorCanBeApprover": True},
            },
            "postApprovalsSnapshot": {"approvals": []},
            "deploySteps": [],
            "rank": 1,
            "definitionEnvironmentId": a.environment_id,
            "queueId": 1,
            "environmentOptions": {},
            "demands": [],
            "conditions": [],
            "modifiedOn": iso(a.modified_on),
            "workflowTasks": [],
            "deployPhasesSnapshot": [],
            "owner": owner,
            "scheduledDeploymentTime": None,
            "schedules": [],
            "release": {"id": a.release_id, "name": a.release_name, "url": release_url},
        }
        return {
            "id": a.release_id,
            "name": a.release_name,
            "status": "active",
            "createdOn": when,
            "modifiedOn": iso(a.modified_on),
            "modifiedBy": owner,
            "createdBy": owner,
            "environments": [environment],
            "variables": {},
            "artifacts": [],
            "releaseDefinition": definition,
            "description": "",
            "reason": "manual",
            "releaseNameFormat": "Release-$(rev:r)",
            "keepForever": False,
            "definitionSnapshotRevision": 1,
            "comment": "",
            "logsContainerUrl": None,
            "_links": {"web": href(release_url)},
        }

    def release_approval(self, a: ReleaseApproval, now: datetime) -> Event:
        kind = RELEASE_APPROVAL_PENDING if a.status == "pending" else RELEASE_APPROVAL_COMPLETED
        phase = "Pre" if a.approval_type == "preDeploy" else "Post"
        release_url = self.links.release(a.release_id)
        if a.status == "pending":
            text = (
                f"{phase} deployment approval pending for release {a.release_name} on environment {a.environment_name}."
            )
            html = (
                f"{phase} deployment approval pending for release <a href='{release_url}'>{a.release_name}</a> on "
                f"environment {a.environment_name}."
            )
        else:
            text = (
                f"{phase} deployment approval for release {a.release_name} on environment {a.environment_name} "
                f"{a.status}."
            )
            html = (
                f"{phase} deployment approval for release <a href='{release_url}'>{a.release_name}</a> on "
                f"environment {a.environment_name} {a.status}."
            )
        approval = {k: v for k, v in self.shapes.release_approval(a).items() if k not in ("history", "url")}
        approval["release"] = {"id": a.release_id, "name": a.release_name}
        approval["releaseEnvironment"] = {"id": a.environment_id, "name": a.environment_name}
        approval["releaseDefinition"] = {
            "id": a.definition_id,
            "name": a.definition_name,
            "url": self.links.release_definition(a.definition_id),
        }
        resource = {
            "approval": approval,
            "release": self._release(a),
            "project": {"id": self.world.project_id, "name": self.world.project},
        }
        return self._event(
            kind,
            "rm",
            {"3.0-preview.1": resource},
            _messages(text, html),
            now,
            releaseDefinitionId=a.definition_id,
            releaseEnvironmentId=a.environment_id,
        )
