"""`handoff doctor` against the emulators: it passes on a good configuration, and names each broken setting."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.azure_devops.connect import connect_azure_devops
from adapters.azure_ml.connect import connect_azure_ml
from adapters.doctor import Check, Status, run_checks
from adapters.doctor.store import check_store
from adapters.doctor.teams import check_teams
from adapters.emulators.botframework import BotFrameworkEmulator
from adapters.emulators.fake_server import FakeHTTPServer
from bot.app import run_doctor
from bot.config import Settings, StoreSettings, parse_settings
from tests.adapters.connect.conftest import Wired, free_port


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


async def connected(wired: Wired) -> None:
    assert (await connect_azure_devops(wired.settings)).ok
    assert (await connect_azure_ml(wired.settings)).ok


async def test_a_good_configuration_passes(wired: Wired) -> None:
    await connected(wired)
    report = await run_doctor(wired.settings)
    assert report.ok, "\n".join(report.lines)
    checks = by_name(await run_checks(wired.settings))
    assert {
        "store",
        "azure_devops.read[mlops]",
        "azure_devops.run[integrate-app-y]",
        "azure_devops.approve[mlops]",
        "azure_devops.identities",
        "azure_devops.hooks",
        "azure_ml.credential",
        "azure_ml.workspace",
        "eventgrid.subscriptions",
        "slack.auth",
        "public_url",
        "public_url.azure_devops",
        "public_url.eventgrid",
        "public_url.slack",
        "public_url.teams",
    } <= set(checks)
    assert {c.status for c in checks.values()} <= {Status.OK, Status.WARN, Status.SKIP}
    assert checks["teams.token"].status is Status.WARN  # the emulated Teams runs without authentication
    assert "6 service hook(s)" in checks["azure_devops.hooks"].detail
    assert checks["azure_devops.identities"].status is Status.OK
    assert "reads identities (as Handoff Bot)" in checks["azure_devops.identities"].detail
    text = "\n".join(report.lines)
    for secret in wired.environ.values():
        assert secret not in text


async def test_a_pat_that_cannot_read_identities_is_a_warning_that_names_the_scope(wired: Wired) -> None:
    await connected(wired)
    scopes = ["vso.build_execute", "vso.hooks_write", "vso.project", "vso.release_execute"]
    wired.suite.ado.world.limit_pat("handoff-bot@contoso.com", scopes)
    checks = by_name(await run_checks(wired.settings))
    identities = checks["azure_devops.identities"]
    assert identities.status is Status.WARN
    assert "the PAT lacks the scope vso.identity (Identity: Read)" in identities.detail
    assert "TF400813" in identities.detail and "cannot decide it in chat" in identities.detail
    assert identities.fix == "give the PAT the scope vso.identity (Identity: Read)"
    assert checks["azure_devops.approve[mlops]"].status is Status.OK  # the other scopes still do their part
    assert (await run_doctor(wired.settings)).ok  # a warning: Handoff still runs, groups are named only


async def test_before_connect_the_missing_hooks_and_subscriptions_fail_with_the_command_to_run(wired: Wired) -> None:
    report = await run_doctor(wired.settings)
    assert not report.ok
    checks = by_name(await run_checks(wired.settings))
    assert checks["azure_devops.hooks"].failed and "handoff connect azure-devops" in checks["azure_devops.hooks"].fix
    assert "6 service hook(s) to create" in checks["azure_devops.hooks"].detail
    assert (
        checks["eventgrid.subscriptions"].failed and "handoff connect azure-ml" in checks["eventgrid.subscriptions"].fix
    )
    assert report.lines[-1].startswith(f"{len(checks)} checks: 2 failed")


async def test_each_broken_setting_is_named(wired: Wired) -> None:
    await connected(wired)
    port = free_port()

    def broken(config: dict[str, Any], environ: dict[str, str]) -> None:
        environ["LOCAL_AZURE_DEVOPS_PAT"] = "revoked-pat"
        config["azure_ml"]["workspace"] = "ws-typo"
        environ["LOCAL_SLACK_BOT_TOKEN"] = "xoxb-not-the-token"
        config["store"]["url"] = f"sqlite:///{wired.tmp_path / 'never-migrated.db'}"

    checks = by_name(await run_checks(wired.variant(broken)))
    read = checks["azure_devops.read[mlops]"]
    assert read.failed and "did not accept the credentials" in read.detail and "$LOCAL_AZURE_DEVOPS_PAT" in read.fix
    assert checks["azure_ml.workspace"].failed and "no workspace ws-typo" in checks["azure_ml.workspace"].detail
    slack = checks["slack.auth"]
    assert slack.failed and "invalid_auth" in slack.detail and "$LOCAL_SLACK_BOT_TOKEN" in slack.fix
    assert checks["store"].failed and "handoff db upgrade" in checks["store"].fix

    def other_secrets(config: dict[str, Any], environ: dict[str, str]) -> None:
        environ["LOCAL_HOOK_PASSWORD"] = "not-what-handoff-runs-with"
        environ["LOCAL_EVENTGRID_SECRET"] = "not-what-handoff-runs-with-either"
        environ["LOCAL_SLACK_SIGNING_SECRET"] = "another-signing-secret"
        config["azure_devops"]["projects"] = ["mlops", "nosuchproject"]

    checks = by_name(await run_checks(wired.variant(other_secrets)))
    assert "refused the configured hook credentials" in checks["public_url.azure_devops"].detail
    assert "refused the configured delivery secret" in checks["public_url.eventgrid"].detail
    assert "refused a request signed" in checks["public_url.slack"].detail
    assert checks["azure_devops.read[nosuchproject]"].failed
    assert "nosuchproject" in checks["azure_devops.read[nosuchproject]"].detail
    assert checks["azure_devops.hooks"].failed  # the new password means every hook must be updated

    def nobody_there(config: dict[str, Any], environ: dict[str, str]) -> None:
        config["server"]["public_url"] = f"http://127.0.0.1:{port}"

    report = await run_doctor(wired.variant(nobody_there))
    assert not report.ok
    line = next(line for line in report.lines if line.split()[1:2] == ["public_url"])
    assert line.startswith("FAIL") and f"cannot reach http://127.0.0.1:{port}" in line and "fix: start Handoff" in line


async def test_a_section_turned_off_is_said_to_be_disabled_and_one_left_out_not_configured(wired: Wired) -> None:
    def turned_off(config: dict[str, Any], environ: dict[str, str]) -> None:
        for section in ("azure_devops", "slack", "eventgrid"):
            config[section]["enabled"] = False
        del config["teams"]

    checks = by_name(await run_checks(wired.variant(turned_off)))
    for name in ("azure_devops", "slack"):
        assert checks[name] == Check(name, Status.SKIP, "disabled (enabled: false)")
    assert checks["eventgrid.subscriptions"].detail == "eventgrid is disabled (enabled: false)"
    assert checks["teams"].detail == "not configured"

    def azure_ml_off(config: dict[str, Any], environ: dict[str, str]) -> None:
        config["azure_ml"]["enabled"] = False

    assert by_name(await run_checks(wired.variant(azure_ml_off)))["azure_ml"].detail == "disabled (enabled: false)"


async def test_a_service_that_never_answers_fails_its_checks_at_the_deadline_and_the_others_go_on(
    wired: Wired,
) -> None:
    await connected(wired)
    with socket.socket() as stalled:  # accepts connections (the kernel does) and never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(16)

        def stalled_azure(config: dict[str, Any], environ: dict[str, str]) -> None:
            config["azure_devops"]["organization_url"] = f"http://127.0.0.1:{stalled.getsockname()[1]}/contoso"
            config["azure_ml"]["endpoint"] = f"http://127.0.0.1:{stalled.getsockname()[1]}/aml"

        printed: list[str] = []
        started = time.monotonic()
        report = await run_doctor(wired.variant(stalled_azure), deadline=1, echo=printed.append)
        took = time.monotonic() - started
    assert took < 6  # one deadline each, side by side
    assert printed == report.lines and not report.ok
    checks = {line.split()[1]: line for line in printed[:-1]}
    assert "Azure DevOps did not answer within 1 s" in checks["azure_devops.read[mlops]"]
    assert "did not answer within 1 s" in checks["azure_ml.workspace"]
    assert checks["slack.auth"].startswith("ok") and checks["public_url.eventgrid"].startswith("ok")


# --- Teams: a Bot Framework token from a local stand-in for Microsoft Entra ID, through MSAL -------------------------


class ToLocalEntra(requests.Session):
    """MSAL's HTTP client, sending login.microsoftonline.com to the local token endpoint (and nothing elsewhere)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        text = url.decode() if isinstance(url, bytes) else url
        assert text.startswith("https://login.microsoftonline.com/"), text
        return super().request(method, text.replace("https://login.microsoftonline.com", self.target), *args, **kwargs)


