"""The `handoff` command as a user runs it: check, serve (with SIGTERM), db upgrade, --version."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from bot import __version__
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "handoff.example.yaml"
HANDOFF = [sys.executable, "-m", "bot"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HANDOFF, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd or REPO_ROOT)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AZURE_", "EVENTGRID_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def config_copy(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["store"]["url"] = f"sqlite:///{tmp_path / 'handoff.db'}"
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "handoff.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"handoff {__version__}"
    for command in (["serve"], ["check"], ["db", "upgrade"]):
        result = run(*command, "--help")
        assert result.returncode == 0 and "--config" in result.stdout


def test_check_accepts_the_example() -> None:
    result = run("check", "--config", str(EXAMPLE), env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_names_every_problem(tmp_path: Path) -> None:
    path = config_copy(tmp_path, server__prot=80, server__port="eighty", slack__enabled=True)
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 1
    assert "server.prot: unknown key (did you mean 'port'?)" in result.stderr
    assert "server.port: Input should be a valid integer" in result.stderr
    assert "slack.signing_secret: environment variable SLACK_SIGNING_SECRET is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    path = config_copy(tmp_path, slack__enabled=True)
    started = time.monotonic()
    result = run("serve", "--config", str(path), "--port", "0", env=clean_env())
    assert result.returncode == 1
    assert "SLACK_SIGNING_SECRET is not set" in result.stderr
    assert "listening" not in result.stderr
    assert not (tmp_path / "handoff.db").exists()  # nothing was started
    assert time.monotonic() - started < 30


def test_db_upgrade(tmp_path: Path) -> None:
    path = config_copy(tmp_path)
    result = run("db", "upgrade", "--config", str(path), env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "revision 0001" in result.stdout
    assert (tmp_path / "handoff.db").exists()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_serve_answers_then_stops_on_sigterm(tmp_path: Path) -> None:
    path = config_copy(tmp_path)
    process = subprocess.Popen(
        [*HANDOFF, "serve", "--config", str(path), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
    )
    try:
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if match := re.search(r"listening on (http://\S+)", line):
                url = match.group(1)
        assert url, "handoff serve did not report its address"
        assert get(f"{url}/readyz")[0] == 200
        status, metrics = get(f"{url}/metrics")
        assert status == 200 and "# TYPE handoff_http_requests_total counter" in metrics
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - stopped < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
