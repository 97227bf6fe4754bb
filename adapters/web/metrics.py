"""How the HTTP metrics name a request's route, and tell ``handoff doctor``'s probes from the services' traffic
(:mod:`adapters.web.edge` counts and times every answer)."""

from __future__ import annotations

from aiohttp import web


def route_of(request: web.Request) -> str:
    """The route a request matched, as the metrics name it (its canonical path, or ``unmatched``); a path's
    alias with a trailing slash counts as the path."""
    resource = request.match_info.route.resource
    return (resource.canonical.rstrip("/") or "/") if resource is not None else "unmatched"


PROBE_HEADER = "Handoff-Probe"
"""The header ``handoff doctor`` sends (with :data:`PROBE_VALUE`) on each request to Handoff's own endpoints."""
PROBE_VALUE = "doctor"


def is_doctor_probe(request: web.Request) -> bool:
    """Whether the request says it is a ``handoff doctor`` probe (anyone can say so: see the edge's use)."""
    return request.headers.get(PROBE_HEADER) == PROBE_VALUE
