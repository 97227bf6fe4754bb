"""Per-conversation send limits over several sliding windows, on the injectable clock.

Teams allows 7 messages per second, 8 per 2 s, 60 per 30 s and 1800 per hour in one conversation, and
30 requests per second across all of a bot's conversations in a tenant; Slack about one per second per
channel. A 429's ``Retry-After`` blocks the conversation until then. The platform counts a request when it
arrives, which can be any time until its answer comes: :meth:`SlidingWindowLimiter.sending` counts it as sent
at every moment until then, and at the moment of its answer from then on.
(Rate-limit libraries keep their own clocks; the outbox's limits must move with the test clock.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager

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
        self._in_flight: dict[Hashable, int] = {}
        self._records = 0

    def delay(self, key: Hashable) -> float:
        """Seconds to wait before the next send to ``key`` fits every window."""
        now = self.clock.monotonic()
        sent = self._sent.get(key)
        wait = max(0.0, self._blocked_until.get(key, 0.0) - now)
        if sent:
            while sent and sent[0] <= now - self._horizon:
                sent.popleft()
        in_flight = self._in_flight.get(key, 0)
        for count, seconds in self.windows:
            if in_flight >= count:
                # a send still on its way may arrive now: its window ends no sooner than a full one from now
                wait = max(wait, seconds)
            elif sent and len(sent) + in_flight >= count:
                # the send that must leave this window before another fits
                wait = max(wait, sent[in_flight - count] + seconds - now)
        return wait

    def record(self, key: Hashable) -> None:
        now = self.clock.monotonic()
        self._sent.setdefault(key, deque()).append(now)
        self._records += 1
        if self._records % FORGET_EVERY == 0:
            self._forget_quiet(now)

    @contextmanager
    def sending(self, key: Hashable) -> Iterator[None]:
        """Count a send to ``key`` that goes out now and whose answer comes when the block ends (or raises).

        The platform counts a request when it arrives, at some moment before its answer: until then the send
        counts as sent at every moment, and from then on as sent when its answer came. Counting it when it left
        instead lets the next send into a window the platform may see as full when this one was slow on its way.
        """
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            yield
        finally:
            if (left := self._in_flight[key] - 1) > 0:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]
            self.record(key)

    def _forget_quiet(self, now: float) -> None:
        """Drop what no window or block needs any more: a long-running process sends to many conversations
        over its life, most of them now and then."""
        for key in [key for key, sent in self._sent.items() if not sent or sent[-1] <= now - self._horizon]:
            del self._sent[key]
        self._blocked_until = {key: until for key, until in self._blocked_until.items() if until > now}

    def remembered(self) -> set[Hashable]:
        """The conversations this limiter holds sends or a block for."""
        return set(self._sent) | set(self._blocked_until) | set(self._in_flight)

    def block(self, key: Hashable, seconds: float) -> None:
        """The platform said to wait (a 429's Retry-After)."""
        until = self.clock.monotonic() + seconds
        self._blocked_until[key] = max(until, self._blocked_until.get(key, 0.0))

    async def acquire(self, key: Hashable) -> None:
        """Wait until a send to ``key`` fits, then count it."""
        while (wait := self.delay(key)) > 0:
            await self.clock.sleep(wait)
        self.record(key)
