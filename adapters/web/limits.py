"""Per-route body-size caps, checked before the body is read when the sender declares its length; the
bodies' ``Content-Encoding`` (gzip and deflate decoded here, 415 for any other, 400 for a body that does not
decode); and the deadlines a request has to arrive by."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from aiohttp import web

from adapters.web.answers import json_answer

log = logging.getLogger("handoff.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY_LIMITS = web.AppKey("body_limits", dict)
DEFAULT_LIMIT = 1024 * 1024

BODY_TIMEOUT = 15.0
"""Seconds a request's body has, once its headers are in, to arrive whole: then 408 and the connection
closes. Slack, Teams, Azure DevOps and Event Grid send a body at once; a sender that stops part-way would
otherwise hold its connection, and a handler, for as long as it likes."""

IDLE_TIMEOUT = 75.0
"""Seconds a connection may wait for a request's headers to be complete, on a new connection as between the
requests of a kept-alive one: then it is closed. (aiohttp's keep-alive timeout, which also covers headers
sent in part. Longer than a reverse proxy's usual 60 s, so that the proxy drops an idle connection first.)"""


def set_body_limit(app: web.Application, path: str, limit: int) -> None:
    """Cap request bodies on ``path`` (a route's canonical path) at ``limit`` bytes."""
    app[BODY_LIMITS][path] = limit


def alias_trailing_slash(app: web.Application, path: str) -> None:
    """Answer ``path`` with a trailing slash exactly as ``path``: its routes' handlers, its body cap. Call it once
    ``path``'s routes are added. A sender told a URL ending in ``/`` (Azure DevOps, Event Grid) reads a 404 as an
    enduring failure, not as a typo."""
    alias = path.rstrip("/") + "/"
    for resource in list(app.router.resources()):
        if resource.canonical == path:
            for route in resource:
                app.router.add_route(route.method, alias, route.handler)
    if path in app[BODY_LIMITS]:
        set_body_limit(app, alias, app[BODY_LIMITS][path])


ACCEPTED_ENCODINGS = "gzip, deflate, identity"
"""The ``Content-Encoding`` values a body may come in (what a 415 names in its ``Accept-Encoding``)."""

SERVER_SETTINGS: Mapping[str, Any] = MappingProxyType({"auto_decompress": False})
"""aiohttp's server settings for Handoff's application (``web.Application(handler_args=...)``): bodies reach
:func:`over_limit` as sent, which decodes them. aiohttp's own decoding refuses an encoding it cannot decode (``br``
without Brotli, ``zstd``) with a plain-text 400 before any route or middleware runs, and passes one it does not
know as if it were not encoded."""

_WINDOW_BITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Undecodable(Exception):
    """A compressed body that does not decode: broken, ended early, or followed by something else."""


class _TooLarge(Exception):
    """A compressed body that decodes to more than its route's cap."""


def _coding(request: web.Request) -> str:
    """The body's content coding, lower case; empty for none (or ``identity``, which is none)."""
    coding = ", ".join(request.headers.getall("Content-Encoding", ())).strip().lower()
    return "" if coding == "identity" else coding


def _decoded(body: bytes, coding: str, limit: int) -> bytes:
    """``body`` decoded from ``coding`` (gzip, its members one after another, or deflate: zlib's format, as
    HTTP says, or the raw stream some senders write), never more than ``limit`` bytes of it.

    Raises:
        _Undecodable: it does not decode.
        _TooLarge: it decodes to more than ``limit`` bytes (no more is decoded than that).
    """
    if not body:
        return body
    window = _WINDOW_BITS[coding]
    if coding == "deflate" and body[0] & 0x0F != 8:  # no zlib header: a raw deflate stream
        window = -zlib.MAX_WBITS
    out = bytearray()
    rest = body
    try:
        while rest:
            stream = zlib.decompressobj(window)
            out += stream.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise _TooLarge
            if not stream.eof:
                raise _Undecodable
            rest = stream.unused_data
            if rest and coding != "gzip":
                raise _Undecodable
    except zlib.error:
        raise _Undecodable from None
    return bytes(out)


def unsupported_encoding(request: web.Request, coding: str) -> web.Response:
    """The 415 for a body in an encoding Handoff does not decode, naming those it does. A sender's mistake, so one
    warning line (and never a 503: senders retry those for hours)."""
    shown = coding[:40]
    log.warning(
        "%s %s: a body in Content-Encoding %s is not accepted, answered 415", request.method, request.path, shown
    )
    return json_answer(
        {
            "error": "unsupported_media_type",
            "message": f"Content-Encoding {shown} is not accepted: send the body as gzip, deflate or identity",
        },
        status=415,
        headers={"Accept-Encoding": ACCEPTED_ENCODINGS},
    )


def largest_limit(limits: dict[str, int]) -> int:
    return max([DEFAULT_LIMIT, *limits.values()])


def _too_large(limit: int) -> web.Response:
    return web.json_response({"error": "payload_too_large", "message": f"the body is over {limit} bytes"}, status=413)


def undecodable_body(request: web.Request) -> web.Response:
    """The 400 for a body that could not be read: one that does not decode from its ``Content-Encoding``, or a
    broken transfer. A client's mistake, so one warning line and no 503 (senders retry those for hours)."""
    encoding = request.headers.get("Content-Encoding", "").strip()[:40]
    log.warning(
        "%s %s: the body could not be read (Content-Encoding %s)", request.method, request.path, encoding or "none"
    )
    said = f" (Content-Encoding {encoding})" if encoding else ""
    # the stream is broken: ended here, aiohttp does not read it again after the answer (and log that read
    # failing as an unhandled exception); the connection closes after the answer
    request.content.feed_eof()
    answer = web.json_response(
        {"error": "invalid_payload", "message": f"the body could not be decoded{said}"}, status=400
    )
    answer.force_close()
    return answer


def _who(request: web.Request) -> tuple[str, str, str | None]:
    return request.method, request.path, request.remote


def _gone() -> web.Response:
    """The answer for a sender that closed its connection part-way through the body (nobody reads it)."""
    answer = web.json_response({"error": "incomplete_body", "message": "the body ended early"}, status=400)
    answer.force_close()
    return answer


def _too_slow(request: web.Request) -> web.Response:
    """The 408 for a body that did not arrive within :data:`BODY_TIMEOUT`; the connection closes after it."""
    log.warning("%s %s from %s: the body did not arrive within %g s, answered 408", *_who(request), BODY_TIMEOUT)
    # nothing more is read: not the rest of this body (aiohttp would otherwise wait for it after the
    # answer), nor another request on this connection
    request.protocol.close()
    request.content.feed_eof()
    answer = web.json_response(
        {"error": "request_timeout", "message": f"the body did not arrive within {BODY_TIMEOUT:g} seconds"},
        status=408,
    )
    answer.force_close()
    return answer


async def over_limit(request: web.Request) -> web.Response | None:
    """The 413 answer for a body over its route's cap, 408 for one that does not arrive in time, or None;
    the app-wide ``client_max_size`` bounds chunked ones. A body not yet all in is read here, under
    :data:`BODY_TIMEOUT`: the route's own read then returns it at once.

    So a handler reads its body with ``request.read()``, ``text()``, ``json()`` or ``post()``, which return the
    copy read here, never from ``request.content``, which that read has emptied."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    resource = request.match_info.route.resource
    limits: dict[str, Any] = request.app[BODY_LIMITS]
    limit = int(limits.get(resource.canonical, DEFAULT_LIMIT) if resource is not None else DEFAULT_LIMIT)
    declared = request.content_length
    if declared is not None and declared > limit:
        return _too_large(limit)
    coding = _coding(request)
    # a body all in (the usual case: it came with its headers) is the route's to read; any other is read
    # here, under the deadline, and so is a compressed one, decoded here: one that does not decode is a 400
    # (one in an encoding Handoff does not decode a 415) before any route (or its authentication) runs
    if declared is not None and not coding and request.content.is_eof():
        return None
    if request.can_read_body:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await request.read()
        except TimeoutError:
            return _too_slow(request)
        except ConnectionError:  # the sender hung up part-way: its mistake, not a failure of Handoff's
            log.warning("%s %s from %s: the connection closed before the body was all in", *_who(request))
            return _gone()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(limit)
        except web.RequestPayloadError:
            return undecodable_body(request)
        if len(body) > limit:
            return _too_large(limit)
        if coding:
            if coding not in _WINDOW_BITS:
                return unsupported_encoding(request, coding)
            try:
                decoded = _decoded(body, coding, limit)
            except _TooLarge:
                return _too_large(limit)
            except _Undecodable:
                return undecodable_body(request)
            # what the route's read() returns: aiohttp keeps the body it read there, and offers no other way
            # to hand a route a body other than the one that came
            request._read_bytes = decoded
    return None


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 413 for a body over its route's cap (:func:`over_limit`), else let the route answer."""
    refused = await over_limit(request)
    return refused if refused is not None else await handler(request)
