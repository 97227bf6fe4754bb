"""A body that says it is compressed but does not decode: a 400 with Handoff's JSON error, never a 503."""

from __future__ import annotations

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
