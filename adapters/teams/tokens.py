"""The bot's Bot Connector token, got from Entra ID off the event loop, within a bound.

botbuilder's credentials get the token with MSAL, a blocking HTTP call with ``requests``; and its connector
factory makes new credentials, with a new MSAL application and token cache, for every connector client, that is
for every send. So :class:`BotTokens` gets each token on a thread of its own (one at a time: a stalled Entra ID
holds that one thread, never the event loop or Python's shared pool), gives up waiting after
:data:`TOKEN_TIMEOUT` (MSAL's HTTP calls time out then too), and keeps one MSAL application per app id and
authority, whose cache serves the token until it is about to expire.

What went wrong is a :class:`~bot.ports.DeliveryFailed` (:func:`token_failure`): Entra ID refusing the app id or
password is :class:`~bot.ports.CredentialsRefused`, named by Entra ID's error code only (its description can
quote ids); Entra ID not answering is retryable, and nothing was sent.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from botframework.connector.auth import MicrosoftAppCredentials

from adapters.worker_pool import WorkerPool
from bot.ports import CredentialsRefused, DeliveryFailed

TOKEN_TIMEOUT = 5.0
"""Seconds an attempt waits for the bot's token (and each of MSAL's HTTP calls may take)."""
# The https authority MSAL is given when the login URL is a plain-http emulator on loopback; _ToEmulator sends
# its requests there instead (MSAL takes only https authorities and endpoints).
_EMULATED_AUTHORITY = "https://login.emulator.invalid"
# botbuilder's words when MSAL answers without a token: "Failed to get access token with error: <code>, ..."
_ENTRA_CODE = re.compile(r"access token with error: ([A-Za-z0-9_]{1,64})\b")


class BotTokens:
    """The ``Authorization`` header of the bot's connector calls.

    Args:
        timeout: the longest a call waits for its token, in seconds.
        login_url: the Microsoft identity platform the tokens come from; None for botbuilder's
            (``https://login.microsoftonline.com``), or a plain-http emulator on loopback (tests).
    """

    def __init__(self, timeout: float = TOKEN_TIMEOUT, login_url: str | None = None) -> None:
        self.timeout = timeout
        self.login_url = login_url.rstrip("/") if login_url else None
        self._pool: WorkerPool | None = None
        self._apps: dict[tuple[str, str], msal.ConfidentialClientApplication] = {}
        self._apps_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BotTokens(timeout={self.timeout!r}, login_url={self.login_url!r})"

    async def authorization(self, credentials: Any) -> str | None:
        """``Bearer <token>`` for a call signed with ``credentials`` (None: not signed, authentication off).

        Raises :class:`~bot.ports.DeliveryFailed` (see :func:`token_failure`).
        """
        if credentials is None or not getattr(credentials, "microsoft_app_id", None):
            return None
        if self._pool is None:
            self._pool = WorkerPool("teams-token", 1)
        try:
            return await asyncio.wait_for(self._pool.run(self._fetch, credentials), self.timeout)
        except (TimeoutError, requests.Timeout):  # (whichever gave up first: this wait, or MSAL's HTTP call)
            raise DeliveryFailed(
                f"Entra ID did not give Handoff's Teams token within {self.timeout:g} s", True
            ) from None
        except Exception as error:
            failure = token_failure(error)
            if failure is None:
                failure = DeliveryFailed(f"could not get Handoff's Teams token ({type(error).__name__})", True)
            raise failure from None

    def close(self) -> None:
        """Let the token thread end (a call still out finishes on its own); a later call starts another."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _fetch(self, credentials: Any) -> str | None:
        """On the token thread: the header botbuilder's credentials sign a session with, their MSAL application
        the one kept for their app id and authority."""
        if _gets_token_with_msal(credentials) and credentials.app is None:
            credentials.app = self._app(credentials)
        with requests.Session() as session:
            header = credentials.signed_session(session).headers.get("Authorization")
        return str(header) if header else None

    def _app(self, credentials: MicrosoftAppCredentials) -> msal.ConfidentialClientApplication:
        authority = str(credentials.oauth_endpoint)
        key = (str(credentials.microsoft_app_id), authority)
        with self._apps_lock:
            app = self._apps.get(key)
            if app is None:
                app = self._apps[key] = self._new_app(credentials, authority)
            return app

    def _new_app(self, credentials: MicrosoftAppCredentials, authority: str) -> msal.ConfidentialClientApplication:
        options: dict[str, Any] = {}
        if self.login_url is not None:
            tenant_path = urlsplit(authority).path
            if self.login_url.startswith("http://"):
                authority = _EMULATED_AUTHORITY + tenant_path
                options = {"http_client": _ToEmulator(self.login_url), "instance_discovery": False}
            else:
                authority = self.login_url + tenant_path
        return msal.ConfidentialClientApplication(
            credentials.microsoft_app_id,
            client_credential=credentials.microsoft_app_password,
            authority=authority,
            timeout=self.timeout,
            **options,
        )


def _gets_token_with_msal(credentials: Any) -> bool:
    """Whether ``credentials`` get their token as botbuilder's app id and password do, from their ``app``."""
    return (
        isinstance(credentials, MicrosoftAppCredentials)
        and type(credentials).get_access_token is MicrosoftAppCredentials.get_access_token
    )


class _ToEmulator(requests.Session):
    """MSAL's HTTP client for an emulator: every request goes to the emulator, whatever host it names (the
    stand-in authority, or Entra ID's own, which the emulator's OpenID configuration names)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(url.decode() if isinstance(url, bytes) else url)
        local = self.target + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method.decode() if isinstance(method, bytes) else method, local, *args, **kwargs)


def token_failure(error: BaseException) -> DeliveryFailed | None:
    """The :class:`~bot.ports.DeliveryFailed` for an error getting the bot's token; None if ``error`` is not one.

    botbuilder raises ``PermissionError`` when Entra ID answers without a token (``invalid_client``: an unknown
    app id or a wrong password; ``unauthorized_client``: the app is not in the tenant…), and MSAL lets
    ``requests``' own exceptions through when Entra ID cannot be reached (they are not the builtin
    ``ConnectionError``).
    """
    if isinstance(error, PermissionError):
        found = _ENTRA_CODE.search(str(error))
        if found is None:
            return None
        # never the error_description: it can quote the app id, the tenant, the secret's id
        return CredentialsRefused(f"Entra ID refused Handoff's app id or password ({found.group(1)})")
    if isinstance(error, requests.RequestException):
        return DeliveryFailed(f"could not reach Entra ID for Handoff's Teams token ({type(error).__name__})", True)
    return None
