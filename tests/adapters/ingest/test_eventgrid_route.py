"""``POST|OPTIONS /hooks/eventgrid``: the delivery secret, both handshakes, batches, filters, answers."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from adapters.azure_ml.eventgrid_route import BODY_LIMIT
from adapters.sql import SqlStore
from bot.clock import FakeClock
from bot.events import DataArrived, ModelRegistered
from bot.ingest import Ingest as StoringIngest
from bot.stored_events import event_from_json
from tests.adapters.ingest.conftest import (
    ENVIRON,
    STORED_AT,
    Ingest,
    IngestFactory,
    RecordingSink,
    load_sample,
)

SECRET = ENVIRON["EG_SECRET"]
ADLS_ACCOUNT = "/subscriptions/s/resourceGroups/Storage/providers/Microsoft.Storage/storageAccounts/lake"


@pytest.fixture
def registered(shared_dir: Path) -> list[dict[str, Any]]:
    """A one-event Event Grid delivery from the SDK tests' workspace (jenns-canary)."""
    events = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    return [events[0]]


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event in CloudEvents 1.0."""
    cloud = {"specversion": "1.0", "source": event["topic"], "type": event["eventType"], "time": event["eventTime"]}
    return {**cloud, **{k: v for k, v in event.items() if k in ("id", "subject", "data")}}


def blob_event(api: str, path: str, *, account: str = "lake", filesystem: str = "raw", length: int = 10) -> Any:
    return {
        "topic": f"/subscriptions/s/resourceGroups/Storage/providers/Microsoft.Storage/storageAccounts/{account}",
        "subject": f"/blobServices/default/containers/{filesystem}/blobs/{path}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-03-01T10:00:00.1234567Z",
        "id": f"{api}-{account}-{filesystem}-{path}",
        "data": {
            "api": api,
            "contentLength": length,
            "blobType": "BlockBlob",
            "url": f"https://{account}.dfs.core.windows.net/{filesystem}/{path}",
        },
        "dataVersion": "2",
        "metadataVersion": "1",
    }


# --- the delivery secret -------------------------------------------------------------------------------


async def test_secret_in_query_string(ingest: Ingest, registered: Any) -> None:
    assert (await ingest.eventgrid(registered)).status == 200


async def test_secret_in_header(ingest: Ingest, registered: Any) -> None:
    reply = await ingest.eventgrid(registered, code=None, **{"X-Handoff-Secret": SECRET})
    assert reply.status == 200


async def test_configured_names_for_the_secret(make_ingest: IngestFactory, registered: Any) -> None:
    names = {"secret_query_parameter": "token", "secret_header": "X-Delivery-Key"}
    async with make_ingest(eventgrid=names) as ingest:
        assert (await ingest.eventgrid(registered, code=None, **{"x-delivery-key": SECRET})).status == 200
        assert (await ingest.post("/hooks/eventgrid", registered, params={"token": SECRET})).status == 200
        assert (await ingest.eventgrid(registered)).status == 401  # ?code= is not the configured name


@pytest.mark.parametrize(
    ("code", "headers"),
    [
        pytest.param(None, {}, id="missing"),
        pytest.param("wrong", {}, id="wrong query"),
        pytest.param(None, {"X-Handoff-Secret": "wrong"}, id="wrong header"),
        pytest.param("", {}, id="empty"),
        pytest.param(SECRET + "x", {}, id="longer"),
        pytest.param("ключ", {"X-Handoff-Secret": "ключ"}, id="non-ASCII"),
        pytest.param(None, {"Authorization": "Bearer abc"}, id="a bearer token is not the secret"),
    ],
)
async def test_missing_or_wrong_secret_is_401(
    ingest: Ingest, registered: Any, code: str | None, headers: dict[str, str]
) -> None:
    reply = await ingest.eventgrid(registered, code=code, **headers)
    assert reply.status == 401
    assert reply.json()["error"] == "unauthorized"
    assert ingest.sink.events == []


async def test_a_previous_secret_is_accepted_while_a_new_one_rolls_out(
    make_ingest: IngestFactory, registered: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rotating = {"delivery_secret": "${EG_NEW}", "previous_delivery_secrets": ["${EG_SECRET}", "${EG_OLDER}"]}
    environ = {**ENVIRON, "EG_NEW": "new-s3cret-value", "EG_OLDER": "older-s3cret"}
    with caplog.at_level(logging.INFO, logger="handoff.ingest"):
        async with make_ingest(eventgrid=rotating, environ=environ) as ingest:
            assert (await ingest.eventgrid(registered, code="new-s3cret-value")).status == 200
            assert not [r for r in caplog.records if "previous delivery secret" in r.getMessage()]
            assert (await ingest.eventgrid(registered, code=SECRET)).status == 200
            assert (await ingest.eventgrid(registered, code=None, **{"X-Handoff-Secret": "older-s3cret"})).status == 200
            assert (await ingest.eventgrid(registered, code="wrong")).status == 401
            assert len(ingest.sink.events) == 3 * len(registered)
    told = [r.getMessage() for r in caplog.records if "previous delivery secret" in r.getMessage()]
    assert told == [
        "event grid deliveries still carry a previous delivery secret: keep it in "
        "eventgrid.previous_delivery_secrets until every subscription has the new one"
    ]  # once, not per delivery
    assert SECRET not in caplog.text and "older-s3cret" not in caplog.text


async def test_one_right_value_is_enough(ingest: Ingest, registered: Any) -> None:
    assert (await ingest.eventgrid(registered, code="wrong", **{"X-Handoff-Secret": SECRET})).status == 200


# ``openssl rand -base64 32``, as docs/deploy.md says to make it: ``+``, ``/`` and ``=`` in it
BASE64_SECRET = "k3+Jq9/xZ1v+T0aB8cD5eF7gH2iJ4kL6mN8oP0qR1sU="


@asynccontextmanager
async def storing_with(
    make_ingest: IngestFactory, store_url: str, **options: Any
) -> AsyncIterator[tuple[Ingest, SqlStore]]:
    """Handoff's ingest routes storing into the store at ``store_url``, configured with ``options``."""
    store = await SqlStore.open(store_url)
    try:
        async with make_ingest(sink=StoringIngest(store, [], FakeClock(STORED_AT)), **options) as ingest:
            yield ingest, store
    finally:
        await store.close()


