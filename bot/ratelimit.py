"""Per-conversation send limits over several sliding windows, on the injectable clock.

Teams allows 7 messages per second, 8 per 2 s, 60 per 30 s and 1800 per hour in one conversation, and
30 requests per second across all of a bot's conversations in a tenant; Slack about one per second per
channel. A 429's ``Retry-After`` blocks the conversation until then.
(Rate-limit libraries keep their own clocks; the outbox's limits must move with the test clock.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence

from bot.clock import Clock

SLACK_WINDOWS: tuple[tuple[int, float], ...] = ((1, 1.0),)
TEAMS_WINDOWS: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
# every request of the bot in a tenant, whatever the conversation (30 per second in the doc version the
# reference read; a 2022 answer quoted 50)
TEAMS_APP_WINDOWS: tuple[tuple[int, float], ...] = ((30, 1.0),)
FORGET_EVERY = 1000  # sends between two sweeps of the conversations gone quiet


class SlidingWindowLimiter:
    """Allows at most ``count`` sends per ``seconds`` for every (count, seconds) window, per key."""

    def __init__(self, windows: Sequence[tuple[int, float]], clock: Clock) -> None:
        self.windows = tuple(windows)
        self.clock = clock
        self._horizon = max(seconds for _, seconds in self.windows)
        self._sent: dict[Hashable, deque[float]] = {}
        self._blocked_until: dict[Hashable, float] = {}
        self._records = 0

    def delay(self, key: Hashable) -> float:
        """Seconds to wait before the next send to ``key`` fits every window."""
        now = self.clock.monotonic()
        sent = self._sent.get(key)
        wait = max(0.0, self._blocked_until.get(key, 0.0) - now)
        if sent:
            while sent and sent[0] <= now - self._horizon:
                sent.popleft()
            for count, seconds in self.windows:
                if len(sent) >= count:
                    # the send that must leave this window before another fits
                    wait = max(wait, sent[-count] + seconds - now)
        return wait

    def record(self, key: Hashable) -> None:
        now = self.clock.monotonic()
        self._sent.setdefault(key, deque()).append(now)
        self._records += 1
        if self._records % FORGET_EVERY == 0:
            self._forget_quiet(now)

    def _forget_quiet(self, now: float) -> None:
        """Drop what no window or block needs any more: a long-running process sends to many conversations
        over its life, most of them now and then."""
        for key in [key for key, sent in self._sent.items() if not sent or sent[-1] <= now - self._horizon]:
            del self._sent[key]
        self._blocked_until = {key: until for key, until in self._blocked_until.items() if until > now}

    def remembered(self) -> set[Hashable]:
        """The conversations this limiter holds sends or a block for."""
        return set(self._sent) | set(self._blocked_until)

    def block(self, key: Hashable, seconds: float) -> None:
        """The platform said to wait (a 429's Retry-After)."""
        until = self.clock.monotonic() + seconds
        self._blocked_until[key] = max(until, self._blocked_until.get(key, 0.0))

    async def acquire(self, key: Hashable) -> None:
        """Wait until a send to ``key`` fits, then count it."""
        while (wait := self.delay(key)) > 0:
            await self.clock.sleep(wait)
        self.record(key)
