"""`handoff connect` and `handoff doctor` as a person runs them, against the emulators and a running Handoff.

The commands run in a child process with a configuration file and secrets in its environment; the
emulators and Handoff run in this process and are observed directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters.demo import local_config, local_world
from adapters.emulators.suite import EmulatorSuite
from bot.app import RunningServer, start_server
from bot.config import parse_settings
from bot.records import ConversationAddress, StoredSubscription
from tests.conftest import REPO_ROOT


@dataclass
class Deployment:
    suite: EmulatorSuite
    server: RunningServer
    config: dict[str, Any]
    environ: dict[str, str]
    tmp_path: Path

    def write_config(self, name: str = "handoff.yaml", change: Callable[[dict[str, Any]], None] | None = None) -> Path:
        config = json.loads(json.dumps(self.config))
        if change is not None:
            change(config)
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    async def handoff(self, *args: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AZURE_", "EVENTGRID_", "LOCAL_"))}
        env.update(environ if environ is not None else self.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["AZURE_DEVOPS_CACHE_DIR"] = str(self.tmp_path / "ado-cache")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    def slack_text(self, channel: str) -> str:
        messages = [m for m in self.suite.slack.state.channel(channel).messages if not m.deleted]
        return "\n".join(json.dumps(m.blocks or []) + m.text for m in messages)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.1)
    return result


@pytest.fixture
async def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    world = local_world()
    for pipeline in world["azure_devops"]["pipelines"]:
        for stage in pipeline.get("stages", []):
            stage["duration"] = 0.2
    async with EmulatorSuite(world) as suite:
        port = _free_port()
        config, environ = local_config(suite, f"http://127.0.0.1:{port}", tmp_path)
        config["server"]["port"] = port
        config["eventgrid"]["data_lake_paths"] = [
            {"storage_account": "stmlopslake", "filesystem": "lake", "path": "raw/customers/"}
        ]
        server = await start_server(parse_settings(config, environ), base_dir=tmp_path)
        try:
            suite.slack.events_url = f"{server.url}/slack/events"
            suite.teams.bot_endpoint = f"{server.url}/api/messages"
            await suite.teams.install_app()
            yield Deployment(suite, server, config, environ, tmp_path)
        finally:
            await server.stop()


async def test_connect_both_services_then_events_reach_the_channels_and_doctor_passes(deployment: Deployment) -> None:
    suite, config_file = deployment.suite, str(deployment.write_config())
    code, out, err = await deployment.handoff("connect", "azure-devops", "--config", config_file, "--dry-run")
    print(out)
    assert code == 0, err
    assert "dry run: 6 to create" in out and suite.ado.webhooks.subscriptions == {}

    code, out, err = await deployment.handoff("connect", "azure-devops", "--config", config_file)
    print(out)
    assert code == 0, err
    assert "done: created 6" in out and len(suite.ado.webhooks.subscriptions) == 6
    code, out, _ = await deployment.handoff("connect", "azure-devops", "--config", config_file)
    print(out)
    assert code == 0 and "nothing to do: 6 hook(s) in place" in out

    suite.ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = suite.ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: "Failed at stage Integration tests" in deployment.slack_text("app-releases"))
    delivered = [d for d in await suite.ado.drain() if d.payload["resource"].get("run", {}).get("id") == run.id]
    assert delivered and all(d.result == "succeeded" for d in delivered)

    code, out, err = await deployment.handoff("connect", "azure-ml", "--config", config_file)
    print(out)
    assert code == 0, err
    assert "done: created 2" in out
    code, out, _ = await deployment.handoff("connect", "azure-ml", "--config", config_file)
    assert code == 0 and "nothing to do: 2 subscription(s) in place" in out

    suite.aml.script_next_job(queued_after=0.1, running_after=0.1, duration=0.3)
    suite.aml.submit_job("train-model-x-e2e", {"jobType": "Command", "displayName": "train-model-x"})
    await suite.aml.wait_for_job("train-model-x-e2e", timeout=10)
    await eventually(
        lambda: "model-x" in deployment.slack_text("ml-models") and "8" in deployment.slack_text("ml-models")
    )

    code, out, err = await deployment.handoff("doctor", "--config", config_file)
    print(out)
    assert code == 0, out + err
    assert "0 failed" in out.splitlines()[-1]
    for secret in deployment.environ.values():
        assert secret not in out and secret not in err


async def test_doctor_names_each_broken_setting_and_exits_non_zero(deployment: Deployment) -> None:
    def broken(config: dict[str, Any]) -> None:
        config["azure_ml"]["workspace"] = "ws-typo"
        config["azure_devops"]["projects"] = ["mlops", "nosuchproject"]

    environ = {**deployment.environ, "LOCAL_SLACK_BOT_TOKEN": "xoxb-revoked", "LOCAL_HOOK_PASSWORD": "stale-password"}
    code, out, err = await deployment.handoff(
        "doctor", "--config", str(deployment.write_config("broken.yaml", broken)), environ=environ
    )
    print(out)
    assert code == 4, err
    failed = {line.split()[1] for line in out.splitlines() if line.startswith("FAIL")}
    assert {
        "azure_devops.read[nosuchproject]",
        "azure_ml.workspace",
        "slack.auth",
        "public_url.azure_devops",
        "azure_devops.hooks",
    } <= failed
    assert "store" not in failed and "azure_devops.read[mlops]" not in failed
    assert all("(fix: " in line for line in out.splitlines() if line.startswith("FAIL"))
    assert "xoxb-revoked" not in out and "stale-password" not in out


async def test_doctor_and_connect_say_once_that_azure_devops_does_not_answer(deployment: Deployment) -> None:
    def unreachable(config: dict[str, Any]) -> None:
        config["azure_devops"]["organization_url"] = f"http://127.0.0.1:{_free_port()}/contoso"

    config_file = str(deployment.write_config("unreachable.yaml", unreachable))
    code, out, err = await deployment.handoff("doctor", "--config", config_file)
    assert code == 4, err
    assert any(line.startswith("FAIL  azure_devops.read[mlops]") for line in out.splitlines()), out
    code, connect_out, connect_err = await deployment.handoff("connect", "azure-devops", "--config", config_file)
    assert code != 0 and "unreachable" in connect_out + connect_err
    # the reports say it; the HTTP library's line per retry would only repeat it
    assert "Retrying" not in err + connect_err and "urllib3" not in err + connect_err


async def test_connect_refuses_a_configuration_with_problems(deployment: Deployment) -> None:
    def unset_variable(config: dict[str, Any]) -> None:
        config["azure_devops"]["pat"] = "${NOT_SET_ANYWHERE}"

    code, _, err = await deployment.handoff(
        "connect", "azure-devops", "--config", str(deployment.write_config("bad.yaml", unset_variable))
    )
    assert code == 1 and "azure_devops.pat: environment variable NOT_SET_ANYWHERE is not set" in err
    assert deployment.suite.ado.webhooks.subscriptions == {}


def _hook_changes(suite: EmulatorSuite) -> list[str]:
    """The requests that create, change or delete service hooks, as Azure DevOps received them."""
    return [
        f"{r.method} {r.path}"
        for r in suite.ado.recorder.requests
        if r.method != "GET" and "/_apis/hooks/subscriptions" in r.path
    ]


async def _connect_with_a_chat_subscription(deployment: Deployment) -> set[str]:
    """Store a chat subscription to pushes in mlops, connect; the event types of Handoff's hooks then."""
    ops = deployment.suite.slack.state.channel("ops").id
    pushes = StoredSubscription(
        ConversationAddress("slack", ops), {"projects": ["mlops"], "events": ["code_pushed"]}, "bob", datetime.now(UTC)
    )
    await deployment.server.store.add_subscription(pushes)
    code, out, err = await deployment.handoff("connect", "azure-devops", "--config", str(deployment.write_config()))
    assert code == 0, out + err
    return _hook_event_types(deployment.suite)


