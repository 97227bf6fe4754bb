"""`handoff connect azure-devops` against the Azure DevOps emulator, through the real SDK.

Outcomes are read from what the emulator holds (its subscriptions and deliveries) and what Handoff
posted in Slack.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from adapters.azure_devops.connect import connect_azure_devops
from adapters.azure_devops.hook_plan import MARKER, RUN_STATE, marker_of
from adapters.emulators.azure_devops.emulator import AzureDevOpsEmulator
from adapters.emulators.base import LocalServer
from bot.config import Settings, parse_settings
from tests.adapters.connect.conftest import Wired, eventually

HOOKS = "/contoso/_apis/hooks/subscriptions"
CHANGES = (f"POST {HOOKS}", f"DELETE {HOOKS}/*")


def handoff_hooks(ado: AzureDevOpsEmulator) -> list[Any]:
    return [s for s in ado.webhooks.subscriptions.values() if marker_of(s.url)]


def changes(ado: AzureDevOpsEmulator) -> int:
    return sum(len(ado.recorder.matching(route)) for route in CHANGES)


async def test_a_dry_run_prints_the_plan_and_changes_nothing(wired: Wired) -> None:
    report = await connect_azure_devops(wired.settings, dry_run=True)
    assert report.ok, report.lines
    text = "\n".join(report.lines)
    assert text.count("create ") == 6 and "dry run: 6 to create" in text
    assert "ms.vss-pipelines.run-state-changed-event" in text and "approval-pending" in text
    assert f"{wired.public_url}/hooks/azure-devops" in text
    assert changes(wired.suite.ado) == 0 and wired.suite.ado.webhooks.subscriptions == {}
    for secret in wired.environ.values():
        assert secret not in text


async def test_connect_then_a_run_reaches_the_bot_and_a_second_connect_is_a_no_op(wired: Wired) -> None:
    ado = wired.suite.ado
    report = await connect_azure_devops(wired.settings)
    assert report.ok, report.lines
    assert report.lines[-1] == "done: created 6, updated 0, deleted 0, kept 0"
    hooks = handoff_hooks(ado)
    assert sorted(t for s in hooks for t in s.event_types) == sorted(
        [
            "ms.vss-pipelines.run-state-changed-event",
            "ms.vss-pipelines.stage-state-changed-event",
            "ms.vss-pipelinechecks-events.approval-pending",
            "ms.vss-pipelinechecks-events.approval-completed",
            "ms.vss-release.deployment-approval-pending-event",
            "ms.vss-release.deployment-approval-completed-event",
        ]
    )
    assert all(s.url.startswith(f"{wired.public_url}/hooks/azure-devops?{MARKER}=") for s in hooks)
    assert all(s.basic == ("handoff", wired.environ["LOCAL_HOOK_PASSWORD"]) for s in hooks)

    ado.script_next_run("integrate-app-y", fail_stage="Integration tests")
    run = ado.start_run("integrate-app-y", requested_by="bob@contoso.com")
    await eventually(lambda: ado.run(run.id).state == "completed")
    await ado.drain()
    delivered = [d for d in ado.deliveries if d.payload["resource"].get("run", {}).get("id") == run.id]
    assert delivered and all(d.result == "succeeded" for d in delivered)
    card = await eventually(
        lambda: next(
            (m for m in wired.slack_messages("app-releases") if "integrate-app-y" in json.dumps(m.blocks)), None
        )
    )
    await eventually(lambda: "Integration tests" in json.dumps(card.blocks) + "".join(r.text for r in card.replies))

    before = changes(ado)
    again = await connect_azure_devops(wired.settings)
    assert again.ok and again.lines[-1] == "nothing to do: 6 hook(s) in place"
    assert changes(ado) == before
    assert {s.id for s in handoff_hooks(ado)} == {s.id for s in hooks}


async def test_a_changed_config_updates_handoffs_hooks_removes_stale_ones_and_leaves_others(wired: Wired) -> None:
    ado = wired.suite.ado
    foreign = ado.add_webhook("http://127.0.0.1:9/someone-elses-hook", [RUN_STATE], basic=("them", "theirs"))
    assert (await connect_azure_devops(wired.settings)).ok
    first = {s.id for s in handoff_hooks(ado)}

    def new_password_and_fewer_kinds(config: dict[str, Any], environ: dict[str, str]) -> None:
        environ["LOCAL_HOOK_PASSWORD"] = "a-new-long-random-hook-password"
        config["subscriptions"][1]["events"] = ["approval"]

    report = await connect_azure_devops(wired.variant(new_password_and_fewer_kinds))
    assert report.ok, report.lines
    text = "\n".join(report.lines)
    assert text.count("update ") == 4 and text.count("delete ") == 2 and "a-new-long-random" not in text
    now = handoff_hooks(ado)
    assert len(now) == 4 and not ({s.id for s in now} & first)
    assert all(s.basic == ("handoff", "a-new-long-random-hook-password") for s in now)
    assert not any(RUN_STATE in s.event_types for s in now)
    assert ado.webhooks.subscriptions[foreign.id] is foreign and foreign.basic == ("them", "theirs")


async def test_a_header_secret_is_sent_as_an_http_header(wired: Wired) -> None:
    def header_auth(config: dict[str, Any], environ: dict[str, str]) -> None:
        config["azure_devops"]["service_hooks"] = {"header": {"name": "X-Handoff-Token", "value": "${HOOK_TOKEN}"}}
        environ["HOOK_TOKEN"] = "header-token-0123456789"

    assert (await connect_azure_devops(wired.variant(header_auth))).ok
    hooks = handoff_hooks(wired.suite.ado)
    assert hooks and all(s.headers == (("X-Handoff-Token", "header-token-0123456789"),) for s in hooks)
    assert all(s.basic is None for s in hooks)


async def test_an_unknown_pat_is_reported_as_credentials(wired: Wired) -> None:
    def bad_pat(config: dict[str, Any], environ: dict[str, str]) -> None:
        environ["LOCAL_AZURE_DEVOPS_PAT"] = "not-a-pat-of-this-organization"

    report = await connect_azure_devops(wired.variant(bad_pat))
    assert not report.ok
    assert "did not accept the credentials" in report.failures[0]
    assert "not-a-pat-of-this-organization" not in "\n".join(report.lines)


async def test_without_a_public_url_nothing_is_planned(wired: Wired) -> None:
    def no_public_url(config: dict[str, Any], environ: dict[str, str]) -> None:
        del config["server"]["public_url"]

    report = await connect_azure_devops(wired.variant(no_public_url))
    assert not report.ok and "server.public_url is not set" in report.failures[0]


# --- missing rights: the service answers as it does for a PAT without a scope or an identity without a permission


def refusal(status: int, type_key: str, message: str) -> web.Response:
    body = {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }
    body["typeName"] = (
        f"Microsoft.TeamFoundation.Framework.Server.{type_key}, Microsoft.TeamFoundation.Framework.Server"
    )
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


Refuse = Callable[[web.Request], web.Response | None]


@pytest.fixture
async def refusing_ado() -> AsyncIterator[tuple[AzureDevOpsEmulator, list[Refuse]]]:
    """The emulator behind a gate that can refuse requests the way the service does."""
    ado = AzureDevOpsEmulator()
    rules: list[Refuse] = []

    @web.middleware
    async def gate(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        for rule in rules:
            answer = rule(request)
            if answer is not None:
                return answer
        return await handler(request)

    app = ado.create_app()
    app.middlewares.insert(0, gate)
    server = await LocalServer(app).start()
    ado.base_url = server.url
    try:
        yield ado, rules
    finally:
        await server.stop()


def settings_for(ado: AzureDevOpsEmulator) -> Settings:
    return parse_settings(
        {
            "server": {"public_url": "http://127.0.0.1:9/handoff"},
            "azure_devops": {
                "organization_url": ado.org_url,
                "projects": ["mlops"],
                "pat": "${PAT}",
                "service_hooks": {"basic": {"username": "handoff", "password": "${HOOK_PASSWORD}"}},
            },
        },
        {"PAT": ado.pat("handoff-bot@contoso.com"), "HOOK_PASSWORD": "hook-password-0123456789"},
    )


def creating_hooks(request: web.Request) -> bool:
    return request.method == "POST" and request.path.lower().endswith("/_apis/hooks/subscriptions")


async def test_a_pat_without_the_scope_is_told_which_scope(
    refusing_ado: tuple[AzureDevOpsEmulator, list[Refuse]],
) -> None:
    ado, rules = refusing_ado
    message = "TF400813: The user 'Handoff Bot' is not authorized to access this resource."
    rules.append(lambda r: refusal(401, "UnauthorizedRequestException", message) if creating_hooks(r) else None)
    report = await connect_azure_devops(settings_for(ado))
    assert not report.ok and len(report.failures) == 4  # approvals only: no subscription asks for more
    assert "the PAT lacks the scope vso.build (Build: Read)" in report.failures[0]
    assert any("vso.release (Release: Read)" in f for f in report.failures)
    assert ado.webhooks.subscriptions == {}


async def test_an_identity_without_the_permission_is_told_which_permission(
    refusing_ado: tuple[AzureDevOpsEmulator, list[Refuse]],
) -> None:
    ado, rules = refusing_ado
    message = "VS403385: Access denied. Handoff Bot needs Edit subscriptions permissions to perform the action."
    rules.append(
        lambda r: (
            refusal(403, "AccessCheckException", message) if r.path.lower().endswith("/hooks/subscriptions") else None
        )
    )
    report = await connect_azure_devops(settings_for(ado))
    assert not report.ok
    assert "list service hooks: the identity lacks 'View subscriptions' and 'Edit subscriptions'" in report.failures[0]
    assert ado.webhooks.subscriptions == {}


async def test_the_pat_goes_only_in_the_authorization_header(
    refusing_ado: tuple[AzureDevOpsEmulator, list[Refuse]],
) -> None:
    ado, _ = refusing_ado
    assert (await connect_azure_devops(settings_for(ado))).ok
    pat = ado.pat("handoff-bot@contoso.com")
    for request in ado.recorder.requests:
        assert pat not in request.path and pat not in json.dumps(request.query) and pat not in request.text()
        if request.method == "POST":
            expected = base64.b64encode(f":{pat}".encode()).decode()
            assert request.headers["Authorization"] == f"Basic {expected}"
