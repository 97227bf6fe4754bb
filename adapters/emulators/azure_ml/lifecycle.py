"""The simulated job lifecycle: NotStarted → Queued → Running → Completed / Failed / Canceled, on a Clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from adapters.emulators.azure_ml.state import JobRecord
from bot.clock import Clock

StatusListener = Callable[[JobRecord, str], None]


class JobSimulator:
    """Moves each submitted job through its states after the delays of its :class:`JobPlan`.

    Args:
        clock: the clock the delays are measured on.
        on_status: called after every status change with the job and its previous status.
        before_success: called while the job is still Running, just before it completes successfully
            (a training job registers its model there, as a real training script does).
        cancel_delay: seconds between ``CancelRequested`` and ``Canceled``.
    """

    def __init__(
        self,
        clock: Clock,
        on_status: StatusListener,
        before_success: Callable[[JobRecord], None],
        cancel_delay: float = 0.0,
    ) -> None:
        self.clock = clock
        self.on_status = on_status
        self.before_success = before_success
        self.cancel_delay = cancel_delay
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, job: JobRecord) -> None:
        """Begin simulating ``job`` (in the running event loop)."""
        self._tasks[job.name] = asyncio.create_task(self._run(job), name=f"aml-job-{job.name}")

    def set_status(self, job: JobRecord, status: str) -> None:
        """Record a status change now and tell the listener."""
        previous = job.status
        if previous == status:
            return
        now = self.clock.now()
        job.status = status
        job.history.append((status, now))
        if status == "Running" and job.start_time is None:
            job.start_time = now
        if job.is_terminal:
            job.end_time = now
        self.on_status(job, previous)

    def request_cancel(self, job: JobRecord) -> bool:
        """Cancel ``job``: CancelRequested now, Canceled after ``cancel_delay``. False if it already ended."""
        if job.is_terminal:
            return False
        if job.status == "CancelRequested":
            return True
        task = self._tasks.pop(job.name, None)
        if task is not None:
            task.cancel()
        self.set_status(job, "CancelRequested")
        self._tasks[job.name] = asyncio.create_task(self._finish_cancel(job), name=f"aml-cancel-{job.name}")
        return True

    async def close(self) -> None:
        """Stop simulating (jobs keep the status they have)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, job: JobRecord) -> None:
        plan = job.plan
        await self.clock.sleep(plan.queued_after)
        self.set_status(job, "Queued")
        await self.clock.sleep(plan.running_after)
        self.set_status(job, "Running")
        await self.clock.sleep(plan.duration)
        if plan.outcome == "Completed":
            self.before_success(job)
        self.set_status(job, plan.outcome)
        self._tasks.pop(job.name, None)

    async def _finish_cancel(self, job: JobRecord) -> None:
        await self.clock.sleep(self.cancel_delay)
        self.set_status(job, "Canceled")
        self._tasks.pop(job.name, None)
