"""Turn every unexpected exception into a clean answer: no traceback ever reaches a client.

Internal trouble is a 503 with ``Retry-After``, so that senders (Azure DevOps, Event Grid, Slack)
retry instead of dropping the request or disabling the hook.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger("handoff.web")


def http_error_answer(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    """The answer for an ``HTTPException`` a handler (or aiohttp's router) raised: its status, in JSON."""
    if exc.status >= 500:
        log.warning("%s %s answered %s", request.method, request.path, exc.status)
    if exc.empty_body or exc.text is None:
        return exc
    return web.json_response(
        {"error": exc.reason.lower().replace(" ", "_"), "message": exc.text},
        status=exc.status,
        headers={k: v for k, v in exc.headers.items() if k.lower() != "content-type"},
    )


def failure_answer(request: web.Request) -> web.Response:
    """The answer for an unexpected exception (logged with its traceback here): 503, retry."""
    log.exception("%s %s failed", request.method, request.path)
    return web.json_response(
        {"error": "temporarily_unavailable", "message": "Handoff could not process this request; retry"},
        status=503,
        headers={"Retry-After": "5"},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return http_error_answer(request, exc)
    except Exception:
        return failure_answer(request)
