"""The `handoff` command as a user runs it: check, serve (with SIGTERM), db upgrade, --version."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
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


def test_handoff_without_a_command_shows_the_commands_and_fails_as_a_usage_error() -> None:
    for command in ([], ["db"]):
        result = run(*command)
        assert result.returncode == 2, command
        assert "usage: handoff" in result.stderr and result.stdout == ""
    assert "check" in run().stderr and "doctor" in run().stderr


def test_demo_help_gives_the_defaults() -> None:
    result = run("demo", "--help")
    said = " ".join(result.stdout.split())  # (argparse wraps to the terminal's width)
    assert "where the demo's SQLite database lives (default: .handoff/demo)" in said
    assert "port for everything (default: 3978; 0: a free one)" in said


def test_check_accepts_the_example_and_warns_of_its_placeholders(tmp_path: Path) -> None:
    result = run("check", "--config", str(EXAMPLE), env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{EXAMPLE}: OK, with 1 warning(s)",
        "  - warning: server.public_url: still the example's placeholder host handoff.example.com: set it to "
        "Handoff's own public https URL (slack-manifest and teams-package refuse it, connect would point hooks "
        "there, doctor fails on it)",
    ]
    teams_on = config_copy(tmp_path, teams__enabled=True)
    result = run("check", "--config", str(teams_on), env=clean_env(MICROSOFT_APP_PASSWORD="app-password"))
    assert result.returncode == 0, result.stderr
    assert "  - warning: teams.app_id: still the example's all-zero placeholder: set it to the Azure Bot's " in (
        result.stdout
    )
    assert "OK, with 2 warning(s)" in result.stdout
    path = config_copy(
        tmp_path,
        teams__enabled=True,
        teams__app_id="5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        server__public_url="https://handoff.contoso.com",
    )
    result = run("check", "--config", str(path), env=clean_env(MICROSOFT_APP_PASSWORD="app-password"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK\n"


def test_check_warns_of_a_subscription_to_a_project_handoff_does_not_follow(tmp_path: Path) -> None:
    """A misspelt project would match no event; a project's id, or a glob that matches a followed project, is fine."""
    path = config_copy(tmp_path, server__public_url="https://handoff.contoso.com")
    raw = yaml.safe_load(path.read_text())
    [app_releases] = [s for s in raw["subscriptions"] if s["channel"] == "app-releases"]
    index = raw["subscriptions"].index(app_releases)
    app_releases["projects"] = ["mlopz", "c13b2491-4660-52c9-81fb-d7f7c7bc1847", "ML*"]
    path.write_text(yaml.safe_dump(raw))
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}: OK, with 1 warning(s)",
        f"  - warning: subscriptions[{index}].projects: 'mlopz' is no project Handoff follows "
        "(azure_devops.projects: mlops) (did you mean 'mlops'?): no event would come from it; name a project by "
        "its name or its id",
    ]


def test_check_warns_of_a_subscription_no_event_can_match_and_of_kinds_its_filters_keep_out(tmp_path: Path) -> None:
    """A model registration carries no pipeline, a stage no model: the file is usable, but those events never come."""
    path = config_copy(tmp_path, server__public_url="https://handoff.contoso.com")
    raw = yaml.safe_load(path.read_text())
    first = len(raw["subscriptions"])
    raw["subscriptions"] += [
        {"channel": "ml-models", "events": ["model_registered"], "pipelines": ["train-*"]},
        {"channel": "app-releases", "events": ["run", "stage"], "models": ["model-x"]},
        {"channel": "ml-models", "stages": ["Deploy*"], "tags": {"stage": "prod"}},
    ]
    path.write_text(yaml.safe_dump(raw))
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}: OK, with 3 warning(s)",
        f"  - warning: subscriptions[{first}]: no event can ever come to ml-models by it: model registrations carry no "
        "pipeline (events that can match its filters: run, stage, approval, release)",
        f"  - warning: subscriptions[{first + 1}].events: stage in events never comes to app-releases: stages carry "
        "no model; take it out of events, or into a subscription of its own",
        f"  - warning: subscriptions[{first + 2}]: no event can ever come to ml-models by it: no event carries all it "
        "reads: only runs, stages and approvals carry a stage; only model registrations, model deployments and "
        "training runs carry tags (leave a filter out, or split it)",
    ]


