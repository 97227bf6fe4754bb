"""Reading a Web API call the way Slack does: query string plus a JSON or form body, token in the
``Authorization: Bearer`` header or in a ``token`` argument; JSON-valued arguments may come as strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

JSON_ARGS = ("blocks", "attachments", "view", "metadata")
JSON_ARG_ERRORS = {"blocks": "invalid_blocks_format", "metadata": "invalid_metadata_format"}


class MethodError(Exception):
    """A Web API failure, answered as HTTP 200 ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass(frozen=True)
class ApiCall:
    """One Web API request: the method name, its arguments and the token it carried."""

    method: str
    args: dict[str, Any]
    token: str | None

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.args.get(name, default)
        return None if value is None else str(value)

    def required(self, name: str, error: str | None = None) -> str:
        value = self.string(name)
        if not value:
            raise MethodError(error or "invalid_arguments", response_metadata=_missing(name))
        return value

    def flag(self, name: str) -> bool:
        value = self.args.get(name)
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)

    def has(self, name: str) -> bool:
        return name in self.args


async def read_call(request: web.Request) -> ApiCall:
    """Parse method, arguments and token out of an aiohttp request."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                raise MethodError("invalid_json") from None
            if not isinstance(body, dict):
                raise MethodError("invalid_json")
            args.update(body)
        else:
            args.update((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
    for name in JSON_ARGS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                raise MethodError(JSON_ARG_ERRORS.get(name, f"invalid_{name}")) from None
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or (str(args.pop("token")) if args.get("token") else None)
    args.pop("token", None)
    return ApiCall(request.match_info["method"], args, token)


def _missing(name: str) -> dict[str, Any]:
    return {"messages": [f"[ERROR] missing required field: {name}"]}
