"""Serving an emulator from its own thread and event loop.

botbuilder's ``TeamsInfo.get_team_details`` and ``get_team_channels`` use a *synchronous* client inside
the bot's event loop. If the emulator shares that loop, the call blocks the very loop that should answer
it. Serving the emulator from a thread avoids the deadlock.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from adapters.emulators.base import LocalServer


class ThreadedServer:
    """Runs an aiohttp application on 127.0.0.1 in a daemon thread with its own event loop.

    Args:
        app: the application to serve.
        host: the address to bind (loopback only).
        port: 0 picks a free port.
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = LocalServer(app, host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self._server.url

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; returns the base URL once the socket is bound."""
        self._thread = threading.Thread(target=self._run, name="emulator-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the threaded emulator server did not start")
        if self._error is not None:
            raise RuntimeError("the threaded emulator server failed to start") from self._error
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._loop = None
        self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._server.stop())
            loop.close()