def _hook_event_types(suite: EmulatorSuite) -> set[str]:
    return {t for s in suite.ado.webhooks.subscriptions.values() for t in s.event_types}


async def test_connect_with_the_store_unreachable_says_so_and_deletes_no_hook(deployment: Deployment) -> None:
    suite = deployment.suite
    assert "git.push" in await _connect_with_a_chat_subscription(deployment)
    hooks = dict(suite.ado.webhooks.subscriptions)

    def unreachable_store(config: dict[str, Any]) -> None:
        config["store"]["url"] = f"postgresql://handoff:s3cret-pw@127.0.0.1:{_free_port()}/handoff"

    config_file = str(deployment.write_config("unreachable-store.yaml", unreachable_store))
    suite.ado.recorder.clear()
    for dry_run in (("--dry-run",), ()):
        code, out, err = await deployment.handoff("connect", "azure-devops", "--config", config_file, *dry_run)
        print(out, err)
        assert code == 3, out + err
        assert "postgresql://handoff:***@127.0.0.1" in err and "chat subscriptions" in err
        assert "s3cret-pw" not in out + err and "delete" not in out
    assert _hook_changes(suite) == [] and suite.ado.webhooks.subscriptions == hooks


async def test_connect_to_a_store_not_there_creates_it_not_and_deletes_no_hook(deployment: Deployment) -> None:
    suite = deployment.suite
    assert "git.push" in await _connect_with_a_chat_subscription(deployment)
    hooks = dict(suite.ado.webhooks.subscriptions)
    missing = deployment.tmp_path / "nowhere" / "handoff.db"

    def store_not_there(config: dict[str, Any]) -> None:
        config["store"]["url"] = f"sqlite:///{missing}"

    config_file = str(deployment.write_config("missing-store.yaml", store_not_there))
    suite.ado.recorder.clear()
    for dry_run in (("--dry-run",), ()):
        code, out, err = await deployment.handoff("connect", "azure-devops", "--config", config_file, *dry_run)
        print(out, err)
        # no chat subscription can be in a store not there yet, but a mistyped store.url looks the same
        assert code == 0, out + err
        assert not missing.parent.exists()
        assert f"no database at {missing}" in out and "no service hook is deleted" in out
    assert _hook_changes(suite) == [] and suite.ado.webhooks.subscriptions == hooks


def _counted(metrics: str, family: str) -> dict[str, float]:
    """The samples of ``family`` in a /metrics text: label set to value."""
    return {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(family + "{")
    }


async def test_doctor_probes_are_counted_apart_from_the_services_traffic(deployment: Deployment) -> None:
    code, out, err = await deployment.handoff("doctor", "--config", str(deployment.write_config()))
    assert "public_url.azure_devops" in out and code in (0, 3, 4), out + err
    async with aiohttp.ClientSession() as session, session.get(f"{deployment.server.url}/metrics") as resp:
        metrics = await resp.text()

    # the only request of the services: the Teams emulator installing the app as the deployment started
    assert _counted(metrics, "handoff_http_requests_total") == {'route="/api/messages",status="201"': 1}
    assert _counted(metrics, "handoff_hook_events_total") == {}
    probes = _counted(metrics, "handoff_doctor_probes_total")
    assert probes['route="/hooks/azure-devops",status="200"'] == 1
    assert probes['route="/hooks/eventgrid",status="200"'] == 2  # the handshake, then the probe event
    assert probes['route="/slack/events",status="200"'] == 1
    assert probes['route="/healthz",status="200"'] == 1
