"""Model handoff: every new model version is checked against the apps that consume it, handed to each
app's integration pipeline, and, where configured, put behind a promotion gate.

On ``ModelRegistered`` (an ingest observer: inside the webhook's request it only checks that the
event is new) the work runs in the background:

1. read the new version's MLflow signature, and per consuming app the signature of the version it
   runs and its declared contract, and compare them (:mod:`bot.consumers`, :mod:`bot.contracts`);
2. open the model's promotion gate (``models.<name>.promotion_gate``) with the verdicts and the
   integrations as its evidence, and what blocks Approve;
3. show the verdict per app on the model card, post a card for each app in its team's channels, and
   post the gate's card in the model's channels; then the model's gates for older versions still
   waiting are superseded by it (see :meth:`Gatekeeper.supersede_older_promotions`), so that
   approving one of them cannot release an older version over a newer one;
4. start each app's integration pipeline with the new version as a parameter, once whichever replica
   or redelivery gets here (the command-run store holds the key), follow it to its end and keep the
   cards and the gate's evidence current.

Azure DevOps' own run events finish an integration too, and :meth:`ModelHandoff.sweep` polls the
integrations Handoff started that have not ended (and the ones a gate still waits for), so a restarted
process, which missed their events, leaves no integration "started" for good: whichever comes first, an
event or a poll, ends the command run once and puts the outcome on the cards once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.background import BackgroundWork
from bot.clock import Clock
from bot.config import Settings
from bot.consumers import AppCheck, Consumers
from bot.contracts import Verdict
from bot.events import (
    AppHandoffChanged,
    DomainEvent,
    ModelChecked,
    ModelRegistered,
    Person,
    PipelineRef,
    PromotionGateChanged,
    RunStateChanged,
    bounded_key,
)
from bot.gate_outcomes import HANDOFF
from bot.gates import Gatekeeper
from bot.handoff_cards import finished, integration_text, later_integration, passed
from bot.ingest import Ingest
from bot.pipeline_runs import ended_state, organization_name, pipeline_run_event
from bot.ports import (
    ModelVersion,
    PipelineService,
    RunStatus,
    ServiceRefused,
    ServiceUnavailable,
    StartedRun,
    Store,
)
from bot.promotions import promotion_gate_id
from bot.records import CommandRun, CommandRunState, ConversationAddress, Gate, GateState, JsonObject
from bot.routing import channel_addresses

log = logging.getLogger("handoff.model_handoff")

# An integration is started once per model version and app while this lasts.
INTEGRATION_ONCE = timedelta(days=30)
HANDOFF_KEY_PREFIX = "model-handoff:"
"""The idempotency keys of the integration runs the model handoff starts itself."""
READ_ATTEMPTS = 3


def blockers(apps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What keeps a promotion gate's Approve disabled: a breaking verdict, an integration that failed
    or has not finished."""
    found = []
    for name, app in sorted(apps.items()):
        if app.get("verdict") == Verdict.BREAKING:
            shown = "; ".join(list(app.get("differences", ()))[:2])
            found.append(f"{name}: breaking change" + (f" ({shown})" if shown else ""))
        integration = app.get("integration")
        if not finished(integration):
            found.append(f"{name}: integration not finished")
        elif not passed(integration):
            found.append(f"{name}: integration {integration_text(integration)}")
    return found


@dataclass(frozen=True)
class VersionRef:
    """A model version being handed off: where its card and its gate are."""

    model: str
    version: str
    card_key: str
    url: str | None = None
    gate_id: str | None = None
    registered_by: Person | None = None


def _event_id(key: str, payload: Any) -> str:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{key}:{digest}"