def test_check_names_every_problem(tmp_path: Path) -> None:
    path = config_copy(tmp_path, server__prot=80, server__port="eighty", slack__enabled=True)
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 1
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if text.strip().startswith("prot:"))
    assert f"server.prot: unknown key (line {line}; did you mean 'port'?)" in result.stderr
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


def test_check_names_a_subscription_filter_that_would_match_nothing_at_its_key(tmp_path: Path) -> None:
    path = config_copy(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["subscriptions"][0].update(models=["model-x:8"])
    path.write_text(yaml.safe_dump(raw))
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 1
    assert "subscriptions[0].models: `model-x:8` names a version; `models` takes model names" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_takes_a_subscription_muted_until_a_time_with_its_offset_and_names_one_without(tmp_path: Path) -> None:
    path = config_copy(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["subscriptions"][0]["muted_until"] = "2030-01-01T09:00:00Z"
    path.write_text(yaml.safe_dump(raw))
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 0, result.stderr
    raw["subscriptions"][0]["muted_until"] = "2030-01-01T09:00:00"
    path.write_text(yaml.safe_dump(raw))
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 1
    assert "subscriptions[0].muted_until: 2030-01-01T09:00:00 says no time zone: add Z for UTC" in result.stderr


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


@pytest.mark.parametrize("where", ["config", "--host"])
def test_serve_refuses_unauthenticated_teams_on_an_address_other_machines_reach(tmp_path: Path, where: str) -> None:
    """Teams requests taken unauthenticated are for local use: bound beyond this machine, anyone could act as
    any Teams user, so serve does not start (whether the file or ``--host`` says where)."""
    local = {
        "teams__enabled": True,
        "teams__app_id": "",
        "teams__app_password": None,
        "teams__allow_unauthenticated": True,
    }
    if where == "config":
        path = config_copy(tmp_path, server__host="0.0.0.0", **local)
        result = run("serve", "--config", str(path), "--port", "0", env=clean_env())
    else:
        path = config_copy(tmp_path, **local)
        result = run("serve", "--config", str(path), "--host", "0.0.0.0", "--port", "0", env=clean_env())
    assert result.returncode == 1, result.stderr
    assert "teams.allow_unauthenticated: true takes Teams requests from anyone" in result.stderr
    assert "'0.0.0.0' is reachable from other machines" in result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
    assert not (tmp_path / "handoff.db").exists()  # nothing was started


SLACK_AND_TEAMS_SECRETS = ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "MICROSOFT_APP_PASSWORD")


def secretless_config(tmp_path: Path, **changes: object) -> Path:
    """Slack and Teams enabled, before the operator has their secrets (none of the variables is set)."""
    return config_copy(
        tmp_path,
        slack__enabled=True,
        teams__enabled=True,
        teams__app_id="11111111-2222-3333-4444-555555555555",
        server__public_url="https://bot.contoso.com",
        **changes,
    )


def test_commands_that_use_no_secret_run_before_the_secrets_exist(tmp_path: Path) -> None:
    path = secretless_config(tmp_path)
    env = clean_env()
    env.pop("MICROSOFT_APP_PASSWORD", None)
    manifest = run("slack-manifest", "--config", str(path), env=env)
    assert manifest.returncode == 0, manifest.stderr
    assert "https://bot.contoso.com/slack/events" in manifest.stdout
    package = run("teams-package", "--config", str(path), "--out", str(tmp_path / "teams.zip"), env=env)
    assert package.returncode == 0, package.stderr
    assert (tmp_path / "teams.zip").exists()
    upgraded = run("db", "upgrade", "--config", str(path), env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    audited = run("audit", "--config", str(path), env=env)
    assert audited.returncode == 0, audited.stderr
    assert audited.stdout.startswith("at,actor,action")

    # the commands that use them still name every one that is unset
    for command in (["check"], ["doctor"], ["connect", "azure-devops"], ["serve", "--port", "0"]):
        refused = run(*command, "--config", str(path), env=env)
        assert refused.returncode == 1, (command, refused.stderr)
        for variable in SLACK_AND_TEAMS_SECRETS:
            assert f"environment variable {variable} is not set" in refused.stderr, command
        assert "listening" not in refused.stderr and "Traceback" not in refused.stderr


def test_audit_and_db_upgrade_still_need_the_variables_of_the_store_url(tmp_path: Path) -> None:
    path = secretless_config(tmp_path, store__url="sqlite:///${HANDOFF_DB_FILE}")
    for command in (["db", "upgrade"], ["audit"]):
        result = run(*command, "--config", str(path), env=clean_env())
        assert result.returncode == 1, result.stderr
        assert "store.url: environment variable HANDOFF_DB_FILE is not set" in result.stderr
        assert "SLACK_SIGNING_SECRET" not in result.stderr
        assert "Traceback" not in result.stderr
    upgraded = run("db", "upgrade", "--config", str(path), env=clean_env(HANDOFF_DB_FILE=str(tmp_path / "h.db")))
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "h.db").exists()


def test_check_refuses_plain_http_to_another_machine(tmp_path: Path) -> None:
    path = config_copy(
        tmp_path,
        server__public_url="http://handoff.example.com",
        slack__api_base_url="http://slack.example.com/api/",
        azure_devops__organization_url="http://dev.azure.com/contoso",
        azure_ml__endpoint="http://aml.example.com",
    )
    result = run("check", "--config", str(path), env=clean_env())
    assert result.returncode == 1
    plain_http = "must be https (plain http only for an emulator on this machine: 127.0.0.1, ::1 or localhost)"
    for key in ("server.public_url", "slack.api_base_url", "azure_devops.organization_url", "azure_ml.endpoint"):
        assert f"{key}: {plain_http}" in result.stderr
    local = config_copy(
        tmp_path,
        server__public_url="http://localhost:3978",
        slack__api_base_url="http://127.0.0.1:9/api/",
        azure_devops__organization_url="http://[::1]:9/contoso",
        azure_ml__endpoint="http://127.0.0.1:9/aml",
    )
    checked = run("check", "--config", str(local), env=clean_env())
    assert checked.returncode == 0, checked.stderr


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


def start_serving(path: Path, folder: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``handoff serve`` on a free port with the configuration at ``path``, run in ``folder``."""
    return subprocess.Popen(
        [*HANDOFF, "serve", "--config", str(path), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env() if env is None else env,
        cwd=folder,
    )


def test_serve_answers_then_stops_on_sigterm(tmp_path: Path) -> None:
    path = config_copy(tmp_path)
    process = start_serving(path, tmp_path)
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

    path = config_copy(
        tmp_path, teams__app_id="11111111-2222-3333-4444-555555555555", server__public_url="https://bot.contoso.com"
    )
    out = tmp_path / "handoff-teams.zip"
    result = run("teams-package", "--config", str(path), "--out", str(out), env=clean_env())
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as package:
        manifest = json.loads(package.read("manifest.json"))
        assert {"color.png", "outline.png"} <= set(package.namelist())
    schema = json.loads((shared_dir / "schemas/teams-manifest-v1.21.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    assert manifest["bots"][0]["botId"] == "11111111-2222-3333-4444-555555555555"
    assert manifest["validDomains"] == ["bot.contoso.com"]
    assert manifest["developer"]["privacyUrl"] == "https://bot.contoso.com/privacy"
    assert "handoff.example.com" not in json.dumps(manifest)

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
        process = start_serving(path, tmp_path, env)
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


@contextmanager
def never_answering() -> Iterator[str]:
    """The URL of a local service that accepts connections (the kernel does) and never answers."""
    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(64)
        yield f"http://127.0.0.1:{stalled.getsockname()[1]}"


STALLED_ENV = {
    "AZURE_DEVOPS_PAT": "pat",
    "AZURE_DEVOPS_HOOK_PASSWORD": "hook-secret",
    "EVENTGRID_DELIVERY_SECRET": "a-delivery-secret-of-some-length",
}


def stalled_services(tmp_path: Path, url: str) -> Path:
    """A configuration whose Azure DevOps, Azure ML (its emulator endpoint) and public URL are all ``url``."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/train-model-x.yml").write_text("command: python train.py\n")  # (azure_ml's retrain job)
    return config_copy(
        tmp_path,
        server__public_url=url,
        azure_devops__enabled=True,
        azure_devops__organization_url=f"{url}/contoso",
        azure_ml__enabled=True,
        azure_ml__endpoint=f"{url}/aml",
        azure_ml__credential={"kind": "emulator"},
        eventgrid__enabled=True,
    )


def line_of(output: str, start: str) -> str:
    return next((line for line in output.splitlines() if line.startswith(start)), f"(no line {start!r} in)\n{output}")


def test_doctor_fails_each_service_that_never_answers_at_its_timeout(tmp_path: Path) -> None:
    with never_answering() as url:
        path = stalled_services(tmp_path, url)
        started = time.monotonic()
        doctor = run("doctor", "--config", str(path), "--timeout", "1", env=clean_env(**STALLED_ENV))
        took = time.monotonic() - started
    print(doctor.stdout, doctor.stderr)
    assert doctor.returncode == 4, doctor.stderr
    assert took < 20  # the interpreter and the SDKs' imports take most of it: the services are checked side by side
    out = doctor.stdout
    assert "Azure DevOps did not answer within 1 s" in line_of(out, "FAIL  azure_devops.read[mlops]")
    assert "skipped: the organization did not answer" in line_of(out, "skip  azure_devops (other checks)")
    workspace = line_of(out, "FAIL  azure_ml.workspace")
    assert "Azure Resource Manager (asked for workspace ws-mlops) did not answer within 1 s" in workspace
    assert f"{url} did not answer within 1 s" in line_of(out, "FAIL  public_url")
    assert out.splitlines()[-1] == "8 checks: 4 failed, 0 warning(s)"
    assert "Traceback" not in doctor.stderr


def test_connect_fails_on_a_service_that_never_answers_at_its_timeout(tmp_path: Path) -> None:
    with never_answering() as url:
        path = stalled_services(tmp_path, url)
        for target, failure in (
            ("azure-devops", "FAILED  read project mlops: Azure DevOps did not answer within 1 s"),
            ("azure-ml", "FAILED  find storage account contosolake: Azure Resource Manager did not answer within 1 s"),
        ):
            started = time.monotonic()
            connect = run("connect", target, "--config", str(path), "--timeout", "1", env=clean_env(**STALLED_ENV))
            took = time.monotonic() - started
            print(connect.stdout, connect.stderr)
            assert connect.returncode == 4, connect.stderr
            assert failure in connect.stdout.splitlines()
            assert took < 15, target
            assert "Traceback" not in connect.stderr


@contextmanager
def refusing_identity_endpoint() -> Iterator[dict[str, str]]:
    """The environment of a managed identity (App Service's ``IDENTITY_ENDPOINT``) whose local endpoint refuses
    every token request: ``DefaultAzureCredential`` fails at once, and nothing leaves the machine."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error": "invalid_request", "error_description": "no identity here"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # (not the test's output)
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse) as server:
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            yield {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{server.server_port}/token", "IDENTITY_HEADER": "x"}
        finally:
            server.shutdown()


def test_doctor_and_connect_say_a_failing_default_credential_once_in_their_own_words(tmp_path: Path) -> None:
    """Without an Azure login, the Azure ML credential check fails on its line; the SDK's own warning about every
    credential it tried does not come with it, nor a warning about calls left behind."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/train-model-x.yml").write_text("command: python train.py\n")  # (azure_ml's retrain job)
    (tmp_path / "az").mkdir()  # (an Azure CLI, if there is one, has no login)
    with never_answering() as url, refusing_identity_endpoint() as identity:
        path = config_copy(
            tmp_path,
            # (by name: looked up on a worker thread, which the command leaves idle)
            server__public_url=url.replace("127.0.0.1", "localhost"),
            azure_ml__enabled=True,
            azure_ml__credential={"kind": "default"},
            eventgrid__enabled=True,
        )
        env = clean_env(**STALLED_ENV, **identity, AZURE_CONFIG_DIR=str(tmp_path / "az"))
        doctor = run("doctor", "--config", str(path), "--timeout", "1", env=env)
        connect = run("connect", "azure-ml", "--config", str(path), "--dry-run", "--timeout", "1", env=env)
    print(doctor.stdout, doctor.stderr, connect.stdout, connect.stderr)
    assert "the default credential could not get a token" in line_of(doctor.stdout, "FAIL  azure_ml.credential")
    assert "the Azure credential could not get a token" in connect.stdout
    for said in (doctor.stderr, connect.stderr):
        assert "DefaultAzureCredential" not in said and "Attempted credentials" not in said
        assert "still unanswered" not in said and "Traceback" not in said


