"""Service hooks from the Azure DevOps emulator: documented payloads, retries, and the Service Hooks API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.service_hooks.models import Subscription as HookSubscription
from msrest.authentication import BasicAuthentication

from adapters.azure_devops.approvals_client import PipelineApprovalsClient
from adapters.emulators.azure_devops import EVENT_TYPES, AzureDevOpsEmulator, RetrySchedule
from adapters.emulators.azure_devops.events import BUILD_COMPLETE, GIT_PUSH, RUN_STATE_CHANGED
from adapters.emulators.fake_server import FakeHTTPServer
from bot.clock import FakeClock, SystemClock

T = TypeVar("T")
PROJECT = "mlops"

#: The documented keys of build.complete with resourceVersion 2.0 (reference/azure-devops.md §1.2).
BUILD_V2_KEYS = {
    "id",
    "buildNumber",
    "status",
    "result",
    "queueTime",
    "startTime",
    "finishTime",
    "url",
    "definition",
    "project",
    "sourceBranch",
    "sourceVersion",
    "requestedFor",
    "requestedBy",
    "reason",
    "_links",
}


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def connect(ado: AzureDevOpsEmulator, who: str) -> Connection:
    return Connection(base_url=ado.org_url, creds=BasicAuthentication("", ado.pat(who)))


def fast_world(**durations: float) -> dict[str, Any]:
    """The default world with every stage taking a few milliseconds (for the real clock)."""
    from adapters.emulators.azure_devops import load_default_world

    world = load_default_world()
    for pipeline in world["pipelines"]:
        for stage in pipeline["stages"]:
            stage["duration"] = durations.get(stage["name"], 0.005)
    return world


@pytest.fixture
async def fast_ado() -> AsyncIterator[AzureDevOpsEmulator]:
    """Real clock, tiny stage durations, a short retry schedule."""
    ado = AzureDevOpsEmulator(fast_world(), clock=SystemClock(), retry_schedule=RetrySchedule.fast())
    async with ado:
        yield ado


def missing_keys(payload: Any, sample: Any, path: str = "$") -> list[str]:
    """Keys of ``sample`` (recursively, for dicts) that ``payload`` lacks."""
    if not isinstance(sample, dict):
        return []
    if not isinstance(payload, dict):
        return [f"{path} (not an object)"]
    out = []
    for key, value in sample.items():
        if key not in payload:
            out.append(f"{path}.{key}")
        else:
            out.extend(missing_keys(payload[key], value, f"{path}.{key}"))
    return out


async def test_every_emitted_payload_has_the_documented_sample_keys(
    fast_ado: AzureDevOpsEmulator, fake_http_server: FakeHTTPServer, shared_dir: Path
) -> None:
    ado = fast_ado
    fake_http_server.respond("POST /all", status=200)
    fake_http_server.respond("POST /legacy", status=200)
    ado.add_webhook(f"{fake_http_server.url}/all", EVENT_TYPES)
    ado.add_webhook(f"{fake_http_server.url}/legacy", [BUILD_COMPLETE], resource_version="1.0")

    run = ado.start_run(
        "release-app-y", requested_by="alice@contoso.com", parameters={"modelName": "model-x", "modelVersion": "7"}
    )
    approval = await ado.wait_for_approval(run.id)
    carol: PipelineApprovalsClient = await call(
        connect(ado, "carol@contoso.com").get_client, "adapters.azure_devops.approvals_client.PipelineApprovalsClient"
    )
    await call(carol.approve, PROJECT, approval.id, "ok")
    await ado.wait_for_run(run.id)
    ado.push("model-x", "main", ["Retrain on January data"], pushed_by="alice@contoso.com")
    ado.add_release_approval("carol@contoso.com")
    releases = await call(connect(ado, "carol@contoso.com").clients_v7_1.get_release_client)
    from azure.devops.v7_1.release.models import ReleaseApproval

    await call(releases.update_release_approval, ReleaseApproval(status="approved", comments="ok"), PROJECT, 8)
    await ado.drain()

    received = [r.json() for r in fake_http_server.recorder.matching("POST /all")]
    assert {b["eventType"] for b in received} == set(EVENT_TYPES)
    samples = shared_dir / "samples" / "ado"
    checked = set()
    for body in received:
        sample = json.loads((samples / f"{body['eventType']}.json").read_text())
        if body["eventType"] == BUILD_COMPLETE:  # 2.0 is the modern Build object, not the 1.0 sample
            assert set(body["resource"]) >= BUILD_V2_KEYS, body["resource"].keys()
            sample = {k: v for k, v in sample.items() if k != "resource"}
        assert missing_keys(body, sample) == [], body["eventType"]
        assert {"subscriptionId", "notificationId"} <= set(body)
        checked.add(body["eventType"])
    legacy = [r.json() for r in fake_http_server.recorder.matching("POST /legacy")]
    assert [b["resourceVersion"] for b in legacy] == ["1.0"]
    assert missing_keys(legacy[0], json.loads((samples / "build.complete.json").read_text())) == []
    assert legacy[0]["resource"]["status"] == "succeeded"
    assert checked == set(EVENT_TYPES)

    # one event, two subscriptions: same event id, each its own subscriptionId and notificationId
    first_build = next(b for b in received if b["eventType"] == BUILD_COMPLETE)
    assert legacy[0]["id"] == first_build["id"] and legacy[0]["subscriptionId"] != first_build["subscriptionId"]


async def test_transient_failures_are_retried_in_order(
    fast_ado: AzureDevOpsEmulator, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /h", status=200)
    fake_http_server.faults.add("POST /h", ["503", "502", "reset"])
    sub = fast_ado.add_webhook(f"{fake_http_server.url}/h", [RUN_STATE_CHANGED])
    run = fast_ado.start_run("train-model-x")
    await fast_ado.wait_for_run(run.id)
    deliveries = await fast_ado.drain()
    assert [(d.notification_id, d.result, len(d.attempts)) for d in deliveries] == [
        (1, "succeeded", 4),
        (2, "succeeded", 1),
    ]
    assert [a.status for a in deliveries[0].attempts] == [503, 502, None, 200]
    received = fake_http_server.recorder.matching("POST /h")
    states = [r.json()["resource"]["run"]["state"] for r in received]
    assert states == ["inProgress"] * 4 + ["completed"]  # retries of one notification, then the next
    assert {r.json()["notificationId"] for r in received[:4]} == {1}
    assert sub.status == "enabled"


async def test_enduring_failure_puts_the_subscription_on_probation_then_disables_it(
    fast_ado: AzureDevOpsEmulator, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /h", status=500)
    sub = fast_ado.add_webhook(f"{fake_http_server.url}/h", [GIT_PUSH])
    fast_ado.push("app-y", "feature/x", ["wip"])
    deliveries = await fast_ado.drain()
    assert sub.status == "disabledBySystem" and deliveries[0].result == "failed"
    assert len(deliveries[0].attempts) == 1 + len(RetrySchedule.fast().probation)  # 500 is not retried at once
    fast_ado.push("app-y", "feature/x", ["more wip"])
    await fast_ado.drain()
    assert len(fake_http_server.recorder.matching("POST /h")) == 3  # a disabled subscription gets nothing


async def test_probation_ends_with_one_success(fake_http_server: FakeHTTPServer, clock: FakeClock) -> None:
    schedule = RetrySchedule(transient=(1.0,), probation=(1200.0, 2400.0))
    async with AzureDevOpsEmulator(clock=clock, retry_schedule=schedule) as ado:
        fake_http_server.respond("POST /h", status=404)
        fake_http_server.respond("POST /h", status=200)
        sub = ado.add_webhook(f"{fake_http_server.url}/h", [GIT_PUSH])
        ado.push("app-y", "main", ["x"], trigger=False)
        await fake_http_server.recorder.wait_for("POST /h", 1)
        await ado.wait_until(lambda: sub.status == "onProbation")
        await clock.advance(1200)
        await ado.drain()
        assert sub.status == "enabled" and sub.probation_retries == 0
        assert [r.status for r in fake_http_server.recorder.matching("POST /h")] == [404, 200]


async def test_410_gone_disables_the_subscription_at_once(
    fast_ado: AzureDevOpsEmulator, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /h", status=410)
    sub = fast_ado.add_webhook(f"{fake_http_server.url}/h", [GIT_PUSH])
    fast_ado.push("app-y", "main", ["x"], trigger=False)
    await fast_ado.drain()
    assert sub.status == "disabledBySystem"
    assert len(fake_http_server.recorder.matching("POST /h")) == 1


def test_webhooks_only_go_to_loopback() -> None:
    ado = AzureDevOpsEmulator()
    with pytest.raises(ValueError, match="loopback"):
        ado.add_webhook("https://hooks.example.com/ado")


async def test_service_hooks_api_creates_filtered_subscriptions(
    fast_ado: AzureDevOpsEmulator, fake_http_server: FakeHTTPServer
) -> None:
    ado = fast_ado
    fake_http_server.respond("POST /hooks/azure-devops", status=200)
    hooks = connect(ado, "handoff-bot@contoso.com").clients_v7_1.get_service_hooks_client()
    created = await call(
        hooks.create_subscription,
        HookSubscription(
            publisher_id="pipelines",
            event_type=RUN_STATE_CHANGED,
            resource_version="5.1-preview.1",
            consumer_id="webHooks",
            consumer_action_id="httpRequest",
            publisher_inputs={"projectId": ado.world.project_id, "pipelineId": "2"},
            consumer_inputs={"url": f"{fake_http_server.url}/hooks/azure-devops", "httpHeaders": "X-Bot-Token: abc"},
        ),
    )
    assert (created.status, created.event_type, created.consumer_inputs["httpHeaders"]) == (
        "enabled",
        RUN_STATE_CHANGED,
        "X-Bot-Token:********",
    )
    assert [s.id for s in await call(hooks.list_subscriptions)] == [created.id]

    other = ado.start_run("train-model-x")  # filtered out: pipelineId 1
    wanted = ado.start_run("integrate-app-y")
    await ado.wait_for_run(other.id)
    await ado.wait_for_run(wanted.id)
    await ado.drain()
    received = fake_http_server.recorder.matching("POST /hooks/azure-devops")
    assert {r.json()["resource"]["run"]["id"] for r in received} == {wanted.id}
    assert all(r.headers["X-Bot-Token"] == "abc" for r in received)
    notifications = await call(hooks.get_notifications, created.id)
    assert [(n.id, n.result) for n in notifications] == [(2, "succeeded"), (1, "succeeded")]

    await call(hooks.delete_subscription, created.id)
    assert await call(hooks.list_subscriptions) == []
    with pytest.raises(AzureDevOpsServiceError):
        await call(hooks.get_subscription, created.id)
    with pytest.raises(AzureDevOpsServiceError, match="loopback"):
        await call(
            hooks.create_subscription,
            HookSubscription(
                publisher_id="tfs",
                event_type=GIT_PUSH,
                consumer_id="webHooks",
                consumer_action_id="httpRequest",
                consumer_inputs={"url": "https://example.com/hook"},
            ),
        )
