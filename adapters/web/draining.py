"""Shutting down without dropping a request already on its way.

When Handoff stops it first stops listening; a sender whose connection is already open (Azure DevOps and
Event Grid keep theirs alive between deliveries) may have its next request in flight. Closing that
connection would reset it, which Azure DevOps counts as an enduring failure (the hook goes on probation).
So, for a moment before the connections close, every new request on them is answered 503 with
``Retry-After`` and ``Connection: close``, which every sender retries, and the requests already being
handled finish as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from adapters.web.answers import json_answer

RETRY_AFTER_SECONDS = 5


@dataclass
class Draining:
    """Whether the application is shutting down (set by the server as it stops listening)."""

    active: bool = False


DRAINING = web.AppKey("handoff_draining", Draining)


def draining_answer() -> web.Response:
    """The answer to a request that arrives while Handoff shuts down: retry, elsewhere or later."""
    response = json_answer(
        {"error": "shutting_down", "message": "Handoff is restarting; retry"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
    response.force_close()  # (says Connection: close, and closes it)
    return response
