"""``GET /healthz`` (the process is alive), ``GET /readyz`` (the store answers and is migrated),
``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import __version__
from bot.clock import Clock, SystemClock
from bot.metrics import Metrics
from bot.ports import Store
from bot.records import DeliveryState
from bot.trouble import FailureStreak

log = logging.getLogger("handoff.web")

# The outbox states the deliveries gauge counts.
UNDELIVERED = (DeliveryState.PENDING, DeliveryState.DEAD, DeliveryState.UNREACHABLE)
# A scrape does not wait longer than this for the store's count of the outbox.
COUNT_TIMEOUT_SECONDS = 2.0

STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
# scrapes that could not count the outbox in a row: the log hears when it starts and when it ends, not of each
OUTBOX_COUNT_FAILURES = web.AppKey("outbox_count_failures", FailureStreak)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    if await store.is_ready():
        return web.json_response({"status": "ready"})
    return web.json_response(
        {"status": "not_ready", "reason": "the store is unreachable or not migrated"},
        status=503,
        headers={"Retry-After": "5"},
    )


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    failures = request.app[OUTBOX_COUNT_FAILURES]
    try:
        async with asyncio.timeout(COUNT_TIMEOUT_SECONDS):
            # not the sent ones: they are most of the table (handoff_delivery_seconds counts them)
            registry.deliveries_counted(await request.app[STORE].count_deliveries(UNDELIVERED))
    except Exception as exc:  # the other metrics are still worth scraping; the gauge keeps its last reading
        registry.deliveries_not_counted()
        failures.failed(exc)  # (the wait it returns is for loops: Prometheus decides when to scrape again)
    else:
        failures.succeeded()
    body = generate_latest(registry.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_health_routes(app: web.Application, clock: Clock | None = None) -> None:
    """Register ``/healthz``, ``/readyz`` and ``/metrics`` on ``app`` (which holds the store and the metrics);
    ``clock`` times a run of scrapes that could not count the outbox, for the log."""
    app[OUTBOX_COUNT_FAILURES] = FailureStreak(
        log, "metrics: counting the outbox", clock or SystemClock(), recovered="counted again"
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
