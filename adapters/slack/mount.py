"""Mounting Handoff's Slack side on its aiohttp application.

:func:`mount_slack` builds a slack_bolt ``AsyncApp`` (one bot token, or OAuth installs kept in the
database), registers the listeners, adds ``POST /slack/events`` (and ``/slack/install``,
``/slack/oauth_redirect`` with OAuth), and returns a :class:`SlackIntegration` whose ``channel`` is
the :class:`~bot.ports.ChatChannel` for the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.web.limits import BODY_LIMITS, set_body_limit
from bot.clock import Clock
from bot.config import SlackSettings
from bot.interactions import InteractionHandler
from bot.ports import ConversationStore, EventLog

from .authorize import BotIdentity
from .channel import SlackChatChannel, ensure_retry_handlers, make_client, with_token, workspace_update_pacer
from .endpoint import BODY_LIMIT, SlackEndpoint
from .identity import UserDirectory
from .listeners import SlackListeners
from .membership import MembershipListeners
from .oauth import INSTALL_PATH, REDIRECT_PATH, InstallationStores, UninstallListeners, oauth_settings
from .pacing import ChannelPacer
from .tasks import BackgroundTasks
from .verification import RequestVerifier

EVENTS_PATH = "/slack/events"
BOLT_ENVIRONMENT_DEFAULTS = ("SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
"""What Bolt reads from the environment when not given it; Handoff's configuration has decided all three."""

log = logging.getLogger("handoff.slack")
bolt_log = logging.getLogger("handoff.slack.bolt")


@dataclass
class SlackIntegration:
    """Handoff's Slack side, once mounted.

    Attributes:
        channel: the :class:`~bot.ports.ChatChannel` the outbox sends through.
        bolt: the slack_bolt app behind ``/slack/events``.
        users: the Slack user directory (``users.info`` with a short cache).
        tasks: work running after acknowledgements.
        stores: the OAuth installation stores, when installs are multi-workspace.
        identity: the bot's ids from ``auth.test``, with one bot token (OAuth installs carry their own).
    """

    channel: SlackChatChannel
    bolt: AsyncApp
    users: UserDirectory
    tasks: BackgroundTasks
    stores: InstallationStores | None = None
    identity: BotIdentity | None = None
    _session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Share one HTTP session (kept-alive connections) among the Web API and response-URL calls, and
        learn the bot's ids before the first request needs them."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            self.channel.client.session = self._session
            self.bolt.client.session = self._session
        if self.identity is not None and not self.identity.known:
            await self.identity.start()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for the work started by earlier requests; True if it finished in time."""
        return await self.tasks.wait(timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Let running work finish (up to ``timeout`` seconds), then cancel it."""
        await self.tasks.close(timeout)
        if self.identity is not None:
            await self.identity.close()
        if self._session is not None:
            for client in (self.channel.client, self.bolt.client):
                if client.session is self._session:
                    client.session = None
            await self._session.close()
            self._session = None


