"""Azure DevOps as the core's ``PipelineService``: runs, builds and approvals through the azure-devops SDK.

The SDK is synchronous; every call runs in a worker thread. Service errors become the core's
``ServiceRefused`` (the service said no: the reason is for the person asking) or
``ServiceUnavailable`` (try again later): Azure DevOps answers both in the same JSON shape, so its
throttling (429, ``TF400733``) and its own failures (5xx) are told apart by the answer's status, which the
gateway notes (:func:`~adapters.azure_devops.gateway.answered_status`), or by the error's type. A run's start
is the exception (``_call(creates=True)``): a 502 or 504, or a 500 without Azure DevOps' own JSON error, may
come from a gateway after the run was queued, so whether it started is not known (``may_have_acted``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.devops.connection import Connection
from azure.devops.exceptions import (
    AzureDevOpsAuthenticationError,
    AzureDevOpsClientRequestError,
    AzureDevOpsServiceError,
)
from msrest.authentication import Authentication, BasicAuthentication
from msrest.exceptions import ClientRequestError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ProxyError, SSLError, Timeout
from urllib3.exceptions import ConnectTimeoutError

from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.azure_devops.approver_directory import ApproverDirectory, identity_person
from adapters.azure_devops.gateway import AzureDevOpsGateway, answered_retry_after, answered_status
from adapters.azure_devops.hook_context import email_from_unique_name
from adapters.azure_devops.hooks_gateway import PROJECT_IN_API_URL
from adapters.azure_devops.service_hooks import approval_status
from adapters.waits import wait_text
from adapters.web.payloads import PayloadError
from bot.config import AzureDevOpsSettings
from bot.events import Approver, Person
from bot.ports import ApprovalStatus, RunStatus, ServiceRefused, ServiceUnavailable, StartedRun

log = logging.getLogger("handoff.azure_devops")

T = TypeVar("T")
# Azure DevOps' own application id: the scope of an Entra token for its REST API.
AZURE_DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"

ALREADY_DECIDED = {"ApprovalAlreadyCompletedException", "ApprovalStateChangeException"}
# A classic release approval no longer pending is refused with a generic InvalidRequestException: its code says so
RELEASE_ALREADY_DECIDED = "VS402860"
# Refusals no retry changes: the caller may not decide (pipeline approvals, classic releases), or it is gone
FORBIDDEN = {"ApprovalUnauthorizedException", "ApprovalBlockedException", "ReleaseManagementSecurityException"}
NOT_FOUND = {"ApprovalNotFoundException", "ReleaseManagementObjectNotFoundException"}
# Azure DevOps' answer to an identity over its rate limit (reference §5): HTTP 429, TF400733
THROTTLED = {"RequestBlockedException"}
THROTTLED_CODE = "TF400733"
# What a gateway in front of Azure DevOps answers when the service's answer did not come back in time or whole
# (Bad Gateway, Gateway Timeout): the request may have reached the service and taken effect.
GATEWAY = {502, 504}
# The statuses that complete a classic release approval, asked (in this order) for the approvals not pending. Not
# "reassigned": that approval's step is not decided (its gate waits, as it does for the completion event of one);
# nor "undefined", which the reference does not say means "any status".
RELEASE_COMPLETED = ("approved", "rejected", "canceled", "skipped")
# How many approvals one list of release approvals returns (the API's documented default; the SDK does not give its
# continuation token): an approval beyond it, newest first, is left out (its gate keeps waiting, never closed wrongly;
# while its releases have more newer approvals of its status than this, the sweep does not find it).
RELEASE_APPROVALS_TOP = 50
# How many runs one look for a lost start lists (oldest first since the start was tried: more than a pipeline
# queues in the minutes it covers).
RUNS_LISTED = 50
RESULTS = {"succeeded": "succeeded", "partiallySucceeded": "failed", "failed": "failed", "canceled": "canceled"}


class EntraTokenAuthentication(Authentication):
    """msrest credentials that ask azure-identity for a fresh token on every request (it caches)."""

    def __init__(self, tenant_id: str, client_id: str, client_secret: str) -> None:
        from azure.identity import ClientSecretCredential

        self._credential = ClientSecretCredential(tenant_id, client_id, client_secret)

    def signed_session(self, session: Any = None) -> Any:
        session = super().signed_session(session)
        token = self._credential.get_token(AZURE_DEVOPS_SCOPE).token
        session.headers["Authorization"] = f"Bearer {token}"
        return session


def connection_for(settings: AzureDevOpsSettings, *, timeout: float | None = None) -> Connection:
    """A ``Connection`` to the organization with the configured PAT or service principal.

    ``timeout``: each request of its clients waits that many seconds to connect and for an answer, and is
    tried once (for a command a person waits on); else the SDK's 100 s, with three retries.
    """
    if settings.pat is not None:
        creds: Authentication = BasicAuthentication("", settings.pat.reveal())
    elif settings.service_principal is not None:
        sp = settings.service_principal
        creds = EntraTokenAuthentication(sp.tenant_id, sp.client_id, sp.client_secret.reveal())
    else:  # the settings validator makes this unreachable
        raise ValueError("azure_devops needs a pat or a service_principal")
    base_url = settings.organization_url.rstrip("/")
    if timeout is not None:
        return LimitedConnection(base_url, creds, timeout)
    return Connection(base_url=base_url, creds=creds)


def limited(client: Any, timeout: float) -> Any:
    """``client`` (an SDK client), its requests made to wait at most ``timeout`` seconds to connect and for
    an answer, and never retried; returns it."""
    client.config.connection.timeout = timeout
    retry = client.config.retry_policy  # (msrest's, on a urllib3 Retry)
    retry.retries = 0
    # nor is an error status retried: it comes back as the SDK expects, not as a retry error
    retry.policy.status_forcelist = None
    retry.policy.raise_on_status = False
    retry.policy.respect_retry_after_header = False
    return client


class LimitedConnection(Connection):  # type: ignore[misc]
    """A ``Connection`` whose clients are :func:`limited` to ``timeout`` seconds, the lookup of the
    organization's resource areas (on the first client) included."""

    _resource_areas: Any  # (the SDK's)

    def __init__(self, base_url: str, creds: Authentication, timeout: float) -> None:
        super().__init__(base_url=base_url, creds=creds)
        self.timeout = timeout

    def _get_client_instance(self, client_class: Any) -> Any:
        return limited(super()._get_client_instance(client_class), self.timeout)

    def _get_resource_areas(self, force: bool = False) -> Any:
        # the SDK's own, without its file cache, with a limited client
        if self._resource_areas is None or force:
            from azure.devops.v7_1.location.location_client import LocationClient

            found = limited(LocationClient(self.base_url, self._creds), self.timeout).get_resource_areas()
            self._resource_areas = found or []  # an empty list on a server (Azure DevOps Server)
        return self._resource_areas


