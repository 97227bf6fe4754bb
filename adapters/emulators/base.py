"""What every emulator shares: a request recorder, scripted faults and an in-process server.

Faults are scripted per route as a queue; each matching request takes the next fault off the queue.
Every kind but ``reset_after`` answers instead of the emulated service, so the request has no effect;
``reset_after`` lets the service act on it and then drops the connection before the answer, the case
where a client sees a failure although its call took effect (and a blind retry acts twice), as does a 5xx
scripted ``after_acting`` (a gateway in front of the service that lost its answer: 502, 504); ``hold`` keeps
the request waiting on the emulator's clock before the service acts on it, the case of a call that outlasts
whatever bounds it (a client that hangs up first leaves it undone).
A route is written ``"METHOD /path/glob"`` (``*`` matches within the path, ``**`` across ``/``), for
example ``"POST /api/chat.postMessage"`` or ``"GET /ado/*/_apis/pipelines/**"``. The control routes under
``/_emulator/`` (never recorded, never faulted) let another process script faults and read requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from bot.clock import Clock, SystemClock

FaultKind = Literal["400", "429", "500", "502", "503", "504", "stall", "hold", "reset", "reset_after", "malformed_json"]
FAULT_KINDS: tuple[str, ...] = (
    "400",
    "429",
    "500",
    "502",
    "503",
    "504",
    "stall",
    "hold",
    "reset",
    "reset_after",
    "malformed_json",
)
CONTROL_PREFIX = "/_emulator"
HANG_UP_POLL = 0.01  # how often a held request looks whether its client is still there (seconds)
# Set on an emulator's application when it is mounted under a prefix (``/ado``, ``/slack``…), so that
# recorded paths and fault routes stay relative to the emulator, however it is served.
MOUNT_PREFIX = web.AppKey("emulator_mount_prefix", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour.

    Args:
        kind: ``"400"`` (the service refuses the request as sent), ``"429"`` (with ``Retry-After``),
            ``"500"``/``"502"``/``"503"``/``"504"``, ``"stall"`` (wait ``stall_seconds`` before answering normally),
            ``"hold"`` (as a stall, on the emulator's clock, so that a fake clock moves it; a request whose client hangs
            up meanwhile is dropped unhandled, as a service whose queue never reached it), ``"reset"`` (drop the
            connection without handling the request), ``"reset_after"`` (handle the request, so that its changes happen,
            then drop the connection instead of sending the answer), or ``"malformed_json"`` (200 with a truncated JSON
            body).
        retry_after: seconds sent in ``Retry-After`` with a 429 (and 503).
        stall_seconds: how long a stall or a hold lasts.
        body: the JSON body of a 429 or 5xx, instead of the emulator's usual one (for an error shape the
            service also answers with, such as its own JSON error on a 503).
        after_acting: for a 5xx, let the service act on the request first (its changes happen), then answer
            the 5xx instead of its answer: a gateway's 502 or 504 for a request that reached the service.
        status: the HTTP status of a ``"400"`` fault's answer, for a refusal the service words otherwise (Slack
            answers ``{"ok": false, "error": …}`` with 200; the Bot Connector refuses with 401, 403 or 404).
        matching: text the request's path or body must contain for the fault to apply (a channel's id, say);
            another request matching the route passes by it, leaving it queued.
    """

    kind: FaultKind
    retry_after: float = 1.0
    stall_seconds: float = 30.0
    body: dict[str, Any] | None = None
    after_acting: bool = False
    status: int | None = None
    matching: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Fault:
        if isinstance(data, str):
            data = {"kind": data}
        kind = str(data.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            retry_after=float(data.get("retry_after", 1.0)),
            stall_seconds=float(data.get("stall_seconds", 30.0)),
            body=data["body"] if isinstance(data.get("body"), dict) else None,
            after_acting=bool(data.get("after_acting", False)),
            status=int(data["status"]) if data.get("status") is not None else None,
            matching=str(data["matching"]) if data.get("matching") is not None else None,
        )

    def applies_to(self, path: str, body: bytes) -> bool:
        """Whether the fault applies to a request (of its route) with this path and body."""
        return self.matching is None or self.matching in path or self.matching in body.decode("utf-8", "replace")


