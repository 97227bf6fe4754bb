"""The core's ``HookProvisioner``: service hooks for ``subscribe <Azure DevOps URL>`` from chat.

It uses the same planning as ``handoff connect azure-devops`` for one project, but only adds: it creates
what is missing and replaces Handoff's own subscriptions that no longer fit, and removes nothing (the next
``handoff connect`` tidies up, and it counts the chat subscriptions too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from adapters.azure_devops.connect import ConnectReport, HookConnector
from adapters.azure_devops.hook_plan import configured_kinds, kinds_of
from adapters.azure_devops.hooks_gateway import HookCallFailed, HooksGateway
from adapters.azure_devops.pipelines import connection_for
from adapters.worker_pool import WorkerPool
from bot.config import AzureDevOpsSettings, Settings
from bot.ports import ServiceRefused, ServiceUnavailable

T = TypeVar("T")

# Threads for the provisioner's calls: a subscribe's hooks (one at a time) and a pipeline's name.
WORKERS = 2


class AzureDevOpsHookProvisioner:
    """Implements :class:`bot.ports.HookProvisioner` on the configured organization.

    Args:
        settings: the whole configuration (the organization, the hook credentials, ``server.public_url``
            and the subscriptions whose kinds every project's hooks must cover).
        gateway: the SDK calls (built from the settings if None).
    """

    def __init__(self, settings: Settings, gateway: HooksGateway | None = None) -> None:
        if settings.azure_devops is None:
            raise ValueError("the azure_devops section is missing")
        self._ado: AzureDevOpsSettings = settings.azure_devops
        self._public_url = settings.server.public_url
        self._base_kinds = configured_kinds(settings)
        self._gateway = gateway or HooksGateway(connection_for(self._ado))
        self._lock = asyncio.Lock()
        self._pool = WorkerPool("azure-devops-hooks", WORKERS)

    @property
    def organization_url(self) -> str:
        return self._ado.organization_url

    async def ensure_hooks(self, project: str, events: Sequence[str] = ()) -> None:
        if not self._public_url:
            raise ServiceRefused(
                "Handoff's server.public_url is not set, so Azure DevOps cannot be told where to send."
            )
        kinds = self._base_kinds | kinds_of(events)
        async with self._lock:  # two subscribes at once must not create the same hook twice
            report = await self._pool.run(self._ensure, project, kinds)
        if report.failures:
            raise ServiceRefused(report.failures[0])

    def _ensure(self, project: str, kinds: set[str]) -> ConnectReport:
        assert self._public_url is not None
        connector = HookConnector(self._gateway, self._ado, self._public_url)
        report = ConnectReport()
        actions = connector.plan([project], kinds, report, remove_stale=False)
        if not report.failures:
            connector.apply(actions, report)
        return report

    async def pipeline_name(self, project: str, pipeline_id: int) -> str | None:
        return await self._call(self._gateway.pipeline_name, project, pipeline_id)

    async def run_pipeline_name(self, project: str, run_id: int) -> str | None:
        return await self._call(self._gateway.run_pipeline_name, project, run_id)

    async def _call(self, function: Callable[[str, int], T], project: str, number: int) -> T:
        try:
            return await self._pool.run(function, project, number)
        except HookCallFailed as failure:
            if failure.refusal.kind == "unreachable":
                raise ServiceUnavailable(failure.refusal.message) from None
            raise ServiceRefused(str(failure)) from None

    async def close(self) -> None:
        self._pool.close()
