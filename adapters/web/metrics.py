"""Count every request by route and status, and time it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.web.health import METRICS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].answered(route, status, time.perf_counter() - started)
