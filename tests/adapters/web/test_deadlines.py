"""A request has to arrive in time: a body that stops part-way is a 408 and a closed connection, and a
connection whose headers never end (or that sends nothing) is closed; none of them holds a handler.

Handoff as ``handoff serve`` runs it (its routes for Slack, Teams, Azure DevOps and Event Grid), on
127.0.0.1, spoken to over plain sockets, with both deadlines made short.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.demo import local_config, local_world
from adapters.emulators.slack import sign
from adapters.emulators.suite import EmulatorSuite
from adapters.web import limits
from bot.app import RunningServer, start_server
from bot.config import parse_settings

BODY_TIMEOUT = 0.5
IDLE_TIMEOUT = 1.0


@dataclass
class Handoff:
    server: RunningServer
    environ: dict[str, str]


@pytest.fixture
async def handoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Handoff]:
    monkeypatch.setattr(limits, "BODY_TIMEOUT", BODY_TIMEOUT)
    monkeypatch.setattr(limits, "IDLE_TIMEOUT", IDLE_TIMEOUT)
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    suite = await EmulatorSuite(local_world()).start()
    try:
        config, environ = local_config(suite, "http://127.0.0.1:8080", tmp_path)
        server = await start_server(parse_settings(config, environ), port=0, base_dir=tmp_path)
        try:
            yield Handoff(server, environ)
        finally:
            await server.stop()
    finally:
        await suite.stop()


@dataclass
class Exchange:
    """What came back on one connection, up to the server closing it."""

    received: bytes
    seconds: float  # from the last byte sent to the connection's end

    @property
    def status_line(self) -> str:
        return self.received.split(b"\r\n", 1)[0].decode()

    @property
    def headers(self) -> dict[str, str]:
        head = self.received.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
        return {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in head)}

    def json(self) -> object:
        return json.loads(self.received.split(b"\r\n\r\n", 1)[1])


async def exchange(server: RunningServer, *parts: bytes, pause: float = 0.0, wait: float = 10.0) -> Exchange:
    """Send ``parts`` (``pause`` seconds apart), then read until the server closes the connection (at most
    ``wait`` seconds: a connection still open then fails the test)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        for i, part in enumerate(parts):
            if i and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        sent = time.monotonic()
        try:
            received = await asyncio.wait_for(reader.read(), wait)  # to EOF: the connection is closed
        except TimeoutError:
            pytest.fail(f"the connection was still open {wait} s after the request stopped")
        return Exchange(received, time.monotonic() - sent)
    finally:
        writer.close()


def head(path: str, *lines: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: handoff", *lines, "", ""]).encode()


SLOW_BODIES = {
    "slack": head("/slack/events", "Content-Type: application/json", "Content-Length: 1000") + b'{"a":',
    "teams": head("/api/messages", "Content-Type: application/json", "Content-Length: 1000") + b'{"a":',
    "azure devops": head("/hooks/azure-devops", "Content-Type: application/json", "Content-Length: 1000") + b"{",
    "event grid, chunked": head("/hooks/eventgrid", "Content-Type: application/json", "Transfer-Encoding: chunked")
    + b'5\r\n{"a":\r\n',
}


@pytest.mark.parametrize("request_start", SLOW_BODIES.values(), ids=SLOW_BODIES.keys())
async def test_a_body_that_stops_part_way_is_a_408_and_the_connection_closes(
    handoff: Handoff, caplog: pytest.LogCaptureFixture, request_start: bytes
) -> None:
    with caplog.at_level(logging.INFO):
        answer = await exchange(handoff.server, request_start)
    assert answer.status_line == "HTTP/1.1 408 Request Timeout"
    assert answer.headers["connection"] == "close"
    assert answer.json() == {
        "error": "request_timeout",
        "message": f"the body did not arrive within {BODY_TIMEOUT:g} seconds",
    }
    assert BODY_TIMEOUT * 0.9 <= answer.seconds < BODY_TIMEOUT + 3
    path = request_start.split(b" ")[1].decode()
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in troubles] == [
        f"POST {path} from 127.0.0.1: the body did not arrive within {BODY_TIMEOUT:g} s, answered 408"
    ]
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /slack/events HTTP/1.1\r\nHost: handoff\r\nContent-Ty"],
    ids=["nothing", "headers that stop part-way"],
)
async def test_a_connection_without_a_whole_request_is_closed(handoff: Handoff, sent: bytes) -> None:
    answer = await exchange(handoff.server, sent)
    assert answer.received == b""
    assert IDLE_TIMEOUT * 0.9 <= answer.seconds < IDLE_TIMEOUT + 3


async def test_a_kept_alive_connection_left_idle_is_closed(handoff: Handoff) -> None:
    health = b"GET /healthz HTTP/1.1\r\nHost: handoff\r\n\r\n"
    answer = await exchange(handoff.server, health)
    assert answer.status_line == "HTTP/1.1 200 OK"
    assert IDLE_TIMEOUT * 0.9 <= answer.seconds < IDLE_TIMEOUT + 3


async def test_a_body_in_parts_within_the_deadline_reaches_the_route(handoff: Handoff) -> None:
    """The edge reads a body still arriving, under the deadline; the route gets all of it (here Slack's
    signature over the whole body must match)."""
    body = json.dumps({"token": "x", "challenge": "c-42", "type": "url_verification"}).encode()
    ts = str(int(time.time()))
    start = head(
        "/slack/events",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"X-Slack-Request-Timestamp: {ts}",
        f"X-Slack-Signature: {sign(handoff.environ['LOCAL_SLACK_SIGNING_SECRET'], ts, body)}",
        "Connection: close",
    )
    answer = await exchange(handoff.server, start + body[:10], body[10:], pause=BODY_TIMEOUT / 3)
    assert answer.status_line == "HTTP/1.1 200 OK"
    assert answer.json() == {"challenge": "c-42"}


async def test_a_sender_that_hangs_up_part_way_is_one_warning_line(
    handoff: Handoff, caplog: pytest.LogCaptureFixture
) -> None:
    _reader, writer = await asyncio.open_connection(handoff.server.host, handoff.server.port)
    with caplog.at_level(logging.INFO):
        writer.write(SLOW_BODIES["slack"])
        await writer.drain()
        await asyncio.sleep(BODY_TIMEOUT / 5)
        writer.close()
        await writer.wait_closed()
        for _ in range(50):
            if any(r.levelno >= logging.WARNING for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in troubles] == [
        "POST /slack/events from 127.0.0.1: the connection closed before the body was all in"
    ]
    assert not any(r.exc_info for r in caplog.records)
