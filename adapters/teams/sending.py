"""Sending to Teams within its rules: per-conversation rate limits, retries, and one failure type.

Teams throttles each bot per conversation (7 messages per second, 8 per 2 s, 60 per 30 s, 1800 per
hour; a channel's threads count against the channel) and across its conversations (30 requests per
second per app and tenant), and asks bots to retry 412, 429, 502 and 504 with
exponential backoff and jitter, honouring ``Retry-After``. :class:`Pacer` waits for room before each
send, counts the send against the limits until its answer comes (Teams counts it when it arrives), and
retries those answers (and 500 and 503) a few times inline, except a new post answered 500, 502 or 504, which
Teams may have taken: that one goes back to the outbox, which looks for it before posting again; a wait longer than
:attr:`SendPolicy.max_wait` (well inside the time the outbox gives an attempt to send) is not spent inline but handed
back for the outbox to schedule: a wait for room as :class:`~bot.ports.SendLater` (nothing was sent), a
backoff as the retryable :class:`~bot.ports.DeliveryFailed` with its ``retry_after``.
:func:`delivery_failure` turns whatever the SDK raised into that one exception.

A message Teams refuses as too big (413 ``MessageSizeTooBig``) is :class:`MessageTooBig`. Teams' limit is
documented loosely (about 100 KB in UTF-16; older pages say 40 KB, the Power Automate connector 28 KB), so
:func:`shrinking` sends such a card again at once, each time within a much smaller :class:`SizeBudget`,
down to its smallest form; only that form's refusal is final.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from azure.core.exceptions import DeserializationError
from botbuilder.schema import ErrorResponseException
from msrest.exceptions import ClientRequestError

from bot.clock import Clock
from bot.ports import CredentialsRefused, DeliveryFailed, SendLater
from bot.ratelimit import TEAMS_APP_WINDOWS, TEAMS_WINDOWS, SlidingWindowLimiter

from .ids import split_thread
from .renderer import MAX_CARD_BYTES
from .tokens import token_failure

T = TypeVar("T")
M = TypeVar("M")

APP = "app"
"""The app limiter's one key."""

RETRYABLE_STATUSES = frozenset({412, 429, 500, 502, 503, 504})
"""Teams documents 412, 429, 502 and 504 as worth retrying; 503 is transient by definition, and so is the
connector's own 500 (``InternalServerError``) as often as not: the outbox's last attempt still ends in the dead
letter."""
MAY_HAVE_TAKEN_STATUSES = frozenset({500, 502, 504})
"""Answers that may come after Teams took the message: its own failure while answering (500), a gateway's that
lost the answer (502) or gave up waiting for it (504, after 10 to 15 s). A post so answered is looked for before it is
sent again (see :class:`Pacer`)."""
TOO_BIG = 413
UNAUTHORIZED = 401
"""The Bot Connector refuses the bot's token: its app id or password (or the token got with them) is not valid."""
MEANINGS: dict[tuple[object, str | None], str] = {
    (403, "BotDisabledByAdmin"): "the tenant's admin turned Handoff off in Teams"
}
"""What a refusal means, in words, where its code does not say it plainly. A tenant's admin turning Handoff off (in
the Teams admin center, or by an app permission policy) is not the conversation's doing, and turning it back on
tells Handoff nothing: so the conversation is not marked unreachable (which only Teams' events undo), and each
message refused so is given up with this reason, for the ops channel to see."""

log = logging.getLogger("handoff.teams")