def _route_regex(pattern: str) -> re.Pattern[str]:
    method, _, path = pattern.partition(" ")
    if not path:
        method, path = "*", method
    parts = re.split(r"(\*\*|\*)", path)
    rx = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    method_rx = ".*" if method == "*" else re.escape(method.upper())
    return re.compile(f"^{method_rx} {rx}$")


class FaultScript:
    """Per-route queues of faults; thread-safe enough for one event loop."""

    def __init__(self) -> None:
        self._queues: list[tuple[str, re.Pattern[str], deque[Fault]]] = []

    def add(self, route: str, faults: Iterable[Fault | FaultKind]) -> None:
        """Queue faults for requests matching ``route`` (``"METHOD /path/glob"``)."""
        queue = deque(f if isinstance(f, Fault) else Fault(f) for f in faults)
        self._queues.append((route, _route_regex(route), queue))

    def clear(self) -> None:
        self._queues.clear()

    def take(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        """The next fault for this request, if any is scripted (and :meth:`Fault.applies_to` it)."""
        key = f"{method.upper()} {path}"
        for _, rx, queue in self._queues:
            if queue and rx.match(key) and queue[0].applies_to(path, body):
                return queue.popleft()
        return None

    def pending(self) -> dict[str, int]:
        return {route: len(q) for route, _, q in self._queues if q}


@dataclass
class RecordedRequest:
    """A request an emulator received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.text(),
            "status": self.status,
        }


class Recorder:
    """Keeps every request an emulator received, in order, and lets tests wait for one."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._changed = asyncio.Event()

    def add(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._changed.set()

    def clear(self) -> None:
        self.requests.clear()

    def matching(self, route: str) -> list[RecordedRequest]:
        """Requests matching ``"METHOD /path/glob"`` (or just a path glob)."""
        rx = _route_regex(route)
        return [r for r in self.requests if rx.match(f"{r.method} {r.path}")]

    async def wait_for(self, route: str, count: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests match ``route``; raise TimeoutError otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.matching(route)
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(found)} of {count} requests matching {route!r} arrived")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue


def fnmatch_any(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


FaultBody = Callable[[Fault], Any]
"""Builds the JSON body of a 429/5xx fault in a service's own error shape (see ``recording_middleware``)."""


def _error_body(fault: Fault, fault_body: FaultBody | None, generic: Any) -> Any:
    """The JSON body of a 429 or 5xx ``fault``: its own, else the emulated service's shape, else ``generic``."""
    if fault.body is not None:
        return fault.body
    return fault_body(fault) if fault_body else generic


async def _apply_fault(
    request: web.Request, fault: Fault, handler: Handler, fault_body: FaultBody | None, clock: Clock
) -> web.StreamResponse:
    if fault.kind == "429":
        return web.json_response(
            _error_body(fault, fault_body, {"error": "ratelimited", "message": "Too many requests"}),
            status=429,
            headers={"Retry-After": f"{fault.retry_after:g}"},
        )
    if fault.kind in ("400", "500", "502", "503", "504"):
        if fault.after_acting:  # its changes happen; its answer (a refusal too) is replaced by the fault's
            with contextlib.suppress(web.HTTPException):
                await handler(request)
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.kind == "503" else {}
        body = _error_body(fault, fault_body, {"error": "emulated_fault", "status": int(fault.kind)})
        return web.json_response(body, status=fault.status or int(fault.kind), headers=headers)
    if fault.kind == "stall":
        await asyncio.sleep(fault.stall_seconds)
        return await handler(request)
    if fault.kind == "hold":
        if not await _held(request, fault.stall_seconds, clock):
            return web.Response(status=499)  # never reaches the client: it hung up, and nothing was done
        return await handler(request)
    if fault.kind == "reset":
        _drop_connection(request)
        return web.Response(status=500)  # never reaches the client: the connection is gone
    if fault.kind == "reset_after":
        # The request takes effect, but its answer is lost (a handler that streams its answer itself
        # has sent it by then; the emulators' handlers return theirs).
        try:
            return await handler(request)
        finally:
            _drop_connection(request)
    # malformed_json
    return web.Response(status=200, body=b'{"ok": true, "value": [', content_type="application/json")


async def _held(request: web.Request, seconds: float, clock: Clock) -> bool:
    """Hold ``request`` for ``seconds`` of ``clock``; False if its client hung up first."""
    held = asyncio.ensure_future(clock.sleep(seconds))
    try:
        while not held.done():
            if request.transport is None or request.transport.is_closing():
                return False
            await asyncio.wait({held}, timeout=HANG_UP_POLL)  # (aiohttp tells a handler nothing of a hang-up)
        return True
    finally:
        held.cancel()


def _drop_connection(request: web.Request) -> None:
    """Abort the TCP connection: the client sees a disconnect (aiohttp: ``ServerDisconnectedError``)."""
    if request.transport is not None:
        request.transport.abort()


def emulator_path(request: web.Request) -> str:
    """The request's path relative to the emulator's own root."""
    prefix = request.app.get(MOUNT_PREFIX, "")
    return request.path.removeprefix(prefix) if prefix else request.path


def mount(root: web.Application, prefix: str, app: web.Application) -> None:
    """Serve an emulator's application under ``prefix`` of ``root``."""
    app[MOUNT_PREFIX] = prefix
    root.add_subapp(prefix, app)


def recording_middleware(
    recorder: Recorder, faults: FaultScript, fault_body: FaultBody | None = None, clock: Clock | None = None
) -> Any:
    """An aiohttp middleware that records each request and applies the next scripted fault.

    ``fault_body``, if given, makes 429 and 5xx faults answer in the emulated service's error shape; ``clock``
    is what a ``hold`` waits on (the real one if None).
    """
    held_on = clock or SystemClock()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = emulator_path(request)
        if path.startswith(CONTROL_PREFIX):
            return await handler(request)
        body = await request.read()
        entry = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
        )
        recorder.add(entry)
        fault = faults.take(request.method, path, body)
        response = await (_apply_fault(request, fault, handler, fault_body, held_on) if fault else handler(request))
        entry.status = response.status
        return response

    return middleware


def add_control_routes(app: web.Application, recorder: Recorder, faults: FaultScript) -> None:
    """``POST /_emulator/faults`` ({"route", "faults"}), ``GET|DELETE /_emulator/requests``."""

    async def post_faults(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            route = str(data["route"])
            script = [Fault.from_json(f) for f in data["faults"]]
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        faults.add(route, script)
        return web.json_response({"pending": faults.pending()})

    async def delete_faults(request: web.Request) -> web.Response:
        faults.clear()
        return web.json_response({"pending": {}})

    async def get_requests(request: web.Request) -> web.Response:
        return web.json_response([r.to_json() for r in recorder.requests])

    async def delete_requests(request: web.Request) -> web.Response:
        recorder.clear()
        return web.json_response({"cleared": True})

    app.router.add_post(f"{CONTROL_PREFIX}/faults", post_faults)
    app.router.add_delete(f"{CONTROL_PREFIX}/faults", delete_faults)
    app.router.add_get(f"{CONTROL_PREFIX}/requests", get_requests)
    app.router.add_delete(f"{CONTROL_PREFIX}/requests", delete_requests)


WILDCARD_HOSTS: dict[str, str] = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
"""Addresses that bind every interface (IPv4, IPv6), each with the loopback address a local client connects to."""


class LocalServer:
    """Serves an aiohttp application on 127.0.0.1 (port 0 by default) inside the running loop.

    Use as ``async with LocalServer(app) as server: server.url``.
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def listens_everywhere(self) -> bool:
        """Whether it is bound to every interface (``0.0.0.0``, ``::``) rather than one address."""
        return self.host in WILDCARD_HOSTS

    @property
    def url(self) -> str:
        """Where a client on this machine reaches it: the loopback address when it listens on every interface,
        since a wildcard is an address to bind, not one to connect to (and Handoff allows plain http only to
        this machine)."""
        host = WILDCARD_HOSTS.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self) -> LocalServer:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
