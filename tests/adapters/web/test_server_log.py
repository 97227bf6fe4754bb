"""aiohttp's record of a malformed request becomes one warning line; a failure of the server keeps its traceback."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError

from adapters.web.server_log import ClientErrorFilter, quiet_client_errors


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s", ("10.0.0.7",), exc_info
    )


def test_a_client_error_is_one_warning_line_without_a_traceback() -> None:
    record = _record(BadHttpMessage("Invalid header token"))
    assert ClientErrorFilter().filter(record)
    assert (record.levelno, record.levelname) == (logging.WARNING, "WARNING")
    assert record.getMessage() == (
        "a request from 10.0.0.7 is not valid HTTP, answered 400: BadHttpMessage: Invalid header token"
    )
    assert record.exc_info is None and record.exc_text is None


def test_a_failure_of_the_server_keeps_its_level_and_traceback() -> None:
    for error in (RuntimeError("boom"), HttpProcessingError(code=500, message="broken")):
        record = _record(error)
        assert ClientErrorFilter().filter(record)
        assert record.levelno == logging.ERROR and record.exc_info is not None
        assert record.getMessage() == "Error handling request from 10.0.0.7"


def test_installing_twice_adds_one_filter() -> None:
    quiet_client_errors()
    quiet_client_errors()
    server = logging.getLogger("aiohttp.server")
    assert sum(isinstance(f, ClientErrorFilter) for f in server.filters) == 1
