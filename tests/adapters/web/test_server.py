"""The HTTP edge: health, readiness, metrics, body caps and error mapping on a real server."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text as sa_text

from adapters.emulators.base import LocalServer
from adapters.sql import SqlStore
from adapters.web.limits import set_body_limit
from adapters.web.metrics import PROBE_HEADER, PROBE_VALUE
from bot.app import create_app, start_server
from bot.config import parse_settings
from bot.ports import EventRecord
from bot.records import ConversationAddress, NewDelivery, ReceivedEvent


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_health_ready_and_metrics(sqlite_url: str, session: aiohttp.ClientSession) -> None:
    settings = parse_settings({"store": {"url": sqlite_url}}, {})
    server = await start_server(settings, port=0)
    try:
        async with session.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        async with session.get(f"{server.url}/readyz") as resp:
            assert resp.status == 200
        async with session.get(f"{server.url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        assert "handoff_info{" in text
        assert 'handoff_http_requests_total{route="/readyz",status="200"} 1.0' in text
        assert 'handoff_deliveries{state="pending"} 0.0' in text
        assert "# TYPE handoff_delivery_unsent_total counter" in text
    finally:
        await server.stop()


async def test_metrics_count_the_outbox_at_each_scrape(
    sqlite_url: str, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    store = await SqlStore.open(sqlite_url)
    try:
        app = create_app(parse_settings({"store": {"url": sqlite_url}}, {}), store)
        async with LocalServer(app) as server:

            async def scraped() -> str:
                async with session.get(f"{server.url}/metrics") as resp:
                    assert resp.status == 200
                    return await resp.text()

            assert 'handoff_deliveries{state="pending"} 0.0' in await scraped()
            now = datetime.now(UTC)
            received = ReceivedEvent("azure-devops:contoso:e1", "azure-devops", "run", now, {"id": "e1"})
            to = [NewDelivery(ConversationAddress("slack", f"C{i}"), "run:1", {"op": "card"}) for i in range(3)]
            assert await store.record_events([EventRecord(received, to)])
            text = await scraped()
            assert 'handoff_deliveries{state="pending"} 3.0' in text
            assert 'handoff_deliveries{state="dead"} 0.0' in text
            assert 'handoff_deliveries{state="unreachable"} 0.0' in text  # given up where Handoff cannot post
            assert 'state="sent"' not in text  # most of the table, and counted by handoff_delivery_seconds
            # the database goes away: the scrape still answers, with the last count, and says why in the log
            await store.engine.dispose()
            for file in Path(sqlite_url.removeprefix("sqlite:///")).parent.glob("handoff.db*"):
                file.unlink()
            with caplog.at_level(logging.WARNING, logger="handoff.web"):
                assert 'handoff_deliveries{state="pending"} 3.0' in await scraped()
            assert any("metrics: counting the outbox failed" in r.getMessage() for r in caplog.records)
    finally:
        await store.close()


async def test_scrapes_while_the_store_is_down_log_once_when_it_goes_and_once_when_it_is_back(
    store_url: str, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Prometheus scrapes every 15 s: the log hears that the outbox cannot be counted once, not at each scrape,
    and once that it is counted again; every scrape is answered meanwhile."""
    store = await SqlStore.open(store_url, migrate=False)  # no tables: the outbox cannot be counted
    try:
        app = create_app(parse_settings({}, {}), store)
        async with LocalServer(app) as server:

            async def scraped() -> str:
                async with session.get(f"{server.url}/metrics") as resp:
                    assert resp.status == 200
                    return await resp.text()

            with caplog.at_level(logging.INFO, logger="handoff.web"):
                for _ in range(5):
                    assert "handoff_info{" in await scraped()
                down = [r for r in caplog.records if r.name == "handoff.web"]
                caplog.clear()
                await store.migrate()
                for _ in range(3):
                    assert 'handoff_deliveries{state="pending"} 0.0' in await scraped()
                back = [r for r in caplog.records if r.name == "handoff.web"]
    finally:
        await store.close()
    assert [r.levelno for r in down] == [logging.ERROR]
    assert down[0].getMessage().startswith("metrics: counting the outbox failed: ")
    assert down[0].getMessage().endswith("; trying again, and saying so when it works")
    assert [r.levelno for r in back] == [logging.WARNING]
    assert back[0].getMessage().startswith("metrics: counting the outbox: counted again after 5 failed tries over ")


async def test_readyz_is_503_until_migrated(store_url: str, session: aiohttp.ClientSession) -> None:
    store = await SqlStore.open(store_url, migrate=False)
    app = create_app(parse_settings({}, {}), store)
    try:
        async with LocalServer(app) as server:
            async with session.get(f"{server.url}/readyz") as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "5"
            await store.migrate()
            async with session.get(f"{server.url}/readyz") as resp:
                assert resp.status == 200
    finally:
        await store.close()