async def post_to(ingest: Ingest, query: str, body: Any) -> tuple[int, str]:
    """POST to ``/hooks/eventgrid?<query>``, the query sent exactly as written."""
    url = URL(f"{ingest.url}/hooks/eventgrid?{query}", encoded=True)
    headers = {"Content-Type": "application/json", "aeg-event-type": "Notification"}
    async with ingest.session.post(url, data=json.dumps(body), headers=headers) as resp:
        return resp.status, await resp.text()


async def test_a_secret_pasted_into_the_url_unencoded_is_the_secret(
    make_ingest: IngestFactory, store_url: str, registered: Any, shared_dir: Path
) -> None:
    """Decoding a query reads ``+`` as a space; Event Grid does not retry a 401, so a subscription made by hand
    with the secret as it is would fail its handshake and lose every event."""
    validation = load_sample(shared_dir, "eventgrid", "subscription-validation.eventgrid.json")
    other = {**registered[0], "id": "registered-again"}
    async with storing_with(make_ingest, store_url, environ={"EG_SECRET": BASE64_SECRET}) as (ingest, store):
        status, text = await post_to(ingest, f"code={BASE64_SECRET}", validation)
        assert (status, json.loads(text)) == (200, {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
        status, text = await post_to(ingest, f"code={BASE64_SECRET}", registered)
        assert (status, json.loads(text)) == (200, {"accepted": 1, "duplicates": 0, "ignored": 0})
        # URL-encoded, as `handoff connect` writes it
        assert (await ingest.eventgrid([other], code=BASE64_SECRET)).json()["accepted"] == 1
        # what a decoded "+" reads as is not the secret, in either form
        wrong = BASE64_SECRET.replace("+", "%20")
        assert (await post_to(ingest, f"code={wrong}", [{**other, "id": "x"}]))[0] == 401
        assert (await post_to(ingest, f"secret={BASE64_SECRET}", [{**other, "id": "x"}]))[0] == 401
        stored = await store.recent_events(10)
    assert sorted(e.dedupe_key.rpartition(":")[2] for e in stored) == sorted([registered[0]["id"], "registered-again"])


# --- handshakes ---------------------------------------------------------------------------------------


async def test_subscription_validation_handshake(ingest: Ingest, shared_dir: Path) -> None:
    body = load_sample(shared_dir, "eventgrid", "subscription-validation.eventgrid.json")
    reply = await ingest.eventgrid(body, **{"aeg-event-type": "SubscriptionValidation"})
    assert reply.status == 200  # 202 would not complete the handshake
    assert reply.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    # the handshake is not authentication: without the secret it is refused like any delivery
    assert (await ingest.eventgrid(body, code=None)).status == 401
    del body[0]["data"]["validationCode"]
    assert (await ingest.eventgrid(body)).status == 400


async def test_the_events_beside_a_handshake_are_stored_before_it_is_answered(
    ingest: Ingest, shared_dir: Path, registered: Any
) -> None:
    validation = load_sample(shared_dir, "eventgrid", "subscription-validation.eventgrid.json")
    reply = await ingest.eventgrid([*validation, *registered])
    assert (reply.status, reply.json()) == (200, {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    assert [e.event_id for e in ingest.sink.events] == [registered[0]["id"]]

    # answered 2xx only once stored: Event Grid delivers it again (the handshake with it) after a 503
    ingest.sink.fail_with = RuntimeError("store down")
    again = await ingest.eventgrid([*validation, {**registered[0], "id": "registered-2"}])
    assert again.status == 503 and again.headers["Retry-After"] == "5"


async def test_cloudevents_abuse_protection_handshake(ingest: Ingest) -> None:
    reply = await ingest.options(
        "/hooks/eventgrid", {"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "120"}
    )
    assert reply.status == 200
    assert reply.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert reply.headers["WebHook-Allowed-Rate"] == "120"
    assert set(reply.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}

    reply = await ingest.options("/hooks/eventgrid", {"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert reply.status == 200
    assert reply.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert "WebHook-Allowed-Rate" not in reply.headers  # none was requested

    reply = await ingest.options(
        "/hooks/eventgrid", {"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "lots"}
    )
    assert reply.headers["WebHook-Allowed-Rate"] == "*"


async def test_options_without_origin_and_with_a_bad_one(ingest: Ingest) -> None:
    reply = await ingest.options("/hooks/eventgrid", {})
    assert reply.status == 200 and "WebHook-Allowed-Origin" not in reply.headers
    reply = await ingest.options("/hooks/eventgrid", {"WebHook-Request-Origin": "ключ"})
    assert reply.status == 400


async def test_a_handshake_from_another_origin_than_event_grid_is_refused(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the header consents (the CloudEvents webhook spec); the 403 says so to a person trying the URL."""
    with caplog.at_level(logging.INFO, logger="handoff.ingest.eventgrid"):
        reply = await ingest.options(
            "/hooks/eventgrid", {"WebHook-Request-Origin": "sender.example.com", "WebHook-Request-Rate": "120"}
        )
    assert (reply.status, reply.json()) == (
        403,
        {"error": "origin_not_allowed", "message": "this origin may not deliver events here"},
    )
    assert "WebHook-Allowed-Origin" not in reply.headers and "WebHook-Allowed-Rate" not in reply.headers
    assert [r.getMessage() for r in caplog.records] == [
        "event grid webhook handshake from origin 'sender.example.com': refused, not in eventgrid.allowed_origins"
    ]
    # a host name is the same host name in any case, and is echoed as it came
    reply = await ingest.options("/hooks/eventgrid", {"WebHook-Request-Origin": "EventGrid.Azure.NET"})
    assert (reply.status, reply.headers["WebHook-Allowed-Origin"]) == (200, "EventGrid.Azure.NET")


async def test_the_origins_a_handshake_is_granted_to_are_configured(make_ingest: IngestFactory) -> None:
    async with make_ingest(eventgrid={"allowed_origins": ["eventgrid.azure.us"]}) as ingest:
        reply = await ingest.options("/hooks/eventgrid", {"WebHook-Request-Origin": "eventgrid.azure.us"})
        assert (reply.status, reply.headers["WebHook-Allowed-Origin"]) == (200, "eventgrid.azure.us")
        reply = await ingest.options("/hooks/eventgrid", {"WebHook-Request-Origin": "eventgrid.azure.net"})
        assert reply.status == 403 and "WebHook-Allowed-Origin" not in reply.headers
    async with make_ingest(eventgrid={"allowed_origins": ["*"]}) as ingest:
        reply = await ingest.options("/hooks/eventgrid", {"WebHook-Request-Origin": "sender.example.com"})
        assert (reply.status, reply.headers["WebHook-Allowed-Origin"]) == (200, "sender.example.com")


# --- batches and answers --------------------------------------------------------------------------------


async def test_batch_of_three_with_a_duplicate(ingest: Ingest, shared_dir: Path) -> None:
    events = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    batch = [events[0], events[1], copy.deepcopy(events[0])]
    reply = await ingest.eventgrid(batch)
    assert (reply.status, reply.json()) == (200, {"accepted": 2, "duplicates": 1, "ignored": 0})
    # the sink is asked for every event: deduplication is the core's
    assert [e.event_id for e in ingest.sink.events] == [events[0]["id"], events[1]["id"], events[0]["id"]]
    # all at once, so that they share the core's group commits
    assert ingest.sink.deliveries == [3]


async def test_a_retried_batch_reports_duplicates(ingest: Ingest, shared_dir: Path) -> None:
    batch = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    assert (await ingest.eventgrid(batch)).json() == {"accepted": 5, "duplicates": 0, "ignored": 0}
    assert (await ingest.eventgrid(batch)).json() == {"accepted": 0, "duplicates": 5, "ignored": 0}


async def test_sink_failure_is_503_with_retry_after(make_ingest: IngestFactory, registered: Any) -> None:
    async with make_ingest(sink=RecordingSink(fail_with=OSError("disk full"))) as ingest:
        reply = await ingest.eventgrid(registered)
    assert reply.status == 503  # never 400/401/403/413: Event Grid would drop the events
    assert reply.headers["Retry-After"] == "5"
    assert "disk" not in reply.text


async def test_oversized_body_is_413(ingest: Ingest, registered: Any) -> None:
    registered[0]["data"]["pad"] = "x" * BODY_LIMIT
    assert (await ingest.eventgrid(registered)).status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"{oops",
        b"",
        b"\xff",
        b"42",
        b'["not an event"]',
        b'[{"eventType": "Microsoft.Storage.BlobCreated"}]',  # no id
        b'[{"id": "1", "specversion": "1.0", "type": "t"}]',  # no source
        b'[{"id": "1", "eventType": "x", "eventTime": "yesterday"}]',
        b'[{"id": "1", "eventType": "x", "eventTime": "yesterday"}, 3]',  # no item of the batch is an event
        b'{"id": "1", "specversion": "1.0", "source": "s", "type": "t", "time": "soon"}',
    ],
)
async def test_malformed_body_is_400(ingest: Ingest, body: bytes) -> None:
    reply = await ingest.eventgrid(body)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_payload"


def _unreadable_time(good: dict[str, Any]) -> list[Any]:
    return [good, {**good, "id": "unreadable", "eventTime": "not-a-time"}]


def _unreadable_cloud_time(good: dict[str, Any]) -> list[Any]:
    return [as_cloud_event(good), {**as_cloud_event(good), "id": "unreadable", "time": "not-a-time"}]


def _without_id(good: dict[str, Any]) -> list[Any]:
    return [good, {k: v for k, v in good.items() if k != "id"}]


@pytest.mark.parametrize(
    ("batch", "warning"),
    [
        pytest.param(
            _unreadable_time,
            "event grid event [1] 'unreadable': ignored, not an event "
            "(not an Event Grid event: eventTime: not a date-time)",
            id="eventTime",
        ),
        pytest.param(
            _unreadable_cloud_time,
            "event grid event [1] 'unreadable': ignored, not an event (not a CloudEvent: time: not a date-time)",
            id="CloudEvents time",
        ),
        pytest.param(
            _without_id, "event grid event [1] without an id: ignored, not an event (id: missing)", id="no id"
        ),
    ],
)
async def test_an_unreadable_event_does_not_cost_the_batch(
    ingest: Ingest,
    registered: Any,
    caplog: pytest.LogCaptureFixture,
    batch: Callable[[dict[str, Any]], list[Any]],
    warning: str,
) -> None:
    reply = await ingest.eventgrid(batch(registered[0]))
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 1})
    assert [e.event_id for e in ingest.sink.events] == [registered[0]["id"]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [warning]
    assert "not-a-time" not in caplog.text  # the reason names the field, never the sender's value


async def test_a_batch_of_many_items_that_are_not_events_is_one_warning(
    ingest: Ingest, registered: Any, caplog: pytest.LogCaptureFixture
) -> None:
    incomplete = [{**registered[0], "id": f"broken-{n}", "subject": "", "data": {}} for n in range(3)]
    reply = await ingest.eventgrid([registered[0], *[{}] * 2000, *incomplete])
    assert reply.json() == {"accepted": 1, "duplicates": 0, "ignored": 2003}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    not_events, skipped = warnings
    assert not_events.startswith("event grid delivery: 2000 items ignored, not events: [1] without an id (")
    assert not_events.count("without an id") == 5 and not_events.endswith("; ...")
    assert skipped.startswith("event grid delivery: 3 items skipped, incomplete data: ")
    assert skipped.count("broken-") == 3 and not skipped.endswith("...")


async def test_an_incomplete_event_does_not_cost_the_batch(
    ingest: Ingest, registered: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broken = copy.deepcopy(registered[0])
    broken.update(id="broken", subject="")
    broken["data"] = {"modelTags": {}}
    reply = await ingest.eventgrid([broken, registered[0]])
    assert reply.json() == {"accepted": 1, "duplicates": 0, "ignored": 1}
    assert any("skipped (data.modelName, data.modelVersion: missing)" in r.getMessage() for r in caplog.records)


async def test_unknown_types_and_subscription_deletion_are_ignored(ingest: Ingest) -> None:
    body = [
        {"id": "1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "topic": "/x", "data": {}},
        {"id": "2", "eventType": "Microsoft.EventGrid.SubscriptionDeletedEvent", "topic": "/x", "data": {}},
        {"id": "3", "specversion": "1.0", "type": "Microsoft.Storage.BlobDeleted", "source": "/x", "data": {}},
    ]
    reply = await ingest.eventgrid(body, **{"aeg-event-type": "Notification"})
    assert reply.json() == {"accepted": 0, "duplicates": 0, "ignored": 3}


OTHER_WORKSPACE = "/subscriptions/s/resourceGroups/Jenns/providers/Microsoft.MachineLearningServices/workspaces/other"


@pytest.mark.parametrize(
    ("settings", "event", "why"),
    [
        pytest.param(
            {"eventgrid": {"allowed_topics": [ADLS_ACCOUNT]}},
            {"id": "m", "topic": OTHER_WORKSPACE, "eventType": "Microsoft.MachineLearningServices.ModelRegistered"},
            "topic not allowed",
            id="topic",
        ),
        pytest.param(
            {"workspace": True},
            {"id": "m", "topic": OTHER_WORKSPACE, "eventType": "Microsoft.MachineLearningServices.ModelRegistered"},
            "from another workspace",
            id="workspace",
        ),
        pytest.param(
            {}, blob_event("CreateFile", "sales/a.csv"), "blob api does not commit the file: 'CreateFile'", id="api"
        ),
        pytest.param(
            {"eventgrid": {"data_lake_paths": [{"storage_account": "lake", "filesystem": "raw", "path": "sales"}]}},
            blob_event("FlushWithClose", "hr/c.csv"),
            "path outside the watched data-lake paths: 'lake/raw/hr/c.csv'",
            id="path",
        ),
        pytest.param(
            {},
            {"id": "m", "topic": OTHER_WORKSPACE, "eventType": "Microsoft.MachineLearningServices.RunStarted"},
            "event type not taken",
            id="type",
        ),
    ],
)
async def test_the_delivery_line_says_why_an_event_was_ignored(
    make_ingest: IngestFactory, caplog: pytest.LogCaptureFixture, settings: dict[str, Any], event: Any, why: str
) -> None:
    caplog.set_level(logging.INFO, "handoff.ingest")
    async with make_ingest(**settings) as ingest:
        assert (await ingest.eventgrid([event])).json() == {"accepted": 0, "duplicates": 0, "ignored": 1}
    [line] = [r.getMessage() for r in caplog.records if r.name == "handoff.ingest.eventgrid"]
    assert line == f"event grid delivery of 1 event(s): {event['eventType']!r} {event['id']!r} ignored ({why})"


async def test_a_deleted_subscription_is_a_warning(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    subscription = f"{ADLS_ACCOUNT}/providers/Microsoft.EventGrid/eventSubscriptions/handoff-lake"
    deleted = {
        "id": "deleted-1",
        "topic": ADLS_ACCOUNT,
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionDeletedEvent",
        "eventTime": "2026-03-01T10:00:00Z",
        "data": {"eventSubscriptionId": subscription},
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    reply = await ingest.eventgrid([deleted], **{"aeg-event-type": "SubscriptionDeletion"})
    assert reply.json() == {"accepted": 0, "duplicates": 0, "ignored": 1}
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"event grid subscription {subscription!r} of topic {ADLS_ACCOUNT!r} was deleted: "
        "Handoff will stop receiving its events"
    ]


async def test_a_topic_with_a_trailing_slash_is_the_same_topic(ingest: Ingest, registered: Any) -> None:
    event = registered[0]
    topic = event["topic"]
    again = {**event, "id": "registered-again", "topic": topic + "/"}
    reply = await ingest.eventgrid([event, again, {**event, "topic": topic + "/"}])
    assert reply.json() == {"accepted": 2, "duplicates": 1, "ignored": 0}  # the same id from the same topic
    first, second, _ = ingest.sink.events
    assert second.scope == first.scope == topic
    # one card: the key of a topic without the slash is what it always was
    assert second.grouping_key == first.grouping_key == f"azure-ml:{topic.lower()}:model:sklearn_regression_model:3"


async def test_empty_array_is_fine(ingest: Ingest) -> None:
    assert (await ingest.eventgrid([])).json() == {"accepted": 0, "duplicates": 0, "ignored": 0}


async def test_one_line_per_delivery(ingest: Ingest, registered: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "handoff.ingest")
    await ingest.eventgrid(registered)
    lines = [r.getMessage() for r in caplog.records if r.name == "handoff.ingest.eventgrid"]
    assert lines == [
        "event grid delivery of 1 event(s): model_registered '3b73ee51-bbf4-480d-9112-cfc23b41bfdb' accepted"
    ]
    assert SECRET not in caplog.text


# --- what Handoff takes ---------------------------------------------------------------------------------


async def test_flush_with_close_is_accepted_create_file_is_not(ingest: Ingest) -> None:
    reply = await ingest.eventgrid(
        [
            blob_event("CreateFile", "sales/2026/03/01.parquet", length=0),
            blob_event("FlushWithClose", "sales/2026/03/01.parquet", length=2048),
            blob_event("CopyBlob", "sales/2026/03/02.parquet"),
            blob_event("PutBlob", "sales/2026/03/03.parquet"),
        ]
    )
    assert reply.json() == {"accepted": 2, "duplicates": 0, "ignored": 2}
    flushed, put = ingest.sink.events
    assert flushed == DataArrived(
        source="storage",
        event_id="FlushWithClose-lake-raw-sales/2026/03/01.parquet",
        occurred_at=flushed.occurred_at,
        scope=ADLS_ACCOUNT,
        text="New file raw/sales/2026/03/01.parquet (2048 bytes)",
        storage_account="lake",
        container="raw",
        path="sales/2026/03/01.parquet",
        size=2048,
        url="https://lake.dfs.core.windows.net/raw/sales/2026/03/01.parquet",
        web_url="https://portal.azure.com/#view/Microsoft_Azure_Storage/ContainerMenuBlade/~/overview"
        "/storageAccountId/%2Fsubscriptions%2Fs%2FresourceGroups%2FStorage%2Fproviders%2FMicrosoft.Storage"
        "%2FstorageAccounts%2Flake/path/raw",
    )
    assert isinstance(put, DataArrived) and put.path == "sales/2026/03/03.parquet"


async def test_only_watched_data_lake_paths(make_ingest: IngestFactory) -> None:
    paths = [
        {"storage_account": "Lake", "filesystem": "raw", "path": "sales"},
        {"storage_account": "other", "filesystem": "curated"},
    ]
    async with make_ingest(eventgrid={"data_lake_paths": paths}) as ingest:
        reply = await ingest.eventgrid(
            [
                blob_event("FlushWithClose", "sales/a.csv"),  # watched (account matched case-insensitively)
                blob_event("FlushWithClose", "sales"),  # the watched path itself
                blob_event("FlushWithClose", "salesforce/b.csv"),  # not inside "sales/"
                blob_event("FlushWithClose", "hr/c.csv"),
                blob_event("FlushWithClose", "sales/d.csv", filesystem="curated"),  # wrong filesystem
                blob_event("PutBlockList", "anything/e.csv", account="other", filesystem="curated"),
                blob_event("FlushWithClose", "sales/f.csv", account="elsewhere"),
            ]
        )
    assert reply.json() == {"accepted": 3, "duplicates": 0, "ignored": 4}
    assert [(e.storage_account, e.path) for e in ingest.sink.events if isinstance(e, DataArrived)] == [
        ("lake", "sales/a.csv"),
        ("lake", "sales"),
        ("other", "anything/e.csv"),
    ]


async def test_other_workspaces_are_ignored(make_ingest: IngestFactory, shared_dir: Path) -> None:
    """The configured workspace (``JENNS-canary`` in ``Jenns``) matches the SDK events' topic in any case."""
    batch = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    doc_sample = load_sample(shared_dir, "eventgrid", "ml-model-registered.cloudevents.json")
    async with make_ingest(workspace=True) as ingest:
        assert (await ingest.eventgrid(batch)).json() == {"accepted": 4, "duplicates": 0, "ignored": 1}
        assert (await ingest.eventgrid(doc_sample)).json() == {"accepted": 0, "duplicates": 0, "ignored": 1}
        # storage events do not come from a workspace: the workspace filter leaves them alone
        assert (await ingest.eventgrid([blob_event("PutBlob", "x.csv")])).json()["accepted"] == 1
    # the drift event came from driftDemoWS
    assert "DataDriftDetected" not in {type(e).__name__ for e in ingest.sink.events}


async def test_allowed_topics(make_ingest: IngestFactory, shared_dir: Path) -> None:
    batch = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    topic = batch[0]["topic"].upper() + "/"  # resource ids compare case-insensitively
    async with make_ingest(eventgrid={"allowed_topics": [topic]}) as ingest:
        assert (await ingest.eventgrid(batch)).json() == {"accepted": 4, "duplicates": 0, "ignored": 1}
        assert (await ingest.eventgrid([blob_event("PutBlob", "x.csv")])).json()["ignored"] == 1


async def test_cloud_event_source_is_the_scope(ingest: Ingest, registered: Any) -> None:
    event = registered[0]
    cloud = {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "data": event["data"],
    }
    reply = await ingest.eventgrid(json.dumps(cloud), content_type="application/cloudevents+json; charset=utf-8")
    assert reply.status == 200
    [parsed] = ingest.sink.events
    assert isinstance(parsed, ModelRegistered)
    assert (parsed.scope, parsed.event_id, parsed.model_version) == (event["topic"], event["id"], "3")


@pytest.mark.parametrize(
    ("time", "instant"),
    [
        ("2026-03-01T10:00:00+02:00", datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
        ("2026-03-01T10:00:00-05:00", datetime(2026, 3, 1, 15, 0, tzinfo=UTC)),
        ("2026-03-01T10:00:00.1234567+10:30", datetime(2026, 2, 28, 23, 30, 0, 123456, tzinfo=UTC)),
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ],
)
async def test_an_event_time_with_an_offset_is_that_instant_in_either_schema(
    make_ingest: IngestFactory, store_url: str, registered: Any, time: str, instant: datetime
) -> None:
    grid = {**registered[0], "id": "in-grid-schema", "eventTime": time}
    cloud = {**as_cloud_event(registered[0]), "id": "in-cloud-events", "time": time}
    async with storing_with(make_ingest, store_url) as (ingest, store):
        reply = await ingest.eventgrid([grid, cloud])
        assert (reply.status, reply.json()) == (200, {"accepted": 2, "duplicates": 0, "ignored": 0})
        stored = {e.dedupe_key.rpartition(":")[2]: event_from_json(e.payload) for e in await store.recent_events(10)}
    assert {key: event.occurred_at if event else None for key, event in stored.items()} == {
        "in-grid-schema": instant,
        "in-cloud-events": instant,
    }


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_an_event_time_that_is_no_instant_is_an_unreadable_event_in_either_schema(
    ingest: Ingest, registered: Any, time: str
) -> None:
    """Past year 1 or 9999 in UTC: set aside, as any unreadable event is, whichever schema it came in."""
    grid = {**registered[0], "id": "in-grid-schema", "eventTime": time}
    cloud = {**as_cloud_event(registered[0]), "id": "in-cloud-events", "time": time}
    reply = await ingest.eventgrid([grid, cloud, registered[0]])
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 2})
    assert [e.event_id for e in ingest.sink.events] == [registered[0]["id"]]


async def test_model_name_and_version_from_the_subject(ingest: Ingest, registered: Any) -> None:
    registered[0]["data"] = {}
    await ingest.eventgrid(registered)
    [event] = ingest.sink.events
    assert isinstance(event, ModelRegistered)
    assert (event.model_name, event.model_version) == ("sklearn_regression_model", "3")


async def test_metrics_count_each_event_by_outcome(ingest: Ingest, registered: Any) -> None:
    event = registered[0]
    other = {**event, "id": "other", "eventType": "Microsoft.Storage.BlobDeleted"}
    reply = await ingest.eventgrid([event, event, other])
    assert reply.json() == {"accepted": 1, "duplicates": 1, "ignored": 1}
    async with ingest.session.get(f"{ingest.url}/metrics") as resp:
        text = await resp.text()
    for outcome in ("accepted", "duplicate", "ignored"):
        assert f'handoff_hook_events_total{{outcome="{outcome}",source="eventgrid"}} 1.0' in text
