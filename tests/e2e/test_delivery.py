"""Living cards under load (1,000 events for 100 runs), redelivery, a restart and rate limits, on Slack.

The core (ingest, outbox) runs on a real SQLite store and sends through the real Slack adapter to the
Slack emulator, which enforces about one message per second per channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.emulators.base import Fault
from adapters.emulators.slack.emulator import SlackEmulator
from adapters.emulators.slack.world import default_world
from adapters.slack.channel import SlackChatChannel, make_client
from adapters.sql import SqlStore
from bot.app import Handoff, add_channel, build_handoff
from bot.cards import Card
from bot.config import parse_settings
from bot.events import (
    ApprovalCompleted,
    ApprovalPending,
    Approver,
    Person,
    PipelineRef,
    RunStateChanged,
    StageStateChanged,
)
from bot.metrics import Metrics
from bot.outbox import RetryPolicy, post_marker
from bot.records import ConversationAddress, ConversationRecord
from tests.lost_answers import LOST_ANSWER_IDS, LOST_ANSWERS

T0 = datetime.now(UTC)
CHANNELS = 20
RUNS = 12
STORM_RUNS = 100  # ten events each: the storm of 1,000 events for 100 runs
STAGES = ("Build", "Integration tests", "Package", "Publish")


def world() -> dict[str, Any]:
    slack = default_world()
    slack["channels"] += [{"id": f"C0LOAD{i:05d}", "name": f"load-{i}", "members": ["bot"]} for i in range(CHANNELS)]
    slack["channels"].append({"id": "C0OPS00001", "name": "handoff-ops", "members": ["bot"]})
    return {"slack": slack}


def settings(db: Path) -> dict[str, Any]:
    channels = {f"load-{i}": {"slack": f"C0LOAD{i:05d}"} for i in range(CHANNELS)}
    return {
        "store": {"url": f"sqlite:///{db}"},
        "channels": channels,
        # run n goes to channel n % CHANNELS
        "subscriptions": [
            {"channel": f"load-{i}", "events": ["run", "stage"], "pipelines": [f"pipe-{i}"]} for i in range(CHANNELS)
        ],
    }


def events_of(run: int) -> list[Any]:
    ref = PipelineRef(
        organization="contoso",
        project="mlops",
        pipeline_id=str(run % CHANNELS),
        pipeline_name=f"pipe-{run % CHANNELS}",
        run_id=str(run),
        run_name=f"20261128.{run}",
    )
    at = T0
    out: list[Any] = [
        RunStateChanged(
            source="azure-devops",
            event_id=f"r{run}-start",
            occurred_at=at,
            scope="contoso",
            run=ref,
            state="inProgress",
        )
    ]
    for i, stage in enumerate(STAGES):
        for state, result in (("running", None), ("completed", "succeeded")):
            out.append(
                StageStateChanged(
                    source="azure-devops",
                    event_id=f"r{run}-{i}-{state}",
                    occurred_at=at + timedelta(seconds=i),
                    scope="contoso",
                    run=ref,
                    stage_name=stage,
                    stage_display_name=stage,
                    state=state,
                    result=result,
                )
            )
    out.append(
        RunStateChanged(
            source="azure-devops",
            event_id=f"r{run}-done",
            occurred_at=at + timedelta(seconds=9),
            scope="contoso",
            run=ref,
            state="completed",
            result="succeeded",
        )
    )
    return out


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(world()) as emulator:
        yield emulator


async def open_handoff(db: Path, slack: SlackEmulator, *, ops: bool = False) -> Handoff:
    """Handoff on the SQLite file ``db``, sending to the Slack emulator; with ``ops``, its alerts go to C0OPS00001."""
    config = settings(db)
    if ops:
        config["channels"]["ops"] = {"slack": "C0OPS00001"}
        config["ops_channel"] = "ops"
    store = await SqlStore.open(f"sqlite:///{db}")
    handoff = build_handoff(parse_settings(config, {}), store)
    add_channel(handoff, "slack", SlackChatChannel(make_client(slack.bot_token, slack.api_url)))
    return handoff


async def drain(handoff: Handoff, timeout: float = 120) -> None:
    """Run the outbox until nothing is pending (waiting out coalescing delays and retries)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await handoff.store.count_deliveries())["pending"]:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"deliveries still pending: {await handoff.store.count_deliveries()}")
        if not await handoff.outbox.run_once():
            await asyncio.sleep(0.1)


