"""Bot Connector errors, in the service's ``{"error": {"code", "message"}}`` shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.emulators.base import Fault

FAULT_CODES = {
    400: "BadArgument",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class ConnectorError(Exception):
    """Raised inside the emulator; becomes an HTTP error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(code, message), status=status, headers=headers)


def fault_body(fault: Fault) -> dict[str, Any]:
    """The body of a scripted 400, 429 or 5xx fault, as the Bot Connector words it."""
    status = fault.status or int(fault.kind)
    return error_body(FAULT_CODES.get(status, "ServiceError"), f"Emulated {status} from the Bot Connector")


def refusal(status: int, code: str, matching: str | None = None) -> Fault:
    """A fault answering as the Bot Connector refuses a call: ``status`` with ``{"error": {"code": code}}`` (for a
    request whose path or body contains ``matching``, a conversation's id say, when given)."""
    return Fault("400", status=status, body=error_body(code, f"Emulated {code}"), matching=matching)


def conversation_not_found(conversation_id: str) -> ConnectorError:
    return ConnectorError(404, "ConversationNotFound", f"Conversation {conversation_id} not found")


def activity_not_found(activity_id: str) -> ConnectorError:
    return ConnectorError(404, "ActivityNotFoundInConversation", f"Activity {activity_id} not found")


def bad_argument(message: str) -> ConnectorError:
    return ConnectorError(400, "BadArgument", message)