class MessageTooBig(DeliveryFailed):
    """Teams refused the message as too big (413 ``MessageSizeTooBig``): not worth sending again as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


@dataclass
class SizeBudget:
    """The size budget (UTF-16 bytes of the message's JSON) a card is fitted to for its next send.

    Args:
        limit: the budget; 0 asks for the card's smallest form.
        sent: the size of the message last sent within it (set by :meth:`fit`).
        halvings: how many times a refusal may halve the budget before the smallest form is tried.
        refused: the size of the message Teams last refused as too big (0: none yet), which the next one sent
            must be smaller than.
        refusal: what Teams answered then.
    """

    limit: int = MAX_CARD_BYTES
    sent: int = 0
    halvings: int = 2
    refused: int = 0
    refusal: str = ""

    def fit(self, build: Callable[[int], M], size: Callable[[M], int]) -> M:
        """The message ``build`` makes within the budget's limit, its ``size`` recorded in :attr:`sent`; always
        smaller than the one last refused (a shortened form carries a truncation note, which can outweigh what it
        cut from a small message: the budget then shrinks further). :class:`MessageTooBig` when not even the
        smallest form is."""
        while True:
            message = build(self.limit)
            self.sent = size(message)
            if not self.refused or self.sent < self.refused:
                return message
            if not self._smaller():
                raise MessageTooBig(self.refusal or f"Teams refused a message of {self.refused} bytes as too big")

    def shrink(self, refusal: str = "") -> bool:
        """After Teams refused the message as too big (``refusal``, what it answered): a much smaller budget
        (half the size it refused, then the smallest form); False if the smallest form was refused."""
        self.refused = self.sent or self.refused
        self.refusal = refusal or self.refusal
        return self._smaller()

    def _smaller(self) -> bool:
        """Halve the budget, or come to the smallest form; False if it was the smallest form already."""
        if self.limit <= 0:
            return False
        if self.halvings > 0:
            self.halvings -= 1
            self.limit = max(1, min(self.limit, self.sent or self.limit) // 2)
        else:
            self.limit = 0
        return True


async def shrinking(send: Callable[[SizeBudget], Awaitable[T]]) -> T:
    """``send`` a card fitted to a :class:`SizeBudget`; when Teams refuses it as too big, again at once
    within a much smaller budget. Raises the last :class:`MessageTooBig` when even the smallest form is
    refused."""
    budget = SizeBudget()
    while True:
        try:
            return await send(budget)
        except MessageTooBig as refused:
            sent = budget.sent
            if not budget.shrink(refused.reason):
                raise
            # the card is shortened visibly (its truncation note), so this is worth knowing, not an alert
            log.warning(
                "%s for a message of %d bytes (UTF-16); sending it again shortened to %s",
                refused.reason,
                sent,
                f"{budget.limit} bytes" if budget.limit else "its title and status",
            )


@dataclass(frozen=True)
class SendPolicy:
    """How :class:`Pacer` paces and retries.

    Args:
        attempts: tries per send, the first included.
        base_delay: the first backoff (seconds), doubled on each retry, with jitter.
        max_delay: the longest backoff between two tries.
        max_wait: the longest wait (rate limit, ``Retry-After``, backoff) spent inline.
        windows: the per-conversation ``(count, seconds)`` limits.
        app_windows: the limits on every send, whatever the conversation (none: not paced). One count for
            all tenants: a Handoff serving several tenants paces them together, below what Teams allows.
    """

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 8.0
    max_wait: float = 10.0
    windows: tuple[tuple[int, float], ...] = TEAMS_WINDOWS
    app_windows: tuple[tuple[int, float], ...] = TEAMS_APP_WINDOWS

    def backoff(self, attempt: int, rng: random.Random) -> float:
        delay = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return float(delay * rng.uniform(0.8, 1.2))


class Pacer:
    """Runs sends to Teams conversations within the rate limits, retrying what Teams says to retry.

    Args:
        clock: time for the limiter and the waits (``FakeClock`` in tests).
        policy: limits and retries.
        rng: jitter source.
    """

    def __init__(self, clock: Clock, policy: SendPolicy | None = None, rng: random.Random | None = None) -> None:
        self.clock = clock
        self.policy = policy or SendPolicy()
        self.rng = rng or random.Random()
        self.limiter = SlidingWindowLimiter(self.policy.windows, clock)
        self.app_limiter = SlidingWindowLimiter(self.policy.app_windows, clock) if self.policy.app_windows else None

    async def run(self, conversation_id: str, send: Callable[[], Awaitable[T]], *, posts: bool = False) -> T:
        """Run ``send`` (which raises only :class:`DeliveryFailed`) for ``conversation_id``.

        A send that ``posts`` a new message is not retried here when Teams may have taken it although its
        answer was lost: the failure goes to the outbox, which looks for the post before posting again.
        """
        key = split_thread(conversation_id)[0]
        attempt = 0
        while True:
            attempt += 1
            wait = self.limiter.delay(key)
            if wait > self.policy.max_wait:
                raise SendLater("Teams rate limit for this conversation reached", wait)
            if (wait := max(wait, self._app_delay())) > self.policy.max_wait:
                raise SendLater("Teams rate limit for the app reached", wait)
            while wait > 0:
                await self.clock.sleep(wait)
                wait = max(self.limiter.delay(key), self._app_delay())
            try:
                with self._sending(key):
                    return await send()
            except DeliveryFailed as failed:
                if failed.retry_after:
                    self.limiter.block(key, failed.retry_after)
                if not failed.retryable or attempt >= self.policy.attempts or (posts and failed.maybe_sent):
                    raise
                if isinstance(failed, CredentialsRefused):  # no use in seconds: the outbox retries it for longer
                    raise
                delay = max(self.policy.backoff(attempt, self.rng), failed.retry_after or 0.0)
                if delay > self.policy.max_wait:
                    raise
                await self.clock.sleep(delay)

    @contextmanager
    def _sending(self, key: str) -> Iterator[None]:
        with self.limiter.sending(key), self.app_limiter.sending(APP) if self.app_limiter else nullcontext():
            yield

    def _app_delay(self) -> float:
        return self.app_limiter.delay(APP) if self.app_limiter is not None else 0.0


def delivery_failure(error: BaseException) -> DeliveryFailed:
    """The :class:`DeliveryFailed` for an exception from botbuilder's connector client."""
    if isinstance(error, DeliveryFailed):
        return error
    if (no_token := token_failure(error)) is not None:  # (a synchronous client's own token, nothing sent)
        return no_token
    if isinstance(error, ErrorResponseException):
        response = error.response
        status = getattr(response, "status_code", None)
        code = error_code(error)
        reason = f"Teams answered {status}" + (f" {code}" if code else "")
        if (meaning := MEANINGS.get((status, code))) is not None:
            reason += f" ({meaning})"
        if status == TOO_BIG:
            return MessageTooBig(reason)
        if status == UNAUTHORIZED:
            return CredentialsRefused(reason)
        if status in RETRYABLE_STATUSES:
            headers = getattr(response, "headers", None) or {}
            retry_after = _retry_after(headers.get("Retry-After"))
            return DeliveryFailed(reason, True, retry_after, maybe_sent=status in MAY_HAVE_TAKEN_STATUSES)
        return DeliveryFailed(reason, False)
    if isinstance(error, ClientRequestError | aiohttp.ClientError | asyncio.TimeoutError | ConnectionError):
        # the request may have reached Teams and taken effect: only the answer is missing
        return DeliveryFailed(f"could not reach Teams ({type(error).__name__})", True, maybe_sent=True)
    if isinstance(error, DeserializationError):
        return DeliveryFailed("Teams sent an answer that is not valid JSON", True, maybe_sent=True)
    return DeliveryFailed(f"sending to Teams failed ({type(error).__name__})", False)


def error_code(error: ErrorResponseException) -> str | None:
    """The ``error.code`` of the Bot Connector's answer (``BotNotInConversationRoster``, ``Forbidden``…), if any."""
    if error.error is not None and error.error.error is not None and error.error.error.code:
        return str(error.error.error.code)
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None
