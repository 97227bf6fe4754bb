"""Runs of failures, logged without flooding the log.

A background loop that keeps failing (the store gone, its schema dropped) must neither hammer the store nor
flood the log (:class:`FailureStreak`): it waits longer after each failure (exponential backoff with jitter,
capped), logs one line when it starts failing, a reminder now and then while it goes on, and one line when it
works again. The traceback goes to DEBUG, once per run of failures.

A route whose requests cannot be stored (:class:`RefusalStreak`) answers each with a 503 and its sender
retries: the first refusal is logged with its traceback, the others in one line each, and the first request
stored again says how many were refused meanwhile.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.clock import Clock

# How often a loop still failing says so again.
REMIND_EVERY_SECONDS = 300.0


def one_line(error: BaseException) -> str:
    """What went wrong, in one line: the innermost cause's type and the first line of its message (drivers
    wrap the database's own words in their exceptions, and add the statement on the lines after)."""
    cause = error
    seen = {id(cause)}
    while cause.__cause__ is not None and id(cause.__cause__) not in seen:
        cause = cause.__cause__
        seen.add(id(cause))
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th wait in a row is between half and all of
    ``min(cap, base * 2 ** (n - 1))`` seconds."""

    base: float = 1.0
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass
class FailureStreak:
    """Failures in a row of one background loop (``what``: how the log names it).

    Call :meth:`failed` after each failure (it logs, and returns how long to wait) and :meth:`succeeded`
    after each success (it logs the recovery, once).
    """

    log: logging.Logger
    what: str
    clock: Clock
    recovered: str = "works again"
    # how loud its failures and its recovery are: a loop's own failures are errors; work that failed only because
    # the store was out of reach, and is tried again, is warned of
    level: int = logging.ERROR
    recovered_level: int = logging.WARNING
    backoff: Backoff = field(default_factory=Backoff)
    remind_every: float = REMIND_EVERY_SECONDS
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    _since: float = 0.0
    _reminded_at: float = 0.0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def failed(self, error: BaseException) -> float:
        """Count one more failure, log it if the log should hear of it, and return the seconds to wait."""
        now = self.clock.monotonic()
        self.failures += 1
        wait = self.backoff.delay(self.failures, self.rng)
        if self.failures == 1:
            self._since = self._reminded_at = now
            self.log.log(
                self.level, "%s failed: %s; trying again, and saying so when it works", self.what, one_line(error)
            )
            self.log.debug("%s failed", self.what, exc_info=error)
        elif now - self._reminded_at >= self.remind_every:
            self._reminded_at = now
            self.log.log(
                self.level,
                "%s still failing (%d tries over %s): %s",
                self.what,
                self.failures,
                _seconds(now - self._since),
                one_line(error),
            )
        return wait

    def succeeded(self) -> None:
        """The loop worked: if it had been failing, say it works again."""
        if self.failures:
            elapsed = _seconds(self.clock.monotonic() - self._since)
            self.log.log(
                self.recovered_level,
                "%s: %s after %d failed tries over %s",
                self.what,
                self.recovered,
                self.failures,
                elapsed,
            )
            self.failures = 0


@dataclass
class RefusalStreak:
    """Requests in a row that a route could not store (``what``: how the log names the route).

    Call :meth:`refused` for each request answered 503 for internal trouble and :meth:`stored` for each request
    that went through. During an outage a sender such as Azure DevOps keeps delivering: one traceback tells the
    cause, and each later refusal is one line (the cause's type and first line).
    """

    log: logging.Logger
    what: str
    monotonic: Callable[[], float] = time.monotonic
    refusals: int = 0
    _since: float = 0.0

    def refused(self, request: str, error: BaseException, *, traceback: bool = True) -> None:
        """Log that ``request`` (a short description, safe for the log) was not stored because of ``error``;
        without its traceback where ``error`` says all there is (the store did not answer in time)."""
        self.refusals += 1
        if self.refusals == 1:
            self._since = self.monotonic()
            if traceback:
                self.log.error("%s %s: not stored, asked to retry", self.what, request, exc_info=error)
            else:
                self.log.error("%s %s: not stored, asked to retry (%s)", self.what, request, one_line(error))
        else:
            self.log.warning(
                "%s %s: not stored, asked to retry (%s; %d refused in a row)",
                self.what,
                request,
                one_line(error),
                self.refusals,
            )

    def stored(self) -> None:
        """A request was stored: if some were refused before it, say that storing works again."""
        if self.refusals:
            elapsed = _seconds(self.monotonic() - self._since)
            self.log.warning(
                "%s: storing works again after %d request(s) answered 503 over %s (their senders retry them)",
                self.what,
                self.refusals,
                elapsed,
            )
            self.refusals = 0


def _seconds(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"