class ModelHandoff:
    """Checks, hands off and gates new model versions (see the module's description).

    Args:
        consumers: who consumes a model and how a version stands against them.
        gatekeeper: opens promotion gates and keeps their evidence.
        pipelines: Azure DevOps, where integrations run (None: integrations cannot start).
        poll_interval: seconds between status polls of an integration run.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        ingest: Ingest,
        gatekeeper: Gatekeeper,
        clock: Clock,
        consumers: Consumers,
        *,
        pipelines: PipelineService | None = None,
        poll_interval: float = 5.0,
        poll_limit: timedelta = timedelta(hours=12),
    ) -> None:
        self.settings = settings
        self.store = store
        self.ingest = ingest
        self.gatekeeper = gatekeeper
        self.clock = clock
        self.consumers = consumers
        self.pipelines = pipelines
        self.poll_interval = poll_interval
        self.poll_limit = poll_limit
        self.background = BackgroundWork(
            log, "model handoff work", clock=clock, store_trouble=lambda error: self.store.unavailable(error)
        )
        self._integration_pipelines = {app.integration.pipeline for app in settings.apps.values()}
        self._following: set[int] = set()  # the command runs of integrations this process polls now
        self._unpolled: set[tuple[str, str, str]] = set()  # (gate, app, run) past the poll limit, logged

    # --- background work ---------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        self.background.spawn(work)

    async def close(self) -> None:
        await self.background.close()

    # --- what starts it ----------------------------------------------------------------------------

    def wants(self, model: str) -> bool:
        """Whether a new version of ``model`` is handed off: it has consumers or a promotion gate."""
        configured = self.settings.models.get(model)
        return bool(self.consumers.of(model)) or bool(configured and configured.promotion_gate)

    async def observe(self, event: DomainEvent) -> None:
        """The ingest observer: start a handoff for a new model version; finish integrations that
        Azure DevOps says ended. Quick: the work runs in the background."""
        if isinstance(event, ModelRegistered):
            if self.wants(event.model_name) and not await self.store.has_event(event.dedupe_key):
                self._spawn(self.hand_off(event))
        elif (
            isinstance(event, RunStateChanged)
            and event.state.lower() == "completed"
            and event.run.pipeline_name in self._integration_pipelines
        ):
            # (tried again while the store is out of reach: a later run's end is told by its event alone)
            self.background.spawn_retried(lambda: self._completed_in_azure_devops(event))

    # --- the handoff -------------------------------------------------------------------------------

    async def hand_off(self, event: ModelRegistered) -> None:
        """Check the new version, open its gate, show the verdicts, start the integrations."""
        model, version = event.model_name, event.model_version
        configured = self.settings.models.get(model)
        promotion = configured.promotion_gate if configured else None
        apps = self.consumers.of(model)
        checks = await self._checks(model, version, apps)
        # a failed integration calls on the app's owners, and on who registered the version where the
        # registration names them (Azure ML's events do not)
        registrant = _person_json(event.actor)
        records = {
            check.app: {
                **check.to_json(),
                "integration": {"state": "pending", "pipeline": self.settings.apps[check.app].integration.pipeline},
                **({"registered_by": registrant} if registrant else {}),
                **({"owners": list(owners)} if (owners := self.settings.apps[check.app].owners) else {}),
            }
            for check in checks
        }
        gate_id = promotion_gate_id(model, version) if promotion is not None else None
        ref = VersionRef(model, version, event.grouping_key, event.web_url, gate_id, event.actor)
        if promotion is not None:
            policy = self.settings.gates.get(promotion.policy) or self.settings.gates.get("default")
            requester = event.actor.email if event.actor and event.actor.email else None
            await self.gatekeeper.open_promotion_gate(
                model=model,
                version=version,
                release=promotion.release.model_dump(),
                policy=promotion.policy,
                evidence={
                    "apps": records,
                    "blockers": blockers(records),
                    "model_card_key": ref.card_key,
                    "model_url": ref.url,
                    "override_roles": list(policy.override_roles) if policy else [],
                },
                requesters=[requester] if requester else [],
            )
        if records:
            await self._publish_model(ref, records)
            for app, record in records.items():
                await self._publish_app(ref, app, record)
        gate = await self.store.get_gate(ref.gate_id) if ref.gate_id else None
        if gate is not None:
            await self._publish_gate(gate)
            # the model's older versions waiting for promotion are out of date now (or this one is, if a newer
            # one came first): once its card shows, so that a card superseded at once says so in place
            await self.gatekeeper.supersede_older_promotions(gate)
        for check in checks:
            self._spawn(self._integrate(ref, check.app))

    async def _checks(self, model: str, version: str, apps: Sequence[str]) -> list[AppCheck]:
        if not apps:
            return []
        problem = ""
        for attempt in range(READ_ATTEMPTS):
            try:
                new: ModelVersion = await self.consumers.version(model, version)
                return await self.consumers.check(model, new, apps)
            except ServiceRefused as error:
                problem = error.reason
                break
            except ServiceUnavailable as error:
                problem = str(error) or "Azure ML is not answering"
                if attempt + 1 < READ_ATTEMPTS:
                    await self.clock.sleep(self.poll_interval)
        text = f"{model}:{version} could not be read from Azure ML: {problem}"
        return [AppCheck(app, Verdict.UNKNOWN, (text,)) for app in apps]

    # --- integrations ------------------------------------------------------------------------------

    async def _integrate(self, ref: VersionRef, app: str) -> None:
        """Start the app's integration pipeline with the new version, once, and follow it to its end."""
        target = self.settings.apps[app].integration
        now = self.clock.now()
        run, new = await self.store.start_command_run(
            CommandRun(
                idempotency_key=f"{HANDOFF_KEY_PREFIX}{ref.model}:{ref.version}:{app}".lower(),
                actor="Handoff",
                platform="",
                conversation="",
                command=f"integrate {app} model={ref.model}:{ref.version}",
                target=app,
                state=CommandRunState.REQUESTED,
                created_at=now,
                details={
                    "model": ref.model,
                    "version": ref.version,
                    "gate": ref.gate_id,
                    "model_card_key": ref.card_key,
                    "model_url": ref.url,
                    **({"registered_by": registrant} if (registrant := _person_json(ref.registered_by)) else {}),
                },
            ),
            INTEGRATION_ONCE,
        )
        if not new:
            return  # another replica, or an earlier delivery of the event, started it
        base = {"pipeline": target.pipeline, "project": target.project}
        if self.pipelines is None:
            await self._failed_to_start(
                ref, app, run, {**base, "state": "error", "error": "Azure DevOps is not connected"}
            )
            return
        parameters = {**target.parameters, "modelName": ref.model, "modelVersion": ref.version}
        try:
            started = await self.pipelines.run_pipeline(target.project, target.pipeline, target.branch, parameters)
        except (ServiceRefused, ServiceUnavailable) as error:
            # an answer lost after the request went out: the run may be under way (its card and events name it)
            unknown = isinstance(error, ServiceUnavailable) and error.may_have_acted
            said = {**base, "state": "error", "error": str(error)} | ({"may_have_started": True} if unknown else {})
            await self._failed_to_start(ref, app, run, said)
            return
        details = {
            **run.details,
            "service": "azure-devops",
            "project": target.project,
            "pipeline": target.pipeline,
            "name": started.name,
            "url": started.url,
        }
        now = self.clock.now()
        if not await self.store.update_command_run(
            run.id or 0, CommandRunState.STARTED, now, started.run_id, details, expected=CommandRunState.REQUESTED
        ):
            log.warning("integration %s started as %s, but was recorded as ended meanwhile", run.id, started.run_id)
            return
        run = replace(
            run, state=CommandRunState.STARTED, backend_run_id=started.run_id, details=details, updated_at=now
        )
        integration = {**base, "state": "queued", "run_id": started.run_id, "name": started.name, "url": started.url}
        await self._tell_run(ref, app, integration, None)
        await self.record(ref, app, integration)
        self._following.add(run.id or 0)
        try:
            status = await self._watch(ref, app, integration)
        finally:
            self._following.discard(run.id or 0)
        if status is not None:
            await self._end_run(run, status)

    async def _end_run(self, run: CommandRun, status: RunStatus) -> None:
        """Record that an integration run ended, as ``status`` (completed) says; a poll or an event that
        recorded it first (on any replica) wins, and this changes nothing."""
        ended = ended_state(status)
        assert ended is not None
        await self.store.update_command_run(run.id or 0, ended, self.clock.now(), expected=CommandRunState.STARTED)

    async def _unfinished_runs(self) -> list[CommandRun]:
        """The integration runs the handoff started (on any replica) that the store says have not ended."""
        return [
            run
            for run in await self.store.unfinished_command_runs(self.clock.now() - self.poll_limit)
            if run.idempotency_key.startswith(HANDOFF_KEY_PREFIX)
            and run.state is CommandRunState.STARTED
            and run.backend_run_id
        ]

    async def _own_run_ended(self, run: CommandRun, status: RunStatus) -> None:
        """An integration run the handoff started ended (a poll or Azure DevOps' event says so): its outcome on
        the cards and the gate's evidence, then its command run. Whichever of a poll and an event comes first
        tells it; the cards never tell an outcome twice, and a second telling finds the run ended."""
        placed = await self._placed(run)
        if placed is not None:
            ref, app = placed
            await self.record(ref, app, _with_status(_integration_of(run), status))
        await self._end_run(run, status)

    async def _placed(self, run: CommandRun) -> tuple[VersionRef, str] | None:
        """The model version and app an integration run was started for; None if its cards are not known."""
        model, version, app = str(run.details.get("model", "")), str(run.details.get("version", "")), run.target
        card_key, url = run.details.get("model_card_key"), run.details.get("model_url")
        if not card_key:  # a run recorded before its details named its model card: the app's card does
            shown = await self.store.get_card_state(app_card_key(model, version, app))
            if shown is None:
                return None
            card_key, url = shown.state.get("model_card_key"), shown.state.get("model_url")
        gate, registrant = run.details.get("gate"), run.details.get("registered_by")
        person = Person(str(registrant.get("name") or ""), registrant.get("email")) if registrant else None
        return VersionRef(model, version, str(card_key or ""), url, str(gate) if gate else None, person), app

    async def _failed_to_start(self, ref: VersionRef, app: str, run: CommandRun, integration: JsonObject) -> None:
        await self.store.update_command_run(
            run.id or 0,
            CommandRunState.FAILED,
            self.clock.now(),
            details={**run.details, "error": integration["error"]},
            expected=CommandRunState.REQUESTED,
        )
        await self.record(ref, app, integration)

    async def _watch(self, ref: VersionRef, app: str, integration: JsonObject) -> RunStatus | None:
        """Poll the run until it ends; returns how it ended (None if it outlived the poll limit)."""
        assert self.pipelines is not None
        deadline = self.clock.monotonic() + self.poll_limit.total_seconds()
        last: tuple[str, str | None] = (str(integration["state"]), None)
        while self.clock.monotonic() < deadline:
            await self.clock.sleep(self.poll_interval)
            try:
                status = await self.pipelines.run_status(str(integration["project"]), str(integration["run_id"]))
            except (ServiceRefused, ServiceUnavailable) as error:
                log.info("polling integration %s: %s", integration["run_id"], error)
                continue
            if (status.state, status.result) != last:
                last = (status.state, status.result)
                await self.record(ref, app, _with_status(integration, status))
                await self._tell_run(ref, app, integration, status)
            if status.state == "completed":
                return status
        return None

    async def _tell_run(self, ref: VersionRef, app: str, integration: JsonObject, status: RunStatus | None) -> None:
        """The integration run's own card, as polling sees the run (``status``; None: just started): it shows
        before Azure DevOps' events arrive, and names the model version the run tests, which they do not."""
        target = self.settings.apps[app].integration
        url = integration.get("url")
        started = StartedRun(str(integration["run_id"]), str(integration.get("name") or ""), str(url) if url else None)
        event = pipeline_run_event(
            organization_name(self.settings),
            self.clock.now(),
            target.project,
            target.pipeline,
            target.branch,
            started,
            status,
            for_model=f"{ref.model}:{ref.version}",
        )
        if ref.registered_by is not None and ref.registered_by.email:
            # Handoff started the run for the person who registered the version: its failure calls on them
            event = replace(event, actor=ref.registered_by)
        await self.ingest.accept(event)

    async def record(self, ref: VersionRef, app: str, integration: JsonObject) -> None:
        """An integration moved: the gate's evidence, the model card, the app's card and the gate's card."""
        gate: Gate | None = None
        if ref.gate_id:

            def change(details: JsonObject) -> JsonObject:
                apps = {name: dict(info) for name, info in details.get("apps", {}).items()}
                if app in apps:
                    apps[app]["integration"] = later_integration(apps[app].get("integration"), integration)
                return {**details, "apps": apps, "blockers": blockers(apps)}

            gate = await self.gatekeeper.update_evidence(ref.gate_id, change)
        # where the run's own card is shown, its failure reply tells the channel: the cards' replies stay in
        # their threads there
        run_card = self._run_card(integration)
        await self._publish_model(ref, {app: {"integration": integration}}, told_by=run_card)
        await self._publish_app(ref, app, {"integration": integration}, told_by=run_card)
        if gate is not None:
            await self._publish_gate(gate)

    async def _completed_in_azure_devops(self, event: RunStateChanged) -> None:
        """A run of an integration pipeline ended: if a promotion gate waits for it as an integration, record
        it; if it is a later run for a model version an app was handed (one Handoff started, ``integrate app-y
        model=model-x:8``), its outcome replaces the earlier run's; if it is the run the handoff started, it
        ends."""
        for run in await self._unfinished_runs():
            if run.backend_run_id == event.run.run_id and run.details.get("pipeline") == event.run.pipeline_name:
                status = RunStatus(
                    event.run.run_id, "completed", event.outcome or "failed", event.web_url, event.failing_stage
                )
                await self._own_run_ended(run, status)
        await self._later_run_ended(event)
        for gate in await self.store.list_gates(GateState.PENDING):
            if gate.source != HANDOFF:
                continue
            for app, info in gate.details.get("apps", {}).items():
                integration = info.get("integration") or {}
                if (
                    str(integration.get("run_id")) == event.run.run_id
                    and integration.get("pipeline") == event.run.pipeline_name
                    and not finished(integration)
                ):
                    done = {**integration, "state": "completed", "result": event.outcome or "failed"}
                    if event.failing_stage:
                        done["failing_step"] = event.failing_stage
                    await self.record(_ref_of(gate), app, done)

    async def _later_run_ended(self, event: RunStateChanged) -> None:
        tested = event.for_model or await self._tested_by(event.run.run_key)
        model, _, version = (tested or "").rpartition(":")
        if not model or not version:
            return  # a run no one said is for a model version (hooks do not carry its parameters)
        for app in self.consumers.of(model):
            target = self.settings.apps[app].integration
            if target.pipeline != event.run.pipeline_name:
                continue
            shown = await self.store.get_card_state(app_card_key(model, version, app))
            if shown is None:
                continue  # that version was not handed to the app
            recorded = shown.state.get("check", {}).get("integration") or {}
            if str(recorded.get("run_id") or "") == event.run.run_id:
                continue  # the run Handoff started for the version: followed as it goes
            done: JsonObject = {
                "pipeline": target.pipeline,
                "project": event.run.project or target.project,
                "state": "completed",
                "result": event.outcome or "failed",
                "run_id": event.run.run_id,
            }
            done.update(
                (key, value)
                for key, value in (
                    ("name", event.run.run_name),
                    ("url", event.web_url),
                    ("failing_step", event.failing_stage),
                )
                if value
            )
            gate_id = promotion_gate_id(model, version)
            gate = await self.store.get_gate(gate_id)
            ref = VersionRef(
                model,
                version,
                str(shown.state.get("model_card_key", "")),
                shown.state.get("model_url"),
                gate_id if gate is not None and gate.state is GateState.PENDING else None,
            )
            await self.record(ref, app, done)

    async def _tested_by(self, run_key: str) -> str | None:
        """The model version a run's card says Handoff started the run for (``model-x:8``)."""
        card = await self.store.get_card_state(run_key)
        tested = card.state.get("for_model") if card is not None else None
        return str(tested) if tested else None

    async def sweep(self) -> None:
        """Poll the integration runs the handoff started that have not ended (their events may have come while
        Handoff was down) and that no poll of this process follows, and the integrations that pending
        promotion gates still wait for; every minute, each run once, none older than ``poll_limit``.

        An integration past the limit (a run deleted in Azure DevOps, whose every poll fails) is no longer
        asked about: its gate stays pending, showing the integration as last recorded, until Azure DevOps'
        event of its end comes, the gate is decided (an override) or it expires.
        """
        if self.pipelines is None:
            return
        polled: set[str] = set()
        for run in await self._unfinished_runs():
            if run.id in self._following:
                continue
            polled.add(str(run.backend_run_id))  # asked once a sweep, answered or not
            try:
                status = await self.pipelines.run_status(str(run.details.get("project", "")), str(run.backend_run_id))
            except (ServiceRefused, ServiceUnavailable) as error:
                log.info("polling integration %s: %s", run.backend_run_id, error)
                continue
            if status.state == "completed":
                await self._own_run_ended(run, status)
                if (placed := await self._placed(run)) is not None:
                    ref, app = placed
                    await self._tell_run(ref, app, _integration_of(run), status)
        # the gate opens as the handoff starts its integrations (a later run is recorded only once it ended):
        # a gate older than the limit waits on an integration as old
        too_old = self.clock.now() - self.poll_limit
        for gate in await self.store.list_gates(GateState.PENDING):
            if gate.source != HANDOFF:
                continue
            for app, info in gate.details.get("apps", {}).items():
                integration = info.get("integration") or {}
                if not integration.get("run_id") or finished(integration) or str(integration["run_id"]) in polled:
                    continue
                if gate.created_at < too_old:
                    self._no_longer_polled(gate, app, integration)
                    continue
                try:
                    status = await self.pipelines.run_status(
                        str(integration.get("project", "")), str(integration["run_id"])
                    )
                except (ServiceRefused, ServiceUnavailable):
                    continue
                if (status.state, status.result) != (integration.get("state"), integration.get("result")):
                    await self.record(_ref_of(gate), app, _with_status(integration, status))

    def _no_longer_polled(self, gate: Gate, app: str, integration: JsonObject) -> None:
        """Log, once a process, that the integration ``gate`` waits on for ``app`` is past the poll limit."""
        key = (gate.gate_id, app, str(integration["run_id"]))
        if key in self._unpolled:
            return
        self._unpolled.add(key)
        log.warning(
            "integration %s of %s for gate %s is older than %s and no longer polled; the gate waits, showing it %s",
            integration["run_id"],
            app,
            gate.gate_id,
            self.poll_limit,
            integration.get("state"),
        )

    # --- cards -------------------------------------------------------------------------------------

    def _addresses(self, channels: Sequence[str]) -> list[ConversationAddress]:
        return [a for c in channels if c in self.settings.channels for a in channel_addresses(self.settings, c)]

    def _model_targets(self, model: str) -> list[ConversationAddress]:
        configured = self.settings.models.get(model)
        return self._addresses(configured.channels if configured else [])

    def _run_card(self, integration: JsonObject) -> str | None:
        """The card Azure DevOps' events about the integration's run keep; None before the run started."""
        if self.settings.azure_devops is None or not integration.get("run_id"):
            return None
        run = PipelineRef(
            organization=organization_name(self.settings),
            project=str(integration.get("project", "")),
            pipeline_id="",
            pipeline_name=str(integration.get("pipeline", "")),
            run_id=str(integration["run_id"]),
        )
        return run.run_key

    async def _publish_model(
        self, ref: VersionRef, apps: dict[str, dict[str, Any]], *, told_by: str | None = None
    ) -> None:
        event = ModelChecked(
            source=HANDOFF,
            event_id=_event_id(ref.card_key, apps),
            occurred_at=self.clock.now(),
            card_key=ref.card_key,
            model_name=ref.model,
            model_version=ref.version,
            apps=apps,
        )
        await self.ingest.accept(event, also_to=self._model_targets(ref.model), told_by=told_by)

    async def _publish_app(
        self, ref: VersionRef, app: str, check: dict[str, Any], *, told_by: str | None = None
    ) -> None:
        key = app_card_key(ref.model, ref.version, app)
        event = AppHandoffChanged(
            source=HANDOFF,
            event_id=_event_id(key, check),
            occurred_at=self.clock.now(),
            web_url=ref.url,
            model_name=ref.model,
            model_version=ref.version,
            app=app,
            check=check,
            model_card_key=ref.card_key,
            model_url=ref.url,
        )
        await self.ingest.accept(event, also_to=self._addresses(self.settings.apps[app].channels), told_by=told_by)

    async def _publish_gate(self, gate: Gate) -> None:
        details = gate.details
        model, version = str(details.get("model")), str(details.get("version"))
        release = dict(details.get("release") or {})
        policy = self.gatekeeper.policy
        roles = policy.approver_roles(gate)
        event = PromotionGateChanged(
            source=HANDOFF,
            event_id=f"{gate.gate_id}:evidence:{gate.version}",
            occurred_at=self.clock.now(),
            web_url=details.get("model_url"),
            gate_id=gate.gate_id,
            model_name=model,
            model_version=version,
            release=str(release.get("pipeline", "")),
            apps={name: dict(info) for name, info in details.get("apps", {}).items()},
            blockers=tuple(details.get("blockers", ())),
            override_roles=tuple(details.get("override_roles", ())),
            revision=gate.version,
            min_required=max(int(details.get("min_required", 1)), policy.gate_policy(gate).min_approvers),
            approver_roles=tuple(roles),
            approvers=tuple(policy.role_members(roles)),
            barred=tuple(details.get("requesters", ())) if policy.gate_policy(gate).requester_cannot_approve else (),
            expires_at=gate.expires_at,
        )
        await self.ingest.accept(event, also_to=self._model_targets(model))


