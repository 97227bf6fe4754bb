"""Notification throughput: Azure DevOps run events become living cards in 20 Slack channels, delivered
to the Slack emulator at its rate limits.

Handoff's core runs in this process on SQLite (``build_handoff``), with the real Slack ``ChatChannel``
(slack_sdk's ``AsyncWebClient``) talking to the Slack emulator over loopback. Each of 100 runs sends 10
events (run started, 4 stages running then completed, run completed); one run in ten fails a stage.
A subscription per channel routes 5 runs to each of 20 channels. All 1,000 events are ingested first
(concurrently, as webhooks arrive), then the outbox worker starts and the clock runs until every
delivery is done.

The floor is what Slack's rate limit alone allows. Slack accepts about one message per second per
channel, so a channel that must receive ``n`` calls needs ``n`` seconds (``n ÷ 1/s``: each call takes
its one-second slot, the first one included, so a perfect sender finishes within a second under it).
The calls that must happen in a channel are one post per run card shown there plus one thread reply
per failure the card announces (counted by folding each run's events with the core's own merge); no
update is needed, since every event is known before the first post and a card can be posted showing
its final state. Channels are served in parallel, so the floor is the largest channel's::

    floor = max over channels c of (cards_c + replies_c) / (1 message/s)

It prints the time to drain against that floor, the Web API calls per event and the 429s the emulator
answered (both from its request recorder), and checks that nothing was lost: each run's final state is
shown on exactly one card in its channel, with its failure reply, and no delivery was dead-lettered.

    python bench/notify.py [--runs 100] [--channels 20] [--replicas 1]

``--replicas 2`` drains with two outbox workers, each with a store connection and a Slack client of its
own on the one database, as two replicas of ``handoff serve`` would: they take turns at the channels and
must together keep to Slack's limit (no more 429s than one alone).

Target: time to drain within 1.2 of the floor, no loss. ``--runs`` scales the event count (10 per run)
down with the same shape, for slower machines.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adapters.emulators.slack import SlackEmulator  # noqa: E402
from adapters.emulators.slack.world import default_world  # noqa: E402
from adapters.slack.channel import SlackChatChannel, make_client  # noqa: E402
from adapters.slack.renderer import render_card  # noqa: E402
from adapters.sql import SqlStore  # noqa: E402
from bot.app import add_channel, build_handoff  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import parse_settings  # noqa: E402
from bot.events import DomainEvent, PipelineRef, RunStateChanged, StageStateChanged  # noqa: E402
from bot.living import merge, render  # noqa: E402
from bot.outbox import OutboxWorker  # noqa: E402

EVENTS_PER_RUN = 10
STAGES = ("Build", "Unit tests", "Integration tests", "Deploy")
FAILING_STAGE = "Integration tests"
SLACK_MESSAGES_PER_SECOND = 1.0
T0 = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Run:
    index: int
    channel: int
    fails: bool

    @property
    def ref(self) -> PipelineRef:
        return PipelineRef(
            organization="contoso",
            project="mlops",
            pipeline_id=str(100 + self.channel),
            pipeline_name=f"pipeline-{self.channel:02d}",
            run_id=str(5000 + self.index),
            run_name=f"20261128.{self.index}",
            branch="refs/heads/main",
        )

    def events(self) -> list[DomainEvent]:
        """The run's 10 events, in the order Azure DevOps sends them."""
        common: dict[str, Any] = {"source": "azure-devops", "scope": "contoso", "project": "mlops", "run": self.ref}
        at = T0 + timedelta(seconds=self.index)
        out: list[DomainEvent] = [
            RunStateChanged(event_id=f"{self.index}-start", occurred_at=at, state="inProgress", started_at=at, **common)
        ]
        failed = False
        for number, stage in enumerate(STAGES):
            result = "skipped" if failed else "failed" if self.fails and stage == FAILING_STAGE else "succeeded"
            failed = failed or result == "failed"
            for state in ("inProgress", "completed"):
                out.append(
                    StageStateChanged(
                        event_id=f"{self.index}-{number}-{state}",
                        occurred_at=at,
                        stage_name=stage.lower().replace(" ", "_"),
                        stage_display_name=stage,
                        state=state,
                        result=result if state == "completed" else None,
                        **common,
                    )
                )
        out.append(
            RunStateChanged(
                event_id=f"{self.index}-done",
                occurred_at=at,
                state="completed",
                result="failed" if failed else "succeeded",
                started_at=at,
                finished_at=at + timedelta(minutes=7),
                **common,
            )
        )
        assert len(out) == EVENTS_PER_RUN
        return out


def channel_id(number: int) -> str:
    return f"C0BENCH{number:04d}"


