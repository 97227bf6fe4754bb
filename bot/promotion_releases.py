"""The release a promotion gate's approval starts: started once with the model version (looked for in Azure DevOps
when the answer to its start was lost, before it is ever started again), followed until it ends, canceled from chat
before it was known to have started; then the version tagged approved in Azure ML."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.cards import Card, Link, Status
from bot.clock import Clock
from bot.gate_outcomes import Applied, clause
from bot.gate_updates import GateUpdates
from bot.ingest import Ingest
from bot.interactions import link
from bot.lookups import INTERACTIVE_SECONDS, answered_within
from bot.pipeline_runs import RELEASE_KEY_PREFIX, ended_state, pipeline_run_event, release_command, release_key
from bot.policy import Policy
from bot.ports import MLService, PipelineService, RunStatus, ServiceRefused, ServiceUnavailable, StartedRun, Store
from bot.promotions import Promotions, version_label
from bot.records import CommandRun, CommandRunState, Gate, GateDecision, JsonObject

log = logging.getLogger("handoff.gates")
T = TypeVar("T")

APPROVED_TAGS = {"approved": "true"}
# A release Handoff started stays its one run of that gate for as long as a gate can wait and be retried.
RELEASE_ONCE = timedelta(days=90)
# How long the sweep polls a release Handoff started (as the runner polls the runs it starts).
RELEASE_FOLLOWED = timedelta(hours=12)
# A release start whose answer was lost may have queued the run: its run is looked for among the pipeline's runs
# queued since RELEASE_CLOCK_SKEW before the start (Azure DevOps' clock is not Handoff's), and the release is
# started again only once RELEASE_LOOKED_FOR has passed since the last start without its run showing up.
RELEASE_CLOCK_SKEW = timedelta(minutes=10)
RELEASE_LOOKED_FOR = timedelta(minutes=2)
_START_UNKNOWN = ("start_unknown", "error", "tried_at", "last_tried_at")


def _not_known_yet(pipeline: str) -> Applied:
    """How applying a promotion stands while it is not known whether its release started."""
    return Applied(
        "pending: not known whether Azure DevOps started the release",
        f"Azure DevOps did not say whether it started {pipeline}: Handoff looks for the run there, and starts the "
        "release only if it did not.",
        retry=True,
    )


def _releases(run: RunStatus, branch: str | None, parameters: Mapping[str, str]) -> bool:
    """Whether ``run`` is a run of the release with ``parameters`` (the model version among them), on ``branch``
    where one is configured."""
    if branch and run.branch and run.branch != (branch if branch.startswith("refs/") else f"refs/heads/{branch}"):
        return False
    return all(run.parameters.get(name) == value for name, value in parameters.items())


def _known(details: JsonObject) -> JsonObject:
    """A release run's details without what said its start was not known."""
    return {k: v for k, v in details.items() if k not in _START_UNKNOWN}


async def _within(call: Awaitable[T], seconds: float | None) -> T:
    """``call``'s answer; with ``seconds`` (someone waits for it in chat), Azure DevOps not answering within them
    counts as :class:`~bot.ports.ServiceUnavailable`."""
    return await (answered_within(call, "Azure DevOps", seconds) if seconds is not None else call)


def _release_parameters(gate: Gate) -> dict[str, str]:
    """The template parameters the release of promotion ``gate`` runs with: the configured ones and the version."""
    release: dict[str, Any] = dict(gate.details.get("release") or {})
    parameters = {str(k): str(v) for k, v in dict(release.get("parameters") or {}).items()}
    parameters.update(modelName=str(gate.details.get("model", "")), modelVersion=str(gate.details.get("version", "")))
    return parameters


def _canceled_unstarted(gate: Gate, run: CommandRun) -> bool:
    """Whether ``run``, the release of ``gate``, was canceled from chat before it was known to have started."""
    mark = gate.details.get("release_canceled")
    return (
        isinstance(mark, dict)
        and mark.get("run") == run.id
        and run.state is CommandRunState.CANCELED
        and not run.backend_run_id
    )


