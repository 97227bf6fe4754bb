"""Azure ML, for real: the credential gets a token, the workspace exists, and the Event Grid subscriptions
deliver to Handoff."""

from __future__ import annotations

import asyncio

from adapters.azure_ml.arm import arm_base_url, classify_arm_error, eventgrid_client
from adapters.azure_ml.client_factory import build_credential
from adapters.azure_ml.connect import run_connect
from adapters.doctor.report import Check, fail, ok, skip, warn
from bot.config import AzureMLSettings, Settings

WORKSPACE_API_VERSION = "2024-10-01"


def _credential_check(settings: AzureMLSettings) -> Check:
    name = "azure_ml.credential"
    try:
        build_credential(settings).get_token(f"{arm_base_url(settings)}/.default")
    except Exception as error:
        return fail(
            name,
            f"the {settings.credential.kind} credential could not get a token ({classify_arm_error(error).message})",
            "check azure_ml.credential (and `az login` or the managed identity where Handoff runs)",
        )
    return ok(name, f"the {settings.credential.kind} credential gets tokens for Azure Resource Manager")


def _workspace_check(settings: AzureMLSettings) -> Check:
    from azure.core.rest import HttpRequest

    name = "azure_ml.workspace"
    scope = (
        f"/subscriptions/{settings.subscription_id}/resourceGroups/{settings.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{settings.workspace}"
    )
    try:
        client = eventgrid_client(settings)
        response = client._send_request(HttpRequest("GET", f"{scope}?api-version={WORKSPACE_API_VERSION}"))
        response.raise_for_status()
    except Exception as error:
        failure = classify_arm_error(error, scope)
        fix = {
            "not_found": "check azure_ml.subscription_id, resource_group and workspace",
            "forbidden": "give the identity a role on the workspace (AzureML Data Scientist, or Reader at least)",
        }.get(failure.kind, "check the azure_ml section")
        if failure.kind == "not_found":
            message = f"no workspace {settings.workspace} in resource group {settings.resource_group}"
        else:
            message = failure.message
        return fail(name, message, fix)
    return ok(name, f"workspace {settings.workspace} in {settings.resource_group} answers")


def _subscriptions_check(settings: Settings) -> Check:
    name = "eventgrid.subscriptions"
    if settings.eventgrid is None or not settings.eventgrid.enabled:
        return skip(name, "eventgrid is not configured")
    if not settings.server.public_url:
        return warn(name, "server.public_url is not set: subscriptions cannot be checked", "set server.public_url")
    report = run_connect(settings, dry_run=True)
    if not report.ok:
        return fail(name, report.failures[0], "fix what the message names, then `handoff connect azure-ml`")
    pending = [s for s in report.steps if s.change != "keep"]
    if pending:
        listed = ", ".join(f"{s.change} {s.name}" for s in pending)
        return fail(name, f"not in place: {listed}", "run `handoff connect azure-ml --config …`")
    return ok(name, f"{len(report.steps)} event subscription(s) deliver to Handoff")


def _checks(settings: Settings) -> list[Check]:
    assert settings.azure_ml is not None
    credential = _credential_check(settings.azure_ml)
    if credential.failed:
        return [credential, skip("azure_ml (other checks)", "skipped: no token")]
    workspace = _workspace_check(settings.azure_ml)
    if workspace.failed:
        return [credential, workspace]
    return [credential, workspace, _subscriptions_check(settings)]


async def check_azure_ml(settings: Settings) -> list[Check]:
    """The Azure ML checks (skipped when the section is absent or disabled)."""
    if settings.azure_ml is None or not settings.azure_ml.enabled:
        return [skip("azure_ml", "not configured")]
    return await asyncio.to_thread(_checks, settings)
