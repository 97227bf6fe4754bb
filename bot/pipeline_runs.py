"""Pipeline runs Handoff starts, as the events Azure DevOps' own service hooks send about them.

Handoff tells a run's card what it saw when it started the run or polled it, so that the card shows at
once and keeps going when a service hook is late or lost. The event names the run as Azure DevOps' hooks
do, so both update one card. It also says which model version the run was started for: Azure DevOps'
events do not carry a run's parameters, and a run integrating or releasing a model says which version.
A run of such a pipeline that someone started outside Handoff names its version in the same parameters:
:class:`ModelPipelines` says which pipelines those are and reads the version from a run's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.azure_devops_urls import organization_of
from bot.config import Settings
from bot.events import PipelineRef, RunStateChanged
from bot.ports import RunStatus, StartedRun
from bot.records import CommandRunState


def organization_name(settings: Settings) -> str:
    """The organization as Azure DevOps' own events name it, so that the events Handoff makes of a run it
    polls update the same card (``https://contoso.visualstudio.com`` → ``contoso``)."""
    return organization_of(settings.azure_devops.organization_url).lower() if settings.azure_devops else ""


def ended_state(status: RunStatus) -> CommandRunState | None:
    """The state a command run ends in, by how its service says the run stands; None while it goes on."""
    if status.state != "completed":
        return None
    return {"succeeded": CommandRunState.SUCCEEDED, "canceled": CommandRunState.CANCELED}.get(
        status.result or "", CommandRunState.FAILED
    )


# the parameters Handoff starts an integration or a release with, naming the model version it is for
MODEL_NAME_PARAMETER = "modelName"
MODEL_VERSION_PARAMETER = "modelVersion"


def model_of(parameters: Mapping[str, object], model: str | None = None) -> str | None:
    """The model version a run's parameters name (``modelName``, ``modelVersion``) as ``model-x:8``; ``model``
    names the model where the parameters give its version alone."""
    name = parameters.get(MODEL_NAME_PARAMETER) or model
    version = parameters.get(MODEL_VERSION_PARAMETER)
    return f"{name}:{version}" if name and version else None


@dataclass(frozen=True)
class ModelPipelines:
    """The pipelines the configuration has Handoff start with a model version in their parameters: each app's
    integration pipeline (the model handoff, ``integrate <app> model=``) and each model's promotion-gate
    release. A run of one says in those parameters which version it integrates or releases, whoever started
    it. Read with :meth:`of`."""

    # (project, pipeline), lowercased → the one model the configuration uses the pipeline for (None: several)
    models: Mapping[tuple[str, str], str | None]

    @classmethod
    def of(cls, settings: Settings) -> ModelPipelines:
        uses: dict[tuple[str, str], set[str]] = {}
        for app_name, app in settings.apps.items():
            consumed = {m for m, model in settings.models.items() if app_name in model.consumers}
            target = app.integration
            uses.setdefault((target.project.lower(), target.pipeline.lower()), set()).update(
                consumed | ({app.model} if app.model else set())
            )
        for model_name, model in settings.models.items():
            if model.promotion_gate is not None:
                target = model.promotion_gate.release
                uses.setdefault((target.project.lower(), target.pipeline.lower()), set()).add(model_name)
        return cls({key: next(iter(names)) if len(names) == 1 else None for key, names in uses.items()})

    def _key(self, project: str, run: PipelineRef) -> tuple[str, str] | None:
        """The configured pipeline ``run`` (of ``project``) is a run of, named by name or by id."""
        for pipeline in (run.pipeline_name, run.pipeline_id):
            key = (project.lower(), pipeline.lower())
            if pipeline and key in self.models:
                return key
        return None

    def takes_model(self, project: str, run: PipelineRef) -> bool:
        """Whether ``run`` is a run of a pipeline started with a model version (its parameters are worth
        reading)."""
        return bool(self.models) and self._key(project, run) is not None

    def model_of(self, project: str, run: PipelineRef, parameters: Mapping[str, str]) -> str | None:
        """The model version ``run`` was started for, as its ``parameters`` name it (``model-x:8``); None for a
        run of another pipeline, or one whose parameters name no version."""
        key = self._key(project, run)
        return model_of(parameters, self.models[key]) if key is not None else None


def _full_ref(branch: str | None) -> str | None:
    """A branch as Azure DevOps' hooks and Build API name it (``refs/heads/main``), from a configured one
    (``main``), so that a run's polled events and its hooks go by the same branch."""
    if not branch or branch.startswith("refs/"):
        return branch or None
    return f"refs/heads/{branch}"


def pipeline_run_event(
    organization: str,
    now: datetime,
    project: str,
    pipeline: str,
    branch: str | None,
    started: StartedRun,
    status: RunStatus | None = None,
    *,
    for_model: str | None = None,
) -> RunStateChanged:
    """A run Handoff started in ``organization`` (see :func:`organization_name`), as it stands (``status``;
    None: just started, not looked at yet)."""
    state = "inProgress" if status is None or status.state in ("queued", "running") else "completed"
    result = status.result if status is not None else None
    return RunStateChanged(
        source="azure-devops",
        event_id=f"handoff-poll:{started.run_id}:{state}:{result}",
        occurred_at=now,
        scope=organization,
        project=project,
        web_url=(status.url if status is not None else None) or started.url,
        run=PipelineRef(
            organization=organization,
            project=project,
            pipeline_id=pipeline,
            pipeline_name=pipeline,
            run_id=started.run_id,
            run_name=started.name,
            branch=_full_ref((status.branch if status is not None else None) or branch),
        ),
        state=state,
        result=result,
        failing_stage=status.failing_step if status is not None else None,
        failing_stage_name=status.failing_stage_name if status is not None else None,
        for_model=for_model,
    )


RELEASE_KEY_PREFIX = "promotion-release:"
"""The idempotency key of a release Handoff started on approving a promotion gate: one run per gate while it
counts (a release refused by Azure DevOps ends it, so a later approval records another)."""
RELEASE_VERB = "release"


def release_key(gate_id: str) -> str:
    """The command-run key of the release a promotion gate's approval starts."""
    return f"{RELEASE_KEY_PREFIX}{gate_id}"


def release_command(model: str, version: str, app: str | None) -> str:
    """How ``runs`` and ``status`` show a release Handoff started for a model version: like ``integrate``, with
    the app it releases where the model has one consuming app (``release app-y model=model-x:11``)."""
    return f"{RELEASE_VERB} {app} model={model}:{version}" if app else f"{RELEASE_VERB} model={model}:{version}"


def run_card_key(organization: str, project: str, pipeline: str, run_id: str) -> str:
    """The grouping key of an Azure DevOps run's living card, as its events and Handoff's polls draw it."""
    started = StartedRun(run_id, run_id)
    return pipeline_run_event(organization, datetime.min, project, pipeline, None, started).grouping_key
