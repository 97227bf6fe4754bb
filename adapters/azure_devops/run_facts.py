"""What a run's hooks leave out, read from the Build API once per run (and once more when the run ends).

A run's and a stage's service hooks do not say who asked for the run, an approval's hook does not say the
branch its run built, and none carries the parameters the run was started with (the model version it
integrates or releases). The Build API does (``GET _apis/build/builds/{id}``: ``requestedFor``,
``sourceBranch``, ``templateParameters``). :class:`RunFacts` asks once per run and keeps the answer: every
later event of the run reads it from memory. Events of one run that arrive together share one request. Each
caller waits at most its own time limit; a request that takes longer goes on, and the events after it find
its answer. When Azure DevOps does not answer, the run is asked about again only after a pause, so that the
events of a run are not each held up by an organization that is down. The same goes for every other run:
once Azure DevOps could not be reached, or a caller ran out of time waiting for it, no run is asked about
anew until the pause is over or an answer comes in (a request going on is still waited for). A storm of
failures while Azure DevOps is down or slow is so acknowledged at once, without what the Build API would
have added, instead of each run's first event waiting out its time limit.

The stage a failed run failed in is different: the Build API tells it only once the run has ended, and a
retried stage ends the run again, maybe failing elsewhere. An event that tells a run's end asks for an answer
given after that end (:class:`RunCompletion`): an answer kept from before, while the run went on or about an
earlier attempt, is asked again, once, and the new answer is kept for the run's later events (its other
failure hooks, Azure DevOps' redeliveries).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.ports import RunStatus, ServiceUnavailable

log = logging.getLogger("handoff.ingest.azure_devops")

RunDetails = Callable[[str, str], Awaitable[RunStatus]]
"""``(project, run_id)`` → how the run stands, from the Build API."""

RUNS_KEPT = 4096
RETRY_AFTER_SECONDS = 30.0
# A hook's and the Build API's finish times of one end of a run may differ in their last digits; a retried
# stage ends its run again minutes later.
FINISH_TIME_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class RunCompletion:
    """The end of a run an event tells, and when the run finished where the event says."""

    finished_at: datetime | None = None

    def told_by(self, status: RunStatus) -> bool:
        """Whether ``status`` was given after this end of the run, and so names the stage it failed in."""
        if status.state != "completed":
            return False
        ours, theirs = self.finished_at, status.finished_at
        if ours is None or theirs is None or ours.tzinfo is None or theirs.tzinfo is None:
            return True  # nothing tells an earlier attempt's end from this one
        return theirs >= ours - FINISH_TIME_SLACK


@dataclass
class _Run:
    """What was asked about one run: the latest answer, and the latest request (maybe still going)."""

    answer: RunStatus | None = None
    answered_by: int = 0  # the number of the request that gave ``answer`` (a slow earlier one does not undo it)
    request: asyncio.Task[RunStatus] | None = None
    requests: int = 0
    failed_at: float | None = None


class RunFacts:
    """The Build API's answer about each run, asked once per run (see the module's docstring)."""

    def __init__(
        self, run_details: RunDetails, *, runs_kept: int = RUNS_KEPT, retry_after: float = RETRY_AFTER_SECONDS
    ) -> None:
        self._run_details = run_details
        self._runs_kept = runs_kept
        self._retry_after = retry_after
        self._runs: OrderedDict[tuple[str, str], _Run] = OrderedDict()
        self._trouble_at: float | None = None  # when Azure DevOps last failed or kept a caller waiting too long

    async def of(
        self, project: str, run_id: str, timeout: float, completion: RunCompletion | None = None
    ) -> RunStatus | None:
        """The run as the Build API told it; None when it has not answered about the run within ``timeout``
        seconds, or failed (the run is then asked about again after a pause).

        With ``completion``, an answer given before that end of the run is not enough: the run is asked about
        again, and where no newer answer comes in time the older one is returned (who asked for the run, its
        branch and parameters hold; check :meth:`RunCompletion.told_by` before reading how it ended)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        run = self._run(project, run_id)
        asked_anew = False
        while run.answer is None or (completion is not None and not completion.told_by(run.answer)):
            if run.failed_at is not None and loop.time() - run.failed_at < self._retry_after:
                break
            request = run.request
            if request is None or request.done():
                if asked_anew:
                    break  # asked, and the answer does not tell this end yet: the run's next event asks again
                if self._in_trouble(loop.time()):
                    break  # not asked while Azure DevOps is down or slow (a request going on is waited for)
                request = self._ask(run, project, run_id)
                asked_anew = True
            try:
                # shielded: a caller out of time leaves the request going, for the run's next events
                await asyncio.wait_for(asyncio.shield(request), deadline - loop.time())
            except Exception as exc:
                if isinstance(exc, TimeoutError):
                    self._trouble_at = loop.time()
                log.warning("run %s: not read from the Build API (%s)", run_id, type(exc).__name__)
                break
        return run.answer

    def known(self, project: str, run_id: str) -> RunStatus | None:
        """The run as the Build API last told it, without asking (None where it was never answered)."""
        run = self._runs.get((project.lower(), run_id))
        return run.answer if run is not None else None

    def _in_trouble(self, now: float) -> bool:
        return self._trouble_at is not None and now - self._trouble_at < self._retry_after

    def _run(self, project: str, run_id: str) -> _Run:
        key = (project.lower(), run_id)
        run = self._runs.pop(key, None) or _Run()
        self._runs[key] = run
        while len(self._runs) > self._runs_kept:
            self._runs.popitem(last=False)
        return run

    def _ask(self, run: _Run, project: str, run_id: str) -> asyncio.Task[RunStatus]:
        run.requests += 1
        run.failed_at = None
        run.request = asyncio.get_running_loop().create_task(
            self._answer(run, run.requests, project, run_id), name=f"run-facts-{run_id}"
        )
        return run.request

    async def _answer(self, run: _Run, number: int, project: str, run_id: str) -> RunStatus:
        try:
            status = await self._run_details(project, run_id)
        except Exception as exc:
            run.failed_at = asyncio.get_running_loop().time()
            if isinstance(exc, ServiceUnavailable):
                self._trouble_at = run.failed_at
            raise
        self._trouble_at = None  # Azure DevOps answers again
        if number > run.answered_by:
            run.answer, run.answered_by = status, number
        return status
