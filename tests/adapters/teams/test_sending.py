"""The Teams pacer keeps to Teams' limits as Teams counts them: when each request arrives."""

from __future__ import annotations

import asyncio

from adapters.emulators.botframework.rate_limit import SlidingWindowLimiter as TeamsCount
from adapters.teams.sending import Pacer, SendPolicy
from bot.clock import FakeClock


async def test_a_send_slow_on_its_way_still_counts_when_the_next_ones_go(clock: FakeClock) -> None:
    teams = TeamsCount(((5, 1.0),), clock)  # the bot's 5 requests a second, counted on arrival, as Teams does
    pacer = Pacer(clock, SendPolicy(app_windows=((5, 1.0),)))
    refused: list[float] = []

    async def send(latency: float) -> None:
        if latency:
            await clock.sleep(latency)  # on its way to Teams
        if teams.acquire("app") is not None:
            refused.append(clock.monotonic())

    # one to each of ten conversations; the first takes half a second to reach Teams
    sends = [pacer.run(f"19:c{i}@thread.tacv2", lambda i=i: send(0.5 if i == 0 else 0.0)) for i in range(10)]
    burst = asyncio.gather(*sends)
    await asyncio.sleep(0)  # the first five go
    while not burst.done():
        await clock.advance(0.25)
    await burst

    assert refused == []
    assert clock.monotonic() >= 1.5  # five at 0, four at 1 s (the slow one arrived at 0.5 s), the last at 1.5 s
