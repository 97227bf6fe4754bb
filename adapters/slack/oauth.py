"""Installs into several workspaces: Slack's OAuth flow, with installations kept in Handoff's database.

Bolt's ``AsyncSQLAlchemyInstallationStore`` and ``AsyncSQLAlchemyOAuthStateStore`` run on the store's
own ``AsyncEngine`` (SQLite or PostgreSQL), in tables of their own (``slack_installations``,
``slack_bots``, ``slack_oauth_states``), created when the application starts. ``app_uninstalled`` and
``tokens_revoked`` delete what the workspace took back.

See https://docs.slack.dev/authentication/installing-with-oauth
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import SlackOAuthSettings

from .identity import UserDirectory
from .tasks import BackgroundTasks, follow_up

log = logging.getLogger("handoff.slack.oauth")

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_TTL_SECONDS = 600


@dataclass
class InstallationStores:
    """Where installs and OAuth ``state`` values are kept."""

    installations: AsyncSQLAlchemyInstallationStore
    states: AsyncSQLAlchemyOAuthStateStore

    @classmethod
    def on(cls, engine: AsyncEngine, client_id: str) -> InstallationStores:
        return cls(
            installations=AsyncSQLAlchemyInstallationStore(
                client_id=client_id, engine=engine, logger=logging.getLogger("handoff.slack.installs")
            ),
            states=AsyncSQLAlchemyOAuthStateStore(
                expiration_seconds=STATE_TTL_SECONDS, engine=engine, logger=logging.getLogger("handoff.slack.installs")
            ),
        )

    async def create_tables(self) -> None:
        """Create the tables if missing (idempotent)."""
        await self.installations.create_tables()  # type: ignore[no-untyped-call]
        await self.states.create_tables()  # type: ignore[no-untyped-call]

    async def bot_token(self, team_id: str) -> str | None:
        """The bot token of an installed workspace, or None."""
        bot = await self.installations.async_find_bot(enterprise_id=None, team_id=team_id)
        return bot.bot_token if bot is not None else None


def oauth_settings(
    settings: SlackOAuthSettings, stores: InstallationStores, redirect_uri: str | None = None
) -> AsyncOAuthSettings:
    """Bolt's OAuth settings for Handoff's install and redirect paths."""
    return AsyncOAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret.reveal(),
        scopes=list(settings.scopes),
        redirect_uri=redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=stores.installations,
        state_store=stores.states,
        state_expiration_seconds=STATE_TTL_SECONDS,
        logger=logging.getLogger("handoff.slack.oauth"),
    )


class UninstallListeners:
    """``app_uninstalled`` and ``tokens_revoked``: forget the workspace's tokens and cached users.

    Args:
        stores: the installation stores (None with a single bot token, where there is nothing to delete).
        users: the user cache to clear.
        tasks: runs the clean-up once the event is acknowledged.
    """

    def __init__(self, stores: InstallationStores | None, users: UserDirectory, tasks: BackgroundTasks) -> None:
        self.stores = stores
        self.users = users
        self.tasks = tasks

    def register(self, bolt: AsyncApp) -> None:
        bolt.event("app_uninstalled")(self.on_app_uninstalled)
        bolt.event("tokens_revoked")(self.on_tokens_revoked)

    async def on_app_uninstalled(self, context: AsyncBoltContext) -> None:
        team, enterprise = context.team_id, context.enterprise_id
        follow_up(context, self.tasks).spawn(self._forget(enterprise, team, [], True), name="slack uninstall")

    async def on_tokens_revoked(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        raw_tokens = event.get("tokens")
        tokens: dict[str, Any] = raw_tokens if isinstance(raw_tokens, dict) else {}
        users = [u for u in (tokens.get("oauth") or []) if isinstance(u, str)]
        bots = [b for b in (tokens.get("bot") or []) if isinstance(b, str)]
        work = self._forget(context.enterprise_id, context.team_id, users, bool(bots))
        follow_up(context, self.tasks).spawn(work, name="slack tokens revoked")

    async def _forget(self, enterprise: str | None, team: str | None, users: list[str], whole: bool) -> None:
        self.users.forget(team)
        if self.stores is None:
            if whole:
                log.warning("Slack workspace %s uninstalled Handoff or revoked its bot token", team)
            return
        if whole:  # without its bot token an installation is of no use: forget it whole
            await self.stores.installations.async_delete_all(enterprise_id=enterprise, team_id=team)
        else:
            for user_id in users:
                await self.stores.installations.async_delete_installation(
                    enterprise_id=enterprise, team_id=team, user_id=user_id
                )
        log.info(
            "Slack workspace %s: installation %s", team, "deleted" if whole else f"{len(users)} user tokens deleted"
        )
