"""Event Grid deliveries of the Azure ML emulator: handshakes, schemas, batches, secrets, retries, samples."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.emulators.azure_ml import (
    BLOB_CREATED,
    DATASET_DRIFT_DETECTED,
    MODEL_DEPLOYED,
    MODEL_REGISTERED,
    RUN_COMPLETED,
    RUN_STATUS_CHANGED,
    AzureMLEmulator,
    SubscriptionValidationError,
    load_default_world,
)
from adapters.emulators.fake_server import FakeHTTPServer
from bot.clock import FakeClock

CE = "CloudEventSchemaV1_0"
ORIGIN = "eventgrid.azure.net"


class EventGridReceiver(FakeHTTPServer):
    """A scripted fake webhook that also completes the Event Grid schema handshake, as a real one must."""

    async def _answer(self, request: web.Request) -> web.Response:
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            event = (await request.json())[0]
            return web.json_response({"validationResponse": event["data"]["validationCode"]})
        return await super()._answer(request)


@pytest.fixture
async def receiver() -> AsyncIterator[EventGridReceiver]:
    async with EventGridReceiver() as server:
        server.respond("POST /hook", status=200)
        server.respond("OPTIONS /hook", status=200, headers={"WebHook-Allowed-Origin": ORIGIN, "Allow": "POST"})
        yield server


def deliveries(server: FakeHTTPServer) -> list[Any]:
    return [r for r in server.recorder.matching("POST /hook") if r.headers.get("aeg-event-type") == "Notification"]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_event_grid_schema_handshake_then_single_deliveries_with_query_secret(
    aml: AzureMLEmulator, receiver: EventGridReceiver
) -> None:
    sub = await aml.add_event_subscription(f"{receiver.url}/hook", secret_query=("code", "s3cret"), name="handoff-ml")
    aml.register_model("model-x", tags={"team": "ds"})
    aml.land_blob("raw/customers/2026-01-01.csv", 2048, content_type="text/csv")
    await aml.drain_events()

    handshake = receiver.recorder.matching("POST /hook")[0]
    assert sub.state == "Succeeded"
    assert handshake.headers["aeg-event-type"] == "SubscriptionValidation"
    assert handshake.query == {"code": "s3cret"}
    assert handshake.json()[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    sent = deliveries(receiver)
    assert len(sent) == 2
    for request in sent:
        assert request.query == {"code": "s3cret"}
        assert request.headers["Content-Type"] == "application/json; charset=utf-8"
        assert request.headers["aeg-subscription-name"] == "HANDOFF-ML"
        assert request.headers["aeg-delivery-count"] == "0"
        assert request.headers["aeg-metadata-version"] == "1"
        body = request.json()
        assert isinstance(body, list) and len(body) == 1
        assert request.headers["aeg-output-event-id"] == body[0]["id"]
        assert request.headers["aeg-data-version"] == body[0]["dataVersion"]
    registered, landed = (r.json()[0] for r in sent)
    assert registered["eventType"] == MODEL_REGISTERED
    assert registered["subject"] == "models/model-x:8"
    assert registered["topic"] == aml.workspace_topic
    assert registered["data"] == {
        "modelName": "model-x",
        "modelVersion": "8",
        "modelTags": {"team": "ds"},
        "modelProperties": {},
    }
    assert landed["eventType"] == BLOB_CREATED
    assert landed["topic"] == aml.storage_topic
    assert landed["subject"] == "/blobServices/default/containers/lake/blobs/raw/customers/2026-01-01.csv"
    assert landed["data"]["api"] == "FlushWithClose"
    assert landed["data"]["contentLength"] == 2048
    assert landed["data"]["url"] == "https://stmlopslake.dfs.storage.emulator.test/lake/raw/customers/2026-01-01.csv"


async def test_cloud_events_handshake_then_batched_deliveries_with_header_secret(
    aml: AzureMLEmulator, receiver: EventGridReceiver
) -> None:
    await aml.add_event_subscription(
        f"{receiver.url}/hook",
        schema=CE,
        secret_header=("x-handoff-secret", "s3cret"),
        max_events_per_batch=10,
        event_types=[BLOB_CREATED],
    )
    for day in range(1, 4):
        aml.land_blob(f"raw/customers/2026-01-0{day}.csv", 100 * day)
    aml.register_model("model-x")  # filtered out by event_types
    await aml.drain_events()

    options = receiver.recorder.matching("OPTIONS /hook")[0]
    assert options.headers["WebHook-Request-Origin"] == ORIGIN
    [batch] = deliveries(receiver)
    assert batch.headers["x-handoff-secret"] == "s3cret"
    assert batch.headers["Origin"] == ORIGIN
    assert batch.headers["aeg-metadata-version"] == "1.0"
    assert batch.headers["Content-Type"].startswith("application/cloudevents-batch+json")
    events = batch.json()
    assert [e["data"]["contentLength"] for e in events] == [100, 200, 300]
    assert all(e["specversion"] == "1.0" and e["type"] == BLOB_CREATED for e in events)
    assert [e["data"]["sequencer"] for e in events] == sorted(e["data"]["sequencer"] for e in events)


async def test_unbatched_cloud_events_are_single_objects(aml: AzureMLEmulator, receiver: EventGridReceiver) -> None:
    await aml.add_event_subscription(f"{receiver.url}/hook", schema=CE, subject_begins_with="models/model-x")
    aml.register_model("model-x")
    aml.register_model("model-y")
    aml.deploy_model("model-x-prod", "model-x:7")
    await aml.drain_events()

    [single] = deliveries(receiver)
    assert single.headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"
    body = single.json()
    assert isinstance(body, dict)
    assert (body["type"], body["subject"], body["source"]) == (
        MODEL_REGISTERED,
        "models/model-x:8",
        aml.workspace_topic,
    )


async def test_failed_handshakes_raise(aml: AzureMLEmulator, fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.respond("POST /eg", status=400)  # Event Grid treats any non-200 as a failed handshake
    fake_http_server.respond("OPTIONS /ce", status=200)  # no WebHook-Allowed-Origin
    with pytest.raises(SubscriptionValidationError) as raised:
        await aml.add_event_subscription(f"{fake_http_server.url}/eg?code=s3cret")
    assert "s3cret" not in str(raised.value) and "s3cret" not in repr(aml.dispatcher.subscriptions)
    with pytest.raises(SubscriptionValidationError):
        await aml.add_event_subscription(f"{fake_http_server.url}/ce", schema=CE)
    aml.register_model("model-x")
    await aml.drain_events()
    assert [s.state for s in aml.dispatcher.subscriptions.values()] == ["Failed", "Failed"]
    assert fake_http_server.recorder.matching("POST /ce") == []


async def test_manual_validation_through_the_validation_url(
    aml: AzureMLEmulator, fake_http_server: FakeHTTPServer
) -> None:
    fake_http_server.respond("POST /hook", status=200)  # 200 without validationResponse
    sub = await aml.add_event_subscription(f"{fake_http_server.url}/hook")
    assert sub.state == "AwaitingManualAction"
    aml.register_model("model-x")  # not delivered: the subscription is not active yet
    validation_url = fake_http_server.recorder.requests[0].json()[0]["data"]["validationUrl"]
    async with aiohttp.ClientSession() as session, session.get(validation_url) as resp:
        assert resp.status == 200
    assert sub.state == "Succeeded"
    aml.register_model("model-x")
    await aml.drain_events()
    [delivered] = deliveries(fake_http_server)
    assert delivered.json()[0]["subject"] == "models/model-x:9"


async def test_retries_follow_the_schedule_then_dead_letter(
    aml: AzureMLEmulator, receiver: EventGridReceiver, clock: FakeClock
) -> None:
    sub = await aml.add_event_subscription(f"{receiver.url}/hook", retry_schedule=[10, 30])
    receiver.faults.add("POST /hook", ["503", "reset"])
    event = aml.detect_drift("customers-drift", 0.91)
    await receiver.recorder.wait_for("POST /hook", 2)  # handshake + first attempt (503)
    await until(lambda: clock.sleepers == 1)
    await clock.advance(9)
    assert len(receiver.recorder.matching("POST /hook")) == 2
    await clock.advance(1)
    await until(lambda: len(sub.attempts) == 2)  # the reset
    await until(lambda: clock.sleepers == 1)
    await clock.advance(30)
    await aml.drain_events()

    assert [(a.delivery_count, a.status, a.outcome) for a in sub.attempts] == [
        (0, 503, "Busy"),
        (1, None, "GenericError"),
        (2, 200, "Success"),
    ]
    assert [r.headers["aeg-delivery-count"] for r in deliveries(receiver)] == ["0", "1", "2"]
    assert [e.id for e in sub.delivered] == [event.id]

    receiver.faults.add("POST /hook", ["500", "500", "500"])
    lost = aml.land_blob("raw/customers/late.csv", 10)
    for _ in range(2):
        await until(lambda: clock.sleepers == 1)
        await clock.advance(30)
    await aml.drain_events()
    [dead] = sub.dead_letters
    assert (dead["id"], dead["deadLetterReason"], dead["deliveryAttempts"]) == (
        lost.id,
        "MaxDeliveryAttemptsExceeded",
        3,
    )


async def test_no_retry_for_400_401_403_413(aml: AzureMLEmulator, receiver: EventGridReceiver) -> None:
    subs = {}
    for status in (400, 401, 403, 413):
        receiver.respond(f"POST /s{status}", status=status)
        subs[status] = await aml.add_event_subscription(f"{receiver.url}/s{status}", event_types=[MODEL_REGISTERED])
    aml.register_model("model-x")
    await aml.drain_events()
    outcomes = {status: [(a.status, a.outcome) for a in sub.attempts] for status, sub in subs.items()}
    assert outcomes == {
        400: [(400, "BadRequest")],
        401: [(401, "Unauthorized")],
        403: [(403, "Forbidden")],
        413: [(413, "PayloadTooLarge")],
    }
    assert all(len(sub.dead_letters) == 1 for sub in subs.values())


# -- every emitted payload carries the keys of the documented sample ------------------------------

SAMPLES = "eventgrid"
# user-defined maps: their keys are the publisher's data, not the schema's
FREE_FORM = {"modeltags", "modelproperties", "servicetags", "serviceproperties", "runtags", "runproperties"}


def sample(shared_dir: Path, name: str) -> Any:
    return json.loads((shared_dir / "samples" / SAMPLES / name).read_text())


def missing_keys(sample_value: Any, emitted: Any, path: str = "", fold: bool = False) -> list[str]:
    """Keys of ``sample_value`` (recursively for dicts, except free-form maps) that ``emitted`` lacks."""
    if not isinstance(sample_value, dict):
        return []
    if not isinstance(emitted, dict):
        return [path or "<root>"]
    have = {(k.lower() if fold else k): v for k, v in emitted.items()}
    missing = []
    for key, value in sample_value.items():
        found = have.get(key.lower() if fold else key, ...)
        if found is ...:
            missing.append(f"{path}.{key}")
        elif key.lower() not in FREE_FORM:
            missing += missing_keys(value, found, f"{path}.{key}", fold)
    return missing


def emit_all(aml: AzureMLEmulator) -> None:
    aml.register_model("model-x", tags={"area": "churn"}, properties={"auc": "0.93"})
    aml.deploy_model("model-x-prod", ["model-x:7", "model-x:8"], tags={"env": "prod"})
    aml.script_next_job(duration=0.01, queued_after=0, running_after=0)
    aml.submit_job("run-ok", {"jobType": "Command", "experimentName": "churn", "tags": {"model": "model-x"}})
    aml.script_next_job(fail=True, duration=0.01, queued_after=0, running_after=0)
    aml.submit_job("run-bad", {"jobType": "Command", "experimentName": "churn"})
    aml.detect_drift("customers-drift", 0.83)
    aml.land_blob("raw/customers/a.csv", 512, content_type="text/plain")
    aml.land_blob("raw/customers/b.csv", 1024, api="PutBlockList", content_type="text/plain")


async def emitted_bodies(aml: AzureMLEmulator, receiver: EventGridReceiver, clock: FakeClock, schema: Any) -> Any:
    await aml.add_event_subscription(f"{receiver.url}/hook", schema=schema)
    emit_all(aml)
    await until(lambda: clock.sleepers >= 2)  # both jobs are waiting on the clock
    await clock.advance(1)
    await until(lambda: len(aml.published) == 7)
    await aml.drain_events()
    bodies = [r.json() for r in deliveries(receiver)]
    return bodies


def by_type(bodies: list[Any], key: str) -> dict[tuple[str, str], Any]:
    found = {}
    for body in bodies:
        event = body[0] if isinstance(body, list) else body
        found[(event[key], event["data"].get("api", ""))] = event
    return found


@pytest.mark.parametrize(
    ("schema", "suffix", "key"), [("EventGridSchema", "eventgrid", "eventType"), (CE, "cloudevents", "type")]
)
async def test_doc_casing_payloads_carry_the_keys_of_the_doc_samples(
    clock: FakeClock, receiver: EventGridReceiver, shared_dir: Path, schema: str, suffix: str, key: str
) -> None:
    world = load_default_world()
    world["azure_ml"]["event_data_casing"] = "doc"
    async with AzureMLEmulator(world, clock=clock) as aml:
        found = by_type(await emitted_bodies(aml, receiver, clock, schema), key)
    expected = {
        (MODEL_REGISTERED, ""): "ml-model-registered",
        (MODEL_DEPLOYED, ""): "ml-model-deployed",
        (RUN_COMPLETED, ""): "ml-run-completed",
        (RUN_STATUS_CHANGED, ""): "ml-run-status-changed",
        (DATASET_DRIFT_DETECTED, ""): "ml-dataset-drift-detected",
        (BLOB_CREATED, "FlushWithClose"): "storage-blob-created-adlsgen2",
        (BLOB_CREATED, "PutBlockList"): "storage-blob-created",
    }
    assert set(found) == set(expected)
    for kind, stem in expected.items():
        [documented] = sample(shared_dir, f"{stem}.{suffix}.json")
        assert missing_keys(documented, found[kind]) == [], stem
    assert isinstance(found[(MODEL_REGISTERED, "")]["data"]["ModelVersion"], int)
    assert found[(RUN_STATUS_CHANGED, "")]["data"]["runStatus"] == "failed"


async def test_spec_casing_payloads_carry_the_keys_of_the_sdk_samples(
    aml: AzureMLEmulator, receiver: EventGridReceiver, clock: FakeClock, shared_dir: Path
) -> None:
    found = by_type(await emitted_bodies(aml, receiver, clock, "EventGridSchema"), "eventType")
    # the SDK test payloads carry two quirks (RunTags in RunCompleted, a typo key in the drift event):
    # compare case-folded and skip the typo
    for documented in sample(shared_dir, "ml-events.sdk-tests-camelcase.eventgrid.json"):
        documented["data"].pop("tarAsSystemEventDatasetId", None)
        emitted = found[(documented["eventType"], "")]
        assert missing_keys(documented, emitted, fold=True) == [], documented["eventType"]
        assert emitted["dataVersion"] == documented["dataVersion"] == "2"
    assert found[(MODEL_REGISTERED, "")]["data"]["modelVersion"] == "8"
    assert "targetDatasetId" in found[(DATASET_DRIFT_DETECTED, "")]["data"]


async def test_handshake_single_cloud_event_and_dead_letter_match_their_samples(
    aml: AzureMLEmulator, receiver: EventGridReceiver, clock: FakeClock, shared_dir: Path
) -> None:
    eg = await aml.add_event_subscription(f"{receiver.url}/hook", retry_schedule=[], name="eg")
    receiver.respond("OPTIONS /ce", status=200, headers={"WebHook-Allowed-Origin": "*"})
    receiver.respond("POST /ce", status=202)
    await aml.add_event_subscription(f"{receiver.url}/ce", schema=CE, name="ce", event_types=[BLOB_CREATED])
    [validation] = receiver.recorder.matching("POST /hook")[0].json()
    receiver.faults.add("POST /hook", ["500"])
    aml.land_blob("raw/customers/c.csv", 1, api="PutBlockList")
    await aml.drain_events()

    assert missing_keys(sample(shared_dir, "subscription-validation.eventgrid.json")[0], validation) == []
    single = receiver.recorder.matching("POST /ce")[0].json()
    assert missing_keys(sample(shared_dir, "storage-blob-created.cloudevents-single.json"), single) == []
    assert missing_keys(sample(shared_dir, "storage-blob-created.deadletter.eventgrid.json"), eg.dead_letters[0]) == []


async def test_create_file_then_flush_with_close(aml: AzureMLEmulator, receiver: EventGridReceiver) -> None:
    await aml.add_event_subscription(f"{receiver.url}/hook", max_events_per_batch=5)
    aml.land_blob("raw/customers/d.parquet", 4096, with_create_file=True)
    await aml.drain_events()
    [batch] = deliveries(receiver)
    assert [(e["data"]["api"], e["data"]["contentLength"]) for e in batch.json()] == [
        ("CreateFile", 0),
        ("FlushWithClose", 4096),
    ]
    assert aml.state.blobs[("stmlopslake", "lake", "raw/customers/d.parquet")].data == bytes(4096)
