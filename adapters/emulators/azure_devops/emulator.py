"""The Azure DevOps emulator: the state, the REST app the real SDK talks to, the engine and the hooks.

Standalone, for tests::

    async with AzureDevOpsEmulator(clock=clock) as ado:
        connection = Connection(ado.org_url, BasicAuthentication("", ado.pat("alice@contoso.com")))
        ado.add_webhook(receiver_url, basic=("hooks", "s3cret"))
        ...

Mounted under a prefix by ``handoff emulators``: build the app with :meth:`create_app`, add it as a
sub-application, then set :attr:`base_url` (e.g. ``http://127.0.0.1:PORT/ado``) once the server listens.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from adapters.emulators.azure_devops.api import register_all
from adapters.emulators.azure_devops.api.pipelines import resolve_parameters
from adapters.emulators.azure_devops.engine import PipelineEngine, RunScript
from adapters.emulators.azure_devops.events import Event, ServiceHookEvents
from adapters.emulators.azure_devops.links import Links
from adapters.emulators.azure_devops.model import Approval, LogFile, ReleaseApproval, ReleaseApprovalStatus, Run
from adapters.emulators.azure_devops.router import Router
from adapters.emulators.azure_devops.shapes import Shapes, iso
from adapters.emulators.azure_devops.webhooks import Delivery, RetrySchedule, Subscription, WebhookSender
from adapters.emulators.azure_devops.world import Identity, PipelineDef, World, load_default_world, parse_world
from adapters.emulators.base import (
    Fault,
    FaultScript,
    Handler,
    LocalServer,
    Recorder,
    add_control_routes,
    recording_middleware,
)
from bot.clock import Clock, SystemClock

RATE_LIMIT_MESSAGE = (
    "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource "
    "'ATCPU' in namespace 'User'."
)


def service_fault_body(fault: Fault) -> dict[str, Any]:
    """The body of a scripted fault: a 429 in the service's shape (reference §5), 5xx left generic."""
    if fault.kind != "429":
        return {"error": "emulated_fault", "status": int(fault.kind)}
    return {
        "$id": "1",
        "innerException": None,
        "message": RATE_LIMIT_MESSAGE,
        "typeName": "Microsoft.TeamFoundation.Framework.Server.RequestBlockedException, "
        "Microsoft.TeamFoundation.Framework.Server",
        "typeKey": "RequestBlockedException",
        "errorCode": 0,
        "eventId": 3000,
    }


