"""Keeps ``chat.postMessage`` to about one message a second per channel, as Slack asks.

A token bucket per channel (short bursts allowed) on the injected clock. Senders to the same channel
wait their turn; other channels are not held up. This is local smoothing: the outbox already sends one
delivery per conversation at a time, and Slack's 429 with ``Retry-After`` is still honoured.
"""

from __future__ import annotations

import asyncio

from bot.clock import Clock, SystemClock

MARGIN = 0.001
"""Seconds added to each wait, so that rounding never puts a send a hair ahead of Slack's own count."""


class ChannelPacer:
    """Paces posts per channel.

    Args:
        rate: messages per second per channel.
        burst: how many may go at once after a quiet spell.
        clock: the time source (a ``FakeClock`` in tests).
    """

    def __init__(self, rate: float = 1.0, burst: int = 3, clock: Clock | None = None) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock or SystemClock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, channel: str) -> None:
        """Return when a message may be posted to ``channel`` (taking its turn)."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            while True:
                delay = self._take(channel)
                if delay is None:
                    return
                await self.clock.sleep(delay)

    def hold(self, channel: str, seconds: float) -> None:
        """Slack said to wait (a 429's ``Retry-After``): nothing more goes to ``channel`` for ``seconds``, and
        then one at a time, at the rate, with no burst."""
        now = self.clock.monotonic()
        self._buckets[channel] = (min(self._tokens(channel, now), 1.0 - seconds * self.rate), now)

    def _take(self, channel: str) -> float | None:
        now = self.clock.monotonic()
        tokens = self._tokens(channel, now)
        if tokens >= 1.0:
            self._buckets[channel] = (tokens - 1.0, now)
            return None
        self._buckets[channel] = (tokens, now)
        return (1.0 - tokens) / self.rate + MARGIN

    def _tokens(self, channel: str, now: float) -> float:
        """What ``channel``'s bucket holds at ``now``: what it held, refilled at the rate up to the burst."""
        tokens, stamp = self._buckets.get(channel, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate)