def plan(runs: int, channels: int) -> list[Run]:
    """Runs spread evenly over the channels (consecutive runs share one); one run in ten fails."""
    per_channel = max(1, runs // channels)
    return [Run(i, min(i // per_channel, channels - 1), i % 10 == 3) for i in range(runs)]


def world(channels: int) -> dict[str, Any]:
    """The emulator's default Slack world plus the bench's channels, the bot a member of each."""
    slack = default_world()
    slack["channels"] = [
        *slack["channels"],
        *({"id": channel_id(c), "name": f"bench-{c:02d}", "members": ["alice", "bot"]} for c in range(channels)),
    ]
    return slack


def settings(channels: int) -> Any:
    return parse_settings(
        {
            "channels": {f"bench-{c:02d}": {"slack": channel_id(c)} for c in range(channels)},
            "subscriptions": [
                {"channel": f"bench-{c:02d}", "events": ["run", "stage"], "pipelines": [f"pipeline-{c:02d}"]}
                for c in range(channels)
            ],
        },
        {},
    )


def final_state(run: Run) -> tuple[dict[str, Any], int]:
    """The run's card state after all its events, and how many thread replies its merges asked for."""
    state: dict[str, Any] | None = None
    replies = 0
    for event in run.events():
        merged = merge(state, event)
        state, replies = merged.state, replies + len(merged.replies)
    assert state is not None
    return state, replies


def floor_seconds(runs: list[Run]) -> tuple[float, Counter[int]]:
    calls: Counter[int] = Counter()
    for run in runs:
        calls[run.channel] += 1 + final_state(run)[1]
    return max(calls.values()) / SLACK_MESSAGES_PER_SECOND, calls


def losses(slack: SlackEmulator, runs: list[Run]) -> list[str]:
    """What is not as it should be: each run's final state on exactly one card in its channel, its replies."""
    problems = []
    by_channel: dict[int, list[Run]] = {}
    for run in runs:
        by_channel.setdefault(run.channel, []).append(run)
    for number, expected_runs in by_channel.items():
        shown = [m for m in slack.state.channel(channel_id(number)).messages if not m.deleted and m.by_bot]
        # a failure's reply is also shown in the channel (broadcast): it is no card of its own
        messages = [m for m in shown if m.thread_ts is None]
        if len(messages) != len(expected_runs):
            problems.append(f"{channel_id(number)}: {len(messages)} cards for {len(expected_runs)} runs")
        for run in expected_runs:
            state, replies = final_state(run)
            content = render_card(render(state))
            showing = [m for m in messages if m.blocks == content.blocks and m.text == content.text]
            if len(showing) != 1:
                problems.append(f"run {run.index}: its final state is on {len(showing)} cards in {channel_id(number)}")
            elif len(showing[0].replies) != replies:
                problems.append(f"run {run.index}: {len(showing[0].replies)} thread replies, expected {replies}")
    return problems


async def wait_drained(store: SqlStore) -> dict[str, int]:
    while True:
        counts = await store.count_deliveries()
        if counts["pending"] == 0:
            return counts
        await asyncio.sleep(0.02)


async def bench(runs_count: int, channels: int, replicas: int) -> int:
    runs = plan(runs_count, channels)
    floor, calls_needed = floor_seconds(runs)
    events_by_step = list(zip(*(run.events() for run in runs), strict=True))
    total = sum(len(step) for step in events_by_step)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'handoff.db'}"
        store = await SqlStore.open(url)
        async with SlackEmulator(world(channels)) as slack:
            client = make_client(slack.bot_token, slack.api_url)
            clock = SystemClock()
            handoff = build_handoff(settings(channels), store, clock)
            add_channel(handoff, "slack", SlackChatChannel(client))
            gc.freeze()  # start-up objects out of the collector's way, as in a long-running server
            # ingest: the runs advance together, each step's events arrive at once
            started = time.perf_counter()
            for step in events_by_step:
                accepted = await asyncio.gather(*(handoff.ingest.accept(event) for event in step))
                assert all(accepted), "every event is new"
            ingested = time.perf_counter() - started
            slack.recorder.clear()
            others = [await SqlStore.open(url, migrate=False) for _ in range(replicas - 1)]
            outboxes = [handoff.outbox] + [
                OutboxWorker(other, {"slack": SlackChatChannel(make_client(slack.bot_token, slack.api_url))}, clock)
                for other in others
            ]
            stop = asyncio.Event()
            started = time.perf_counter()
            workers = [asyncio.create_task(outbox.run(stop)) for outbox in outboxes]
            counts = await wait_drained(store)
            drained = time.perf_counter() - started
            stop.set()
            await asyncio.gather(*workers)
            for other in others:
                await other.close()
            requests = [r for r in slack.recorder.requests if r.path.startswith("/api/")]
            by_method = Counter(r.path.removeprefix("/api/") for r in requests)
            rate_limited = sum(1 for r in requests if r.status == 429)
            problems = losses(slack, runs)
            await handoff.close()
        await store.close()
    scaled = runs_count != 100 or channels != 20
    print(
        f"{total} run events for {runs_count} runs across {channels} Slack channels"
        + (" (scaled down from 1,000 / 100 / 20, same shape)" if scaled else "")
        + (f", delivered by {replicas} replicas' outboxes" if replicas > 1 else "")
    )
    print(f"ingest: {ingested:.2f} s ({total / ingested:,.0f} events/s, in process)")
    print(
        f"floor: {floor:.1f} s (largest channel: {max(calls_needed.values())} calls at "
        f"{SLACK_MESSAGES_PER_SECOND:g} message/s; cards + failure replies)"
    )
    print(f"time to drain: {drained:.2f} s  ratio to floor: {drained / floor:.2f}")
    calls = ", ".join(f"{method} {n}" for method, n in sorted(by_method.items()))
    print(f"API calls: {len(requests)} ({calls}); per event: {len(requests) / total:.3f}")
    print(f"429s seen: {rate_limited}")
    print(f"deliveries: {counts['sent']} sent, {counts['dead']} dead-lettered")
    for problem in problems[:10]:
        print(f"LOST: {problem}")
    lost = bool(problems) or counts["dead"] > 0
    ratio = drained / floor
    print(
        f"targets: within 1.2 of the floor ({'met' if ratio <= 1.2 else 'missed'}); "
        f"no loss ({'missed' if lost else 'met'})"
    )
    return 1 if lost else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="runs, 10 events each (default 100)")
    parser.add_argument("--channels", type=int, default=20, help="Slack channels (default 20)")
    parser.add_argument("--replicas", type=int, default=1, help="outbox workers on the one database (default 1)")
    args = parser.parse_args()
    if args.runs < args.channels:
        parser.error("--runs must be at least --channels")
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return asyncio.run(bench(args.runs, args.channels, args.replicas))


if __name__ == "__main__":
    sys.exit(main())
