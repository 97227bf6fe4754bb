"""``handoff doctor``: check each configured integration for real, one line per check with a fix hint.

Every check talks to the real thing (or the emulator the configuration points at): the store, Azure
DevOps (the PAT's or identity's rights, the service hooks), Azure ML (credential, workspace, Event Grid
subscriptions), Slack (``auth.test`` and scopes), Teams (a Bot Framework token), and Handoff itself through
``server.public_url``. Nothing is changed anywhere; no secret is printed.
"""

from __future__ import annotations

from typing import Any

from adapters.doctor.azure_devops import check_azure_devops
from adapters.doctor.azure_ml import check_azure_ml
from adapters.doctor.public_url import check_public_url
from adapters.doctor.report import Check, Status
from adapters.doctor.slack import check_slack
from adapters.doctor.store import check_store
from adapters.doctor.teams import check_teams
from bot.config import Settings

__all__ = ["Check", "Status", "run_checks"]


async def run_checks(settings: Settings, *, teams_http_client: Any = None) -> list[Check]:
    """Every check, in the order a person fixes things: store, services, then the way in.

    ``teams_http_client`` is handed to MSAL for the Teams token (tests point it at a local endpoint).
    """
    store, chat_filters = await check_store(settings)
    checks = [store]
    checks += await check_azure_devops(settings, chat_filters)
    checks += await check_azure_ml(settings)
    checks += await check_slack(settings)
    checks += await check_teams(settings, teams_http_client)
    checks += await check_public_url(settings)
    return checks
