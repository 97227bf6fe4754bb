"""Slack's rate limits: ``chat.postMessage`` about one message a second per channel, ``chat.update``
(Tier 3) about 50 a minute per workspace; short bursts tolerated.

A token bucket per key (a channel, a workspace): ``burst`` tokens, refilled at ``rate`` per second on the
injected clock.
"""

from __future__ import annotations

import math

from bot.clock import Clock


class TokenBucketLimiter:
    """Admits an operation on a key while its bucket has a token.

    Args:
        rate: tokens added per second.
        burst: bucket size (how many operations may come at once).
        clock: the time source (a ``FakeClock`` in tests).
    """

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str) -> float | None:
        """Take a token and return None, or return the seconds until one is available."""
        now = self.clock.monotonic()
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def reset(self) -> None:
        self._buckets.clear()


def retry_after_header(wait: float) -> str:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait - 1e-9)))