def first_line(process: subprocess.Popen[str], within: float) -> str:
    """The first line ``process`` prints, which must come within ``within`` seconds."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], within)
    assert ready, f"nothing printed in {within} s"
    return process.stdout.readline()


@pytest.mark.parametrize(
    ("command", "first", "signum"),
    [
        (["doctor"], "FAIL  store", signal.SIGINT),
        (["connect", "azure-devops"], "store: no database", signal.SIGTERM),
    ],
)
def test_a_signal_stops_doctor_and_connect_at_once_while_a_service_does_not_answer(
    tmp_path: Path, command: list[str], first: str, signum: signal.Signals
) -> None:
    with never_answering() as url:
        path = stalled_services(tmp_path, url)
        process = subprocess.Popen(
            [*HANDOFF, *command, "--config", str(path)],  # each service waited for 20 s
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(**STALLED_ENV),
            cwd=REPO_ROOT,
        )
        try:
            # each line is printed as it is known, not when every service has answered
            assert first_line(process, within=15).startswith(first)
            time.sleep(0.5)  # (well into the calls to the services)
            process.send_signal(signum)
            out, err = process.communicate(timeout=5)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    print(out, err)
    assert process.returncode == 128 + signum
    assert f"handoff {' '.join(command)}: interrupted ({signum.name})" in err
    assert "did not answer" not in out and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "80000"],
        ["serve", "--port", "-1"],
        ["serve", "--port", "eighty"],
        ["emulators", "--port", "99999"],
        ["demo", "--port", "70000", "--no-browser"],
    ],
)
def test_a_port_out_of_range_is_an_argument_error(tmp_path: Path, command: list[str]) -> None:
    result = run(*command, env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert f"argument --port: a port is 0 to 65535 (0: a free one), not {command[2]}" in result.stderr or (
        f"argument --port: expected a port number, not '{command[2]}'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was started


@pytest.mark.parametrize(
    ("arguments", "public_url", "expected"),
    [
        (["--public-url", "foo"], None, "handoff slack-manifest: --public-url must be an https URL"),
        (["--public-url", "http://bot.contoso.com"], None, "handoff slack-manifest: --public-url must be an https"),
        ([], "http://localhost:3978", "handoff slack-manifest: server.public_url must be an https URL"),
    ],
)
def test_slack_manifest_refuses_a_url_that_is_not_https(
    tmp_path: Path, arguments: list[str], public_url: str | None, expected: str
) -> None:
    path = config_copy(tmp_path, server__public_url=public_url) if public_url else config_copy(tmp_path)
    result = run("slack-manifest", "--config", str(path), *arguments, env=clean_env())
    assert result.returncode == 1
    assert expected in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def teams_config(tmp_path: Path, **changes: object) -> Path:
    return config_copy(
        tmp_path,
        **{"teams__app_id": "11111111-2222-3333-4444-555555555555", "server__public_url": "https://bot.contoso.com"}
        | changes,
    )


def test_teams_package_writes_into_a_folder_named_as_out(tmp_path: Path) -> None:
    path = teams_config(tmp_path)
    existing = tmp_path / "dist"
    existing.mkdir()
    into_existing = run("teams-package", "--config", str(path), "--out", f"{existing}", env=clean_env())
    assert into_existing.returncode == 0, into_existing.stderr
    assert f"wrote {existing / 'handoff-teams.zip'}" in into_existing.stdout
    into_new = run("teams-package", "--config", str(path), "--out", f"{tmp_path}/new/", env=clean_env())
    assert into_new.returncode == 0, into_new.stderr
    assert (tmp_path / "new" / "handoff-teams.zip").is_file()
    help_text = " ".join(run("teams-package", "--help").stdout.split())
    assert "a folder (one that exists, or a path ending in /) gets handoff-teams.zip inside it" in help_text


def test_teams_package_names_an_out_path_it_cannot_write(tmp_path: Path) -> None:
    path = teams_config(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("a file, not a folder")
    for out, expected in (
        (f"{afile}/x.zip", f"cannot write the package to {afile}/x.zip: {afile} is a file, not a folder"),
        ("/proc/x.zip", "cannot write the package to /proc/x.zip: "),
    ):
        result = run("teams-package", "--config", str(path), "--out", out, env=clean_env())
        assert result.returncode == 1
        assert f"handoff teams-package: {expected}" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"server__public_url": "http://localhost:3978"}, "server.public_url must be an https URL"),
        ({"server__public_url": None}, "set server.public_url to Handoff's public https URL"),
        ({"server__public_url": "https://handoff.example.com"}, "placeholder host handoff.example.com"),
        ({"teams__app_id": "00000000-0000-0000-0000-000000000000"}, "register the bot first"),
    ],
)
def test_teams_package_refuses_placeholders(tmp_path: Path, changes: dict[str, object], expected: str) -> None:
    path = teams_config(tmp_path, **changes)
    out = tmp_path / "handoff-teams.zip"
    result = run("teams-package", "--config", str(path), "--out", str(out), env=clean_env())
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_the_teams_packages_links_open_pages_handoff_serves(tmp_path: Path) -> None:
    import zipfile
    from urllib.parse import urlsplit

    path = teams_config(tmp_path)
    out = tmp_path / "handoff-teams.zip"
    assert run("teams-package", "--config", str(path), "--out", str(out), env=clean_env()).returncode == 0
    with zipfile.ZipFile(out) as package:
        developer = json.loads(package.read("manifest.json"))["developer"]
    process = start_serving(path, tmp_path)
    try:
        url = listening_url(process)
        pages = {key: get(url + urlsplit(developer[key]).path) for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl")}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert {key: status for key, (status, _) in pages.items()} == dict.fromkeys(pages, 200)
    assert "<h1>Handoff: privacy</h1>" in pages["privacyUrl"][1]
    assert "<h1>Handoff: terms of use</h1>" in pages["termsOfUseUrl"][1]


def emulators_output(process: subprocess.Popen[str]) -> str:
    """What ``handoff emulators`` printed up to its last line, "Ctrl-C stops them."."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line or line.startswith("Ctrl-C stops them."):
            break
        lines.append(line)
    return "".join(lines)