class AzureDevOpsPipelines:
    """Implements :class:`bot.ports.PipelineService` on one organization."""

    def __init__(self, connection: Connection, gateway: AzureDevOpsGateway | None = None) -> None:
        self.connection = connection
        self.gateway = gateway or AzureDevOpsGateway()
        self.approvals = self.gateway.watch(PipelineApprovalsClient(connection.base_url, connection._creds))
        self.directory = ApproverDirectory(connection, self.gateway)
        self._pipeline_ids: dict[tuple[str, str], int] = {}
        self._project_ids: dict[str, str] = {}
        self._me: Person | None = None

    def _client(self, area: str) -> Any:
        """The SDK's client for ``area`` (``build``, ``pipelines``, ``release``), watched by the gateway.

        Getting a client may send discovery requests: only ever call this inside a gateway call.
        """
        return self.gateway.watch(getattr(self.connection.clients_v7_1, f"get_{area}_client")())

    async def close(self) -> None:
        self.gateway.close()

    @classmethod
    def from_settings(cls, settings: AzureDevOpsSettings) -> AzureDevOpsPipelines:
        return cls(connection_for(settings))

    async def _call(
        self, what: str, function: Callable[..., T], *args: Any, refused: str = "", creates: bool = False, **kwargs: Any
    ) -> T:
        """Call the SDK through the gateway; ``refused`` goes before the service's reason when it says no.

        ``creates`` marks a request that creates something each time it is taken (a run's POST): a failure
        answered for it that may come from a gateway after Azure DevOps took it (:func:`_maybe_taken`) is
        ``may_have_acted``. Every other request keeps the plain reading: a 5xx did not take effect.
        """
        try:
            return await self.gateway.run(function, *args, **kwargs)
        except AzureDevOpsServiceError as error:
            key = getattr(error, "type_key", "") or ""
            message = getattr(error, "message", "") or str(error)
            if (busy := _transient(error, key, message, creates=creates)) is not None:
                log.info("azure devops failed %s (%s): %s", what, busy, key or message)
                raise busy from None
            log.info("azure devops refused %s: %s", what, key or message)
            reason = "; ".join(line.strip() for line in message.splitlines() if line.strip())  # one line
            reason = f"{refused}: {reason}" if refused else reason
            decided = key in ALREADY_DECIDED or message.lstrip().startswith(f"{RELEASE_ALREADY_DECIDED}:")
            raise ServiceRefused(
                reason, already_decided=decided, forbidden=key in FORBIDDEN, not_found=key in NOT_FOUND
            ) from None
        except AzureDevOpsAuthenticationError:
            raise ServiceRefused("Azure DevOps did not accept Handoff's credentials.") from None
        except AzureDevOpsClientRequestError as error:  # it answered, but with an error of its own (a 5xx)
            log.info("azure devops failed %s: %s", what, error)
            raise ServiceUnavailable(_failed(error), may_have_acted=creates and _maybe_taken(error)) from None
        except (ClientRequestError, OSError) as error:
            log.info("azure devops did not answer %s: %s", what, error)
            raise _no_answer(error) from None

    # --- approvals ---------------------------------------------------------------------------------

    async def decide_approval(self, project: str, approval_id: str, approve: bool, comment: str) -> None:
        decide = self.approvals.approve if approve else self.approvals.reject
        await self._call("approval", decide, project, approval_id, comment)

    async def decide_release_approval(self, project: str, approval_id: str, approve: bool, comment: str) -> None:
        from azure.devops.v7_1.release.models import ReleaseApproval

        body = ReleaseApproval(status="approved" if approve else "rejected", comments=comment)
        await self._call(
            "release approval",
            lambda: self._client("release").update_release_approval(body, project, int(approval_id)),
        )

    async def approval_details(self, project: str, approval_id: str) -> dict[str, Any] | None:
        return await self._call("approval details", self.approvals.get_approval, project, approval_id)

    async def approval_statuses(self, project: str, approval_ids: Sequence[str]) -> list[ApprovalStatus]:
        if not approval_ids:
            return []
        found = await self._call(
            "approval statuses",
            self.approvals.query_approvals,
            project,
            approval_ids=list(approval_ids),
            state="all",  # completed ones too: those are what the question is about
            top=len(approval_ids),
        )
        try:
            return [approval_status(approval) for approval in found]
        except PayloadError as error:
            raise ServiceUnavailable(f"Azure DevOps answered with an unexpected approval ({error})") from None

    async def release_approval_statuses(self, project: str, approvals: Mapping[str, str]) -> list[ApprovalStatus]:
        """How these classic release approvals (approval id: release id) stand: the pending approvals of their
        releases first, then, for those not among them, the approvals of each completed status in turn
        (:data:`RELEASE_COMPLETED`), until every one is found: one request while all wait, five at most."""
        wanted = {a: r for a, r in approvals.items() if a.isdigit() and r.isdigit()}  # both are numbers there
        found: list[ApprovalStatus] = []
        for status in ("pending", *RELEASE_COMPLETED):
            if not wanted:
                break
            releases = sorted({int(r) for r in wanted.values()})
            listed = await self._call("release approval statuses", self._release_approvals, project, status, releases)
            for approval in listed or []:
                if wanted.pop(str(approval.id), None) is not None:
                    found.append(_release_status(approval))
        return found

    def _release_approvals(self, project: str, status: str, releases: list[int]) -> Any:
        """The SDK's list of ``releases``' approvals of ``status`` (in a gateway call: it gets the client)."""
        return self._client("release").get_approvals(
            project, status_filter=status, release_ids_filter=releases, top=RELEASE_APPROVALS_TOP
        )

    async def approver_identities(
        self, approvers: tuple[Approver, ...], *, fresh: bool = False
    ) -> tuple[Approver, ...]:
        try:
            return await self.directory.completed(approvers, fresh=fresh)
        except (AzureDevOpsServiceError, AzureDevOpsAuthenticationError) as error:
            key = getattr(error, "type_key", "") or type(error).__name__
            said = getattr(error, "message", "") or str(error)
            if isinstance(error, AzureDevOpsServiceError) and (busy := _transient(error, key, said)) is not None:
                raise busy from None
            log.warning(
                "azure devops refused to say who the approvers are (%s): groups are named, not expanded; "
                "the PAT needs Identity: Read (vso.identity)",
                key,
            )
            raise ServiceRefused(said) from None
        except (ClientRequestError, OSError) as error:
            raise _no_answer(error) from None

    async def own_identity(self) -> Person | None:
        """The identity Handoff's credentials stand for (``GET _apis/connectionData``), read once."""
        if self._me is None:
            data = await self._call("connection data", lambda: self._client("location").get_connection_data())
            me = getattr(data, "authenticated_user", None)
            self._me = identity_person(me) if me is not None else None
        return self._me

    async def project_id(self, project: str) -> str:
        """The id of the project named ``project`` (``GET _apis/projects/{project}``), read once."""
        key = project.lower()
        if key not in self._project_ids:
            self._project_ids[key] = await self._call("project", self._read_project_id, project)
        return self._project_ids[key]

    def _read_project_id(self, project: str) -> str:
        """The Core API's answer; where it is refused (a PAT without vso.project) or not offered (Azure DevOps
        Server behind a proxy, the local emulator), the project part of its Pipelines API URLs."""
        try:
            return str(self._client("core").get_project(project).id)
        except AzureDevOpsServiceError as error:
            log.info("azure devops refused project %s (%s): reading its id from its pipelines", project, error)
        except ValueError as error:  # the SDK finds no location for the API
            if "location" not in str(error).lower():
                raise
        for pipeline in self._client("pipelines").list_pipelines(project, top=1) or []:
            if match := PROJECT_IN_API_URL.search(str(pipeline.url or "")):
                return match.group(1)
        raise ServiceRefused(f"Azure DevOps does not say the id of project {project} (it has no pipelines).")

    # --- runs --------------------------------------------------------------------------------------

    async def _pipeline_id(self, project: str, pipeline: str) -> int:
        if pipeline.isdigit():
            return int(pipeline)
        key = (project.lower(), pipeline.lower())
        if key not in self._pipeline_ids:
            found = await self._call("pipelines", lambda: self._client("pipelines").list_pipelines(project))
            for item in found or []:
                self._pipeline_ids[(project.lower(), str(item.name).lower())] = int(item.id)
        if key not in self._pipeline_ids:
            raise ServiceRefused(f"Azure DevOps project {project} has no pipeline named {pipeline}.")
        return self._pipeline_ids[key]

    async def run_pipeline(
        self, project: str, pipeline: str, branch: str | None, parameters: dict[str, str]
    ) -> StartedRun:
        from azure.devops.v7_1.pipelines.models import RunPipelineParameters

        pipeline_id = await self._pipeline_id(project, pipeline)
        resources = None
        if branch:
            ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
            resources = {"repositories": {"self": {"refName": ref}}}
        body = RunPipelineParameters(template_parameters=parameters or None, resources=resources)
        run = await self._call(
            "run pipeline",
            lambda: self._client("pipelines").run_pipeline(body, project, pipeline_id),
            refused=f"Azure DevOps refused to run {pipeline}",
            creates=True,  # a second POST queues a second run
        )
        links = getattr(run, "_links", None)
        web = getattr(links, "additional_properties", {}).get("web", {}) if links else {}
        url = web.get("href") if isinstance(web, dict) else None
        return StartedRun(str(run.id), str(run.name or run.id), url, str(run.state or "inProgress"))

    async def run_status(self, project: str, run_id: str) -> RunStatus:
        build = await self._call("run status", lambda: self._client("build").get_build(project, int(run_id)))
        status = _build_status(build)
        if status.result != "failed":
            return status
        failing = failing_name = None
        timeline = await self._call("timeline", lambda: self._client("build").get_build_timeline(project, int(run_id)))
        for record in getattr(timeline, "records", None) or []:
            if str(record.result) == "failed" and record.type in ("Stage", "Job", "Task"):
                failing = record.name
                if record.type == "Stage":
                    failing_name = getattr(record, "identifier", None) or None
                    break
        return replace(status, failing_step=failing, failing_stage_name=failing_name)

    async def runs_since(self, project: str, pipeline: str, since: datetime) -> list[RunStatus]:
        """The Build API's builds of the pipeline queued since ``since`` (``minTime`` applies to the time
        ``queryOrder`` orders by), oldest first: one request, at most :data:`RUNS_LISTED`."""
        pipeline_id = await self._pipeline_id(project, pipeline)
        builds = await self._call(
            "runs since",
            lambda: self._client("build").get_builds(
                project,
                definitions=[pipeline_id],
                min_time=since,
                query_order="queueTimeAscending",
                top=RUNS_LISTED,
            ),
        )
        return [_build_status(build) for build in builds or []]

    async def cancel_run(self, project: str, run_id: str) -> None:
        from azure.devops.v7_1.build.models import Build

        body = Build(status="cancelling")
        await self._call("cancel", lambda: self._client("build").update_build(body, project, int(run_id)))


