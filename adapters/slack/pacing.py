"""Keeps ``chat.postMessage`` to about one message a second per channel, as Slack asks.

A token bucket per channel (short bursts allowed) on the injected clock. Senders to the same channel
take turns, each waiting for its own; other channels are not held up. A sender may decline a turn
further off than it can wait. This is local smoothing: the outbox already sends one
delivery per conversation at a time, and Slack's 429 with ``Retry-After`` is still honoured.
"""

from __future__ import annotations

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
        # a channel's tokens (below zero: turns taken ahead, each waiting for its time) and when they were counted
        self._buckets: dict[str, tuple[float, float]] = {}

    async def wait(self, channel: str, max_wait: float | None = None) -> float | None:
        """Take the next turn to post to ``channel`` and return (None) when it comes. When it is more than
        ``max_wait`` seconds away, take nothing and return at once how far away it is."""
        now = self.clock.monotonic()
        tokens = self._tokens(channel, now)
        delay = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate + MARGIN
        if max_wait is not None and delay > max_wait:
            self._buckets[channel] = (tokens, now)
            return delay
        self._buckets[channel] = (tokens - 1.0, now)
        if delay > 0:
            await self.clock.sleep(delay)
        return None

    def hold(self, channel: str, seconds: float) -> None:
        """Slack said to wait (a 429's ``Retry-After``): nothing more goes to ``channel`` for ``seconds``, and
        then one at a time, at the rate, with no burst. (Turns taken before are not held back: a call that meets
        a 429 too goes to slack_sdk's retry, or to the outbox with its Retry-After.)"""
        now = self.clock.monotonic()
        self._buckets[channel] = (min(self._tokens(channel, now), 1.0 - seconds * self.rate), now)

    def _tokens(self, channel: str, now: float) -> float:
        """What ``channel``'s bucket holds at ``now``: what it held, refilled at the rate up to the burst."""
        tokens, stamp = self._buckets.get(channel, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate)
