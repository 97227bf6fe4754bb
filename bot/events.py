"""Neutral domain events: what happened in Azure DevOps and Azure ML, in the core's words.

Ingest adapters parse senders' payloads into these. Each event knows its routing ``kind`` (the
names subscriptions use), its ``outcome``, the ``grouping_key`` of the card it belongs to, and the
attributes filters match on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class Person:
    """Someone named by a service: an Azure DevOps identity or an Azure ML user."""

    name: str = ""
    email: str | None = None
    id: str | None = None

    @property
    def display(self) -> str:
        return self.name or self.email or self.id or "someone"


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """What every event carries.

    ``event_id`` is the sender's id for the event (the dedupe key's core); ``scope`` names where it
    came from (an Azure DevOps organization, an Azure ML workspace, a storage account). ``project`` is an
    Azure DevOps project's name (its id where the name is not known), ``project_id`` its id where the
    sender gave it (a ``projects`` filter matches either).
    """

    kind: ClassVar[str] = "event"

    source: str
    event_id: str
    occurred_at: datetime
    scope: str = ""
    project: str | None = None
    project_id: str | None = None
    actor: Person | None = None
    web_url: str | None = None
    text: str = ""

    @property
    def outcome(self) -> str | None:
        """``succeeded``, ``failed``, ``canceled``, ``pending`` or None (still running, or no outcome)."""
        return None

    @property
    def grouping_key(self) -> str:
        """The card this event belongs to; events with the same key update one card."""
        return bounded_key(f"{self.source}:{self.kind}:{self.event_id}")

    @property
    def dedupe_key(self) -> str:
        # Event Grid ids are unique per topic only, and scope names the topic (or the organization)
        return bounded_key(f"{self.source}:{self.scope}:{self.event_id}")

    @property
    def repeat_key(self) -> str | None:
        """What makes a new card "the same thing again" (the same pipeline running again on a branch, the same model
        registered again), for subscriptions with a repeat limit; None for events that are never a repeat
        (approvals and gates each ask for a decision)."""
        return None

    @property
    def pipeline(self) -> str | None:
        return None

    @property
    def pipeline_names(self) -> tuple[str, ...]:
        """What a ``pipelines`` filter matches: the pipeline's name, and its id where the event names one
        (``pipelines=42``)."""
        return (self.pipeline,) if self.pipeline else ()

    @property
    def branch(self) -> str | None:
        return None

    @property
    def run_reason(self) -> str | None:
        """Why the event's run started, as Azure DevOps says it (``manual``, ``pullRequest``…), where known."""
        return None

    @property
    def stage(self) -> str | None:
        return None

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The names a ``stages`` filter matches: a stage's display name and its name."""
        return (self.stage,) if self.stage else ()

    @property
    def environment(self) -> str | None:
        return None

    @property
    def model(self) -> str | None:
        """The one model the event is about, if it is about one."""
        return None

    @property
    def model_names(self) -> tuple[str, ...]:
        """The names a ``models`` filter matches: the event's model, or every model a deployment deployed."""
        return (self.model,) if self.model is not None else ()

    @property
    def tags(self) -> dict[str, str]:
        return {}

    def per_card(self) -> tuple[DomainEvent, ...]:
        """The events this one is, one for each card it updates: itself, but for a deployment of several model
        versions (one for each version's card)."""
        return (self,)


_OUTCOMES = {
    "succeeded": "succeeded",
    "partiallysucceeded": "failed",
    "failed": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "stopped": "canceled",
}


def _outcome(result: str | None) -> str | None:
    if not result:
        return None
    return _OUTCOMES.get(result.lower().replace(" ", "").replace("_", ""))


# The longest key the store keeps (its key columns' width); a longer one is cut and given a hash of the whole.
MAX_KEY_LENGTH = 400


def bounded_key(key: str) -> str:
    """``key``, or, when it is longer than the store keeps, its start and a hash of all of it (a blob path
    may be 1,024 characters long); without NUL characters, which PostgreSQL cannot store."""
    if "\x00" in key:
        key = key.replace("\x00", "")
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_KEY_LENGTH - len(digest) - 1]}#{digest}"