def app_card_key(model: str, version: str, app: str) -> str:
    """The grouping key of the card that hands ``model:version`` to ``app``'s team."""
    return bounded_key(f"handoff:model:{model}:{version}:app:{app}".lower())


def _ref_of(gate: Gate) -> VersionRef:
    details = gate.details
    return VersionRef(
        str(details.get("model")),
        str(details.get("version")),
        str(details.get("model_card_key", "")),
        details.get("model_url"),
        gate.gate_id,
    )


def _person_json(person: Person | None) -> JsonObject | None:
    """Who registered a model version, as the handoff keeps it (None: the registration does not say)."""
    if person is None or not (person.name or person.email):
        return None
    return {"name": person.display, "email": person.email}


def _integration_of(run: CommandRun) -> JsonObject:
    """An integration run the handoff started, as its cards and its gate's evidence show it once it started."""
    details = run.details
    integration: JsonObject = {
        "pipeline": details.get("pipeline"),
        "project": details.get("project"),
        "state": "queued",
        "run_id": run.backend_run_id,
    }
    integration.update((key, details[key]) for key in ("name", "url") if details.get(key))
    return integration


def _with_status(integration: JsonObject, status: RunStatus) -> JsonObject:
    updated = {**integration, "state": status.state, "result": status.result}
    if status.url:
        updated["url"] = status.url
    if status.failing_step:
        updated["failing_step"] = status.failing_step
    return updated
