"""Microsoft Graph v1.0 and the Entra ID token endpoint, as views of the Bot Framework emulator's state.

A bot cannot read a conversation through the Bot Connector; through Graph, with the app's
resource-specific consent (RSC), it can list what a channel, a thread or a group chat holds, including
what it posted itself. This module emulates the few routes needed for that, over the same
:class:`~adapters.emulators.botframework.state.ConnectorState` the connector routes write:

* ``POST /login/{tenant}/oauth2/v2.0/token``: Microsoft identity platform v2, client-credentials grant
  for ``https://graph.microsoft.com/.default`` (or the Bot Connector's ``https://api.botframework.com/.default``);
  the token is an unsigned JWT only this emulator accepts; ``GET /login/{tenant}/v2.0/.well-known/
  openid-configuration``: the tenant's OpenID configuration, where MSAL finds that endpoint.
* ``GET /graph/v1.0/teams/{group-id}/channels/{channel-id}/messages``: a channel's threads (root
  messages), newest first; ``.../messages/{message-id}/replies``: one thread's replies, newest first.
* ``GET /graph/v1.0/chats/{chat-id}/messages``: a group chat's messages, with ``$orderby``/``$filter``.

Lists are paged with ``$top`` and an ``@odata.nextLink`` carrying a ``$skiptoken`` (a cursor: messages
that arrive between two pages shift nothing). Errors have Graph's and Entra's shapes. A team or chat's
consent can be revoked (:meth:`GraphRoutes.set_consent`), and Graph then answers 403.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from .state import ConnectorState, Conversation, Message
from .world import Team, TeamsWorld

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GRAPH_PREFIX = "/graph/v1.0"
LOGIN_PREFIX = "/login"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_SCOPE = f"{GRAPH_AUDIENCE}/.default"
BOT_FRAMEWORK_AUDIENCE = "https://api.botframework.com"
AUDIENCES = (GRAPH_AUDIENCE, BOT_FRAMEWORK_AUDIENCE)
"""The resources the token endpoint issues tokens for (the scope is ``<audience>/.default``)."""
GRAPH_CONTEXT = "https://graph.microsoft.com/v1.0/$metadata"
EXPIRES_IN = 3599
# Far beyond any test run, whichever clock a client compares it with; `expires_in` is what clients cache by.
TOKEN_LIFETIME = timedelta(days=3650)
GRANTED_ROLES = ("ChannelMessage.Read.Group", "ChatMessage.Read.Chat")
CHANNEL_ROLES = "ChannelMessage.Read.All, ChannelMessage.Read.Group"
CHAT_ROLES = "Chat.Read.All, ChatMessage.Read.Chat"
DEFAULT_TOP = 20
MAX_TOP = 50
CHAT_ORDER = "createdDateTime desc"
CREATED_AFTER = re.compile(r"^\s*createdDateTime\s+gt\s+'?([0-9T:.+\-Z]+)'?\s*$")
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


# errors


class EntraError(Exception):
    """An error of the token endpoint, answered in Entra ID's ``{"error", "error_description", ...}`` shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self, now: datetime, correlation_id: str | None) -> web.Response:
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        timestamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        return web.json_response(body, status=self.status, headers={"Cache-Control": "no-store"})


