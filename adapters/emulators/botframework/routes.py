"""The Bot Connector REST routes botbuilder calls (``/v3/conversations/...``, ``/v3/teams/...``).

Each handler answers as the service does: the status codes the SDK accepts, ``{"error": {"code",
"message"}}`` bodies otherwise, 404 for unknown conversations and activities, 413 above the message size
limit (counted as Teams counts it: the JSON as text, in UTF-16 bytes) and 429 with ``Retry-After`` when a
conversation's rate limit, or the bot's limit across all its conversations in the tenant, is reached.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .errors import ConnectorError, bad_argument
from .rate_limit import SlidingWindowLimiter, retry_after_header
from .state import ConnectorState, Conversation, split_conversation_id
from .world import Team, TeamsUser

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectorRoutes:
    """Handlers for the connector API over one :class:`ConnectorState`.

    Args:
        state: conversations and messages.
        base_url: returns the emulator's public base URL (the ``serviceUrl`` it hands out).
    """

    def __init__(self, state: ConnectorState, base_url: Callable[[], str]) -> None:
        self.state = state
        self.world = state.world
        self.base_url = base_url
        limits = self.world.limits
        self.send_limiter = SlidingWindowLimiter(limits.send, state.clock)
        self.read_limiter = SlidingWindowLimiter(limits.read, state.clock)
        self.unpaged_limiter = SlidingWindowLimiter(limits.members_unpaged, state.clock)
        self.app_limiter = SlidingWindowLimiter(limits.app, state.clock)

    def register(self, app: web.Application) -> None:
        """Add the routes to ``app`` (relative to its root)."""
        conv = "/v3/conversations/{conversation_id}"
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/v3/conversations", self.create_conversation),
            ("POST", f"{conv}/activities", self.send_to_conversation),
            ("POST", f"{conv}/activities/{{activity_id}}", self.reply_to_activity),
            ("PUT", f"{conv}/activities/{{activity_id}}", self.update_activity),
            ("DELETE", f"{conv}/activities/{{activity_id}}", self.delete_activity),
            ("GET", f"{conv}/members", self.get_members),
            ("GET", f"{conv}/members/{{member_id}}", self.get_member),
            ("GET", f"{conv}/pagedmembers", self.get_paged_members),
            ("GET", "/v3/teams/{team_id}", self.get_team_details),
            ("GET", "/v3/teams/{team_id}/conversations", self.get_team_channels),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, _errors_as_responses(handler))

    # sends

    async def send_to_conversation(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        activity = await self._activity_body(request, conversation_id)
        msg = self.state.post(conversation_id, activity, by_bot=True)
        return web.json_response({"id": msg.id}, status=201)

    async def reply_to_activity(self, request: web.Request) -> web.Response:
        # A bare channel id makes a new top-level post even here; ";messageid=<root>" makes a reply.
        conversation_id = request.match_info["conversation_id"]
        activity = await self._activity_body(request, conversation_id)
        activity.setdefault("replyToId", request.match_info["activity_id"])
        msg = self.state.post(conversation_id, activity, by_bot=True)
        return web.json_response({"id": msg.id}, status=200)

    async def update_activity(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        activity_id = request.match_info["activity_id"]
        self.state.find(conversation_id, activity_id)
        activity = await self._activity_body(request, conversation_id)
        self.state.update(conversation_id, activity_id, activity)
        return web.json_response({"id": activity_id}, status=200)

    async def delete_activity(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        activity_id = request.match_info["activity_id"]
        self.state.find(conversation_id, activity_id)
        self._throttle(self.send_limiter, conversation_id)
        self.state.delete(conversation_id, activity_id)
        return web.Response(status=200)

    async def create_conversation(self, request: web.Request) -> web.Response:
        params = await _json_object(request)
        self._check_size(params)
        activity = params.get("activity")
        if activity is not None and not isinstance(activity, dict):
            raise bad_argument("activity must be an object")
        channel_id = ((params.get("channelData") or {}).get("channel") or {}).get("id")
        if channel_id:
            return self._create_channel_thread(str(channel_id), activity)
        return self._create_chat(params, activity)

    def _create_channel_thread(self, channel_id: str, activity: dict[str, Any] | None) -> web.Response:
        conv = self.state.channel(channel_id)
        if activity is None:
            raise bad_argument("An activity is required to start a thread in a channel")
        self._throttle(self.send_limiter, conv.id)
        msg = self.state.post(conv.id, activity, by_bot=True)
        body = {"id": msg.thread_conversation_id, "activityId": msg.id, "serviceUrl": self._service_url()}
        return web.json_response(body, status=201)

    def _create_chat(self, params: dict[str, Any], activity: dict[str, Any] | None) -> web.Response:
        members = [self._user(str(m.get("id", ""))) for m in params.get("members") or [] if isinstance(m, dict)]
        if not members:
            raise bad_argument("members or channelData.channel.id is required")
        if len(members) == 1 and not params.get("isGroup"):
            conv = self.state.conversation(members[0].personal_conversation_id)
        else:
            conv = self.state.create_group_chat(tuple(m.key for m in members))
        body: dict[str, Any] = {"id": conv.id, "serviceUrl": self._service_url()}
        if activity is not None:
            self._throttle(self.send_limiter, conv.id)
            body["activityId"] = self.state.post(conv.id, activity, by_bot=True).id
        return web.json_response(body, status=201)

    # reads

    async def get_members(self, request: web.Request) -> web.Response:
        conv = self._read(request.match_info["conversation_id"], self.unpaged_limiter)
        return web.json_response([self._account(u) for u in self._members(conv)])

    async def get_member(self, request: web.Request) -> web.Response:
        conv = self._read(request.match_info["conversation_id"])
        member_id = request.match_info["member_id"]
        for user in self._members(conv):  # by Teams id, AAD object id or UPN, as Teams looks members up
            if member_id in (user.id, user.aad_object_id) or member_id.lower() == user.user_principal_name.lower():
                return web.json_response(self._account(user))
        raise ConnectorError(404, "MemberNotFoundInConversation", f"{member_id} is not a member of {conv.id}")

    async def get_paged_members(self, request: web.Request) -> web.Response:
        conv = self._read(request.match_info["conversation_id"])
        members = self._members(conv)
        try:
            size = max(1, min(500, int(request.query.get("pageSize", "200"))))
            token = request.query.get("continuationToken") or "ct-0"
            start = int(token.removeprefix("ct-"))
        except ValueError as exc:
            raise bad_argument(f"bad paging parameters: {exc}") from exc
        page = members[start : start + size]
        more = start + size < len(members)
        return web.json_response(
            {
                "members": [self._account(u) for u in page],
                "continuationToken": f"ct-{start + size}" if more else None,
            }
        )

    async def get_team_details(self, request: web.Request) -> web.Response:
        team = self._team(request.match_info["team_id"])
        body = {
            "id": team.id,
            "name": team.name,
            "aadGroupId": team.aad_group_id,
            "channelCount": len(team.channels),
            "memberCount": len(team.members),
            "type": "standard",
        }
        return web.json_response(body)

    async def get_team_channels(self, request: web.Request) -> web.Response:
        team = self._team(request.match_info["team_id"])
        # Teams leaves the General channel's name out (clients localise it).
        channels = [{"id": c.id} if c.is_general else {"id": c.id, "name": c.name} for c in team.channels]
        return web.json_response({"conversations": channels})

    # helpers

    async def _activity_body(self, request: web.Request, conversation_id: str) -> dict[str, Any]:
        self.state.resolve(conversation_id)
        activity = await _json_object(request)
        self._check_size(activity)
        self._throttle(self.send_limiter, conversation_id)
        return activity

    def _check_size(self, body: dict[str, Any]) -> None:
        # Teams counts a message in UTF-16 (about 100 KB), whatever escapes the JSON on the wire uses
        size = len(json.dumps(body, ensure_ascii=False).encode("utf-16-le"))
        limit = self.world.limits.max_message_bytes
        if size > limit:
            raise ConnectorError(413, "MessageSizeTooBig", f"Message size {size} exceeds {limit} bytes")

    def _throttle(self, limiter: SlidingWindowLimiter, conversation_id: str, *more: SlidingWindowLimiter) -> None:
        """Admit one request on the conversation under ``limiter`` (and ``more``) and the bot's limit across
        its conversations, or refuse it with 429; only an admitted request counts."""
        key, _ = split_conversation_id(conversation_id)
        app = self.world.tenant_id
        wait = max([limiter.wait(key), *(other.wait(key) for other in more)])
        if wait > 0:
            raise ConnectorError(
                429,
                "TooManyRequests",
                "Too many requests in this conversation; retry later",
                {"Retry-After": retry_after_header(wait)},
            )
        if (wait := self.app_limiter.wait(app)) > 0:
            raise ConnectorError(
                429,
                "TooManyRequests",
                "Too many requests from this bot; retry later",
                {"Retry-After": retry_after_header(wait)},
            )
        for admitted in (limiter, *more):
            admitted.count(key)
        self.app_limiter.count(app)

    def _read(self, conversation_id: str, *more: SlidingWindowLimiter) -> Conversation:
        conv, _ = self.state.resolve(conversation_id)
        self._throttle(self.read_limiter, conv.id, *more)
        return conv

    def _team(self, team_id: str) -> Team:
        try:
            team = self.world.team(team_id)
        except KeyError:
            raise ConnectorError(404, "NotFound", f"Team {team_id} not found") from None
        self._throttle(self.read_limiter, team.id)
        return team

    def _members(self, conv: Conversation) -> list[TeamsUser]:
        return [self.world.user(key) for key in conv.members]

    def _user(self, ref: str) -> TeamsUser:
        try:
            return self.world.user(ref)
        except KeyError:
            raise bad_argument(f"Unknown member {ref}") from None

    def _account(self, user: TeamsUser) -> dict[str, Any]:
        return user.teams_account(self.world.tenant_id)

    def _service_url(self) -> str:
        return self.base_url().rstrip("/") + "/"


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise ConnectorError(400, "BadSyntax", f"Body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConnectorError(400, "BadSyntax", "Body must be a JSON object")
    return data


def _errors_as_responses(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ConnectorError as exc:
            return exc.response()

    return wrapped
