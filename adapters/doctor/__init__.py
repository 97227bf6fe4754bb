"""``handoff doctor``: check each configured integration for real, one line per check with a fix hint.

Every check talks to the real thing (or the emulator the configuration points at): the store, Azure
DevOps (the PAT's or identity's rights, the service hooks), Azure ML (credential, workspace, Event Grid
subscriptions), Slack (``auth.test`` and scopes), Teams (a Bot Framework token), and Handoff itself through
``server.public_url``. Nothing is changed anywhere; no secret is printed.

A service that does not answer fails its check after a deadline (:data:`DEADLINE` seconds unless told):
the services are checked side by side, and each check is reported as it ends, in the order of the list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from adapters.doctor.azure_devops import check_azure_devops
from adapters.doctor.azure_ml import check_azure_ml
from adapters.doctor.public_url import check_public_url
from adapters.doctor.report import DEADLINE, Check, Status, fail
from adapters.doctor.slack import check_slack
from adapters.doctor.store import check_store
from adapters.doctor.teams import check_teams
from adapters.sql.engine import shown_url
from bot.config import Settings

__all__ = ["DEADLINE", "Check", "Status", "run_checks"]


async def run_checks(
    settings: Settings,
    *,
    teams_http_client: Any = None,
    deadline: float = DEADLINE,
    echo: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Every check, in the order a person fixes things: store, services, then the way in.

    ``teams_http_client`` is handed to MSAL for the Teams token (tests point it at a local endpoint).
    ``deadline``: the seconds a check waits for a service. ``echo`` gets each check as soon as it and the
    checks listed before it have ended.
    """
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        if echo is not None:
            echo(check)

    try:
        async with asyncio.timeout(deadline) as limit:
            store, chat_filters = await check_store(settings)
    except TimeoutError:
        if not limit.expired():
            raise
        unanswered = f"{shown_url(settings.store.url)} did not answer within {deadline:g} s"
        store = fail("store", unanswered, "check store.url and the database")
        chat_filters = []
    report(store)
    services = [
        check_azure_devops(settings, chat_filters, deadline),
        check_azure_ml(settings, deadline),
        _within(check_slack(settings, deadline), deadline, "slack.auth", "Slack", "check slack.api_base_url"),
        _within(
            check_teams(settings, teams_http_client),
            deadline,
            "teams.token",
            "Microsoft Entra ID (for a Bot Framework token)",
            "check the network to login.microsoftonline.com",
        ),
        _listed(check_public_url(settings, deadline)),
    ]
    queues: list[asyncio.Queue[Check | None]] = [asyncio.Queue() for _ in services]
    async with asyncio.TaskGroup() as group:
        for checks_of, queue in zip(services, queues, strict=True):
            group.create_task(_forward(checks_of, queue))
        for queue in queues:
            while (check := await queue.get()) is not None:
                report(check)
    return checks


async def _forward(checks: AsyncIterator[Check], queue: asyncio.Queue[Check | None]) -> None:
    try:
        async for check in checks:
            queue.put_nowait(check)
    finally:
        queue.put_nowait(None)


async def _listed(checks: Awaitable[list[Check]]) -> AsyncIterator[Check]:
    for check in await checks:
        yield check


async def _within(
    checks: Awaitable[list[Check]], deadline: float, name: str, service: str, fix: str
) -> AsyncIterator[Check]:
    """The ``checks``, or one failure named ``name`` when ``service`` has not answered within ``deadline``."""
    try:
        async with asyncio.timeout(deadline) as limit:
            found = await checks
    except TimeoutError:
        if not limit.expired():
            raise
        found = [fail(name, f"{service} did not answer within {deadline:g} s", fix)]
    for check in found:
        yield check
