"""The simulated pipeline engine: runs move through their stages on the injected clock.

A run's stages execute in order. Each takes its scripted ``duration`` and ends with its scripted
``result``. A stage whose environment has an Approval check first waits (stage state ``waiting``) until the
approval is decided, times out, or the run is canceled. A failed stage or a refused approval fails the
run; later stages are skipped. Every state change is published as the matching service-hook event.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.emulators.azure_devops import approvals
from adapters.emulators.azure_devops.events import Event, ServiceHookEvents
from adapters.emulators.azure_devops.model import Approval, LogFile, Run, StageRun
from adapters.emulators.azure_devops.world import Identity, PipelineDef, Repository, World, stable_id
from bot.clock import Clock


@dataclass(frozen=True)
class RunScript:
    """Overrides for one upcoming run of a pipeline: per-stage results and durations."""

    results: Mapping[str, str] = field(default_factory=dict)
    durations: Mapping[str, float] = field(default_factory=dict)


def fake_sha(*parts: object) -> str:
    """A 40-hex commit id derived from ``parts``."""
    return hashlib.sha1("|".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


class PipelineEngine:
    """Creates runs and drives them; owns runs and pipeline approvals.

    Args:
        world: the seeded world.
        clock: where stage durations and approval timeouts are slept.
        events: builds the service-hook events.
        publish: sends an event to the subscriptions that want it.
        changed: called after every state change (wakes waiters).
    """

    def __init__(
        self,
        world: World,
        clock: Clock,
        events: ServiceHookEvents,
        publish: Callable[[Event], Any],
        changed: Callable[[], None],
    ) -> None:
        self.world = world
        self.clock = clock
        self.events = events
        self._publish = publish
        self._changed = changed
        self.runs: dict[int, Run] = {}
        self.approvals: dict[str, Approval] = {}
        self.scripts: dict[int, deque[RunScript]] = defaultdict(deque)
        self.heads: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(world.first_run_id)
        self._revisions: dict[tuple[int, str], int] = defaultdict(int)

    # creating and canceling ---------------------------------------------------------------------------

    def script_next_run(self, pipeline: PipelineDef, script: RunScript) -> None:
        self.scripts[pipeline.id].append(script)

    def queue(
        self,
        pipeline: PipelineDef,
        requested_by: Identity,
        *,
        reason: str = "manual",
        template_parameters: Mapping[str, str] | None = None,
        variables: Mapping[str, dict[str, Any]] | None = None,
        ref_name: str | None = None,
        source_version: str | None = None,
        stages_to_skip: tuple[str, ...] = (),
    ) -> Run:
        """Create a run and start driving it (call from the event loop)."""
        now = self.clock.now()
        run_id = next(self._ids)
        day = now.strftime("%Y%m%d")
        self._revisions[(pipeline.id, day)] += 1
        repo: Repository | None = self.world.repository(pipeline.repository) if pipeline.repository else None
        ref = ref_name or (repo.default_branch if repo else "refs/heads/main")
        if not ref.startswith("refs/"):
            ref = f"refs/heads/{ref}"
        version = (
            source_version
            or (self.heads.get((repo.id, ref)) if repo else None)
            or fake_sha(repo.name if repo else pipeline.name, ref, "initial")
        )
        script = self.scripts[pipeline.id].popleft() if self.scripts[pipeline.id] else RunScript()
        skip = {s.lower() for s in stages_to_skip}
        stages = []
        for order, definition in enumerate(pipeline.stages, start=1):
            result = script.results.get(definition.name, script.results.get(definition.display_name))
            duration = script.durations.get(definition.name, script.durations.get(definition.display_name))
            stages.append(
                StageRun(
                    definition=definition,
                    order=order,
                    id=stable_id("stage", run_id, definition.name),
                    phase_id=stable_id("phase", run_id, definition.name),
                    job_id=stable_id("job", run_id, definition.name),
                    environment=self.world.environment(definition.environment) if definition.environment else None,
                    duration=definition.duration if duration is None else float(duration),
                    planned_result=result or definition.result,
                    skip=definition.name.lower() in skip or definition.display_name.lower() in skip,
                )
            )
        run = Run(
            id=run_id,
            name=f"{day}.{self._revisions[(pipeline.id, day)]}",
            pipeline=pipeline,
            requested_by=requested_by,
            reason=reason,
            created=now,
            template_parameters=dict(template_parameters or {}),
            variables={k: dict(v) for k, v in (variables or {}).items()},
            repository=repo,
            ref_name=ref,
            source_version=version,
            stages=stages,
            plan_id=stable_id("plan", run_id),
            timeline_id=stable_id("timeline", run_id),
            last_changed=now,
        )
        self.runs[run.id] = run
        run.task = asyncio.get_running_loop().create_task(self._drive(run), name=f"ado-run-{run.id}")
        self._changed()
        return run

    def cancel(self, run: Run, by: Identity) -> None:
        """Ask a run to stop (``PATCH build {status: cancelling}``)."""
        if run.done or run.cancel_requested.is_set():
            return
        now = self.clock.now()
        run.state, run.build_status = "canceling", "cancelling"
        run.last_changed, run.last_changed_by = now, by
        run.cancel_requested.set()
        run.paused = False  # it is about to wake: not settled until it blocks again
        self._publish(self.events.run_state_changed(run, now))
        self._changed()

    def decided(self, approval: Approval, reopened: bool) -> None:
        """After a PATCH: an ``inSequence`` hand-over fires ``approval-pending`` again."""
        run = self.runs[approval.run_id]
        if not approval.is_pending:
            run.paused = False  # it is about to wake: not settled until it blocks again
        elif reopened:
            self._publish(self.events.approval_pending(run, approval, self.clock.now()))
        self._changed()

    async def close(self) -> None:
        """Stop every run's driver."""
        tasks = [r.task for r in self.runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def settled(self) -> bool:
        """True when every unfinished run is blocked on its clock, an approval or cancellation."""
        return all(r.done or r.paused for r in self.runs.values())

    # driving ------------------------------------------------------------------------------------------

    async def _drive(self, run: Run) -> None:
        now = self.clock.now()
        if not run.cancel_requested.is_set():
            run.build_status = "inProgress"
        run.start_time = run.last_changed = now
        self._publish(self.events.run_state_changed(run, now))
        self._changed()
        stopped = False
        for stage in run.stages:
            if stopped or stage.skip or run.cancel_requested.is_set():
                self._skip(run, stage)
                continue
            gated = stage.environment is not None and stage.environment.approval is not None
            if gated and not await self._checkpoint(run, stage):
                stopped = True
                continue
            await self._execute(run, stage)
            stopped = stage.result in ("failed", "canceled")
        self._finish(run)

    def _skip(self, run: Run, stage: StageRun) -> None:
        stage.state, stage.result = "completed", "skipped" if not run.cancel_requested.is_set() else "canceled"
        stage.job_state, stage.job_result = "completed", stage.result
        if stage.checkpoint_id:
            stage.checkpoint_state = "completed"

    async def _checkpoint(self, run: Run, stage: StageRun) -> bool:
        env = stage.environment
        assert env is not None and env.approval is not None
        now = self.clock.now()
        approval = approvals.create_approval(self.world, run, stage.definition.name, env, now)

        def open_checkpoint() -> None:
            self.approvals[approval.id] = approval
            stage.approval_id = approval.id
            stage.checkpoint_id = stable_id("checkpoint", run.id, stage.definition.name)
            stage.checkpoint_state = "inProgress"
            stage.state, stage.start_time = "waiting", now
            run.last_changed = now
            self._publish(self.events.stage_state_changed(run, stage, now))
            self._publish(self.events.approval_pending(run, approval, now))

        await self._pause(
            run, env.approval.timeout_minutes * 60, approval.decided, run.cancel_requested, before=open_checkpoint
        )
        now = self.clock.now()
        if approval.is_pending:
            approvals.close(approval, "canceled" if run.cancel_requested.is_set() else "timedOut", now)
        self._publish(self.events.approval_completed(run, approval, now))
        stage.checkpoint_state = "completed"
        if approval.status == "approved" and not run.cancel_requested.is_set():
            stage.checkpoint_result = "succeeded"
            return True
        stage.checkpoint_result = "canceled" if run.cancel_requested.is_set() else "failed"
        stage.state, stage.result, stage.finish_time = "completed", stage.checkpoint_result, now
        stage.job_state, stage.job_result = "completed", "skipped"
        run.last_changed = now
        self._publish(self.events.stage_state_changed(run, stage, now))
        self._changed()
        return False

    async def _execute(self, run: Run, stage: StageRun) -> None:
        start = self.clock.now()
        log = LogFile(id=len(run.logs) + 1, created_on=start, last_changed_on=start)

        def start_job() -> None:
            run.logs.append(log)
            stage.log = log
            stage.state, stage.job_state = "running", "running"
            stage.start_time = stage.start_time or start
            stage.job_start = start
            run.last_changed = start
            log.write(f"##[section]Starting: {stage.definition.job}", start)
            log.write(f"Pipeline: {run.pipeline.name}, run {run.name}, stage {stage.definition.display_name}", start)
            for key, value in sorted(run.template_parameters.items()):
                log.write(f"Parameter {key}={value}", start)
            self._publish(self.events.stage_state_changed(run, stage, start))
            self._publish(self.events.job_state_changed(run, stage, start))

        elapsed = await self._pause(run, stage.duration, run.cancel_requested, before=start_job)
        now = self.clock.now()
        result = stage.planned_result if elapsed else "canceled"
        if result == "failed":
            log.write(f"##[error]{stage.definition.display_name} failed.", now)
        elif result == "canceled":
            log.write("##[error]The operation was canceled.", now)
        log.write(f"##[section]Finishing: {stage.definition.job}", now)
        stage.job_state, stage.job_result, stage.job_finish = "completed", result, now
        stage.state, stage.result, stage.finish_time = "completed", result, now
        run.last_changed = now
        self._publish(self.events.job_state_changed(run, stage, now))
        self._publish(self.events.stage_state_changed(run, stage, now))
        self._changed()

    def _finish(self, run: Run) -> None:
        now = self.clock.now()
        results = [s.result for s in run.stages]
        if run.cancel_requested.is_set():
            run.result = "canceled"
        elif any(r in ("failed", "canceled") for r in results):
            run.result = "failed"
        elif "succeededWithIssues" in results:
            run.result = "partiallySucceeded"
        else:
            run.result = "succeeded"
        run.state, run.build_status = "completed", "completed"
        run.finished = run.last_changed = now
        self._publish(self.events.run_state_changed(run, now))
        self._publish(self.events.build_complete(run, now))
        self._changed()

    async def _pause(
        self,
        run: Run,
        seconds: float | None,
        *wake: asyncio.Event,
        before: Callable[[], object] | None = None,
    ) -> bool:
        """Wait ``seconds`` of clock time or until an event is set; True when the time ran out.

        The timer registers with the clock before the state change becomes visible (``before``), so a
        test that sees the new state can advance a ``FakeClock`` straight away.
        """
        loop = asyncio.get_running_loop()
        timer = loop.create_task(self.clock.sleep(max(0.0, seconds))) if seconds is not None else None
        waiters = [loop.create_task(e.wait()) for e in wake]
        await asyncio.sleep(0)  # let the timer reach clock.sleep
        if before is not None:
            before()
        run.paused = True
        self._changed()
        try:
            done, _ = await asyncio.wait(
                [t for t in (timer, *waiters) if t is not None], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            run.paused = False
            for task in (timer, *waiters):
                if task is not None and not task.done():
                    task.cancel()
        return timer is not None and timer in done and not any(e.is_set() for e in wake)

    # git ----------------------------------------------------------------------------------------------

    def advance_head(
        self, repo: Repository, ref_name: str, messages: list[str], now: datetime
    ) -> tuple[str, list[str]]:
        """Move a branch head over new commits; returns the old head and the new commit ids."""
        old = self.heads.get((repo.id, ref_name)) or fake_sha(repo.name, ref_name, "initial")
        ids = []
        head = old
        for message in messages:
            head = fake_sha(repo.id, ref_name, head, message, now.isoformat())
            ids.append(head)
        self.heads[(repo.id, ref_name)] = head
        return old, ids
