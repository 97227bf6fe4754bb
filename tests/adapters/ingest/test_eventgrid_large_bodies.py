"""Large Event Grid bodies: refused unread past Event Grid's largest batch, read without holding up the server."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from adapters.azure_ml.eventgrid import MAX_BATCH
from adapters.azure_ml.eventgrid_route import OFF_LOOP_FROM
from bot.events import ModelRegistered
from tests.adapters.ingest.conftest import Ingest

WORKSPACE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"
GUARD = 10.0  # seconds a held reading waits to be let go: a guard against a hung test, never a measure


def registered(i: int, tags: Any = None, *, cloud: bool = False) -> dict[str, Any]:
    data = {"modelName": "churn", "modelVersion": str(i), "modelTags": tags or {"team": "ml"}}
    if cloud:
        kind = "Microsoft.MachineLearningServices.ModelRegistered"
        return {"specversion": "1.0", "id": f"m{i}", "type": kind, "source": WORKSPACE, "data": data}
    kind = "Microsoft.MachineLearningServices.ModelRegistered"
    return {"id": f"m{i}", "eventType": kind, "topic": WORKSPACE, "eventTime": "2026-03-01T10:00:00Z", "data": data}


async def test_more_items_than_an_event_grid_batch_holds_are_refused_before_any_is_read(ingest: Ingest) -> None:
    """Event Grid puts at most 5,000 events in a delivery: a longer array is not one (a 400, which a sender
    that is not Event Grid reads as its mistake), and none of it is read or stored."""
    reply = await ingest.eventgrid([registered(i) for i in range(MAX_BATCH + 1)])
    assert (reply.status, reply.json()) == (
        400,
        {
            "error": "invalid_payload",
            "message": "the body: 5001 items, more than the 5000 events an Event Grid delivery holds",
        },
    )
    assert ingest.sink.events == []
    # a batch of the most Event Grid sends is read whole
    reply = await ingest.eventgrid([registered(i) for i in range(MAX_BATCH)])
    assert (reply.status, reply.json()) == (200, {"accepted": MAX_BATCH, "duplicates": 0, "ignored": 0})


async def test_a_large_delivery_is_read_while_other_requests_are_answered(ingest: Ingest) -> None:
    """A delivery of thousands of events takes a while to read: other requests are answered meanwhile. The
    reading is held at its log line about the items that are not events until a health check is answered."""
    reached, released = threading.Event(), threading.Event()
    waited: list[bool] = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "items ignored, not events" in record.getMessage():
                reached.set()
                waited.append(released.wait(GUARD))  # False: nothing let it go, the server was held up

    batch: list[Any] = [registered(i) for i in range(3)] + [{"no": "id"} for _ in range(OFF_LOOP_FROM // 10)]
    hold = Hold()
    logger = logging.getLogger("handoff.ingest.eventgrid")
    logger.addHandler(hold)
    try:
        delivery = asyncio.create_task(ingest.eventgrid(batch))
        assert await asyncio.to_thread(reached.wait, GUARD)
        async with ingest.session.get(f"{ingest.url}/healthz") as resp:
            health = resp.status
        still_reading = not delivery.done()
        released.set()
        reply = await delivery
    finally:
        released.set()
        logger.removeHandler(hold)
    assert health == 200
    assert still_reading and waited == [True]
    assert (reply.status, reply.json()) == (200, {"accepted": 3, "duplicates": 0, "ignored": len(batch) - 3})
    assert [e.event_id for e in ingest.sink.events] == ["m0", "m1", "m2"]


async def test_an_events_data_is_read_as_sent_whatever_the_case_of_its_key(ingest: Ingest) -> None:
    long = registered(1, {"scores": list(range(100_000))})  # (the Event Grid model took seconds to copy it)
    capital = registered(2)
    capital["Data"] = capital.pop("data")
    reply = await ingest.eventgrid([long, capital])
    assert (reply.status, reply.json()) == (200, {"accepted": 2, "duplicates": 0, "ignored": 0})
    tags = [e.model_tags for e in ingest.sink.events if isinstance(e, ModelRegistered)]
    assert tags[0]["scores"].startswith("[0, 1, 2, ") and tags[1] == {"team": "ml"}


async def test_a_tag_nested_deeper_than_json_is_written_skips_its_event_and_not_the_batch(ingest: Ingest) -> None:
    """Event Grid retries a 503 for a day: a sender's absurd nesting is the event's problem, not Handoff's."""
    deep = "[" * 1000 + "]" * 1000  # (as deep as a JSON decoder reads, deeper than Python writes)
    for first, cloud in ((1, False), (11, True)):
        ingest.sink.events.clear()
        nested = json.dumps(registered(first, {"deep": "DEEP"}, cloud=cloud)).replace('"DEEP"', deep)
        body = f"[{nested}, {json.dumps(registered(first + 1, cloud=cloud))}]"
        reply = await ingest.eventgrid(body)
        assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0, "ignored": 1})
        assert [e.event_id for e in ingest.sink.events] == [f"m{first + 1}"]
