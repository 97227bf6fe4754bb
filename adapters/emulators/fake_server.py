"""A scripted fake HTTP server: canned responses per route, every request recorded, faults on demand.

The emulators are richer versions of the same idea; this one is for a test that needs a peer with
exactly the answers it scripts::

    async with FakeHTTPServer() as fake:
        fake.respond("POST /hook", status=202)
        fake.faults.add("POST /hook", ["503"])
        ...
        assert fake.recorder.matching("POST /hook")[1].json() == {...}
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.emulators.base import (
    FaultScript,
    LocalServer,
    Recorder,
    _route_regex,
    add_control_routes,
    recording_middleware,
)


@dataclass(frozen=True)
class CannedResponse:
    """An answer the fake gives."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_response(self) -> web.Response:
        if self.body is None:
            return web.Response(status=self.status, headers=self.headers)
        if isinstance(self.body, bytes | str):
            return web.Response(status=self.status, body=self.body, headers=self.headers)
        return web.Response(
            status=self.status,
            text=json.dumps(self.body),
            content_type="application/json",
            headers=self.headers,
        )


class FakeHTTPServer(LocalServer):
    """An aiohttp server on 127.0.0.1:0 that answers from per-route scripts.

    A route's script is a queue; its last response repeats once the queue is down to one. Unscripted
    routes answer ``default`` (404 unless set).
    """

    def __init__(self, default: CannedResponse | None = None) -> None:
        self.recorder = Recorder()
        self.faults = FaultScript()
        self.default = default or CannedResponse(404, {"error": "not scripted"})
        self._scripts: list[tuple[re.Pattern[str], deque[CannedResponse]]] = []
        app = web.Application(middlewares=[recording_middleware(self.recorder, self.faults)])
        add_control_routes(app, self.recorder, self.faults)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        super().__init__(app)

    def respond(
        self,
        route: str,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Append one canned response to ``route``'s script (``"METHOD /path/glob"``)."""
        canned = CannedResponse(status, body, headers or {})
        for rx, queue in self._scripts:
            if rx.pattern == _route_regex(route).pattern:
                queue.append(canned)
                return
        self._scripts.append((_route_regex(route), deque([canned])))

    async def _answer(self, request: web.Request) -> web.Response:
        key = f"{request.method} {request.path}"
        for rx, queue in self._scripts:
            if rx.match(key):
                canned = queue.popleft() if len(queue) > 1 else queue[0]
                return canned.to_response()
        return self.default.to_response()
