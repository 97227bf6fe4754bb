"""The Bot Framework connector emulator: the Teams side of a bot, over HTTP, on 127.0.0.1.

The bot's botbuilder connector client calls it at the ``serviceUrl`` it hands out (its ``base_url``);
it can also act as Teams towards the bot, posting activities to the bot's ``/api/messages``::

    async with BotFrameworkEmulator(clock=clock, bot_endpoint=bot_url) as teams:
        client = ConnectorClient(MicrosoftAppCredentials.empty(), base_url=teams.base_url)
        await teams.install_app()                         # installationUpdate to the bot
        reply = await teams.send_channel_message("status", channel="ML models")
        teams.state.channel("ML models").posts[-1].replies   # what the bot answered in the thread

The same state is readable as Microsoft Graph under :attr:`graph_url`, with tokens from Entra ID's
token endpoint under :attr:`login_url` (see ``graph.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from adapters.emulators.base import (
    FaultScript,
    LocalServer,
    Recorder,
    add_control_routes,
    recording_middleware,
)
from bot.clock import Clock, SystemClock

from .activities import ActivityFactory
from .bot_client import BotClient, BotResponse, TokenProvider
from .errors import fault_body
from .graph import GRAPH_PREFIX, LOGIN_PREFIX, GraphRoutes
from .routes import ConnectorRoutes
from .state import ConnectorState, Message
from .threaded import ThreadedServer
from .world import TeamsChannel, load_world

DEFAULT_USER = "alice"


class BotFrameworkEmulator:
    """An in-memory Teams tenant behind the Bot Connector REST API.

    Args:
        world: the ``teams`` section of a world file (or a whole world with a ``teams`` key); the
            shipped ``default_world.yaml`` if None.
        clock: time source for ids, timestamps and rate-limit windows (``FakeClock`` in tests).
        bot_endpoint: the bot's messaging URL (``http://127.0.0.1:PORT/api/messages``), for the
            methods that act as Teams towards the bot. Can be set later.
        token_provider: optional bearer-token source for those posts (see ``bot_client.TokenProvider``).
        base_url: the public URL of this emulator's root; set by :meth:`start`, or by whoever mounts
            :meth:`create_app` under a prefix (e.g. ``http://127.0.0.1:PORT/botframework``).
        graph_credentials: app id → client secret the token endpoint accepts; Graph then wants one of its
            tokens. With None (the default) any client gets a token and Graph asks for none.
    """

    def __init__(
        self,
        world: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        bot_endpoint: str | None = None,
        token_provider: TokenProvider | None = None,
        base_url: str = "",
        graph_credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.world = load_world(world)
        self.clock: Clock = clock or SystemClock()
        self.recorder = Recorder()
        self.faults = FaultScript()
        self.state = ConnectorState(self.world, self.clock)
        self.base_url = base_url
        self.bot = BotClient(bot_endpoint, token_provider)
        self.deliveries: list[BotResponse] = []
        self.routes = ConnectorRoutes(self.state, lambda: self.base_url)
        self.graph = GraphRoutes(self.state, graph_credentials)
        self._server: LocalServer | None = None
        self._threaded: ThreadedServer | None = None
        self._invoke_ids = 0

    @property
    def bot_endpoint(self) -> str | None:
        return self.bot.endpoint

    @bot_endpoint.setter
    def bot_endpoint(self, url: str | None) -> None:
        self.bot.endpoint = url

    @property
    def service_url(self) -> str:
        """The ``serviceUrl`` put in activities: ``base_url`` with a trailing slash."""
        return self.base_url.rstrip("/") + "/"

    @property
    def graph_url(self) -> str:
        """Microsoft Graph v1.0 over this emulator's state: ``<base_url>/graph/v1.0``."""
        return self.base_url.rstrip("/") + GRAPH_PREFIX

    @property
    def login_url(self) -> str:
        """The Entra ID authority host: tokens come from ``<login_url>/<tenant>/oauth2/v2.0/token``."""
        return self.base_url.rstrip("/") + LOGIN_PREFIX

    def set_graph_consent(self, *, granted: bool, team: str | None = None, chat: str | None = None) -> None:
        """Grant or revoke the app's resource-specific consent in a team or a group chat (Graph: 403)."""
        self.graph.set_consent(granted=granted, team=team, chat=chat)

    # serving

    def create_app(self) -> web.Application:
        """The aiohttp application: connector and Graph routes, ``/_emulator/`` control routes, recording, faults."""
        app = web.Application(middlewares=[recording_middleware(self.recorder, self.faults, fault_body, self.clock)])
        add_control_routes(app, self.recorder, self.faults)
        app.router.add_get("/_emulator/state", self._get_state)
        self.routes.register(app)
        self.graph.register(app)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, threaded: bool = False) -> str:
        """Serve standalone on ``host:port`` (port 0 picks a free one); sets and returns ``base_url``.

        ``threaded=True`` serves from a thread with its own event loop: needed when the bot under test
        shares this loop and calls ``TeamsInfo.get_team_details``/``get_team_channels`` (synchronous in
        botbuilder 4.17). State is then changed from that thread; read it, don't ``recorder.wait_for``.
        """
        if threaded:
            self._threaded = ThreadedServer(self.create_app(), host, port)
            self.base_url = await asyncio.to_thread(self._threaded.start)
        else:
            self._server = await LocalServer(self.create_app(), host, port).start()
            self.base_url = self._server.url
        return self.base_url

    async def stop(self) -> None:
        """Stop the standalone server and close the outbound session."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._threaded is not None:
            await asyncio.to_thread(self._threaded.stop)
            self._threaded = None
        await self.close()

    async def close(self) -> None:
        """Close the outbound session (also done when the app is cleaned up)."""
        await self.bot.close()

    async def __aenter__(self) -> BotFrameworkEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # acting as Teams towards the bot

    async def install_app(
        self, *, team: str | None = None, user: str = DEFAULT_USER, action: str = "add"
    ) -> BotResponse:
        """Send a team ``installationUpdate`` (``add``, ``add-upgrade``, ``remove``, ``remove-upgrade``)."""
        activity = self._factory().installation_update(
            self._event_id(),
            self.clock.now(),
            action=action,
            team=self.world.team(team),
            user=self.world.user(user),
        )
        return await self.post_activity(activity)

    async def uninstall_app(self, *, team: str | None = None, user: str = DEFAULT_USER) -> BotResponse:
        """Send ``installationUpdate`` ``remove`` for a team."""
        return await self.install_app(team=team, user=user, action="remove")

    async def install_personal_app(self, *, user: str = DEFAULT_USER, action: str = "add") -> BotResponse:
        """Send ``installationUpdate`` for the user's personal scope."""
        activity = self._factory().personal_installation_update(
            self._event_id(), self.clock.now(), action=action, user=self.world.user(user)
        )
        return await self.post_activity(activity)

    async def add_bot_to_team(self, *, team: str | None = None, user: str = DEFAULT_USER) -> BotResponse:
        """Send ``conversationUpdate`` (``teamMemberAdded``) with the bot in ``membersAdded``."""
        activity = self._factory().bot_added_to_team(
            self._event_id(), self.clock.now(), team=self.world.team(team), user=self.world.user(user)
        )
        return await self.post_activity(activity)

    async def send_channel_message(
        self,
        text: str,
        *,
        channel: str = "General",
        user: str = DEFAULT_USER,
        team: str | None = None,
        reply_to: str | None = None,
        mention: bool = True,
        mentions: Mapping[str, str] | None = None,
    ) -> BotResponse:
        """A user posts in a channel (a new post, or a reply in thread ``reply_to``), @mentioning the bot first
        unless ``mention`` is false. Each ``<at>Name</at>`` in ``text`` is a mention too, of whom ``mentions``
        maps the name to (a user's key, id or email, or the bot's id), else of the user or bot so named.

        The message is recorded in the channel before it is delivered; its id is ``response.activity["id"]``.
        """
        target = self.world.channel(channel, team)
        activity = self._factory().channel_message(
            self.state.new_activity_id(),
            self.clock.now(),
            channel=target,
            user=self.world.user(user),
            text=text,
            root_id=reply_to,
            mention=mention,
            mentions=mentions,
        )
        self.state.post(activity["conversation"]["id"] if reply_to else target.id, activity, by_bot=False)
        return await self.post_activity(activity)

    async def send_personal_message(
        self, text: str, *, user: str = DEFAULT_USER, mentions: Mapping[str, str] | None = None
    ) -> BotResponse:
        """A user writes to the bot in their 1:1 chat (mentions typed in ``text``: see :meth:`send_channel_message`)."""
        who = self.world.user(user)
        activity = self._factory().personal_message(
            self.state.new_activity_id(), self.clock.now(), user=who, text=text, mentions=mentions
        )
        self.state.post(who.personal_conversation_id, activity, by_bot=False)
        return await self.post_activity(activity)

    async def send_group_chat_message(
        self, text: str, *, members: tuple[str, ...], user: str = DEFAULT_USER
    ) -> BotResponse:
        """``user`` writes in the group chat of ``members`` (and the bot), @mentioning the bot; the chat is
        created on first use. Its id is ``response.activity["conversation"]["id"]``."""
        who = self.world.user(user)
        keys = tuple(sorted({self.world.user(m).key for m in (*members, user)}))
        chat = next(
            (c for c in self.state.conversations.values() if c.kind == "groupChat" and c.members == keys), None
        ) or self.state.create_group_chat(keys)
        activity = self._factory().group_chat_message(
            self.state.new_activity_id(), self.clock.now(), conversation_id=chat.id, user=who, text=text
        )
        self.state.post(chat.id, activity, by_bot=False)
        return await self.post_activity(activity)

    async def click_action(
        self,
        message_id: str,
        verb: str,
        data: dict[str, Any] | None = None,
        *,
        user: str = DEFAULT_USER,
        action_id: str | None = None,
        trigger: str = "manual",
        endpoint: str | None = None,
    ) -> BotResponse:
        """A user clicks an ``Action.Execute`` button on the card in message ``message_id``.

        Sends ``invoke`` ``adaptiveCard/action``; the bot's answer (status and
        ``AdaptiveCardInvokeResponse`` body) is returned. ``endpoint`` sends it to another bot
        replica than :attr:`bot_endpoint`, as Teams' load balancing would.
        """
        activity = self.click_activity(message_id, verb, data, user=user, action_id=action_id, trigger=trigger)
        return await self.post_activity(activity, endpoint)

    def click_activity(
        self,
        message_id: str,
        verb: str,
        data: dict[str, Any] | None = None,
        *,
        user: str = DEFAULT_USER,
        action_id: str | None = None,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        """The ``invoke`` :meth:`click_action` sends, not sent (to send it, or send it again, with
        :meth:`post_activity`)."""
        msg = self._message(message_id)
        return self._factory().adaptive_card_action(
            self._event_id(),
            self.clock.now(),
            conversation_id=self._click_conversation(msg),
            card_message_id=msg.id,
            channel=self._channel_of(msg),
            user=self.world.user(user),
            verb=verb,
            data=dict(data or {}),
            action_id=action_id or f"{verb}Btn",
            trigger=trigger,
        )

    async def submit_card(self, message_id: str, value: dict[str, Any], *, user: str = DEFAULT_USER) -> BotResponse:
        """A user clicks an ``Action.Submit`` (legacy fallback) button: a ``message`` with ``value``."""
        msg = self._message(message_id)
        activity = self._factory().card_submit(
            self.state.new_activity_id(),
            self.clock.now(),
            conversation_id=self._click_conversation(msg),
            card_message_id=msg.id,
            channel=self._channel_of(msg),
            user=self.world.user(user),
            value=value,
        )
        return await self.post_activity(activity)

    async def post_activity(self, activity: dict[str, Any], endpoint: str | None = None) -> BotResponse:
        """Deliver any activity to the bot (or to ``endpoint``) and keep the exchange in ``deliveries``."""
        response = await self.bot.post(activity, endpoint)
        self.deliveries.append(response)
        return response

    # helpers

    def _factory(self) -> ActivityFactory:
        if not self.base_url:
            raise RuntimeError("base_url is not set: start() the emulator or set base_url once it is served")
        return ActivityFactory(self.world, self.service_url)

    def _event_id(self) -> str:
        self._invoke_ids += 1
        return f"f:{self._invoke_ids:019d}"

    def _message(self, message_id: str) -> Message:
        try:
            return self.state.message(message_id)
        except KeyError:
            raise KeyError(f"no message {message_id!r} in the emulator") from None

    def _channel_of(self, msg: Message) -> TeamsChannel | None:
        conv = self.state.conversations[msg.conversation_id]
        return self.world.channel(conv.id) if conv.kind == "channel" else None

    def _click_conversation(self, msg: Message) -> str:
        conv = self.state.conversations[msg.conversation_id]
        return msg.thread_conversation_id if conv.kind == "channel" else conv.id

    async def _get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.snapshot())

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()
