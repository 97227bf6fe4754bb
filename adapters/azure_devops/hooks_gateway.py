"""The Azure DevOps calls that setting up service hooks needs, through the azure-devops SDK.

``ServiceHooksClient`` lists, creates and deletes subscriptions (on the organization URL, reference §1.3);
``CoreClient`` turns a project name into the id that ``publisherInputs.projectId`` wants. Like the SDK,
everything here is synchronous: call it from a worker thread. Failures are raised as
:class:`HookCallFailed`, already classified (:mod:`adapters.azure_devops.access`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from azure.devops.connection import Connection

from adapters.azure_devops.access import (
    READ_PIPELINES,
    READ_PROJECT,
    Need,
    Refusal,
    StatusRecorder,
    classify,
    hooks_need,
)
from adapters.azure_devops.hook_plan import ExistingHook, HookCredentials, HookSpec, publisher_of
from adapters.worker_pool import NoAnswer, call_within

T = TypeVar("T")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# the project of a Pipelines API URL, which the service names by id (``…/{org}/{project id}/_apis/Pipelines/1``)
PROJECT_IN_API_URL = re.compile(r"/([0-9a-fA-F-]{36})/_apis/", re.IGNORECASE)


class HookCallFailed(Exception):
    """A call was refused or failed; ``refusal`` says why in words fit for the person fixing it."""

    def __init__(self, what: str, refusal: Refusal) -> None:
        super().__init__(f"{what}: {refusal.message}")
        self.what = what
        self.refusal = refusal


class HooksGateway:
    """Service hooks, projects and pipelines of one organization (synchronous).

    ``deadline``: the seconds each call may take (for a command a person waits on), after which it fails as
    unanswered; none by default.
    """

    def __init__(self, connection: Connection, deadline: float | None = None) -> None:
        self.connection = connection
        self.deadline = deadline
        self.status = StatusRecorder()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._project_ids: dict[str, str] = {}

    def _client(self, name: str) -> Any:
        with self._lock:
            if name not in self._clients:
                factory = getattr(self.connection.clients_v7_1, f"get_{name}_client")
                self._clients[name] = self.status.attach(factory())
            return self._clients[name]

    def _call(self, what: str, need: Need, function: Callable[[], T]) -> T:
        def attempt() -> T:
            self.status.reset()
            try:
                return function()
            except Exception as error:
                raise HookCallFailed(what, classify(error, need, self.status.last)) from None

        try:
            return call_within(attempt, self.deadline)
        except NoAnswer as late:
            raise HookCallFailed(what, classify(late, need)) from None

    # --- subscriptions --------------------------------------------------------------------------------

    def list_hooks(self) -> list[ExistingHook]:
        """Every Web Hooks subscription of the organization."""
        found = self._call(
            "list service hooks",
            hooks_need(),
            lambda: self._client("service_hooks").list_subscriptions(consumer_id="webHooks"),
        )
        hooks = []
        for sub in found or []:
            if (sub.consumer_id or "webHooks") != "webHooks":
                continue
            hooks.append(
                ExistingHook(
                    id=str(sub.id),
                    event_type=str(sub.event_type or ""),
                    project_id=str((sub.publisher_inputs or {}).get("projectId") or ""),
                    url=str((sub.consumer_inputs or {}).get("url") or ""),
                    status=str(sub.status or ""),
                )
            )
        return hooks

    def create_hook(self, spec: HookSpec, url: str, credentials: HookCredentials) -> str:
        """Create one subscription; returns its id."""
        from azure.devops.v7_1.service_hooks.models import Subscription

        body = Subscription(
            publisher_id=publisher_of(spec.event_type),
            event_type=spec.event_type,
            resource_version=spec.resource_version,
            consumer_id="webHooks",
            consumer_action_id="httpRequest",
            publisher_inputs={"projectId": spec.project_id},
            consumer_inputs={"url": url, **credentials.consumer_inputs()},
        )
        created = self._call(
            f"create the {spec.event_type} hook in {spec.project}",
            hooks_need(spec.event_type),
            lambda: self._client("service_hooks").create_subscription(body),
        )
        return str(created.id)

    def delete_hook(self, hook: ExistingHook) -> None:
        self._call(
            f"delete hook {hook.id}",
            hooks_need(hook.event_type),
            lambda: self._client("service_hooks").delete_subscription(hook.id),
        )

    # --- projects and pipelines ----------------------------------------------------------------------

    def project_id(self, project: str) -> str:
        """The id of a project named ``project`` (an id is returned as it is)."""
        if _GUID.match(project):
            return project
        key = project.lower()
        if key not in self._project_ids:
            self._project_ids[key] = self._lookup_project_id(project)
        return self._project_ids[key]

    def _lookup_project_id(self, project: str) -> str:
        try:
            found = self._call(
                f"read project {project}", READ_PROJECT, lambda: self._client("core").get_project(project)
            )
            return str(found.id)
        except HookCallFailed as failure:
            if failure.refusal.kind != "unsupported":
                raise
        # a server without the Core API (Azure DevOps Server behind a proxy, the local emulator): the
        # Pipelines API's own URLs name the project by id, as the service's always do
        pipelines = self._call(
            f"list the pipelines of {project}",
            READ_PIPELINES,
            lambda: self._client("pipelines").list_pipelines(project, top=1),
        )
        for pipeline in pipelines or []:
            if match := PROJECT_IN_API_URL.search(str(pipeline.url or "")):
                return match.group(1)
        raise HookCallFailed(
            f"read project {project}",
            Refusal("not_found", f"cannot find the id of project {project} (it has no pipelines to read it from)"),
        )

    def pipeline_name(self, project: str, pipeline_id: int) -> str | None:
        try:
            found = self._call(
                f"read pipeline {pipeline_id}",
                READ_PIPELINES,
                lambda: self._client("pipelines").get_pipeline(project, pipeline_id),
            )
        except HookCallFailed as failure:
            if failure.refusal.kind == "not_found":
                return None
            raise
        return str(found.name) if found is not None and found.name else None

    def run_pipeline_name(self, project: str, run_id: int) -> str | None:
        try:
            build = self._call(
                f"read run {run_id}", READ_PIPELINES, lambda: self._client("build").get_build(project, run_id)
            )
        except HookCallFailed as failure:
            if failure.refusal.kind == "not_found":
                return None
            raise
        definition = getattr(build, "definition", None)
        return str(definition.name) if definition is not None and definition.name else None
