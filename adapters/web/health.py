"""``GET /healthz`` (the process is alive), ``GET /readyz`` (the store answers and is migrated),
``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import __version__
from bot.metrics import Metrics
from bot.ports import Store

STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)


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
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
