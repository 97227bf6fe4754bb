"""The `handoff` command as a user runs it: check, serve (with SIGTERM), db upgrade, --version."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

from adapters.sql.migrate import head_revision
from bot import __version__
from tests.conftest import REPO_ROOT
from tests.databases import POSTGRES_URL, postgres_or_skip

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


def test_check_names_duplicate_keys_misspelt_commands_and_unknown_policies_in_one_pass(tmp_path: Path) -> None:
    path = config_copy(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["models"]["model-x"]["promotion_gate"]["policy"] = "strict"
    # a second commands section, as appended by hand: YAML alone keeps only this one
    text = yaml.safe_dump(raw) + "commands:\n  retrian: {roles: [data-scientists]}\n  integrate: {roles: []}\n"
    path.write_text(text)
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 1
    first, second = (i for i, text_line in enumerate(text.splitlines(), 1) if text_line == "commands:")
    assert f"commands: duplicate key (line {second}; first at line {first})" in result.stderr
    assert "commands.retrian: unknown command (did you mean 'retrain'?)" in result.stderr
    assert "models.model-x.promotion_gate.policy: unknown gate policy 'strict'" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_never_prints_a_value_from_the_environment(tmp_path: Path) -> None:
    password = "p@ss:w0rd"
    path = config_copy(tmp_path, server__port="${PGPASSWORD}")
    result = run("check", "--config", str(path), env=clean_env(PGPASSWORD=password))
    assert result.returncode == 1
    assert "server.port: Input should be a valid integer" in result.stderr and "(from ${PGPASSWORD})" in result.stderr
    assert password not in result.stdout + result.stderr


def test_check_names_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "u16.yaml"
    path.write_bytes("server:\n  port: 0\n".encode("utf-16"))
    result = run("check", "-c", str(path), env=clean_env())
    assert result.returncode == 1
    assert "cannot read the file: it is not UTF-8" in result.stderr
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
    assert f"store is at revision {head_revision()}" in result.stdout
    assert (tmp_path / "handoff.db").exists()


def test_serve_and_db_upgrade_name_a_store_that_cannot_be_opened(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"  # a folder where the database file should be
    folder.mkdir()
    path = config_copy(tmp_path, store__url=f"sqlite:///{folder}")
    served = run("serve", "--config", str(path), "--port", "0", env=clean_env())
    assert served.returncode == 3
    assert f"handoff serve: cannot start: sqlite:///{folder}: unable to open database file" in served.stderr
    upgraded = run("db", "upgrade", "--config", str(path), env=clean_env())
    assert upgraded.returncode == 3
    assert f"cannot reach the store: sqlite:///{folder}: unable to open database file" in upgraded.stderr
    assert "Traceback" not in served.stderr + upgraded.stderr


def test_serve_names_a_postgres_database_that_refuses_without_its_password(tmp_path: Path) -> None:
    postgres_or_skip()
    url = make_url(POSTGRES_URL).set(password="hunter2-secret", database="no_such_database")
    path = config_copy(tmp_path, store__url=url.render_as_string(hide_password=False))
    result = run("serve", "--config", str(path), "--port", "0", env=clean_env())
    assert result.returncode == 3
    assert "cannot start: postgresql://" in result.stderr
    assert 'database "no_such_database" does not exist' in result.stderr
    assert "hunter2-secret" not in result.stderr and ":***@" in result.stderr
    assert "Traceback" not in result.stderr


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def listening_url(process: subprocess.Popen[str]) -> str:
    """The address ``handoff serve`` reports on stderr once it listens."""
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        if match := re.search(r"listening on (http://\S+)", line):
            return match.group(1)
    raise AssertionError("handoff serve did not report its address")


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
        url = listening_url(process)
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


def test_audit_export(tmp_path: Path) -> None:
    import asyncio
    import csv
    import io
    import json
    from datetime import UTC, datetime, timedelta

    from adapters.sql import SqlStore
    from bot.records import AuditEntry

    path = config_copy(tmp_path)
    assert run("audit", "--config", str(path), env=clean_env()).returncode == 3  # not migrated yet
    assert run("db", "upgrade", "--config", str(path), env=clean_env()).returncode == 0

    async def write() -> None:
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'handoff.db'}")
        now = datetime.now(UTC)
        await store.append_audit(
            AuditEntry(now - timedelta(days=10), "bob@contoso.com", "approve", "gate g", "refused: requester")
        )
        await store.append_audit(
            AuditEntry(now, "carol@contoso.com", "approve", "gate g", "applied", "slack", "C1", 'ok, "ship"')
        )
        await store.close()

    asyncio.run(write())
    everything = run("audit", "--config", str(path), env=clean_env())
    assert everything.returncode == 0, everything.stderr
    rows = list(csv.DictReader(io.StringIO(everything.stdout)))
    assert [(r["actor"], r["outcome"]) for r in rows] == [
        ("bob@contoso.com", "refused: requester"),
        ("carol@contoso.com", "applied"),
    ]
    assert rows[1]["comment"] == 'ok, "ship"'
    recent = run("audit", "--config", str(path), "--since", "7d", "--format", "json", env=clean_env())
    assert [json.loads(line)["actor"] for line in recent.stdout.splitlines()] == ["carol@contoso.com"]
    assert run("audit", "--config", str(path), "--since", "soon", env=clean_env()).returncode == 1


def test_teams_package_and_slack_manifest(tmp_path: Path, shared_dir: Path) -> None:
    import json
    import zipfile

    import jsonschema

    path = config_copy(tmp_path, teams__app_id="11111111-2222-3333-4444-555555555555")
    out = tmp_path / "handoff-teams.zip"
    result = run("teams-package", "--config", str(path), "--out", str(out), env=clean_env())
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as package:
        manifest = json.loads(package.read("manifest.json"))
        assert {"color.png", "outline.png"} <= set(package.namelist())
    schema = json.loads((shared_dir / "schemas/teams-manifest-v1.21.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    assert manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    assert "handoff.example.com" in manifest["validDomains"]

    printed = run("slack-manifest", "--config", str(path), "--public-url", "https://bot.contoso.com", env=clean_env())
    assert printed.returncode == 0, printed.stderr
    assert "https://bot.contoso.com/slack/events" in printed.stdout


def test_serve_stops_promptly_while_a_service_call_hangs(tmp_path: Path, shared_dir: Path) -> None:
    """A synchronous SDK call waiting on a stalled Azure DevOps must not hold the exit (its own timeout is
    100 s): after the graceful stop it gets the shutdown timeout, then the process exits without it."""
    with socket.socket() as stalled:  # accepts connections (the kernel does) and never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(16)
        organization = f"http://127.0.0.1:{stalled.getsockname()[1]}/contoso"
        path = config_copy(
            tmp_path, azure_devops__enabled=True, azure_devops__organization_url=organization, server__log_level="INFO"
        )
        env = clean_env(AZURE_DEVOPS_PAT="pat", AZURE_DEVOPS_HOOK_PASSWORD="hook-secret")
        process = subprocess.Popen(
            [*HANDOFF, "serve", "--config", str(path), "--port", "0"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        try:
            url = listening_url(process)
            hook = json.loads((shared_dir / "samples/ado/ms.vss-pipelines.run-state-changed-event.json").read_text())
            hook["resource"]["run"]["result"] = "failed"  # Handoff asks Azure DevOps where it failed
            hook["resourceContainers"]["account"] = {"baseUrl": organization + "/"}
            request = urllib.request.Request(
                f"{url}/hooks/azure-devops",
                data=json.dumps(hook).encode(),
                headers={"Content-Type": "application/json", "Authorization": basic("handoff", "hook-secret")},
            )
            with urllib.request.urlopen(request, timeout=30) as resp:  # answered once the look-up gave up
                assert resp.status == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert process.stderr is not None
            assert "call(s) to a service still unanswered" in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
