"""Who is typing or clicking: the Teams user as the core's policy sees them.

``TeamsInfo.get_member`` gives the person's AAD object id, email and UPN; the policy matches people by
email first, then by ``aad:<object id>``. When the lookup fails (a guest, a throttled roster call), the
activity's own ``from`` (MRI, name, AAD object id) is used, without an email; so it is when the lookup
takes longer than :data:`LOOKUP_WITHIN` (a click's answer is due within 5 s). Answers are cached for a
few minutes per tenant and user, because every click and command asks. The person's time zone is the one
their activity names (``localTimezone``, from the device they typed on), not cached.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import replace

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo

from bot.clock import Clock
from bot.interactions import ChatUser

from .references import tenant_of

log = logging.getLogger("handoff.teams")

LOOKUP_WITHIN = 1.0
"""Seconds the member lookup may take before the activity's own ``from`` is used instead."""


class TeamsIdentity:
    """Resolves the sender of a turn to a :class:`~bot.interactions.ChatUser`.

    Args:
        clock: for the cache's expiry.
        ttl: seconds a looked-up member is reused.
        max_entries: the cache's size.
        lookup_within: seconds the member lookup may take.
    """

    def __init__(
        self, clock: Clock, *, ttl: float = 300.0, max_entries: int = 1000, lookup_within: float = LOOKUP_WITHIN
    ) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self.lookup_within = lookup_within
        self._cache: OrderedDict[tuple[str | None, str], tuple[float, ChatUser]] = OrderedDict()

    async def resolve(self, turn_context: TurnContext) -> ChatUser:
        user = await self._member(turn_context)
        zone = getattr(turn_context.activity, "local_timezone", None)
        return replace(user, time_zone=zone) if isinstance(zone, str) and zone else user

    async def _member(self, turn_context: TurnContext) -> ChatUser:
        activity = turn_context.activity
        sender = activity.from_property
        tenant = tenant_of(activity)
        key = (tenant, sender.id)
        cached = self._cache.get(key)
        if cached is not None and self.clock.monotonic() - cached[0] < self.ttl:
            return cached[1]
        fallback = ChatUser(
            platform="teams",
            user_id=sender.id,
            name=sender.name or "",
            aad_object_id=getattr(sender, "aad_object_id", None) or None,
            workspace_id=tenant,
        )
        try:
            member = await asyncio.wait_for(TeamsInfo.get_member(turn_context, sender.id), self.lookup_within)
        except Exception as exc:  # the roster call can fail in many ways; the activity still says who
            log.warning("Teams member lookup failed (%s); using the activity's sender", type(exc).__name__)
            return fallback
        user = ChatUser(
            platform="teams",
            user_id=sender.id,
            name=member.name or fallback.name,
            email=member.email or member.user_principal_name or None,
            aad_object_id=member.aad_object_id or fallback.aad_object_id,
            workspace_id=tenant or member.tenant_id,
        )
        self._cache[key] = (self.clock.monotonic(), user)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return user
