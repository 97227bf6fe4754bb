"""What a run's hooks leave out and never changes for the run, read from the Build API once per run.

A run's and a stage's service hooks do not say who asked for the run, an approval's hook does not say the
branch its run built, and none carries the parameters the run was started with (the model version it
integrates or releases). The Build API does (``GET _apis/build/builds/{id}``: ``requestedFor``,
``sourceBranch``, ``templateParameters``). :class:`RunFacts` asks once per run and keeps the answer: every
later event of the run reads it from memory. Events of one run that arrive together share one request. Each
caller waits at most its own time limit; a request that takes longer goes on, and the events after it find
its answer. When Azure DevOps does not answer, the run is asked about again only after a pause, so that the
events of a run are not each held up by an organization that is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from bot.ports import RunStatus

log = logging.getLogger("handoff.ingest.azure_devops")

RunDetails = Callable[[str, str], Awaitable[RunStatus]]
"""``(project, run_id)`` → how the run stands, from the Build API."""

RUNS_KEPT = 4096
RETRY_AFTER_SECONDS = 30.0


class RunFacts:
    """The Build API's answer about each run, asked once per run (see the module's docstring)."""

    def __init__(
        self, run_details: RunDetails, *, runs_kept: int = RUNS_KEPT, retry_after: float = RETRY_AFTER_SECONDS
    ) -> None:
        self._run_details = run_details
        self._runs_kept = runs_kept
        self._retry_after = retry_after
        self._asked: OrderedDict[tuple[str, str], asyncio.Task[RunStatus]] = OrderedDict()
        self._failed_at: dict[tuple[str, str], float] = {}

    async def of(self, project: str, run_id: str, timeout: float) -> RunStatus | None:
        """The run as the Build API told it; None when it did not answer within ``timeout`` seconds, or
        failed (the run is then asked about again after a pause)."""
        key = (project.lower(), run_id)
        loop = asyncio.get_running_loop()
        failed_at = self._failed_at.get(key)
        if failed_at is not None and loop.time() - failed_at < self._retry_after:
            return None
        task = self._asked.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = loop.create_task(self._ask(project, run_id), name=f"run-facts-{run_id}")
            task.add_done_callback(lambda done: self._settled(key, done))
            self._asked[key] = task
            self._failed_at.pop(key, None)
        self._asked.move_to_end(key)
        while len(self._asked) > self._runs_kept:
            self._asked.popitem(last=False)
        try:
            # shielded: a caller out of time leaves the request going, for the run's next events
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except Exception as exc:
            log.warning("run %s: not read from the Build API (%s)", run_id, type(exc).__name__)
            return None

    async def _ask(self, project: str, run_id: str) -> RunStatus:
        return await self._run_details(project, run_id)

    def _settled(self, key: tuple[str, str], task: asyncio.Task[RunStatus]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._failed_at[key] = asyncio.get_running_loop().time()
            if len(self._failed_at) > self._runs_kept:
                self._failed_at.pop(next(iter(self._failed_at)))
