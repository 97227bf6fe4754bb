"""Discovery: ``OPTIONS {org}/_apis`` (locations) and ``GET {org}/_apis/ResourceAreas``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    async def org_options(call: Call) -> web.Response:
        return web.json_response(collection([loc.to_json() for loc in locations.ORG_LOCATIONS]))

    async def release_options(call: Call) -> web.Response:
        return web.json_response(collection([loc.to_json() for loc in locations.RELEASE_LOCATIONS]))

    async def deployment_options(call: Call) -> web.Response:
        # The SDK asks the deployment level for ids the org does not list; it has nothing more.
        return web.json_response(collection([]))

    async def resource_areas(call: Call) -> web.Response:
        if emulator.world.resource_areas == "empty":
            return web.json_response(collection([]))
        areas = locations.resource_areas(emulator.links.org_url, emulator.links.release_url)
        return web.json_response(collection(areas))

    router.add("OPTIONS", "vsrm/{org}/_apis", release_options)
    router.add("OPTIONS", "{org}/_apis", org_options)
    router.add("OPTIONS", "_apis", deployment_options)
    router.add("GET", "{org}/_apis/ResourceAreas", resource_areas, location=locations.RESOURCE_AREAS)
    router.add("GET", "vsrm/{org}/_apis/ResourceAreas", resource_areas, location=locations.RESOURCE_AREAS)
