"""Every event the documented samples give reads back from the payload the ingest stores for it."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from bot.jsonable import tagged_json
from bot.stored_events import event_from_json
from tests.adapters.ingest.conftest import Ingest, load_sample


async def test_every_sample_event_reads_back_from_its_stored_payload(ingest: Ingest, shared_dir: Path) -> None:
    for path in sorted((shared_dir / "samples" / "ado").glob("*.json")):
        assert (await ingest.hook(load_sample(shared_dir, "ado", path.name))).status == 200
    for path in sorted((shared_dir / "samples" / "eventgrid").glob("*.json")):
        if path.name.startswith("ml-") or "blob-created" in path.name:
            cloud = ".cloudevents." in path.name
            kind = "application/cloudevents+json; charset=utf-8" if cloud else "application/json"
            reply = await ingest.eventgrid(load_sample(shared_dir, "eventgrid", path.name), content_type=kind)
            assert reply.status == 200, path.name
    events = ingest.sink.events
    kinds = {type(event).__name__ for event in events}
    assert {"RunStateChanged", "ApprovalPending", "ModelRegistered", "TrainingRunFinished", "DataArrived"} <= kinds
    assert len(kinds) >= 12
    for event in events:
        stored = json.loads(orjson.dumps(tagged_json(event)))  # what the store hands back
        assert event_from_json(stored) == event
