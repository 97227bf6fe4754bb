"""Finding, in Microsoft Graph, a card Teams took whose answer was lost.

The Bot Framework offers bots no way to read a conversation, so a post whose answer never came back
(a timeout, a dropped connection) cannot be told from one Teams never saw. Graph can tell: with the
app's resource-specific consent (``ChannelMessage.Read.Group`` in a team, ``ChatMessage.Read.Chat`` in a
group chat) the bot reads the newest messages of the channel, of a thread, or of the chat, and looks
for its card whose Adaptive Card carries the delivery's marker (:func:`adapters.teams.channel.card_activity`
puts it there).

The token is the bot's own (its app id and password, client credentials) for the conversation's tenant,
from azure-identity. With authentication off (a local emulator) no token is sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import AioHttpTransport, HttpRequest
from azure.identity.aio import ClientSecretCredential

from bot.config import TeamsGraphSettings
from bot.ports import DeliveryFailed

log = logging.getLogger("handoff.teams.graph")

SCOPE = "https://graph.microsoft.com/.default"
PAGE_SIZE = 50
# How far back a lookup reads: the lost post was sent after its delivery was created, so a few pages of
# the newest messages hold it unless the conversation is very busy.
MAX_PAGES = 4
# Clocks differ: messages this much older than the delivery still count.
LOOKBACK = timedelta(minutes=5)
TIMEOUT_SECONDS = 15.0
RETRYABLE = {408, 412, 429, 500, 502, 503, 504}
# The https authority azure-identity is given when the configured login URL is a plain-http emulator on
# loopback; :class:`_RewritingTransport` sends its requests there instead.
_EMULATED_AUTHORITY = "https://login.emulator.invalid"
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
_ENTRA_ERROR = re.compile(r"AADSTS\d+:[^.\r\n]{0,160}")


class _RewritingTransport(AioHttpTransport):  # type: ignore[misc]
    """azure-identity accepts only https authorities: requests to the stand-in go to the emulator."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self._target = target.rstrip("/")

    async def send(self, request: HttpRequest, **kwargs: Any) -> Any:
        if request.url.startswith(_EMULATED_AUTHORITY):
            request.url = self._target + request.url[len(_EMULATED_AUTHORITY) :]
        return await super().send(request, **kwargs)


class GraphTokens:
    """Graph tokens for the bot's app id, one credential (and token cache) per tenant.

    Args:
        app_id: the bot's app id; empty when authentication is off, and then no token is sent.
        password: the bot's app password.
        login_url: the Microsoft identity platform (``https://login.microsoftonline.com``), or a plain-http
            emulator on loopback.
    """

    def __init__(self, app_id: str, password: str | None, login_url: str) -> None:
        self.app_id = app_id
        self._password = password
        self._login_url = login_url.rstrip("/")
        self._credentials: dict[str, ClientSecretCredential] = {}

    def __repr__(self) -> str:  # never show the password
        return f"GraphTokens(app_id={self.app_id!r}, login_url={self._login_url!r})"

    async def token(self, tenant_id: str | None) -> str | None:
        """A bearer token for ``tenant_id``; None when authentication is off."""
        if not self.app_id or not self._password:
            return None
        if not tenant_id:
            raise DeliveryFailed("Graph: the conversation's tenant is not known", False)
        credential = self._credentials.get(tenant_id)
        if credential is None:
            credential = self._credentials[tenant_id] = self._credential(tenant_id)
        try:
            return (await credential.get_token(SCOPE)).token
        except ClientAuthenticationError as refused:  # Entra ID said no: asking again will not help
            entra = _ENTRA_ERROR.search(str(refused))  # e.g. "AADSTS7000215: Invalid client secret provided"
            why = f"{type(refused).__name__}: {entra.group(0)}" if entra else type(refused).__name__
            raise DeliveryFailed(f"Graph: no token for tenant {tenant_id} ({why})", False) from None
        except Exception as exc:  # Entra ID unreachable: look again later rather than post twice
            raise DeliveryFailed(f"Graph: no token for tenant {tenant_id} ({type(exc).__name__})", True) from None

    def _credential(self, tenant_id: str) -> ClientSecretCredential:
        assert self._password is not None
        if self._login_url.startswith("http://"):
            return ClientSecretCredential(
                tenant_id,
                self.app_id,
                self._password,
                authority=_EMULATED_AUTHORITY,
                transport=_RewritingTransport(self._login_url),
            )
        return ClientSecretCredential(tenant_id, self.app_id, self._password, authority=self._login_url)

    async def close(self) -> None:
        for credential in self._credentials.values():
            await credential.close()
        self._credentials = {}


