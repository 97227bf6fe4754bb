"""Azure DevOps as the core's tests need it: a small in-memory fake of the PipelineService port that
records what it was asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.events import Approver, Person
from bot.ports import ApprovalStatus, RunStatus, ServiceRefused, ServiceUnavailable, StartedRun


def _url(run_id: str) -> str:
    return f"https://dev.azure.com/contoso/mlops/_build/results?buildId={run_id}"


@dataclass
class FakePipelines:
    """Azure DevOps runs: started on request, running until the test finishes them. ``groups`` are the
        members each group (by id) has now; each time one is read is counted in ``group_reads``. A decision on
        an approval first awaits ``while_deciding`` (if set), then raises the first of ``refuse_decisions``
        (if any), else is recorded in ``decided`` (a classic release's in ``release_decided``). ``approvals`` are
        how approvals stand when asked (unknown ones are left out); each question is kept in ``asked`` (a classic
        release's: its approval ids and their releases, in ``release_asked``). Every run
    whose status is asked is kept in ``status_asked``; asking about a run in ``deleted`` is refused. ``project_ids``
    are the projects' ids by name (any other project is refused). A start first awaits ``while_starting`` (if set),
    then queues its run, then raises the first of ``lose_answers`` (if any: its answer lost); each listing of a
    pipeline's runs is kept in ``listed``, and raises the first of ``listings_fail`` (if any); a question how
    approvals stand raises the first of ``statuses_fail`` (if any). Each run asked to be canceled is kept in
    ``canceled``."""

    started: list[tuple[str, str, str | None, dict[str, str]]] = field(default_factory=list)
    results: dict[str, RunStatus] = field(default_factory=dict)
    refuse_next: list[Exception] = field(default_factory=list)
    decided: list[tuple[str, str, bool, str]] = field(default_factory=list)
    release_decided: list[tuple[str, str, bool, str]] = field(default_factory=list)
    refuse_decisions: list[Exception] = field(default_factory=list)
    while_deciding: Callable[[], Awaitable[None]] | None = None
    groups: dict[str, tuple[Person, ...]] = field(default_factory=dict)
    group_reads: int = 0
    approvals: dict[str, ApprovalStatus] = field(default_factory=dict)
    asked: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    release_asked: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    me: Person | None = None
    status_asked: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    project_ids: dict[str, str] = field(default_factory=dict)
    lose_answers: list[ServiceUnavailable] = field(default_factory=list)
    listings_fail: list[Exception] = field(default_factory=list)
    listed: list[tuple[str, str, datetime]] = field(default_factory=list)
    statuses_fail: list[Exception] = field(default_factory=list)
    while_starting: Callable[[], Awaitable[None]] | None = None
    canceled: list[str] = field(default_factory=list)

    async def project_id(self, project: str) -> str:
        if project not in self.project_ids:
            raise ServiceRefused(f"Azure DevOps has no project {project}")
        return self.project_ids[project]

    async def own_identity(self) -> Person | None:
        return self.me

    async def run_pipeline(
        self, project: str, pipeline: str, branch: str | None, parameters: dict[str, str]
    ) -> StartedRun:
        if self.refuse_next:
            raise self.refuse_next.pop(0)
        if self.while_starting is not None:
            await self.while_starting()
        self.started.append((project, pipeline, branch, parameters))
        if self.lose_answers:
            raise self.lose_answers.pop(0)
        run_id = str(100 + len(self.started))
        return StartedRun(run_id, f"20261128.{len(self.started)}", _url(run_id))

    async def runs_since(self, project: str, pipeline: str, since: datetime) -> list[RunStatus]:
        self.listed.append((project, pipeline, since))
        if self.listings_fail:
            raise self.listings_fail.pop(0)
        return [
            RunStatus(run_id, "running", url=_url(run_id), branch=branch, parameters=parameters, name=name)
            for number, (in_project, name_of, branch, parameters) in enumerate(self.started, 1)
            if (in_project, name_of) == (project, pipeline)
            for run_id, name in [(str(100 + number), f"20261128.{number}")]
        ]

    async def run_status(self, project: str, run_id: str) -> RunStatus:
        self.status_asked.append(run_id)
        if run_id in self.deleted:
            raise ServiceRefused(f"Azure DevOps has no run {run_id}")
        return self.results.get(run_id, RunStatus(run_id, "running"))

    def finish(self, run_id: str, result: str, failing_step: str | None = None) -> None:
        self.results[run_id] = RunStatus(run_id, "completed", result, failing_step=failing_step)

    def of(self, pipeline: str) -> list[dict[str, str]]:
        return [parameters for _, name, _, parameters in self.started if name == pipeline]

    async def decide_approval(self, project: str, approval_id: str, approve: bool, comment: str) -> None:
        await self._deciding()
        self.decided.append((project, approval_id, approve, comment))

    async def decide_release_approval(self, project: str, approval_id: str, approve: bool, comment: str) -> None:
        await self._deciding()
        self.release_decided.append((project, approval_id, approve, comment))

    async def _deciding(self) -> None:
        if self.while_deciding is not None:
            await self.while_deciding()
        if self.refuse_decisions:
            raise self.refuse_decisions.pop(0)

    async def approval_details(self, project: str, approval_id: str) -> dict[str, Any] | None:
        return None

    async def approval_statuses(self, project: str, approval_ids: Sequence[str]) -> list[ApprovalStatus]:
        self.asked.append((project, tuple(approval_ids)))
        if self.statuses_fail:
            raise self.statuses_fail.pop(0)
        return [self.approvals[i] for i in approval_ids if i in self.approvals]

    async def release_approval_statuses(self, project: str, approvals: Mapping[str, str]) -> list[ApprovalStatus]:
        self.release_asked.append((project, dict(approvals)))
        if self.statuses_fail:
            raise self.statuses_fail.pop(0)
        return [self.approvals[i] for i in approvals if i in self.approvals]

    async def approver_identities(
        self, approvers: tuple[Approver, ...], *, fresh: bool = False
    ) -> tuple[Approver, ...]:
        if self.refuse_next:
            raise self.refuse_next.pop(0)
        found = []
        for approver in approvers:
            members = self.groups.get(approver.person.id or "") if approver.group else None
            if members is not None:
                self.group_reads += 1
                approver = replace(approver, members=members)
            found.append(approver)
        return tuple(found)

    async def cancel_run(self, project: str, run_id: str) -> None:
        self.canceled.append(run_id)

    async def close(self) -> None: ...
