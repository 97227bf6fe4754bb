"""Activities Teams sends again: the work they ask for runs once, whichever replica gets them.

Teams sends an invoke again when it has no answer within 5 s, and a message when it has none within about
15 s, to any replica; a click or a command would otherwise be decided or run twice. Each activity is known
by its conversation and id: the first delivery does the work; one sent again gets the first's answer if
this process has it (waiting a little for it), else a neutral one. Replicas share the store's event log
(the key ``teams:activity:<conversation>:<activity id>``, remembered as long as the store keeps event ids);
this process also remembers its own answers for a few minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from botbuilder.schema import Activity

from bot.clock import Clock
from bot.ports import EventLog
from bot.records import ReceivedEvent

log = logging.getLogger("handoff.teams")

T = TypeVar("T")

MAX_KEY = 400
"""The longest dedupe key the store keeps; a longer one is hashed."""


def activity_key(activity: Activity) -> str | None:
    """The dedupe key of an activity (None when Teams gave it no id)."""
    conversation = getattr(activity.conversation, "id", None)
    if not activity.id or not conversation:
        return None
    key = f"teams:activity:{conversation}:{activity.id}"
    if len(key) > MAX_KEY:
        key = "teams:activity:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


class Redeliveries:
    """Runs the work of each activity once, answering a redelivery as the first delivery was answered.

    Args:
        events: the store's event log, shared by replicas (None: this process only).
        clock: time for how long answers are remembered, and the events' receipt times.
        remember_for: seconds this process remembers an activity and its answer.
        max_entries: how many activities this process remembers at most.
    """

    def __init__(
        self, events: EventLog | None, clock: Clock, *, remember_for: float = 300.0, max_entries: int = 5000
    ) -> None:
        self.events = events
        self.clock = clock
        self.remember_for = remember_for
        self.max_entries = max_entries
        self._answers: OrderedDict[str, tuple[float, asyncio.Future[Any]]] = OrderedDict()

    async def once(self, activity: Activity, work: Callable[[], Awaitable[T]], *, again: T, wait: float = 0.0) -> T:
        """``work()``'s answer if ``activity`` is delivered for the first time. A redelivery runs nothing: it
        gets the first delivery's answer, if this process has it within ``wait`` seconds, else ``again``.

        If ``work`` raises, the activity is forgotten here, so that Teams sending it again runs it (the
        store's record stays: do there what may fail before calling this)."""
        key = activity_key(activity)
        if key is None:
            return await work()
        self._expire()
        earlier = self._answers.get(key)
        if earlier is not None:
            return await self._earlier_answer(earlier[1], again, wait)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[key] = (self.clock.monotonic(), answer)
        try:
            result = await work() if await self._first_delivery(key, activity) else again
        except BaseException:
            if self._answers.get(key, (0.0, None))[1] is answer:
                del self._answers[key]
            answer.cancel()
            raise
        answer.set_result(result)
        return result

    @staticmethod
    async def _earlier_answer(answer: asyncio.Future[Any], again: T, wait: float) -> T:
        if not answer.done() and wait > 0:
            await asyncio.wait({answer}, timeout=wait)  # (cancels nothing)
        if answer.done() and not answer.cancelled():
            result: T = answer.result()
            return result
        return again

    async def _first_delivery(self, key: str, activity: Activity) -> bool:
        """Whether no replica has had this activity yet; it counts as had from now. When the store cannot
        say, it is handled (a command run twice is the lesser harm than one never run)."""
        if self.events is None:
            return True
        kind = "/".join(str(p) for p in (activity.type, activity.name) if p)[:128]
        try:
            return await self.events.record_event(ReceivedEvent(key, "teams", kind, self.clock.now()), ())
        except Exception as exc:
            log.warning("could not tell whether Teams sent %s before (%s): handling it", key, type(exc).__name__)
            return True

    def _expire(self) -> None:
        now = self.clock.monotonic()
        while self._answers:
            key, (at, _) = next(iter(self._answers.items()))
            if now - at < self.remember_for and len(self._answers) <= self.max_entries:
                break
            del self._answers[key]