def _build_status(build: Any) -> RunStatus:
    """How the SDK's ``Build`` stands, as far as the build itself says (not which step failed)."""
    state = {"completed": "completed", "notStarted": "queued"}.get(str(build.status), "running")
    result = RESULTS.get(str(build.result)) if state == "completed" else None
    links = getattr(build, "_links", None)
    web = getattr(links, "additional_properties", {}).get("web", {}) if links else {}
    url = web.get("href") if isinstance(web, dict) else None
    parameters = {str(k): str(v) for k, v in (getattr(build, "template_parameters", None) or {}).items()}
    return RunStatus(
        str(build.id),
        state,
        result,
        url,
        requested_by=_person(getattr(build, "requested_for", None)),
        branch=getattr(build, "source_branch", None) or None,
        parameters=parameters,
        finished_at=_aware(getattr(build, "finish_time", None)) if state == "completed" else None,
        name=getattr(build, "build_number", None) or None,
        reason=str(reason) if (reason := getattr(build, "reason", None)) else None,
    )


def _release_status(approval: Any) -> ApprovalStatus:
    """How the SDK's ``ReleaseApproval`` stands: its status, who decided it and what they said."""
    return ApprovalStatus(
        approval_id=str(approval.id),
        status=str(approval.status or ""),
        decided_by=_person(getattr(approval, "approved_by", None)),
        comment=str(getattr(approval, "comments", None) or ""),
    )