@pytest.mark.parametrize("host", [None, "0.0.0.0", "::"])
def test_emulators_print_a_configuration_handoff_accepts(tmp_path: Path, host: str | None) -> None:
    """Bound to every interface, they still print URLs Handoff accepts and reaches: the loopback ones."""
    process = subprocess.Popen(
        [*HANDOFF, "emulators", "--port", "0", *(["--host", host] if host else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        printed = emulators_output(process)
        reached = get(re.findall(r"^Azure ML +(\S+)$", printed, re.MULTILINE)[0] + "/_emulator/requests")[0]
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert "Traceback" not in stderr
    assert reached == 200  # the printed URL reaches them
    sections = yaml.safe_load(printed.split("# handoff.yaml sections", 1)[1].split("\n", 1)[1].split("\n# ", 1)[0])
    assert sections["azure_ml"]["credential"] == {"kind": "emulator"}
    assert {"subscription_id", "resource_group", "workspace"} <= set(sections["azure_ml"])
    assert sections["slack"]["bot_token"] == "${LOCAL_SLACK_BOT_TOKEN}"
    assert "none of them is a real secret" in printed
    environ = dict(re.findall(r"^export (\w+)=(\S+)$", printed, re.MULTILINE))
    assert {"LOCAL_AZURE_DEVOPS_PAT", "LOCAL_SLACK_BOT_TOKEN", "LOCAL_SLACK_SIGNING_SECRET"} <= set(environ)

    config = tmp_path / "handoff.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{tmp_path / 'handoff.db'}"}, **sections}))
    checked = run("check", "--config", str(config), env=clean_env(**environ))
    assert checked.returncode == 0, checked.stderr
    assert ("Listening on all interfaces" in printed) == bool(host)
    # the channels a channels section can name, by their ids in each emulated workspace
    assert "#   Slack #ml-models: C0MLM0DELS1" in printed
    assert "#   Teams Contoso ML / App releases: 19:appReleases00000000@thread.tacv2" in printed


