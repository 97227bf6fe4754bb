"""The configured projects' names for the hooks that name a project only by its id.

A hook names its project by the path segment of its links, and where they carry none (the documented
approval-pending has no links; the documented run-state-changed's name the project by id) by
``resourceContainers.project.id``, a GUID. Subscriptions filter on the names the configuration gives
(``projects: [mlops]``), and a run's card is keyed by its project: so an event whose project is the id of a
configured project is renamed to that project's name. The ids are learned once, the first time a hook names a
project by an id not known yet (one REST call per configured project, kept for good); an id that belongs to
no configured project stays as it is, and costs no further call.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from bot.events import ApprovalEvent, DomainEvent, RunStateChanged, StageStateChanged

log = logging.getLogger("handoff.ingest.azure_devops")

ProjectId = Callable[[str], Awaitable[str]]
"""A project's name → its id (``GET _apis/projects/{name}``). It may raise."""

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# After a failed lookup, how long events keep their project's id before the lookup is tried again.
RETRY_AFTER_SECONDS = 60.0


class ProjectNames:
    """The configured projects' ids, learned once, and the events renamed with them.

    Args:
        projects: the configured projects (``azure_devops.projects``), by name.
        project_id: looks up one project's id.
        clock: seconds, for the wait after a failed lookup.
    """

    def __init__(
        self, projects: Sequence[str], project_id: ProjectId, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._project_id = project_id
        self._clock = clock
        self._names: dict[str, str] = {}  # lowercased id → configured name
        self._unknown = list(dict.fromkeys(p for p in projects if not GUID.match(p)))  # names whose ids are not known
        for project in projects:
            if GUID.match(project):
                self._names[project.lower()] = project
        self._learning: asyncio.Task[None] | None = None
        self._failed_at: float | None = None

    async def named(self, event: DomainEvent, timeout: float) -> DomainEvent:
        """``event`` with its project (and its run's) by the configured name where it names a configured
        project by id. Waits at most ``timeout`` seconds for the ids to be learned; the lookup goes on
        meanwhile, for the events after it."""
        project = event.project
        if not project or not GUID.match(project):
            return event
        name = self._names.get(project.lower())
        if name is None and self._may_learn():
            await self._learn(timeout)
            name = self._names.get(project.lower())
        if name is None or name == project:
            return event
        if isinstance(event, RunStateChanged | StageStateChanged | ApprovalEvent) and event.run is not None:
            run = event.run if event.run.project != project else replace(event.run, project=name)
            return replace(event, project=name, run=run)
        return replace(event, project=name)

    def may_look_up(self, event: DomainEvent) -> bool:
        """Whether :meth:`named` would ask Azure DevOps for the ids (the event names a project by an id not known
        yet, and a lookup may be tried now)."""
        project = event.project
        return bool(project and GUID.match(project) and project.lower() not in self._names and self._may_learn())

    def _may_learn(self) -> bool:
        if not self._unknown:
            return False
        return self._failed_at is None or self._clock() - self._failed_at >= RETRY_AFTER_SECONDS

    async def _learn(self, timeout: float) -> None:
        if self._learning is None or self._learning.done():
            self._learning = asyncio.create_task(self._lookup(), name="azure-devops-project-ids")
        try:
            await asyncio.wait_for(asyncio.shield(self._learning), timeout)
        except TimeoutError:
            log.warning("azure devops project ids: not learned within %g s; the event keeps its project's id", timeout)
        except Exception:  # the event is still worth storing with the id
            log.exception("azure devops project ids: not learned")
            self._failed_at = self._clock()

    async def _lookup(self) -> None:
        names = list(self._unknown)
        found = await asyncio.gather(*(self._project_id(name) for name in names), return_exceptions=True)
        failed = False
        for name, answer in zip(names, found, strict=True):
            if isinstance(answer, BaseException):
                failed = True
                log.warning("azure devops project %s: its id is unknown (%s)", name, type(answer).__name__)
                continue
            self._names[answer.lower()] = name
            self._unknown.remove(name)
        self._failed_at = self._clock() if failed else None
