"""How the console answers trouble: JSON ``{"error": message}`` with a 4xx/5xx status, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from aiohttp import web

from adapters.emulators.base import Handler
from adapters.emulators.botframework.errors import ConnectorError

log = logging.getLogger("handoff.console")

T = TypeVar("T")


class ConsoleError(Exception):
    """An answer other than success, with the status and the message the page shows."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ConsoleError):
    status = 400


class NotFound(ConsoleError):
    status = 404


class BotUnavailable(ConsoleError):
    """The emulator could not deliver to the bot (not wired yet, refused, timed out)."""

    status = 502


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`ConsoleError`, HTTP errors and anything unexpected into JSON answers."""
    try:
        return await handler(request)
    except ConsoleError as error:
        return error_response(error.status, error.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(error.status, error.reason)
    except Exception:
        log.exception("console request %s %s failed", request.method, request.path)
        return error_response(500, "The console failed to handle this request; see the server log.")


async def to_bot(platform: str, sending: Awaitable[T]) -> T:
    """Await a delivery to the bot through an emulator, turning its failures into :class:`ConsoleError`."""
    try:
        return await sending
    except RuntimeError as error:  # the emulator has no URL for the bot yet
        raise BotUnavailable(f"The {platform} emulator cannot reach the bot: {error}.", 503) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        detail = str(error) or type(error).__name__
        raise BotUnavailable(f"The bot did not answer the {platform} request: {detail}.") from None
    except ConnectorError as error:
        raise ConsoleError(error.message, error.status if 400 <= error.status < 500 else 502) from None
    except KeyError as error:
        raise NotFound(str(error.args[0]) if error.args else "not found") from None