class GraphError(Exception):
    """An error of a Graph route, answered as ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self, now: datetime, request_id: str, client_request_id: str) -> web.Response:
        inner = {
            "date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": client_request_id,
        }
        body = {"error": {"code": self.code, "message": self.message, "innerError": inner}}
        return web.json_response(body, status=self.status, headers=self.headers)


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def not_found(message: str) -> GraphError:
    return GraphError(404, "NotFound", message)


def forbidden(roles: str) -> GraphError:
    message = f"Missing role permissions on the request. API requires one of '{roles}'. Roles on the request ''."
    return GraphError(403, "Forbidden", message)


def unauthenticated(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": WWW_AUTHENTICATE})


# tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


class TokenIssuer:
    """Issues unsigned Graph access tokens and recognises its own (by their ``uti`` claim)."""

    def __init__(self, world: TeamsWorld) -> None:
        self.world = world
        self._issued: set[str] = set()

    def issue(self, tenant: str, client_id: str, now: datetime, audience: str = GRAPH_AUDIENCE) -> str:
        token_id = _b64(uuid.uuid4().bytes)
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": _epoch(now),
            "nbf": _epoch(now),
            "exp": _epoch(now + TOKEN_LIFETIME),
            "appid": client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant}:{client_id}")),
            "roles": list(GRANTED_ROLES),
            "tid": tenant,
            "uti": token_id,
            "ver": "1.0",
        }
        self._issued.add(token_id)
        header = {"typ": "JWT", "alg": "none"}
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."

    def check(self, token: str, now: datetime) -> None:
        """Raise a 401 :class:`GraphError` unless ``token`` is one of ours, for Graph, and not expired."""
        claims = self._claims(token)
        if claims.get("uti") not in self._issued:
            raise unauthenticated("IDX10511: Signature validation failed. The token was not issued by this tenant.")
        if claims.get("aud") != GRAPH_AUDIENCE:
            raise unauthenticated(
                f"IDX10214: Audience validation failed. Audience: '{claims.get('aud')}'. "
                f"Did not match: validationParameters.ValidAudience: '{GRAPH_AUDIENCE}'."
            )
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= _epoch(now):
            raise unauthenticated(
                f"IDX10223: Lifetime validation failed. The token is expired. ValidTo: '{expires}', "
                f"Current time: '{_epoch(now)}'."
            )

    @staticmethod
    def _claims(token: str) -> dict[str, Any]:
        parts = token.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise unauthenticated("IDX14100: JWT is not well formed; validation failed.") from None
        if not isinstance(claims, dict):
            raise unauthenticated("IDX14100: JWT is not well formed; validation failed.")
        return claims


# chatMessage rendering


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _last_modified(msg: Message) -> datetime:
    return msg.updated_at or msg.created_at


@dataclass(frozen=True)
class Place:
    """Where a listed message lives: a channel of a team (``team`` set) or a group chat."""

    conversation_id: str
    team: Team | None = None

    def identity(self) -> dict[str, Any]:
        if self.team is None:
            return {"chatId": self.conversation_id, "channelIdentity": None}
        channel = {"teamId": self.team.aad_group_id, "channelId": self.conversation_id}
        return {"chatId": None, "channelIdentity": channel}

    def web_url(self, msg: Message, tenant_id: str) -> str | None:
        if self.team is None:
            return None  # Graph gives chat messages no webUrl
        query = urlencode(
            {
                "groupId": self.team.aad_group_id,
                "tenantId": tenant_id,
                "createdTime": msg.id,
                "parentMessageId": msg.thread_id or msg.id,
            }
        )
        return f"https://teams.microsoft.com/l/message/{quote(self.conversation_id, safe='')}/{msg.id}?{query}"


def attachment_id(msg: Message, index: int) -> str:
    """A stable id for a message's ``index``-th attachment (Graph makes up its own, too)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{msg.id}/{index}").hex


def _graph_attachment(msg: Message, index: int, attachment: Mapping[str, Any]) -> dict[str, Any]:
    content = attachment.get("content")
    return {
        "id": attachment_id(msg, index),
        "contentType": attachment.get("contentType"),
        "contentUrl": attachment.get("contentUrl"),
        "content": None if content is None else json.dumps(content, ensure_ascii=False),
        "name": attachment.get("name"),
        "thumbnailUrl": attachment.get("thumbnailUrl"),
        "teamsAppId": None,
    }


def _body_and_attachments(msg: Message) -> tuple[str, list[dict[str, Any]]]:
    """The HTML body and the Graph attachments of the message's current version (none once deleted)."""
    if msg.deleted:
        return "", []
    # Teams sends a user's message with its HTML rendering as a text/html attachment: that is the body.
    rendered = [a for a in msg.attachments if a.get("contentType") == "text/html"]
    cards = [a for a in msg.attachments if a.get("contentType") != "text/html"]
    attachments = [_graph_attachment(msg, i, a) for i, a in enumerate(cards)]
    text = str(rendered[0].get("content") or "") if rendered else (msg.text or "")
    tags = "".join(f'<attachment id="{a["id"]}"></attachment>' for a in attachments)
    return text + tags, attachments


