"""The composition root: builds Handoff's aiohttp application from validated settings.

This is the one module of the core that knows the adapters. Everything else in ``bot/`` talks to
them through the ports.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from adapters.sql import SqlStore
from adapters.web.errors import error_middleware
from adapters.web.health import METRICS, STORE, add_health_routes
from adapters.web.limits import BODY_LIMITS, body_limit_middleware, largest_limit
from adapters.web.metrics import metrics_middleware
from bot.config import Settings
from bot.metrics import Metrics
from bot.ports import Store

log = logging.getLogger("handoff")

# The largest body any route accepts; each route has its own, smaller or equal, cap.
APP_BODY_LIMIT = 3 * 1024 * 1024


def create_app(settings: Settings, store: Store, metrics: Metrics | None = None) -> web.Application:
    """Handoff's web application on an already opened store."""
    limits: dict[str, int] = {}
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, body_limit_middleware],
        client_max_size=max(APP_BODY_LIMIT, largest_limit(limits)),
    )
    app[BODY_LIMITS] = limits
    app[STORE] = store
    app[METRICS] = metrics or Metrics()
    add_health_routes(app)
    return app


async def upgrade_store(settings: Settings) -> str:
    """Migrate the configured store to the latest schema; returns the revision reached."""
    store = await SqlStore.open(settings.store.url, migrate=False)
    try:
        return await store.migrate()
    finally:
        await store.close()


@dataclass
class RunningServer:
    """A started Handoff: its address, and how to stop it gracefully."""

    app: web.Application
    runner: web.AppRunner
    host: str
    port: int
    store: Store
    on_stop: list[Callable[[], object]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the shutdown timeout), close the store."""
        await self.runner.cleanup()
        await self.store.close()


async def start_server(settings: Settings, host: str | None = None, port: int | None = None) -> RunningServer:
    """Open and migrate the store, then serve Handoff on ``host:port`` (port 0 picks a free one)."""
    store = await SqlStore.open(settings.store.url)
    try:
        app = create_app(settings, store)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.server.shutdown_timeout.total_seconds(),
        )
        await runner.setup()
        bind_host = host or settings.server.host
        site = web.TCPSite(runner, bind_host, settings.server.port if port is None else port)
        await site.start()
    except BaseException:
        await store.close()
        raise
    bound = runner.addresses[0]
    return RunningServer(app, runner, bind_host, int(bound[1]), store)


async def serve_until_stopped(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; returns the exit status."""
    server = await start_server(settings, host, port)
    log.info("Handoff is listening on %s", server.url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
        log.info("stopping: finishing in-flight work")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await server.stop()
    log.info("stopped")
    return 0