def test_emulators_name_a_world_section_of_the_wrong_shape(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text("slack: {bot_tokens: 5}\n")
    result = run("emulators", "--port", "0", "--world", str(world), env=clean_env())
    assert result.returncode == 1
    assert f"handoff emulators: {world}: the slack section does not fit its emulator" in result.stderr
    assert "Traceback" not in result.stderr


def test_emulators_say_where_a_world_file_is_not_valid_yaml_in_one_line(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text("slack:\n  team: {id: T1\n")
    result = run("emulators", "--port", "0", "--world", str(world), env=clean_env())
    assert result.returncode == 1
    assert result.stderr == (
        f"handoff emulators: {world}: line 3, column 1: not valid YAML (expected ',' or '}}', but got '<stream end>')\n"
    )


def slack_config(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    # Slack enabled, its Web API on a closed local port: nothing leaves this machine
    path = config_copy(tmp_path, slack__enabled=True, slack__api_base_url="http://127.0.0.1:9/api/")
    return path, clean_env(SLACK_SIGNING_SECRET="signing-secret", SLACK_BOT_TOKEN="xoxb-test-token")


def test_serve_with_slack_starts_and_stops_without_warnings(tmp_path: Path) -> None:
    path, env = slack_config(tmp_path)
    process = subprocess.Popen(
        [*HANDOFF, "serve", "--config", str(path), "--port", "0"], stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stderr is not None
    started: list[str] = []
    try:
        while not (match := re.search(r"listening on (http://\S+)", line := process.stderr.readline())) and line:
            started.append(line)
        assert match, "".join(started)
        assert get(f"{match.group(1)}/healthz")[0] == 200  # answered: it is waiting for SIGTERM
        # Slack (on a closed port) is asked who the bot is in the background, a few times, then said not to answer
        while "auth.test did not answer" not in (line := process.stderr.readline()) and line:
            started.append(line)
        started.append(line)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stopped = process.communicate(timeout=10)
    stderr = "".join(started) + stopped
    assert "token will be unused" not in stderr
    [warning] = [line for line in stderr.splitlines() if "WARNING" in line]
    assert "auth.test did not answer as Handoff started (ClientConnectorError): asking again in the" in warning
    assert process.returncode == 0


def test_serve_on_a_port_in_use_says_so_and_leaves_nothing_open(tmp_path: Path) -> None:
    path, env = slack_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = run("serve", "--config", str(path), "--port", port, env=env)
    assert result.returncode == 3
    assert f"handoff serve: cannot start: 127.0.0.1:{port} is already in use: stop what listens there, or " in (
        result.stderr
    )
    assert "choose another port (--port, or server.port in the configuration)" in result.stderr
    assert "Unclosed" not in result.stderr and "ERROR" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_on_a_port_in_use_names_it_and_says_how_to_get_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("demo", "--port", str(port), "--no-browser", "--data-dir", str(tmp_path), env=clean_env())
    assert result.returncode == 3
    assert f"handoff demo: cannot start: 127.0.0.1:{port} is already in use" in result.stderr
    assert "--port 0 picks a free port" in result.stderr and "Traceback" not in result.stderr


def test_the_demo_leaves_alone_a_database_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "handoff.db").write_bytes(b"a real Handoff's store")
    result = run("demo", "--port", "0", "--no-browser", "--data-dir", str(tmp_path), env=clean_env())
    assert result.returncode == 2
    assert f"handoff demo: cannot start: {tmp_path} holds a handoff.db the demo did not make" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "handoff.db").read_bytes() == b"a real Handoff's store"


def demo_process(data_dir: Path) -> subprocess.Popen[str]:
    """``handoff demo`` on a free port, without a browser, its output read through pipes."""
    return subprocess.Popen(
        [*HANDOFF, "demo", "--no-browser", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def test_the_demo_starts_without_a_warning(tmp_path: Path) -> None:
    process = demo_process(tmp_path / "demo")
    try:
        assert process.stdout is not None and "Handoff demo: open" in process.stdout.readline()
        time.sleep(3)  # (Slack's auth.test, asked in the background, would have been given up on by now)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "WARNING" not in stderr and "ERROR" not in stderr, stderr


@pytest.mark.parametrize("after", [1.0, "started"])
def test_a_ctrl_c_stops_the_demo_without_a_traceback_however_early(tmp_path: Path, after: float | str) -> None:
    process = demo_process(tmp_path / "demo")
    try:
        if after == "started":  # right as it invites a Ctrl-C
            assert process.stdout is not None and "Handoff demo: open" in process.stdout.readline()
        else:  # while it starts
            time.sleep(float(after))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    # 130, or ended by the SIGINT itself (as Python ends some interrupted starts): a shell reports 130 for both
    assert process.returncode in (0, 130, -signal.SIGINT)
