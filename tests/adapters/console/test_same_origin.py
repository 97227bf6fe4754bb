"""Only the console's own page drives it: another site's page, a DNS-rebound name or a form is refused, and
nothing happens in the emulated world or reaches the bot."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from adapters.emulators.fake_server import FakeHTTPServer
from adapters.emulators.suite import EmulatorSuite

from .conftest import ConsoleClient
from .samples import SLACK_MODELS


async def raw_post(
    console: ConsoleClient, path: str, body: str, headers: dict[str, str], status: int
) -> dict[str, Any]:
    """POST ``body`` as given (no JSON encoding, no default headers beyond aiohttp's)."""
    async with console.session.post(f"{console.url}/{path}", data=body.encode(), headers=headers) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        answer: dict[str, Any] = await response.json()
        return answer


def port_of(console: ConsoleClient) -> str:
    return console.url.rsplit(":", 1)[1].split("/")[0]


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "handoff.console"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:1"},  # another port of this machine is another origin
        {"Origin": "null"},  # a sandboxed frame
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": "http://evil.example/page"},
    ],
)
async def test_a_release_started_from_another_origin_is_refused(
    console: ConsoleClient, suite: EmulatorSuite, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "handoff.console")
    headers = {"Content-Type": "application/json", **headers}
    answer = await raw_post(console, "api/world/start-release", '{"user":"bob"}', headers, 403)
    assert answer == {"error": "The console acts only for its own page."}
    assert suite.ado.runs == []
    (line,) = refusals(caplog)
    assert line.startswith("console refused POST /api/world/start-release with 403: ")


@pytest.mark.parametrize("text", ["/retrain model-x", "@handoff retrain model-x"])
async def test_a_command_typed_from_another_origin_never_reaches_the_bot(
    console: ConsoleClient, suite: EmulatorSuite, bot: FakeHTTPServer, text: str
) -> None:
    headers = {"Content-Type": "application/json", "Origin": "http://evil.example"}
    path = f"api/channels/slack/{SLACK_MODELS}/messages"
    await raw_post(console, path, json.dumps({"user": "alice", "text": text}), headers, 403)
    assert bot.recorder.requests == []
    assert suite.slack.state.channel(SLACK_MODELS).messages == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_body_that_is_not_declared_json_is_refused(
    console: ConsoleClient, suite: EmulatorSuite, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What a form or a no-cors fetch of another site can send (here with no Origin at all)."""
    caplog.set_level(logging.WARNING, "handoff.console")
    answer = await raw_post(console, "api/world/start-release", '{"user":"bob"}', {"Content-Type": content_type}, 415)
    assert "application/json" in answer["error"]
    assert suite.ado.runs == []
    assert len(refusals(caplog)) == 1


@pytest.mark.parametrize("host", ["rebind.attacker.example", "127.0.0.1", "127.0.0.1:1", "localhost:1"])
async def test_a_foreign_host_is_refused_reading_and_acting(
    console: ConsoleClient, suite: EmulatorSuite, host: str
) -> None:
    """A DNS-rebound page names its own host: it can neither read the world (gate ids) nor act."""
    async with console.session.get(f"{console.url}/api/world", headers={"Host": host}) as response:
        assert response.status == 403
        assert await response.json() == {"error": "The console answers only at its own address."}
    async with console.session.get(f"{console.url}/", headers={"Host": host}) as response:
        assert response.status == 403
    headers = {"Host": host, "Content-Type": "application/json"}
    await raw_post(console, "api/world/start-release", '{"user":"bob"}', headers, 403)
    assert suite.ado.runs == []


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
async def test_the_console_answers_at_its_loopback_names(console: ConsoleClient, name: str) -> None:
    host = f"{name}:{port_of(console)}"
    async with console.session.get(f"{console.url}/api/world", headers={"Host": host}) as response:
        assert response.status == 200


async def test_its_own_page_still_acts(console: ConsoleClient, suite: EmulatorSuite) -> None:
    """What Chromium sends for the page's own fetch, then what a client that is not a browser sends."""
    own = f"http://localhost:{port_of(console)}"
    headers = {
        "Host": f"localhost:{port_of(console)}",
        "Origin": own,
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json; charset=utf-8",
    }
    answer = await raw_post(console, "api/world/start-release", '{"user":"bob"}', headers, 200)
    assert answer["ok"] is True
    await raw_post(console, "api/world/land-data", "{}", {"Content-Type": "application/json"}, 200)
    (run,) = suite.ado.runs
    assert run.pipeline.name == "release-app-y"