def _sender(msg: Message, world: TeamsWorld) -> dict[str, Any]:
    if msg.by_bot:
        app = {
            "@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
            "id": world.bot_app_id,
            "displayName": world.bot_name,
            "applicationIdentityType": "bot",
        }
        return {"application": app, "device": None, "user": None}
    try:
        person = world.user(msg.author_id)
        user_id, name = person.aad_object_id, person.name
    except KeyError:  # someone the world does not list: what the activity said of them
        sent_as = msg.versions[0].get("from") or {}
        user_id, name = str(sent_as.get("aadObjectId") or msg.author_id), str(sent_as.get("name") or "")
    user = {
        "@odata.type": "#microsoft.graph.teamworkUserIdentity",
        "id": user_id,
        "displayName": name,
        "userIdentityType": "aadUser",
        "tenantId": world.tenant_id,
    }
    return {"application": None, "device": None, "user": user}


def chat_message(msg: Message, place: Place, world: TeamsWorld) -> dict[str, Any]:
    """A Graph ``chatMessage`` for ``msg`` (its current version)."""
    content, attachments = _body_and_attachments(msg)
    edited = msg.updated_at if len(msg.versions) > 1 and not msg.deleted else None
    return {
        "id": msg.id,
        "replyToId": msg.thread_id,
        "etag": str(int(_last_modified(msg).timestamp() * 1000)),
        "messageType": "message",
        "createdDateTime": _iso(msg.created_at),
        "lastModifiedDateTime": _iso(_last_modified(msg)),
        "lastEditedDateTime": _iso(edited) if edited else None,
        "deletedDateTime": _iso(_last_modified(msg)) if msg.deleted else None,
        "subject": None,
        "summary": None,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": place.web_url(msg, world.tenant_id),
        "policyViolation": None,
        "eventDetail": None,
        "from": _sender(msg, world),
        "body": {"contentType": "html", "content": content},
        "attachments": attachments,
        "mentions": [],
        "reactions": [],
        "messageHistory": [],
        **place.identity(),
    }


# query options and paging


