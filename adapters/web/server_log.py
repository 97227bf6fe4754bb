"""One warning line, not an error with a traceback, for a request that is not valid HTTP.

aiohttp answers such a request itself, before any route or middleware runs: a header it cannot parse, a
line over its limits, or (on a server that lets aiohttp decode bodies; Handoff's application decodes them
itself, see :data:`adapters.web.limits.SERVER_SETTINGS`) a compressed body that does not decode. It answers
400 and logs the sender's mistake as an ERROR with a traceback on ``aiohttp.server``.
:func:`quiet_client_errors` makes that one WARNING line in Handoff's words; a failure of the server itself (a
5xx) keeps its traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ClientErrorFilter(logging.Filter):
    """Rewrites aiohttp's record of a client's malformed request as one warning line without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError) or not 400 <= error.code < 500:
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
        if isinstance(error, ContentEncodingError):
            said = f"the body does not decode (Content-Encoding {error.message.strip()[:40]})"
        else:
            said = f"{type(error).__name__}: {error.message.strip()[:120]}"
        record.msg, record.args = "a request from %s is not valid HTTP, answered %d: %s", (remote, error.code, said)
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = None
        return True


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorFilter` on aiohttp's server logger (once, however often it is called)."""
    server = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in server.filters):
        server.addFilter(ClientErrorFilter())
