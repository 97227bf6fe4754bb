"""The per-conversation limiter honours every window, on the fake clock."""

from __future__ import annotations

import asyncio

from bot.clock import FakeClock
from bot.ratelimit import FORGET_EVERY, SLACK_WINDOWS, TEAMS_WINDOWS, SlidingWindowLimiter


def test_teams_windows() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(TEAMS_WINDOWS, clock)
    for _ in range(7):
        assert limiter.delay("c") == 0
        limiter.record("c")
    assert limiter.delay("c") == 1.0  # 7 per second
    assert limiter.delay("other") == 0  # per conversation


async def test_acquire_spreads_a_burst_within_every_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(TEAMS_WINDOWS, clock)
    sent: list[float] = []

    async def burst() -> None:
        for _ in range(100):
            await limiter.acquire("c")
            sent.append(clock.monotonic())

    task = asyncio.create_task(burst())
    while not task.done():
        await clock.advance(0.25)
    for count, seconds in TEAMS_WINDOWS:
        for i in range(len(sent)):
            in_window = [t for t in sent[i:] if t < sent[i] + seconds]
            assert len(in_window) <= count, (count, seconds)
    # 8 per 2 s sends the first 60 by ~15 s; 60 per 30 s holds the 61st until 30 s; 40 more at 4/s
    assert 38 <= sent[-1] <= 41


def test_retry_after_blocks_the_conversation() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(SLACK_WINDOWS, clock)
    limiter.block("c", 5)
    assert limiter.delay("c") == 5
    limiter.record("d")
    assert limiter.delay("d") == 1.0


async def test_conversations_gone_quiet_are_forgotten() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(SLACK_WINDOWS, clock)
    limiter.block("blocked", 3600)
    for n in range(FORGET_EVERY - 1):  # a long-running process sends to conversation after conversation
        limiter.record(f"c{n}")
        await clock.advance(0.01)
    await clock.advance(2.0)
    assert limiter.delay("c0") == 0  # (which empties what it holds for c0)
    limiter.record("new")  # the thousandth send sweeps the quiet ones
    assert limiter.remembered() == {"new", "blocked"}
    assert limiter.delay("blocked") > 3500  # a block outlives the sweep
    assert limiter.delay("c1") == 0


async def test_a_send_counts_as_sent_until_its_answer_comes_and_then_when_it_came() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(SLACK_WINDOWS, clock)
    with limiter.sending("c"):
        assert limiter.delay("c") == 1.0
        await clock.advance(0.75)  # on its way: the platform may count it any moment now
        assert limiter.delay("c") == 1.0
    assert limiter.delay("c") == 1.0  # answered: it counts from now
    await clock.advance(0.5)
    assert limiter.delay("c") == 0.5
    assert limiter.remembered() == {"c"}