def _check_options(request: web.Request, allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for name in request.query:
        if name.startswith("$") and name not in allowed:
            raise bad_request(f"Query option '{name}' is not supported.")


def _top(request: web.Request) -> int:
    raw = request.query.get("$top")
    if raw is None:
        return DEFAULT_TOP
    try:
        top = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value '{raw}' for query option '$top'.") from None
    if not 1 <= top <= MAX_TOP:
        raise bad_request(f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_TOP} inclusive.")
    return top


def _skiptoken(after_id: str) -> str:
    return _b64(json.dumps({"after": after_id}).encode())


def _start(request: web.Request, ordered: Sequence[Message]) -> int:
    """Where the page starts: just after the message the ``$skiptoken`` names."""
    token = request.query.get("$skiptoken")
    if token is None:
        return 0
    try:
        after = json.loads(_unb64(token))["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("The provided $skiptoken is not valid.") from None
    for index, msg in enumerate(ordered):
        if msg.id == after:
            return index + 1
    raise bad_request("The provided $skiptoken is not valid.")


def _next_link(request: web.Request, after_id: str) -> str:
    query = [(k, v) for k, v in request.query.items() if k != "$skiptoken"]
    query.append(("$skiptoken", _skiptoken(after_id)))
    # keep '$' (Graph writes $top, not %24top) and ':' in times readable
    return f"{request.url.with_query(None)}?{urlencode(query, quote_via=quote, safe='$:')}"


def page(
    request: web.Request, ordered: Sequence[Message], place: Place, world: TeamsWorld, context: str
) -> web.Response:
    """One page of ``ordered`` as a Graph collection, with ``@odata.nextLink`` when more follow."""
    top = _top(request)
    start = _start(request, ordered)
    chunk = ordered[start : start + top]
    body: dict[str, Any] = {"@odata.context": f"{GRAPH_CONTEXT}#{context}"}
    if chunk and start + top < len(ordered):
        body["@odata.nextLink"] = _next_link(request, chunk[-1].id)
    body["value"] = [chat_message(m, place, world) for m in chunk]
    return web.json_response(body)


def _created_after(request: web.Request) -> datetime | None:
    raw = request.query.get("$filter")
    if raw is None:
        return None
    match = CREATED_AFTER.match(raw)
    if match is None:
        raise bad_request(f"Invalid filter clause: '{raw}'. Only 'createdDateTime gt <time>' is supported.")
    try:
        after = datetime.fromisoformat(match.group(1))
    except ValueError:
        raise bad_request(f"Invalid filter clause: '{match.group(1)}' is not a valid DateTimeOffset.") from None
    return after if after.tzinfo else after.replace(tzinfo=UTC)


def _chat_order(request: web.Request, messages: list[Message]) -> list[Message]:
    newest_first = messages[::-1]
    orderby = request.query.get("$orderby")
    if orderby is None:
        # Graph's default for chats; sorted() keeps the newest-first order among equal times
        return sorted(newest_first, key=_last_modified, reverse=True)
    if " ".join(orderby.split()) != CHAT_ORDER:
        raise bad_request(f"Invalid $orderby: '{orderby}'. Only '{CHAT_ORDER}' is supported.")
    return sorted(newest_first, key=lambda m: m.created_at, reverse=True)


# routes


class GraphRoutes:
    """The token endpoint and the Graph routes over one :class:`ConnectorState`.

    Args:
        state: conversations and messages (the clock and world come with it).
        credentials: app id → client secret accepted by the token endpoint; with None any client gets a
            token and Graph asks for none.
    """

    def __init__(self, state: ConnectorState, credentials: Mapping[str, str] | None = None) -> None:
        self.state = state
        self.world = state.world
        self.credentials = dict(credentials) if credentials is not None else None
        self.tokens = TokenIssuer(self.world)
        self._revoked_teams: set[str] = set()
        self._revoked_chats: set[str] = set()

    def register(self, app: web.Application) -> None:
        """Add the routes to ``app`` (relative to its root)."""
        channel = f"{GRAPH_PREFIX}/teams/{{team_id}}/channels/{{channel_id}}/messages"
        app.router.add_post(f"{LOGIN_PREFIX}/{{tenant}}/oauth2/v2.0/token", self._entra(self.token))
        app.router.add_get(
            f"{LOGIN_PREFIX}/{{tenant}}/v2.0/.well-known/openid-configuration", self._entra(self.openid_configuration)
        )
        app.router.add_get(channel, self._graph(self.channel_messages))
        app.router.add_get(f"{channel}/{{message_id}}/replies", self._graph(self.thread_replies))
        app.router.add_get(f"{GRAPH_PREFIX}/chats/{{chat_id}}/messages", self._graph(self.chat_messages))

    def set_consent(self, *, granted: bool, team: str | None = None, chat: str | None = None) -> None:
        """Grant or revoke the app's RSC consent in a team (id, name or group id) or a group chat (id).

        Raises KeyError for an unknown team or group chat, ValueError unless exactly one is named.
        """
        if (team is None) == (chat is None):
            raise ValueError("name exactly one of team or chat")
        if team is not None:
            key, revoked = self.world.team(team).aad_group_id, self._revoked_teams
        else:
            conv = self.state.conversations.get(str(chat))
            if conv is None or conv.kind != "groupChat":
                raise KeyError(f"no group chat {chat!r} in the emulator")
            key, revoked = conv.id, self._revoked_chats
        if granted:
            revoked.discard(key)
        else:
            revoked.add(key)

    # token endpoint

    async def token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        form = await request.post()
        fields = {name: str(form.get(name) or "") for name in ("grant_type", "client_id", "client_secret", "scope")}
        if tenant != self.world.tenant_id:
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        self._check_grant(fields["grant_type"])
        self._check_client(fields["client_id"], fields["client_secret"])
        audience = self._check_scope(fields["scope"])
        body = {
            "token_type": "Bearer",
            "expires_in": EXPIRES_IN,
            "ext_expires_in": EXPIRES_IN,
            "access_token": self.tokens.issue(tenant, fields["client_id"], self.state.clock.now(), audience),
        }
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def openid_configuration(self, request: web.Request) -> web.Response:
        """The tenant's OpenID configuration (the part MSAL reads). Its endpoints are named as Entra ID names them:
        a client pointed at the emulator sends them here as it sent this request."""
        tenant = request.match_info["tenant"]
        if tenant != self.world.tenant_id:
            raise EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        login = f"https://login.microsoftonline.com/{tenant}"
        body = {
            "token_endpoint": f"{login}/oauth2/v2.0/token",
            "authorization_endpoint": f"{login}/oauth2/v2.0/authorize",
            "issuer": f"{login}/v2.0",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "WW",
        }
        return web.json_response(body)

    @staticmethod
    def _check_grant(grant_type: str) -> None:
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != "client_credentials":
            raise EntraError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )

    def _check_client(self, client_id: str, secret: str) -> None:
        if not client_id:
            raise _missing("client_id")
        if self.credentials is None:
            return
        if client_id not in self.credentials:
            raise EntraError(
                401,
                "invalid_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.world.tenant_id}'.",
            )
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if secret != self.credentials[client_id]:
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{client_id}'.",
            )

    @staticmethod
    def _check_scope(scope: str) -> str:
        """The audience of the token ``scope`` asks for."""
        if not scope:
            raise _missing("scope")
        if scope.removesuffix("/.default") in AUDIENCES and scope.endswith("/.default"):
            return scope.removesuffix("/.default")
        if not scope.endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        raise EntraError(
            400,
            "invalid_scope",
            70011,
            f"The provided request must include a 'scope' input parameter. The provided value for the input "
            f"parameter 'scope' is not valid. The scope {scope} is not valid (only the /.default scopes of "
            f"{' and '.join(AUDIENCES)} are emulated).",
        )

    # Graph

    async def channel_messages(self, request: web.Request) -> web.Response:
        _check_options(request, ("$top", "$skiptoken"))
        team, conv = self._channel(request)
        ordered = conv.posts[::-1]
        context = f"teams('{team.aad_group_id}')/channels('{conv.id}')/messages"
        return page(request, ordered, Place(conv.id, team), self.world, context)

    async def thread_replies(self, request: web.Request) -> web.Response:
        _check_options(request, ("$top", "$skiptoken"))
        team, conv = self._channel(request)
        message_id = request.match_info["message_id"]
        root = next((m for m in conv.posts if m.id == message_id), None)
        if root is None:
            raise not_found(f"Message {message_id} was not found in channel {conv.id}.")
        context = f"teams('{team.aad_group_id}')/channels('{conv.id}')/messages('{root.id}')/replies"
        return page(request, root.replies[::-1], Place(conv.id, team), self.world, context)

    async def chat_messages(self, request: web.Request) -> web.Response:
        _check_options(request, ("$top", "$skiptoken", "$orderby", "$filter"))
        chat_id = request.match_info["chat_id"]
        conv = self.state.conversations.get(chat_id)
        # 1:1 chats with the bot have other ids in Graph than the Bot Framework's "a:..." ones
        if conv is None or conv.kind != "groupChat":
            raise not_found(f"Chat {chat_id} was not found.")
        if conv.id in self._revoked_chats:
            raise forbidden(CHAT_ROLES)
        after = _created_after(request)
        messages = [m for m in conv.posts if after is None or m.created_at > after]
        ordered = _chat_order(request, messages)
        return page(request, ordered, Place(conv.id), self.world, f"chats('{conv.id}')/messages")

    def _channel(self, request: web.Request) -> tuple[Team, Conversation]:
        team_id = request.match_info["team_id"]
        channel_id = request.match_info["channel_id"]
        # Graph names a team by its Microsoft 365 group id only, never by the Bot Framework "19:" id
        team = next((t for t in self.world.teams if t.aad_group_id and t.aad_group_id == team_id), None)
        if team is None:
            raise not_found(f"No team found with Group Id {team_id}.")
        if team.aad_group_id in self._revoked_teams:
            raise forbidden(CHANNEL_ROLES)
        if all(c.id != channel_id for c in team.channels):
            raise not_found(f"Channel {channel_id} was not found in team {team_id}.")
        return team, self.state.conversations[channel_id]

    def _authenticate(self, request: web.Request) -> None:
        if self.credentials is None:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("Access token is empty.")
        self.tokens.check(token.strip(), self.state.clock.now())

    # error handling

    def _entra(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except EntraError as exc:
                return exc.response(self.state.clock.now(), request.headers.get("client-request-id"))

        return wrapped

    def _graph(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            request_id = str(uuid.uuid4())
            client_request_id = request.headers.get("client-request-id") or request_id
            try:
                self._authenticate(request)
                response = await handler(request)
            except GraphError as exc:
                response = exc.response(self.state.clock.now(), request_id, client_request_id)
            response.headers["request-id"] = request_id
            response.headers["client-request-id"] = client_request_id
            return response

        return wrapped


def _missing(parameter: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{parameter}'."
    )