def _canceled_there(gate: Gate, run: CommandRun) -> Applied:
    """How applying ``gate``'s approval stands once the run the start of its release queued, although someone had
    canceled that release from chat (``run``), was canceled in Azure DevOps, or Azure DevOps refused to cancel it."""
    by, pipeline = _canceler(gate), str(run.details.get("pipeline", ""))
    named = f"{pipeline} {run.details.get('name') or run.backend_run_id}"
    if refusal := str(run.details.get("cancel_refused") or ""):
        why = f"{clause(refusal)}. Cancel it among the runs of the pipeline {pipeline}"
        return Applied(
            f"release canceled by {by}; Azure DevOps refused to cancel {run.backend_run_id}: {refusal}",
            f"Release canceled by {by}, but Azure DevOps refused to cancel {named}, which it had started: {why}.",
            answer=f"Azure DevOps had started it as {named}, and refused to cancel it: {why}.",
        )
    return Applied(
        f"release canceled by {by}",
        f"Release canceled by {by}: Azure DevOps had started {named} (run {run.id}), and Handoff canceled it.",
        answer=f"Azure DevOps had started it as {named}, though its answer was lost: Handoff canceled that run.",
    )


def _canceler(gate: Gate) -> str:
    """Who canceled ``gate``'s release from chat, as chat names them."""
    mark = gate.details.get("release_canceled") or {}
    by = mark.get("by") if isinstance(mark, dict) else None
    return str(by.get("name") or by.get("who") or "") if isinstance(by, dict) else ""


