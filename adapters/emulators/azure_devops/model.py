"""The emulator's in-memory state: runs (which are builds), their stages, logs and approvals.

State names follow the REST enums. A pipeline run's ``state`` is ``inProgress|canceling|completed`` and
its ``result`` ``succeeded|partiallySucceeded|failed|canceled``; the same run seen through the Build API
has ``status`` ``notStarted|inProgress|cancelling|completed``. A stage's state, as service hooks report it,
is ``notStarted|waiting|running|completed``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from adapters.emulators.azure_devops.world import (
    ApprovalCheck,
    Environment,
    Identity,
    PipelineDef,
    Principal,
    Repository,
    StageDef,
)

RunState = Literal["inProgress", "canceling", "completed"]
RunResult = Literal["succeeded", "partiallySucceeded", "failed", "canceled"]
BuildStatus = Literal["notStarted", "inProgress", "cancelling", "completed"]
StageState = Literal["notStarted", "waiting", "running", "completed"]
ApprovalStatus = Literal["pending", "approved", "rejected", "timedOut", "canceled", "skipped"]
StepStatus = Literal["uninitiated", "pending", "approved", "rejected", "timedOut", "canceled", "skipped"]


@dataclass
class LogFile:
    """One log of a run (one per stage's job), readable through both the Pipelines and Build APIs."""

    id: int
    created_on: datetime
    last_changed_on: datetime
    lines: list[str] = field(default_factory=list)

    def write(self, line: str, at: datetime) -> None:
        self.lines.append(f"{at.strftime('%Y-%m-%dT%H:%M:%S.%f')}0Z {line}")
        self.last_changed_on = at


@dataclass
class StageRun:
    """A stage of one run, with the ids of its timeline records."""

    definition: StageDef
    order: int
    id: str
    phase_id: str
    job_id: str
    state: StageState = "notStarted"
    result: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    job_state: StageState = "notStarted"
    job_result: str | None = None
    job_start: datetime | None = None
    job_finish: datetime | None = None
    checkpoint_id: str | None = None
    checkpoint_state: Literal["pending", "inProgress", "completed"] = "pending"
    checkpoint_result: str | None = None
    approval_id: str | None = None
    environment: Environment | None = None
    log: LogFile | None = None
    duration: float = 0.0
    planned_result: str = "succeeded"
    skip: bool = False


@dataclass
class Run:
    """A pipeline run; its id is also its build id."""

    id: int
    name: str
    pipeline: PipelineDef
    requested_by: Identity
    reason: str
    created: datetime
    template_parameters: dict[str, str]
    variables: dict[str, dict[str, Any]]
    repository: Repository | None
    ref_name: str
    source_version: str
    stages: list[StageRun]
    plan_id: str
    timeline_id: str
    state: RunState = "inProgress"
    result: RunResult | None = None
    build_status: BuildStatus = "notStarted"
    start_time: datetime | None = None
    finished: datetime | None = None
    last_changed: datetime | None = None
    last_changed_by: Identity | None = None
    keep_forever: bool = False
    logs: list[LogFile] = field(default_factory=list)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    paused: bool = False

    @property
    def done(self) -> bool:
        return self.state == "completed"

    def stage(self, name: str) -> StageRun | None:
        """A stage by name or display name (case-insensitive)."""
        key = name.lower()
        return next(
            (s for s in self.stages if key in (s.definition.name.lower(), s.definition.display_name.lower())),
            None,
        )


@dataclass
class HistoryEntry:
    assigned_to: Principal
    created_by: Identity
    comment: str
    created_on: datetime


@dataclass
class ApprovalStep:
    """One approver's part of an approval."""

    assigned: Principal
    order: int
    status: StepStatus
    initiated_on: datetime | None
    last_modified_on: datetime
    actual_approver: Identity | None = None
    comment: str | None = None
    last_modified_by: Identity | None = None
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass
class Approval:
    """An approval created by an environment's Approval check for one stage of one run."""

    id: str
    run_id: int
    stage_name: str
    environment: Environment
    check: ApprovalCheck
    created_on: datetime
    last_modified_on: datetime
    steps: list[ApprovalStep]
    min_required: int
    blocked: list[Identity]
    status: ApprovalStatus = "pending"
    decided: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"


ReleaseApprovalStatus = Literal["pending", "approved", "rejected", "reassigned", "canceled", "skipped"]


@dataclass
class ReleaseApproval:
    """A classic release approval (Release area), decided with ``PATCH _apis/release/approvals/{id}``."""

    id: int
    approver: Identity
    release_id: int
    release_name: str
    definition_id: int
    definition_name: str
    environment_id: int
    environment_name: str
    approval_type: Literal["preDeploy", "postDeploy"]
    created_on: datetime
    modified_on: datetime
    status: ReleaseApprovalStatus = "pending"
    comments: str = ""
    approved_by: Identity | None = None
    revision: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    # who created the release (its ``createdBy``): its approver unless said
    created_by: Identity | None = None
