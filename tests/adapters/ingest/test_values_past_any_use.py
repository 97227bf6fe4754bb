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