class PromotionReleases:
    """Applies a promotion gate's approval: starts the configured release pipeline with the model version, once,
    then tags the version approved in Azure ML; follows the releases it started; cancels from chat one not known
    to have started.

    Args:
        store: gates, and the command runs that record the releases.
        policy: the configuration (which app a model's release is of).
        ingest: how a release run's card is shown.
        clock: when things happen.
        updates: where a gate's change is recorded, shown and audited.
        promotions: the promotion gates (a newer version released since).
        pipelines: Azure DevOps, where releases are started (None: nothing is started).
        ml: Azure ML, where an approved model version is tagged.
        organization: the Azure DevOps organization as its events name it, for the releases' cards.
    """

    def __init__(
        self,
        store: Store,
        policy: Policy,
        ingest: Ingest,
        clock: Clock,
        updates: GateUpdates,
        promotions: Promotions,
        pipelines: PipelineService | None = None,
        ml: MLService | None = None,
        organization: str = "",
    ) -> None:
        self.store = store
        self.policy = policy
        self.ingest = ingest
        self.clock = clock
        self.updates = updates
        self.promotions = promotions
        self.pipelines = pipelines
        self.ml = ml
        self.organization = organization
        #: How long a release whose start's answer was lost is looked for before it is started again.
        self.release_looked_for = RELEASE_LOOKED_FOR

    async def apply(self, gate: Gate, record: GateDecision) -> Applied:
        """Start the release with the model version, then tag the version approved; each step once.

        A step done is written to the gate before the next, so a retry (see :meth:`bot.gates.Gatekeeper.sweep`) does
        only what is left.
        """
        decision, comment = record.decision, record.comment
        if decision == "reject":
            await self.updates.note(gate, applied=True)
            return Applied("applied")
        model, version = str(gate.details.get("model", "")), str(gate.details.get("version", ""))
        release: dict[str, Any] = dict(gate.details.get("release") or {})
        pipeline = str(release.get("pipeline", ""))
        current = gate
        started = dict(gate.details.get("release_run") or {})
        told: JsonObject | None = None  # the release started now (a retry's was told by the first attempt)
        if not started and gate.details.get("release_canceled"):
            return replace(await self._settle_canceled_release(gate), answer="")  # (the cards' note tells it)
        if not started:
            begun = await self._start_release(gate, record)
            if isinstance(begun, Applied):
                return await self._canceled_meanwhile(gate.gate_id) or begun
            started = begun
            current = await self.updates.note(gate, applied=False, release_run=started) or gate
            told = {**started, "pipeline": pipeline}
        named = f"{pipeline} {started.get('name') or started.get('run_id')}"
        number = f" (run {started['command_run']})" if started.get("command_run") else ""
        note = f"Started {named} with {model}:{version}{number}."
        url = started.get("url")
        answer = f"Started {link(str(url), named) if url else named} with {model}:{version}{number}."
        if self.ml is not None and not current.details.get("tagged"):
            tags = {**APPROVED_TAGS, "approved_by": record.actor}
            if decision == "override":
                tags["override_reason"] = comment[:250]
            try:
                await self.ml.tag_model(model, version, tags)
            except ServiceRefused as refused:
                await self.updates.note(current, applied=True, tag_refusal=refused.reason)
                tag = f"Azure ML refused the tag: {refused.reason}"
                return Applied(f"applied; {tag}", f"{note} {tag}", answer=f"{answer} {tag}", release_started=told)
            except ServiceUnavailable:
                later = "Azure ML is not answering; Handoff will tag the version when it does."
                return Applied(
                    "pending: Azure ML unavailable",
                    f"{note} {later}",
                    answer=f"{answer} {later}",
                    retry=True,
                    release_started=told,
                )
        await self.updates.note(current, applied=True, tagged=self.ml is not None)
        return Applied("applied", note, answer=answer, release_started=told)

    async def _start_release(self, gate: Gate, record: GateDecision) -> JsonObject | Applied:
        """Start the release ``gate``'s approval starts, once; returns it as the gate keeps it (``release_run``),
        or how applying stands when it did not start (refused), or is not known to have started yet.

        A start whose answer was lost may have queued the run: it is recorded so (``start_unknown``), and the next
        attempts look for that run in Azure DevOps (:meth:`_lost_release`) and take it as the release; only once
        :attr:`release_looked_for` has passed without it showing up is the release started again.
        """
        model, version = str(gate.details.get("model", "")), str(gate.details.get("version", ""))
        release: dict[str, Any] = dict(gate.details.get("release") or {})
        pipeline = str(release.get("pipeline", ""))
        if self.pipelines is None:
            refusal = "Azure DevOps is not connected to this Handoff"
            why = f"{refusal}, so {pipeline} was not started."
            return await self.updates.refused(gate, record, f"refused: {refusal}", why)
        parameters = _release_parameters(gate)
        project, branch = str(release.get("project", "")), release.get("branch")
        recorded = await self._record_release(gate, record, project, pipeline)
        if recorded.details.get("start_unknown"):
            lost = await self._lost_release(recorded, self.pipelines, parameters)
            if isinstance(lost, StartedRun):
                log.info("gate %s: its release %s had started, though its answer was lost", gate.gate_id, lost.run_id)
                return await self._release_started(recorded, lost, f"{model}:{version}")
            if lost is not None:
                return lost
        if (released := await self.promotions.released_since(gate)) is not None:
            # a retry of a decision from before a newer version's release: it would roll that back
            why = f"{version_label(released)}, a newer version, was released since, so {pipeline} was not started."
            await self._not_started(recorded, why)
            refused = await self.updates.refused(
                gate, record, f"refused: {version_label(released)} released since", why
            )
            if (reopened := await self.store.get_gate(gate.gate_id)) is not None:
                await self.promotions.out_of_date(reopened)
            return refused
        # until Azure DevOps answers, it is not known whether the release started: a process stopped meanwhile
        # leaves it so, and the attempt that takes the decision over looks for the run before starting it again
        recorded = await self._starting(recorded)
        if (canceled := await self._canceled_meanwhile(gate.gate_id)) is not None:
            return canceled  # canceled from chat as it was about to be sent
        try:
            run = await self.pipelines.run_pipeline(project, pipeline, branch, parameters)
        except ServiceRefused as refused:
            why = f"Azure DevOps refused to start {pipeline}: {clause(refused.reason)}."
            await self._not_started(recorded, why)
            return await self.updates.refused(gate, record, f"refused by Azure DevOps: {refused.reason}", why)
        except ServiceUnavailable as unanswered:
            if unanswered.may_have_acted:
                return await self._release_unknown(recorded, str(unanswered))
            await self._known_not_started(recorded)
            return Applied(
                "pending: Azure DevOps unavailable",
                "Azure DevOps is not answering; Handoff will start the release when it does.",
                retry=True,
            )
        except Exception:  # (a bug, an answer that could not be read): the request may have got through
            log.exception("gate %s: starting its release %s failed unexpectedly", gate.gate_id, pipeline)
            return await self._release_unknown(recorded, "")
        return await self._release_started(recorded, run, f"{model}:{version}")

    async def _starting(self, recorded: CommandRun) -> CommandRun:
        """``recorded``, its start about to be sent: recorded as not known to have started (since now), so that an
        attempt that finds it so, because this one never heard back, looks for the run first."""
        now = self.clock.now()
        details = {
            **recorded.details,
            "start_unknown": True,
            "tried_at": str(recorded.details.get("tried_at") or now.isoformat()),
            "last_tried_at": now.isoformat(),
        }
        updated = await self.store.update_command_run(
            recorded.id or 0, CommandRunState.REQUESTED, now, details=details, expected=recorded.state
        )
        return replace(recorded, state=CommandRunState.REQUESTED, details=details) if updated else recorded

    async def _known_not_started(self, recorded: CommandRun) -> None:
        """Azure DevOps said the start of ``recorded`` did not take effect: it is known not to have started (the
        next attempt starts it without looking for it), unless an earlier attempt's outcome is still unknown."""
        if recorded.details.get("error"):  # an earlier attempt's answer was lost: that one may still have started
            return
        details = _known(recorded.details)
        await self.store.update_command_run(
            recorded.id or 0, recorded.state, self.clock.now(), details=details, expected=recorded.state
        )

    async def _not_started(self, recorded: CommandRun, why: str) -> None:
        """The release ``recorded`` is not started, for good (``why``): ``runs`` and ``status`` say so."""
        failed = {**_known(recorded.details), "error": why}
        await self.store.update_command_run(
            recorded.id or 0, CommandRunState.FAILED, self.clock.now(), details=failed, expected=recorded.state
        )

    async def _release_started(self, recorded: CommandRun, run: StartedRun, for_model: str) -> JsonObject | Applied:
        """Record ``run`` as the release ``recorded`` started, and show its card; returns it as its gate keeps it, or,
        where someone canceled the release from chat meanwhile, how canceling ``run`` went."""
        project, pipeline = str(recorded.details.get("project", "")), str(recorded.details.get("pipeline", ""))
        branch = recorded.details.get("branch")
        if not await self.store.update_command_run(
            recorded.id or 0,
            CommandRunState.STARTED,
            self.clock.now(),
            backend_run_id=run.run_id,
            details={**_known(recorded.details), "name": run.name, "url": run.url},
            expected=recorded.state,
        ):
            gate = await self.store.get_gate(str(recorded.details.get("gate", "")))
            current = await self.store.get_command_run(recorded.id or 0)
            if gate is not None and current is not None and _canceled_unstarted(gate, current):
                return await self._cancel_found(gate, current, run)
        await self._show_release(project, pipeline, str(branch) if branch else None, run, for_model)
        return {"run_id": run.run_id, "name": run.name, "url": run.url, "command_run": recorded.id}

    async def _release_unknown(self, recorded: CommandRun, error: str) -> Applied:
        """Record that it is not known whether the release ``recorded`` was started (the answer to its start was
        lost, ``error``): the next attempt looks for it before starting it again (see :meth:`_start_release`)."""
        now = self.clock.now()
        pipeline = str(recorded.details.get("pipeline", ""))
        problem = f"{error}. " if error else ""
        problem += f"Handoff cannot tell yet whether Azure DevOps started {pipeline}; it looks for the run there."
        details = {
            **recorded.details,
            "start_unknown": True,
            "error": problem,
            "tried_at": str(recorded.details.get("tried_at") or now.isoformat()),  # the first start's
            "last_tried_at": now.isoformat(),
        }
        if not await self.store.update_command_run(
            recorded.id or 0, CommandRunState.REQUESTED, now, details=details, expected=recorded.state
        ):
            await self._may_have_started(recorded, details)
        log.warning("release %s of run %s: not known whether it started: %s", pipeline, recorded.id, error or "?")
        return _not_known_yet(pipeline)

    async def _may_have_started(self, recorded: CommandRun, unknown: JsonObject) -> None:
        """Keep on the release ``recorded``, canceled from chat while its start was on its way, that the start may
        have gone through (``unknown``: when it was sent), so that the run it queued is looked for and canceled."""
        current = await self.store.get_command_run(recorded.id or 0)
        if current is None or current.state is not CommandRunState.CANCELED or current.backend_run_id:
            return
        marks = {k: unknown[k] for k in ("start_unknown", "tried_at", "last_tried_at")}
        marks["tried_at"] = current.details.get("tried_at") or marks["tried_at"]  # the first start's
        await self.store.update_command_run(
            current.id or 0,
            CommandRunState.CANCELED,
            self.clock.now(),
            details={**current.details, **marks},
            expected=CommandRunState.CANCELED,
        )

    async def _lost_release(
        self,
        recorded: CommandRun,
        pipelines: PipelineService,
        parameters: dict[str, str],
        within: float | None = None,
    ) -> StartedRun | Applied | None:
        """Where the release ``recorded``, whose start's answer was lost, stands in Azure DevOps: the run that
        start queued (a run of its pipeline queued since, with its branch and parameters); else, while Azure DevOps
        cannot be asked or :attr:`release_looked_for` has not passed since the last start, how applying waits;
        None once it should be started again. ``within``: how long Azure DevOps has to answer, when someone waits."""
        details = recorded.details
        project, pipeline = str(details.get("project", "")), str(details.get("pipeline", ""))
        tried = datetime.fromisoformat(str(details.get("tried_at")))
        last = datetime.fromisoformat(str(details.get("last_tried_at") or details.get("tried_at")))
        try:
            runs = await _within(pipelines.runs_since(project, pipeline, tried - RELEASE_CLOCK_SKEW), within)
        except (ServiceRefused, ServiceUnavailable) as exc:
            log.info("could not look for release %s of run %s (%s)", pipeline, recorded.id, exc)
            return _not_known_yet(pipeline)
        branch = details.get("branch")
        found = next((r for r in runs if _releases(r, str(branch) if branch else None, parameters)), None)
        if found is not None:
            return StartedRun(found.run_id, found.name or found.run_id, found.url, found.state)
        if self.clock.now() - last < self.release_looked_for:
            return _not_known_yet(pipeline)
        log.info("release %s of run %s: not started, %s after its answer was lost", pipeline, recorded.id, last)
        return None

    async def _record_release(self, gate: Gate, record: GateDecision, project: str, pipeline: str) -> CommandRun:
        """The release ``gate``'s approval starts, recorded as a run Handoff started for its model version (as its
        integrations are), so that ``runs`` lists it and ``status``/``cancel`` reach it by its number: asked for by
        the person whose decision starts it. A retry after Azure DevOps did not answer finds the same run."""
        model, version = str(gate.details.get("model", "")), str(gate.details.get("version", ""))
        configured = self.policy.settings.models.get(model)
        consumers = configured.consumers if configured else []
        app = consumers[0] if len(consumers) == 1 else None  # the release is of that app; else of the model
        name = str((gate.details.get("names") or {}).get(record.actor) or record.actor)
        run, _ = await self.store.start_command_run(
            CommandRun(
                idempotency_key=release_key(gate.gate_id),
                actor=record.actor,
                platform="",
                conversation="",
                command=release_command(model, version, app),
                target=app or model,
                state=CommandRunState.REQUESTED,
                created_at=self.clock.now(),
                details={
                    "model": model,
                    "version": version,
                    "gate": gate.gate_id,
                    "service": "azure-devops",
                    "project": project,
                    "pipeline": pipeline,
                    "branch": (gate.details.get("release") or {}).get("branch"),
                    "asked_by": {"name": name, "email": record.actor},
                },
            ),
            RELEASE_ONCE,
            until_ended=True,
        )
        return run

    # --- a release canceled from chat before it was known to have started ---------------------------------

    async def cancel_unstarted_release(self, run: CommandRun, canceled_by: JsonObject) -> str | None:
        """Cancel ``run``, the release a promotion gate's approval starts, from chat while it is not known to have
        started (its start's answer was lost, or Azure DevOps has not answered yet): Handoff never starts it again.
        ``canceled_by`` (``name``, as chat names them) is kept on the run, as ``cancel`` keeps it on a started run.

        The gate is marked first, so that no attempt to apply its approval starts the release from then on, and
        then the run is recorded canceled. Azure DevOps is asked at once for the run a lost start may have queued:
        found, it is canceled there (through :meth:`~bot.ports.PipelineService.cancel_run`, as ``cancel`` cancels a
        started run). Otherwise the sweep looks for it as long as it would have before starting the release again
        (:attr:`release_looked_for`), cancels it if it shows up, and else records that it never started. The gate's
        cards say who canceled the release and how that went; the version is not tagged approved.

        Returns what Handoff does about it, for the person who canceled it; None when the run is no longer waiting to
        start (it started or ended meanwhile).
        """
        now = self.clock.now()
        gate_id = str(run.details.get("gate", ""))
        gate = await self._mark_release_canceled(gate_id, {"run": run.id, "by": canceled_by, "at": now.isoformat()})
        details = {**run.details, "canceled_by": canceled_by, "canceled_at": now.isoformat()}
        if not await self.store.update_command_run(
            run.id or 0, CommandRunState.CANCELED, now, details=details, expected=CommandRunState.REQUESTED
        ):
            await self._mark_release_canceled(gate_id, None)
            return None
        if gate is None:  # (its gate was cleaned up: nothing would start it)
            return "Handoff will not start it."
        settled = await self._settle_canceled_release(gate, within=INTERACTIVE_SECONDS)
        await self.updates.publish(await self.store.get_gate(gate_id) or gate, note=settled.note)
        by = _canceler(gate)
        await self.updates.reply_in_thread(gate, Card(title=f"Release canceled by {by}", status=Status.CANCELED))
        return settled.told

    async def _mark_release_canceled(self, gate_id: str, mark: JsonObject | None) -> Gate | None:
        """Mark ``gate_id``'s release canceled from chat (``mark``: which run, by whom, when), or take the mark
        back (None); the gate as it now is."""
        for _ in range(20):
            current = await self.store.get_gate(gate_id)
            if current is None:
                return None
            details = {k: v for k, v in current.details.items() if k != "release_canceled"}
            if mark is not None:
                details["release_canceled"] = mark
            updated = await self.store.update_gate(current.gate_id, current.version, current.state, details)
            if updated is not None:
                return updated
        raise RuntimeError(f"gate {gate_id} kept changing")

    async def _canceled_meanwhile(self, gate_id: str) -> Applied | None:
        """How applying ``gate_id``'s approval stands if its release was canceled from chat meanwhile (see
        :meth:`_settle_canceled_release`); None if it was not."""
        current = await self.store.get_gate(gate_id)
        if current is None or not current.details.get("release_canceled") or current.details.get("release_run"):
            return None
        return replace(await self._settle_canceled_release(current), answer="")  # (the cards' note tells it)

    async def _settle_canceled_release(self, gate: Gate, within: float | None = None) -> Applied:
        """Settle ``gate``'s release, canceled from chat before it was known to have started: the run a lost start
        queued, found in Azure DevOps, is canceled there; while that run may still show up, applying waits (the
        sweep looks again); once it no longer may, the release is recorded as never started. Either way the gate
        is then applied, without anything more (the version is not tagged approved). ``within``: how long Azure
        DevOps has to answer each request, when someone waits for the outcome in chat."""
        mark = dict(gate.details.get("release_canceled") or {})
        pipeline = str(dict(gate.details.get("release") or {}).get("pipeline", ""))
        run = await self.store.get_command_run(int(mark.get("run") or 0))
        if run is not None and run.state is CommandRunState.REQUESTED:  # the cancel stopped before recording it
            details = {**run.details, "canceled_by": mark.get("by"), "canceled_at": mark.get("at")}
            await self.store.update_command_run(
                run.id or 0, CommandRunState.CANCELED, self.clock.now(), details=details, expected=run.state
            )
            run = await self.store.get_command_run(run.id or 0)
        if run is None or run.state is not CommandRunState.CANCELED:
            # it started before the cancel took (whose mark is being taken back): applying goes on
            return Applied("pending: its release started as it was canceled", retry=True)
        if run.backend_run_id and run.details.get("cancel_pending"):
            name = str(run.details.get("name") or run.backend_run_id)
            found = StartedRun(run.backend_run_id, name, run.details.get("url"))
            return await self._cancel_found(gate, run, found, within)
        if run.backend_run_id:  # found, and canceled in Azure DevOps, before
            await self.updates.note(gate, applied=True)
            return _canceled_there(gate, run)
        if run.details.get("start_unknown") and self.pipelines is not None:
            lost = await self._lost_release(run, self.pipelines, _release_parameters(gate), within)
            if isinstance(lost, StartedRun):
                return await self._cancel_found(gate, run, lost, within)
            if lost is not None:
                return Applied(
                    "pending: release canceled; looking for the run its lost start may have queued",
                    f"Release canceled by {_canceler(gate)}: Handoff will not start {pipeline}. If Azure DevOps "
                    "started it (its answer to the start was lost), Handoff cancels that run when it finds it.",
                    answer=f"Handoff will not start {pipeline} for it. Azure DevOps may have started it, though its "
                    "answer was lost: Handoff looks for that run and cancels it if it finds it.",
                    retry=True,
                )
            log.info("release %s of run %s: canceled, and never started", pipeline, run.id)
            known = _known(run.details)
            await self.store.update_command_run(
                run.id or 0, run.state, self.clock.now(), details=known, expected=run.state
            )
        await self.updates.note(gate, applied=True)
        return Applied(
            f"release canceled by {_canceler(gate)}",
            f"Release canceled by {_canceler(gate)} before it started: Handoff did not start {pipeline} "
            f"(run {run.id}).",
            answer=f"It had not started, and Handoff will not start {pipeline} for it.",
        )

    async def _cancel_found(
        self, gate: Gate, run: CommandRun, found: StartedRun, within: float | None = None
    ) -> Applied:
        """Cancel in Azure DevOps ``found``, the run the start of ``gate``'s release queued although someone had
        canceled that release from chat (``run``); recorded first, so that a cancel Azure DevOps did not answer is
        sent again by the next sweep."""
        assert self.pipelines is not None
        project, pipeline = str(run.details.get("project", "")), str(run.details.get("pipeline", ""))
        named, by = f"{pipeline} {found.name}", _canceler(gate)
        details: JsonObject = {**_known(run.details), "name": found.name, "url": found.url, "cancel_pending": True}
        await self.store.update_command_run(
            run.id or 0, run.state, self.clock.now(), found.run_id, details, expected=CommandRunState.CANCELED
        )
        try:
            await _within(self.pipelines.cancel_run(project, found.run_id), within)
        except ServiceUnavailable as error:
            log.warning("release %s of run %s: could not cancel it (%s)", found.run_id, run.id, error)
            return Applied(
                "pending: Azure DevOps did not answer the cancel",
                f"Release canceled by {by}: Azure DevOps had started {named}, and Handoff cancels it as soon as "
                "Azure DevOps answers.",
                answer=f"Azure DevOps had started it as {named}, though its answer was lost. Azure DevOps is not "
                "answering now: Handoff cancels that run as soon as it does.",
                retry=True,
            )
        except ServiceRefused as refused:
            details["cancel_refused"] = refused.reason
        else:
            log.info("release %s of run %s: found after it was canceled, and canceled", found.run_id, run.id)
        return await self._canceled_found(gate, run, found, details)

    async def _canceled_found(self, gate: Gate, run: CommandRun, found: StartedRun, details: JsonObject) -> Applied:
        """Record that canceling ``found`` is done with, show its card canceled and by whom, and let the gate be;
        how applying then stands."""
        settled = {k: v for k, v in details.items() if k != "cancel_pending"}
        await self.store.update_command_run(
            run.id or 0, run.state, self.clock.now(), found.run_id, settled, expected=CommandRunState.CANCELED
        )
        branch = run.details.get("branch")
        for_model = f"{run.details.get('model')}:{run.details.get('version')}"
        project, pipeline = str(run.details.get("project", "")), str(run.details.get("pipeline", ""))
        by = _canceler(gate)
        await self._show_release(project, pipeline, str(branch) if branch else None, found, for_model, by)
        await self.updates.note(gate, applied=True)
        return _canceled_there(gate, replace(run, backend_run_id=found.run_id, details=settled))

    # --- a release started: told, shown, followed ----------------------------------------------------------

    async def tell_started(self, gate: Gate, started: JsonObject) -> None:
        """Say in the thread of ``gate``'s cards that its release started, linked to the run in Azure DevOps."""
        named = f"{started['pipeline']} {started.get('name') or started.get('run_id')}"
        number = started.get("command_run")
        card = Card(
            title=f"Started {named} with {version_label(gate)}",
            status=Status.RUNNING,
            summary=f"Run {number}: `status {number}` shows how it stands, `runs` lists it." if number else "",
            links=(Link(named, str(started["url"])),) if started.get("url") else (),
        )
        await self.updates.reply_in_thread(gate, card)

    async def follow_releases(self) -> None:
        """Poll the releases Handoff started on approving promotion gates until they end (for at most
        :data:`RELEASE_FOLLOWED`): their runs end in ``runs`` and ``status`` as they end in Azure DevOps, and their
        cards show it should Azure DevOps' own event be lost. Once per sweep, as a restarted process does too."""
        if self.pipelines is None:
            return
        now = self.clock.now()
        for run in await self.store.unfinished_command_runs(now - RELEASE_FOLLOWED):
            if not run.idempotency_key.startswith(RELEASE_KEY_PREFIX) or not run.backend_run_id:
                continue
            project, pipeline = str(run.details.get("project", "")), str(run.details.get("pipeline", ""))
            try:
                status = await self.pipelines.run_status(project, run.backend_run_id)
            except (ServiceRefused, ServiceUnavailable) as exc:
                log.info("could not ask how release %s stands (%s)", run.backend_run_id, exc)
                continue
            await self._show_release_status(run, project, pipeline, status)
            if (ended := ended_state(status)) is not None:
                await self.store.update_command_run(run.id or 0, ended, now, expected=CommandRunState.STARTED)

    async def _show_release_status(self, run: CommandRun, project: str, pipeline: str, status: RunStatus) -> None:
        started = StartedRun(str(run.backend_run_id), str(run.details.get("name") or run.backend_run_id))
        branch = run.details.get("branch")
        for_model = f"{run.details.get('model')}:{run.details.get('version')}"
        event = pipeline_run_event(
            self.organization,
            self.clock.now(),
            project,
            pipeline,
            str(branch) if branch else None,
            replace(started, url=str(run.details.get("url") or "") or None),
            status,
            for_model=for_model,
        )
        try:
            await self.ingest.accept(event)
        except Exception:  # the run's own events keep its card; its state in `runs` matters more here
            log.warning("the card of release run %s was not updated", run.backend_run_id, exc_info=True)

    async def _show_release(
        self,
        project: str,
        pipeline: str,
        branch: str | None,
        run: StartedRun,
        for_model: str,
        canceled_by: str | None = None,
    ) -> None:
        """The release run's own card, at once and naming the model version it releases (Azure DevOps' events
        about the run do not), canceled and by whom if ``canceled_by`` canceled it from chat. The release has
        started whatever happens here: its events show it anyway."""
        now = self.clock.now()
        event = pipeline_run_event(self.organization, now, project, pipeline, branch, run, for_model=for_model)
        if canceled_by:
            event = replace(event, event_id=f"handoff-cancel:{run.run_id}", state="canceling", canceled_by=canceled_by)
        try:
            await self.ingest.accept(event)
        except Exception:  # the card is not worth failing a release that started
            log.warning("the card of release run %s was not shown at once", run.run_id, exc_info=True)
