"""Mounting Teams on Handoff's aiohttp application: the one function the composition root calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter

from adapters.web.limits import BODY_LIMITS, set_body_limit
from bot.clock import Clock, SystemClock
from bot.config import TeamsSettings
from bot.interactions import InteractionHandler
from bot.ports import ConversationStore, EventLog

from .auth import bot_app_id, create_authentication, is_authentication_enabled, metadata_urls
from .channel import TeamsChatChannel
from .connector import ConnectorSessions
from .endpoint import MessagesEndpoint
from .handler import HandoffTeamsBot
from .identity import TeamsIdentity
from .openid import OpenIdKeySet, install_key_sets, uninstall_key_sets
from .redeliveries import Redeliveries
from .registry import ConversationRegistry
from .sdk_logs import quiet_known_teams_fields
from .sending import Pacer, SendPolicy

if TYPE_CHECKING:
    from .graph import GraphMessages

MESSAGES_PATH = "/api/messages"
BODY_LIMIT = 1024 * 1024


@dataclass
class TeamsIntegration:
    """Teams, mounted: the :class:`~bot.ports.ChatChannel` for the outbox, and what it is made of."""

    channel: TeamsChatChannel
    adapter: CloudAdapter
    bot: HandoffTeamsBot
    endpoint: MessagesEndpoint
    registry: ConversationRegistry
    connector: ConnectorSessions = field(default_factory=ConnectorSessions)
    key_sets: dict[str, OpenIdKeySet] = field(default_factory=dict)

    async def close(self) -> None:
        """Release what the integration holds (signing-key caches, the connector's and Graph's connections). Safe
        to call twice."""
        await self.bot.later.close()
        await self.connector.close()
        uninstall_key_sets(self.key_sets)
        self.key_sets = {}
        if self.channel.graph is not None:
            await self.channel.graph.close()


def mount_teams(
    app: web.Application,
    settings: TeamsSettings,
    handler: InteractionHandler,
    conversations: ConversationStore,
    *,
    clock: Clock | None = None,
    send_policy: SendPolicy | None = None,
    path: str = MESSAGES_PATH,
    events: EventLog | None = None,
    connector: ConnectorSessions | None = None,
) -> TeamsIntegration:
    """Serve Teams' messaging endpoint on ``app`` and return the integration.

    Args:
        app: Handoff's application (not yet started).
        settings: the ``teams`` section of the configuration.
        handler: the core's entry point for commands and clicks.
        conversations: where installs keep their conversation references.
        clock: time for rate limits, retries and caches.
        send_policy: how outbound sends are paced and retried.
        path: the messaging endpoint's path.
        events: the store's event log, by which replicas recognise an activity Teams sends again (without
            it, each replica recognises only those it had itself).
        connector: how connector calls are sent and signed (the bot's token, from Entra ID); the defaults if None.
    """
    clock = clock or SystemClock()
    quiet_known_teams_fields()
    connector = connector or ConnectorSessions()
    authentication = create_authentication(settings, connector)
    adapter = CloudAdapter(authentication)
    # No turn error handler: a failed turn reaches the endpoint, which answers 503 so that Teams sends the
    # activity again (a handler would end the turn as if it had been handled). Proactive sends catch their
    # own failures (TeamsChatChannel._turn).
    adapter.on_turn_error = None
    registry = ConversationRegistry(conversations, clock)
    app_id = bot_app_id(settings)
    graph = graph_messages(settings)
    pacer = Pacer(clock, send_policy)  # one count per conversation, whether the outbox or a turn sends
    channel = TeamsChatChannel(
        adapter,
        registry,
        bot_app_id=app_id,
        pacer=pacer,
        tenant_id=settings.tenant_id,
        graph=graph,
    )
    bot = HandoffTeamsBot(
        handler,
        registry,
        TeamsIdentity(clock),
        cards=channel,
        pacer=pacer,
        redeliveries=Redeliveries(events, clock),
    )
    endpoint = MessagesEndpoint(
        adapter, bot, authentication, auth_enabled=is_authentication_enabled(settings), tenant_id=settings.tenant_id
    )
    integration = TeamsIntegration(
        channel=channel,
        adapter=adapter,
        bot=bot,
        endpoint=endpoint,
        registry=registry,
        connector=connector,
        key_sets=install_key_sets(metadata_urls(settings), clock),
    )
    app.router.add_post(path, endpoint.handle)
    if BODY_LIMITS in app:
        set_body_limit(app, path, BODY_LIMIT)

    async def close_on_cleanup(_: web.Application) -> None:
        await integration.close()

    app.on_cleanup.append(close_on_cleanup)
    return integration


def graph_messages(settings: TeamsSettings) -> GraphMessages | None:
    """Microsoft Graph for the channel, when ``teams.graph.find_lost_posts`` is on (azure-identity is
    imported only then: a few megabytes a Handoff without it does not carry)."""
    if not settings.graph.find_lost_posts:
        return None
    from .graph import GraphMessages, GraphTokens

    password = settings.app_password.reveal() if settings.app_password is not None else None
    return GraphMessages(settings.graph, GraphTokens(settings.app_id, password, settings.graph.login_url))
