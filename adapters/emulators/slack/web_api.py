"""The Slack Web API methods Handoff uses, at ``GET|POST /api/{method}``.

Failures are HTTP 200 ``{"ok": false, "error": ...}`` as Slack answers them; only rate limiting is an
HTTP 429 with ``Retry-After``. Method references: https://docs.slack.dev/reference/methods
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from .arguments import ApiCall, MethodError, read_call
from .blocks import BlockError, check_blocks
from .history import Page, in_window, limit_of, paginate
from .rate_limit import TokenBucketLimiter, retry_after_header
from .state import KEEP, ChannelState, SlackMessage, SlackState
from .world import SlackUser

Method = Callable[[ApiCall], dict[str, Any]]


class RateLimited(Exception):
    """Raised when a call is over its limit; becomes HTTP 429."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited for {wait:.2f} s")
        self.wait = wait


class WebApi:
    """Handlers for the Web API over one :class:`SlackState`.

    Args:
        state: the workspace.
        base_url: returns the emulator's public base URL.
    """

    def __init__(self, state: SlackState, base_url: Callable[[], str]) -> None:
        self.state = state
        self.world = state.world
        self.base_url = base_url
        limits = self.world.limits
        self.post_limiter = TokenBucketLimiter(limits.post_message_per_second, limits.post_message_burst, state.clock)
        self.update_limiter = TokenBucketLimiter(limits.update_per_minute / 60, limits.update_burst, state.clock)
        self.methods: dict[str, Method] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "views.open": self.views_open,
            "views.update": self.views_update,
            "users.info": self.users_info,
            "users.lookupByEmail": self.users_lookup_by_email,
            "conversations.info": self.conversations_info,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
        }

    def register(self, app: web.Application) -> None:
        """Add ``/api/{method}`` (GET and POST) to ``app``."""
        app.router.add_route("GET", "/api/{method}", self.handle)
        app.router.add_route("POST", "/api/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            call = await read_call(request)
            method = self.methods.get(call.method)
            if method is None:
                return web.json_response(
                    {"ok": False, "error": "unknown_method", "req_method": call.method}, status=404
                )
            self._authenticate(call)
            return web.json_response({"ok": True, **method(call)}, headers=self._scopes_header())
        except MethodError as exc:
            return web.json_response({"ok": False, "error": exc.error, **exc.extra})
        except RateLimited as exc:
            headers = {"Retry-After": retry_after_header(exc.wait)}
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)

    def _scopes_header(self) -> dict[str, str]:
        scopes = self.state.world.bot_scopes
        return {"X-OAuth-Scopes": ",".join(scopes)} if scopes else {}

    # methods

    def auth_test(self, call: ApiCall) -> dict[str, Any]:
        return {
            "url": f"{self.base_url().rstrip('/')}/",
            "team": self.world.team_name,
            "user": self.world.bot_name,
            "team_id": self.world.team_id,
            "user_id": self.world.bot_user_id,
            "bot_id": self.world.bot_id,
            "enterprise_id": self.world.enterprise_id,
            "is_enterprise_install": False,
        }

    def chat_post_message(self, call: ApiCall) -> dict[str, Any]:
        channel = self._postable_channel(call)
        text, blocks, attachments = self._content(call)
        metadata = self._metadata(call)
        wait = self.post_limiter.acquire(channel.id)
        if wait is not None:
            raise RateLimited(wait)
        thread_ts = call.string("thread_ts") or None
        try:
            msg = self.state.post(
                channel,
                user=self.world.bot_user_id,
                text=text,
                blocks=blocks,
                attachments=attachments,
                bot_id=self.world.bot_id,
                thread_ts=thread_ts,
                reply_broadcast=call.flag("reply_broadcast"),
                metadata=metadata,
            )
        except KeyError:
            raise MethodError("thread_not_found") from None
        return {"channel": channel.id, "ts": msg.ts, "message": self._api(msg)}

    def chat_update(self, call: ApiCall) -> dict[str, Any]:
        channel, msg = self._own_message(call)
        text = call.string("text")
        blocks = call.args["blocks"] if call.has("blocks") else KEEP
        attachments = call.args["attachments"] if call.has("attachments") else KEEP
        metadata = self._metadata(call) if call.has("metadata") else KEEP
        if text is None and blocks is KEEP and attachments is KEEP:
            raise MethodError("no_text")
        self._check_limits(text or "", None if blocks is KEEP else blocks)
        # Tier 3: one budget for the whole workspace, whichever channel the message is in
        wait = self.update_limiter.acquire(self.world.team_id)
        if wait is not None:
            raise RateLimited(wait)
        self.state.update(msg, text=text, blocks=blocks, attachments=attachments, metadata=metadata)
        return {"channel": channel.id, "ts": msg.ts, "text": msg.text, "message": self._api(msg)}

    def chat_delete(self, call: ApiCall) -> dict[str, Any]:
        channel, msg = self._own_message(call, error="cant_delete_message")
        self.state.delete(msg)
        return {"channel": channel.id, "ts": msg.ts}

    def chat_post_ephemeral(self, call: ApiCall) -> dict[str, Any]:
        channel = self._member_channel(call)
        user = self._user(call.required("user", "user_not_found"))
        if user.id not in channel.members:
            raise MethodError("user_not_in_channel")
        text, blocks, _ = self._content(call)
        msg = self.state.post_ephemeral(channel, user.id, text=text, blocks=blocks, thread_ts=call.string("thread_ts"))
        return {"message_ts": msg.ts}

    def views_open(self, call: ApiCall) -> dict[str, Any]:
        trigger_id = call.required("trigger_id", "invalid_trigger_id")
        view = self._view(call)
        trigger = self.state.triggers.get(trigger_id)
        if trigger is None:
            raise MethodError("invalid_trigger_id")
        if trigger.used:
            raise MethodError("exchanged_trigger_id")
        if self.state.clock.monotonic() - trigger.issued_at > self.world.limits.trigger_id_ttl_seconds:
            raise MethodError("expired_trigger_id")
        trigger.used = True
        opened = self.state.open_view(trigger.user, view, trigger_id)
        return {"view": opened.view}

    def views_update(self, call: ApiCall) -> dict[str, Any]:
        view = self._view(call)
        view_id, external_id = call.string("view_id"), call.string("external_id")
        opened = next(
            (
                v
                for v in self.state.views.values()
                if (view_id and v.id == view_id) or (external_id and v.external_id == external_id)
            ),
            None,
        )
        if opened is None or opened.closed:
            raise MethodError("not_found")
        expected = call.string("hash")
        if expected and expected != opened.hash:
            raise MethodError("hash_conflict")
        self.state.update_view(opened, view)
        return {"view": opened.view}

    def users_info(self, call: ApiCall) -> dict[str, Any]:
        user_id = call.required("user", "user_not_found")
        if user_id == self.world.bot_user_id:
            return {"user": self._bot_user()}
        return {"user": self._user_object(self._user(user_id))}

    def users_lookup_by_email(self, call: ApiCall) -> dict[str, Any]:
        email = call.required("email", "users_not_found").lower()
        user = next((u for u in self.world.users if u.email.lower() == email), None)
        if user is None:
            raise MethodError("users_not_found")
        return {"user": self._user_object(user)}

    def conversations_info(self, call: ApiCall) -> dict[str, Any]:
        channel = self._channel(call)
        return {
            "channel": {
                "id": channel.id,
                "name": channel.name,
                "name_normalized": channel.name,
                "is_channel": not channel.is_private,
                "is_group": False,
                "is_im": channel.is_im,
                "is_mpim": channel.is_mpim,
                "is_private": channel.is_private,
                "is_archived": False,
                "is_general": False,
                "is_member": self.world.bot_user_id in channel.members,
                "is_ext_shared": False,
                "is_shared": False,
                "context_team_id": self.world.team_id,
                "created": 1_700_000_000,
                "creator": self.world.users[0].id if self.world.users else "",
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
                **({"num_members": len(channel.members)} if call.flag("include_num_members") else {}),
            }
        }

    def conversations_history(self, call: ApiCall) -> dict[str, Any]:
        """The channel's timeline (top-level messages and broadcast replies), newest first. Tier 3 at
        Slack; not rate limited here."""
        channel = self._readable_channel(call)
        limits = self.world.limits
        limit = limit_of(call, limits.history_default_limit, limits.history_max_limit)
        timeline = in_window(call, [m for m in channel.messages if not m.deleted])
        page = paginate(call, timeline[::-1], newest_first=True, limit=limit)
        return {**self._page(page, call), "pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0}

    def conversations_replies(self, call: ApiCall) -> dict[str, Any]:
        """A thread: its parent, then the replies oldest first. The ts of a reply (or of a message
        without replies) returns that message alone."""
        channel = self._readable_channel(call)
        ts = call.required("ts", "thread_not_found")
        msg = self.state.find(channel.id, ts)
        if msg is None or msg.deleted:
            raise MethodError("thread_not_found")
        limits = self.world.limits
        limit = limit_of(call, limits.replies_default_limit, limits.replies_max_limit)
        if msg.thread_ts:
            return self._page(Page([msg], None), call)
        replies = in_window(call, [r for r in msg.replies if not r.deleted])
        first = not call.string("cursor")
        page = paginate(call, [msg, *replies] if first else replies, newest_first=False, limit=limit)
        return self._page(page, call, parent=msg)

    # helpers

    def _page(self, page: Page, call: ApiCall, parent: SlackMessage | None = None) -> dict[str, Any]:
        with_metadata = call.flag("include_all_metadata")
        messages = []
        for msg in page.messages:
            data = self._api(msg, include_metadata=with_metadata)
            if msg.thread_ts:
                owner = parent if parent is not None else self.state.find(msg.channel, msg.thread_ts)
                if owner is not None:
                    data["parent_user_id"] = owner.user
                    if msg.reply_broadcast:  # (Slack shows where a broadcast reply came from)
                        data["root"] = self._api(owner, include_metadata=with_metadata)
            messages.append(data)
        body: dict[str, Any] = {"messages": messages, "has_more": page.has_more}
        if page.next_cursor is not None:
            body["response_metadata"] = {"next_cursor": page.next_cursor}
        return body

    def _metadata(self, call: ApiCall) -> dict[str, Any] | None:
        """``metadata`` checked as Slack does: ``event_type`` a non-empty string, ``event_payload`` an object."""
        metadata = call.args.get("metadata")
        if metadata is None or metadata == "":
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not metadata["event_type"]
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise MethodError("invalid_metadata_format")
        return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}

    def _authenticate(self, call: ApiCall) -> None:
        if not call.token:
            raise MethodError("not_authed")
        if call.token not in self.world.bot_tokens:
            raise MethodError("invalid_auth")

    def _channel(self, call: ApiCall) -> ChannelState:
        ref = call.required("channel", "channel_not_found")
        try:
            return self.state.channel(ref)
        except KeyError:
            raise MethodError("channel_not_found") from None

    def _postable_channel(self, call: ApiCall) -> ChannelState:
        """The ``channel`` argument of a post: one the app is a member of, or a public channel when its token
        has ``chat:write.public`` (Slack lets such an app post there without joining; a private channel
        needs an invite)."""
        channel = self._channel(call)
        granted = self.state.world.bot_scopes
        public_allowed = not channel.is_private and (not granted or "chat:write.public" in granted)
        return channel if public_allowed else self._member_channel(call)

    def _member_channel(self, call: ApiCall) -> ChannelState:
        """The ``channel`` argument, which the app must be a member of (a private one it is not in is
        not found, a public one is ``not_in_channel``)."""
        channel = self._channel(call)
        if self.world.bot_user_id not in channel.members:
            raise MethodError("channel_not_found" if channel.is_private else "not_in_channel")
        return channel

    def _readable_channel(self, call: ApiCall) -> ChannelState:
        """A channel the app is a member of and whose history its token may read: ``channels:history``,
        ``groups:history``, ``im:history`` or ``mpim:history`` by the conversation's kind, else
        ``missing_scope`` naming the one needed, as Slack answers."""
        channel = self._member_channel(call)
        if channel.is_im:
            needed = "im:history"
        elif channel.is_mpim:
            needed = "mpim:history"
        else:
            needed = "groups:history" if channel.is_private else "channels:history"
        granted = self.state.world.bot_scopes  # (the scopes may change while it runs)
        if granted and needed not in granted:
            raise MethodError("missing_scope", needed=needed, provided=",".join(granted))
        return channel

    def _content(self, call: ApiCall) -> tuple[str, list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        text = call.string("text") or ""
        blocks = call.args.get("blocks")
        attachments = call.args.get("attachments")
        if not text and not blocks and not attachments:
            raise MethodError("no_text")
        self._check_limits(text, blocks)
        if attachments is not None and not isinstance(attachments, list):
            raise MethodError("invalid_attachments")
        return text, blocks, attachments

    def _check_limits(self, text: str, blocks: Any) -> None:
        """The message's size and its blocks' limits (:mod:`.blocks`), as Slack checks them."""
        limits = self.world.limits
        if len(text) > limits.max_text_chars:
            raise MethodError("msg_too_long")
        if blocks is None:
            return
        if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("type") for b in blocks):
            raise MethodError("invalid_blocks")
        if len(blocks) > limits.max_blocks:
            raise MethodError(
                "invalid_blocks",
                response_metadata={"messages": [f"[ERROR] must provide an array of at most {limits.max_blocks} items"]},
            )
        try:
            check_blocks(blocks)
        except BlockError as exc:
            raise MethodError("invalid_blocks", response_metadata={"messages": [str(exc)]}) from None

    def _own_message(self, call: ApiCall, error: str = "cant_update_message") -> tuple[ChannelState, SlackMessage]:
        channel = self._channel(call)
        msg = self.state.find(channel.id, call.required("ts", "message_not_found"))
        if msg is None or msg.deleted:
            raise MethodError("message_not_found")
        if msg.bot_id != self.world.bot_id:
            raise MethodError(error)
        return channel, msg

    def _user(self, ref: str) -> SlackUser:
        try:
            return self.world.user(ref)
        except KeyError:
            raise MethodError("user_not_found") from None

    def _view(self, call: ApiCall) -> dict[str, Any]:
        view = call.args.get("view")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise MethodError("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid view"]})
        return view

    def _api(self, msg: SlackMessage, *, include_metadata: bool = False) -> dict[str, Any]:
        return msg.to_api(self.world.team_id, self.world.app_id, include_metadata=include_metadata)

    def _user_object(self, user: SlackUser) -> dict[str, Any]:
        return {
            "id": user.id,
            "team_id": self.world.team_id,
            "name": user.name,
            "deleted": False,
            "real_name": user.real_name,
            "tz": user.tz,
            "is_admin": False,
            "is_owner": False,
            "is_bot": False,
            "is_app_user": False,
            "profile": {
                "real_name": user.real_name,
                "display_name": user.name,
                "email": user.email,
                "team": self.world.team_id,
            },
        }

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.world.bot_user_id,
            "team_id": self.world.team_id,
            "name": self.world.bot_name,
            "deleted": False,
            "real_name": self.world.bot_name,
            "is_bot": True,
            "is_app_user": False,
            "profile": {
                "real_name": self.world.bot_name,
                "display_name": self.world.bot_name,
                "bot_id": self.world.bot_id,
                "api_app_id": self.world.app_id,
                "team": self.world.team_id,
            },
        }