# --- Azure DevOps -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PipelineRef:
    """A pipeline run: enough to name it, link it and key its card."""

    organization: str
    project: str
    pipeline_id: str
    pipeline_name: str
    run_id: str
    run_name: str = ""
    branch: str | None = None
    # why the run started (the Build API's ``reason``: ``manual``, ``individualCI``, ``pullRequest``…), where known
    reason: str | None = None

    @property
    def run_key(self) -> str:
        return bounded_key(f"azure-devops:{self.organization}:{self.project}:run:{self.run_id}".lower())


def _pipeline_names(name: str | None, run: PipelineRef | None) -> tuple[str, ...]:
    """A pipeline's name and its id, each once."""
    return tuple(dict.fromkeys(n for n in (name, run.pipeline_id if run else None) if n))


def _model_name(version: str | None) -> tuple[str, ...]:
    """The model a run (or its approval) is for, by its ``for_model`` (``model-x:8``), for a ``models`` filter."""
    return (version.rpartition(":")[0] or version,) if version else ()


def _pipeline_repeat_key(scope: str, run: PipelineRef) -> str:
    """Runs of one pipeline on one branch repeat each other, whatever their outcome, from their first event: a
    run first shown while it runs is folded there, and tells its outcome in the thread it is folded into."""
    return bounded_key(f"azure-devops:{scope}:{run.project}:pipeline:{run.pipeline_id}:{run.branch or ''}".lower())


def _stage_names(display_name: str | None, name: str | None) -> tuple[str, ...]:
    """A stage's display name and its name (``Deploy to production``, ``Production``), each given once."""
    return tuple(dict.fromkeys(n for n in (display_name, name) if n))


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """An approval a run's stage waited on was rejected, so the stage (``stage``, as the run's card names it) ended
    without running: by whom (a name; empty where nobody said), from the gate Handoff holds for it."""

    stage: str
    by: str = ""


@dataclass(frozen=True, kw_only=True)
class RunStateChanged(DomainEvent):
    """A pipeline run started, is canceling, or completed (``ms.vss-pipelines.run-state-changed-event``,
    ``build.complete``)."""

    kind: ClassVar[str] = "run"

    run: PipelineRef
    state: str  # inProgress | canceling | completed
    result: str | None = None  # succeeded | failed | canceled | partiallySucceeded
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # the stage that failed, when the run failed and Azure DevOps' timeline told (hooks do not say)
    failing_stage: str | None = None
    # that stage's own name (``Production``, where ``failing_stage`` is ``Deploy to production``), where known
    failing_stage_name: str | None = None
    # the model version Handoff started the run for (``model-x:8``); hooks do not carry a run's parameters
    for_model: str | None = None
    # when Azure DevOps created the event (``createdDate``); None where it did not say, and for the events
    # Handoff makes of a run it polls. Only a stamped event can tell a newer attempt (a retried stage) from
    # a late event of an earlier one: hooks number no attempts.
    created_at: datetime | None = None
    # the person who canceled the run from chat, when Handoff canceled it for them (hooks do not say who did)
    canceled_by: str | None = None
    # the rejected approvals that ended the run (Azure DevOps reports the run failed), from the gatekeeper
    rejections: tuple[Rejection, ...] = ()

    @property
    def model_names(self) -> tuple[str, ...]:
        """The model of the version it is for, where Handoff knows it: ``models=model-x`` follows its runs."""
        return _model_name(self.for_model)

    @property
    def outcome(self) -> str | None:
        return _outcome(self.result) if self.state.lower() == "completed" else None

    @property
    def repeat_key(self) -> str | None:
        return _pipeline_repeat_key(self.scope, self.run)

    @property
    def grouping_key(self) -> str:
        return self.run.run_key

    @property
    def pipeline(self) -> str | None:
        return self.run.pipeline_name

    @property
    def pipeline_names(self) -> tuple[str, ...]:
        return _pipeline_names(self.pipeline, self.run)

    @property
    def branch(self) -> str | None:
        return self.run.branch

    @property
    def run_reason(self) -> str | None:
        return self.run.reason


