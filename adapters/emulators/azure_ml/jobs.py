"""Submitted jobs: the plan each follows, the references it must resolve, and what its completion causes."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from adapters.emulators.azure_ml.events import EmittedEvent, EventFactory
from adapters.emulators.azure_ml.lifecycle import JobSimulator
from adapters.emulators.azure_ml.registry import ModelRegistry
from adapters.emulators.azure_ml.state import JobRecord, WorkspaceState
from adapters.emulators.azure_ml.world import AzureMLWorld, JobPlan
from bot.clock import Clock

_REFERENCE = re.compile(r"/workspaces/([^/]+)/(environments|data|components|codes|models)/([^/]+)/versions/([^/?#\s]+)")
_COMPUTE = re.compile(r"/workspaces/([^/]+)/computes/([^/?#\s]+)")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


class JobService:
    """Creates jobs from their REST bodies and runs them on the clock.

    A job follows the world's job spec whose display name or experiment matches, else ``default_job``,
    overridden by the next scripted override. A successful job whose plan (or tag / property
    ``registers_model``) names a model registers that model's next version, then ``RunCompleted`` is
    emitted; a failed one emits ``RunStatusChanged``.
    """

    def __init__(
        self,
        world: AzureMLWorld,
        state: WorkspaceState,
        clock: Clock,
        registry: ModelRegistry,
        events: EventFactory,
        publish: Callable[[EmittedEvent], None],
        cancel_delay: float = 0.0,
    ) -> None:
        self.world = world
        self.state = state
        self.clock = clock
        self.registry = registry
        self.events = events
        self.publish = publish
        self.simulator = JobSimulator(clock, self._on_status, self._before_success, cancel_delay)
        self._overrides: deque[dict[str, Any]] = deque()

    def script_next(self, override: dict[str, Any]) -> None:
        """Apply ``override`` (``JobPlan`` fields) to the next submitted job."""
        self._overrides.append(override)

    def plan_for(self, properties: dict[str, Any]) -> JobPlan:
        """How a job submitted with these REST properties will run (consumes one scripted override)."""
        display, experiment = properties.get("displayName"), properties.get("experimentName")
        spec = next((s for s in self.world.job_specs.values() if s.matches(display, experiment)), None)
        plan = spec.plan if spec else self.world.default_job
        if plan.registers_model is None:
            marker = (properties.get("tags") or {}).get("registers_model") or (properties.get("properties") or {}).get(
                "registers_model"
            )
            plan = replace(plan, registers_model=marker)
        if self._overrides:
            plan = replace(plan, **self._overrides.popleft())
        return plan

    def missing_references(self, properties: dict[str, Any]) -> list[str]:
        """Workspace assets and computes a job body names that don't exist."""
        missing = []
        ws = self.world.workspace.lower()
        for text in _strings(properties):
            for workspace, kind, name, version in _REFERENCE.findall(text):
                if workspace.lower() != ws:
                    continue
                exists = (
                    version in self.state.models.get(name, {})
                    if kind == "models"
                    else self.state.get_asset(kind, name, version) is not None
                )
                if not exists:
                    missing.append(f"{kind}/{name}:{version}")
            for workspace, compute in _COMPUTE.findall(text):
                if workspace.lower() == ws and compute not in self.world.computes:
                    missing.append(f"computes/{compute}")
        return sorted(set(missing))

    def submit(self, name: str, properties: dict[str, Any]) -> JobRecord:
        """Create a job from its REST properties and start simulating it."""
        now = self.clock.now()
        job = JobRecord(name, dict(properties), self.plan_for(properties), now, history=[("NotStarted", now)])
        self.state.jobs[name] = job
        self.simulator.start(job)
        return job

    def cancel(self, name: str) -> bool:
        """Cancel a job; False if it is unknown or already ended."""
        job = self.state.jobs.get(name)
        return job is not None and self.simulator.request_cancel(job)

    async def wait_for(self, name: str, *statuses: str, timeout: float = 5.0) -> JobRecord:
        """Wait (real time) until job ``name`` has one of ``statuses`` (default: any terminal status)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            job = self.state.jobs.get(name)
            if job is not None and (job.status in statuses if statuses else job.is_terminal):
                return job
            if loop.time() >= deadline:
                status = job.status if job else "unknown"
                raise TimeoutError(f"job {name} is {status}, not {statuses or 'terminal'}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await self.simulator.close()

    def _on_status(self, job: JobRecord, previous: str) -> None:
        now = self.clock.now()
        if job.status == "Completed":
            self.publish(self.events.run_completed(job, now))
        elif job.status == "Failed":
            self.publish(self.events.run_status_changed(job, now))

    def _before_success(self, job: JobRecord) -> None:
        name = job.plan.registers_model
        if not name:
            return
        model = self.registry.register(
            name,
            None,
            self.clock.now(),
            signature=job.plan.signature,
            tags={**job.tags, "training_job": job.name},
            properties={"azureml.jobName": job.name},
            description=f"registered by job {job.name}",
            job_name=job.name,
        )
        job.registered_model = (model.name, model.version)
        self.publish(self.events.model_registered(model, model.created_at))
