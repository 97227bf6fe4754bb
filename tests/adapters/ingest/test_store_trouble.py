"""The hooks while the store fails: every delivery answered 503 with Retry-After, one traceback in the log for the
whole outage (Azure DevOps and Event Grid keep delivering), and every event stored when the sender delivers again."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text

from adapters.sql import SqlStore
from tests.adapters.ingest.conftest import Ingest

RUN_STATE = "ms.vss-pipelines.run-state-changed-event"
PROJECT = "https://dev.azure.com/contoso/mlops"


def run_hook(number: int) -> dict[str, Any]:
    """A run-state-changed of run ``number`` of project mlops, shaped as Azure DevOps documents it."""
    pipeline = {"url": f"{PROJECT}/_apis/Pipelines/4?revision=1", "id": 4, "revision": 1, "name": "train-model-x"}
    return {
        "id": f"run-state-{number}",
        "eventType": RUN_STATE,
        "publisherId": "pipelines",
        "resource": {
            "run": {
                "_links": {"web": {"href": f"{PROJECT}/_build/results?buildId={number}"}},
                "pipeline": pipeline,
                "state": "completed",
                "result": "succeeded",
                "createdDate": "2026-11-30T10:00:00Z",
                "finishedDate": "2026-11-30T10:05:00Z",
                "url": f"{PROJECT}/_apis/Pipelines/4/runs/{number}",
                "id": number,
                "name": f"20261130.{number}",
            },
            "pipeline": pipeline,
        },
        "resourceVersion": "5.1-preview.1",
        "resourceContainers": {"account": {"id": "f844ec47-a9db-4511-8281-8b63f4eaf94e", "baseUrl": PROJECT[:-5]}},
        "createdDate": "2026-11-30T10:05:01Z",
    }


@asynccontextmanager
async def store_failing(store: SqlStore) -> AsyncIterator[None]:
    """The events' table gone (a restore under way, a schema moved) until the block ends: every ingest fails."""
    async with store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE received_events RENAME TO received_events_away"))
    try:
        yield
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE received_events_away RENAME TO received_events"))


def tracebacks(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.exc_info is not None]


async def test_an_outage_logs_one_traceback_and_loses_no_azure_devops_event(
    storing: tuple[Ingest, SqlStore], caplog: pytest.LogCaptureFixture
) -> None:
    ingest, store = storing
    caplog.set_level(logging.INFO, "handoff")
    async with store_failing(store):
        for number in range(1, 11):
            reply = await ingest.hook(run_hook(number))
            assert reply.status == 503 and reply.headers["Retry-After"] == "5"
            assert reply.json()["error"] == "temporarily_unavailable"

    [first] = tracebacks(caplog, "handoff.ingest.azure_devops")
    assert first.getMessage() == f"azure devops hook {RUN_STATE!r} 'run-state-1': not stored, asked to retry"
    refused = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert len(refused) == 10 and all("\n" not in line for line in refused)
    assert "received_events" in refused[-1] and "10 refused in a row" in refused[-1]

    # Azure DevOps delivers each again: every one is stored, once
    for number in range(1, 11):
        assert (await ingest.hook(run_hook(number))).json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    known = await store.known_events([f"azure-devops:contoso:run-state-{n}" for n in range(1, 11)])
    assert len(known) == 10
    assert any("storing works again after 10 request(s) answered 503" in r.getMessage() for r in caplog.records)
    assert len(tracebacks(caplog, "handoff.ingest.azure_devops")) == 1


async def test_an_outage_logs_one_traceback_and_loses_no_event_grid_event(
    storing: tuple[Ingest, SqlStore], caplog: pytest.LogCaptureFixture
) -> None:
    ingest, store = storing
    caplog.set_level(logging.INFO, "handoff")

    def blob_created(number: int) -> list[dict[str, Any]]:
        return [
            {
                "id": f"blob-{number}",
                "topic": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/lake",
                "subject": f"/blobServices/default/containers/raw/blobs/day-{number}.parquet",
                "eventType": "Microsoft.Storage.BlobCreated",
                "eventTime": "2026-11-30T10:00:00Z",
                "data": {"api": "PutBlob", "url": f"https://lake.blob.core.windows.net/raw/day-{number}.parquet"},
                "dataVersion": "",
                "metadataVersion": "1",
            }
        ]

    async with store_failing(store):
        for number in range(1, 11):
            reply = await ingest.eventgrid(blob_created(number))
            assert reply.status == 503 and reply.headers["Retry-After"] == "5"

    assert len(tracebacks(caplog, "handoff.ingest.eventgrid")) == 1
    for number in range(1, 11):
        assert (await ingest.eventgrid(blob_created(number))).json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    assert len(tracebacks(caplog, "handoff.ingest.eventgrid")) == 1
