"""A body that says it is compressed but does not decode: a 400 with Handoff's JSON error, never a 503."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from collections.abc import AsyncIterator

import pytest

from tests.adapters.ingest.conftest import ENVIRON, RIGHT_BASIC, Ingest

NOT_GZIP = b'{"eventType": "ms.vss-pipelines.run-state-changed-event"}'
CORRUPT_DEFLATE = zlib.compress(b'{"id": "x"}')[:2] + b"\xff" * 30


async def one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


@pytest.mark.parametrize("path", ["/hooks/azure-devops", "/hooks/eventgrid"])
@pytest.mark.parametrize(
    ("encoding", "body"), [("gzip", NOT_GZIP), ("deflate", CORRUPT_DEFLATE)], ids=["gzip", "deflate"]
)
@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
@pytest.mark.parametrize("credentials", [True, False], ids=["credentials", "no credentials"])
async def test_a_body_that_does_not_decode_is_a_400(
    ingest: Ingest,
    caplog: pytest.LogCaptureFixture,
    path: str,
    encoding: str,
    body: bytes,
    chunked: bool,
    credentials: bool,
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding, "aeg-event-type": "Notification"}
    params = {}
    if credentials:
        headers["Authorization"] = RIGHT_BASIC
        params["code"] = ENVIRON["EG_SECRET"]
    sent = one_chunk(body) if chunked else body
    with caplog.at_level(logging.INFO):
        async with ingest.session.post(f"{ingest.url}{path}", data=sent, headers=headers, params=params) as resp:
            status, answer = resp.status, await resp.json()
    assert status == 400
    assert answer == {
        "error": "invalid_payload",
        "message": f"the body could not be decoded (Content-Encoding {encoding})",
    }
    assert ingest.sink.events == []
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in troubles] == [
        f"POST {path}: the body could not be read (Content-Encoding {encoding})"
    ]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_compressed_body_that_decodes_is_read(ingest: Ingest) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": RIGHT_BASIC}
    async with ingest.session.post(
        f"{ingest.url}/hooks/azure-devops", data=gzip.compress(b'{"id": "x"}'), headers=headers
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"] == "eventType: missing"


TRUNCATED_DEFLATE = zlib.compress(b'{"eventType": "ms.vss-pipelines.run-state-changed-event", "id": "x"}' * 20)[:-12]


@pytest.mark.parametrize("path", ["/hooks/azure-devops", "/hooks/eventgrid"])
async def test_a_deflate_body_that_ends_early_is_a_400_and_one_warning_line(
    ingest: Ingest, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # aiohttp finds it only when the message ends, before any route runs: its own 400, Handoff's log line
    headers = {"Content-Type": "application/json", "Content-Encoding": "deflate", "Authorization": RIGHT_BASIC}
    with caplog.at_level(logging.INFO):
        async with ingest.session.post(f"{ingest.url}{path}", data=TRUNCATED_DEFLATE, headers=headers) as resp:
            status = resp.status
    assert status == 400
    assert ingest.sink.events == []
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.getMessage()) for r in troubles] == [
        (
            "WARNING",
            "a request from 127.0.0.1 is not valid HTTP, answered 400: the body does not decode "
            "(Content-Encoding deflate)",
        )
    ]
    assert not any(r.exc_info or r.exc_text for r in caplog.records)


async def test_a_request_whose_headers_do_not_parse_is_a_400_and_one_warning_line(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = ingest.url.removeprefix("http://").rsplit(":", 1)
    with caplog.at_level(logging.INFO):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /hooks/azure-devops HTTP/1.1\r\nHost: x\r\nNot a header\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.0 400 ")
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(troubles) == 1 and troubles[0].levelname == "WARNING"
    assert troubles[0].getMessage().startswith("a request from 127.0.0.1 is not valid HTTP, answered 400: ")
    assert not any(r.exc_info or r.exc_text for r in caplog.records)
    assert ingest.sink.events == []