def cards(slack: SlackEmulator) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for i in range(CHANNELS):
        for message in slack.state.channel(f"C0LOAD{i:05d}").messages:
            if not message.deleted:
                found.setdefault(message.text.split(": ", 1)[-1], []).append(message)
    return found


def assert_one_final_card_per_run(slack: SlackEmulator, runs: int = RUNS) -> None:
    shown = cards(slack)
    for run in range(runs):
        title = f"pipe-{run % CHANNELS} 20261128.{run}"
        (card,) = shown[title]  # exactly one card per run
        assert card.text.startswith("Succeeded"), card.text
        body = json.dumps(card.blocks)
        assert all(stage in body for stage in STAGES)
    assert sum(len(v) for v in shown.values()) == runs


async def test_a_storm_of_events_with_redeliveries_gives_one_final_card_per_run(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    handoff = await open_handoff(tmp_path / "h.db", slack)
    try:
        every = [event for run in range(STORM_RUNS) for event in events_of(run)]
        assert len(every) == 1000
        random.Random(7).shuffle(every)
        # each event arrives twice, concurrently, in shuffled order
        results = await asyncio.gather(*(handoff.ingest.accept(e) for e in every + every))
        assert results.count(True) == len(every)
        await drain(handoff)
        assert_one_final_card_per_run(slack, STORM_RUNS)
        assert (await handoff.store.count_deliveries())["dead"] == 0
        posts = [r for r in slack.recorder.requests if r.path == "/api/chat.postMessage" and r.status == 200]
        assert len(posts) == STORM_RUNS  # one post per card; everything after it was an update
    finally:
        await handoff.store.close()


async def test_a_restart_in_the_middle_loses_nothing_and_doubles_nothing(tmp_path: Path, slack: SlackEmulator) -> None:
    db = tmp_path / "h.db"
    every = [event for run in range(RUNS) for event in events_of(run)]
    first = await open_handoff(db, slack)
    for event in every[: len(every) // 2]:
        await first.ingest.accept(event)
    for _ in range(3):  # some deliveries go out, then the process stops
        await first.outbox.run_once()
    await first.store.close()

    second = await open_handoff(db, slack)
    try:
        for event in every:  # the senders retry everything they were not sure of
            await second.ingest.accept(event)
        await drain(second)
        assert_one_final_card_per_run(slack)
    finally:
        await second.store.close()


async def test_rate_limits_are_absorbed(tmp_path: Path, slack: SlackEmulator) -> None:
    slack.faults.add("POST /api/chat.update", [Fault("429", retry_after=1)] * 3)
    slack.faults.add("POST /api/chat.postMessage", [Fault("429", retry_after=1), Fault("503")])
    handoff = await open_handoff(tmp_path / "h.db", slack)
    try:
        for run in range(RUNS):
            await handoff.ingest.accept(events_of(run)[0])
        await drain(handoff)  # every card is posted…
        for run in range(RUNS):
            for event in events_of(run)[1:]:
                await handoff.ingest.accept(event)
        await drain(handoff)  # …then updated
        assert_one_final_card_per_run(slack)
        statuses = [r.status for r in slack.recorder.requests]
        assert statuses.count(429) >= 4  # the faults happened, and were absorbed
        assert (await handoff.store.count_deliveries())["dead"] == 0
    finally:
        await handoff.store.close()


async def test_the_metrics_count_what_the_outbox_met(tmp_path: Path, slack: SlackEmulator) -> None:
    # Slack's client waits out one 429 itself; the second, and a 500, reach the outbox
    slack.faults.add(
        "POST /api/chat.postMessage", [Fault("429", retry_after=1), Fault("429", retry_after=1), Fault("500")]
    )
    handoff = await open_handoff(tmp_path / "h.db", slack)
    metrics = Metrics()
    handoff.outbox.observer = metrics.outbox  # as the server wires it
    handoff.outbox.retry = RetryPolicy(max_attempts=3, base_delay=0.05)

    def scraped(metric: str, outcome: str | None = None) -> float | None:
        labels = {"platform": "slack", **({"outcome": outcome} if outcome else {})}
        return metrics.registry.get_sample_value(metric, labels)

    try:
        start, stage = events_of(0)[:2]
        await handoff.ingest.accept(start)
        await drain(handoff)
        assert [r.status for r in calls(slack, "chat.postMessage")] == [429, 429, 500, 200]
        assert scraped("handoff_delivery_failures_total", "rate_limited") == 1
        assert scraped("handoff_delivery_failures_total", "retried") == 1
        assert scraped("handoff_delivery_seconds_count") == 1  # the card, posted at the third attempt
        assert 1.0 <= (scraped("handoff_delivery_seconds_sum") or 0) < 60  # after the 429's second

        slack.faults.add("POST /api/chat.update", [Fault("500"), Fault("500")])
        handoff.outbox.retry = RetryPolicy(max_attempts=2, base_delay=0.05)
        await handoff.ingest.accept(stage)
        await drain(handoff)
        assert scraped("handoff_delivery_failures_total", "dead") == 1  # the update, given up at its second try
        assert scraped("handoff_delivery_failures_total", "retried") == 2
        assert scraped("handoff_delivery_seconds_count") == 1
    finally:
        await handoff.store.close()


async def test_a_channel_handoff_cannot_post_in_is_marked_inactive_with_one_alert_by_its_name(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    load3 = slack.state.channel("C0LOAD00003")
    load3.is_private = True  # a private channel: Slack keeps it from an app it does not have as a member
    load3.members.discard(slack.world.bot_user_id)
    handoff = await open_handoff(tmp_path / "h.db", slack, ops=True)
    where = ConversationAddress("slack", "C0LOAD00003")

    def alerts() -> list[str]:
        shown = [m for m in slack.state.channel("C0OPS00001").messages if not m.deleted]
        return [m.text + json.dumps(m.blocks) for m in shown]

    try:
        failed = replace(events_of(3)[-1], event_id="r3-failed", result="failed")  # a card and a reply
        for event in (events_of(3)[0], events_of(23)[0], failed, events_of(4)[0]):  # 3 and 23: load-3; 4: load-4
            await handoff.ingest.accept(event)
        await drain(handoff)
        [alert] = alerts()
        assert "Handoff cannot post in #load-3" in alert
        assert "chat.postMessage: channel_not_found" in alert and "invite @Handoff to it" in alert
        assert "#load-3 (slack:C0LOAD00003)" in alert
        assert where in await handoff.store.inactive_conversations()
        assert [m.text for m in slack.state.channel("C0LOAD00004").messages] == ["Running: pipe-4 20261128.4"]
        # what was queued there already (run 23's card, run 3's newer version) goes without a word, and so does
        # run 3's reply, whose card never showed (it is not even tried): all unreachable, none a dead letter
        assert await handoff.store.count_deliveries() == {"pending": 0, "sent": 2, "dead": 0, "unreachable": 4}
        refused = [r for r in calls(slack, "chat.postMessage") if r.json().get("channel") == "C0LOAD00003"]
        assert [r.json()["text"].split(":")[0] for r in refused] == ["Failed", "Running", "Failed"]

        handoff.ingest.forget_subscriptions()  # (the ingest reads which conversations are inactive again)
        await handoff.ingest.accept(events_of(43)[0])  # a new run for load-3: nothing is queued there now
        assert (await handoff.store.count_deliveries())["pending"] == 0
        assert len(alerts()) == 1
    finally:
        await handoff.store.close()


async def test_a_channel_showing_a_card_is_sent_none_of_its_events_while_inactive_and_the_next_once_back(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    load3 = slack.state.channel("C0LOAD00003")
    load3.is_private = True
    handoff = await open_handoff(tmp_path / "h.db", slack)
    where = ConversationAddress("slack", "C0LOAD00003")

    def sent_to_load3() -> list[Any]:
        return [
            r
            for r in slack.recorder.requests
            if r.path in ("/api/chat.postMessage", "/api/chat.update")
            and r.json().get("channel") == where.conversation_id
        ]

    try:
        start, first_stage, *rest = events_of(3)
        await handoff.ingest.accept(start)
        await drain(handoff)
        [shown] = load3.messages
        # Handoff is removed from the channel: the membership listener marks it inactive
        load3.members.discard(slack.world.bot_user_id)
        await handoff.store.save_conversation(ConversationRecord(where, "", active=False, updated_at=datetime.now(UTC)))
        handoff.ingest.forget_subscriptions()  # (the ingest reads which conversations are inactive again)
        refused = len(sent_to_load3())
        for event in [first_stage, *rest[:4]]:
            await handoff.ingest.accept(event)
        assert (await handoff.store.count_deliveries())["pending"] == 0  # nothing queued there
        await drain(handoff)
        assert len(sent_to_load3()) == refused  # and no refused call

        load3.members.add(slack.world.bot_user_id)  # invited back: the membership listener marks it active
        await handoff.store.save_conversation(ConversationRecord(where, "load-3", updated_at=datetime.now(UTC)))
        handoff.ingest.forget_subscriptions()
        await handoff.ingest.accept(rest[4])
        await drain(handoff)
        [update] = sent_to_load3()[refused:]
        assert update.path == "/api/chat.update" and update.json()["ts"] == shown.ts
        assert [m.ts for m in load3.messages] == [shown.ts]  # the same card, brought up to date in place
        assert "Package" in json.dumps(load3.messages[0].blocks)  # the stages it missed included
    finally:
        await handoff.store.close()


def calls(slack: SlackEmulator, method: str) -> list[Any]:
    return [r for r in slack.recorder.requests if r.path == f"/api/{method}"]


@pytest.mark.parametrize("lost", LOST_ANSWERS, ids=LOST_ANSWER_IDS)
async def test_a_post_whose_answer_was_lost_is_found_and_not_posted_again(
    tmp_path: Path, slack: SlackEmulator, lost: Fault
) -> None:
    # the card is posted, then the connection drops before Slack's answer reaches Handoff, or a gateway (or
    # Slack itself) fails the call after the post
    slack.faults.add("POST /api/chat.postMessage", [lost])
    handoff = await open_handoff(tmp_path / "h.db", slack)
    try:
        first, *rest = events_of(0)
        await handoff.ingest.accept(first)
        await drain(handoff)
        for event in rest:
            await handoff.ingest.accept(event)
        await drain(handoff)
        assert_one_final_card_per_run(slack, runs=1)
        assert len(calls(slack, "chat.postMessage")) == 1  # the lookup found it: no second post
        assert len(calls(slack, "conversations.history")) == 1
        assert (await handoff.store.count_deliveries())["dead"] == 0
    finally:
        await handoff.store.close()


async def test_a_lost_post_is_still_looked_for_after_the_attempt_that_found_it_failed(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    # the post's answer is lost; the next attempt finds the post, but Slack fails the update of it
    slack.faults.add("POST /api/chat.postMessage", [Fault("reset_after")])
    slack.faults.add("POST /api/chat.update", [Fault("500")])
    handoff = await open_handoff(tmp_path / "h.db", slack)
    try:
        for event in events_of(0):
            await handoff.ingest.accept(event)
        await drain(handoff)
        assert_one_final_card_per_run(slack, runs=1)
        assert len(calls(slack, "chat.postMessage")) == 1  # each attempt after the lost answer looked first
        assert len(calls(slack, "conversations.history")) == 2
        assert (await handoff.store.count_deliveries())["dead"] == 0
    finally:
        await handoff.store.close()


async def test_a_card_posted_by_a_worker_that_died_before_recording_it_is_not_posted_again(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    db = tmp_path / "h.db"
    first, *rest = events_of(0)
    crashed = await open_handoff(db, slack)
    await crashed.ingest.accept(first)
    # the worker claims the card's delivery, posts it, and dies before recording the message (its lease
    # is over at once, as if it had run out while the process was down)
    (delivery,) = await crashed.store.claim_deliveries("worker-that-died", datetime.now(UTC), timedelta(0), 10)
    channel = crashed.outbox.channels["slack"]
    card = Card.from_json(delivery.payload["card"])
    await channel.post_card(delivery.conversation.conversation_id, card, marker=post_marker(delivery))
    await crashed.store.close()

    restarted = await open_handoff(db, slack)
    try:
        for event in rest:
            await restarted.ingest.accept(event)
        await drain(restarted)
        assert_one_final_card_per_run(slack, runs=1)
        assert len(calls(slack, "chat.postMessage")) == 1
        assert (await restarted.store.get_delivery(delivery.id)).state.value == "sent"  # type: ignore[union-attr]
    finally:
        await restarted.store.close()


@contextlib.asynccontextmanager
async def slack_handoff(tmp_path: Path, slack: SlackEmulator, subscriptions: list[Any]) -> AsyncIterator[Handoff]:
    """Handoff on a SQLite file, sending to the Slack emulator, with ``subscriptions`` for load-0 and load-1."""
    db = tmp_path / "h.db"
    config = {
        "store": {"url": f"sqlite:///{db}"},
        "channels": {"load-0": {"slack": "C0LOAD00000"}, "load-1": {"slack": "C0LOAD00001"}},
        "subscriptions": subscriptions,
    }
    store = await SqlStore.open(f"sqlite:///{db}")
    handoff = build_handoff(parse_settings(config, {}), store)
    add_channel(handoff, "slack", SlackChatChannel(make_client(slack.bot_token, slack.api_url)))
    try:
        yield handoff
    finally:
        await handoff.store.close()


async def test_a_pipeline_failing_again_within_the_repeat_limit_fills_one_thread(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    subscriptions = [
        {"channel": "load-0", "events": ["run"], "outcomes": ["failed"], "repeat_limit": "30m"},
        {"channel": "load-1", "events": ["run"], "outcomes": ["failed"]},
    ]
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        for run in range(5):  # pipe-0 fails five times in a row
            *_, done = events_of(run * CHANNELS)
            assert await handoff.ingest.accept(replace(done, event_id=f"r{run}-failed", result="failed"))
        await drain(handoff)
        limited, unlimited = slack.state.channel("C0LOAD00000"), slack.state.channel("C0LOAD00001")
        assert [m.text.split(". ")[0] for m in unlimited.messages] == [
            f"Failed: pipe-0 20261128.{r * CHANNELS}" for r in range(5)
        ]
        (card,) = limited.messages  # one card in the channel…
        assert card.text.split(" ")[:3] == ["Failed:", "pipe-0", "20261128.0"]
        repeats = [m for m in card.replies if "Again within 30 min" in json.dumps(m.blocks)]
        # …and each repeat in its thread, in order
        assert [m.text.split(". ")[0] for m in repeats] == [
            f"Failed: pipe-0 20261128.{r * CHANNELS}" for r in (1, 2, 3, 4)
        ]
        assert (await handoff.store.count_deliveries())["dead"] == 0


async def test_a_pipeline_flapping_within_the_repeat_limit_keeps_one_card_and_tells_each_run_in_its_thread(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    subscriptions = [{"channel": "load-0", "events": ["run"], "outcomes": ["any"], "repeat_limit": "1h"}]
    outcomes = {0: "succeeded", CHANNELS: "failed", 2 * CHANNELS: "failed", 3 * CHANNELS: "succeeded"}
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        for run, result in outcomes.items():  # pipe-0 runs four times, each shown from its start
            start, *_, done = events_of(run)
            assert await handoff.ingest.accept(start)
            await drain(handoff)
            assert await handoff.ingest.accept(replace(done, result=result))
            await drain(handoff)
        (card,) = slack.state.channel("C0LOAD00000").messages  # one card in the channel…
        assert card.text.startswith("Succeeded: pipe-0 20261128.0")
        # …and each later run told once in its thread when it ended, the recovery too, none of it broadcast
        assert [reply.text.split(". ")[0] for reply in card.replies] == [
            f"Failed: pipe-0 20261128.{CHANNELS}",
            f"Failed: pipe-0 20261128.{2 * CHANNELS}",
            f"Succeeded: pipe-0 20261128.{3 * CHANNELS}",
        ]
        assert all("Again within 1 h" in json.dumps(r.blocks) and not r.reply_broadcast for r in card.replies)


async def test_a_channel_that_asked_for_compact_cards_gets_them_on_slack(tmp_path: Path, slack: SlackEmulator) -> None:
    subscriptions = [
        {"channel": "load-0", "events": ["run", "stage"], "card_format": "compact"},
        {"channel": "load-1", "events": ["run", "stage"]},
    ]
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        for event in events_of(0):
            await handoff.ingest.accept(event)
        await drain(handoff)
        (compact,) = slack.state.channel("C0LOAD00000").messages
        (full,) = slack.state.channel("C0LOAD00001").messages
        assert full.text == "Succeeded: pipe-0 20261128.0"
        assert compact.text == "Succeeded: pipe-0 20261128.0. 4 of 4 stages done"
        compact_body, full_body = json.dumps(compact.blocks), json.dumps(full.blocks)
        assert "4 of 4 stages done" in compact_body
        assert all(stage in full_body for stage in STAGES) and "Requested by" not in compact_body
        assert not any(stage in compact_body for stage in STAGES)
        assert len(compact_body) < len(full_body) / 2


async def test_a_failure_in_the_thread_of_a_card_shown_earlier_also_shows_in_the_channel(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    subscriptions = [
        {"channel": "load-0", "events": ["run", "stage"]},
        {"channel": "load-1", "events": ["run", "stage"], "broadcast": False},
    ]
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        for event in events_of(0):  # the run is shown from its start; its Package stage fails
            failing = event.event_id in ("r0-2-completed", "r0-done")
            await handoff.ingest.accept(replace(event, result="failed") if failing else event)
            if event.event_id == "r0-start":
                await drain(handoff)  # the card is posted
        await drain(handoff)
        broadcasting, quiet = slack.state.channel("C0LOAD00000"), slack.state.channel("C0LOAD00001")
        failure = "Failed: pipe-0 20261128.0 failed in stage Package"
        card, reply = broadcasting.messages  # the card, and its failure shown in the channel too
        assert card.text.startswith("Failed: pipe-0 20261128.0") and reply.text.startswith(failure)
        assert reply.thread_ts == card.ts and reply.reply_broadcast and card.replies == [reply]
        (quiet_card,) = quiet.messages  # the failure only in the thread
        [quiet_reply] = quiet_card.replies
        assert quiet_reply.text.startswith(failure) and not quiet_reply.reply_broadcast
        sent = [r.json() for r in calls(slack, "chat.postMessage") if r.json().get("thread_ts")]
        assert sorted(str(body.get("reply_broadcast")) for body in sent) == ["None", "True"]


async def test_a_failure_mentions_the_person_who_asked_for_the_run_where_slack_knows_their_email(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    bob = slack.world.user("bob")
    requesters = {0: bob.email, CHANNELS: "dana@contoso.com", 2 * CHANNELS: bob.email.upper()}
    subscriptions = [{"channel": "load-0", "events": ["run", "stage"]}]
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        for run, email in requesters.items():  # three runs of pipe-0 fail; dana has no Slack account
            for event in events_of(run):
                if event.event_id == f"r{run}-2-completed":
                    event = replace(event, result="failed", actor=Person(name="Someone", email=email))
                await handoff.ingest.accept(event)
        await drain(handoff)
        cards = slack.state.channel("C0LOAD00000").messages
        failures = [reply.text for card in cards if not card.thread_ts for reply in card.replies]
        assert [text.split(" failed in ")[0] for text in failures] == [
            f"Failed: pipe-0 20261128.{run}" for run in requesters
        ]
        assert [text.endswith(f" <@{bob.id}>") for text in failures] == [True, False, True]
        assert not any("<@" in text for text in failures[1:2])
        assert len(calls(slack, "users.lookupByEmail")) == 2  # bob's answer and dana's are both reused


async def test_a_failed_run_first_shown_failed_calls_on_who_asked_or_names_them_where_mentions_are_off(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    bob = slack.world.user("bob")
    subscriptions = [
        {"channel": "load-0", "events": ["run"], "outcomes": ["failed"]},
        {"channel": "load-1", "events": ["run"], "outcomes": ["failed"], "mentions": False},
    ]
    [start, *_] = events_of(0)
    failed = replace(
        start, event_id="r0-failed", state="completed", result="failed", actor=Person(name="Bob Chen", email=bob.email)
    )
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        await handoff.ingest.accept(start)  # still going: neither channel follows it
        await handoff.ingest.accept(failed)
        await drain(handoff)
        # the card is shown failed from the first: it calls on bob itself, and its failure reply does not again
        (card,) = slack.state.channel("C0LOAD00000").messages
        assert card.text.startswith("Failed: pipe-0 20261128.0") and card.text.endswith(f" <@{bob.id}>")
        assert [r.text.startswith("Failed: pipe-0 20261128.0 failed") for r in card.replies] == [True]
        assert "<@" not in card.replies[0].text + json.dumps(card.replies[0].blocks)
        # where mentions are off, bob is named without being pinged
        (quiet,) = slack.state.channel("C0LOAD00001").messages
        assert "<@" not in quiet.text + json.dumps(quiet.blocks)
        assert "Bob Chen" in json.dumps(quiet.blocks)  # in its "Requested by" fact, and only there
        assert "For: " not in json.dumps(quiet.blocks)


async def test_a_waiting_gate_mentions_its_approvers_until_it_is_decided(tmp_path: Path, slack: SlackEmulator) -> None:
    bob = slack.world.user("bob")
    approvers = (
        Approver(person=Person(name="Bob Chen", email=bob.email)),
        Approver(person=Person(name="Dana", email="dana@contoso.com")),  # no Slack account
        Approver(person=Person(name="[mlops]\\Release Managers")),  # a group
    )
    common: dict[str, Any] = {
        "source": "azure-devops",
        "scope": "contoso",
        "approval_id": "a-9",
        "approvers": approvers,
    }
    subscriptions = [
        {"channel": "load-0", "events": ["approval"]},
        {"channel": "load-1", "events": ["approval"], "mentions": False},
    ]
    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        await handoff.ingest.accept(ApprovalPending(event_id="a-9-pending", occurred_at=T0, **common))
        await drain(handoff)
        (card,) = slack.state.channel("C0LOAD00000").messages
        assert card.text.endswith(f" <@{bob.id}>") and card.text.count("<@") == 1
        assert f"<@{bob.id}>" in json.dumps(card.blocks)
        (quiet,) = slack.state.channel("C0LOAD00001").messages
        assert "<@" not in quiet.text + json.dumps(quiet.blocks) and "Bob Chen" in json.dumps(quiet.blocks)

        decided = Approver(person=Person(name="Bob Chen", email=bob.email), status="approved")
        done = ApprovalCompleted(event_id="a-9-done", occurred_at=T0, **{**common, "approvers": (decided,)})
        await handoff.ingest.accept(replace(done, status="approved"))
        await drain(handoff)
        (card,) = slack.state.channel("C0LOAD00000").messages
        assert card.text.startswith("Approved") and "<@" not in card.text + json.dumps(card.blocks)
        assert len(calls(slack, "users.lookupByEmail")) == 2  # bob's and dana's answers, asked once


async def test_a_card_deleted_in_slack_is_posted_afresh_with_its_news_and_no_alert(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    handoff = await open_handoff(tmp_path / "h.db", slack, ops=True)
    channel = slack.state.channel("C0LOAD00000")

    def cards_shown() -> list[Any]:  # (a broadcast reply shows in the channel too)
        return [m for m in channel.messages if not m.deleted and m.thread_ts in (None, m.ts)]

    try:
        start, stage, *_ = events_of(0)
        await handoff.ingest.accept(start)
        await drain(handoff)
        [card] = channel.messages
        slack.state.delete(card)  # someone deletes the card in Slack

        await handoff.ingest.accept(stage)
        failed = replace(events_of(0)[-1], event_id="r0-failed", result="failed")
        await handoff.ingest.accept(failed)
        await drain(handoff)
        [again] = cards_shown()  # the card is back, showing the failure, with its reply in its thread
        assert again.text.startswith("Failed: pipe-0 20261128.0")
        assert [r.text for r in again.replies] == ["Failed: pipe-0 20261128.0 failed"]
        first = await handoff.store.get_delivery(1)
        assert first is not None
        [stored] = await handoff.store.cards_for(first.grouping_key)
        assert stored.message_id == again.ts != card.ts
        assert (await handoff.store.count_deliveries())["dead"] == 0
        assert slack.state.channel("C0OPS00001").messages == []  # nothing for ops to worry about
    finally:
        await handoff.store.close()


async def test_a_card_posted_afresh_whose_answer_was_lost_is_not_posted_twice(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    """The card was deleted in Slack; the update posts it afresh, and that post lands but its answer is lost:
    the next attempt finds the post by its marker instead of posting the card again."""
    handoff = await open_handoff(tmp_path / "h.db", slack)
    channel = slack.state.channel("C0LOAD00000")
    try:
        start, stage, *_ = events_of(0)
        await handoff.ingest.accept(start)
        await drain(handoff)
        [card] = channel.messages
        slack.state.delete(card)
        slack.faults.add("POST /api/chat.postMessage", [Fault("reset_after")])
        await handoff.ingest.accept(stage)
        await drain(handoff)
        [shown] = [m for m in channel.messages if not m.deleted]
        [stored] = await handoff.store.cards_for(start.grouping_key)
        assert stored.message_id == shown.ts != card.ts
        assert (await handoff.store.count_deliveries())["dead"] == 0
    finally:
        await handoff.store.close()


async def test_a_run_failing_before_its_card_was_first_posted_is_announced_once(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    bob = slack.world.user("bob")
    subscriptions = [{"channel": "load-0", "events": ["run", "stage"]}]

    def start_and_failure(run: int) -> tuple[RunStateChanged, RunStateChanged]:
        [start, *_] = events_of(run)
        failure = replace(
            start, event_id=f"r{run}-failed", state="completed", result="failed", actor=Person("Bob Chen", bob.email)
        )
        return start, failure

    async with slack_handoff(tmp_path, slack, subscriptions) as handoff:
        # a run that fails fast: its failure is stored while the card's first post is still queued
        for event in start_and_failure(0):
            assert await handoff.ingest.accept(event)
        # an Event Grid-like batch carrying both
        assert await handoff.ingest.accept_all(start_and_failure(CHANNELS)) == [True, True]
        await drain(handoff)
        channel = slack.state.channel("C0LOAD00000")
        # the cards, first posted failed and calling on bob, are the only messages in the channel…
        assert [m.text for m in channel.messages] == [
            f"Failed: pipe-0 20261128.0 <@{bob.id}>",
            f"Failed: pipe-0 20261128.{CHANNELS} <@{bob.id}>",
        ]
        assert not any(m.edits for m in channel.messages)
        # …and each failure's reply stays in its thread, without calling on bob again
        for card in channel.messages:
            [reply] = card.replies
            assert reply.text == f"{card.text.removesuffix(f' <@{bob.id}>')} failed"
            assert not reply.reply_broadcast and "<@" not in reply.text + json.dumps(reply.blocks)