@pytest.fixture
async def edge_app(sqlite_url: str) -> AsyncIterator[LocalServer]:
    """Handoff's app with two extra routes: one echoing its body (cap 1 KiB), one that crashes."""
    store = await SqlStore.open(sqlite_url)
    app = create_app(parse_settings({}, {}), store)

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"length": len(await request.read())})

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("database exploded: password=hunter22")

    app.router.add_post("/echo", echo)
    app.router.add_post("/crash", crash)
    set_body_limit(app, "/echo", 1024)
    async with LocalServer(app) as server:
        yield server
    await store.close()


async def test_body_cap_per_route(edge_app: LocalServer, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{edge_app.url}/echo", data=b"x" * 1024) as resp:
        assert resp.status == 200 and (await resp.json()) == {"length": 1024}
    async with session.post(f"{edge_app.url}/echo", data=b"x" * 1025) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"y" * 600

    async with session.post(f"{edge_app.url}/echo", data=chunks()) as resp:
        assert resp.status == 413


async def test_unexpected_error_is_503_without_traceback(
    edge_app: LocalServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with session.post(f"{edge_app.url}/crash", data=b"{}") as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        body = await resp.text()
    assert json.loads(body)["error"] == "temporarily_unavailable"
    assert "Traceback" not in body and "exploded" not in body
    assert any("POST /crash failed" in r.getMessage() for r in caplog.records)


async def test_a_request_saying_it_is_a_doctor_probe_cannot_hide_a_server_error(
    edge_app: LocalServer, session: aiohttp.ClientSession
) -> None:
    probe = {PROBE_HEADER: PROBE_VALUE}
    async with session.post(f"{edge_app.url}/crash", data=b"{}", headers=probe) as resp:
        assert resp.status == 503
    async with session.post(f"{edge_app.url}/echo", data=b"{}", headers=probe) as resp:
        assert resp.status == 200
    async with session.get(f"{edge_app.url}/metrics") as resp:
        text = await resp.text()
    assert 'handoff_http_requests_total{route="/crash",status="503"} 1.0' in text
    assert 'handoff_doctor_probes_total{route="/echo",status="200"} 1.0' in text
    assert 'handoff_http_requests_total{route="/echo"' not in text


async def test_unknown_route_and_method(edge_app: LocalServer, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{edge_app.url}/nope") as resp:
        assert resp.status == 404
    async with session.get(f"{edge_app.url}/echo") as resp:
        assert resp.status == 405


async def test_metrics_keep_the_outbox_count_and_say_the_store_is_down_when_it_fails(
    store_url: str, session: aiohttp.ClientSession
) -> None:
    store = await SqlStore.open(store_url)
    try:
        app = create_app(parse_settings({"store": {"url": store_url}}, {}), store)
        async with LocalServer(app) as server:

            async def scraped() -> str:
                async with session.get(f"{server.url}/metrics") as resp:
                    assert resp.status == 200
                    return await resp.text()

            received = ReceivedEvent("azure-devops:contoso:e1", "azure-devops", "run", datetime.now(UTC), {"id": "e1"})
            to = [NewDelivery(ConversationAddress("slack", f"C{i}"), "run:1", {"op": "card"}) for i in range(2)]
            assert await store.record_events([EventRecord(received, to)])
            text = await scraped()
            assert 'handoff_deliveries{state="pending"} 2.0' in text and "handoff_store_up 1.0" in text
            async with store.engine.begin() as conn:  # the outbox goes away (a dropped schema, a lost file)
                await conn.execute(sa_text("DROP TABLE deliveries"))
            text = await scraped()
            assert 'handoff_deliveries{state="pending"} 2.0' in text  # the alert on dead does not go absent
            assert 'handoff_deliveries{state="dead"} 0.0' in text
            assert "handoff_store_up 0.0" in text
    finally:
        await store.close()


async def test_readyz_is_503_once_the_sqlite_file_is_deleted(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    folder = tmp_path / "data"
    settings = parse_settings({"store": {"url": f"sqlite:///{folder / 'handoff.db'}"}}, {})
    server = await start_server(settings, port=0)
    try:
        async with session.get(f"{server.url}/readyz") as resp:
            assert resp.status == 200
        shutil.rmtree(folder)  # the open file still answers, but what is written now is lost at the next start
        server.store.readiness.forget()  # (rather than wait out the second a ready answer holds)
        async with session.get(f"{server.url}/readyz") as resp:
            assert resp.status == 503
    finally:
        await server.stop()
