"""The emulated REST API, one module per area; :func:`register_all` adds every route to a router."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.emulators.azure_devops.api import (
    approvals,
    builds,
    discovery,
    hooks,
    identities,
    pages,
    pipelines,
    release,
)

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator
    from adapters.emulators.azure_devops.router import Router


def register_all(router: Router, emulator: AzureDevOpsEmulator) -> None:
    """Add the routes of every area."""
    for module in (discovery, pipelines, builds, approvals, release, hooks, identities, pages):
        module.register(router, emulator)
