"""botbuilder's connector calls sent with aiohttp, so that a call given up stops with it.

botframework-connector's clients send through msrest, which runs each call with ``requests`` in a worker thread:
cancelling the task that awaits the call leaves the thread sending, for up to msrest's timeout (100 s). A post
the outbox gave up at its attempt's bound could so still reach Teams after the next attempt had looked for it and
found nothing, and the card would show twice. Every connector client the ``CloudAdapter`` builds is given a
pipeline that sends with aiohttp instead (the rest of msrest's pipeline kept: user agent, signing, answer
parsing, logging): the call runs on the event loop, and cancelling it closes its connection there and then.
The bot's token it is signed with is got off the loop, within a bound (:mod:`.tokens`).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import requests
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import ConnectorFactory
from msrest.exceptions import ClientRequestError
from msrest.pipeline import Request, Response
from msrest.pipeline.async_abc import AsyncHTTPPolicy, AsyncHTTPSender, AsyncPipeline
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http import ClientRequest
from msrest.universal_http.async_abc import AsyncClientResponse
from msrest.universal_http.async_requests import AsyncRequestsClientResponse
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from .tokens import BotTokens


class ConnectorSessions:
    """The aiohttp session every Teams connector call goes through, opened on first use (in the running loop).

    Args:
        timeout: the longest a call may take, whoever awaits it (msrest's own default).
        tokens: where the bot's token each call is signed with comes from.
    """

    def __init__(self, timeout: float = 100.0, tokens: BotTokens | None = None) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.tokens = tokens or BotTokens()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env: the proxy settings requests honoured (HTTPS_PROXY, NO_PROXY) still apply
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=True)
        return self._session

    async def close(self) -> None:
        """Close the session's connections. Safe to call twice; a later call opens a new session."""
        self.tokens.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def adopt(self, client: ConnectorClient) -> ConnectorClient:
        """``client``, its calls sent through this session."""
        config = client.config
        signing = _Signing(config.credentials, self.tokens)
        policies = [config.user_agent_policy, signing, RawDeserializer(), config.http_logger_policy]
        config.pipeline = AsyncPipeline(policies, _Sender(self))
        return client


class SessionConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    """A botbuilder connector factory whose clients send through :class:`ConnectorSessions`."""

    def __init__(self, inner: ConnectorFactory, sessions: ConnectorSessions) -> None:
        self.inner = inner
        self.sessions = sessions

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        return self.sessions.adopt(await self.inner.create(service_url, audience))


class _Signing(AsyncHTTPPolicy[ClientRequest, AsyncClientResponse]):
    """Adds the bot's token as msrest's requests pipeline does (botbuilder's credentials sign a requests session),
    got by :class:`~.tokens.BotTokens`: a token that cannot be had is a :class:`~bot.ports.DeliveryFailed`, and
    the call is not sent."""

    def __init__(self, credentials: Any, tokens: BotTokens) -> None:
        super().__init__()
        self.credentials = credentials
        self.tokens = tokens

    async def send(
        self, request: Request[ClientRequest], **kwargs: Any
    ) -> Response[ClientRequest, AsyncClientResponse]:
        assert self.next is not None  # (the pipeline sets it)
        token = await self.tokens.authorization(self.credentials)
        if token:
            request.http_request.headers["Authorization"] = token
        return await self.next.send(request, **kwargs)


class _Sender(AsyncHTTPSender[ClientRequest, AsyncClientResponse]):
    """Sends a connector call with aiohttp. What comes back is what msrest's requests sender gives (its
    ``ErrorResponseException.response`` a ``requests.Response``), and a call without an answer is msrest's
    ``ClientRequestError``, as with requests."""

    def __init__(self, sessions: ConnectorSessions) -> None:
        self.sessions = sessions

    async def __aenter__(self) -> _Sender:
        return self

    async def __aexit__(self, *exc_details: object) -> None:
        return None  # (the session is the ConnectorSessions')

    async def send(
        self, request: Request[ClientRequest], **config: Any
    ) -> Response[ClientRequest, AsyncClientResponse]:
        call: ClientRequest = request.http_request
        try:
            async with self.sessions.session().request(
                call.method, call.url, headers=call.headers, data=call.data
            ) as answer:
                body = await answer.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise ClientRequestError(f"Error occurred in request ({type(error).__name__})") from error
        response: AsyncClientResponse = AsyncRequestsClientResponse(call, _as_requests(answer, body))  # type: ignore[no-untyped-call]
        return Response(request, response)


def _as_requests(answer: aiohttp.ClientResponse, body: bytes) -> requests.Response:
    """``answer`` as the ``requests.Response`` requests would have built (``requests.adapters.HTTPAdapter``)."""
    response = requests.Response()
    response.status_code = answer.status
    response.headers = CaseInsensitiveDict(answer.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = answer.reason or ""
    response.url = str(answer.url)
    response._content = body  # (what requests sets once it has read the body)
    return response
