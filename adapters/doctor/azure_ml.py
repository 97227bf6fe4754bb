"""Azure ML, for real: the credential gets a token, the workspace exists, and the Event Grid subscriptions
deliver to Handoff."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

from adapters.azure_ml.arm import arm_base_url, classify_arm_error, eventgrid_client
from adapters.azure_ml.client_factory import build_credential
from adapters.azure_ml.connect import run_connect
from adapters.doctor.report import DEADLINE, Check, fail, ok, section_off, skip, warn
from adapters.worker_pool import NoAnswer, in_own_thread
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


def _workspace_check(settings: AzureMLSettings, deadline: float) -> Check:
    from azure.core.rest import HttpRequest

    name = "azure_ml.workspace"
    scope = (
        f"/subscriptions/{settings.subscription_id}/resourceGroups/{settings.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{settings.workspace}"
    )
    try:
        client = eventgrid_client(settings, timeout=deadline + 1.0)  # (the deadline, naming the wait, comes first)
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


def _subscriptions_check(settings: Settings, deadline: float) -> Check:
    name = "eventgrid.subscriptions"
    if (off := section_off(settings.eventgrid)) is not None:
        return skip(name, f"eventgrid is {off}")
    if not settings.server.public_url:
        return warn(name, "server.public_url is not set: subscriptions cannot be checked", "set server.public_url")
    report = run_connect(settings, dry_run=True, deadline=deadline)
    if not report.ok:
        return fail(name, report.failures[0], "fix what the message names, then `handoff connect azure-ml`")
    pending = [s for s in report.steps if s.change != "keep"]
    if pending:
        listed = ", ".join(f"{s.change} {s.name}" for s in pending)
        return fail(name, f"not in place: {listed}", "run `handoff connect azure-ml --config …`")
    return ok(name, f"{len(report.steps)} event subscription(s) deliver to Handoff")


async def _within(name: str, check: Callable[[], Check], deadline: float, unanswered: str, fix: str) -> Check:
    """``check()`` on a thread of its own; a failure saying who did not answer after ``deadline`` seconds."""
    try:
        return await in_own_thread(check, deadline)
    except NoAnswer:
        return fail(name, f"{unanswered} did not answer within {deadline:g} s", fix)


async def check_azure_ml(settings: Settings, deadline: float = DEADLINE) -> AsyncIterator[Check]:
    """The Azure ML checks, each as it ends (skipped when the section is absent or disabled); each fails as
    unanswered after ``deadline`` seconds."""
    if (off := section_off(settings.azure_ml)) is not None:
        yield skip("azure_ml", off)
        return
    ml = settings.azure_ml
    assert ml is not None
    credential = await _within(
        "azure_ml.credential",
        partial(_credential_check, ml),
        deadline,
        f"the {ml.credential.kind} credential's token service",
        "check azure_ml.credential (and `az login` or the managed identity where Handoff runs)",
    )
    yield credential
    if credential.failed:
        yield skip("azure_ml (other checks)", "skipped: no token")
        return
    workspace = await _within(
        "azure_ml.workspace",
        partial(_workspace_check, ml, deadline),
        deadline,
        f"Azure Resource Manager (asked for workspace {ml.workspace})",
        "check the network to Azure (and azure_ml.endpoint, if set)",
    )
    yield workspace
    if workspace.failed:
        return
    yield await _within(
        "eventgrid.subscriptions",
        partial(_subscriptions_check, settings, deadline),
        deadline,
        "Azure Resource Manager (asked for the event subscriptions)",
        "check the network to Azure, then run `handoff connect azure-ml --config …`",
    )
