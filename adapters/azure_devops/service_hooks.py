"""Azure DevOps service hooks → the core's domain events.

:func:`parse_service_hook` reads one delivery (reference/azure-devops.md §1.1 to §1.2). It dispatches on
``eventType``; an event type Handoff does not use (job events, and any it does not know) yields no events,
whatever the rest of the body. Optional fields may be missing or null anywhere (the documented samples are
full of nulls and zeros); a payload whose required fields are missing or of the wrong shape raises
:class:`~adapters.web.payloads.PayloadError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from adapters.azure_devops.hook_context import DEFINITION_ID_QUERY, PIPELINE_API_URL, HookContext, is_group, person
from adapters.web.payloads import Fields, PayloadError
from bot.events import (
    ApprovalCompleted,
    ApprovalEvent,
    ApprovalPending,
    Approver,
    CodePushed,
    Commit,
    DomainEvent,
    Person,
    PipelineRef,
    PullRequestChanged,
    ReleaseDeploymentCompleted,
    RunStateChanged,
    StageStateChanged,
)
from bot.ports import ApprovalStatus

__all__ = ["EVENT_TYPES", "PayloadError", "approval_status", "parse_service_hook", "with_approval_details"]

_GIT_REF = re.compile(r"^LG:(refs/[^:]+):")

Parser = Callable[[HookContext, Fields], list[DomainEvent]]


# --- pipelines ----------------------------------------------------------------------------------------


def _pipeline_id(linked: Fields, *pipelines: Fields) -> str:
    """``resource.pipeline.id`` can be wrong (the docs' gotcha): prefer ``_links``, then ``run.pipeline``."""
    if (href := linked.href("pipeline")) and (match := PIPELINE_API_URL.search(href)):
        return match.group(1)
    if (href := linked.href("pipeline.web")) and (match := DEFINITION_ID_QUERY.search(href)):
        return match.group(1)
    for pipeline in pipelines:
        if found := pipeline.text("id"):
            return found
    return ""


def _run_branch(run: Fields) -> str | None:
    return run.obj("resources").obj("repositories").obj("self").text("refName")


def _pipeline_ref(ctx: HookContext, project: str | None, run: Fields, pipeline: Fields, linked: Fields) -> PipelineRef:
    """The run of a pipelines event; ``linked`` is the object whose ``_links`` name the pipeline."""
    run_pipeline = run.obj("pipeline")
    return PipelineRef(
        organization=ctx.organization,
        project=project or "",
        pipeline_id=_pipeline_id(linked, run_pipeline, pipeline),
        pipeline_name=run_pipeline.text("name") or pipeline.text("name") or "",
        run_id=run.require_id("id"),
        run_name=run.text("name") or "",
        branch=_run_branch(run),
    )


def _run_state_changed(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
    run = resource.obj("run")
    web_url = run.href("web")
    project = ctx.project(urls=(web_url, run.href("pipeline.web")))
    return [
        RunStateChanged(
            **ctx.base(project=project, actor=person(run.obj("requestedFor")), web_url=web_url),
            run=_pipeline_ref(ctx, project, run, resource.obj("pipeline"), run),
            state=run.text("state") or "unknown",
            result=run.text("result"),
            started_at=run.time("createdDate"),
            finished_at=run.time("finishedDate"),
            created_at=ctx.created_at,
        )
    ]


def _stage_state_changed(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
    """The stage's event; and where the hook says its run completed, the run's completion too (a project whose
    hooks cover stages alone hears of it no other way)."""
    stage = resource.obj("stage")
    run = resource.obj("run")
    web_url = stage.href("web")
    project = ctx.project(urls=(web_url, stage.href("pipeline.web")))
    stage_event = StageStateChanged(
        **ctx.base(project=project, web_url=web_url),
        run=_pipeline_ref(ctx, project, run, resource.obj("pipeline"), stage),
        stage_name=stage.require_text("name"),
        stage_display_name=stage.text("displayName") or "",
        state=stage.text("state") or "unknown",
        result=stage.text("result"),
        created_at=ctx.created_at,
    )
    if (run.text("state") or "").lower() != "completed" or not run.text("result"):
        return [stage_event]
    failed_here = stage_event.outcome == "failed"
    run_completed = RunStateChanged(
        **(ctx.base(project=project, web_url=web_url) | {"event_id": f"{ctx.event_id}:run"}),
        run=stage_event.run,
        state="completed",
        result=run.text("result"),
        started_at=run.time("createdDate"),
        finished_at=run.time("finishedDate"),
        failing_stage=(stage_event.stage if failed_here else None),
        failing_stage_name=(stage_event.stage_name if failed_here else None),
        created_at=ctx.created_at,
    )
    return [stage_event, run_completed]


_BUILD_API_PATH = re.compile(r"/_apis/build/builds/(\d+)/?(?:[?#].*)?$", re.IGNORECASE)


def build_web_url(api_url: str | None) -> str | None:
    """A build's page (``…/{project}/_build/results?buildId={id}``, reference §1.2) from its Build API URL
    (``…/{project}/_apis/build/Builds/{id}``), which a ``resourceVersion`` 1.0 build.complete carries instead of a
    web link; None for any other URL."""
    if not api_url or not (found := _BUILD_API_PATH.search(api_url)):
        return None
    return f"{api_url[: found.start()]}/_build/results?buildId={found.group(1)}"


def _build_complete(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
    """``resourceVersion`` 2.0 carries the Build REST object; 1.0 the XAML-era shape, whose ``status``
    is the result."""
    status = resource.text("status")
    result = resource.text("result") or (status if status and status.lower() != "completed" else None)
    requests = resource.objects("requests")
    requester = (
        resource.obj("requestedFor")
        or (requests[0].obj("requestedFor") if requests else Fields())
        or resource.obj("requestedBy")
        or resource.obj("lastChangedBy")
    )
    branch = resource.text("sourceBranch")
    if branch is None and (match := _GIT_REF.match(resource.text("sourceGetVersion") or "")):
        branch = match.group(1)
    web_url = resource.href("web") or build_web_url(resource.text("url"))
    definition = resource.obj("definition")
    project = ctx.project(resource.obj("project").text("name"), urls=(web_url, resource.text("url")))
    run = PipelineRef(
        organization=ctx.organization,
        project=project or "",
        pipeline_id=definition.text("id") or "",
        pipeline_name=definition.text("name") or "",
        run_id=resource.require_id("id"),
        run_name=resource.text("buildNumber") or "",
        branch=branch,
        reason=resource.text("reason"),
    )
    return [
        RunStateChanged(
            **ctx.base(project=project, actor=person(requester), web_url=web_url),
            run=run,
            state="completed",
            result=result,
            started_at=resource.time("startTime"),
            finished_at=resource.time("finishTime"),
            created_at=ctx.created_at,
        )
    ]


# --- approvals ----------------------------------------------------------------------------------------


def _approvers(approval: Fields) -> tuple[Approver, ...]:
    return tuple(
        Approver(
            person=person(step.obj("assignedApprover")) or person(step.obj("actualApprover")) or Person(),
            status=step.text("status") or "pending",
            comment=step.text("comment") or "",
            group=is_group(step.obj("assignedApprover")),
        )
        for step in approval.objects("steps")
    )


def _deciding_step(approval: Fields) -> Fields | None:
    """The step that completed an approval: the last one approved or rejected (the steps it made needless
    are skipped), else the last one that is no longer pending."""
    steps = [(step, (step.text("status") or "pending").lower()) for step in reversed(approval.objects("steps"))]
    decided = next((step for step, status in steps if status in ("approved", "rejected")), None)
    return decided or next((step for step, status in steps if status not in ("pending", "uninitiated")), None)


def _decided_by(approval: Fields) -> Person | None:
    """Who completed an approval: the one who acted on its last step that is no longer pending."""
    step = _deciding_step(approval)
    if step is None:
        return None
    return person(step.obj("actualApprover")) or person(step.obj("assignedApprover"))


def _approval_run(ctx: HookContext, project: str | None, resource: Fields, approval: Fields) -> PipelineRef | None:
    """The run waiting on the approval: ``resource.run`` when populated, else the Approval's free-form
    ``pipeline.owner`` (the build id), which the REST API returns (reference/azure-devops.md §2.1)."""
    run, pipeline = resource.obj("run"), resource.obj("pipeline")
    owner_pipeline = approval.obj("pipeline")
    owner = owner_pipeline.obj("owner")
    if run.text("id") not in (None, "0"):
        run_id, run_name = run.require_id("id"), run.text("name") or ""
    elif owner.text("id") not in (None, "0"):
        run_id, run_name = owner.require_id("id"), owner.text("name") or ""
    else:
        return None
    return PipelineRef(
        organization=ctx.organization,
        project=project or "",
        pipeline_id=pipeline.text("id") or owner_pipeline.text("id") or "",
        pipeline_name=pipeline.text("name") or owner_pipeline.text("name") or "",
        run_id=run_id,
        run_name=run_name,
        branch=_run_branch(run),
    )


def _min_required(approval: Fields, approvers: tuple[Approver, ...]) -> int:
    configured = approval.integer("minRequiredApprovers") or 0
    # 0 means "every approver" in the check configuration
    return configured if configured > 0 else max(1, len(approvers))


_ENVIRONMENT_LINK = re.compile(r"/_environments/\d+[^>]*>\s*([^<]+?)\s*</a>")


def _linked_environment(html: str) -> str | None:
    """The environment a hook's HTML message links to (``…/_environments/1?view=resources>env1</a>``)."""
    return match.group(1) if (match := _ENVIRONMENT_LINK.search(html)) else None


def _pipeline_approval(kind: type[ApprovalEvent]) -> Parser:
    def parse(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
        approval = resource.obj("approval")
        stage = resource.obj("stage")
        checked = resource.obj("resource")
        owner_links = approval.obj("pipeline").obj("owner")
        web_url = stage.href("web") or owner_links.href("web") or resource.obj("run").href("web")
        project = ctx.project(urls=(web_url,), fallback=resource.text("projectId"))
        approvers = _approvers(approval)
        environment = checked.text("name") if (checked.text("type") or "environment") == "environment" else None
        if not checked and not environment:  # (the docs' sample: no resource; its message links the environment)
            environment = _linked_environment(ctx.html)
        completed = kind is ApprovalCompleted
        status = approval.text("status") or ("completed" if completed else "pending")
        # the actor of a completion is who decided it (a timeout or a cancel is nobody's doing); a pending
        # approval's is who asked for the run, which its hook does not say (the route asks the Build API)
        decided = completed and status.lower() in ("approved", "rejected")
        return [
            kind(
                **ctx.base(project=project, actor=_decided_by(approval) if decided else None, web_url=web_url),
                approval_id=approval.require_id("id"),
                approval_kind="pipeline",
                status=status,
                run=_approval_run(ctx, project, resource, approval),
                stage_name=resource.text("stageName") or stage.text("name"),
                stage_display_name=stage.text("displayName") or "",
                environment_name=environment,
                instructions=approval.text("instructions") or "",
                min_required_approvers=_min_required(approval, approvers),
                approvers=approvers,
                blocked_approvers=tuple(p for b in approval.objects("blockedApprovers") if (p := person(b))),
                created_at=approval.time("createdOn"),
            )
        ]

    return parse


_RELEASE_API_PATH = re.compile(r"/_apis/release/(?:releases|definitions)/[^?#]*$", re.IGNORECASE)


def release_web_url(release_id: str | None, *api_urls: str | None) -> str | None:
    """A classic release's page (its progress view), from the project part of any Release API URL the hook
    carries (``https://vsrm.dev.azure.com/{org}/{project}/_apis/Release/releases/1``): the same path on the
    organization's own host (``vsrm.`` taken out). None when no such URL or no release id is given."""
    if not release_id or release_id == "0":
        return None
    for url in api_urls:
        if url and (found := _RELEASE_API_PATH.search(url)):
            project_url = url[: found.start()].replace("://vsrm.", "://", 1).replace(".vsrm.", ".", 1)
            return f"{project_url}/_releaseProgress?_a=release-pipeline-progress&releaseId={release_id}"
    return None


# ``approvalType`` as the ReleaseApproval names it, or as the subscription filter numbers it (reference §1.2)
_APPROVAL_TYPES = {"predeploy": "preDeploy", "1": "preDeploy", "postdeploy": "postDeploy", "2": "postDeploy"}


def _approval_type(value: str | None) -> str:
    """``preDeploy`` or ``postDeploy``; a missing or unknown type reads as a pre-deployment approval (the usual)."""
    return _APPROVAL_TYPES.get((value or "").lower(), "preDeploy")


def _release_approval(kind: type[ApprovalEvent]) -> Parser:
    def parse(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
        approval = resource.obj("approval")
        release = resource.obj("release") or approval.obj("release")
        definition = approval.obj("releaseDefinition") or release.obj("releaseDefinition")
        release_id = release.text("id") or approval.obj("release").text("id")
        status = approval.text("status") or "pending"
        approver = person(approval.obj("approver"))
        requester = person(release.obj("createdBy"))
        completed = kind is ApprovalCompleted
        project = ctx.project(resource.obj("project").text("name"))
        return [
            kind(
                **ctx.base(
                    project=project,
                    # who decided a completed approval; who created the release for a pending one
                    actor=person(approval.obj("approvedBy")) if completed else requester,
                    web_url=release.href("web")
                    or release_web_url(
                        release_id,
                        release.text("url"),
                        approval.obj("release").text("url"),
                        definition.text("url"),
                    ),
                ),
                approval_id=approval.require_id("id"),
                approval_kind="release",
                release_name=release.text("name") or approval.obj("release").text("name") or "",
                release_id=release_id or "",
                release_definition=definition.text("name") or "",
                approval_type=_approval_type(approval.text("approvalType")),
                status=status,
                environment_name=approval.obj("releaseEnvironment").text("name"),
                approvers=(
                    Approver(
                        person=approver,
                        status=status,
                        comment=approval.text("comments") or "",
                        group=is_group(approval.obj("approver")),
                    ),
                )
                if approver
                else (),
                requester=requester,
                created_at=approval.time("createdOn"),
            )
        ]

    return parse


def with_approval_details(event: ApprovalEvent, details: Mapping[str, Any]) -> ApprovalEvent:
    """Fill what a hook left null from the Approval the REST API returns
    (``GET _apis/pipelines/approvals/{id}?$expand=steps``): the run, the pipeline, the stage, the steps.

    Raises :class:`PayloadError` if ``details`` is not an Approval.
    """
    approval = Fields.of(details, "approval")
    owner_pipeline = approval.obj("pipeline")
    owner = owner_pipeline.obj("owner")
    changes: dict[str, Any] = {}
    if event.run is None and owner.text("id"):
        changes["run"] = PipelineRef(
            organization=event.scope,
            project=event.project or "",
            pipeline_id=owner_pipeline.text("id") or "",
            pipeline_name=owner_pipeline.text("name") or "",
            run_id=owner.require_id("id"),
            run_name=owner.text("name") or "",
        )
    if not event.stage_name:
        stage = approval.text("stageName") or approval.obj("stage").text("name")
        if stage:
            changes["stage_name"] = stage
    if not event.stage_display_name and (display_name := approval.obj("stage").text("displayName")):
        changes["stage_display_name"] = display_name
    if not event.approvers and (approvers := _approvers(approval)):
        changes["approvers"] = approvers
    if not event.blocked_approvers and (
        blocked := tuple(p for b in approval.objects("blockedApprovers") if (p := person(b)))
    ):
        changes["blocked_approvers"] = blocked
    if not event.instructions and (instructions := approval.text("instructions")):
        changes["instructions"] = instructions
    if not event.web_url and (web := owner.href("web")):
        changes["web_url"] = web
    return replace(event, **changes) if changes else event


def approval_status(details: Mapping[str, Any]) -> ApprovalStatus:
    """How an Approval the REST API returns (``$expand=steps``) stands: its status, and who completed it with
    what comment when a person did (a step that timed out or was skipped names nobody).

    Raises :class:`PayloadError` if ``details`` is not an Approval.
    """
    approval = Fields.of(details, "approval")
    status = approval.text("status") or "pending"
    step = _deciding_step(approval) if status.lower() in ("approved", "rejected") else None
    return ApprovalStatus(
        approval_id=approval.require_id("id"),
        status=status,
        decided_by=_decided_by(approval) if step is not None else None,
        comment=(step.text("comment") or "") if step is not None else "",
    )


# --- code ---------------------------------------------------------------------------------------------


def _git_push(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
    repository = resource.obj("repository")
    refs = resource.objects("refUpdates")
    commits = tuple(
        Commit(
            id=commit.require_text("commitId"),
            message=commit.text("comment") or "",
            author=commit.obj("author").text("name") or "",
            url=commit.text("url"),
        )
        for commit in resource.objects("commits")
    )
    web_url = resource.href("web") or repository.text("remoteUrl")
    project = ctx.project(repository.obj("project").text("name"), urls=(web_url,))
    return [
        CodePushed(
            **ctx.base(project=project, actor=person(resource.obj("pushedBy")), web_url=web_url),
            repository=repository.text("name") or repository.text("id") or "",
            ref=(refs[0].text("name") or "") if refs else "",
            commits=commits,
        )
    ]


def _pull_request(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
    repository = resource.obj("repository")
    pull_request_id = resource.require_text("pullRequestId")
    status = resource.text("status") or "active"
    remote = repository.text("remoteUrl")
    web_url = resource.href("web") or (f"{remote}/pullrequest/{pull_request_id}" if remote else None)
    closed = status.lower() in ("completed", "abandoned")
    actor = (person(resource.obj("closedBy")) if closed else None) or person(resource.obj("createdBy"))
    project = ctx.project(repository.obj("project").text("name"), urls=(web_url,))
    return [
        PullRequestChanged(
            **ctx.base(project=project, actor=actor, web_url=web_url),
            repository=repository.text("name") or repository.text("id") or "",
            pull_request_id=pull_request_id,
            title=resource.text("title") or "",
            change=ctx.event_type.rsplit(".", 1)[-1],
            status=status,
            source_ref=resource.text("sourceRefName") or "",
            target_ref=resource.text("targetRefName") or "",
        )
    ]


# --- classic release ----------------------------------------------------------------------------------


def _deployment_completed(ctx: HookContext, resource: Fields) -> list[DomainEvent]:
    environment = resource.obj("environment")
    deployment = resource.obj("deployment")
    release = environment.obj("release") or resource.obj("release") or deployment.obj("release")
    release_id = release.text("id") or environment.text("releaseId")
    if release_id in (None, "0"):
        raise PayloadError("resource.environment.release.id: missing")
    definition = (
        environment.obj("releaseDefinition") or release.obj("releaseDefinition") or deployment.obj("releaseDefinition")
    )
    requester = deployment.obj("requestedFor") or deployment.obj("requestedBy")
    return [
        ReleaseDeploymentCompleted(
            **ctx.base(
                project=ctx.project(resource.obj("project").text("name")),
                actor=person(requester),
                web_url=release.href("web")
                or environment.href("web")
                or release_web_url(release_id, release.text("url"), definition.text("url")),
            ),
            release_id=release_id,
            release_name=release.text("name") or "",
            definition_name=definition.text("name") or "",
            environment_name=environment.text("name") or "",
            status=environment.text("status") or deployment.text("deploymentStatus") or "",
            definition_environment_id=environment.text("definitionEnvironmentId") or "",
        )
    ]


# --- dispatch -----------------------------------------------------------------------------------------


_PARSERS: dict[str, Parser] = {
    "ms.vss-pipelines.run-state-changed-event": _run_state_changed,
    "ms.vss-pipelines.stage-state-changed-event": _stage_state_changed,
    "ms.vss-pipelinechecks-events.approval-pending": _pipeline_approval(ApprovalPending),
    "ms.vss-pipelinechecks-events.approval-completed": _pipeline_approval(ApprovalCompleted),
    "build.complete": _build_complete,
    "git.push": _git_push,
    "git.pullrequest.created": _pull_request,
    "git.pullrequest.updated": _pull_request,
    "git.pullrequest.merged": _pull_request,
    "ms.vss-release.deployment-approval-pending-event": _release_approval(ApprovalPending),
    "ms.vss-release.deployment-approval-completed-event": _release_approval(ApprovalCompleted),
    "ms.vss-release.deployment-completed-event": _deployment_completed,
}

# Known, and ignored like any type Handoff does not use: job events repeat what the stage and run events say,
# much more often.
_IGNORED_EVENT_TYPES = ("ms.vss-pipelines.job-state-changed-event",)

EVENT_TYPES: tuple[str, ...] = (*_PARSERS, *_IGNORED_EVENT_TYPES)
"""The event types :func:`parse_service_hook` knows: those it reads, and those it knows Handoff does not use."""


def parse_service_hook(payload: Mapping[str, Any], organization: str = "") -> list[DomainEvent]:
    """The domain events in one service-hook delivery.

    Args:
        payload: the decoded JSON body.
        organization: the organization to name when the payload does not (the docs samples carry no
            ``baseUrl``); usually the configured organization's name.

    Returns:
        The events, in order; empty for an event type Handoff does not use, whatever the rest of its body
        (nothing of it is read or stored: a 400 for it would put the subscription on probation).

    Raises:
        PayloadError: the payload is not a JSON object with an ``eventType``, or it is an event Handoff uses
            whose required fields are missing or malformed.
    """
    envelope = Fields.of(payload)
    event_type = envelope.require_text("eventType")
    parser = _PARSERS.get(event_type)
    if parser is None:
        return []  # (the envelope is not read either: it names no id worth checking for an event not kept)
    resource = envelope.obj("resource")
    if not resource:
        raise PayloadError("resource: missing (the subscription must send resource details: All)")
    return parser(HookContext.read(envelope, resource, event_type, organization), resource)
