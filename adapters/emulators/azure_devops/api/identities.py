"""Identities API (area IMS): ``GET {org}/_apis/identities`` by ids or descriptors, with membership; and
``GET {org}/_apis/connectionData``, which says whose PAT a request carries.

Reading identities needs the PAT scope ``vso.identity`` (Identity: Read): a PAT limited to other scopes
(``World.limit_pat``) is refused with the service's 401 ``TF400813``.

One entry per requested key, in order; an unknown key answers ``null`` at its place, as the service does.
``searchFilter``/``filterValue``, ``subjectDescriptors`` and ``socialDescriptors`` are not emulated: asking
for them is a 400. Each call is in the emulator's request log like every other (``ado.recorder``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.emulators.azure_devops import locations
from adapters.emulators.azure_devops.errors import bad_request
from adapters.emulators.azure_devops.identities import QUERY_MEMBERSHIP, Directory
from adapters.emulators.azure_devops.router import Call, Router
from adapters.emulators.azure_devops.shapes import collection
from adapters.emulators.azure_devops.world import Principal

if TYPE_CHECKING:
    from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator

KEYS = ("identityIds", "descriptors")
NOT_EMULATED = ("subjectDescriptors", "socialDescriptors", "searchFilter")


def requested_keys(call: Call) -> tuple[str, list[str]]:
    """Which kind of key was given (``identityIds`` or ``descriptors``) and the keys, in order."""
    given = [name for name in (*KEYS, *NOT_EMULATED) if call.arg(name) is not None]
    if len(given) != 1 or given[0] not in KEYS:
        raise bad_request(
            "Exactly one of identityIds or descriptors must be given (the emulator does not support "
            f"{', '.join(NOT_EMULATED)}); got: {', '.join(given) or 'none'}."
        )
    keys = [k.strip() for k in (call.arg(given[0]) or "").split(",") if k.strip()]
    if not keys:
        raise bad_request(f"The value of {given[0]} is empty: give a comma-separated list.")
    return given[0], keys


def query_membership(call: Call) -> str:
    """The ``queryMembership`` asked for, in the service's spelling (``None`` when not given)."""
    value = call.arg("queryMembership") or "None"
    found = QUERY_MEMBERSHIP.get(value.lower())
    if found is None:
        raise bad_request(
            f"The value '{value}' is not valid for queryMembership: use {', '.join(QUERY_MEMBERSHIP.values())}."
        )
    return found


def register(router: Router, emulator: AzureDevOpsEmulator) -> None:
    directory = Directory(emulator.world)

    def render(who: Principal | None, query: str) -> dict[str, Any] | None:
        return None if who is None else emulator.shapes.ims_identity(who, directory.membership(who, query))

    async def read_identities(call: Call) -> web.Response:
        kind, keys = requested_keys(call)
        query = query_membership(call)
        find = directory.by_id if kind == "identityIds" else directory.by_descriptor
        return web.json_response(collection([render(find(key), query) for key in keys]))

    async def connection_data(call: Call) -> web.Response:
        assert call.caller is not None
        return web.json_response(emulator.shapes.connection_data(call.caller))

    router.add("GET", "{org}/_apis/identities", read_identities, location=locations.IDENTITIES, scope="vso.identity")
    # who the PAT belongs to: any PAT may ask
    router.add("GET", "{org}/_apis/connectionData", connection_data, location=locations.CONNECTION_DATA)
