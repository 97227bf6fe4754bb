"""Azure DevOps, for real: the organization answers, and the PAT or identity may read pipelines, run them
(a preview run, which starts nothing), read approvals and identities, and the service hooks are in place.

Authorization comes before validation on the service, so a preview that fails validation (a missing
parameter) still shows that the identity may run the pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from adapters.azure_devops.access import (
    APPROVE,
    READ_IDENTITIES,
    READ_PIPELINES,
    RUN_PIPELINES,
    Need,
    Refusal,
    StatusRecorder,
    classify,
)
from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.azure_devops.connect import run_connect
from adapters.azure_devops.pipelines import connection_for, limited
from adapters.doctor.report import DEADLINE, Check, fail, ok, section_off, skip, warn
from adapters.worker_pool import NoAnswer, in_own_thread
from bot.config import AzureDevOpsSettings, PipelineTarget, Settings

T = TypeVar("T")


# Why the other checks are not made after the first project's read failed so, by what the organization said.
SKIPPED_BECAUSE = {
    "credentials": "the organization refused the credentials (401)",
    "unreachable": "the organization did not answer",
    "unsupported": "the organization does not offer the API",
}


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _fix(refusal: Refusal, need: Need, settings: AzureDevOpsSettings) -> str:
    if refusal.kind == "credentials":
        if settings.pat is not None:
            return f"create a PAT in the organization and put it in ${settings.pat.variable}"
        return "add the service principal to the organization (Organization settings → Users) and check its secret"
    if refusal.kind == "scope":
        return f"give the PAT the scope {need.scope}"
    if refusal.kind == "permission":
        return f"grant the identity {need.permission}"
    if refusal.kind == "unreachable":
        return "check azure_devops.organization_url and the network"
    if refusal.kind in ("not_found", "unsupported"):
        return "check azure_devops.organization_url and azure_devops.projects"
    return "see the message"


def configured_pipelines(settings: Settings) -> list[PipelineTarget]:
    """Every pipeline the configuration starts: integrations, retrain pipelines, promotion releases."""
    found: list[PipelineTarget] = [app.integration for app in settings.apps.values()]
    for model in settings.models.values():
        if model.retrain and model.retrain.azure_devops_pipeline:
            found.append(model.retrain.azure_devops_pipeline)
        if model.promotion_gate:
            found.append(model.promotion_gate.release)
    unique: dict[tuple[str, str], PipelineTarget] = {}
    for target in found:
        unique.setdefault((target.project.lower(), target.pipeline.lower()), target)
    return list(unique.values())


class _Doctor:
    """The checks, each call to Azure DevOps given ``deadline`` seconds (its requests a second more, so that
    the deadline, which names the wait, ends it) and no retry."""

    def __init__(self, settings: Settings, deadline: float) -> None:
        assert settings.azure_devops is not None
        self.settings = settings
        self.ado = settings.azure_devops
        self.deadline = deadline
        self.connection = connection_for(self.ado, timeout=deadline + 1.0)
        self.status = StatusRecorder()
        self._clients: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        if name not in self._clients:
            if name == "approvals":
                made: Any = PipelineApprovalsClient(self.connection.base_url, self.connection._creds)
                limited(made, self.connection.timeout)
            else:
                made = getattr(self.connection.clients_v7_1, f"get_{name}_client")()
            self._clients[name] = self.status.attach(made)
        return self._clients[name]

    async def call(self, need: Need, function: Callable[[], T]) -> T:
        """``function()`` (SDK calls) on a thread of its own, within the deadline."""

        def attempt() -> T:
            self.status.reset()  # (the recorder is per thread)
            try:
                return function()
            except Exception as error:
                raise _Refused(classify(error, need, self.status.last)) from None

        try:
            return await in_own_thread(attempt, self.deadline)
        except NoAnswer as late:
            raise _Refused(classify(late, need)) from None

    def _list_pipelines(self, project: str) -> Any:
        return self.client("pipelines").list_pipelines(project)

    def _preview(self, body: Any, project: str, pipeline_id: int) -> Any:
        return self.client("pipelines").run_pipeline(body, project, pipeline_id)

    def _pending_approvals(self, project: str) -> list[dict[str, Any]]:
        pending: list[dict[str, Any]] = self.client("approvals").query_approvals(project, state="pending")
        return pending

    def refused(self, name: str, refusal: Refusal, need: Need) -> Check:
        return fail(name, refusal.message, _fix(refusal, need, self.ado))

    async def run(self, chat_filters: Sequence[Mapping[str, object]]) -> AsyncIterator[Check]:
        """Each check as it ends."""
        pipeline_ids: dict[tuple[str, str], int] = {}
        for index, project in enumerate(self.ado.projects):
            name = f"azure_devops.read[{project}]"
            try:
                found = await self.call(READ_PIPELINES, partial(self._list_pipelines, project))
            except _Refused as refused:
                yield self.refused(name, refused.refusal, READ_PIPELINES)
                if index == 0 and (why := SKIPPED_BECAUSE.get(refused.refusal.kind)):
                    yield skip("azure_devops (other checks)", f"skipped: {why}")
                    return
                continue
            for item in found or []:
                pipeline_ids[(project.lower(), str(item.name).lower())] = int(item.id)
            yield ok(name, f"{self.ado.organization_url}: reads the pipelines of {project} ({len(found or [])})")
        async for check in self.run_checks(pipeline_ids):
            yield check
        async for check in self.approval_checks():
            yield check
        yield await self.identities_check()
        yield await self.hooks_check(chat_filters)

    async def run_checks(self, pipeline_ids: Mapping[tuple[str, str], int]) -> AsyncIterator[Check]:
        from azure.devops.v7_1.pipelines.models import RunPipelineParameters

        targets = configured_pipelines(self.settings)
        if not targets:
            yield skip("azure_devops.run", "no pipeline in the configuration to try a preview run of")
            return
        for target in targets:
            name = f"azure_devops.run[{target.pipeline}]"
            pipeline_id = pipeline_ids.get((target.project.lower(), target.pipeline.lower()))
            if pipeline_id is None and target.pipeline.isdigit():
                pipeline_id = int(target.pipeline)
            if pipeline_id is None:
                yield fail(name, f"project {target.project} has no pipeline {target.pipeline}", "fix the pipeline name")
                continue
            resources = None
            if target.branch:
                ref = target.branch if target.branch.startswith("refs/") else f"refs/heads/{target.branch}"
                resources = {"repositories": {"self": {"refName": ref}}}
            body = RunPipelineParameters(
                preview_run=True, template_parameters=dict(target.parameters) or None, resources=resources
            )
            try:
                await self.call(RUN_PIPELINES, partial(self._preview, body, target.project, pipeline_id))
            except _Refused as refused:
                if refused.refusal.kind == "invalid":  # authorised, then refused on the parameters
                    yield ok(name, f"may run it (the preview said: {refused.refusal.message})")
                else:
                    yield self.refused(name, refused.refusal, RUN_PIPELINES)
                continue
            yield ok(name, f"may run {target.project}/{target.pipeline} (a preview run started nothing)")

    async def approval_checks(self) -> AsyncIterator[Check]:
        for project in self.ado.projects:
            name = f"azure_devops.approve[{project}]"
            try:
                pending = await self.call(APPROVE, partial(self._pending_approvals, project))
            except _Refused as refused:
                yield self.refused(name, refused.refusal, APPROVE)
                continue
            yield ok(
                name,
                f"reads the approvals of {project} ({len(pending)} pending); deciding one also needs the "
                "identity among the environment's approvers",
            )

    def _own_identity(self) -> str:
        """Read the PAT's own identity from the Identities API (as reading an approval's approvers does)."""
        me = self.client("location").get_connection_data().authenticated_user
        self.client("identity").read_identities(identity_ids=me.id)
        return str(me.provider_display_name or me.id)

    async def identities_check(self) -> Check:
        name = "azure_devops.identities"
        try:
            me = await self.call(READ_IDENTITIES, self._own_identity)
        except _Refused as refused:
            if refused.refusal.kind in ("scope", "permission", "unsupported"):
                return warn(
                    name,
                    f"{refused.refusal.message}: a group assigned to an approval is named on its card, but its "
                    "members cannot decide it in chat, and an approver named by id alone is not called on",
                    f"give the PAT the scope {READ_IDENTITIES.scope}"
                    if refused.refusal.kind == "scope"
                    else _fix(refused.refusal, READ_IDENTITIES, self.ado),
                )
            return self.refused(name, refused.refusal, READ_IDENTITIES)
        return ok(name, f"reads identities (as {me}): the members of a group assigned to an approval may decide it")

    async def hooks_check(self, chat_filters: Sequence[Mapping[str, object]]) -> Check:
        name = "azure_devops.hooks"
        if not self.settings.server.public_url:
            return warn(name, "server.public_url is not set: service hooks cannot be checked", "set server.public_url")
        dry_run = partial(run_connect, self.settings, dry_run=True, chat_filters=chat_filters, deadline=self.deadline)
        try:
            report = await in_own_thread(dry_run, self.deadline)
        except NoAnswer as late:
            refusal = classify(late, READ_PIPELINES)
            return fail(name, refusal.message, _fix(refusal, READ_PIPELINES, self.ado))
        if not report.ok:
            return fail(name, report.failures[0], "fix what the message names, then run `handoff connect azure-devops`")
        pending = report.changes
        if pending:
            what = ", ".join(sorted({a.change.value for a in pending}))
            return fail(
                name,
                f"{len(pending)} service hook(s) to {what}",
                "run `handoff connect azure-devops --config …`",
            )
        return ok(name, f"{len(report.actions)} service hook(s) deliver to Handoff")


async def check_azure_devops(
    settings: Settings, chat_filters: Sequence[Mapping[str, object]] = (), deadline: float = DEADLINE
) -> AsyncIterator[Check]:
    """The Azure DevOps checks, each as it ends (skipped when the section is absent or disabled); each call
    to Azure DevOps fails as unanswered after ``deadline`` seconds."""
    if (off := section_off(settings.azure_devops)) is not None:
        yield skip("azure_devops", off)
        return
    try:
        doctor = _Doctor(settings, deadline)
    except Exception as error:
        yield fail("azure_devops", f"cannot build a client ({type(error).__name__})", "check the azure_devops section")
        return
    async for check in doctor.run(chat_filters):
        yield check
