"""The Slack emulator: a workspace behind the Web API, and Slack's side of an app's request URL.

The app's ``AsyncWebClient`` calls it at ``base_url + "/api/"``; it can also act as Slack towards the
app, sending signed slash commands, button clicks, view submissions and events to ``/slack/events``::

    async with SlackEmulator(clock=clock, events_url=app_url + "/slack/events") as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await slack.send_slash_command("/retrain", "model-x", channel="ml-models")
        slack.state.channel("ml-models").messages        # what the app posted
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from adapters.emulators.base import (
    Fault,
    FaultScript,
    LocalServer,
    Recorder,
    add_control_routes,
    recording_middleware,
)
from bot.clock import Clock, SystemClock

from .bot_client import SlackBotClient, SlackBotResponse
from .payloads import PayloadFactory
from .response_url import ResponseUrls
from .state import ChannelState, OpenedView, ResponseUrl, SlackMessage, SlackState
from .web_api import WebApi
from .world import load_world

DEFAULT_USER = "alice"
DEFAULT_CHANNEL = "ml-models"
FAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 502: "fatal_error", 503: "service_unavailable"}


def fault_body(fault: Fault) -> dict[str, Any]:
    """A scripted 429/5xx fault in Slack's ``{"ok": false, "error"}`` shape."""
    return {"ok": False, "error": FAULT_ERRORS.get(int(fault.kind), "request_timeout")}


def method_error(error: str, matching: str | None = None) -> Fault:
    """A fault answering as Slack refuses a Web API call: HTTP 200 ``{"ok": false, "error": error}`` (for a
    request whose path or body contains ``matching``, a channel's id say, when given)."""
    return Fault("400", status=200, body={"ok": False, "error": error}, matching=matching)