def mount_slack(
    app: web.Application,
    settings: SlackSettings,
    handler: InteractionHandler,
    engine: AsyncEngine | None = None,
    *,
    client: AsyncWebClient | None = None,
    clock: Clock | None = None,
    redirect_uri: str | None = None,
    conversations: ConversationStore | None = None,
    events: EventLog | None = None,
) -> SlackIntegration:
    """Serve Slack on ``app`` and hand what people do to ``handler``.

    Args:
        app: Handoff's aiohttp application (routes are added; it must not be started yet).
        settings: the ``slack`` section: signing secret, and a bot token or OAuth credentials.
        handler: the core's :class:`~bot.interactions.InteractionHandler`.
        engine: the store's engine; needed with OAuth, which keeps installations there.
        client: the Web API client to use (tests point it at the Slack emulator); by default one on
            ``settings.api_base_url`` with the bot token.
        clock: time for signature windows, pacing and caches.
        redirect_uri: the OAuth redirect URL registered with Slack (``<public_url>/slack/oauth_redirect``),
            if it must be sent explicitly.
        conversations: where a channel Handoff was removed from (or that was archived or deleted) is marked
            inactive, so that nothing more is queued for it until Handoff is back.
        events: where handled Slack event ids are remembered for every replica, so that an event Slack
            redelivers (to this replica or another, or after a restart) is handled once.

    Raises:
        ValueError: OAuth is configured but no engine was given.
    """
    signing_secret = settings.signing_secret.reveal()
    users = UserDirectory(clock=clock)
    tasks = BackgroundTasks()
    stores: InstallationStores | None = None
    identity: BotIdentity | None = None
    if settings.oauth is not None:
        if engine is None:
            raise ValueError("Slack OAuth installs are kept in the database: pass the store's engine")
        base = ensure_retry_handlers(with_token(client, None) if client else make_client(None, settings.api_base_url))
        stores = InstallationStores.on(engine, settings.oauth.client_id)
        bolt = _bolt_app(signing_secret, base, oauth_settings(settings.oauth, stores, redirect_uri))
        channel = SlackChatChannel(
            base,
            tokens=stores.bot_token,
            pacer=ChannelPacer(clock=clock),
            update_pacer=workspace_update_pacer(clock),
            users=users,
        )
    else:
        if settings.bot_token is None:
            raise ValueError("set slack.bot_token (one workspace) or slack.oauth (several)")
        base = ensure_retry_handlers(client or make_client(settings.bot_token.reveal(), settings.api_base_url))
        if base.token is None:
            base = with_token(base, settings.bot_token.reveal())
        # Bolt gets the token through `identity`, with the bot's ids known before any request comes
        identity = BotIdentity(base, base.token or settings.bot_token.reveal())
        bolt = _bolt_app(signing_secret, with_token(base, None), authorize=identity)
        channel = SlackChatChannel(
            base, pacer=ChannelPacer(clock=clock), update_pacer=workspace_update_pacer(clock), users=users
        )

    UninstallListeners(stores, users, tasks).register(bolt)
    if conversations is not None:
        MembershipListeners(conversations, tasks, clock, qualify_conversations=stores is not None).register(bolt)
    SlackListeners(
        handler, channel, users, tasks, qualify_conversations=stores is not None, events=events, clock=clock
    ).register(bolt)

    endpoint = SlackEndpoint(bolt, RequestVerifier(signing_secret, clock), tasks)
    app.router.add_post(EVENTS_PATH, endpoint.events)
    if BODY_LIMITS in app:
        set_body_limit(app, EVENTS_PATH, BODY_LIMIT)
    if stores is not None:
        app.router.add_get(INSTALL_PATH, endpoint.install)
        app.router.add_get(REDIRECT_PATH, endpoint.oauth_redirect)
        app.on_startup.append(_create_tables(stores))

    integration = SlackIntegration(
        channel=channel, bolt=bolt, users=users, tasks=tasks, stores=stores, identity=identity
    )

    async def open(_: web.Application) -> None:
        await integration.open()

    async def close(_: web.Application) -> None:
        await integration.close()

    app.on_startup.append(open)
    app.on_cleanup.append(close)
    return integration


def _bolt_app(
    signing_secret: str,
    client: AsyncWebClient,
    oauth: AsyncOAuthSettings | None = None,
    authorize: BotIdentity | None = None,
) -> AsyncApp:
    """Bolt on Handoff's client (without a token: ``authorize`` or the OAuth installs give it), and
    nothing else."""
    with _without_bolt_environment_defaults():
        bolt = AsyncApp(
            name="handoff",
            signing_secret=signing_secret,
            client=client,
            oauth_settings=oauth,
            authorize=authorize,  # type: ignore[arg-type]  # Bolt takes an AsyncAuthorize, which may answer None
            request_verification_enabled=False,  # done in front of Bolt, and totally (verification.py)
            process_before_response=False,  # listeners run after the ack (a long-running server, not FaaS)
            logger=logging.getLogger("handoff.slack.bolt"),
            # a request no listener takes is still Bolt's 404 (the endpoint answers it 400, in one line), without
            # Bolt's own multi-line warning that suggests listener code to add
            raise_error_for_unhandled_request=True,
        )
    bolt.error(_on_listener_error)
    return bolt


async def _on_listener_error(error: Exception) -> None:
    """What a Bolt listener raised, logged as Bolt would; a request no listener takes is not an error here."""
    if not isinstance(error, BoltUnhandledRequestError):
        bolt_log.error("Failed to run a Slack listener (%s)", type(error).__name__, exc_info=error)


@contextlib.contextmanager
def _without_bolt_environment_defaults() -> Iterator[None]:
    """Hide :data:`BOLT_ENVIRONMENT_DEFAULTS` while Bolt is built.

    Without a token argument Bolt takes ``SLACK_BOT_TOKEN``, where handoff.yaml conventionally points
    ``slack.bot_token``: given as well as the client, it is unused and Bolt warns at every start. With
    ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` set it would turn OAuth installs on by itself.
    """
    hidden = {name: os.environ.pop(name) for name in BOLT_ENVIRONMENT_DEFAULTS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(hidden)


def _create_tables(stores: InstallationStores) -> Callable[[web.Application], Awaitable[None]]:
    async def create(_: web.Application) -> None:
        await stores.create_tables()

    return create
