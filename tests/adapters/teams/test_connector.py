"""The connector's calls, sent with aiohttp (``adapters.teams.connector``), go out as msrest's requests sender sent
them: signed with the bot's token, and their answers read the same way, failures included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from botbuilder.schema import Activity, ErrorResponseException
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from msrest.exceptions import ClientRequestError

from adapters.emulators.fake_server import FakeHTTPServer
from adapters.teams.connector import ConnectorSessions

CONVERSATION = "19:appReleases00000000@thread.tacv2"
ACTIVITIES = f"/v3/conversations/{CONVERSATION}/activities"


class IssuedCredentials(MicrosoftAppCredentials):  # type: ignore[misc]
    """The bot's credentials with a token already issued (Entra ID is not asked)."""

    def get_access_token(self, force_refresh: bool = False) -> str:
        return "issued-token"


@pytest.fixture
async def sessions() -> AsyncIterator[ConnectorSessions]:
    opened = ConnectorSessions()
    try:
        yield opened
    finally:
        await opened.close()


def client(server: FakeHTTPServer, sessions: ConnectorSessions, credentials: object) -> ConnectorClient:
    return sessions.adopt(ConnectorClient(credentials, base_url=server.url))


async def test_a_call_carries_the_bots_token_and_its_text_and_reads_the_answer(
    fake_http_server: FakeHTTPServer, sessions: ConnectorSessions
) -> None:
    fake_http_server.respond(f"POST {ACTIVITIES}", status=201, body={"id": "1700000000001"})
    connector = client(fake_http_server, sessions, IssuedCredentials("bot-app-id", "secret"))

    sent = await connector.conversations.send_to_conversation(CONVERSATION, Activity(type="message", text="Prêt ✓"))

    assert sent.id == "1700000000001"
    (request,) = fake_http_server.recorder.matching(f"POST {ACTIVITIES}")
    assert request.headers["Authorization"] == "Bearer issued-token"
    assert "msrest" in request.headers["User-Agent"]  # (msrest's other policies kept)
    assert request.json()["text"] == "Prêt ✓"


async def test_without_authentication_a_call_is_not_signed_and_an_empty_answer_is_read(
    fake_http_server: FakeHTTPServer, sessions: ConnectorSessions
) -> None:
    fake_http_server.respond(f"DELETE {ACTIVITIES}/*", status=200)
    connector = client(fake_http_server, sessions, MicrosoftAppCredentials.empty())

    await connector.conversations.delete_activity(CONVERSATION, "1700000000001")

    (request,) = fake_http_server.recorder.matching(f"DELETE {ACTIVITIES}/*")
    assert "Authorization" not in request.headers


async def test_a_refusal_is_msrests_error_with_the_answers_status_and_headers(
    fake_http_server: FakeHTTPServer, sessions: ConnectorSessions
) -> None:
    fake_http_server.respond(
        f"POST {ACTIVITIES}",
        status=429,
        body={"error": {"code": "TooManyRequests", "message": "retry later"}},
        headers={"Retry-After": "3"},
    )
    connector = client(fake_http_server, sessions, MicrosoftAppCredentials.empty())

    with pytest.raises(ErrorResponseException) as refused:
        await connector.conversations.send_to_conversation(CONVERSATION, Activity(type="message", text="hi"))

    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["retry-after"] == "3"
    assert refused.value.error.error.code == "TooManyRequests"


async def test_a_call_without_an_answer_is_msrests_request_error(
    fake_http_server: FakeHTTPServer, sessions: ConnectorSessions
) -> None:
    fake_http_server.faults.add(f"POST {ACTIVITIES}", ["reset"])
    connector = client(fake_http_server, sessions, MicrosoftAppCredentials.empty())

    with pytest.raises(ClientRequestError):
        await connector.conversations.send_to_conversation(CONVERSATION, Activity(type="message", text="hi"))
