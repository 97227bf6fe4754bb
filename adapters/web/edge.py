"""What every request to Handoff's application goes through: the body cap, a clean answer for any
exception, and the metrics.

One middleware for the three, not three middlewares: every layer costs every request (each webhook
delivery included) a coroutine of its own. The parts live beside it: :mod:`adapters.web.limits`,
:mod:`adapters.web.errors`, :mod:`adapters.web.metrics`.
"""

from __future__ import annotations

import time

from aiohttp import web

from adapters.web.draining import DRAINING, draining_answer
from adapters.web.errors import Handler, failure_answer, http_error_answer
from adapters.web.health import METRICS
from adapters.web.limits import over_limit, undecodable_body
from adapters.web.metrics import is_doctor_probe, route_of


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """413 over the route's body cap; 400 for a body that does not decode; JSON for an ``HTTPException``;
    503 with ``Retry-After`` for anything else (never a traceback), and for every request while Handoff shuts
    down (:mod:`adapters.web.draining`); every answer counted and timed by route and status (a ``handoff
    doctor`` probe counted apart)."""
    started = time.perf_counter()
    status = 500  # what a cancelled request counts as
    try:
        response: web.StreamResponse
        try:
            if request.app[DRAINING].active:
                response = draining_answer()
                status = response.status
                return response
            refused = await over_limit(request)
            response = refused if refused is not None else await handler(request)
        except web.HTTPException as exc:
            response = http_error_answer(request, exc)
        except web.RequestPayloadError:
            response = undecodable_body(request)
        except Exception:
            response = failure_answer(request)
        status = response.status
        return response
    finally:
        if status < 500 and is_doctor_probe(request):  # the header cannot hide a failure of Handoff itself
            request.app[METRICS].probed(route_of(request), status)
        else:
            request.app[METRICS].answered(route_of(request), status, time.perf_counter() - started)
