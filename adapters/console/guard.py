"""Refusing requests that did not come from the console's own page.

The console acts as anyone (it approves gates as carol), so a page of another site must not drive it:

* the ``Host`` must be the address the request arrived on (``127.0.0.1:port``; on a loopback address also
  ``localhost:port`` and ``[::1]:port``), which a DNS-rebinding page cannot send: 403;
* a POST, PUT, PATCH or DELETE must come from the console's own origin, by its ``Origin`` or, where a
  browser sends none, by ``Sec-Fetch-Site`` or the ``Referer``: 403. A request with none of them is not a
  browser's (curl, tests) and goes through;
* a POST, PUT or PATCH must be ``Content-Type: application/json``: 415 (a form or a no-cors fetch of another
  site can only send ``text/plain``, a form or a multipart body).

Each refusal is a JSON ``{"error"}`` answer and one warning in the log.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from aiohttp import web

from adapters.console.errors import error_response
from adapters.emulators.base import Handler

log = logging.getLogger("handoff.console")

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
OWN_FETCH_SITES = frozenset({"same-origin", "none"})  # "none": the person typed or bookmarked it
SHOWN = 120  # characters of a refused header value that the log line shows


@web.middleware
async def same_origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 403 to a foreign Host or a cross-origin change, 415 to a body that is not JSON."""
    host = request.headers.get("Host", "")  # (request.host falls back to this machine's name)
    if host.lower() not in own_hosts(request):
        return _refuse(request, 403, "The console answers only at its own address.", "Host", host)
    if request.method in CHANGING:
        refused = _foreign_origin(request, f"{request.scheme}://{host}".lower())
        if refused is not None:
            header, value = refused
            return _refuse(request, 403, "The console acts only for its own page.", header, value)
    if request.method in WITH_BODY and request.content_type != "application/json":
        message = "The console takes only JSON (Content-Type: application/json)."
        return _refuse(request, 415, message, "Content-Type", request.headers.get("Content-Type", ""))
    return await handler(request)


def own_hosts(request: web.Request) -> frozenset[str]:
    """The Host values that name the address this request's connection arrived on (lower case)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sockname, tuple):  # (a Unix socket's is a path)
        return frozenset()
    address, port = ipaddress.ip_address(sockname[0]), sockname[1]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    literal = f"[{address}]" if address.version == 6 else str(address)
    names = {literal, *LOOPBACK_NAMES} if address.is_loopback else {literal}
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:  # a browser leaves the default port out
        hosts |= names
    return frozenset(hosts)


def _foreign_origin(request: web.Request, ours: str) -> tuple[str, str] | None:
    """The header that shows the request came from an origin other than ``ours``, and its value; None if none
    does."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        return None if origin.lower() == ours else ("Origin", origin)
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site.lower() in OWN_FETCH_SITES else ("Sec-Fetch-Site", site)
    referer = request.headers.get("Referer")
    if referer is not None:
        return None if _origin_of(referer) == ours else ("Referer", referer)
    # "Origin: null" with nothing else is a browser hiding where the request comes from (a sandboxed frame)
    return ("Origin", origin) if origin is not None else None


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def _refuse(request: web.Request, status: int, message: str, header: str, value: str) -> web.Response:
    log.warning(
        "console refused %s %s with %d: %s %r",
        request.method,
        request.path[:SHOWN],
        status,
        header,
        value[:SHOWN],
    )
    return error_response(status, message)
