"""A stopping Handoff tells a request already on its way to retry: after it stops listening, a request on a
connection kept open is answered 503 with ``Connection: close`` (not cut off with a reset, which Azure DevOps
counts against its hook), and the stop ends as soon as those connections have closed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.demo import local_config, local_world
from adapters.emulators.suite import EmulatorSuite
from adapters.web.draining import DRAINING
from bot.app import RunningServer, start_server
from bot.config import parse_settings


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningServer]:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    suite = await EmulatorSuite(local_world()).start()
    try:
        config, environ = local_config(suite, "http://127.0.0.1:8080", tmp_path)
        yield await start_server(parse_settings(config, environ), port=0, base_dir=tmp_path)
    finally:
        await suite.stop()


async def answer(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP answer: its status line, headers (lower-cased names) and body."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in head[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 5)
    return head[0], headers, body


async def test_a_request_on_a_connection_kept_open_while_handoff_stops_is_told_to_retry(
    server: RunningServer,
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: handoff\r\n\r\n")  # HTTP/1.1: the connection stays open
        assert (await answer(reader))[0] == "HTTP/1.1 200 OK"

        started = time.monotonic()
        stopping = asyncio.create_task(server.stop(drain=10.0))
        while not server.app[DRAINING].active:  # noqa: ASYNC110 (the stop sets a plain flag)
            await asyncio.sleep(0.01)
        with pytest.raises(OSError):  # no longer listening
            await asyncio.open_connection(server.host, server.port)

        body = b'{"eventType": "ms.vss-pipelines.run-state-changed-event"}'
        writer.write(b"POST /hooks/azure-devops HTTP/1.1\r\nHost: handoff\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status, headers, said = await answer(reader)
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert headers["connection"] == "close" and headers["retry-after"] == "5"
        assert json.loads(said)["error"] == "shutting_down"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection is closed

        await asyncio.wait_for(stopping, 10)
        assert time.monotonic() - started < 5  # once its connections closed, not after the whole drain
    finally:
        writer.close()