@dataclass(frozen=True, kw_only=True)
class StageStateChanged(DomainEvent):
    """A stage of a run changed state (``ms.vss-pipelines.stage-state-changed-event``)."""

    kind: ClassVar[str] = "stage"

    run: PipelineRef
    stage_name: str
    stage_display_name: str = ""
    state: str  # notStarted | waiting | running | completed
    result: str | None = None
    # when Azure DevOps created the event (``createdDate``), None where it did not say: a retried stage's
    # events are newer than its earlier attempt's (see RunStateChanged.created_at)
    created_at: datetime | None = None
    # the rejected approval that ended the stage (Azure DevOps reports it failed), from the gatekeeper
    rejection: Rejection | None = None

    @property
    def outcome(self) -> str | None:
        return _outcome(self.result) if self.state.lower() == "completed" else None

    @property
    def repeat_key(self) -> str | None:
        return _pipeline_repeat_key(self.scope, self.run)

    @property
    def grouping_key(self) -> str:
        return self.run.run_key

    @property
    def pipeline(self) -> str | None:
        return self.run.pipeline_name

    @property
    def pipeline_names(self) -> tuple[str, ...]:
        return _pipeline_names(self.pipeline, self.run)

    @property
    def branch(self) -> str | None:
        return self.run.branch

    @property
    def run_reason(self) -> str | None:
        return self.run.reason

    @property
    def stage(self) -> str | None:
        return self.stage_display_name or self.stage_name

    @property
    def stage_names(self) -> tuple[str, ...]:
        return _stage_names(self.stage_display_name, self.stage_name)


def _ids(person: Person) -> set[str]:
    """A person's email and id, lowercase, as Azure DevOps names them."""
    return {i.lower() for i in (person.email, person.id) if i}


@dataclass(frozen=True, kw_only=True)
class Approver:
    """One step of an approval: whom Azure DevOps assigned it to, and how that step stands.

    An Azure DevOps group (or team) may be assigned a step; any of its members may then decide it.
    ``group`` says so, and ``members`` holds the people in it (nested groups flattened) once the
    identity service told: they may decide the gate in chat and its card calls on them. A very large
    group is read only in part (``members_complete`` is then False).
    """

    person: Person
    status: str = "pending"
    comment: str = ""
    group: bool = False
    members: tuple[Person, ...] = ()
    members_complete: bool = True

    @property
    def needs_lookup(self) -> bool:
        """Whether the identity service has more to tell: a group's members, the email of someone named
        without one."""
        return self.group or not self.person.email


@dataclass(frozen=True)
class GateTerms:
    """What Handoff's gate policy says of an Azure DevOps approval's gate, for its card: how many approvals from
    chat decide it, who else may decide it (its ``approver_roles``' members as the configuration names them:
    emails, chat ids), who may not approve it (its requester's identities, where ``requester_cannot_approve``
    says so), and when the gate expires."""

    needed: int = 1
    role_approvers: tuple[str, ...] = ()
    barred: tuple[str, ...] = ()
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalEvent(DomainEvent):
    """A release gate in Azure DevOps: a YAML pipeline approval, or a classic release approval."""

    kind: ClassVar[str] = "approval"

    approval_id: str
    approval_kind: str = "pipeline"  # pipeline | release
    status: str = "pending"  # pending | approved | rejected | timedOut | canceled | skipped
    run: PipelineRef | None = None
    stage_name: str | None = None
    stage_display_name: str = ""
    environment_name: str | None = None
    instructions: str = ""
    min_required_approvers: int = 1
    approvers: tuple[Approver, ...] = ()
    requester: Person | None = None
    # people Azure DevOps bars from approving (the requester, when requesterCannotBeApprover is on)
    blocked_approvers: tuple[Person, ...] = ()
    created_at: datetime | None = None
    timeout_at: datetime | None = None
    # the model version Handoff started the approval's run for (``model-x:8``), from the run's card
    for_model: str | None = None
    # what Handoff's gate policy adds, from the gatekeeper that opened the approval's gate
    terms: GateTerms | None = None
    # Handoff's own identity in Azure DevOps (whose token applies decisions from chat), when it is known: it
    # gives one approval at most, and none where Azure DevOps bars it (it started the run)
    handoff: Person | None = None
    # a classic release approval's release and release definition (``Release-1``, ``Fabrikam.CD``): it has no run
    release_name: str = ""
    release_definition: str = ""
    # a classic release approval's release id (``7``): Azure DevOps lists a release's approvals by it
    release_id: str = ""
    # when a classic release approval is asked: ``preDeploy`` (before deploying to its environment) or
    # ``postDeploy`` (a sign-off after it); "" for a pipeline approval
    approval_type: str = ""

    @property
    def model_names(self) -> tuple[str, ...]:
        """The model of the version its run is for, where Handoff knows it: ``models=model-x`` follows its gates."""
        return _model_name(self.for_model)

    @property
    def outcome(self) -> str | None:
        return {"pending": "pending", "approved": "succeeded", "rejected": "failed"}.get(
            self.status.lower(), "canceled"
        )

    @property
    def grouping_key(self) -> str:
        return bounded_key(f"azure-devops:{self.scope}:{self.approval_kind}-approval:{self.approval_id}".lower())

    @property
    def pipeline(self) -> str | None:
        return self.run.pipeline_name if self.run else self.release_definition or None

    @property
    def pipeline_names(self) -> tuple[str, ...]:
        return _pipeline_names(self.pipeline, self.run)

    @property
    def branch(self) -> str | None:
        return self.run.branch if self.run else None

    @property
    def run_reason(self) -> str | None:
        return self.run.reason if self.run else None

    @property
    def stage(self) -> str | None:
        return self.stage_display_name or self.stage_name

    @property
    def stage_names(self) -> tuple[str, ...]:
        return _stage_names(self.stage_display_name, self.stage_name)

    @property
    def environment(self) -> str | None:
        return self.environment_name

    @property
    def handoff_not_assigned(self) -> bool:
        """Whether this is a classic release's approval that Handoff's own identity is known not to be assigned:
        Azure DevOps lets only the approver it names decide it (a person, or any member of a group), so Handoff's
        decision would be refused. False where Handoff cannot tell (its identity unknown, or a group's members
        not all told): its decision then goes to Azure DevOps, which answers."""
        if self.approval_kind != "release" or self.handoff is None or not self.approvers:
            return False
        handoff = _ids(self.handoff)
        for approver in self.approvers:
            if approver.group and not (approver.members and approver.members_complete):
                return False
            if any(_ids(p) & handoff for p in (approver.person, *approver.members)):
                return False
        return True


