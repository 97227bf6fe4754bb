"""REST representations: the JSON objects the service returns for pipelines, runs, builds, approvals…

Each function takes the emulator's state objects and returns a JSON-ready dict in the shape of the
Azure DevOps REST API (7.1), as the SDK's models deserialize it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from adapters.emulators.azure_devops.identities import TENANT_ID, Membership, identity_descriptor, subject_descriptor
from adapters.emulators.azure_devops.links import Links
from adapters.emulators.azure_devops.model import (
    Approval,
    ApprovalStep,
    LogFile,
    ReleaseApproval,
    Run,
    StageRun,
)
from adapters.emulators.azure_devops.world import Group, Identity, PipelineDef, Principal, World

SYSTEM_IDENTITY = "00000002-0000-8888-8000-000000000000"


def iso(at: datetime | None) -> str | None:
    """A timestamp the way the service writes it (UTC, seven fractional digits, ``Z``)."""
    if at is None:
        return None
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def href(url: str) -> dict[str, str]:
    return {"href": url}


def collection(items: list[Any]) -> dict[str, Any]:
    """The ``{count, value}`` wrapper every list-returning call uses."""
    return {"count": len(items), "value": items}


class Shapes:
    """Renders state as REST JSON, with URLs from ``links``."""

    def __init__(self, world: World, links: Links) -> None:
        self.world = world
        self.links = links

    # identities and project --------------------------------------------------------------------------

    def identity(self, who: Principal | None) -> dict[str, Any] | None:
        if who is None:
            return None
        ref: dict[str, Any] = {
            "displayName": who.display_name,
            "url": self.links.identity(who.id),
            "_links": {"avatar": href(self.links.identity_image(who.id))},
            "id": who.id,
            "uniqueName": who.unique_name,
            "imageUrl": self.links.identity_image(who.id),
            "descriptor": subject_descriptor(who),
        }
        if isinstance(who, Group):
            ref["isContainer"] = True
        return ref

    def ims_identity(self, who: Principal, membership: Membership) -> dict[str, Any]:
        """An ``Identity`` of the Identities API (area IMS), with the membership asked for."""
        group = isinstance(who, Group)
        return {
            "id": who.id,
            "descriptor": identity_descriptor(who),
            "subjectDescriptor": subject_descriptor(who),
            "providerDisplayName": who.display_name,
            "customDisplayName": None,
            "isActive": True,
            "isContainer": group,
            "members": [identity_descriptor(m) for m in membership.members],
            "memberOf": [identity_descriptor(g) for g in membership.member_of],
            "memberIds": [m.id for m in membership.members],
            "metaTypeId": 255 if group else 0,
            "resourceVersion": 2,
            "properties": self.ims_properties(who),
        }

    def connection_data(self, caller: Identity) -> dict[str, Any]:
        """``GET _apis/connectionData``: who the caller is, and which deployment answers."""
        me = self.ims_identity(caller, Membership())
        return {
            "authenticatedUser": me,
            "authorizedUser": me,
            "instanceId": self.world.collection_id,
            "deploymentId": self.world.account_id,
            "deploymentType": "hosted",
            "locationServiceData": {
                "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
                "defaultAccessMappingMoniker": "PublicAccessMapping",
                "lastChangeId": 1,
                "lastChangeId64": 1,
            },
        }

    def ims_properties(self, who: Principal) -> dict[str, dict[str, str]]:
        """An Identity's ``properties``, each a ``{"$type": "System.String", "$value": …}``."""
        if isinstance(who, Group):
            values = {
                "SchemaClassName": "Group",
                "Account": who.unique_name,
                "Description": who.description,
                "Domain": f"vstfs:///Classification/TeamProject/{self.world.project_id}",
            }
        else:
            values = {
                "SchemaClassName": "User",
                "Account": who.unique_name,
                "Mail": who.unique_name,
                "Domain": TENANT_ID,
            }
        return {name: {"$type": "System.String", "$value": value} for name, value in values.items()}

    def project(self) -> dict[str, Any]:
        return {
            "id": self.world.project_id,
            "name": self.world.project,
            "url": self.links.project(),
            "state": "wellFormed",
            "revision": 1,
            "visibility": "private",
            "lastUpdateTime": "2026-01-01T00:00:00.000Z",
        }

    # pipelines and runs ------------------------------------------------------------------------------

    def pipeline_ref(self, p: PipelineDef) -> dict[str, Any]:
        return {
            "url": self.links.pipeline(p.id, p.revision),
            "id": p.id,
            "revision": p.revision,
            "name": p.name,
            "folder": p.folder,
        }

    def pipeline(self, p: PipelineDef, *, with_configuration: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "_links": {
                "self": href(self.links.pipeline(p.id, p.revision)),
                "web": href(self.links.pipeline_web(p.id)),
            },
            **self.pipeline_ref(p),
        }
        if with_configuration:
            repo = self.world.repository(p.repository) if p.repository else None
            body["configuration"] = {
                "path": p.yaml_path,
                "repository": {"id": repo.id, "type": "azureReposGit"} if repo else None,
                "type": "yaml",
            }
        return body

    def run_links(self, run: Run) -> dict[str, Any]:
        p = run.pipeline
        return {
            "self": href(self.links.run(p.id, run.id)),
            "web": href(self.links.run_web(run.id)),
            "pipeline.web": href(self.links.pipeline_web(p.id)),
            "pipeline": href(self.links.pipeline(p.id, p.revision)),
        }

    def run_summary(self, run: Run) -> dict[str, Any]:
        """The run as service hooks carry it inside stage/job/approval events (no links)."""
        return {
            "pipeline": self.pipeline_ref(run.pipeline),
            "state": run.state,
            "result": run.result,
            "createdDate": iso(run.created),
            "finishedDate": iso(run.finished),
            "id": run.id,
            "name": run.name,
        }

    def run(self, run: Run) -> dict[str, Any]:
        body: dict[str, Any] = {
            "_links": self.run_links(run),
            "pipeline": self.pipeline_ref(run.pipeline),
            "state": run.state,
            "createdDate": iso(run.created),
            "url": self.links.run(run.pipeline.id, run.id),
            "resources": self.run_resources(run),
            "id": run.id,
            "name": run.name,
        }
        if run.result is not None:
            body["result"] = run.result
        if run.finished is not None:
            body["finishedDate"] = iso(run.finished)
        if run.template_parameters:
            body["templateParameters"] = dict(run.template_parameters)
        if run.variables:
            body["variables"] = {k: dict(v) for k, v in run.variables.items()}
        return body

    def run_resources(self, run: Run) -> dict[str, Any]:
        if run.repository is None:
            return {}
        return {
            "repositories": {
                "self": {
                    "repository": {"id": run.repository.id, "type": "azureReposGit"},
                    "refName": run.ref_name,
                    "version": run.source_version,
                }
            }
        }

    def pipeline_log(self, run: Run, log: LogFile, signed_url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": log.id,
            "createdOn": iso(log.created_on),
            "lastChangedOn": iso(log.last_changed_on),
            "lineCount": len(log.lines),
            "url": self.links.run_log(run.pipeline.id, run.id, log.id),
        }
        if signed_url is not None:
            body["signedContent"] = {"signatureExpires": iso(log.last_changed_on), "url": signed_url}
        return body

    # builds ------------------------------------------------------------------------------------------

    def definition_ref(self, p: PipelineDef) -> dict[str, Any]:
        return {
            "drafts": [],
            "id": p.id,
            "name": p.name,
            "url": self.links.definition(p.id),
            "uri": f"vstfs:///Build/Definition/{p.id}",
            "path": p.folder,
            "type": "build",
            "queueStatus": "enabled",
            "revision": p.revision,
            "project": self.project(),
        }

    def build(self, run: Run) -> dict[str, Any]:
        p = run.pipeline
        body: dict[str, Any] = {
            "_links": {
                "self": href(self.links.build(run.id)),
                "web": href(self.links.run_web(run.id)),
                "sourceVersionDisplayUri": href(self.links.api(f"build/builds/{run.id}/sources")),
                "timeline": href(self.links.timeline(run.id, run.timeline_id)),
                "badge": href(self.links.api(f"build/status/{p.id}")),
            },
            "properties": {},
            "tags": [],
            "validationResults": [],
            "plans": [{"planId": run.plan_id}],
            "templateParameters": dict(run.template_parameters),
            "triggerInfo": {},
            "id": run.id,
            "buildNumber": run.name,
            "status": run.build_status,
            "queueTime": iso(run.created),
            "url": self.links.build(run.id),
            "definition": self.definition_ref(p),
            "buildNumberRevision": int(run.name.rsplit(".", 1)[-1]) if "." in run.name else 1,
            "project": self.project(),
            "uri": f"vstfs:///Build/Build/{run.id}",
            "sourceBranch": run.ref_name,
            "sourceVersion": run.source_version,
            "queue": {
                "id": 1,
                "name": "Azure Pipelines",
                "pool": {"id": 1, "name": "Azure Pipelines", "isHosted": True},
            },
            "priority": "normal",
            "reason": run.reason,
            "requestedFor": self.identity(run.requested_by),
            "requestedBy": self.identity(run.requested_by),
            "lastChangedDate": iso(run.last_changed or run.created),
            "lastChangedBy": self.identity(run.last_changed_by or run.requested_by),
            "orchestrationPlan": {"planId": run.plan_id},
            "logs": {"id": 0, "type": "Container", "url": self.links.build_log(run.id)},
            "repository": self.build_repository(run),
            "keepForever": run.keep_forever,
            "retainedByRelease": False,
            "triggeredByBuild": None,
            "appendCommitMessageToRunName": True,
        }
        if run.variables:
            body["parameters"] = json.dumps({k: v.get("value") for k, v in run.variables.items()})
        if run.start_time is not None:
            body["startTime"] = iso(run.start_time)
        if run.finished is not None:
            body["finishTime"] = iso(run.finished)
        if run.build_status == "completed" and run.result is not None:
            body["result"] = run.result
        return body

    def build_repository(self, run: Run) -> dict[str, Any] | None:
        if run.repository is None:
            return None
        return {
            "id": run.repository.id,
            "type": "TfsGit",
            "name": run.repository.name,
            "url": self.links.repository_remote(run.repository.name),
            "clean": None,
            "checkoutSubmodules": False,
        }

    def build_legacy(self, run: Run) -> dict[str, Any]:
        """``build.complete`` with ``resourceVersion`` 1.0 (the XAML-era shape of the documented sample)."""
        p = run.pipeline
        drop = self.links.container(run.id, "drop")
        logs = self.links.container(run.id, "logs")
        legacy_status = {"succeeded": "succeeded", "partiallySucceeded": "partiallySucceeded", "canceled": "stopped"}
        return {
            "uri": f"vstfs:///Build/Build/{run.id}",
            "id": run.id,
            "buildNumber": run.name,
            "url": self.links.build(run.id),
            "startTime": iso(run.start_time or run.created),
            "finishTime": iso(run.finished),
            "reason": run.reason,
            "status": legacy_status.get(run.result or "", "failed"),
            "dropLocation": f"#/{run.id}/drop",
            "drop": {
                "location": f"#/{run.id}/drop",
                "type": "container",
                "url": drop,
                "downloadUrl": f"{drop}?$format=zip&downloadFileName={run.name}_drop",
            },
            "log": {
                "type": "container",
                "url": logs,
                "downloadUrl": f"{logs}?$format=zip&downloadFileName={run.name}_logs",
            },
            "sourceGetVersion": f"LG:{run.ref_name}:{run.source_version}",
            "lastChangedBy": self.identity(run.last_changed_by or run.requested_by),
            "retainIndefinitely": run.keep_forever,
            "hasDiagnostics": True,
            "definition": {
                "batchSize": 1,
                "triggerType": "none",
                "definitionType": "build",
                "id": p.id,
                "name": p.name,
                "url": self.links.definition(p.id),
            },
            "queue": {
                "queueType": "buildController",
                "id": 1,
                "name": "Azure Pipelines",
                "url": self.links.api("build/Queues/1"),
            },
            "requests": [
                {
                    "id": run.id,
                    "url": self.links.api(f"build/Requests/{run.id}"),
                    "requestedFor": self.identity(run.requested_by),
                }
            ],
        }

    def timeline(self, run: Run) -> dict[str, Any]:
        records: list[dict[str, Any]] = []
        for stage in run.stages:
            records.extend(self._stage_records(run, stage))
        return {
            "records": records,
            "lastChangedBy": SYSTEM_IDENTITY,
            "lastChangedOn": iso(run.last_changed or run.created),
            "id": run.timeline_id,
            "changeId": len(records),
            "url": self.links.timeline(run.id, run.timeline_id),
        }

    def _stage_records(self, run: Run, stage: StageRun) -> list[dict[str, Any]]:
        timeline_state = {
            "notStarted": "pending",
            "waiting": "pending",
            "running": "inProgress",
            "completed": "completed",
        }
        out = [
            self._record(
                stage.id,
                None,
                "Stage",
                stage.definition.display_name,
                stage.definition.name,
                stage.order,
                timeline_state[stage.state],
                stage.result,
                stage.start_time,
                stage.finish_time,
            ),
        ]
        if stage.checkpoint_id and stage.approval_id:
            for record_id, parent, kind in (
                (stage.checkpoint_id, stage.id, "Checkpoint"),
                (stage.approval_id, stage.checkpoint_id, "Checkpoint.Approval"),
            ):
                out.append(
                    self._record(
                        record_id,
                        parent,
                        kind,
                        kind,
                        None,
                        1,
                        stage.checkpoint_state,
                        stage.checkpoint_result,
                        stage.start_time,
                        None,
                    )
                )
        job_state = timeline_state[stage.job_state]
        out.append(
            self._record(
                stage.phase_id,
                stage.id,
                "Phase",
                stage.definition.job,
                stage.definition.job,
                1,
                job_state,
                stage.job_result,
                stage.job_start,
                stage.job_finish,
            )
        )
        job = self._record(
            stage.job_id,
            stage.phase_id,
            "Job",
            stage.definition.job,
            None,
            1,
            job_state,
            stage.job_result,
            stage.job_start,
            stage.job_finish,
        )
        if stage.log is not None:
            job["log"] = {"id": stage.log.id, "type": "Container", "url": self.links.build_log(run.id, stage.log.id)}
            job["workerName"] = "Hosted Agent"
        out.append(job)
        return out

    @staticmethod
    def _record(
        record_id: str,
        parent_id: str | None,
        kind: str,
        name: str,
        identifier: str | None,
        order: int,
        state: str,
        result: str | None,
        start: datetime | None,
        finish: datetime | None,
    ) -> dict[str, Any]:
        return {
            "previousAttempts": [],
            "id": record_id,
            "parentId": parent_id,
            "type": kind,
            "name": name,
            "startTime": iso(start),
            "finishTime": iso(finish),
            "currentOperation": None,
            "percentComplete": 100 if state == "completed" else 0,
            "state": state,
            "result": result,
            "resultCode": None,
            "changeId": 1,
            "lastModified": iso(finish or start),
            "workerName": None,
            "order": order,
            "details": None,
            "errorCount": 1 if result == "failed" else 0,
            "warningCount": 1 if result == "succeededWithIssues" else 0,
            "url": None,
            "log": None,
            "task": None,
            "attempt": 1,
            "identifier": identifier,
        }

    def build_log(self, run: Run, log: LogFile) -> dict[str, Any]:
        return {
            "lineCount": len(log.lines),
            "createdOn": iso(log.created_on),
            "lastChangedOn": iso(log.last_changed_on),
            "id": log.id,
            "type": "Container",
            "url": self.links.build_log(run.id, log.id),
        }

    # approvals ---------------------------------------------------------------------------------------

    def approval_pipeline(self, run: Run) -> dict[str, Any]:
        """The free-form ``pipeline`` JObject of an approval: ``owner.id`` is the build id."""
        web = href(self.links.run_web(run.id))
        return {
            "owner": {
                "_links": {"web": web, "self": href(self.links.build(run.id))},
                "id": run.id,
                "name": run.name,
            },
            "id": str(run.pipeline.id),
            "name": run.pipeline.name,
            "_links": {
                "web": href(self.links.pipeline_web(run.pipeline.id)),
                "self": href(self.links.definition(run.pipeline.id)),
            },
        }

    def approval(
        self,
        approval: Approval,
        run: Run,
        *,
        expand: str = "",
        caller: Identity | None = None,
    ) -> dict[str, Any]:
        expands = {e.strip().lower() for e in expand.split(",") if e.strip()}
        body: dict[str, Any] = {
            "id": approval.id,
            "steps": [self.approval_step(s) for s in approval.steps] if "steps" in expands else [],
            "status": approval.status,
            "createdOn": iso(approval.created_on),
            "lastModifiedOn": iso(approval.last_modified_on),
            "instructions": approval.check.instructions,
            "minRequiredApprovers": approval.min_required,
            "blockedApprovers": [self.identity(b) for b in approval.blocked],
            "executionOrder": approval.check.execution_order,
            "pipeline": self.approval_pipeline(run),
            "_links": {"self": href(self.links.approval(approval.id))},
        }
        if "permissions" in expands:
            body["permissions"] = self.approval_permissions(approval, caller)
        return body

    def approval_step(self, step: ApprovalStep) -> dict[str, Any]:
        return {
            "assignedApprover": self.identity(step.assigned),
            "actualApprover": self.identity(step.actual_approver),
            "status": step.status,
            "comment": step.comment,
            "lastModifiedOn": iso(step.last_modified_on),
            "order": step.order,
            "lastModifiedBy": self.identity(step.last_modified_by),
            "initiatedOn": iso(step.initiated_on),
            "history": [
                {
                    "assignedTo": self.identity(h.assigned_to),
                    "comment": h.comment,
                    "createdBy": self.identity(h.created_by),
                    "createdOn": iso(h.created_on),
                }
                for h in step.history
            ],
        }

    def approval_permissions(self, approval: Approval, caller: Identity | None) -> str:
        if caller is None:
            return "none"
        assigned = any(caller.id in self.world.members(s.assigned) for s in approval.steps)
        blocked = any(b.id == caller.id for b in approval.blocked)
        return "view, update, reassign" if assigned and not blocked else "view"

    # classic release approvals -----------------------------------------------------------------------

    def release_approval(self, a: ReleaseApproval) -> dict[str, Any]:
        release_url = self.links.release(a.release_id)
        definition_url = self.links.release_definition(a.definition_id)
        return {
            "id": a.id,
            "revision": a.revision,
            "approver": self.identity(a.approver),
            "approvedBy": self.identity(a.approved_by),
            "approvalType": a.approval_type,
            "createdOn": iso(a.created_on),
            "modifiedOn": iso(a.modified_on),
            "status": a.status,
            "comments": a.comments,
            "isAutomated": False,
            "isNotificationOn": True,
            "trialNumber": 1,
            "attempt": 1,
            "rank": 1,
            "history": list(a.history),
            "release": {
                "id": a.release_id,
                "name": a.release_name,
                "url": release_url,
                "_links": {"web": href(release_url)},
            },
            "releaseDefinition": {
                "id": a.definition_id,
                "name": a.definition_name,
                "path": "\\",
                "projectReference": None,
                "url": definition_url,
                "_links": {"web": href(definition_url)},
            },
            "releaseEnvironment": {
                "id": a.environment_id,
                "name": a.environment_name,
                "url": f"{release_url}/environments/{a.environment_id}",
                "_links": {},
            },
            "url": self.links.release_approval(a.id),
        }