class SlackEmulator:
    """An in-memory Slack workspace.

    Args:
        world: the ``slack`` section of a world file (or a whole world with a ``slack`` key); the shipped
            ``default_world.yaml`` if None.
        clock: time source for ``ts`` values, rate limits, trigger and response-URL expiry, and the
            signature timestamps (keep it near real time when the app verifies signatures).
        events_url: the app's request URL (``http://127.0.0.1:PORT/slack/events``). Can be set later.
        base_url: the public URL of this emulator's root; set by :meth:`start`, or by whoever mounts
            :meth:`create_app` under a prefix (e.g. ``http://127.0.0.1:PORT/slack``).
    """

    def __init__(
        self,
        world: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        events_url: str | None = None,
        base_url: str = "",
    ) -> None:
        self.world = load_world(world)
        self.clock: Clock = clock or SystemClock()
        self.recorder = Recorder()
        self.faults = FaultScript()
        self.state = SlackState(self.world, self.clock)
        self.base_url = base_url
        self.web_api = WebApi(self.state, lambda: self.base_url)
        self.response_urls = ResponseUrls(self.state)
        self.app_client = SlackBotClient(events_url, self.world.signing_secret, self.clock)
        self.payloads = PayloadFactory(self.world)
        self.deliveries: list[SlackBotResponse] = []
        self._server: LocalServer | None = None
        self._event_ids = itertools.count(1)

    @property
    def events_url(self) -> str | None:
        return self.app_client.url

    @events_url.setter
    def events_url(self, url: str | None) -> None:
        self.app_client.url = url

    @property
    def api_url(self) -> str:
        """What to pass as ``AsyncWebClient(base_url=...)``: ``base_url + "/api/"``."""
        return f"{self.base_url.rstrip('/')}/api/"

    @property
    def bot_token(self) -> str:
        """A bot token the Web API accepts."""
        return self.world.bot_token

    @property
    def signing_secret(self) -> str:
        return self.world.signing_secret

    # serving

    def create_app(self) -> web.Application:
        """The aiohttp application: Web API, response URLs, ``/_emulator/`` control routes, faults."""
        app = web.Application(middlewares=[recording_middleware(self.recorder, self.faults, fault_body, self.clock)])
        add_control_routes(app, self.recorder, self.faults)
        app.router.add_get("/_emulator/state", self._get_state)
        self.web_api.register(app)
        self.response_urls.register(app)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve standalone on ``host:port`` (port 0 picks a free one); sets and returns ``base_url``."""
        self._server = await LocalServer(self.create_app(), host, port).start()
        self.base_url = self._server.url
        return self.base_url

    async def stop(self) -> None:
        """Stop the standalone server and close the outbound session."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.close()

    async def close(self) -> None:
        await self.app_client.close()

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # acting as Slack towards the app

    async def send_slash_command(
        self, command: str, text: str = "", *, channel: str = DEFAULT_CHANNEL, user: str = DEFAULT_USER
    ) -> SlackBotResponse:
        """A user runs ``command text`` in ``channel``. An immediate reply in the answer is applied
        (ephemeral unless ``response_type`` is ``in_channel``); later ones come to ``response_url``."""
        where, who = self.state.channel(channel), self.world.user(user)
        url = self.state.new_response_url("commands", where.id, who.id)
        fields = self.payloads.slash_command(
            command=command,
            text=text,
            channel=where,
            user=who,
            response_url=self._response_url(url),
            trigger_id=self.state.new_trigger(who.id).id,
        )
        response = await self._deliver(self.app_client.post_form(fields))
        self._apply_immediate_reply(url, response)
        return response

    async def click_button(
        self,
        message_ts: str,
        action_id: str,
        *,
        channel: str | None = None,
        user: str = DEFAULT_USER,
        value: str | None = None,
    ) -> SlackBotResponse:
        """A user clicks the element ``action_id`` of a message (or of an ephemeral one they see)."""
        who = self.world.user(user)
        where, message, ephemeral = self._clicked_message(message_ts, channel)
        blocks = (message or {}).get("blocks") or (ephemeral.blocks if ephemeral else None) or []
        action = _find_action(blocks, action_id, value, self.state.new_ts())
        url = self.state.new_response_url("actions", where.id, who.id, message_ts, ephemeral is not None)
        container = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": where.id,
            "is_ephemeral": ephemeral is not None,
        }
        payload = self.payloads.block_actions(
            user=who,
            channel=where,
            container=container,
            message=message,
            action=action,
            response_url=self._response_url(url),
            trigger_id=self.state.new_trigger(who.id).id,
        )
        return await self._deliver(self.app_client.post_form({"payload": _compact(payload)}))

    async def submit_view(self, view_id: str, values: Mapping[str, Mapping[str, Any]]) -> SlackBotResponse:
        """The user submits an opened modal; ``values`` is ``{block_id: {action_id: value}}`` where a
        plain string stands for a ``plain_text_input``. The app's ``response_action`` is applied."""
        opened = self.state.views[view_id]
        who = self.world.user(opened.user)
        state_values = {
            block: {
                action: v if isinstance(v, Mapping) else {"type": "plain_text_input", "value": v}
                for action, v in actions.items()
            }
            for block, actions in values.items()
        }
        payload = self.payloads.view_submission(
            user=who, view=opened.view, values=state_values, trigger_id=self.state.new_trigger(who.id).id
        )
        response = await self._deliver(self.app_client.post_form({"payload": _compact(payload)}))
        self._apply_view_response(opened, response)
        return response

    async def mention_bot(
        self,
        text: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        user: str = DEFAULT_USER,
        thread_ts: str | None = None,
    ) -> SlackBotResponse:
        """A user writes ``@handoff text`` in a channel: the message is posted, then ``app_mention`` sent."""
        where, who = self.state.channel(channel), self.world.user(user)
        full = f"<@{self.world.bot_user_id}> {text}"
        msg = self.state.post(where, user=who.id, text=full, thread_ts=thread_ts)
        event = self.payloads.app_mention(user=who, channel=where, text=full, ts=msg.ts, thread_ts=msg.thread_ts)
        return await self.send_event(event)

    async def message_bot(
        self, text: str, *, user: str = DEFAULT_USER, thread_ts: str | None = None
    ) -> SlackBotResponse:
        """A user writes ``text`` in their own chat with the app (its Messages tab): the message is posted there,
        then ``message.im`` sent."""
        who = self.world.user(user)
        where = self.state.im(who.id)
        msg = self.state.post(where, user=who.id, text=text, thread_ts=thread_ts)
        event = self.payloads.direct_message(user=who, channel=where, text=text, ts=msg.ts, thread_ts=msg.thread_ts)
        return await self.send_event(event)

    async def remove_bot(self, channel: str) -> SlackBotResponse:
        """Someone removes the app from ``channel``: it is no longer a member, and ``member_left_channel``
        is sent for its bot user (posts there now fail: ``channel_not_found`` in a private channel;
        ``not_in_channel`` in a public one, unless the token has ``chat:write.public``)."""
        where = self.state.channel(channel)
        where.members.discard(self.world.bot_user_id)
        return await self.send_event(self._membership("member_left_channel", where))

    async def add_bot(self, channel: str, *, user: str = DEFAULT_USER) -> SlackBotResponse:
        """Someone adds the app to ``channel`` (``/invite @handoff``): ``member_joined_channel`` for its bot user."""
        where = self.state.channel(channel)
        where.members.add(self.world.bot_user_id)
        event = {**self._membership("member_joined_channel", where), "inviter": self.world.user(user).id}
        return await self.send_event(event)

    def _membership(self, kind: str, where: ChannelState) -> dict[str, Any]:
        return {
            "type": kind,
            "user": self.world.bot_user_id,
            "channel": where.id,
            "channel_type": "G" if where.is_private else "C",
            "team": self.world.team_id,
            "event_ts": f"{self.clock.now().timestamp():.6f}",
        }

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> SlackBotResponse:
        """Deliver any event in an ``event_callback`` envelope; ``retry_num`` marks a redelivery
        (``X-Slack-Retry-Num``/``X-Slack-Retry-Reason``), to be sent with the same ``event_id``."""
        event_id = event_id or f"Ev{next(self._event_ids):08d}EMU"
        envelope = self.payloads.event_callback(event, event_id=event_id, event_time=int(self.clock.now().timestamp()))
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return await self._deliver(self.app_client.post_json(envelope, headers))

    async def verify_url(self, challenge: str | None = None) -> SlackBotResponse:
        """Send the Events API ``url_verification`` challenge."""
        payload = self.payloads.url_verification(challenge or secrets.token_urlsafe(24))
        return await self._deliver(self.app_client.post_json(payload))

    # helpers

    async def _deliver(self, sending: Any) -> SlackBotResponse:
        response: SlackBotResponse = await sending
        self.deliveries.append(response)
        return response

    def _response_url(self, url: ResponseUrl) -> str:
        if not self.base_url:
            raise RuntimeError("base_url is not set: start() the emulator or set base_url once it is served")
        return f"{self.base_url.rstrip('/')}/hooks/{url.kind}/{url.token}"

    def _clicked_message(self, message_ts: str, channel: str | None) -> tuple[ChannelState, dict[str, Any] | None, Any]:
        channels = [self.state.channel(channel)] if channel else list(self.state.channels.values())
        for where in channels:
            msg: SlackMessage | None = self.state.find(where.id, message_ts)
            if msg is not None:
                return where, msg.to_api(self.world.team_id, self.world.app_id), None
            ephemeral = self.state.find_ephemeral(where.id, message_ts)
            if ephemeral is not None:
                return where, None, ephemeral
        raise KeyError(f"no message {message_ts!r} to click on")

    def _apply_immediate_reply(self, url: ResponseUrl, response: SlackBotResponse) -> None:
        if response.status != 200 or not response.body.strip():
            return
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text}
        if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            self.response_urls.apply(url, body)

    def _apply_view_response(self, opened: OpenedView, response: SlackBotResponse) -> None:
        if response.status != 200:
            return
        try:
            body = response.json() or {}
        except ValueError:
            body = {}
        action = body.get("response_action") if isinstance(body, dict) else None
        if action == "errors":
            opened.errors = dict(body.get("errors") or {})
        elif action == "update" and isinstance(body.get("view"), dict):
            self.state.update_view(opened, body["view"])
        elif action == "push" and isinstance(body.get("view"), dict):
            self.state.open_view(opened.user, body["view"], opened.trigger_id)
        elif action == "clear":
            for view in self.state.views.values():
                view.closed = view.closed or view.user == opened.user
        else:
            opened.closed = True

    async def _get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.snapshot())

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()


def _find_action(blocks: list[dict[str, Any]], action_id: str, value: str | None, action_ts: str) -> dict[str, Any]:
    for block in blocks:
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                action = {
                    "action_id": action_id,
                    "block_id": block.get("block_id", ""),
                    "type": element.get("type"),
                }
                if value is not None or "value" in element:
                    action["value"] = value if value is not None else element["value"]
                if "style" in element:
                    action["style"] = element["style"]
                if isinstance(element.get("text"), dict):
                    action["text"] = {"emoji": True, **element["text"]}
                action["action_ts"] = action_ts
                return action
    raise KeyError(f"no element with action_id {action_id!r} in the message")


def _compact(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
