"""Commands that start work: ``retrain``, ``integrate``, ``cancel``, ``runs``, ``status``.

A command is answered at once with what will happen; the work runs in the background. The same
command from the same person starts one run while that run is still starting or running, for at most
the configured window (the store keeps the idempotency key); once it has ended, the command starts a
new one. A command marked ``confirm: true`` first answers with a summary and Confirm / Cancel buttons.
The run gets a living card in the conversation where it was asked for, kept current by the services'
own events and, for what they do not announce, by polling.

A restarted process takes up what the last one left (:meth:`CommandRunner.resume`): it polls the
started runs again and starts again the Azure ML jobs whose start was cut off. A run nobody polls any more
(it outlasted the polling limit, its service kept refusing to say how it stands, or it outlasted the
limit while Handoff was down) ends when its service's own completion event arrives (:meth:`CommandRunner.observe`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.audit import command_entry
from bot.background import BackgroundWork
from bot.cards import Action, Card, Link, Mention, Status
from bot.chat_handler import ChatHandler
from bot.clock import Clock
from bot.commands import (
    COMMANDS_BY_VERB,
    ParsedCommand,
    UsageError,
    did_you_mean,
    may_be_run,
    parse,
    run_number,
    with_configured_target,
)
from bot.config import CommandPolicySettings, Settings
from bot.events import DomainEvent, Person, RunStateChanged, TrainingRunFinished
from bot.ingest import Ingest, IngestFailed
from bot.interactions import ActionRequest, ActionResult, ChatUser, CommandRequest, Reply, Visibility, link
from bot.lookups import INTERACTIVE_SECONDS, answered_within
from bot.pipeline_runs import (
    MODEL_NAME_PARAMETER,
    MODEL_VERSION_PARAMETER,
    RELEASE_KEY_PREFIX,
    ended_state,
    model_of,
    organization_name,
    pipeline_run_event,
    run_card_key,
)
from bot.policy import Policy, Verdict
from bot.ports import MLService, PipelineService, RunStatus, ServiceRefused, ServiceUnavailable, StartedRun, Store
from bot.records import (
    CONFIRMATION_KEY_PREFIX,
    CommandRun,
    CommandRunState,
    ConversationAddress,
    JsonObject,
    NewDelivery,
    Platform,
)

log = logging.getLogger("handoff.runner")

_SAFE_NAME = re.compile(r"[^a-z0-9-]+")
RUNS_SHOWN = 10
"""How many runs ``runs`` lists."""
SERVICE_NAMES = {"azure-ml": "Azure ML job", "azure-devops": "Azure DevOps run"}
Outcome = asyncio.Future[Card | None]
"""How a run's start went, for the card of the confirmation that asked for it: the card's next face, which
says the run started (and where) or why it could not start; None when the card stays as it is."""
REFUSED_POLLS = 5
"""Refusals in a row after which a run's status is asked no more."""
ENDED_BY_EVENTS = timedelta(days=30)
"""How long a started run's service's completion event still ends it (when no poll did)."""
JOB_PREFIX = "handoff-"
"""The start of the name of every Azure ML job a command starts (:func:`job_name`)."""
POLLED_EVENT_PREFIX = "handoff-poll:"
"""The start of the ids of the events Handoff makes of the runs it polls (the poll records their end itself)."""
DEFAULT_EXPERIMENT = "Default"
"""The experiment Azure ML puts a job in whose file names none."""
START_CUT_OFF = timedelta(minutes=2)
"""A pipeline run still only requested this long after it was asked for was cut off while starting
(a start takes seconds; another replica may be starting a younger one)."""
DATA_INPUT = "training_data"
"""The input of a retrain's Azure ML job whose path ``data=<asset>:<version>`` replaces."""
_START_UNKNOWN_DETAILS = ("start_unknown", "error", "job")
"""What a run whose start is not known keeps in its details, dropped once it is known to have started."""
ReleaseCanceler = Callable[[CommandRun, JsonObject], Awaitable[str | None]]
"""Cancels a release Handoff starts on approving a promotion gate before it is known to have started, so that it is
never started (see :meth:`bot.gates.Gatekeeper.cancel_unstarted_release`): given the run and who canceled it, what
Handoff does about it, for that person; None when the run started or ended meanwhile."""


def job_name(model: str, run: CommandRun) -> str:
    """The Azure ML job name of a command run: the same for the same run, so a repeated submission finds
    the job instead of starting another, and different for every run (the time it was asked for keeps
    runs of a store that was started afresh apart from older jobs)."""
    return _SAFE_NAME.sub("-", f"{JOB_PREFIX}{model}-{run.id}-{run.created_at:%Y%m%d%H%M%S}".lower()).strip("-")


def _job_spec(job_file: str, base_dir: Path) -> tuple[Path, dict[str, Any]]:
    """An Azure ML job file (a relative one found in ``base_dir``) and what it says; nothing for a file that
    cannot be read (the start itself says what is wrong with it)."""
    path = Path(job_file)
    path = path if path.is_absolute() else base_dir / path
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        spec = None
    return path, spec if isinstance(spec, dict) else {}


def _text(spec: dict[str, Any], key: str) -> str:
    value = spec.get(key)
    return value.strip() if isinstance(value, str) else ""


def job_title(job_file: str, base_dir: Path) -> str:
    """The name people know an Azure ML job file's job by: its ``display_name``, else its
    ``experiment_name`` (as Azure ML studio lists them), else the file's name without its folder and suffix.

    A relative ``job_file`` is found in ``base_dir``; a file that cannot be read is named by its file name.
    """
    path, spec = _job_spec(job_file, base_dir)
    return _text(spec, "display_name") or _text(spec, "experiment_name") or path.stem


def has_data_input(job_file: str, base_dir: Path) -> bool | None:
    """Whether an Azure ML job file declares the data input ``retrain``'s ``data=`` gives a new path: an input
    :data:`DATA_INPUT` with a ``type`` and a ``path`` (``uri_folder``, ``mltable``...); None when the file cannot
    be read (its start says what is wrong with it)."""
    _, spec = _job_spec(job_file, base_dir)
    if not spec:
        return None
    inputs = spec.get("inputs")
    declared = inputs.get(DATA_INPUT) if isinstance(inputs, dict) else None
    return isinstance(declared, dict) and "path" in declared


def job_experiment(job_file: str, base_dir: Path, params: dict[str, str]) -> str:
    """The Azure ML experiment a job file's job runs in, as Azure ML's own events name it: the
    ``experiment_name`` the command's parameters or the file give, else Azure ML's ``Default``."""
    return (
        params.get("experiment_name", "").strip()
        or _text(_job_spec(job_file, base_dir)[1], "experiment_name")
        or DEFAULT_EXPERIMENT
    )


@dataclass(frozen=True)
class Plan:
    """What a command will start: a sentence for people, and how to start and watch it."""

    summary: str
    target: str
    start: Callable[[CommandRun], Awaitable[StartedRun]]
    watch: Callable[[StartedRun], Awaitable[RunStatus]] | None
    progress_event: Callable[[StartedRun, RunStatus], DomainEvent]
    # kept on the command run once started: which service runs it (and where), for `cancel` and `runs`
    backend: JsonObject = field(default_factory=dict)
    # the name the service gives the run whoever asks, where Handoff chooses it (an Azure ML job's): starting it
    # again finds the run if the first start got through, so a start whose answer was lost is simply made again
    named: Callable[[CommandRun], str] | None = None


def _workspace_topic(settings: Settings) -> str:
    aml = settings.azure_ml
    if aml is None:
        return ""
    return (
        f"/subscriptions/{aml.subscription_id}/resourceGroups/{aml.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{aml.workspace}"
    )