class GraphMessages:
    """Reads the newest messages of a Teams channel, thread or group chat from Microsoft Graph.

    Args:
        settings: the ``teams.graph`` section (its API URL).
        tokens: where bearer tokens come from.
    """

    def __init__(self, settings: TeamsGraphSettings, tokens: GraphTokens) -> None:
        self.api_url = settings.api_url.rstrip("/")
        self.tokens = tokens
        self._session: aiohttp.ClientSession | None = None

    async def find_in_channel(
        self, tenant_id: str | None, team_group_id: str, channel_id: str, marker: str, since: datetime, root: str | None
    ) -> str | None:
        """The id of the message carrying ``marker`` among the channel's threads (or ``root``'s replies)."""
        path = f"/teams/{quote(team_group_id, safe='')}/channels/{quote(channel_id, safe='')}/messages"
        if root is not None:
            path += f"/{quote(root, safe='')}/replies"
        return await self._find(tenant_id, f"{self.api_url}{path}", {"$top": str(PAGE_SIZE)}, marker, since)

    async def find_in_chat(self, tenant_id: str | None, chat_id: str, marker: str, since: datetime) -> str | None:
        """The id of the message carrying ``marker`` among the group chat's messages since ``since``."""
        after = (since - LOOKBACK).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        query = {
            "$top": str(PAGE_SIZE),
            "$orderby": "createdDateTime desc",
            "$filter": f"createdDateTime gt {after}",
        }
        return await self._find(
            tenant_id, f"{self.api_url}/chats/{quote(chat_id, safe='')}/messages", query, marker, since
        )

    async def _find(
        self, tenant_id: str | None, url: str, query: Mapping[str, str], marker: str, since: datetime
    ) -> str | None:
        cutoff = since - LOOKBACK
        async for page in self._pages(tenant_id, url, query):
            for message in page:
                if _carries(message, marker):
                    return str(message["id"])
            # newest first: a page that holds only older messages ends the search
            if page and all(_created(m) < cutoff for m in page):
                return None
        return None

    async def _pages(
        self, tenant_id: str | None, url: str, query: Mapping[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        params: Mapping[str, str] | None = query
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            body = await self._get(tenant_id, next_url, params)
            value = body.get("value")
            yield [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
            link = body.get("@odata.nextLink")
            # follow links to Graph only: the token must not go anywhere else
            next_url = link if isinstance(link, str) and link.startswith(self.api_url + "/") else None
            params = None

    async def _get(self, tenant_id: str | None, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        token = await self.tokens.token(tenant_id)
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._client().get(url, params=params, headers=headers) as response:
                if response.status == 200:
                    body = await response.json(content_type=None)
                    return body if isinstance(body, dict) else {}
                reason = f"Graph answered {response.status}{_graph_error(await response.read())}"
                retry_after = _seconds(response.headers.get("Retry-After"))
                raise DeliveryFailed(reason, response.status in RETRYABLE, retry_after)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryFailed(f"Graph unreachable ({type(exc).__name__})", True) from None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.tokens.close()


def _carries(message: Mapping[str, Any], marker: str) -> bool:
    """Whether a (not deleted) message has an attachment whose content names ``marker``."""
    if message.get("deletedDateTime") or not message.get("id"):
        return False
    for attachment in message.get("attachments") or ():
        content = attachment.get("content") if isinstance(attachment, dict) else None
        if isinstance(content, str) and marker in content:
            return True
    return False


def _created(message: Mapping[str, Any]) -> datetime:
    """When the message was created; a time that cannot be read counts as new (it does not end a search)."""
    try:
        created = datetime.fromisoformat(str(message.get("createdDateTime")).replace("Z", "+00:00"))
    except ValueError:
        return _FAR_FUTURE
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _graph_error(body: bytes) -> str:
    """``: <code>`` from a Graph error body, if it has one."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return ""
    code = error.get("code") if isinstance(error, dict) else None
    return f": {code}" if isinstance(code, str) and code else ""


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