@pytest.fixture
async def entra() -> AsyncIterator[FakeHTTPServer]:
    async with FakeHTTPServer() as fake:
        login = "https://login.microsoftonline.com/botframework.com"
        fake.respond(
            "GET /botframework.com/v2.0/.well-known/openid-configuration",
            body={
                "token_endpoint": f"{login}/oauth2/v2.0/token",
                "authorization_endpoint": f"{login}/oauth2/v2.0/authorize",
                "issuer": "https://login.microsoftonline.com/d6d49420-f39b-4df7-a1dc-d59a935871db/v2.0",
            },
        )
        fake.respond(  # MSAL asks for the instance metadata after a refusal
            "GET /common/discovery/instance",
            body={
                "tenant_discovery_endpoint": f"{login}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": "login.microsoftonline.com", "aliases": ["login.microsoftonline.com"]}
                ],
            },
        )
        yield fake


def teams_settings(password: str) -> Any:
    return parse_settings(
        {"teams": {"app_id": "5e1b3a4c-0000-4000-8000-00000000b007", "app_password": "${APP_PASSWORD}"}},
        {"APP_PASSWORD": password},
    )


async def test_teams_credentials_that_get_a_token_pass(entra: FakeHTTPServer) -> None:
    entra.respond(
        "POST /botframework.com/oauth2/v2.0/token",
        body={"access_token": "t", "token_type": "Bearer", "expires_in": 3600},
    )
    (check,) = await check_teams(teams_settings("the-right-secret"), ToLocalEntra(entra.url))
    assert check.status is Status.OK and "gets Bot Framework tokens" in check.detail
    (request,) = entra.recorder.matching("POST /botframework.com/oauth2/v2.0/token")
    assert "scope=https%3A%2F%2Fapi.botframework.com%2F.default" in request.text()


