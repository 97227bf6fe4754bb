"""Two `handoff serve` processes sharing one PostgreSQL database decide a gate exactly once.

Teams clicks (Approve and Reject, mixed, from several people) are spread over both replicas, as a
load balancer would; Azure DevOps must receive one decision, and every other click must hear that the
gate was already decided.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.demo import connect_emulators, local_config, local_world
from adapters.emulators.suite import EmulatorSuite
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import _fast, eventually


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
async def suite() -> AsyncIterator[EmulatorSuite]:
    async with EmulatorSuite(_fast(local_world())) as running:
        yield running


@pytest.fixture
async def replicas(
    suite: EmulatorSuite, postgres_url: str, tmp_path: Path
) -> AsyncIterator[tuple[list[str], dict[str, str]]]:
    ports = [_free_port(), _free_port()]
    config, environ = local_config(suite, f"http://127.0.0.1:{ports[0]}", tmp_path)
    config["store"]["url"] = postgres_url
    config["server"]["log_level"] = "WARNING"
    path = tmp_path / "handoff.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, **environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("AZUREML_CURRENT_CLOUD", None)
    processes: list[asyncio.subprocess.Process] = []
    for i, port in enumerate(ports):
        log = (tmp_path / f"replica-{i}.log").open("w")
        command = [sys.executable, "-m", "bot", "serve", "--config", str(path), "--port", str(port)]
        processes.append(await asyncio.create_subprocess_exec(*command, env=env, stdout=log, stderr=log, cwd=tmp_path))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    # (waits happen off the event loop: the emulators the replicas call run on it)
    try:
        deadline = time.monotonic() + 60
        while not all([await asyncio.to_thread(_ready, url) for url in urls]):
            assert all(p.returncode is None for p in processes), "a replica exited during start-up"
            assert time.monotonic() < deadline, "the replicas did not become ready"
            await asyncio.sleep(0.1)
        yield urls, environ
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            assert await asyncio.wait_for(process.wait(), 15) == 0


def _gate_post(suite: EmulatorSuite) -> Any:
    for post in suite.teams.state.channel("App releases").posts:
        if '"verb": "approve"' in json.dumps(post.activity):
            return post
    return None


def _execute_data(post: Any, verb: str) -> dict[str, Any]:
    text = json.dumps(post.activity)
    match = re.search(r'"verb": "' + verb + r'", "data": (\{[^{}]*\})', text)
    assert match, f"no {verb} action on the card"
    return dict(json.loads(match.group(1)))


async def test_fifty_clicks_across_two_replicas_make_one_decision(
    suite: EmulatorSuite, replicas: tuple[list[str], dict[str, str]]
) -> None:
    urls, environ = replicas
    await connect_emulators(suite, urls[0], environ)
    run = suite.ado.start_run(
        "release-app-y", requested_by="bob@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    post = await eventually(lambda: _gate_post(suite), timeout=60)
    approve, reject = _execute_data(post, "approve"), _execute_data(post, "reject")

    async def click(i: int) -> Any:
        verb, data, who = ("approve", approve, "carol") if i % 2 else ("reject", {**reject, "comment": "no"}, "bob")
        return await suite.teams.click_action(post.id, verb, data, user=who, endpoint=f"{urls[i % 2]}/api/messages")

    answers = await asyncio.gather(*(click(i) for i in range(50)))
    assert all(a.status == 200 for a in answers), [a.status for a in answers]
    accepted = [a for a in answers if a.body and a.body.get("statusCode") == 200]
    refused = [a for a in answers if a.body and a.body.get("statusCode") != 200]
    assert len(accepted) == 1, [a.body for a in answers][:5]
    assert len(refused) == 49
    # most hear "already decided"; a click whose member lookup Teams rate-limited is refused as unknown
    reasons = [json.dumps(a.body) for a in refused]
    assert all("already" in r or "not an approver" in r for r in reasons), set(reasons)
    assert sum("already" in r for r in reasons) > 0
    await eventually(lambda: suite.ado.run(run.id).state == "completed", timeout=60)
    patches = suite.ado.recorder.matching("PATCH /contoso/mlops/_apis/pipelines/approvals")
    assert len(patches) == 1