@web.middleware
async def rate_limit_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the ``X-RateLimit-*`` headers the service sends with a 429 to scripted 429s."""
    response = await handler(request)
    if response.status == 429 and "X-RateLimit-Resource" not in response.headers:
        retry_after = response.headers.get("Retry-After", "1")
        try:
            reset = int(time.time() + float(retry_after))
        except ValueError:
            reset = int(time.time())
        response.headers.update(
            {
                "X-RateLimit-Resource": "ATCPU",
                "X-RateLimit-Limit": "200",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
        )
    return response


class AzureDevOpsEmulator:
    """An Azure DevOps organization with one project, served over HTTP for the real ``azure-devops`` SDK.

    Args:
        world: the ``azure_devops`` world section (or a whole world dict); the shipped default if None.
        clock: where stage durations, approval timeouts and webhook retry delays pass.
        base_url: where the app is served; set later with :attr:`base_url` when not known yet.
        retry_schedule: webhook retry delays; :meth:`RetrySchedule.fast` keeps tests quick.
        delivery_timeout: seconds a webhook receiver gets to answer.
    """

    def __init__(
        self,
        world: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        base_url: str = "",
        retry_schedule: RetrySchedule | None = None,
        delivery_timeout: float = 10.0,
    ) -> None:
        self.world: World = parse_world(world if world is not None else load_default_world())
        self.clock: Clock = clock or SystemClock()
        self.recorder = Recorder()
        self.faults = FaultScript()
        self.links = Links(self.world, base_url)
        self.shapes = Shapes(self.world, self.links)
        self.events = ServiceHookEvents(self.world, self.links, self.shapes)
        self.webhooks = WebhookSender(self.clock, self._client_session, retry_schedule, delivery_timeout)
        self.engine = PipelineEngine(self.world, self.clock, self.events, self.publish, self._notify)
        self.release_approvals: dict[int, ReleaseApproval] = {}
        self.signed_logs: dict[str, tuple[int, int]] = {}
        self._pushes = 0
        self._advice: list[tuple[float | None, int]] = []  # (Retry-After, remaining) for the next answers
        self._changed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._server: LocalServer | None = None
        self._seed()

    def _seed(self) -> None:
        now = self.clock.now()
        for hook in self.world.webhooks:
            self.webhooks.subscribe(
                hook.url,
                hook.event_types,
                basic=hook.basic,
                headers=[hook.header] if hook.header else (),
                resource_version=hook.resource_version,
                created=now,
            )
        for d in self.world.release_approvals:
            self.release_approvals[d.id] = ReleaseApproval(
                id=d.id,
                approver=d.approver,
                release_id=d.release_id,
                release_name=d.release_name,
                definition_id=d.definition_id,
                definition_name=d.definition_name,
                environment_id=d.environment_id,
                environment_name=d.environment_name,
                approval_type=d.approval_type,
                created_on=now,
                modified_on=now,
            )

    # serving ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Where the app is served, without a trailing slash (``http://127.0.0.1:PORT`` or ``…/ado``)."""
        return self.links.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.links.base_url = value.rstrip("/")

    @property
    def org_url(self) -> str:
        """The organization URL to give ``Connection(base_url=…)``."""
        return self.links.org_url

    def create_app(self) -> web.Application:
        """The aiohttp application; its routes are relative to its root, so it can be mounted anywhere."""
        app = web.Application(
            middlewares=[
                self._throttle_advice,
                rate_limit_headers,
                recording_middleware(self.recorder, self.faults, service_fault_body),
            ]
        )
        add_control_routes(app, self.recorder, self.faults)
        router = Router(self.world)
        register_all(router, self)
        app.router.add_route("*", "/{tail:.*}", router.dispatch)
        app.on_cleanup.append(self._on_cleanup)
        return app

    def slow_down(self, retry_after: float | None, answers: int = 1, remaining: int = 0) -> None:
        """Throttle as the service does near an identity's budget of 200: the next ``answers`` answers,
        whatever their status, carry ``X-RateLimit-*`` with ``remaining`` left and, unless None,
        ``Retry-After`` (a 200 included)."""
        self._advice.extend([(retry_after, remaining)] * answers)

    @web.middleware
    async def _throttle_advice(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if self._advice and request.method != "OPTIONS":  # (the SDK's location discovery is not throttled)
            retry_after, remaining = self._advice.pop(0)
            headers = {
                "X-RateLimit-Resource": "ATCPU",
                "X-RateLimit-Limit": "200",
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(int(time.time() + (retry_after or 60))),
            }
            if retry_after is not None:
                headers.update({"Retry-After": f"{retry_after:g}", "X-RateLimit-Delay": "0.500"})
            response.headers.update(headers)
        return response

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> AzureDevOpsEmulator:
        """Serve standalone on ``host:port`` (port 0: any free one) and set :attr:`base_url`."""
        self._server = await LocalServer(self.create_app(), host, port).start()
        self.base_url = self._server.url
        return self

    async def stop(self) -> None:
        """Stop serving, stop every run and delivery, close the outbound session."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop()
        await self.close()

    async def close(self) -> None:
        """Stop runs and deliveries and close the outbound session (idempotent)."""
        await self.engine.close()
        await self.webhooks.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()

    async def __aenter__(self) -> AzureDevOpsEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # identities ---------------------------------------------------------------------------------------

    def identity(self, who: str) -> Identity:
        """An identity by uniqueName, id or displayName."""
        found = self.world.identity(who)
        if found is None:
            raise KeyError(f"no identity {who!r} in the world")
        return found

    def _actor(self, who: str | None, preferred: str) -> Identity:
        if who is not None:
            return self.identity(who)
        return self.world.identity(preferred) or self.world.identities[0]

    def pat(self, who: str) -> str:
        """The PAT of an identity (use it as the basic-auth password)."""
        pat = self.identity(who).pat
        if pat is None:
            raise KeyError(f"identity {who!r} has no pat")
        return pat

    # runs ---------------------------------------------------------------------------------------------

    def pipeline(self, ref: str | int) -> PipelineDef:
        """A pipeline by name or id."""
        found = self.world.pipeline(ref)
        if found is None:
            raise KeyError(f"no pipeline {ref!r} in the world")
        return found

    def script_next_run(
        self,
        pipeline: str | int,
        *,
        fail_stage: str | None = None,
        results: Mapping[str, str] | None = None,
        durations: Mapping[str, float] | None = None,
    ) -> None:
        """Override the next run of ``pipeline``: a stage to fail, per-stage results or durations (seconds).

        Stages are named by name or display name, e.g. ``fail_stage="Integration tests"``.
        """
        definition = self.pipeline(pipeline)
        chosen = dict(results or {})
        if fail_stage is not None:
            stage = definition.stage(fail_stage)
            if stage is None:
                raise KeyError(f"pipeline {definition.name} has no stage {fail_stage!r}")
            chosen[stage.name] = "failed"
        self.engine.script_next_run(definition, RunScript(results=chosen, durations=dict(durations or {})))

    def start_run(
        self,
        pipeline: str | int,
        *,
        requested_by: str | None = None,
        parameters: Mapping[str, str] | None = None,
        branch: str | None = None,
        reason: str = "manual",
    ) -> Run:
        """Start a run without going through REST (call from the event loop).

        ``requested_by`` defaults to the bot's identity (``handoff-bot@contoso.com``) or the first identity.
        """
        definition = self.pipeline(pipeline)
        return self.engine.queue(
            definition,
            self._actor(requested_by, "handoff-bot@contoso.com"),
            reason=reason,
            template_parameters=resolve_parameters(definition, dict(parameters or {})),
            variables={v.name: {"value": v.value} for v in definition.variables},
            ref_name=branch,
        )

    def cancel_run(self, run_id: int, by: str | None = None) -> None:
        """Cancel a run as ``by`` (default: the bot's identity) would through the Build API."""
        self.engine.cancel(self.run(run_id), self._actor(by, "handoff-bot@contoso.com"))

    def run(self, run_id: int) -> Run:
        return self.engine.runs[run_id]

    @property
    def runs(self) -> list[Run]:
        return sorted(self.engine.runs.values(), key=lambda r: r.id)

    def approvals_for(self, run_id: int) -> list[Approval]:
        """The approvals opened for a run, oldest first."""
        return sorted((a for a in self.engine.approvals.values() if a.run_id == run_id), key=lambda a: a.created_on)

    def sign_log(self, run: Run, log: LogFile) -> str:
        """An anonymous download URL for a log (``signedContent.url``)."""
        token = secrets.token_urlsafe(16)
        self.signed_logs[token] = (run.id, log.id)
        return self.links.signed_log(token)

    def final_yaml(self, pipeline: PipelineDef, parameters: Mapping[str, str]) -> str:
        lines = ["parameters:"] + [f"- name: {k}\n  default: {v}" for k, v in parameters.items()] + ["stages:"]
        lines += [f"- stage: {s.name}\n  displayName: {s.display_name}" for s in pipeline.stages]
        return "\n".join(lines) + "\n"

    # code ---------------------------------------------------------------------------------------------

    def push(
        self,
        repo: str,
        branch: str,
        commits: Iterable[str | Mapping[str, Any]],
        *,
        pushed_by: str | None = None,
        trigger: bool = True,
    ) -> dict[str, Any]:
        """Push commits to a branch: emits ``git.push`` and starts pipelines whose CI trigger matches.

        Each commit is a message, or ``{"comment": …, "author": uniqueName}``; ``pushed_by`` defaults to
        bob@contoso.com (or the first identity). Returns the push resource. Call from the event loop.
        """
        repository = self.world.repository(repo)
        if repository is None:
            raise KeyError(f"no repository {repo!r} in the world")
        pusher = self._actor(pushed_by, "bob@contoso.com")
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        items = [{"comment": c} if isinstance(c, str) else dict(c) for c in commits]
        if not items:
            raise ValueError("a push needs at least one commit")
        now = self.clock.now()
        old, ids = self.engine.advance_head(repository, ref, [str(c.get("comment", "")) for c in items], now)
        self._pushes += 1
        rendered = []
        for commit_id, item in zip(ids, items, strict=True):
            author = self.identity(str(item["author"])) if item.get("author") else pusher
            person = {"name": author.display_name, "email": author.unique_name, "date": iso(now)}
            rendered.append(
                {
                    "commitId": commit_id,
                    "author": person,
                    "committer": person,
                    "comment": str(item.get("comment", "")),
                    "url": self.links.commit(repository.name, commit_id),
                }
            )
        event = self.events.git_push(repository, ref, old, ids[-1], rendered, pusher, self._pushes, now)
        self.publish(event)
        if trigger:
            for p in self.world.pipelines:
                if p.repository and p.repository.lower() == repository.name.lower() and ref in p.trigger_branches:
                    self.engine.queue(
                        p,
                        pusher,
                        reason="individualCI",
                        template_parameters={q.name: q.default for q in p.parameters if q.default is not None},
                        ref_name=ref,
                        source_version=ids[-1],
                    )
        resource: dict[str, Any] = event.resources["1.0"]
        return resource

    # classic releases ---------------------------------------------------------------------------------

    def add_release_approval(
        self,
        approver: str,
        *,
        release_name: str = "Release-2",
        release_id: int = 2,
        environment_name: str = "Production",
        environment_id: int = 5,
        definition_name: str = "app-y-classic.CD",
        definition_id: int = 1,
        approval_type: str = "preDeploy",
        created_by: str | None = None,
    ) -> ReleaseApproval:
        """Open a classic release approval and emit ``deployment-approval-pending`` (call from the loop). The release
        was created by ``created_by`` (its approver unless said)."""
        now = self.clock.now()
        approval = ReleaseApproval(
            id=max(self.release_approvals, default=0) + 1,
            approver=self.identity(approver),
            release_id=release_id,
            release_name=release_name,
            definition_id=definition_id,
            definition_name=definition_name,
            environment_id=environment_id,
            environment_name=environment_name,
            approval_type="postDeploy" if approval_type == "postDeploy" else "preDeploy",
            created_on=now,
            modified_on=now,
            created_by=self.identity(created_by) if created_by is not None else None,
        )
        self.release_approvals[approval.id] = approval
        self.publish(self.events.release_approval(approval, now))
        return approval

    def complete_release_approval(
        self,
        approval_id: int,
        status: ReleaseApprovalStatus,
        *,
        by: str | None = None,
        comments: str = "",
        hook: bool = True,
    ) -> ReleaseApproval:
        """Complete a classic release approval as ``by`` (approved, rejected) or as Azure DevOps itself (canceled
        or skipped: ``by`` None), and emit ``deployment-approval-completed`` unless ``hook`` is False (the event
        lost). Checks nothing: the PATCH's checks are the API's."""
        approval = self.release_approvals[approval_id]
        now = self.clock.now()
        decider = self.identity(by) if by is not None else None
        approval.status = status
        approval.comments = comments
        approval.approved_by = decider
        approval.modified_on = now
        approval.revision += 1
        approval.history.append(
            {
                "revision": approval.revision,
                "status": status,
                "comments": comments,
                "changedBy": self.shapes.identity(decider),
                "modifiedOn": iso(now),
            }
        )
        if hook:
            self.publish(self.events.release_approval(approval, now))
        return approval

    # service hooks ------------------------------------------------------------------------------------

    def add_webhook(
        self,
        url: str,
        event_types: Iterable[str] | None = None,
        *,
        basic: tuple[str, str] | None = None,
        header: tuple[str, str] | None = None,
        resource_version: str | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Subscription:
        """Subscribe a loopback URL to service hooks.

        Args:
            url: the receiver; only loopback hosts are accepted.
            event_types: event types to deliver; None means every type except job-state-changed.
            basic: ``(username, password)`` sent as basic auth.
            header: ``(name, value)`` of a custom header (the ``httpHeaders`` consumer input).
            resource_version: for ``build.complete``: ``"2.0"`` (default, the Build REST object) or ``"1.0"``.
            filters: publisher-input filters on the event context, e.g. ``{"pipelineId": "3"}``.
        """
        return self.webhooks.subscribe(
            url,
            event_types,
            basic=basic,
            headers=[header] if header else (),
            resource_version=resource_version,
            filters=dict(filters or {}),
            created=self.clock.now(),
        )

    def remove_webhook(self, subscription_id: str) -> bool:
        """Delete a subscription; returns False if there was none."""
        return self.webhooks.unsubscribe(subscription_id)

    def publish(self, event: Event) -> list[Delivery]:
        """Queue an event for every subscription that wants it."""
        deliveries = self.webhooks.publish(event)
        self._notify()
        return deliveries

    @property
    def deliveries(self) -> list[Delivery]:
        """Every notification so far, in the order they were queued."""
        return list(self.webhooks.deliveries)

    async def drain(self, timeout: float = 5.0) -> list[Delivery]:
        """Wait until every queued notification is delivered (or has failed for good)."""
        await self.webhooks.join(timeout)
        return self.deliveries

    # waiting ------------------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait (in real time) until ``predicate()`` is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the emulator did not reach the expected state in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                continue

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until every unfinished run is blocked on the clock, an approval or a cancel.

        With a ``FakeClock``, call this before each ``clock.advance()`` so the runs' timers are registered.
        """
        await self.wait_until(self.engine.settled, timeout)

    async def wait_for_run(self, run_id: int, state: str = "completed", timeout: float = 5.0) -> Run:
        """Wait until the run reaches ``state`` (``inProgress``, ``canceling`` or ``completed``)."""
        run = self.run(run_id)
        await self.wait_until(lambda: run.state == state, timeout)
        return run

    async def wait_for_approval(self, run_id: int, status: str = "pending", timeout: float = 5.0) -> Approval:
        """Wait for an approval of the run with the given status; returns the newest such approval."""

        def found() -> Approval | None:
            matching = [a for a in self.approvals_for(run_id) if a.status == status]
            return matching[-1] if matching else None

        approval: Approval = await self.wait_until(found, timeout)
        return approval
