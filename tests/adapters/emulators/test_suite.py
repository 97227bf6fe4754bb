"""All four emulators on one port, each reached by its real SDK through its prefix."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from azure.devops.connection import Connection
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from msrest.authentication import BasicAuthentication
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.emulators.slack.emulator import SlackEmulator
from adapters.emulators.suite import EmulatorSuite, WorldFileError, load_world
from tests.conftest import REPO_ROOT


@pytest.fixture
async def suite() -> AsyncIterator[EmulatorSuite]:
    async with EmulatorSuite() as running:
        yield running


async def test_each_sdk_reaches_its_emulator_through_the_prefix(
    suite: EmulatorSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert suite.urls == {name: f"{suite.url}/{name}" for name in ("ado", "aml", "botframework", "slack")}

    connection = Connection(suite.ado.org_url, BasicAuthentication("", suite.ado.pat("carol@contoso.com")))
    pipelines = await asyncio.to_thread(connection.clients_v7_1.get_pipelines_client().list_pipelines, "mlops")
    assert {p.name for p in pipelines} >= {"train-model-x", "integrate-app-y", "release-app-y"}

    slack = AsyncWebClient(token=suite.slack.bot_token, base_url=suite.slack.api_url)
    assert (await slack.auth_test())["ok"]

    connector = ConnectorClient(MicrosoftAppCredentials.empty(), base_url=suite.teams.service_url)
    channel = suite.teams.state.channel("App releases")
    sent = await connector.conversations.send_to_conversation(
        channel.id, Activity(type="message", text="hello", from_property={"id": "28:bot"})
    )
    assert suite.teams.state.message(sent.id).text == "hello"

    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    from adapters.azure_ml.client_factory import build_ml_client

    ml = build_ml_client(suite.aml.connection())
    model = await asyncio.to_thread(ml.models.get, "model-x", label="latest")
    assert model.version == "7"
    # recorded paths stay relative to each emulator's root
    assert suite.slack.recorder.matching("POST /api/auth.test")
    assert suite.ado.recorder.matching("GET /contoso/mlops/_apis/pipelines")


async def test_faults_are_scripted_through_the_prefix(suite: EmulatorSuite) -> None:
    async with aiohttp.ClientSession() as session:
        script = {"route": "POST /api/auth.test", "faults": [{"kind": "503"}]}
        async with session.post(f"{suite.urls['slack']}/_emulator/faults", json=script) as resp:
            assert resp.status == 200
    slack = AsyncWebClient(token=suite.slack.bot_token, base_url=suite.slack.api_url)
    with pytest.raises(SlackApiError) as failure:
        await slack.auth_test()
    assert failure.value.response.status_code == 503
    assert (await slack.auth_test())["ok"]


def test_world_files(tmp_path: Path) -> None:
    assert load_world(None) == {}
    good = tmp_path / "world.yaml"
    good.write_text("slack:\n  team: {id: T1, domain: acme, name: Acme}\n")
    assert load_world(good)["slack"]["team"]["id"] == "T1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("jira: {}\n")
    with pytest.raises(WorldFileError, match="unknown section"):
        load_world(bad)


def test_handoff_emulators_prints_the_urls_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "emulators", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert [line.split()[0] for line in lines] == ["Azure", "Azure", "Bot", "Slack"]
        api = re.search(r"(http://\S+/slack/api/)", lines[3])
        assert api is not None
        import json
        import urllib.request

        token = SlackEmulator().bot_token  # the shipped world's
        request = urllib.request.Request(f"{api.group(1)}auth.test", data=f"token={token}".encode())
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read())["ok"] is True
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
