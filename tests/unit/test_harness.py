"""The test harness itself: the loopback guard, the fake clock and the scripted fake server."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from adapters.emulators.fake_server import FakeHTTPServer
from bot.clock import FakeClock
from tests.conftest import NonLoopbackConnection


def test_loopback_guard_refuses_outside_addresses() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NonLoopbackConnection):
            sock.connect(("192.0.2.1", 443))
    finally:
        sock.close()


async def test_fake_clock_wakes_sleepers_in_order(clock: FakeClock) -> None:
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{clock.monotonic():g}")

    tasks = [asyncio.create_task(sleeper("b", 5)), asyncio.create_task(sleeper("a", 2))]
    await asyncio.sleep(0)
    await clock.advance(1)
    assert woke == []
    await clock.advance(10)
    await asyncio.gather(*tasks)
    assert woke == ["a@2", "b@5"]
    assert clock.monotonic() == 11


async def test_a_fake_clocks_deadline_ends_as_a_sleep_does_but_is_no_sleeper(clock: FakeClock) -> None:
    """Tests move the clock while something sleeps on it; a deadline bounds other work and waits for nothing."""
    deadline = asyncio.create_task(clock.deadline(5))
    await asyncio.sleep(0)
    assert clock.sleepers == 0
    sleeper = asyncio.create_task(clock.sleep(3))
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    await clock.advance(4)
    assert sleeper.done() and not deadline.done()
    await clock.advance(1)
    await deadline


async def test_fake_server_scripts_responses_and_faults(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.respond("POST /hooks/*", status=202, body={"accepted": True})
    fake_http_server.faults.add("POST /hooks/*", ["503", "429"])
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(3):
            async with session.post(f"{fake_http_server.url}/hooks/a", json={"n": 1}) as resp:
                statuses.append((resp.status, resp.headers.get("Retry-After")))
    assert statuses == [(503, "1"), (429, "1"), (202, None)]
    received = fake_http_server.recorder.matching("POST /hooks/a")
    assert [r.json() for r in received] == [{"n": 1}] * 3
    assert [r.status for r in received] == [503, 429, 202]


async def test_fake_server_reset_and_malformed_json(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.respond("POST /x", body={"ok": True})
    fake_http_server.faults.add("POST /x", ["reset", "malformed_json"])
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post(f"{fake_http_server.url}/x") as resp:
                await resp.read()
        async with session.post(f"{fake_http_server.url}/x") as resp:
            with pytest.raises(ValueError):
                await resp.json()
        async with session.post(f"{fake_http_server.url}/x") as resp:
            assert await resp.json() == {"ok": True}


async def test_mounted_emulator_records_paths_relative_to_its_root() -> None:
    from aiohttp import web

    from adapters.emulators.base import FaultScript, LocalServer, Recorder, mount, recording_middleware

    recorder, faults = Recorder(), FaultScript()
    inner = web.Application(middlewares=[recording_middleware(recorder, faults)])

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    inner.router.add_post("/api/hello", hello)
    root = web.Application()
    mount(root, "/slack", inner)
    faults.add("POST /api/hello", ["503"])
    async with LocalServer(root) as server, aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/slack/api/hello") as resp:
            assert resp.status == 503
        async with session.post(f"{server.url}/slack/api/hello") as resp:
            assert resp.status == 200
    assert [r.path for r in recorder.requests] == ["/api/hello", "/api/hello"]
