"""Request authentication for ``/api/messages``: botbuilder's ``ConfigurationBotFrameworkAuthentication``
built from :class:`~bot.config.TeamsSettings`.

With an empty ``app_id`` authentication is off (local use; the settings demand
``allow_unauthenticated: true``). With ``openid_metadata_url`` set, tokens are checked against that
metadata instead of ``login.botframework.com`` (tests serve a local key set there); every other value is
the public cloud's, so the checks are the ones Teams' tokens get in production. The connector clients it
makes send through aiohttp (:mod:`.connector`).

Only tokens the Bot Framework channel issues are checked. botbuilder would take one issued for the Bot
Framework Emulator or by a skill (an Azure AD issuer, ``https://sts.windows.net/<tenant>/`` say) down other
paths, fetching Azure AD's signing keys for anyone who sends one; Handoff is neither the Emulator's bot nor
a skill (the local demo and the Emulator run with authentication off, and send no token), so such tokens
are refused before anything is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass

from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, CallerIdConstants
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    ClaimsIdentity,
    ConnectorFactory,
    EmulatorValidation,
    SkillValidation,
)

from bot.config import TeamsSettings

from .connector import ConnectorSessions, SessionConnectorFactory

LOCAL_BOT_APP_ID = "00000000-0000-0000-0000-000000000000"
"""The bot id used for proactive sends when authentication is off (botbuilder needs a non-empty one)."""


@dataclass(frozen=True)
class BotConfiguration:
    """The attribute names botbuilder's configuration classes read (``getattr``), nothing more."""

    APP_ID: str
    APP_PASSWORD: str | None
    APP_TYPE: str
    APP_TENANTID: str | None
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None
    OAUTH_URL: str | None = None
    CALLER_ID: str | None = None
    CHANNEL_SERVICE: str | None = None
    VALIDATE_AUTHORITY: bool = True

    def __repr__(self) -> str:  # never show the password
        return f"BotConfiguration(APP_ID={self.APP_ID!r}, APP_TYPE={self.APP_TYPE!r})"


def bot_configuration(settings: TeamsSettings) -> BotConfiguration:
    password = settings.app_password.reveal() if settings.app_password is not None and settings.app_id else None
    base = BotConfiguration(
        APP_ID=settings.app_id,
        APP_PASSWORD=password,
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.tenant_id,
    )
    if not settings.openid_metadata_url:
        return base
    # Any of these switches botbuilder to its parameterized authentication; give it the public cloud's
    # values, so that only the place the signing keys come from differs.
    return BotConfiguration(
        APP_ID=base.APP_ID,
        APP_PASSWORD=base.APP_PASSWORD,
        APP_TYPE=base.APP_TYPE,
        APP_TENANTID=base.APP_TENANTID,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=settings.openid_metadata_url,
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        OAUTH_URL=AuthenticationConstants.OAUTH_URL,
        CALLER_ID=CallerIdConstants.public_azure_channel.value,
    )


class TeamsAuthentication(ConfigurationBotFrameworkAuthentication):  # type: ignore[misc]
    """botbuilder's authentication from the configuration, its connector clients (for proactive sends and for a
    turn's replies alike) sending through ``sessions``."""

    def __init__(self, configuration: BotConfiguration, sessions: ConnectorSessions) -> None:
        super().__init__(configuration)
        self.sessions = sessions

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return SessionConnectorFactory(super().create_connector_factory(claims_identity), self.sessions)

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        if auth_header and not_from_the_channel(auth_header):
            raise PermissionError("the token was not issued by the Bot Framework channel (an Emulator or skill token)")
        result = await super().authenticate_request(activity, auth_header)
        if result.connector_factory is not None:
            result.connector_factory = SessionConnectorFactory(result.connector_factory, self.sessions)
        return result


def create_authentication(settings: TeamsSettings, sessions: ConnectorSessions) -> TeamsAuthentication:
    """The authentication the ``CloudAdapter`` and the ``/api/messages`` handler share."""
    return TeamsAuthentication(bot_configuration(settings), sessions)


def not_from_the_channel(auth_header: str) -> bool:
    """Whether ``Bearer <token>`` is a token botbuilder would check as the Emulator's or a skill's (by its
    claims, read without checking the signature) rather than as the channel's."""
    try:
        skill = SkillValidation.is_skill_token(auth_header)
        return bool(skill or EmulatorValidation.is_token_from_emulator(auth_header))
    except Exception:  # not a JWT, or one without an issuer: the channel's checks refuse it
        return False


def metadata_urls(settings: TeamsSettings) -> list[str]:
    """The OpenID metadata URLs botbuilder will read keys from for these settings: the channel's only."""
    return [settings.openid_metadata_url or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL]


def is_authentication_enabled(settings: TeamsSettings) -> bool:
    return bool(settings.app_id)


def bot_app_id(settings: TeamsSettings) -> str:
    """The app id proactive sends must name (botbuilder refuses another one when authentication is on)."""
    return settings.app_id or LOCAL_BOT_APP_ID
