"""Request dispatch the way the service does it: case-insensitive routes, PAT auth, api-version checks.

aiohttp's router is case-sensitive, but the SDK lower-cases some URLs (``OPTIONS {org}/_apis`` and any
``locationUrl`` from ResourceAreas), so the emulator matches its own route table with
case-insensitive regular expressions behind one catch-all aiohttp route.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.emulators.azure_devops.errors import ServiceError, bad_request, missing_scope, not_found, unauthorized
from adapters.emulators.azure_devops.locations import Location
from adapters.emulators.azure_devops.world import Identity, World

_VERSION = re.compile(r"api-version\s*=\s*([0-9.]+)(-preview(?:\.(\d+))?)?", re.IGNORECASE)


@dataclass
class Call:
    """One API request, authenticated and routed."""

    request: web.Request
    params: dict[str, str]
    caller: Identity | None
    api_version: str | None = None
    _body: Any = field(default=None, repr=False)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A query parameter, matched case-insensitively like the service does."""
        key = name.lower()
        for k, v in self.request.query.items():
            if k.lower() == key:
                return v
        return default

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            raise bad_request(f"The value '{self.params.get(name)}' is not valid for {name}.") from None

    async def json(self) -> Any:
        """The JSON body; a malformed one is a 400 like the service's."""
        if self._body is None:
            raw = await self.request.read()
            if not raw:
                raise bad_request("The request body is empty.", "VssRequestContentException")
            try:
                self._body = json.loads(raw)
            except ValueError:
                raise bad_request("The request body is not valid JSON.", "VssRequestContentException") from None
        return self._body

    @property
    def accepts_text(self) -> bool:
        return self.request.headers.get("Accept", "").lower().startswith("text/plain")


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler
    location: Location | None
    anonymous: bool
    scope: str | None = None


def _segment(token: str) -> str:
    name, _, pattern = token[1:-1].partition(":")
    return f"(?P<{name}>{pattern or '[^/]+'})"


def _compile(template: str, vsrm: bool) -> re.Pattern[str]:
    """``{name}`` matches one segment, ``{name:regex}`` what the regex allows."""
    parts = re.split(r"(\{\w+(?::[^}]+)?\})", template.strip("/"))
    rx = "".join(_segment(p) if p.startswith("{") else re.escape(p) for p in parts)
    prefix = "(?:vsrm/)?" if vsrm else ""
    return re.compile(f"^/{prefix}{rx}/?$", re.IGNORECASE)


class Router:
    """The emulator's route table and its dispatcher.

    Args:
        world: for the organization, project and PAT lookups.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        location: Location | None = None,
        anonymous: bool = False,
        vsrm: bool = False,
        scope: str | None = None,
    ) -> None:
        """Route ``METHOD /template`` (``{name}`` segments become params) to ``handler``; a caller whose PAT
        lacks ``scope`` is refused."""
        self.routes.append(Route(method.upper(), _compile(template, vsrm), handler, location, anonymous, scope))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """The catch-all aiohttp handler."""
        path = request.match_info.get("tail")
        path = "/" + path if path is not None else request.path
        matched = [(r, m) for r in self.routes if (m := r.regex.match(path))]
        if not matched:
            return not_found("NotFoundException", f"The resource at {request.path} does not exist.").response()
        route_match = next(((r, m) for r, m in matched if r.method == request.method), None)
        if route_match is None:
            allowed = sorted({r.method for r, _ in matched})
            return web.Response(status=405, headers={"Allow": ", ".join(allowed)})
        route, match = route_match
        caller = None
        if not route.anonymous:
            caller = self.authenticate(request)
            if caller is None:
                return unauthorized()
            if route.scope is not None and not self.world.pat_allows(caller, route.scope):
                return missing_scope(caller.id).response()
        try:
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            self._check_scope(params)
            call = Call(request=request, params=params, caller=caller)
            if route.location is not None:
                call.api_version = self._check_version(request, route.location)
            return await route.handler(call)
        except ServiceError as exc:
            return exc.response()

    def authenticate(self, request: web.Request) -> Identity | None:
        """The identity whose PAT is the basic-auth password (any user name)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, pat = decoded.partition(":")
        return self.world.identity_for_pat(pat) if pat else None

    def _check_scope(self, params: dict[str, str]) -> None:
        org = params.get("org")
        if org is not None and org.lower() != self.world.organization.lower():
            raise not_found("OrganizationNotFoundException", f"The organization '{org}' does not exist.")
        project = params.get("project")
        if project is not None and project.lower() not in (self.world.project.lower(), self.world.project_id):
            raise not_found(
                "ProjectDoesNotExistWithNameException",
                f"TF200016: The following project does not exist: {project}. Verify that the name of the "
                "project is correct and that the project exists on the specified Azure DevOps Server.",
            )

    @staticmethod
    def _check_version(request: web.Request, location: Location) -> str | None:
        found = _VERSION.search(request.headers.get("Accept", ""))
        text = None
        if found:
            text = found.group(0).split("=", 1)[1].strip()
        elif "api-version" in request.query:
            text = request.query["api-version"]
            found = _VERSION.search(f"api-version={text}")
        if text is None or found is None:
            if request.method == "GET":
                return None
            raise bad_request(
                f"No api-version was supplied for the {request.method} request. Please provide an api-version, "
                f"such as api-version={location.max_version}-preview.{location.resource_version}.",
                "VssVersionNotSpecifiedException",
            )
        number = float(found.group(1))
        preview = found.group(2) is not None
        if number > location.max_version or number < location.min_version:
            raise bad_request(
                f"The requested REST API version of {found.group(1)} is out of range for this server. The latest "
                f"REST API version this server supports is {location.max_version}.",
                "VssVersionOutOfRangeException",
            )
        if not preview and number > float(location.released_version):
            raise bad_request(
                f'The requested version "{found.group(1)}" of the resource is under preview. The -preview flag '
                f'must be supplied in the api-version for such requests. For example: "{found.group(1)}-preview"',
                "VssInvalidPreviewVersionException",
            )
        resource_version = found.group(3)
        if resource_version is not None and int(resource_version) > location.resource_version:
            raise bad_request(
                f"The requested resource version {resource_version} of {location.resource_name} is out of range; "
                f"the latest is {location.resource_version}.",
                "VssVersionOutOfRangeException",
            )
        return text
