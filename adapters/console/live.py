"""Live updates: what changed, pushed to every open page as Server-Sent Events.

The Slack and Teams emulators call their state's listeners on every change (see ``SlackState.listeners``
and ``ConnectorState.listeners``); the world panel's sources (runs, jobs, models, lake files) are
compared every :data:`WORLD_POLL` seconds. Changes within :data:`DEBOUNCE` seconds go out as one event,
``event: change`` with ``{"version": n, "scopes": ["slack", "teams", "world"]}``; the page then fetches
what it shows again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

DEBOUNCE = 0.05
WORLD_POLL = 0.5
KEEPALIVE = 15.0
QUEUE_SIZE = 16
SCOPES = ("slack", "teams", "world")

log = logging.getLogger("handoff.console.live")


class ChangeFeed:
    """Collects change notifications (from any thread) and fans them out to subscribers."""

    def __init__(self, debounce: float = DEBOUNCE) -> None:
        self.debounce = debounce
        self.version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[str] = set()
        self._flush_scheduled = False
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def listener(self, scope: str) -> Callable[[], None]:
        """A no-argument callback that reports a change of ``scope`` (safe to call from any thread)."""

        def notify() -> None:
            self.notify(scope)

        return notify

    def notify(self, scope: str) -> None:
        """Report that ``scope`` changed; subscribers hear of it after the debounce delay."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._mark(scope)
        else:
            loop.call_soon_threadsafe(self._mark, scope)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)

    def close(self) -> None:
        """End every subscription (the event streams finish)."""
        for queue in list(self._queues):
            _put(queue, None)
        self._loop = None

    def _mark(self, scope: str) -> None:
        self._pending.add(scope)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_later(self.debounce, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending:
            return
        self.version += 1
        event = {"version": self.version, "scopes": sorted(self._pending)}
        self._pending.clear()
        for queue in list(self._queues):
            _put(queue, event)


def _put(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    if queue.full():  # a slow page: it refetches everything anyway, so older events can go
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)


async def watch_world(feed: ChangeFeed, snapshot: Callable[[], Any], interval: float = WORLD_POLL) -> None:
    """Report ``"world"`` whenever ``snapshot()`` gives something new (runs until cancelled)."""
    last = ""
    while True:
        try:
            raw = json.dumps(snapshot(), sort_keys=True, default=str)
        except Exception:  # state changing under us (an emulator served from another thread): try again
            log.debug("world snapshot failed", exc_info=True)
        else:
            digest = hashlib.sha256(raw.encode()).hexdigest()
            if last and digest != last:
                feed.notify("world")
            last = digest
        await asyncio.sleep(interval)


async def event_stream(request: web.Request, feed: ChangeFeed) -> web.StreamResponse:
    """``GET events``: a ``text/event-stream`` of ``change`` events (a ``hello`` first, keep-alives between)."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = feed.subscribe()
    try:
        hello = json.dumps({"version": feed.version, "scopes": list(SCOPES)})
        await response.write(f"retry: 1000\nevent: hello\ndata: {hello}\n\n".encode())
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event is None:
                break
            await response.write(f"event: change\ndata: {json.dumps(event)}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        feed.unsubscribe(queue)
    return response