def _aware(value: Any) -> datetime | None:
    """A time the SDK read, as an aware datetime (the Build API's times are UTC); None for anything else."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _person(identity: Any) -> Person | None:
    """The person an ``IdentityRef`` names (who asked for a run), with their email where it has one."""
    if identity is None:
        return None
    unique_name = getattr(identity, "unique_name", None)
    name = getattr(identity, "display_name", None) or unique_name or ""
    person = Person(name=str(name), email=email_from_unique_name(unique_name), id=getattr(identity, "id", None))
    return person if person.name or person.email else None


def _transient(
    error: AzureDevOpsServiceError, key: str, message: str, *, creates: bool = False
) -> ServiceUnavailable | None:
    """What an error in Azure DevOps' JSON shape means when it is no refusal but throttling (429) or a failure
    of its own (5xx): the request did not take effect, and may be sent again later; None for a refusal.

    For a request that ``creates`` something, a 502 or 504 is the exception: whoever answered it (a gateway, or
    Azure DevOps in its own words) may have passed the request on first, so it ``may_have_acted``.
    """
    status = answered_status(error)
    if status == 429 or key in THROTTLED or message.lstrip().startswith(f"{THROTTLED_CODE}:"):
        return ServiceUnavailable(_unavailable(429, error))
    if status is not None and status >= 500:
        return ServiceUnavailable(_unavailable(status, error), may_have_acted=creates and status in GATEWAY)
    return None


def _unavailable(status: int, error: BaseException) -> str:
    """What to tell of an error answer that is no refusal: throttling (429) or Azure DevOps turning requests away
    (503) say when to try again (its ``Retry-After``, else soon); another failure names its status code."""
    seconds = answered_retry_after(error)
    if status == 429:
        when = f"in {wait_text(seconds)}" if seconds else "in a few minutes"
        return f"Azure DevOps is throttling Handoff's requests (429); try again {when}"
    if status == 503:
        when = f"in {wait_text(seconds)}" if seconds else "shortly"
        return f"Azure DevOps is having trouble on its side (503); try again {when}"
    return f"Azure DevOps failed ({status})"


def _maybe_taken(error: AzureDevOpsClientRequestError) -> bool:
    """Whether an error answer without Azure DevOps' own error (its ``WrappedException`` JSON, which the SDK
    raises as ``AzureDevOpsServiceError``) may have come after Azure DevOps took the request: a 502 or 504 (a
    gateway's), or a 500 (a gateway's or proxy's page, or an exception that escaped a controller, either of
    which may come after the run was queued). A 503 (turned away) or a 429 (throttled) did not take effect."""
    status = answered_status(error) or _status_said(error)
    return status in GATEWAY or status == 500


def _status_said(error: AzureDevOpsClientRequestError) -> int | None:
    """The status code the SDK's message names (``Operation returned a 502 status code.``), if it names one."""
    status = re.search(r"returned a (\d{3}) status code", str(error))
    return int(status[1]) if status else None


