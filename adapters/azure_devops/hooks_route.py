"""``POST /hooks/azure-devops``: authenticate the service hook, parse it, hand the events to the core.

How Azure DevOps reads our answers (reference/azure-devops.md §1.4): 408/502/503/504 are retried soon;
any other failure puts the subscription on probation; 410 disables it at once. So:

- 200 with ``{"accepted", "duplicates", "ignored"}`` once the events are stored, and for event types
  Handoff does not use;
- 401 for a missing or wrong credential, 400 for a body that is not a service hook, 413 over the cap;
- 503 with ``Retry-After`` when the core cannot store the events, or not within ``server.hook_timeout``
  with the lookups that complete them (Azure DevOps retries);
- never 404 or 410.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from adapters.azure_devops.hook_auth import ServiceHookAuthenticator
from adapters.azure_devops.hook_context import SOURCE, organization_from_url
from adapters.azure_devops.project_names import ProjectId, ProjectNames
from adapters.azure_devops.run_facts import RunCompletion, RunFacts
from adapters.azure_devops.run_state_hook import EVENT_TYPE as RUN_STATE_CHANGED
from adapters.azure_devops.run_state_hook import read_run_state_changed
from adapters.azure_devops.service_hooks import parse_service_hook, with_approval_details
from adapters.web.answers import json_answer
from adapters.web.health import METRICS
from adapters.web.hook_deadline import HOOK_TIMEOUT, NotStoredInTime, stored_within
from adapters.web.limits import alias_trailing_slash, set_body_limit
from adapters.web.metrics import is_doctor_probe
from adapters.web.payloads import PayloadError, decode_json
from bot.config import AzureDevOpsSettings
from bot.events import (
    ApprovalEvent,
    ApprovalPending,
    Approver,
    DomainEvent,
    Person,
    PipelineRef,
    RunStateChanged,
    StageStateChanged,
)
from bot.pipeline_runs import ModelPipelines
from bot.ports import EventSink, RunStatus
from bot.trouble import RefusalStreak

PATH = "/hooks/azure-devops"
BODY_LIMIT = 5 * 1024 * 1024 // 2  # 2.5 MiB
RETRY_AFTER_SECONDS = 5
APPROVAL_DETAILS_TIMEOUT = 5.0
# How long a run's event waits for the Build API to say who asked for the run (only where that decides
# where the event goes) and which model version it was started for (only for a pipeline configured with
# one): the hot path, so short; without an answer the event goes as it did before.
REQUESTER_TIMEOUT = 2.0

ApprovalDetails = Callable[[str, str], Awaitable[dict[str, Any] | None]]
"""``(project, approval_id)`` → the Approval from ``GET _apis/pipelines/approvals/{id}?$expand=steps``."""
RunDetails = Callable[[str, str], Awaitable[RunStatus]]
"""``(project, run_id)`` → how the run stands: the stage it failed in (from its timeline), who asked for it."""
ApproverIdentities = Callable[[tuple[Approver, ...]], Awaitable[tuple[Approver, ...]]]
"""Approvers → the same with the people behind them (emails, a group's members)."""
OwnIdentity = Callable[[], Awaitable[Person | None]]
"""Handoff's own identity in Azure DevOps."""
DependsOnActor = Callable[[DomainEvent], Awaitable[bool]]
"""Whether who did an event may decide where it goes (some subscription filters on actors and would route it
but for that filter)."""
DependsOnRunFacts = Callable[[DomainEvent], Awaitable[bool]]
"""Whether the branch of an event's run or why it started may decide where it goes (some subscription filters on
branches or reasons and would route it but for that filter)."""

log = logging.getLogger("handoff.ingest.azure_devops")


def _error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_answer({"error": error, "message": message}, status=status, headers=headers)


def _shown(value: Any) -> str:
    """A sender's value, safe for one log line: quoted, escaped, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ServiceHookRoute:
    """The request handler; see :func:`add_azure_devops_hooks`."""

    def __init__(
        self,
        settings: AzureDevOpsSettings,
        sink: EventSink,
        approval_details: ApprovalDetails | None = None,
        details_timeout: float | None = None,
        run_details: RunDetails | None = None,
        approver_identities: ApproverIdentities | None = None,
        own_identity: OwnIdentity | None = None,
        depends_on_actor: DependsOnActor | None = None,
        requester_timeout: float = REQUESTER_TIMEOUT,
        model_pipelines: ModelPipelines | None = None,
        depends_on_run_facts: DependsOnRunFacts | None = None,
        project_id: ProjectId | None = None,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> None:
        self._hook_timeout = hook_timeout
        self._project_names = ProjectNames(settings.projects, project_id) if project_id is not None else None
        self._own_identity = own_identity
        self._model_pipelines = model_pipelines
        self._depends_on_actor = depends_on_actor
        self._depends_on_run_facts = depends_on_run_facts
        self._requester_timeout = requester_timeout
        self._run_facts = RunFacts(run_details) if run_details is not None else None
        self._auth = ServiceHookAuthenticator(settings.service_hooks)
        self._organization = organization_from_url(settings.organization_url, is_base=True) or ""
        self._sink = sink
        self._approval_details = approval_details
        self._approver_identities = approver_identities
        self._details_timeout = APPROVAL_DETAILS_TIMEOUT if details_timeout is None else details_timeout
        self._refusals = RefusalStreak(log, "azure devops hook")

    async def handle(self, request: web.Request) -> web.Response:
        if not self._auth.authenticate(request.headers):
            log.warning("azure devops hook from %s: unauthorized", request.remote)
            challenge = self._auth.challenge
            return _error(
                401,
                "unauthorized",
                "the service hook's basic auth or header does not match the configuration",
                {"WWW-Authenticate": challenge} if challenge else None,
            )
        body = await request.read()
        event_type: Any = None
        event_id: Any = None
        run_state = read_run_state_changed(body)
        if run_state is not None:
            events: list[DomainEvent] = [run_state]
            event_type, event_id = RUN_STATE_CHANGED, run_state.event_id
        else:
            try:
                payload = decode_json(body)
                if isinstance(payload, dict):
                    event_type, event_id = payload.get("eventType"), payload.get("id")
                events = parse_service_hook(payload, self._organization)
            except PayloadError as exc:
                log.warning("azure devops hook %s %s: rejected (%s)", _shown(event_type), _shown(event_id), exc)
                return _error(400, "invalid_payload", str(exc))
        metrics = request.app.get(METRICS)
        if not events:
            log.info("azure devops hook %s %s: ignored", _shown(event_type), _shown(event_id))
            if metrics is not None and not is_doctor_probe(request):  # doctor's probe, sent with the hook secret
                metrics.hook_events_counted(SOURCE, 0, 0, 1)
            return json_answer({"accepted": 0, "duplicates": 0, "ignored": 1})
        try:
            accepted, duplicates = await stored_within(self._hook_timeout, self._store(events))
        except Exception as exc:
            # (running out of time says all there is: no traceback)
            timed_out = isinstance(exc, NotStoredInTime)
            self._refusals.refused(f"{_shown(event_type)} {_shown(event_id)}", exc, traceback=not timed_out)
            return _error(
                503,
                "temporarily_unavailable",
                "Handoff could not store the event; retry",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._refusals.stored()
        if log.isEnabledFor(logging.INFO):
            outcome = "accepted" if accepted else "duplicate"
            log.info("azure devops hook %s %s: %s", _shown(event_type), _shown(event_id), outcome)
        if metrics is not None:
            metrics.hook_events_counted(SOURCE, accepted, duplicates, 0)
        return json_answer({"accepted": accepted, "duplicates": duplicates, "ignored": 0})

    async def _store(self, events: list[DomainEvent]) -> tuple[int, int]:
        """Complete and store the hook's events; how many were new, and how many redeliveries."""
        accepted = duplicates = 0
        for parsed, stored_before in zip(events, await self._stored_before(events), strict=True):
            if not stored_before and await self._sink.accept(await self._completed(await self._named(parsed))):
                accepted += 1
            else:
                duplicates += 1
        return accepted, duplicates

    async def _stored_before(self, events: list[DomainEvent]) -> list[bool]:
        """Which of the events were stored already, asked of the store only for those that may make a lookup
        (an approval's details, its run and approvers; a project's id not learned yet): Azure DevOps redelivers a
        hook it was not answered in time, and a redelivery is answered without asking Azure DevOps again (its
        rate limit), and with a 200 even while Azure DevOps is down. The store's dedupe at insert still decides
        for the rest."""
        asks = [self._may_look_up(event) for event in events]
        if not any(asks):
            return [False] * len(events)
        asked = [event for event, ask in zip(events, asks, strict=True) if ask]
        known = iter(await self._sink.stored_before(asked))
        return [next(known) if ask else False for ask in asks]

    def _may_look_up(self, event: DomainEvent) -> bool:
        """Whether completing ``event`` may ask Azure DevOps something this process does not hold already."""
        if self._project_names is not None and self._project_names.may_look_up(event):
            return True
        if isinstance(event, ApprovalEvent):
            lookups = (self._approval_details, self._run_facts, self._approver_identities, self._own_identity)
            return any(lookup is not None for lookup in lookups)
        # a run's or stage's events are not asked about: most never make a lookup, and the Build API's answer is
        # kept per run (a redelivery reads it from memory), so the busiest hook does not pay a read for it
        return False

    async def _named(self, event: DomainEvent) -> DomainEvent:
        """The event with its project by the configured name, where its hook names a configured project by id."""
        if self._project_names is None:
            return event
        return await self._project_names.named(event, self._requester_timeout)

    async def _completed(self, event: DomainEvent) -> DomainEvent:
        """What the hook leaves out, from the REST API when possible: the run of a pending approval whose
        hook names none and the branch of an approval's run, the stage a failed run failed in, who asked for a
        run where that decides where its events go, the model version a run (and its approval) is for where
        its pipeline is configured with one."""
        if isinstance(event, RunStateChanged | StageStateChanged):
            told = await self._with_failure_details(event)
            if not isinstance(told, RunStateChanged | StageStateChanged):
                return told
            return await self._with_run_facts(told)
        if not isinstance(event, ApprovalEvent):
            return event
        # one time budget for the lookups: Azure DevOps waits for the answer (reference: return 2xx fast)
        deadline = asyncio.get_running_loop().time() + self._details_timeout
        if isinstance(event, ApprovalPending):
            event = await self._with_approval_details(event, deadline)
        event = await self._with_approval_run_facts(event, deadline)
        if not isinstance(event, ApprovalPending):
            return event
        event = await self._with_approver_identities(event, deadline)
        return await self._with_handoff(event, deadline)

    def _takes_model(self, project: str, run: PipelineRef) -> bool:
        return self._model_pipelines is not None and self._model_pipelines.takes_model(project, run)

    def _model_of(self, project: str, run: PipelineRef, status: RunStatus) -> str | None:
        if self._model_pipelines is None:
            return None
        return self._model_pipelines.model_of(project, run, status.parameters)

    async def _with_run_facts(self, event: RunStateChanged | StageStateChanged) -> DomainEvent:
        """The event with what the Build API says of its run (read once per run): who asked for it, the branch it
        built and why it started, where any decides where the event goes (a run's or stage's hook names none),
        and, for a run, the model version it was started for, where its pipeline is configured with one. Where
        nothing decides on them, what was read for an earlier event of the run fills them in all the same (the
        card names who asked for the run), without a request."""
        project, run = event.project, event.run
        if self._run_facts is None or not project:
            return event
        wants_model = isinstance(event, RunStateChanged) and not event.for_model and self._takes_model(project, run)
        wants_actor = event.actor is None and self._depends_on_actor is not None and await self._depends_on_actor(event)
        wants_run = (run.branch is None or run.reason is None) and await self._decided_by_run_facts(event)
        if wants_model or wants_actor or wants_run:
            status = await self._run_facts.of(project, run.run_id, self._requester_timeout)
        else:
            status = self._run_facts.known(project, run.run_id)  # read for an earlier event: no request
        if status is None:
            return event  # it goes as it would have: an unknown requester, branch and reason, no model named
        if event.actor is None and status.requested_by is not None:  # (the card names who asked, once known)
            event = replace(event, actor=status.requested_by)
        event = replace(event, run=_with_status(run, status))
        if wants_model and isinstance(event, RunStateChanged):
            event = replace(event, for_model=self._model_of(project, run, status))
        return event

    async def _with_approval_run_facts(self, event: ApprovalEvent, deadline: float) -> ApprovalEvent:
        """A pipeline approval with what its hook does not carry of its run (the Build API's, read once per
        run): the branch it built and why it started, so that ``branches=`` and ``reasons=`` match gates (why
        it started is asked for where it decides where the gate goes); for a pending approval, who asked for
        the run (its actor), so that actor filters apply to gates; and the model version it was started for,
        where its pipeline is configured with one, so that the gate's card names it."""
        run = event.run
        if self._run_facts is None or run is None or event.approval_kind != "pipeline":
            return event
        project = run.project or event.project
        if not project:
            return event
        wants_model = not event.for_model and self._takes_model(project, run)
        wants_actor = isinstance(event, ApprovalPending) and event.actor is None
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return event
        # a run whose branch is known is asked about only where who asked for it, or why, decides where the gate goes
        if run.branch and not wants_model and not await self._asked_for(event, wants_actor):
            return event
        status = await self._run_facts.of(project, run.run_id, left)
        if status is None:
            return event  # it goes as it would have: an unknown requester, no branch or reason, no model named
        event = replace(event, run=_with_status(run, status))
        if wants_actor and status.requested_by is not None:
            event = replace(event, actor=status.requested_by)
        if wants_model:
            event = replace(event, for_model=self._model_of(project, run, status))
        return event

    async def _decided_by_actor(self, event: DomainEvent) -> bool:
        return self._depends_on_actor is not None and await self._depends_on_actor(event)

    async def _decided_by_run_facts(self, event: DomainEvent) -> bool:
        return self._depends_on_run_facts is not None and await self._depends_on_run_facts(event)

    async def _asked_for(self, event: ApprovalEvent, wants_actor: bool) -> bool:
        """Whether who asked for a gate's run (where its hook does not say), or why the run started (where it
        does not say either), decides where the gate goes."""
        if wants_actor and await self._decided_by_actor(event):
            return True
        return event.run is not None and event.run.reason is None and await self._decided_by_run_facts(event)

    async def _with_handoff(self, event: ApprovalEvent, deadline: float) -> ApprovalEvent:
        """The approval with Handoff's own identity, which may give one approval at most (or none: it is barred
        where it started the run)."""
        if self._own_identity is None or event.handoff is not None:
            return event
        try:
            async with asyncio.timeout_at(max(deadline, asyncio.get_running_loop().time() + 1.0)):
                me = await self._own_identity()
        except Exception as exc:  # the gate still opens; Handoff then learns what it may not do when it tries
            name = type(exc).__name__
            log.warning("approval %s: Handoff's own identity unknown (%s)", _shown(event.approval_id), name)
            return event
        return replace(event, handoff=me) if me is not None else event

    async def _with_approval_details(self, event: ApprovalEvent, deadline: float) -> ApprovalEvent:
        if event.run is not None or self._approval_details is None:
            return event
        if event.approval_kind != "pipeline" or not event.project:
            return event
        try:
            async with asyncio.timeout_at(deadline):
                details = await self._approval_details(event.project, event.approval_id)
            return with_approval_details(event, details) if details else event
        except Exception as exc:  # the event is still worth posting without the details
            log.warning("approval %s: details unavailable (%s)", _shown(event.approval_id), type(exc).__name__)
            return event

    async def _with_approver_identities(self, event: ApprovalEvent, deadline: float) -> ApprovalEvent:
        """The people behind the approvers: an email for one named by id alone, a group's members (who may
        then decide in chat, and whom the card calls on); and a classic release's creator named by id alone (the
        release's ``createdBy``), whom the gate's policy may bar from approving. Asked in one call."""
        creator = event.requester if event.requester and event.requester.id and not event.requester.email else None
        asked = (*event.approvers, *((Approver(person=creator),) if creator else ()))
        if self._approver_identities is None or not any(a.needs_lookup for a in asked):
            return event
        if asyncio.get_running_loop().time() >= deadline:
            log.warning("approval %s: approvers not looked up (no time left)", _shown(event.approval_id))
            return event
        try:
            async with asyncio.timeout_at(deadline):
                found = await self._approver_identities(asked)
        except Exception as exc:  # the gate still opens; its groups are named, not expanded
            log.warning("approval %s: approvers unknown (%s)", _shown(event.approval_id), type(exc).__name__)
            return event
        if creator is not None:
            return replace(event, approvers=found[:-1], requester=found[-1].person)
        return replace(event, approvers=found)

    async def _with_failure_details(self, event: RunStateChanged | StageStateChanged) -> DomainEvent:
        """A failure with the person who asked for the run (whom the failure calls on) and, for the run, the
        stage it failed in: a run's or stage's hook says neither. The Build API is asked once per run, and
        once more for the stage where the answer kept is from before the run's end (see :mod:`run_facts`)."""
        if self._run_facts is None or event.outcome != "failed" or not event.project:
            return event
        wants_stage = isinstance(event, RunStateChanged) and not event.failing_stage
        if event.actor and not wants_stage:
            return event
        completion = RunCompletion(event.finished_at) if wants_stage and isinstance(event, RunStateChanged) else None
        status = await self._run_facts.of(event.project, event.run.run_id, self._details_timeout, completion)
        if status is None:  # the failure is still worth posting without them
            log.warning("run %s: failure details unavailable", _shown(event.run.run_id))
            return event
        actor = event.actor or status.requested_by
        run = _with_status(event.run, status)
        if not isinstance(event, RunStateChanged):
            return replace(event, actor=actor, run=run)
        # an answer from before this end of the run (no newer one came in time) names no stage it failed in
        told = completion is not None and completion.told_by(status)
        if event.failing_stage or not told or not status.failing_step:
            return replace(event, actor=actor, run=run)
        failing, name = status.failing_step, status.failing_stage_name
        return replace(event, actor=actor, run=run, failing_stage=failing, failing_stage_name=name)


def _with_status(run: PipelineRef, status: RunStatus) -> PipelineRef:
    """The run with the branch it built and why it started, as the Build API says, where its hook did not."""
    branch = run.branch or status.branch or None
    reason = run.reason or status.reason or None
    return run if (branch, reason) == (run.branch, run.reason) else replace(run, branch=branch, reason=reason)


def add_azure_devops_hooks(
    app: web.Application,
    settings: AzureDevOpsSettings,
    sink: EventSink,
    approval_details: ApprovalDetails | None = None,
    run_details: RunDetails | None = None,
    approver_identities: ApproverIdentities | None = None,
    own_identity: OwnIdentity | None = None,
    depends_on_actor: DependsOnActor | None = None,
    model_pipelines: ModelPipelines | None = None,
    depends_on_run_facts: DependsOnRunFacts | None = None,
    project_id: ProjectId | None = None,
    hook_timeout: float = HOOK_TIMEOUT,
) -> None:
    """Register ``POST /hooks/azure-devops`` (body cap 2.5 MiB) on ``app``, and the same path with a trailing
    slash (Azure DevOps would take a 404 for an enduring failure).

    Args:
        app: Handoff's application (:func:`bot.app.create_app`).
        settings: the ``azure_devops`` section; ``service_hooks`` says how hooks authenticate. Its
            secrets are read now, so an unset variable fails here rather than on the first hook.
        sink: where parsed events go; it raises on internal trouble, which answers 503.
        approval_details: ``(project, approval_id)`` → the Approval REST object, used to fill the run,
            pipeline and stage of a pending approval whose hook left them null. It may return None or
            raise; the event is then kept as it is.
        run_details: ``(project, run_id)`` → how a failed run stands (a run's hook does not say): the stage
            it failed in and who asked for it, for the failure's thread reply. It may raise. A run is asked
            about once, and once more where its end comes after the answer kept (a stage failed while the run
            went on, a retried stage ended it again): its other failure hooks and redeliveries ask nothing.
        approver_identities: completes a pending approval's approvers: the email of one named by id alone,
            the members of a group or team (so they may decide in chat). It may raise; the approvers are
            then kept as they are.
        own_identity: Handoff's own identity in Azure DevOps, put on a pending approval (read once: the
            answer is kept). It may raise; the approval is then kept as it is.
        depends_on_actor: whether who did an event may decide where it goes. Where it may and a run's or
            stage's hook does not say who asked for the run, ``run_details`` is asked (once per run, within
            :data:`REQUESTER_TIMEOUT`); without an answer the event goes where it would have gone. A pending
            pipeline approval goes as the person who asked for its run, read the same way (within the
            approval's lookups' time, and whenever its run is read for its branch or model version anyway).
        depends_on_run_facts: whether the branch of an event's run or why it started may decide where it goes.
            Where it may and a run's or stage's hook does not name them (they never do; build.complete names
            both), ``run_details`` is asked, as for the requester (a failure's come with its failure details).
        model_pipelines: the pipelines the configuration starts with a model version in their parameters. A
            run's event and a pipeline approval of one name that version (``for_model``), read from the run's
            ``templateParameters`` through ``run_details`` (once per run, within :data:`REQUESTER_TIMEOUT`
            for a run's event, within the approval's lookups' time for an approval); without an answer they
            go without it. No other pipeline's runs are asked about for it.
        project_id: a configured project's name → its id. An event whose hook names its project only by id (a
            pending approval's, a run's whose links carry the id) names it by the configured name where the id is
            a configured project's: the ids are looked up the first time one is needed (within
            :data:`REQUESTER_TIMEOUT`), and kept; without an answer the event keeps the id, and the lookup is tried
            again a minute later.
        hook_timeout: seconds a hook waits for its events to be completed and stored; past them it is answered
            503 (Azure DevOps delivers it again), and what was under way may still be stored.
    """
    route = ServiceHookRoute(
        settings,
        sink,
        approval_details,
        run_details=run_details,
        approver_identities=approver_identities,
        own_identity=own_identity,
        depends_on_actor=depends_on_actor,
        model_pipelines=model_pipelines,
        depends_on_run_facts=depends_on_run_facts,
        project_id=project_id,
        hook_timeout=hook_timeout,
    )
    app.router.add_post(PATH, route.handle)
    set_body_limit(app, PATH, BODY_LIMIT)
    alias_trailing_slash(app, PATH)
