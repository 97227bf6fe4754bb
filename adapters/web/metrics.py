"""How the HTTP metrics name a request's route (:mod:`adapters.web.edge` counts and times every answer)."""

from __future__ import annotations

from aiohttp import web


def route_of(request: web.Request) -> str:
    """The route a request matched, as the metrics name it (its canonical path, or ``unmatched``)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
