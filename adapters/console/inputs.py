"""Reading the page's JSON requests: every field checked, anything malformed answered 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from adapters.console.errors import BadRequest
from adapters.console.people import ConsoleUser, People
from adapters.web.payloads import PayloadError, decode_json

MAX_BODY = 64 * 1024
MAX_TEXT = 4000


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body counts as ``{}``)."""
    too_large = BadRequest(f"The request body is larger than {MAX_BODY} bytes.", 413)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large
    # read(), never request.content: on Handoff's server the edge has already read a body that came after its
    # headers (adapters.web.limits.over_limit), and read() returns that copy where the stream is now empty
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(raw) > MAX_BODY:
        raise too_large
    if not raw.strip():
        return {}
    try:
        data = decode_json(raw)  # (nesting too deep for Python's recursion is invalid too)
    except PayloadError:
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def text(body: Mapping[str, Any], name: str, *, max_length: int = MAX_TEXT) -> str:
    """A required, non-blank string field."""
    value = optional_text(body, name, max_length=max_length)
    if value is None or not value.strip():
        raise BadRequest(f"'{name}' is required.")
    return value


def optional_text(body: Mapping[str, Any], name: str, *, max_length: int = MAX_TEXT) -> str | None:
    """A string field that may be absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string.")
    if len(value) > max_length:
        raise BadRequest(f"'{name}' is longer than {max_length} characters.")
    return value


def mapping(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An object field (absent or null: ``{}``)."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be an object.")
    return value


def person(people: People, key: Any) -> ConsoleUser:
    """The person the request acts as (the selector's default if not given)."""
    if key is None or key == "":
        return people.default
    if not isinstance(key, str):
        raise BadRequest("'user' must be a string.")
    try:
        return people.get(key)
    except KeyError:
        raise BadRequest(f"The console cannot act as {key!r}.") from None
