"""Event Grid's data-lake and drift events as the channel shows them: a card for each file, whatever the case of
its path; a drift card even when the monitor's window is not a time Handoff can show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from adapters.emulators.azure_ml.events import EmittedEvent
from bot.events import DataDriftDetected
from bot.stored_events import event_from_json
from tests.e2e.conftest import Loop, blocks_text, eventually, slack_messages

FOLDER = "raw/customers/2026-01"  # inside the demo lake's watched path


def cards(loop: Loop, title: str) -> list[Any]:
    """The ml-models channel's top-level messages titled ``title``."""
    return [m for m in slack_messages(loop, "ml-models") if not m.thread_ts and m.text.endswith(f": {title}")]


def answers(loop: Loop, event: EmittedEvent) -> list[int | None]:
    """What Handoff answered each delivery of ``event``."""
    subscriptions = loop.suite.aml.dispatcher.subscriptions.values()
    return [a.status for sub in subscriptions for a in sub.attempts if event.id in a.event_ids]


async def test_files_whose_paths_differ_only_in_case_each_get_their_card(loop: Loop) -> None:
    """Blob names are case-sensitive: ``Data.csv`` and ``data.csv`` are two files. Storage orders the writes of
    each blob name by its own sequencer, so the second file's may well sort below the first's."""
    aml = loop.suite.aml
    first = aml.land_blob(f"{FOLDER}/Data.csv", 10)
    await aml.drain_events()
    [first_card] = await eventually(lambda: cards(loop, f"New data in lake/{FOLDER}/Data.csv"))

    emitted = aml.events.blob_created(
        f"{FOLDER}/data.csv", 20, api="FlushWithClose", content_type="text/csv", etag="0x1", at=aml.clock.now()
    )
    second = replace(emitted, data={**emitted.data, "sequencer": "0" * 32})
    aml.dispatcher.publish(second)
    await aml.drain_events()

    [second_card] = await eventually(lambda: cards(loop, f"New data in lake/{FOLDER}/data.csv"))
    assert "*Size*\\n20 B" in blocks_text(second_card)
    assert f"*Path*\\nlake/{FOLDER}/data.csv" in blocks_text(second_card)
    # the first file's card still says the first file
    assert first_card.text.endswith(f"{FOLDER}/Data.csv") and not first_card.edits
    assert "*Size*\\n10 B" in blocks_text(first_card)
    assert answers(loop, first) == answers(loop, second) == [200]

    # each file's card in the store, with its own file's order of writes
    states = [
        await loop.server.store.get_card_state(f"storage:stmlopslake:lake:{FOLDER}/{n}")
        for n in ("Data.csv", "data.csv")
    ]
    assert [(s.state["card"]["title"], s.state["sequencer"]) if s else None for s in states] == [
        (f"New data in lake/{FOLDER}/Data.csv", first.data["sequencer"]),
        (f"New data in lake/{FOLDER}/data.csv", "0" * 32),
    ]


async def test_a_repeat_limit_folds_files_of_one_folder_not_of_a_folder_spelled_otherwise(
    start_loop: Callable[..., Awaitable[Loop]],
) -> None:
    """``Jan/`` and ``jan/`` are two folders: a file landing in one is no repeat of a file landing in the other."""

    def folding(config: dict[str, Any]) -> None:
        [models] = [s for s in config["subscriptions"] if s["channel"] == "ml-models"]
        models["repeat_limit"] = "30m"

    loop = await start_loop(folding)
    aml = loop.suite.aml
    for path in ("Jan/a.csv", "jan/b.csv", "Jan/c.csv"):
        aml.land_blob(f"raw/customers/{path}", 10)
        await aml.drain_events()

    def replies(message: Any) -> list[str]:
        return [r.text for r in message.replies]

    [first] = await eventually(
        lambda: [m for m in cards(loop, "New data in lake/raw/customers/Jan/a.csv") if replies(m)]
    )
    assert replies(first) == [
        "Info: New data in lake/raw/customers/Jan/c.csv. "
        "Again within 30 min: shown in this thread instead of as a new card."
    ]
    [other] = await eventually(lambda: cards(loop, "New data in lake/raw/customers/jan/b.csv"))
    assert not replies(other)
    titles = [m.text for m in slack_messages(loop, "ml-models") if not m.thread_ts]
    assert titles == [
        "Info: New data in lake/raw/customers/Jan/a.csv",
        "Info: New data in lake/raw/customers/jan/b.csv",
    ]


async def test_a_drift_whose_window_is_past_any_instant_is_shown_without_it(loop: Loop) -> None:
    """``0001-01-01T00:00:00+01:00`` is a date-time, but no instant in UTC: the card leaves the window out rather
    than Handoff refusing the event on every retry until Event Grid drops it."""
    aml = loop.suite.aml
    now = aml.clock.now()
    edge = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    drift = aml.events.dataset_drift_detected("customers-drift", "base", "target", 0.87, edge, now, now)
    assert drift.data["startTime"] == "0001-01-01T00:00:00+01:00"
    aml.dispatcher.publish(drift)
    await aml.drain_events()

    [card] = await eventually(lambda: cards(loop, "Data drift detected by customers-drift"))
    assert "*Drift coefficient*\\n0.870" in blocks_text(card)
    assert "Data compared" not in blocks_text(card)
    assert answers(loop, drift) == [200]
    [stored] = [e for e in await loop.server.store.recent_events(20) if e.dedupe_key.endswith(f":{drift.id}")]
    event = event_from_json(stored.payload)
    assert isinstance(event, DataDriftDetected)
    assert (event.window_start, event.window_end) == (None, now)
