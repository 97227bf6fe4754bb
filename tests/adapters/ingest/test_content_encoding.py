"""Compressed bodies: gzip and deflate are read; one that does not decode is a 400, one in another encoding a
415, each with Handoff's JSON error, never a 503 nor aiohttp's plain text."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator

import pytest

from tests.adapters.ingest.conftest import ENVIRON, RIGHT_BASIC, Ingest

WORKSPACE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"


@pytest.fixture
def registered_event() -> dict[str, object]:
    return {
        "id": "registered-1",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "topic": WORKSPACE,
        "eventTime": "2026-03-01T10:00:00Z",
        "data": {"modelName": "churn", "modelVersion": "3"},
    }


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
    headers = {"Content-Type": "application/json", "Content-Encoding": "deflate", "Authorization": RIGHT_BASIC}
    with caplog.at_level(logging.INFO):
        async with ingest.session.post(f"{ingest.url}{path}", data=TRUNCATED_DEFLATE, headers=headers) as resp:
            status, answer = resp.status, await resp.json()
    assert status == 400
    assert answer == {"error": "invalid_payload", "message": "the body could not be decoded (Content-Encoding deflate)"}
    assert ingest.sink.events == []
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.getMessage()) for r in troubles] == [
        ("WARNING", f"POST {path}: the body could not be read (Content-Encoding deflate)")
    ]
    assert not any(r.exc_info or r.exc_text for r in caplog.records)


@pytest.mark.parametrize("path", ["/hooks/azure-devops", "/hooks/eventgrid"])
@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "x-gzip", "gzip, br"])
@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
@pytest.mark.parametrize("credentials", [True, False], ids=["credentials", "no credentials"])
async def test_a_body_in_an_encoding_handoff_does_not_decode_is_a_415_naming_those_it_does(
    ingest: Ingest, caplog: pytest.LogCaptureFixture, path: str, encoding: str, chunked: bool, credentials: bool
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding, "aeg-event-type": "Notification"}
    params = {}
    if credentials:
        headers["Authorization"] = RIGHT_BASIC
        params["code"] = ENVIRON["EG_SECRET"]
    body = b"\x1b\x00\xf8\xa5\x86\x02" * 4  # whatever it is, Handoff does not read it
    sent = one_chunk(body) if chunked else body
    with caplog.at_level(logging.INFO):
        async with ingest.session.post(f"{ingest.url}{path}", data=sent, headers=headers, params=params) as resp:
            status, accepted, answer = resp.status, resp.headers.get("Accept-Encoding"), await resp.json()
    assert (status, accepted) == (415, "gzip, deflate, identity")
    assert answer == {
        "error": "unsupported_media_type",
        "message": f"Content-Encoding {encoding} is not accepted: send the body as gzip, deflate or identity",
    }
    assert ingest.sink.events == []
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in troubles] == [
        f"POST {path}: a body in Content-Encoding {encoding} is not accepted, answered 415"
    ]
    assert not any(r.exc_info or r.exc_text for r in caplog.records)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "identity", "GZIP"])
async def test_an_event_grid_delivery_in_an_accepted_encoding_is_read(
    ingest: Ingest, encoding: str, registered_event: dict[str, object]
) -> None:
    body = json.dumps([registered_event]).encode()
    sent = {"gzip": gzip.compress, "deflate": zlib.compress}.get(encoding.lower(), lambda b: b)(body)
    reply = await ingest.post(
        "/hooks/eventgrid?code=" + ENVIRON["EG_SECRET"],
        sent,
        {"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 0})
    assert [e.event_id for e in ingest.sink.events] == [registered_event["id"]]


async def test_raw_deflate_and_gzip_in_members_are_read(ingest: Ingest) -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = b'{"id": "x"}'
    for encoding, sent in (
        ("deflate", raw.compress(body) + raw.flush()),
        ("gzip", gzip.compress(body[:5]) + gzip.compress(body[5:])),
    ):
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding, "Authorization": RIGHT_BASIC}
        reply = await ingest.post("/hooks/azure-devops", sent, headers)
        assert (reply.status, reply.json()["message"]) == (400, "eventType: missing")  # read, and it is no hook


async def test_a_small_body_that_decodes_past_the_cap_is_a_413_and_no_more_of_it_is_decoded(ingest: Ingest) -> None:
    bomb = gzip.compress(b" " * 64 * 1024 * 1024)  # 64 KiB sent, 64 MiB once decoded
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    reply = await ingest.post("/hooks/eventgrid?code=" + ENVIRON["EG_SECRET"], bomb, headers)
    assert (reply.status, reply.json()["error"]) == (413, "payload_too_large")
    assert ingest.sink.events == []


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