def _failed(error: AzureDevOpsClientRequestError) -> str:
    """What to tell of an error answer the SDK could not read as Azure DevOps' own refusal: its status code."""
    if (status := _status_said(error) or answered_status(error)) is not None:
        return _unavailable(status, error)
    reason = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"Azure DevOps failed: {reason}" if reason else "Azure DevOps failed"


def _no_answer(error: Exception) -> ServiceUnavailable:
    """A request without an answer: ``may_have_acted`` unless the connection was never made (refused, not
    found, timed out connecting, its TLS handshake failed), when Azure DevOps cannot have had the request."""
    inner = getattr(error, "inner_exception", None) or error
    if isinstance(inner, ConnectTimeout | SSLError | ProxyError) or _not_connected(inner):
        return ServiceUnavailable("Azure DevOps is unreachable")
    if isinstance(inner, Timeout):
        return ServiceUnavailable("Azure DevOps did not answer in time", may_have_acted=True)
    return ServiceUnavailable("The connection to Azure DevOps dropped before it answered", may_have_acted=True)


def _not_connected(error: BaseException) -> bool:
    """Whether ``error`` is requests' failure to connect at all (urllib3's ``NewConnectionError`` is one of its
    ``ConnectTimeoutError`` s, inside the ``MaxRetryError`` requests wraps)."""
    if not isinstance(error, RequestsConnectionError) or not error.args:
        return False
    reason = getattr(error.args[0], "reason", error.args[0])
    return isinstance(reason, ConnectTimeoutError)
