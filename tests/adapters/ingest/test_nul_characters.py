"""A NUL character in a payload, which PostgreSQL cannot store in text: the delivery is stored all the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.sql import SqlStore
from tests.adapters.ingest.conftest import Ingest, load_sample


async def test_a_nul_in_an_azure_devops_hook_id(storing: tuple[Ingest, SqlStore], shared_dir: Path) -> None:
    ingest, store = storing
    hook: Any = load_sample(shared_dir, "ado", "ms.vss-pipelines.run-state-changed-event.json")
    hook["id"] = "a\u0000b"
    hook["resource"]["run"]["name"] = "nightly\u0000"
    reply = await ingest.hook(hook)
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 0}), reply.text
    assert (await ingest.hook(hook)).json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    [stored] = await store.recent_events(10)
    assert "\u0000" not in stored.dedupe_key


async def test_a_nul_in_an_event_grid_model_name(storing: tuple[Ingest, SqlStore], shared_dir: Path) -> None:
    ingest, store = storing
    events = load_sample(shared_dir, "eventgrid", "ml-events.sdk-tests-camelcase.eventgrid.json")
    [registered] = [e for e in events if e["eventType"].endswith("ModelRegistered")][:1]
    registered["data"]["modelName"] = "a\u0000b"
    registered["subject"] = "models/a\u0000b:1"
    reply = await ingest.eventgrid([registered])
    assert reply.status == 200, reply.text
    assert reply.json()["accepted"] == 1
    assert (await ingest.eventgrid([registered])).json()["duplicates"] == 1
    [stored] = await store.recent_events(10)
    assert "\u0000" not in stored.dedupe_key
