"""Values JSON allows but no text or number holds: half a UTF-16 surrogate pair, an integer hundreds of digits
long. The event is stored (U+FFFD standing for the half pair) or, where the value was needed, ignored alone;
never a 503 for the whole delivery, which the sender would retry, with the same answer, for a day."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from adapters.sql import SqlStore
from tests.adapters.ingest.conftest import Ingest, load_sample

HALF_PAIR = "x\ud800y"  # json.dumps writes it as the escape "x\\ud800y"


def _registered(shared_dir: Path) -> dict[str, Any]:
    events = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    return dict(next(e for e in events if e["eventType"].endswith("ModelRegistered")))


@pytest.mark.parametrize("where", ["modelName", "id"])
async def test_half_a_surrogate_pair_in_an_event_grid_event(
    storing: tuple[Ingest, SqlStore], shared_dir: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    ingest, store = storing
    good = _registered(shared_dir)
    odd = json.loads(json.dumps(good))
    odd["id"] = HALF_PAIR if where == "id" else "odd-one"
    odd["data"]["modelName"] = HALF_PAIR if where == "modelName" else "model-odd"
    odd["data"]["modelVersion"] = "2"
    odd["subject"] = f"models/{odd['data']['modelName']}:2"
    body = json.dumps([good, odd])
    assert "\\ud800" in body
    reply = await ingest.eventgrid(body)
    assert (reply.status, reply.json()) == (200, {"accepted": 2, "duplicates": 0, "ignored": 0}), reply.text
    assert (await ingest.eventgrid(body)).json() == {"accepted": 0, "duplicates": 2, "ignored": 0}
    stored = await store.recent_events(10)
    assert len(stored) == 2
    assert all("\ud800" not in e.dedupe_key and "\ud800" not in json.dumps(e.payload) for e in stored)
    assert "x\ufffdy" in " ".join(e.dedupe_key + json.dumps(e.payload, ensure_ascii=False) for e in stored)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_half_a_surrogate_pair_in_an_azure_devops_hook(
    storing: tuple[Ingest, SqlStore], shared_dir: Path
) -> None:
    ingest, store = storing
    hook: Any = load_sample(shared_dir, "ado", "ms.vss-pipelines.run-state-changed-event.json")
    hook["resource"]["run"]["name"] = HALF_PAIR
    reply = await ingest.hook(json.dumps(hook))
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 0}), reply.text
    [stored] = await store.recent_events(10)
    assert "x\ufffdy" in json.dumps(stored.payload, ensure_ascii=False)


async def test_a_number_past_any_use_costs_its_event_only(
    storing: tuple[Ingest, SqlStore], shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, store = storing
    good = _registered(shared_dir)
    drift: Any = load_sample(shared_dir, "eventgrid", "ml-dataset-drift-detected.eventgrid.json")
    drift = drift[0] if isinstance(drift, list) else drift
    drift["data"]["driftCoefficient"] = "HUGE"
    body = json.dumps([good, drift]).replace('"HUGE"', "9" * 400)
    with caplog.at_level(logging.WARNING):
        reply = await ingest.eventgrid(body)
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 1}), reply.text
    assert [e.dedupe_key.rsplit(":", 1)[-1] for e in await store.recent_events(10)] == [good["id"]]
    assert any("data.driftCoefficient: expected a finite number" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


NOT_TEXT = "expected a string, or a number within 64 bits"


def _numbered(payload: Any, digits: str) -> bytes:
    """``payload`` as JSON with each ``"N<i>"`` string written as the number ``digits[i]``."""
    body = json.dumps(payload)
    for i, number in enumerate(digits.split()):
        body = body.replace(f'"N{i}"', number)
    return body.encode()


@pytest.mark.parametrize(
    ("sample", "where", "numbers"),
    [
        ("ms.vss-pipelines.run-state-changed-event.json", ("id",), ["9" * 100_000, "8" * 100_000]),
        ("ms.vss-pipelines.run-state-changed-event.json", ("id",), ["9" * 24, "9" * 23 + "8"]),
        ("ms.vss-pipelines.run-state-changed-event.json", ("resource", "run", "id"), ["9" * 24, "9" * 23 + "8"]),
        ("ms.vss-pipelines.run-state-changed-event.json", ("resource", "run", "name"), ["9" * 50, "9" * 49 + "8"]),
        ("build.complete.json", ("id",), ["9" * 41, "9" * 40 + "8"]),
        ("build.complete.json", ("resource", "id"), ["-" + "9" * 30, "-" + "9" * 29 + "8"]),
    ],
    ids=["id of 100k digits", "id of 24 digits", "run id", "run name", "build hook id", "build id"],
)
async def test_an_azure_devops_hook_with_a_number_no_text_holds_is_400(
    storing: tuple[Ingest, SqlStore],
    shared_dir: Path,
    with_base_url: bool,
    sample: str,
    where: tuple[str, ...],
    numbers: list[str],
) -> None:
    """Two different such numbers would read as one (``inf``, or a float's first digits): two events deduped as one,
    a card naming neither."""
    ingest, store = storing
    hook: Any = load_sample(shared_dir, "ado", sample)
    if with_base_url:  # the delivery as Azure DevOps sends it, which the route reads with its typed read
        hook["resourceContainers"]["account"] = {"id": "a1", "baseUrl": "https://dev.azure.com/contoso/"}
    node = hook
    for key in where[:-1]:
        node = node[key]
    for i, number in enumerate(numbers):
        node[where[-1]] = "N0"
        hook["id"] = hook["id"] if where == ("id",) else f"hook-{i}"
        reply = await ingest.hook(_numbered(hook, number))
        assert (reply.status, reply.json()) == (
            400,
            {"error": "invalid_payload", "message": f"{'.'.join(where)}: {NOT_TEXT}"},
        ), reply.text[:200]
    assert await store.recent_events(10) == []


@pytest.fixture(params=[False, True], ids=["documented", "with baseUrl"])
def with_base_url(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.mark.parametrize(
    ("where", "number", "reason"),
    [
        (("data", "modelVersion"), "9" * 5_000, f"skipped (data.modelVersion: {NOT_TEXT})"),
        (("data", "modelVersion"), "9" * 24, f"skipped (data.modelVersion: {NOT_TEXT})"),
        (("data", "modelTags", "build"), "9" * 5_000, "skipped (data.modelTags: a value holds a number past 64 bits"),
        (("id",), "9" * 5_000, f"ignored, not an event (id: {NOT_TEXT})"),
    ],
    ids=["version of 5k digits", "version of 24 digits", "tag", "event id"],
)
async def test_an_event_grid_event_with_a_number_no_text_holds_costs_its_event_only(
    storing: tuple[Ingest, SqlStore],
    shared_dir: Path,
    caplog: pytest.LogCaptureFixture,
    where: tuple[str, ...],
    number: str,
    reason: str,
) -> None:
    ingest, store = storing
    good = _registered(shared_dir)
    odd = json.loads(json.dumps(good))
    odd["id"], odd["data"]["modelName"], odd["subject"] = "odd-one", "model-odd", "models/model-odd:7"
    node = odd
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "N0"
    caplog.set_level(logging.INFO, "handoff.ingest")
    reply = await ingest.eventgrid(_numbered([good, odd], number))
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 1}), reply.text[:200]
    [stored] = await store.recent_events(10)
    assert stored.dedupe_key.endswith(f":{good['id']}") and stored.payload["model_version"] == "3"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("handoff.ingest")]
    assert any(reason in line for line in lines), lines
    summary = next(line for line in lines if line.startswith("event grid delivery of 2 event(s): "))
    assert " ignored (" in summary and f"{good['id']!r} accepted" in summary
