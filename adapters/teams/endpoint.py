"""``POST /api/messages``: Handoff's own handler around ``CloudAdapter.process_activity``.

It replaces the stock ``CloudAdapter.process``, which answers 500 to every invoke whose handler returns a
body (``adaptiveCard/action``: the body is serialised twice), to a missing Content-Type, to a body that
is not JSON and to a garbage bearer token. Here the request is checked in order, and every failure has
its own answer, never a 500:

- 415 when the Content-Type is not ``application/json``;
- 400 when the body is not a JSON object that looks like an activity (a team or channel event of a
  ``conversationUpdate`` that does not name its team or channel included);
- 401 when authentication is on and the Authorization header is missing, malformed or not a valid
  Bot Framework channel token (signature, issuer, audience, expiry, which it must have, key id, service
  URL; an Emulator's or a skill's token is refused unread), and whenever a header that is not a valid
  token is sent; the scheme is read whatever its case (``bearer …``);
- 503 when the channel's signing keys cannot be fetched, or the turn fails unexpectedly (Teams retries);
- with ``teams.tenant_id`` set, an activity from another tenant (``channelData.tenant.id``, else
  ``conversation.tenantId``) runs no turn: 201, or for an invoke 200 with an error the person sees (a
  4xx would only make Teams retry or report the bot as failing); logged once per tenant;
- 200 with the invoke response for invokes (an invoke Handoff does not handle: 501, with an error body
  saying so), 201 otherwise.

Tokens and headers are never logged.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from botbuilder.core import Bot, serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector.auth import AuthenticateRequestResult, BotFrameworkAuthentication

from .handler import error_response
from .openid import MetadataUnavailable
from .references import tenant_of

log = logging.getLogger("handoff.teams")

JSON_TYPES = frozenset({"application/json"})
OTHER_TENANT = "Handoff does not serve your organisation."
MAX_TENANTS_LOGGED = 1000
NOT_HANDLED = "Handoff does not handle this kind of request."


def _problem(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


_STRING_FIELDS = ("id", "channelId", "text", "name", "replyToId", "action", "locale", "textFormat")
_CHANNEL_DATA_OBJECTS = ("team", "channel", "tenant", "settings", "notification", "meeting")
# conversationUpdate events about a team, or about one of its channels, and what each must name
_TEAM_EVENTS = frozenset(
    {"teamRenamed", "teamDeleted", "teamHardDeleted", "teamArchived", "teamUnarchived", "teamRestored"}
)
_CHANNEL_EVENTS = frozenset({"channelCreated", "channelDeleted", "channelRenamed", "channelRestored"})


def _looks_like_activity(data: Any) -> str | None:
    """Why ``data`` is not an activity Handoff can hand to botbuilder, or None if it is one.

    botbuilder trusts the shape of what Teams sends (``channelData.team`` is an object, members have
    ids…) and fails deep inside a turn otherwise; checking the shape first keeps garbage a 400.
    """
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    if not isinstance(data.get("type"), str) or not data["type"]:
        return "type is required"
    service_url = data.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        return "serviceUrl must be an http(s) URL"
    for key in ("conversation", "from", "recipient"):
        if not _has_id(data.get(key)):
            return f"{key}.id is required"
    for key in _STRING_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} must be a string"
    for key in ("membersAdded", "membersRemoved"):
        members = data.get(key)
        if members is not None and not (isinstance(members, list) and all(_has_id(m) for m in members)):
            return f"{key} must be a list of accounts with ids"
    for key in ("entities", "attachments"):
        items = data.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            return f"{key} must be a list of objects"
    channel_data = data.get("channelData")
    if channel_data is not None:
        if not isinstance(channel_data, dict):
            return "channelData must be an object"
        if not isinstance(channel_data.get("eventType", ""), str | None):
            return "channelData.eventType must be a string"
        for key in _CHANNEL_DATA_OBJECTS:
            part = channel_data.get(key)
            if part is not None and not (isinstance(part, dict) and isinstance(part.get("id", ""), str | None)):
                return f"channelData.{key} must be an object with a string id"
        if data["type"] == "conversationUpdate":
            reason = _names_what_its_event_is_about(channel_data)
            if reason is not None:
                return reason
    if data["type"] == "invoke" and data.get("name") == "adaptiveCard/action":
        value = data.get("value")
        if not isinstance(value, dict) or not isinstance(value.get("action"), dict):
            return "an adaptiveCard/action invoke needs value.action"
    return None


def _names_what_its_event_is_about(channel_data: dict[str, Any]) -> str | None:
    """Why a team or channel event of a ``conversationUpdate`` cannot be handled: it must name its team (and
    channel) by id, as Teams always does."""
    event = channel_data.get("eventType")
    needed = ("team", "channel") if event in _CHANNEL_EVENTS else ("team",) if event in _TEAM_EVENTS else ()
    for key in needed:
        if not _has_id(channel_data.get(key)):
            return f"a {event} event needs channelData.{key}.id"
    return None


def bearer(header: str | None) -> str | None:
    """The Authorization header as botbuilder reads it: ``Bearer <token>``, whatever the case of the scheme and
    the spaces after it (RFC 7235); any other header as it came (and refused)."""
    if not header:
        return header
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token and " " not in token:
        return f"Bearer {token}"
    return header


def _has_id(part: Any) -> bool:
    return isinstance(part, dict) and isinstance(part.get("id"), str) and bool(part["id"])


class MessagesEndpoint:
    """The aiohttp handler for Teams' messaging endpoint.

    Args:
        adapter: the ``CloudAdapter`` that runs turns (built on ``authentication``).
        bot: what handles a turn (``bot.on_turn``).
        authentication: checks the Authorization header against the activity.
        auth_enabled: whether a request without an Authorization header is refused.
        tenant_id: the one tenant whose activities are handled; any tenant's when None.
    """

    def __init__(
        self,
        adapter: CloudAdapter,
        bot: Bot,
        authentication: BotFrameworkAuthentication,
        *,
        auth_enabled: bool,
        tenant_id: str | None = None,
    ) -> None:
        self.adapter = adapter
        self.bot = bot
        self.authentication = authentication
        self.auth_enabled = auth_enabled
        self.tenant_id = tenant_id.lower() if tenant_id else None
        self._other_tenants: set[str] = set()  # (those already logged)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one POST to the messaging endpoint."""
        if request.content_type not in JSON_TYPES:
            return _problem(415, "unsupported_media_type", "send the activity as application/json")
        try:
            data = json.loads(await request.read())
        except (ValueError, RecursionError):
            return _problem(400, "bad_request", "the body is not valid JSON")
        reason = _looks_like_activity(data)
        if reason is not None:
            return _problem(400, "bad_request", reason)
        try:
            activity = Activity().deserialize(data)
        except Exception:  # msrest rejects a field of the wrong type
            return _problem(400, "bad_request", "the body is not a valid activity")

        authenticated = await self._authenticate(activity, bearer(request.headers.get("Authorization")))
        if isinstance(authenticated, web.Response):
            return authenticated
        if self._from_another_tenant(activity):
            if activity.type == "invoke":
                return web.json_response(serializer_helper(error_response(403, "Forbidden", OTHER_TENANT)))
            return web.Response(status=201)
        try:
            invoke_response = await self.adapter.process_activity(authenticated, activity, self.bot.on_turn)
        except Exception as exc:
            # one line per failure (Teams sends the activity again, and may fail again); the traceback
            # only when debugging
            log.error(
                "Teams %s turn failed (%s); answered 503 for Teams to send it again",
                activity.type,
                type(exc).__name__,
                exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
            )
            return _problem(503, "temporarily_unavailable", "retry later", {"Retry-After": "5"})
        if invoke_response is None:
            return web.Response(status=201)
        status = int(invoke_response.status or 200)
        body = invoke_response.body
        if body is None and status >= 400:
            # botbuilder answers an invoke nobody handles with 501 and no body; say what it is, in the shape of
            # an invoke's error (the one Teams shows for a card's action)
            code = HTTPStatus(status).phrase.replace(" ", "") if status in HTTPStatus._value2member_map_ else "Error"
            body = error_response(status, code, NOT_HANDLED if status == 501 else "The request could not be handled.")
        if body is not None and not isinstance(body, dict | list | str | int | float | bool):
            body = serializer_helper(body)
        return web.json_response(body, status=status)

    def _from_another_tenant(self, activity: Activity) -> bool:
        tenant = tenant_of(activity)
        if self.tenant_id is None or tenant is None or tenant.lower() == self.tenant_id:
            return False
        if tenant not in self._other_tenants and len(self._other_tenants) < MAX_TENANTS_LOGGED:
            self._other_tenants.add(tenant)
            log.warning("ignoring Teams activities from tenant %r: teams.tenant_id is another one", tenant[:64])
        return True

    async def _authenticate(self, activity: Activity, header: str | None) -> AuthenticateRequestResult | web.Response:
        unauthorized = _problem(
            401, "unauthorized", "a valid Bot Framework token is required", {"WWW-Authenticate": "Bearer"}
        )
        if not header and self.auth_enabled:
            return unauthorized
        try:
            result: AuthenticateRequestResult = await self.authentication.authenticate_request(activity, header or None)
        except MetadataUnavailable:
            return _problem(503, "temporarily_unavailable", "the signing keys are unavailable", {"Retry-After": "5"})
        except PermissionError as exc:
            log.info("Teams request refused: %s", exc)
            return unauthorized
        except Exception as exc:  # pyjwt and botbuilder raise many types for a bad token
            log.info("Teams request refused: %s", type(exc).__name__)
            return unauthorized
        claims = result.claims_identity.claims if result.claims_identity is not None else None
        if header and "exp" not in (claims or {}):  # (pyjwt checks the expiry only of a token that has one)
            log.info("Teams request refused: the token does not expire")
            return unauthorized
        return result