async def test_a_wrong_teams_secret_fails_and_names_the_setting(entra: FakeHTTPServer) -> None:
    entra.respond(
        "POST /botframework.com/oauth2/v2.0/token",
        status=401,
        body={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
        },
    )
    (check,) = await check_teams(teams_settings("a-wrong-secret"), ToLocalEntra(entra.url))
    assert check.failed and "invalid_client: AADSTS7000215" in check.detail
    assert "$APP_PASSWORD" in check.fix and "a-wrong-secret" not in check.line()


@pytest.mark.parametrize("secret", ["the-right-secret", "a-wrong-secret"])
async def test_finding_lost_teams_posts_checks_the_graph_token(entra: FakeHTTPServer, secret: str) -> None:
    entra.respond(
        "POST /botframework.com/oauth2/v2.0/token",
        body={"access_token": "t", "token_type": "Bearer", "expires_in": 3600},
    )
    app_id = "5e1b3a4c-0000-4000-8000-00000000b007"
    async with BotFrameworkEmulator(graph_credentials={app_id: "the-right-secret"}) as emulator:
        tenant = emulator.world.tenant_id
        graph = {"find_lost_posts": True, "login_url": emulator.login_url}
        teams = {"app_id": app_id, "app_password": "${APP_PASSWORD}", "tenant_id": tenant, "graph": graph}
        settings = parse_settings({"teams": teams}, {"APP_PASSWORD": secret})

        token, check = await check_teams(settings, ToLocalEntra(entra.url))

    assert token.status is Status.OK and check.name == "teams.graph"
    if secret == "the-right-secret":
        assert check.status is Status.OK and f"Microsoft Graph tokens for tenant {tenant}" in check.detail
    else:
        assert check.failed and "AADSTS7000215: Invalid client secret provided" in check.detail
        assert "a-wrong-secret" not in check.line()
    (request,) = emulator.recorder.matching(f"POST /login/{tenant}/oauth2/v2.0/token")
    assert "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" in request.body.decode()


async def test_slack_scopes_are_checked_from_what_the_answers_report(wired: Wired) -> None:
    state = wired.suite.slack.state
    checks = by_name(await run_checks(wired.settings))
    assert checks["slack.scopes"].status is Status.OK and "slack.history_scopes" not in checks
    assert "slack.membership_scopes" not in checks
    # without the history scopes Handoff works, less well: a warning that says what they are for
    state.world = replace(state.world, bot_scopes=tuple(s for s in state.world.bot_scopes if "history" not in s))
    checks = by_name(await run_checks(wired.settings))
    assert checks["slack.scopes"].status is Status.OK and "history" not in checks["slack.scopes"].detail
    history = checks["slack.history_scopes"]
    assert history.status is Status.WARN
    assert "lacks channels:history, groups:history" in history.detail and "posted again" in history.detail
    # without the read scopes, too: Handoff does not hear that it was removed from a channel
    state.world = replace(state.world, bot_scopes=tuple(s for s in state.world.bot_scopes if not s.endswith(":read")))
    checks = by_name(await run_checks(wired.settings))
    assert checks["slack.scopes"].status is Status.FAIL  # (app_mentions:read, users:read)
    membership = checks["slack.membership_scopes"]
    assert membership.status is Status.WARN and "lacks channels:read, groups:read" in membership.detail
    assert "channels:read" not in checks["slack.scopes"].detail
    # without chat:write nothing can be posted
    state.world = replace(state.world, bot_scopes=("commands", "users:read"))
    checks = by_name(await run_checks(wired.settings))
    assert checks["slack.scopes"].status is Status.FAIL
    assert "chat:write" in checks["slack.scopes"].detail


async def test_a_store_that_cannot_be_opened_is_named_with_what_it_answered(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"  # a folder where the database file should be
    folder.mkdir()
    check, filters = await check_store(Settings(store=StoreSettings(url=f"sqlite:///{folder}")))
    assert check.failed and filters == []
    assert check.detail == f"cannot open sqlite:///{folder}: unable to open database file"


async def test_credentials_azure_devops_refused_are_named_as_its_answer(wired: Wired) -> None:
    def revoked(config: dict[str, Any], environ: dict[str, str]) -> None:
        environ["LOCAL_AZURE_DEVOPS_PAT"] = "revoked-pat"

    checks = by_name(await run_checks(wired.variant(revoked)))
    skipped = checks["azure_devops (other checks)"]
    assert skipped.status is Status.SKIP
    assert skipped.detail == "skipped: the organization refused the credentials (401)"