class CommandRunner:
    """Adds the commands that start work to a :class:`ChatHandler`.

    Args:
        policy: who may cancel which run (the settings' own, unless the caller shares one).
        cancel_release: cancels a release a promotion gate's approval starts, before it is known to have started.
        poll_interval: seconds between status polls of a started run.
        base_dir: where relative job files are found (the configuration's folder).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        ingest: Ingest,
        clock: Clock,
        *,
        ml: MLService | None = None,
        pipelines: PipelineService | None = None,
        poll_interval: float = 5.0,
        poll_limit: timedelta = timedelta(hours=12),
        base_dir: Path | None = None,
        policy: Policy | None = None,
        cancel_release: ReleaseCanceler | None = None,
    ) -> None:
        self.settings = settings
        self.cancel_release = cancel_release
        self.policy = policy or Policy(settings)
        self.store = store
        self.ingest = ingest
        self.clock = clock
        self.ml = ml
        self.pipelines = pipelines
        self.poll_interval = poll_interval
        self.poll_limit = poll_limit
        self.base_dir = base_dir or Path.cwd()
        self.background = BackgroundWork(
            log, "background command work", clock=clock, store_trouble=lambda error: self.store.unavailable(error)
        )
        self.start_cut_off = START_CUT_OFF
        self.lookup_seconds = INTERACTIVE_SECONDS  # the most a command's answer waits for Azure ML
        self._starting: set[int] = set()  # runs this process is starting now
        self._unplannable: set[int] = set()  # unfinished runs whose command is no longer configured
        self._polling: set[int] = set()  # started runs this process polls now (their polls record their ends)
        self._canceling: set[int] = set()  # runs a cancel from chat is on its way for (it records their ends)
        # how the polled runs ended as their services' completion events say: recorded if the polling stops first
        self._ended_while_polled: dict[int, CommandRunState] = {}
        self._pipelines = {app.integration.pipeline for app in settings.apps.values()} | {
            model.retrain.azure_devops_pipeline.pipeline
            for model in settings.models.values()
            if model.retrain is not None and model.retrain.azure_devops_pipeline is not None
        }  # the pipelines whose runs a command starts

    def register(self, chat: ChatHandler) -> None:
        chat.add_command("retrain", self.retrain)
        chat.add_command("integrate", self.integrate)
        chat.add_command("cancel", self.cancel)
        chat.add_command("runs", self.runs)
        chat.add_action("confirm", self.confirmed)
        chat.add_action("decline", self.declined)

    async def close(self) -> None:
        await self.background.close()

    async def observe(self, event: DomainEvent) -> None:
        """The ingest observer: a run started from chat that its service says has ended (Azure ML's
        ``RunCompleted`` or failure, Azure DevOps' completed run) is recorded as ended, as a poll would record
        it, where this process no longer polls it: it outlasted :attr:`poll_limit`, its service kept refusing
        polls, or Handoff restarted after its polls' limit. ``runs`` and ``status`` then tell how it ended, as its
        card does. Quick: the store is looked at in the background."""
        if event.event_id.startswith(POLLED_EVENT_PREFIX):
            return  # Handoff's own poll, which records the end itself
        if isinstance(event, TrainingRunFinished) and event.outcome is not None and event.run_id.startswith(JOB_PREFIX):
            ml_ended = RunStatus(event.run_id, "completed", event.outcome, event.web_url)
            # (tried again while the store is out of reach: no poll records the end of a run no longer polled)
            self.background.spawn_retried(lambda: self._ended_in_service("azure-ml", None, ml_ended))
        elif (
            isinstance(event, RunStateChanged)
            and event.state.lower() == "completed"
            and (pipeline := self._pipeline_of(event)) is not None
        ):
            ended = RunStatus(event.run.run_id, "completed", event.outcome or "failed", event.web_url)
            self.background.spawn_retried(lambda: self._ended_in_service("azure-devops", pipeline, ended))

    def _pipeline_of(self, event: RunStateChanged) -> str | None:
        """The pipeline, of those whose runs a command starts, that ``event`` is a run of; None for any other."""
        return next((p for p in (event.run.pipeline_name, event.run.pipeline_id) if p in self._pipelines), None)

    async def _ended_in_service(self, service: str, pipeline: str | None, status: RunStatus) -> None:
        """Record the end of the started run from chat that ``service`` runs as ``status.run_id`` (a run of
        ``pipeline``, for Azure DevOps), unless this process polls it; a poll or a cancel that recorded its end
        first (on any replica) wins."""
        state = ended_state(status)
        assert state is not None
        for run in await self.store.unfinished_command_runs(self.clock.now() - ENDED_BY_EVENTS):
            if (
                run.platform not in ("slack", "teams")
                or run.state is not CommandRunState.STARTED
                or run.backend_run_id != status.run_id
                or run.details.get("service") != service
                or (pipeline is not None and run.details.get("pipeline") != pipeline)
            ):
                continue
            if run.id in self._polling:  # its poll records the end (or a cancel from chat on its way does)
                self._ended_while_polled[run.id or 0] = state
                continue
            if await self.store.update_command_run(
                run.id or 0, state, self.clock.now(), expected=CommandRunState.STARTED
            ):
                log.info("run %s: %s says %s ended (%s)", run.id, service, status.run_id, state.value)

    def _spawn(self, work: Awaitable[None]) -> None:
        self.background.spawn(work)

    async def resume(self) -> None:
        """Take up the runs an earlier process left unfinished; called once as Handoff starts.

        A started run is polled again, the first time at once (it may have ended meanwhile), until it
        ends. The runs whose start was cut off are then handled as :meth:`sweep` does. Model handoff's
        own integrations are left to :meth:`ModelHandoff.sweep`.
        """
        unfinished = await self._unfinished()
        for run, plan, conversation in unfinished:
            if run.state is CommandRunState.STARTED and run.backend_run_id:
                name = str(run.details.get("name") or run.backend_run_id)
                started = StartedRun(run.backend_run_id, name, str(run.details.get("url") or "") or None)
                log.info("run %s: polling %s again after a restart", run.id, run.backend_run_id)
                self._spawn(self._watch(run, plan, started, conversation, resumed=True))
        self._take_up_cut_off(unfinished)

    async def sweep(self) -> None:
        """Handle the runs whose start was cut off before its id was recorded (Handoff stopped), or whose start's
        answer was lost; every minute.

        Starting again is safe for an Azure ML job, submitted under its run's own name: a second submit
        finds the job if the first got through, and the run goes on from there. An Azure DevOps pipeline
        run has no such name, and starting it again could run it twice: once it is :attr:`start_cut_off`
        old (a younger one may be another replica's, still starting), a cut-off one is recorded as failed
        and its conversation is told to look at the pipeline's runs; one whose answer was lost (its
        conversation was told) is recorded as failed once it no longer holds its command. So is an Azure
        ML run that Azure ML has not answered for by then.
        """
        self._take_up_cut_off(await self._unfinished(CommandRunState.REQUESTED))

    def _take_up_cut_off(self, unfinished: list[tuple[CommandRun, Plan, ConversationAddress]]) -> None:
        now = self.clock.now()
        for run, plan, conversation in unfinished:
            if run.state is not CommandRunState.REQUESTED or run.id in self._starting:
                continue
            if run.details.get("start_unknown"):  # told already; it holds its command until its window is over
                if now - run.created_at >= max(self.start_cut_off, self._dedupe_window(run)):
                    self._starting.add(run.id or 0)
                    self._spawn(self._close_unknown(run))
                elif plan.named is not None:
                    log.info("run %s: submitting %s again, the answer to its start was lost", run.id, plan.named(run))
                    self._begin(run, plan, conversation)
                continue
            if plan.named is not None:
                log.info("run %s: submitting its Azure ML job again, its start was cut off", run.id)
                self._begin(run, plan, conversation)
            elif now - run.created_at >= self.start_cut_off:
                self._starting.add(run.id or 0)  # until the store says failed
                self._spawn(self._cut_off(run, plan, conversation))

    async def _unfinished(
        self, only: CommandRunState | None = None
    ) -> list[tuple[CommandRun, Plan, ConversationAddress]]:
        """The unfinished runs started from a chat (those in state ``only``), with their plans and conversations."""
        found = []
        for run in await self.store.unfinished_command_runs(self.clock.now() - self.poll_limit):
            if run.platform not in ("slack", "teams") or (only is not None and run.state is not only):
                continue  # (a run without a platform was started by model handoff, not from a chat)
            plan = await self._plan_of(run)
            if plan is not None:
                platform: Platform = "slack" if run.platform == "slack" else "teams"
                found.append((run, plan, ConversationAddress(platform, run.conversation)))
        return found

    async def _plan_of(self, run: CommandRun) -> Plan | None:
        """The plan of a recorded run, from its command; None if the configuration no longer has it."""
        try:
            command = parse(run.command)
        except UsageError:
            command = None
        plan: Plan | Reply | None = None
        if command is not None and command.verb in ("retrain", "integrate"):
            if command.verb == "retrain":
                plan = await self._plan_retrain(command, recorded=True)
            else:
                plan = self._plan_integrate(command)
        if not isinstance(plan, Plan):
            if run.id not in self._unplannable:  # said once, not at every sweep
                self._unplannable.add(run.id or 0)
                reason = plan.text if plan else "not a command that starts work"
                log.warning("run %s (%s) cannot be taken up: %s", run.id, run.command, reason)
            return None
        return plan

    def _dedupe_window(self, run: CommandRun) -> timedelta:
        """How long ``run`` holds its command: its command's ``dedupe_window``."""
        return self._rule(run.command.split(maxsplit=1)[0] if run.command else "").dedupe_window

    async def _close_unknown(self, run: CommandRun) -> None:
        """Record a run whose start is not known as failed, once it no longer holds its command (its
        conversation was told when its start went wrong)."""
        try:
            await self.store.update_command_run(
                run.id or 0, CommandRunState.FAILED, self.clock.now(), expected=CommandRunState.REQUESTED
            )
        finally:
            self._starting.discard(run.id or 0)

    async def _cut_off(self, run: CommandRun, plan: Plan, conversation: ConversationAddress) -> None:
        problem = (
            "Handoff stopped while starting this run, so it cannot tell whether Azure DevOps started it. "
            "Look at the pipeline's runs before you ask again."
        )
        try:
            cut_off = await self.store.update_command_run(
                run.id or 0,
                CommandRunState.FAILED,
                self.clock.now(),
                details={**run.details, "error": problem, "cut_off": True},
                expected=CommandRunState.REQUESTED,
            )
        finally:
            self._starting.discard(run.id or 0)
        if not cut_off:
            return  # it started meanwhile, or another replica's sweep told its channel
        card = Card(title=f"Not known whether it started: {plan.summary}", status=Status.FAILED, summary=problem)
        await self._tell(conversation, f"run:{run.id}", card)

    # --- the commands ------------------------------------------------------------------------------

    async def retrain(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        command = with_configured_target(
            command, (name for name, model in self.settings.models.items() if model.retrain)
        )
        plan = await self._plan_retrain(command)
        if isinstance(plan, Reply):
            return await self._not_started(request, command, plan)
        if "dry-run" in command.flags:
            return Reply(f"Dry run: {plan.summary}. Nothing was started.")
        return await self._start_or_confirm(request, command, plan)

    async def integrate(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        command = with_configured_target(command, self.settings.apps)
        named = await self._with_latest_version(command)
        if isinstance(named, Reply):
            return await self._not_started(request, command, named)
        looked_up = named is not command  # the version is the one Azure ML just named: it has it
        command = named  # recorded so: a confirmation, a restart, `runs` and `cancel` see the version it ran
        plan = self._plan_integrate(command)
        if isinstance(plan, Reply):
            return await self._not_started(request, command, plan)
        if not looked_up and (missing := await self._missing_model_version(command.options.get("model", ""))):
            return await self._not_started(request, command, Reply(self._not_consumed(command) + missing))
        return await self._start_or_confirm(request, command, plan)

    async def _not_started(self, request: CommandRequest, command: ParsedCommand, answer: Reply) -> Reply:
        """``answer``, why ``command`` starts nothing, recorded in the audit log as the command's outcome."""
        await self._audit(request, command, f"not started: {answer.text}")
        return answer

    async def _with_latest_version(self, command: ParsedCommand) -> ParsedCommand | Reply:
        """``integrate <app>`` without a version (or with ``model=<name>:latest``) as the command for the version
        Azure ML calls the latest now: ``model=<name>:<version>``, so the run, its card and the model handoff
        name the version it tests. Where Azure ML does not say which that is, nothing starts (the answer says
        so and how to name the version): a run for an unnamed version would give a verdict no version's
        promotion gate can take. Without Azure ML, without a model the app is known to consume, or with a
        version its configured parameters fix, the command stays as it is.
        """
        app = self.settings.apps.get(command.target or "")
        asked = command.options.get("model", "")
        name, colon, version = asked.partition(":")
        if app is None or self.ml is None or (asked and (not colon or version.lower() != "latest")):
            return command
        parameters = app.integration.parameters
        if not asked and MODEL_VERSION_PARAMETER in parameters:
            return command
        model = name or str(parameters.get(MODEL_NAME_PARAMETER) or "") or self._consumed_model(command.target or "")
        if not model:
            return command
        try:
            latest = await answered_within(self.ml.latest_model_version(model), "Azure ML", self.lookup_seconds)
        except (ServiceRefused, ServiceUnavailable) as error:
            log.info(
                "integrate %s: Azure ML did not say which version of %s is the latest (%s)",
                command.target,
                model,
                error,
            )
            return Reply(
                f"Azure ML did not say which version of {model} is the latest ({error}), so nothing was started. "
                f"Name the version, for example `integrate {command.target} model={model}:<version>`."
            )
        return replace(command, options={**command.options, "model": f"{model}:{latest}"})

    def _consumed_model(self, app: str) -> str | None:
        """The one model the configuration has ``app`` consume (its ``model``, else the one model listing it
        among its consumers); None when that is not one model."""
        configured = self.settings.apps[app].model
        if configured:
            return configured
        consumed = [name for name, model in self.settings.models.items() if app in model.consumers]
        return consumed[0] if len(consumed) == 1 else None

    def _not_consumed(self, command: ParsedCommand) -> str:
        """``app-y consumes model-x; `` when the model ``integrate`` names is not one the configuration has the app
        consume (a mistyped model name rather than a missing version, most likely); else nothing."""
        app = command.target or ""
        model = command.options.get("model", "").partition(":")[0]
        consumed = [self.settings.apps[app].model or ""] + [
            name for name, settings in self.settings.models.items() if app in settings.consumers
        ]
        consumed = list(dict.fromkeys(name for name in consumed if name))
        if not consumed or model in consumed:
            return ""
        return f"{app} consumes {' and '.join(consumed)}, not {model}; "

    async def _missing_model_version(self, model: str) -> str | None:
        """Why ``model`` (``name:version``) cannot be integrated: Azure ML says it has no such version.

        Only Azure ML's own answer refuses: without Azure ML, or when it does not answer, the run starts
        as asked (a model registry that is down does not hold up integrations).
        """
        name, _, version = model.partition(":")
        if self.ml is None or not version or version.lower() == "latest":
            return None
        try:
            if await answered_within(self.ml.has_model_version(name, version), "Azure ML", self.lookup_seconds):
                return None
        except (ServiceRefused, ServiceUnavailable) as error:
            log.info("integrate against %s: Azure ML could not say whether it has it (%s)", model, error)
            return None
        return f"{name} has no version {version} in Azure ML, so nothing was started."

    async def _plan_retrain(self, command: ParsedCommand, *, recorded: bool = False) -> Plan | Reply:
        """What ``retrain`` starts, or why it starts nothing. ``recorded``: the plan of a run recorded before (to
        follow it), whose options are not refused again: a run started before Handoff refused them goes on."""
        name = command.target or ""
        model = self.settings.models.get(name)
        if model is None or model.retrain is None:
            retrainable = [n for n, m in self.settings.models.items() if m.retrain]
            known = ", ".join(retrainable) or "none configured"
            hint = did_you_mean(name, retrainable)
            return Reply(f"There is no retraining set up for `{name}`.{hint} Models you can retrain: {known}.")
        job = model.retrain.azure_ml_job
        if job is not None:
            if self.ml is None:
                return Reply("Azure ML is not connected to this Handoff, so it cannot retrain models.")
            params = {**job.params, **{k: v for k, v in command.options.items()}}
            if "data" in command.options:
                asset, _, version = command.options["data"].partition(":")
                if not asset or not version:  # Azure ML reads `azureml:<name>` as no asset at all
                    return Reply("Write the data asset as name:version, for example `data=lake-data:8`.")
                if not recorded and await asyncio.to_thread(has_data_input, job.job_file, self.base_dir) is False:
                    return Reply(
                        f"The Azure ML job file {job.job_file} has no data input `{DATA_INPUT}` (with a type and a "
                        "path) for `data=` to replace, so nothing was started. Retrain without `data=`, or give the "
                        "job that input."
                    )
                # the job's data input keeps its type (uri_folder, mltable...) and reads the asset's version
                params[f"inputs.{DATA_INPUT}.path"] = f"azureml:{command.options['data']}"
                params.pop("data")
            title = await asyncio.to_thread(job_title, job.job_file, self.base_dir)
            experiment = await asyncio.to_thread(job_experiment, job.job_file, self.base_dir, params)
            shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
            plan = self._azure_ml_plan(
                f"Retrain {name} with the Azure ML job {title}" + (f" ({shown})" if shown else ""),
                name,
                job.job_file,
                params,
                experiment,
            )
        else:
            pipeline = model.retrain.azure_devops_pipeline
            assert pipeline is not None
            if command.options and not recorded:
                return Reply(_pipeline_takes_no_options(name, pipeline.pipeline, command, pipeline.parameters))
            planned = self._pipeline_plan(
                f"Retrain {name} with the Azure DevOps pipeline {pipeline.pipeline}",
                name,
                pipeline.project,
                pipeline.pipeline,
                pipeline.branch,
                dict(pipeline.parameters),
            )
            if planned is None:
                return Reply("Azure DevOps is not connected to this Handoff, so it cannot start pipelines.")
            plan = planned
        return plan

    def _plan_integrate(self, command: ParsedCommand) -> Plan | Reply:
        name = command.target or ""
        app = self.settings.apps.get(name)
        if app is None:
            known = ", ".join(self.settings.apps) or "none configured"
            return Reply(f"There is no app called `{name}`.{did_you_mean(name, self.settings.apps)} Apps: {known}.")
        target = app.integration
        parameters = dict(target.parameters)
        if model := command.options.get("model"):
            model_name, _, version = model.partition(":")
            if not model_name.strip() or not version.strip():
                missing = "name" if not model_name.strip() else "version"
                return Reply(
                    f"`model={model}` names no model {missing}. "
                    "Write the model as name:version, for example `model=model-x:8`."
                )
            parameters.update(modelName=model_name, modelVersion=version)
        branch = command.options.get("branch") or target.branch
        what = f" against {command.options['model']}" if "model" in command.options else ""
        plan = self._pipeline_plan(
            f"Run {target.pipeline} for {name}{what}", name, target.project, target.pipeline, branch, parameters
        )
        if plan is None:
            return Reply("Azure DevOps is not connected to this Handoff, so it cannot start pipelines.")
        return plan

    async def cancel(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        number = run_number(command.target)
        if number is None:
            return Reply(
                f"`cancel` takes a run number, such as `cancel 12`, and `{command.target}` is none. "
                "`runs` lists the runs Handoff started, with their numbers."
            )
        run_id = str(number)
        found = await self.store.get_command_run(number) if may_be_run(number) else None
        if found is None or found.idempotency_key.startswith(CONFIRMATION_KEY_PREFIX):
            return Reply(f"Handoff started no run {run_id}. `runs` lists the runs it started.")
        if refusal := await self._cancel_refused(request, command, found):
            return refusal
        if found.backend_run_id is None and _unstarted_release(found) and self.cancel_release is not None:
            said = await self.cancel_release(found, _canceled_by(request.user))
            if said is not None:
                outcome = f"canceled run {run_id} ({described(found)}) before it was known to have started"
                await self._audit(request, command, f"{outcome}, asked for by {asker(found)}")
                return Reply(f"Canceled run {run_id} ({described(found)}). {said}")
            found = await self.store.get_command_run(number) or found  # it started or ended meanwhile
        if found.backend_run_id is None:
            return Reply(not_started(found))
        if found.state is not CommandRunState.STARTED:
            return Reply(f"Run {run_id} ({described(found)}) is no longer running ({found.state.value}).")
        self._canceling.add(found.id or 0)
        try:
            return await self._cancel_started(request, command, found, found.backend_run_id)
        finally:
            self._canceling.discard(found.id or 0)

    async def _cancel_started(
        self, request: CommandRequest, command: ParsedCommand, found: CommandRun, backend_run_id: str
    ) -> Reply:
        """Cancel ``found``, started as ``backend_run_id``, in its service, and record who canceled it (its polls
        meanwhile leave its end to this: one that saw it canceled first would have the person told it had ended)."""
        run_id = str(found.id)
        service = found.details.get("service")
        try:
            if service == "azure-ml" and self.ml is not None:
                await self.ml.cancel_job(backend_run_id)
            elif service == "azure-devops" and self.pipelines is not None:
                await self.pipelines.cancel_run(str(found.details.get("project", "")), backend_run_id)
            else:
                return Reply(f"Handoff is not connected to the service that runs {run_id}, so it cannot cancel it.")
        except (ServiceRefused, ServiceUnavailable) as error:
            return Reply(f"Could not cancel run {run_id}: {error}")
        now = self.clock.now()
        by = request.user.name or request.user.display
        canceled = await self.store.update_command_run(
            found.id or 0,
            CommandRunState.CANCELED,
            now,
            details={**found.details, "canceled_by": _canceled_by(request.user), "canceled_at": now.isoformat()},
            expected=found.state,
        )
        if not canceled:  # it ended (or someone canceled it) while the cancel was on its way
            ended = await self.store.get_command_run(found.id or 0)
            return Reply(f"Run {run_id} ({described(found)}) had already ended: {standing(ended or found)}.")
        await self._audit(request, command, f"canceled run {run_id} ({described(found)}), asked for by {asker(found)}")
        await self._show_canceled(found, by)
        told = await self._tell_canceled(found, request.user)
        answer = f"Canceling run {run_id} ({described(found)})."
        # the run's card tells its channel who canceled it; an answer there too would say it twice
        return Reply(f"{answer} Its card's thread says you canceled it." if told else answer)

    async def _cancel_refused(self, request: CommandRequest, command: ParsedCommand, run: CommandRun) -> Reply | None:
        """The answer to someone who may not cancel ``run`` (recorded, as every refusal is); None when they may."""
        verb = run.command.split(maxsplit=1)[0] if run.command else ""
        spec = COMMANDS_BY_VERB.get(verb)
        if run.idempotency_key.startswith(RELEASE_KEY_PREFIX):
            verdict = await self._may_cancel_release(request.user, run)
        elif spec is None:
            return None  # (not a command that starts work: nothing to cancel, as the checks after it say)
        else:
            verdict = self.policy.may_cancel(request.user, spec, run, asker(run))
        if verdict.allowed:
            return None
        await self._audit(request, command, f"refused: {verdict.reason}")
        return Reply(f"Sorry, you can't cancel run {run.id} ({described(run)}). {verdict.reason}")

    async def _may_cancel_release(self, user: ChatUser, run: CommandRun) -> Verdict:
        """Whether ``user`` may cancel ``run``, a release Handoff started on approving a promotion gate: the person
        whose approval started it, and anyone who may decide that gate (its policy's approver roles)."""
        if Policy.is_person(user, run.actor):
            return Verdict.allow()
        gate = await self.store.get_gate(str(run.details.get("gate", "")))
        if gate is not None and self.policy.in_approver_role(user, gate):
            return Verdict.allow()
        roles = ", ".join(self.policy.approver_roles(gate)) if gate is not None else ""
        who = f"{asker(run)}, whose approval started it," + (f" or people in {roles}" if roles else "")
        return Verdict.refuse(f"Only {who} may cancel it.")

    async def _show_canceled(self, run: CommandRun, by: str) -> None:
        """Put who canceled ``run`` on its card: an Azure DevOps run's or an Azure ML job's card reads canceled, by
        ``by``, from now on (the services' own events of the run do not say who canceled it)."""
        canceling = await self._canceling_event(run, by)
        if canceling is None:
            return
        try:
            await self.ingest.accept(_by_asker(canceling, run))
        except IngestFailed as error:  # the run is canceled all the same; its card and thread still tell it
            log.warning("run %s: could not show who canceled it on its card: %s", run.id, error)

    async def _canceling_event(self, run: CommandRun, by: str) -> DomainEvent | None:
        """Handoff's own event of ``run`` being canceled by ``by``, drawn as its card is drawn; None when its card
        cannot be told."""
        if not run.backend_run_id:
            return None
        url = str(run.details.get("url") or "") or None
        started = StartedRun(run.backend_run_id, str(run.details.get("name") or run.backend_run_id), url)
        event_id = f"handoff-cancel:{run.backend_run_id}"
        project, pipeline = run.details.get("project"), run.details.get("pipeline")
        if run.details.get("service") == "azure-devops" and project and pipeline:
            shown = pipeline_run_event(
                organization_name(self.settings), self.clock.now(), str(project), str(pipeline), None, started
            )
            return replace(shown, event_id=event_id, state="canceling", canceled_by=by)
        if run.details.get("service") == "azure-ml" and (plan := await self._plan_of(run)) is not None:
            polled = plan.progress_event(started, RunStatus(run.backend_run_id, "canceling", None, url))
            if isinstance(polled, TrainingRunFinished):
                return replace(polled, event_id=event_id, canceled_by=by)
        return None

    async def _tell_canceled(self, run: CommandRun, by: ChatUser) -> bool:
        """Tell the thread of the run's card, wherever it is shown, who canceled the run (calling on the person
        who asked for it when someone else did); False when no card of the run is shown anywhere."""
        name = by.name or by.display
        card = Card(title=f"Canceled by {name}", status=Status.CANCELED, summary=f"{name} canceled run {run.id}.")
        asked_by = run.details.get("asked_by")
        if isinstance(asked_by, dict) and asked_by.get("email") and not Policy.is_person(by, str(asked_by["email"])):
            who = str(asked_by.get("name") or asked_by["email"])
            card = replace(
                card,
                summary=f"{name} canceled run {run.id}, which {who} asked for.",
                mentions=(Mention(who, str(asked_by["email"])),),
            )
        key = await self._run_card_key(run)
        state = await self.store.get_card_state(key) if key is not None else None
        shown = state.state.get("conversations", []) if state is not None else []
        if key is None or state is None or not shown:
            return False
        quiet = {tuple(a) for a in state.state.get("quiet", [])}
        replies = [
            NewDelivery(
                ConversationAddress("teams" if p == "teams" else "slack", c),
                key,
                {"op": "reply", "card": (card.naming_only() if (p, c) in quiet else card).to_json()},
            )
            for p, c in shown
        ]
        await self.store.enqueue(replies, self.clock.now())
        if self.ingest.on_enqueued:
            self.ingest.on_enqueued()
        return True

    async def _run_card_key(self, run: CommandRun) -> str | None:
        """The grouping key of a started run's living card; None before it started, or if it cannot be told. An
        Azure DevOps run's card is known by the run itself (a release Handoff started has no command to plan)."""
        project, pipeline = run.details.get("project"), run.details.get("pipeline")
        if run.details.get("service") == "azure-devops" and run.backend_run_id and project and pipeline:
            return run_card_key(organization_name(self.settings), str(project), str(pipeline), run.backend_run_id)
        plan = await self._plan_of(run)
        return _card_key(run, plan) if plan is not None else None

    async def _audit(self, request: CommandRequest, command: ParsedCommand, outcome: str) -> None:
        await self.store.append_audit(command_entry(request, command.canonical, outcome, self.clock.now()))

    async def _audit_run(self, run: CommandRun, outcome: str) -> None:
        """Record how the start of ``run`` went, under the person who asked for it, as their command."""
        platform: Platform = "teams" if run.platform == "teams" else "slack"
        asked = CommandRequest(ChatUser(platform, run.actor), ConversationAddress(platform, run.conversation), "")
        try:
            await self.store.append_audit(command_entry(asked, run.command, outcome, self.clock.now()))
        except Exception as error:  # the run goes on; the log says what the audit log misses
            log.warning("run %s: could not record in the audit log that %s: %s", run.id, outcome, error)

    async def runs(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        target = command.target
        found = await self.store.list_command_runs(target, RUNS_SHOWN)
        of = f" of {target}" if target else ""
        if not found:
            return Reply(f"Handoff has started no runs{of} yet. `retrain <model>` or `integrate <app>` starts one.")
        lines = [f"The latest runs{of} Handoff started, newest first:"]
        lines += [run_line(run) for run in found]
        return Reply("\n".join(lines))

    # --- confirmation ------------------------------------------------------------------------------

    def _rule(self, verb: str) -> CommandPolicySettings:
        return self.settings.commands.get(verb) or CommandPolicySettings()

    async def _start_or_confirm(self, request: CommandRequest, command: ParsedCommand, plan: Plan) -> Reply:
        rule = self._rule(command.verb)
        if not rule.confirm:
            started = await self._start(request, command, plan)
            assert started is not None  # (only a confirmation can no longer wait)
            return started[0]
        # a run of the same command that still counts is told at once: confirming would start nothing
        if (live := await self._live_run(request, command)) is not None:
            return Reply(already_asked(live, request, live.created_at + self._dedupe_window(live)))
        now = self.clock.now()
        pending = _requested(
            request,
            command,
            plan,
            f"{CONFIRMATION_KEY_PREFIX}{request.user.key}:{command.canonical}:{now.timestamp()}",
            now,
            {
                "expires": (now + rule.confirm_expires).isoformat(),
                "summary": plan.summary,
                "in_chat": request.in_chat,  # where the run's card will be, for the answer to Confirm
                **_asked_by(request.user),
            },
        )
        run, _ = await self.store.start_command_run(pending, timedelta(0))
        await self._audit(request, command, f"asked to confirm (run {run.id})")
        minutes = int(rule.confirm_expires.total_seconds() // 60)
        card = Card(
            title=f"Confirm: {plan.summary}",
            status=Status.WAITING,
            summary=f"Nothing starts until you confirm. This expires in {minutes} minutes.",
            actions=(
                Action("confirm", "Confirm", {"run": str(run.id)}, style="primary"),
                Action("decline", "Cancel", {"run": str(run.id)}),
            ),
        )
        return Reply(card.text, card=card)

    async def _live_run(self, request: CommandRequest, command: ParsedCommand) -> CommandRun | None:
        """The run of ``command`` by the same person that a new one would be (:meth:`_start` keeps one run per
        key): still starting or running, and asked for within the command's ``dedupe_window``, on this platform
        or, by the same email, on another."""
        key = _dedupe_key(request, command)
        since = self.clock.now() - self._rule(command.verb).dedupe_window
        same = [
            run
            for run in await self.store.unfinished_command_runs(since)
            if run.idempotency_key == key
            or (run.platform in ("slack", "teams") and run.command == command.canonical and _same_asker(request, run))
        ]
        return same[-1] if same else None

    async def _pending_confirmation(self, request: ActionRequest) -> tuple[CommandRun | None, str]:
        run_id = request.value.get("run", "")
        number = run_number(run_id)
        run = await self.store.get_command_run(number) if number is not None and may_be_run(number) else None
        if run is not None and run.details.get("confirmed_at"):
            return None, f"This was already confirmed: it is run {run.id} (`cancel {run.id}` cancels it)."
        if run is None or not run.idempotency_key.startswith(CONFIRMATION_KEY_PREFIX):
            return None, "This confirmation is not known."
        if not Policy.asked_for(request.user, run):
            return None, f"Only {asker(run)}, who asked for it, can confirm this."
        if isinstance(same_as := run.details.get("same_as"), int):
            return None, f"This was already asked for: run {same_as}."
        if run.state is not CommandRunState.REQUESTED:
            return None, f"This was already {run.state.value}."
        if self.clock.now() >= datetime.fromisoformat(run.details["expires"]):
            await self.store.update_command_run(
                run.id or 0, CommandRunState.CANCELED, self.clock.now(), expected=CommandRunState.REQUESTED
            )
            return None, "This confirmation has expired; run the command again."
        return run, ""

    async def confirmed(self, request: ActionRequest) -> ActionResult:
        """Confirm: the confirmation becomes the run, under the number its buttons carry.

        A second click, on this replica or another, finds the confirmation already taken and starts nothing;
        a run of the same command by the same person that is still starting or running is told instead.
        """
        pending, problem = await self._pending_confirmation(request)
        if pending is None:
            return ActionResult(False, problem)
        command = parse(pending.command)
        plan = await self._plan_retrain(command) if command.verb == "retrain" else self._plan_integrate(command)
        if isinstance(plan, Reply):
            await self.store.update_command_run(
                pending.id or 0,
                CommandRunState.CANCELED,
                self.clock.now(),
                details={**pending.details, "error": plan.text},
                expected=CommandRunState.REQUESTED,
            )
            return ActionResult(False, plan.text)
        asked = CommandRequest(
            request.user, request.conversation, pending.command, in_chat=bool(pending.details.get("in_chat"))
        )
        outcome: Outcome = asyncio.get_running_loop().create_future()
        started = await self._start(asked, command, plan, outcome, confirmation=pending)
        if started is None:
            return ActionResult(False, "This was already handled.")
        reply, new = started
        if not new:
            card = Card(title=f"Already asked: {plan.summary}", status=Status.INFO, summary=reply.text)
            return ActionResult(True, reply.text, card)
        card = Card(title=f"Confirmed: {plan.summary}", status=Status.RUNNING, summary=reply.text)
        # once the start is done, this very card says the run started (or, refused, turns Failed)
        return ActionResult(True, reply.text, card, later=outcome)

    async def declined(self, request: ActionRequest) -> ActionResult:
        run, problem = await self._pending_confirmation(request)
        if run is None:
            return ActionResult(False, problem)
        if not await self.store.update_command_run(
            run.id or 0, CommandRunState.CANCELED, self.clock.now(), expected=CommandRunState.REQUESTED
        ):
            return ActionResult(False, "This was already handled.")  # confirmed or declined meanwhile
        await self._audit_run(run, f"declined (run {run.id}); nothing was started")
        card = Card(title=f"Canceled: {run.details.get('summary', run.command)}", status=Status.CANCELED)
        return ActionResult(True, "Canceled; nothing was started.", card)

    # --- starting ----------------------------------------------------------------------------------

    async def _start(
        self,
        request: CommandRequest,
        command: ParsedCommand,
        plan: Plan,
        outcome: Outcome | None = None,
        *,
        confirmation: CommandRun | None = None,
    ) -> tuple[Reply, bool] | None:
        """Record the run and start it in the background; the answer, and whether a run was started.

        ``outcome``, if given, learns how the start went instead of the conversation (see :meth:`_begin`).
        ``confirmation``, if given, becomes the run (it keeps its number); None if it no longer waits.

        The same command from the same person starts one run while the first is still starting or
        running (for at most the command's ``dedupe_window``): a double click, a retried request. Once
        that run has ended, however it ended, the command starts a new one.
        """
        now = self.clock.now()
        key = _dedupe_key(request, command)
        # (where the command was asked: where its card will be, for the confirmation's settled face)
        details: JsonObject = {"summary": plan.summary, "in_chat": request.in_chat, **_asked_by(request.user)}
        asked = _requested(request, command, plan, key, now, details)
        window = self._rule(command.verb).dedupe_window
        live = await self._live_run(request, command)
        if live is not None and live.idempotency_key != key:  # the same person's run, asked on another platform
            if confirmation is not None and not await self.store.update_command_run(
                confirmation.id or 0,
                CommandRunState.CANCELED,
                now,
                details={**confirmation.details, "same_as": live.id},
                expected=CommandRunState.REQUESTED,
            ):
                return None
            run, new = live, False
        elif confirmation is None:
            run, new = await self.store.start_command_run(asked, window, until_ended=True)
        else:
            asked = replace(asked, details={**asked.details, "confirmed_at": now.isoformat()})
            found, new = await self.store.confirm_command_run(confirmation.id or 0, asked, window, until_ended=True)
            if found is None:
                return None
            run = found
        if not new:
            await self._audit(request, command, f"already asked for: run {run.id}; nothing was started")
            return Reply(already_asked(run, request, run.created_at + window)), False
        await self._audit(request, command, f"{'confirmed' if confirmation else 'asked for'} run {run.id}")
        # the answer to a command without confirmation turns into the run's settled face once it started, as a
        # confirmation does (a refusal is told on a card of its own, which shows wherever the answer went)
        answer: Outcome | None = asyncio.get_running_loop().create_future() if outcome is None else None
        self._begin(run, plan, request.conversation, outcome, answer)
        reply = Reply(
            f"Starting: {plan.summary}. Its card will follow {_card_place(request)} (run {run.id}).",
            visibility=Visibility.CHANNEL,
            later=answer,
        )
        return reply, True

    def _begin(
        self,
        run: CommandRun,
        plan: Plan,
        conversation: ConversationAddress,
        outcome: Outcome | None = None,
        answer: Outcome | None = None,
    ) -> None:
        """Start the run in the background (marked as starting here at once, so that :meth:`sweep` leaves it).

        A start the service refuses is told to the conversation on a card of its own; with ``outcome``
        (a confirmation card, which the adapter turns into it) it is told there instead. ``outcome`` gets
        the card's settled face once the run has started (:func:`started_card`): the run's own card
        carries how it stands from then on. ``answer`` (the command's answer, without confirmation) gets that
        face too, and None if the run did not start.
        """
        self._starting.add(run.id or 0)
        self._spawn(self._execute(run, plan, conversation, outcome, answer))

    async def _execute(
        self,
        run: CommandRun,
        plan: Plan,
        conversation: ConversationAddress,
        outcome: Outcome | None,
        answer: Outcome | None = None,
    ) -> None:
        try:
            await self._start_and_watch(run, plan, conversation, outcome, answer)
        finally:
            self._starting.discard(run.id or 0)
            for face in (outcome, answer):
                if face is not None and not face.done():
                    face.set_result(None)

    async def _start_and_watch(
        self,
        run: CommandRun,
        plan: Plan,
        conversation: ConversationAddress,
        outcome: Outcome | None,
        answer: Outcome | None = None,
    ) -> None:
        # a run whose start is not known (its first answer was lost) stays so whatever this try says: it may run
        unknown = bool(run.details.get("start_unknown"))
        try:
            started = await plan.start(run)
        except ServiceUnavailable as error:
            if error.may_have_acted or unknown:
                await self._start_unknown(run, plan, conversation, outcome, str(error))
            else:
                await self._not_begun(run, plan, conversation, outcome, str(error))
            return
        except ServiceRefused as error:
            if unknown:
                await self._start_unknown(run, plan, conversation, outcome, str(error))
            else:
                await self._not_begun(run, plan, conversation, outcome, str(error))
            return
        except Exception:  # (a bug, an answer that could not be read): the request may have got through
            log.exception("run %s: starting it failed unexpectedly", run.id)
            await self._start_unknown(run, plan, conversation, outcome, "")
            return
        kept = {k: v for k, v in run.details.items() if k not in _START_UNKNOWN_DETAILS}
        details = {**kept, **plan.backend, "url": started.url, "name": started.name}
        recorded = await self.store.update_command_run(
            run.id or 0, CommandRunState.STARTED, self.clock.now(), started.run_id, details, expected=run.state
        )
        shown = replace(run, state=CommandRunState.STARTED, backend_run_id=started.run_id, details=details)
        for face in (outcome, answer):
            if face is not None and not face.done():
                face.set_result(started_card(shown, plan.summary) if recorded else None)
        if not recorded:  # ended meanwhile (another replica's sweep recorded it cut off): what it told stands
            log.warning("run %s started as %s, but was recorded as ended meanwhile", run.id, started.run_id)
            return
        await self._audit_run(run, f"started run {run.id} as {in_service(shown)}")
        first = RunStatus(started.run_id, "queued", None, started.url)
        await self.ingest.accept(_by_asker(plan.progress_event(started, first), run), also_to=(conversation,))
        if plan.watch is not None:
            await self._watch(run, plan, started, conversation)

    async def _not_begun(
        self, run: CommandRun, plan: Plan, conversation: ConversationAddress, outcome: Outcome | None, error: str
    ) -> None:
        """Record and tell that the service did not start ``run`` (it refused, or was never reached): ``error``."""
        failed = await self.store.update_command_run(
            run.id or 0,
            CommandRunState.FAILED,
            self.clock.now(),
            details={**run.details, "error": error},
            expected=run.state,
        )
        if failed:
            await self._audit_run(run, f"run {run.id} could not start: {error}")
        card = Card(title=f"Could not start: {plan.summary}", status=Status.FAILED, summary=error)
        await self._tell_start(run, conversation, outcome, card)

    async def _start_unknown(
        self, run: CommandRun, plan: Plan, conversation: ConversationAddress, outcome: Outcome | None, error: str
    ) -> None:
        """Record and tell that it is not known whether ``run`` started (the answer to its start was lost).

        The run stays requested, so the same command from the same person starts nothing for the command's
        ``dedupe_window`` (asking again could run it twice). A run its service knows by the name Handoff gave it
        (``plan.named``: an Azure ML job) is started again by :meth:`sweep`, which finds it if the first start
        got through; any other is recorded as failed by :meth:`sweep` once its window is over. A run told so
        before (a second try whose answer was lost too) is left as it is, and not told again.
        """
        if run.details.get("start_unknown"):
            log.info("run %s: still not known whether it started: %s", run.id, error or "unexpected error")
            return
        service, where = where_to_look(plan.backend)
        named: JsonObject = {}
        if plan.named is not None:
            job = plan.named(run)
            named = {"job": job}
            problem = (
                f"Handoff cannot tell yet whether {service} started this run. Within a minute it submits it again as "
                f"the same job, {job}, which finds that job if {service} started it (no second job starts); the "
                "run's card follows then."
            )
        else:
            problem = f"Handoff cannot tell whether {service} started this run. Look at {where} before you ask again."
        problem = f"{error}. {problem}" if error else problem
        recorded = await self.store.update_command_run(
            run.id or 0,
            CommandRunState.REQUESTED,
            self.clock.now(),
            details={**run.details, **plan.backend, **named, "error": problem, "start_unknown": True},
            expected=run.state,
        )
        if not recorded:  # ended meanwhile (another replica's sweep recorded it cut off): what it told stands
            return
        await self._audit_run(run, f"run {run.id}: not known whether it started: {error or 'unexpected error'}")
        card = Card(title=f"Not known whether it started: {plan.summary}", status=Status.FAILED, summary=problem)
        await self._tell_start(run, conversation, outcome, card)

    async def _tell_start(
        self, run: CommandRun, conversation: ConversationAddress, outcome: Outcome | None, card: Card
    ) -> None:
        """Tell how a start that did not go through went: on the confirmation card (``outcome``), else on a card of
        its own in the conversation."""
        if outcome is not None and not outcome.done():
            outcome.set_result(card)
        else:
            await self._tell(conversation, f"run:{run.id}", card)

    async def _watch(
        self,
        run: CommandRun,
        plan: Plan,
        started: StartedRun,
        conversation: ConversationAddress,
        *,
        resumed: bool = False,
    ) -> None:
        """Poll the run until it ends, for at most :attr:`poll_limit`; ``resumed``: the first look is at once,
        and its status is shown.

        A service that keeps refusing to say how the run stands (the job was deleted, the access taken
        away) is asked no more after :data:`REFUSED_POLLS` refusals in a row. The service's own events
        still reach the card, and its completion event ends the run (:meth:`observe`); one that came while
        the run was still polled ends it once the polling stops without having seen the end.
        """
        assert plan.watch is not None
        self._polling.add(run.id or 0)
        try:
            await self._poll(run, plan, started, conversation, resumed=resumed)
        finally:
            self._polling.discard(run.id or 0)
            told = self._ended_while_polled.pop(run.id or 0, None)
        if told is not None:  # (False: the poll recorded the end first, or a cancel did)
            await self.store.update_command_run(run.id or 0, told, self.clock.now(), expected=CommandRunState.STARTED)

    async def _poll(
        self,
        run: CommandRun,
        plan: Plan,
        started: StartedRun,
        conversation: ConversationAddress,
        *,
        resumed: bool,
    ) -> None:
        assert plan.watch is not None
        deadline = self.clock.monotonic() + self.poll_limit.total_seconds()
        last: tuple[str, str | None] = ("", None) if resumed else ("queued", None)
        wait = not resumed
        refused = 0
        while self.clock.monotonic() < deadline:
            if wait:
                await self.clock.sleep(self.poll_interval)
            wait = True
            try:
                status = await plan.watch(started)
            except ServiceRefused as error:
                refused += 1
                if refused >= REFUSED_POLLS:
                    log.warning(
                        "run %s: no more polling of %s (refused %d times): %s", run.id, started.run_id, refused, error
                    )
                    return
                log.info("polling %s: %s", started.run_id, error)
                continue
            except ServiceUnavailable as error:
                log.info("polling %s: %s", started.run_id, error)
                continue
            refused = 0
            if run.id in self._canceling and ended_state(status) is not None:
                continue  # a cancel on its way records the end, and who canceled it: the next look shows it then
            if (status.state, status.result) != last:
                last = (status.state, status.result)
                await self.ingest.accept(_by_asker(plan.progress_event(started, status), run), also_to=(conversation,))
            if (state := ended_state(status)) is not None:
                # (False: a cancel or another replica's poll recorded its end first)
                await self.store.update_command_run(
                    run.id or 0, state, self.clock.now(), expected=CommandRunState.STARTED
                )
                return

    async def _tell(self, conversation: ConversationAddress, key: str, card: Card) -> None:
        await self.store.enqueue(
            [NewDelivery(conversation, key, {"op": "post", "card": card.to_json()})], self.clock.now()
        )
        if self.ingest.on_enqueued:
            self.ingest.on_enqueued()

    # --- plans ---------------------------------------------------------------------------------------

    def _azure_ml_plan(self, summary: str, model: str, job_file: str, params: dict[str, str], experiment: str) -> Plan:
        ml = self.ml
        assert ml is not None
        topic = _workspace_topic(self.settings)

        async def start(run: CommandRun) -> StartedRun:
            return await ml.submit_job(job_file, params, job_name(model, run))

        async def watch(started: StartedRun) -> RunStatus:
            return await ml.job_status(started.run_id)

        def progress(started: StartedRun, status: RunStatus) -> DomainEvent:
            shown = {"queued": "Queued", "running": "Running", "canceling": "CancelRequested"}.get(status.state) or {
                "succeeded": "Completed",
                "failed": "Failed",
                "canceled": "Canceled",
            }.get(status.result or "", "Completed")
            return TrainingRunFinished(
                source="azure-ml",
                event_id=f"handoff-poll:{started.run_id}:{shown}",
                occurred_at=self.clock.now(),
                scope=topic,
                web_url=status.url or started.url,
                run_id=started.run_id,
                experiment_name=experiment,  # as Azure ML's events name it (started.name is the display name)
                status=shown,
                run_tags={"model": model},
            )

        return Plan(summary, model, start, watch, progress, {"service": "azure-ml"}, lambda run: job_name(model, run))

    def _pipeline_plan(
        self, summary: str, target: str, project: str, pipeline: str, branch: str | None, parameters: dict[str, Any]
    ) -> Plan | None:
        pipelines = self.pipelines
        if pipelines is None:
            return None
        organization, for_model = organization_name(self.settings), model_of(parameters)

        async def start(run: CommandRun) -> StartedRun:
            return await pipelines.run_pipeline(project, pipeline, branch, {k: str(v) for k, v in parameters.items()})

        async def watch(started: StartedRun) -> RunStatus:
            return await pipelines.run_status(project, started.run_id)

        def progress(started: StartedRun, status: RunStatus) -> DomainEvent:
            now = self.clock.now()
            return pipeline_run_event(
                organization, now, project, pipeline, branch, started, status, for_model=for_model
            )

        backend: JsonObject = {"service": "azure-devops", "project": project, "pipeline": pipeline}
        return Plan(summary, target, start, watch, progress, backend)


def _pipeline_takes_no_options(model: str, pipeline: str, command: ParsedCommand, parameters: dict[str, str]) -> str:
    """Why ``retrain`` with options starts nothing where an Azure DevOps pipeline retrains the model: the
    configuration gives the pipeline its parameters, and says of none that an option sets it."""
    given = " or ".join(f"`{key}=`" for key in sorted(command.options))
    configured = ", ".join(f"{key}={value}" for key, value in parameters.items())
    runs_with = f"the parameters configured for it ({configured})" if configured else "its own defaults"
    return (
        f"{model} is retrained by the Azure DevOps pipeline {pipeline}, which takes no {given} from chat: it runs "
        f"with {runs_with}. Nothing was started; `retrain {model}` alone starts it."
    )


def _unstarted_release(run: CommandRun) -> bool:
    """Whether ``run`` is a release Handoff starts on approving a promotion gate, not known to have started yet."""
    return run.idempotency_key.startswith(RELEASE_KEY_PREFIX) and run.state is CommandRunState.REQUESTED


def _canceled_by(user: ChatUser) -> JsonObject:
    """Who canceled a run from chat, as the run keeps it (``runs`` and ``status`` name them)."""
    return {"name": user.name or user.display, "who": user.display, "platform": user.platform}


def _dedupe_key(request: CommandRequest, command: ParsedCommand) -> str:
    """What makes two commands the same run: the same person (by their platform's own id, which does not change
    with what the platform said about them this time), command, target and options."""
    return f"{request.user.key}:{command.canonical}"


def _same_asker(request: CommandRequest, run: CommandRun) -> bool:
    """Whether the person behind ``request`` asked for ``run``: on the same platform, or as the same email on
    another."""
    user = request.user
    if run.details.get("asker") == user.key:
        return True
    asked_by = run.details.get("asked_by")
    email = asked_by.get("email") if isinstance(asked_by, dict) else None
    return bool(user.email and isinstance(email, str) and email.lower() == user.email.lower())


def _card_key(run: CommandRun, plan: Plan) -> str | None:
    """The grouping key of a started run's living card (as its progress events draw it); None before it started."""
    if run.backend_run_id is None:
        return None
    url = str(run.details.get("url") or "") or None
    started = StartedRun(run.backend_run_id, str(run.details.get("name") or run.backend_run_id), url)
    return plan.progress_event(started, RunStatus(run.backend_run_id, "running", None, url)).grouping_key


def _requested(
    request: CommandRequest, command: ParsedCommand, plan: Plan, key: str, now: datetime, details: JsonObject
) -> CommandRun:
    """The run ``request`` asks for, as it is recorded before it starts (or waits for its confirmation)."""
    return CommandRun(
        idempotency_key=key,
        actor=request.user.display,
        platform=request.user.platform,
        conversation=request.conversation.conversation_id,
        command=command.canonical,
        target=plan.target,
        state=CommandRunState.REQUESTED,
        created_at=now,
        details={**details, "asker": request.user.key},  # who asked, as their platform knows them
    )


def _asked_by(user: ChatUser) -> JsonObject:
    """Who asked for a run, kept on it for its card (a failure calls on them): by email, as cards mention."""
    return {"asked_by": {"name": user.name or user.display, "email": user.email}} if user.email else {}


def _by_asker(event: DomainEvent, run: CommandRun) -> DomainEvent:
    """A run's progress, as Handoff sees it by polling, caused by the person who asked for the run."""
    asker = run.details.get("asked_by")
    if event.actor is not None or not isinstance(asker, dict) or not asker.get("email"):
        return event
    return replace(event, actor=Person(name=str(asker.get("name") or ""), email=str(asker["email"])))


def _card_place(request: CommandRequest) -> str:
    """Where the card of the run ``request`` starts will be: a post of its own in the channel (or chat) it was
    asked in, not in the command's thread, where a Teams channel message and a Slack mention are answered. The
    card's own thread carries what needs attention (a failure, who canceled it), and neither platform has a
    thread inside a thread."""
    return _place(in_chat=request.in_chat)


def _place(*, in_chat: bool) -> str:
    return "in this chat" if in_chat else "in this channel"


def started_card(run: CommandRun, summary: str) -> Card:
    """The settled face of a confirmation whose run has started: which run it is, what runs it (linked to it)
    and where its card is. It says nothing of how the run stands, which its own card keeps current: a status
    here would go stale."""
    where = in_service(run) or "its service"
    url = str(run.details.get("url") or "")
    links = (Link(f"Open {service_run(run)}", url),) if url else ()
    place = _place(in_chat=bool(run.details.get("in_chat")))
    return Card(
        title=f"Started: {summary} (run {run.id})",
        status=Status.INFO,
        summary=f"Run {run.id} runs as {where}. Its card, {place}, shows how it stands.",
        links=links,
    )


def where_to_look(backend: JsonObject) -> tuple[str, str]:
    """The service that runs a run (as its ``backend`` details name it) and where people see what it started."""
    if backend.get("service") == "azure-ml":
        return "Azure ML", "the jobs in Azure ML studio"
    pipeline = backend.get("pipeline")
    return "Azure DevOps", f"the runs of the pipeline {pipeline}" if pipeline else "the pipeline's runs"


def already_asked(run: CommandRun, request: CommandRequest, held_until: datetime | None = None) -> str:
    """The answer to a command whose run is still starting or running: how that run stands, and where its
    card is (here, or else how to find the run). A run whose start is not known says where to look, and
    ``held_until`` when the command starts a run again."""
    if run.details.get("start_unknown") and run.state is CommandRunState.REQUESTED:
        service, where = where_to_look(run.details)
        if job := run.details.get("job"):
            return (
                f"You already asked for this at {run.created_at:%H:%M} UTC (run {run.id}), and Handoff cannot tell "
                f"yet whether {service} started it. It submits it again as the same job, {job}, which finds that job "
                f"if {service} started it, so no second job starts; the run's card follows then."
            )
        again = f" If it did not start, ask again after {held_until:%H:%M} UTC." if held_until else ""
        return (
            f"You already asked for this at {run.created_at:%H:%M} UTC (run {run.id}), and Handoff cannot tell "
            f"whether {service} started it. Look at {where}.{again}"
        )
    if run.state is CommandRunState.STARTED:
        how = f"it is running as {service_run(run)}" if run.backend_run_id else "it is running"
    else:
        how = "it is still starting"
    here = (run.platform, run.conversation) == (request.conversation.platform, request.conversation.conversation_id)
    if not here:
        where = f"`status {run.id}` shows how it stands."
    elif run.state is CommandRunState.STARTED:
        where = f"Its card is {_card_place(request)}."
    else:
        where = f"Its card will follow {_card_place(request)}."
    return f"You already asked for this at {run.created_at:%H:%M} UTC; {how} (run {run.id}). {where}"


def service_run(run: CommandRun) -> str | None:
    """The run as its card names it (None before it has started in its service): an Azure DevOps run by
    its pipeline and run name (``integrate-app-y 20261129.5``, as Azure DevOps shows it), an Azure ML job by
    its name. A run recorded before Handoff kept its pipeline is named by its run name alone."""
    if run.backend_run_id is None:
        return None
    if run.details.get("service") != "azure-devops":
        return run.backend_run_id
    name, pipeline = run.details.get("name"), run.details.get("pipeline")
    if isinstance(pipeline, str) and pipeline:
        return f"{pipeline} {name}" if isinstance(name, str) and name else f"{pipeline} #{run.backend_run_id}"
    return name if isinstance(name, str) and name else run.backend_run_id


def in_service(run: CommandRun) -> str | None:
    """The run with the kind of thing it is where it runs: ``Azure DevOps run integrate-app-y 20261129.5``,
    ``Azure ML job handoff-model-x-12-…`` (None before it has started there)."""
    name = service_run(run)
    if name is None:
        return None
    service = SERVICE_NAMES.get(str(run.details.get("service", "")))
    return f"{service} {name}" if service else name


def asker(run: CommandRun) -> str:
    """Who asked for a run, as chat names them (their display name) where Handoff knows it, else as recorded
    (their email)."""
    asked_by = run.details.get("asked_by")
    name = asked_by.get("name") if isinstance(asked_by, dict) else None
    return name if isinstance(name, str) and name.strip() else run.actor


def described(run: CommandRun) -> str:
    """What a run is, for answers about it: its command and, once it started, how its card names it."""
    where = in_service(run)
    return f"`{run.command}`, {where}" if where else f"`{run.command}`"


def not_started(run: CommandRun) -> str:
    """Why ``cancel`` cannot cancel a run that has no id in the service that runs it, by how it stands."""
    what = f"Run {run.id} (`{run.command}`)"
    error = str(run.details.get("error") or "")
    if run.state is CommandRunState.CANCELED and run.details.get("canceled_by"):
        if run.details.get("start_unknown"):  # canceled as its start's answer was lost: looked for, to cancel it
            service = where_to_look(run.details)[0]
            return (
                f"{what} was already {standing(run)}; Handoff does not start it. {service} may have started it, "
                "though its answer was lost: Handoff looks for that run and cancels it if it finds it."
            )
        return f"{what} was already {standing(run)}, before it started; Handoff does not start it."
    if run.details.get("start_unknown"):
        service, where = where_to_look(run.details)
        if (job := run.details.get("job")) and run.state is CommandRunState.REQUESTED:
            return (
                f"{what} cannot be canceled yet: Handoff cannot tell yet whether {service} started it. It submits "
                f"it again as the same job, {job}, within a minute; once that has started, `cancel {run.id}` "
                "cancels it."
            )
        return (
            f"{what} cannot be canceled from here: Handoff cannot tell whether {service} started it. "
            f"If it did, cancel it among {where}."
        )
    if run.state is CommandRunState.REQUESTED:
        return f"{what} is still starting, so there is nothing to cancel yet. Ask again in a moment."
    if run.details.get("cut_off"):
        return (
            f"{what} cannot be canceled from here: Handoff stopped while starting it, so it does not know whether "
            "Azure DevOps started it. If it did, cancel it among the pipeline's runs."
        )
    if error:
        return f"{what} did not start, so there is nothing to cancel. {error}"
    return f"{what} did not start ({run.state.value}), so there is nothing to cancel."


def standing(run: CommandRun) -> str:
    """How a run stands, for answers about it: its state, and who canceled it from chat where someone did."""
    by = run.details.get("canceled_by")
    name = by.get("name") if isinstance(by, dict) else None
    if run.state is CommandRunState.CANCELED and isinstance(name, str) and name:
        return f"canceled by {name}"
    if run.details.get("start_unknown"):
        return "not known whether it started"
    return run.state.value


def run_line(run: CommandRun) -> str:
    """One line of ``runs``: the run, who asked, how it stands, where it runs (linked to it) and when."""
    service = SERVICE_NAMES.get(str(run.details.get("service", "")), "run")
    if run.backend_run_id:
        url = run.details.get("url")
        name = str(service_run(run))
        backend = f"{service} " + (link(str(url), name) if url else name)
    elif run.details.get("start_unknown"):
        backend = f"look at {where_to_look(run.details)[1]}"
    else:
        backend = "not started"
    when = f"{run.created_at:%Y-%m-%d %H:%M} UTC"
    return f"• {run.id}: `{run.command}` by {asker(run)}, {standing(run)}, {backend}, {when}"