@dataclass(frozen=True, kw_only=True)
class ApprovalPending(ApprovalEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ApprovalCompleted(ApprovalEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ReleaseDeploymentCompleted(DomainEvent):
    """A classic release environment finished deploying."""

    kind: ClassVar[str] = "release"

    release_id: str
    release_name: str
    definition_name: str
    environment_name: str
    status: str
    # the id of the definition's environment this deployed to: the only trace of the definition in a hook
    # whose release names none
    definition_environment_id: str = ""

    @property
    def outcome(self) -> str | None:
        # an environment whose deployment failed ends `rejected` (releaseEnvironmentStatus: canceled, rejected,
        # succeeded, partiallySucceeded), as one whose approval was rejected does: it was not deployed
        return "failed" if self.status.lower() == "rejected" else _outcome(self.status)

    @property
    def grouping_key(self) -> str:
        return bounded_key(f"azure-devops:{self.scope}:release:{self.release_id}:{self.environment_name}".lower())

    @property
    def repeat_key(self) -> str | None:
        """Releases of one definition to one environment with one outcome repeat each other; a release whose
        definition is unknown repeats nothing (every other release to an environment of that name would)."""
        if self.definition_name:
            definition = self.definition_name
        elif self.definition_environment_id:
            definition = f"environment-{self.definition_environment_id}"
        else:
            return None
        return bounded_key(
            f"azure-devops:{self.scope}:{self.project}:release:{definition}:{self.environment_name}:"
            f"{self.outcome or ''}".lower()
        )

    @property
    def pipeline(self) -> str | None:
        return self.definition_name

    @property
    def environment(self) -> str | None:
        return self.environment_name


@dataclass(frozen=True, kw_only=True)
class Commit:
    id: str
    message: str = ""
    author: str = ""
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class CodePushed(DomainEvent):
    """``git.push``."""

    kind: ClassVar[str] = "code_pushed"

    repository: str
    ref: str
    commits: tuple[Commit, ...] = ()

    @property
    def repeat_key(self) -> str | None:
        return bounded_key(f"azure-devops:{self.scope}:{self.project}:push:{self.repository}:{self.ref}".lower())

    @property
    def branch(self) -> str | None:
        return self.ref


@dataclass(frozen=True, kw_only=True)
class PullRequestChanged(DomainEvent):
    """``git.pullrequest.created`` / ``updated`` / ``merged``."""

    kind: ClassVar[str] = "pull_request"

    repository: str
    pull_request_id: str
    title: str
    change: str  # created | updated | merged
    status: str  # active | completed | abandoned
    source_ref: str = ""
    target_ref: str = ""

    @property
    def outcome(self) -> str | None:
        return {"completed": "succeeded", "abandoned": "canceled"}.get(self.status.lower())

    @property
    def grouping_key(self) -> str:
        return bounded_key(
            f"azure-devops:{self.scope}:{self.project}:pr:{self.repository}:{self.pull_request_id}".lower()
        )

    @property
    def branch(self) -> str | None:
        return self.target_ref


# --- Azure ML and the data lake -----------------------------------------------------------------------


def model_version_key(scope: str, model_name: str, model_version: str) -> str:
    """The card of a model version in an Azure ML workspace (``scope``): its registration, checks and
    deployments."""
    return bounded_key(f"azure-ml:{scope}:model:{model_name}:{model_version}".lower())


def _model_repeat_key(scope: str, model_name: str) -> str:
    return bounded_key(f"azure-ml:{scope}:model:{model_name}".lower())


@dataclass(frozen=True, kw_only=True)
class ModelRegistered(DomainEvent):
    """``Microsoft.MachineLearningServices.ModelRegistered``."""

    kind: ClassVar[str] = "model_registered"

    model_name: str
    model_version: str
    model_tags: dict[str, str] = field(default_factory=dict)
    model_properties: dict[str, str] = field(default_factory=dict)

    @property
    def grouping_key(self) -> str:
        return model_version_key(self.scope, self.model_name, self.model_version)

    @property
    def repeat_key(self) -> str | None:
        return _model_repeat_key(self.scope, self.model_name)

    @property
    def model(self) -> str | None:
        return self.model_name

    @property
    def tags(self) -> dict[str, str]:
        return self.model_tags


@dataclass(frozen=True, kw_only=True)
class ModelDeployed(DomainEvent):
    """``Microsoft.MachineLearningServices.ModelDeployed``: ``model_ids`` are ``name:version``."""

    kind: ClassVar[str] = "model_deployed"

    service_name: str
    compute_type: str = ""
    model_ids: tuple[str, ...] = ()
    service_tags: dict[str, str] = field(default_factory=dict)
    # one model version's part of a deployment of several (see per_card)
    one_of_several: bool = False

    @property
    def outcome(self) -> str | None:
        return "succeeded"

    @property
    def deployed_version(self) -> tuple[str, str] | None:
        """``(name, version)`` of the one model version deployed; None when the event names several (see
        :meth:`per_card`), none, or a model without its version."""
        if len(self.model_ids) != 1:
            return None
        name, _, version = self.model_ids[0].partition(":")
        return (name, version) if name and version else None

    @property
    def grouping_key(self) -> str:
        # a version's deployment updates that version's card; one that names no version has a card of its own
        if (deployed := self.deployed_version) is not None:
            return model_version_key(self.scope, *deployed)
        return bounded_key(f"azure-ml:{self.scope}:deployment:{self.service_name}:{self.event_id}".lower())

    @property
    def dedupe_key(self) -> str:
        # the parts of one deployment of several versions are stored apart, each once
        if self.one_of_several:
            return bounded_key(f"{self.source}:{self.scope}:{self.event_id}:{self.model_ids[0]}")
        return super().dedupe_key

    @property
    def repeat_key(self) -> str | None:
        if (deployed := self.deployed_version) is not None:
            return _model_repeat_key(self.scope, deployed[0])
        return bounded_key(f"azure-ml:{self.scope}:deployment:{self.service_name}".lower())

    def per_card(self) -> tuple[DomainEvent, ...]:
        """One event for each model version deployed (each updates its version's card; its ``text`` still names
        the whole deployment), or itself when it names one version or none."""
        versions = tuple(dict.fromkeys(self.model_ids))
        if len(versions) < 2 or not all(replace(self, model_ids=(v,)).deployed_version for v in versions):
            return (self,)
        return tuple(replace(self, model_ids=(version,), one_of_several=True) for version in versions)

    @property
    def model(self) -> str | None:
        """The model deployed, when the deployment is of one model only (of several, see ``model_names``)."""
        names = self.model_names
        return names[0] if len(names) == 1 else None

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(model_id.partition(":")[0] for model_id in self.model_ids))

    @property
    def tags(self) -> dict[str, str]:
        return self.service_tags


@dataclass(frozen=True, kw_only=True)
class TrainingRunFinished(DomainEvent):
    """``RunCompleted`` or ``RunStatusChanged`` (Azure ML raises the latter only for failures)."""

    kind: ClassVar[str] = "training_run"

    run_id: str
    experiment_name: str
    run_type: str = ""
    status: str = "Completed"
    run_tags: dict[str, str] = field(default_factory=dict)
    # the person who canceled the job from chat, when Handoff canceled it for them (Azure ML does not say)
    canceled_by: str | None = None

    @property
    def outcome(self) -> str | None:
        status = self.status.lower()
        if status == "completed":
            return "succeeded"
        if status in ("failed", "canceled", "cancelled"):
            return _outcome(status)
        return None

    @property
    def grouping_key(self) -> str:
        return bounded_key(f"azure-ml:{self.scope}:job:{self.run_id}".lower())

    @property
    def repeat_key(self) -> str | None:
        if not self.experiment_name:
            # nothing names the run's series (Azure ML's events carry no display name): it repeats no other run
            return bounded_key(f"azure-ml:{self.scope}:job:{self.run_id}:{self.outcome or ''}".lower())
        return bounded_key(f"azure-ml:{self.scope}:experiment:{self.experiment_name}:{self.outcome or ''}".lower())

    @property
    def model(self) -> str | None:
        return self.run_tags.get("model") or self.run_tags.get("registers_model")

    @property
    def tags(self) -> dict[str, str]:
        return self.run_tags


@dataclass(frozen=True, kw_only=True)
class DataDriftDetected(DomainEvent):
    """``Microsoft.MachineLearningServices.DatasetDriftDetected``."""

    kind: ClassVar[str] = "data_drift"

    monitor_id: str
    monitor_name: str
    run_id: str
    drift_coefficient: float
    base_dataset_id: str = ""
    target_dataset_id: str = ""
    # the period of target data the monitor compared with the baseline
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def outcome(self) -> str | None:
        return "failed"

    @property
    def grouping_key(self) -> str:
        return bounded_key(f"azure-ml:{self.scope}:drift:{self.monitor_id}:{self.run_id}".lower())

    @property
    def repeat_key(self) -> str | None:
        return bounded_key(f"azure-ml:{self.scope}:drift:{self.monitor_id}".lower())


@dataclass(frozen=True, kw_only=True)
class DataArrived(DomainEvent):
    """A committed file in a watched data-lake path (``Microsoft.Storage.BlobCreated``)."""

    kind: ClassVar[str] = "data_arrived"

    storage_account: str
    container: str
    path: str
    size: int = 0
    url: str = ""
    sequencer: str = ""  # Storage's order of the writes to one file: a later write's compares greater

    @property
    def grouping_key(self) -> str:
        return bounded_key(f"{self._container_key}:{self.path}")

    @property
    def repeat_key(self) -> str | None:
        # files landing in one folder (a day's partitions, a batch of parts) repeat each other
        folder = self.path.rpartition("/")[0]
        return bounded_key(f"{self._container_key}:{folder}/")

    @property
    def _container_key(self) -> str:
        # Account and container names are lower-case by Azure's rules, whatever case an event spells them in;
        # blob paths are case-sensitive: raw/Data.csv and raw/data.csv are two files, each with its own card
        return f"storage:{self.storage_account}:{self.container}".lower()


EVENT_KINDS: tuple[str, ...] = (
    "run",
    "stage",
    "approval",
    "release",
    "code_pushed",
    "pull_request",
    "model_registered",
    "model_deployed",
    "training_run",
    "data_drift",
    "data_arrived",
)


# --- Handoff's own ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    actor: str
    decision: str  # approve | reject | override
    comment: str = ""
    platform: str = ""
    name: str = ""  # how chat named the person (actor is their email), when it did
    # the person's chat ids (``slack:<id>``, ``teams:<id>``, ``aad:<id>``), as the configuration may name them
    chat_ids: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Completion:
    """How Azure DevOps completed a gate's approval itself: who did it (a name; empty when nobody did, as when it
    timed out, or Azure DevOps did not say) and their comment."""

    by: str = ""
    comment: str = ""


@dataclass(frozen=True, kw_only=True)
class GateChanged(DomainEvent):
    """A gate changed in Handoff (a decision, an expiry); it updates the gate's card everywhere.

    ``revision`` is the gate's version: a change that arrives after a newer one (two decisions published
    at once) never takes the card back. ``refused`` is a decision Azure DevOps refused to apply, ``note``
    saying why: the gate waits again without it, whatever its cards showed. ``completed`` says that the
    gate's status is the outcome Azure DevOps completed the approval with, heard otherwise than by the
    approval's own event, or after the cards showed a decision from chat that never reached Azure DevOps:
    that decision, ``not_applied``, did not take effect, whatever its cards showed. ``superseded_by`` is
    the newer model version (``model-x:12``, its page at ``superseded_by_url``) that superseded a promotion
    gate."""

    kind: ClassVar[str] = "approval"

    gate_id: str
    status: str  # pending | approved | rejected | expired | superseded
    decisions: tuple[GateDecision, ...] = ()
    needed: int = 1
    note: str = ""
    revision: int = 0
    refused: GateDecision | None = None
    completed: Completion | None = None
    not_applied: GateDecision | None = None
    superseded_by: str = ""
    superseded_by_url: str | None = None
    # Handoff's own approval reached Azure DevOps, which still waits for approvers there: the card offers no
    # buttons (``note`` says how many more), and the approvals from chat are shown as Handoff's one approval
    handoff_approved: bool = False
    # Azure DevOps refused a decision from chat in a way no retry changes (Handoff may not decide the approval, or
    # it no longer exists): what the card says instead of offering buttons
    only_in_azure_devops: str = ""
    # why a gate closed with nobody deciding it (``Timed out in Azure DevOps``, ``Closed: the run was canceled``)
    closed: str = ""

    @property
    def outcome(self) -> str | None:
        return {"pending": "pending", "approved": "succeeded", "rejected": "failed"}.get(self.status, "canceled")

    @property
    def grouping_key(self) -> str:
        return self.gate_id


# --- Handoff's model handoff (bot/model_handoff.py) ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelChecked(DomainEvent):
    """Handoff checked a new model version against its consuming apps, or an app's integration moved.

    It updates the model version's card (``card_key``, the card of its ``ModelRegistered``); ``apps``
    maps each app reported to its check (``bot.consumers.AppCheck`` as JSON) and ``integration``.
    """

    kind: ClassVar[str] = "model_check"

    card_key: str
    model_name: str
    model_version: str
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def grouping_key(self) -> str:
        return self.card_key

    @property
    def model(self) -> str | None:
        return self.model_name


@dataclass(frozen=True, kw_only=True)
class AppHandoffChanged(DomainEvent):
    """A new model version handed to one consuming app: its check and its integration run, for the
    app team's card."""

    kind: ClassVar[str] = "model_handoff"

    model_name: str
    model_version: str
    app: str
    check: dict[str, Any] = field(default_factory=dict)
    model_card_key: str = ""
    model_url: str | None = None

    @property
    def grouping_key(self) -> str:
        return bounded_key(f"handoff:model:{self.model_name}:{self.model_version}:app:{self.app}".lower())

    @property
    def model(self) -> str | None:
        return self.model_name


@dataclass(frozen=True, kw_only=True)
class PromotionGateChanged(DomainEvent):
    """The evidence on a model version's promotion gate changed: the checks, the integrations, and what
    blocks Approve. ``revision`` is the gate's version; a card never goes back to an older one."""

    kind: ClassVar[str] = "approval"

    gate_id: str
    model_name: str
    model_version: str
    release: str
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    blockers: tuple[str, ...] = ()
    override_roles: tuple[str, ...] = ()
    revision: int = 0
    min_required: int = 1
    # who may decide: the gate policy's approver roles, their members (whom the card calls on: emails and chat ids),
    # and the people who may not approve it (its requester, where the policy says so); when it expires
    approver_roles: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    barred: tuple[str, ...] = ()
    expires_at: datetime | None = None

    @property
    def outcome(self) -> str | None:
        return "pending"

    @property
    def grouping_key(self) -> str:
        return self.gate_id

    @property
    def model(self) -> str | None:
        return self.model_name
