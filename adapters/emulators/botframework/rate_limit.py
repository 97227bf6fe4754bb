"""Teams' per-conversation throttling: several sliding windows, each ``count`` operations per ``seconds``.

Only accepted operations count. A refused one learns how long to wait until the busiest window has room,
which the emulator sends as ``Retry-After`` (whole seconds, at least 1).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque

from bot.clock import Clock

Windows = tuple[tuple[int, float], ...]


class SlidingWindowLimiter:
    """Admits an operation on a key only if every ``(count, seconds)`` window has room.

    Args:
        windows: e.g. ``((7, 1), (8, 2), (60, 30), (1800, 3600))``.
        clock: the time source (a ``FakeClock`` in tests).
    """

    def __init__(self, windows: Windows, clock: Clock) -> None:
        self.windows = windows
        self.clock = clock
        self._log: defaultdict[str, deque[float]] = defaultdict(deque)
        self._horizon = max((seconds for _, seconds in windows), default=0.0)

    def acquire(self, key: str) -> float | None:
        """Count one operation on ``key`` and return None, or return the seconds to wait if refused."""
        wait = self.wait(key)
        if wait > 0:
            return wait
        self.count(key)
        return None

    def wait(self, key: str) -> float:
        """The seconds until an operation on ``key`` would be admitted (0: now); nothing is counted."""
        now = self.clock.monotonic()
        log = self._log[key]
        while log and log[0] <= now - self._horizon:
            log.popleft()
        return max((self._wait(log, now, count, seconds) for count, seconds in self.windows), default=0.0)

    def count(self, key: str) -> None:
        """Count one admitted operation on ``key``."""
        self._log[key].append(self.clock.monotonic())

    @staticmethod
    def _wait(log: deque[float], now: float, count: int, seconds: float) -> float:
        recent = [t for t in log if t > now - seconds]
        if len(recent) < count:
            return 0.0
        # the window has room again once the oldest (len - count + 1) entries have left it
        return recent[len(recent) - count] + seconds - now

    def reset(self) -> None:
        self._log.clear()


def retry_after_header(wait: float) -> str:
    """``Retry-After`` as Teams and Slack send it: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait - 1e-9)))
