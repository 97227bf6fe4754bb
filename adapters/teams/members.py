"""The members of Teams conversations whom cards @mention, found by UPN or id and remembered for a while.

A gate's card mentions its approvers every time it is posted or updated, and a failure its requester:
without a cache each would cost a connector call per person per message. Answers are kept, "not a
member" included; a throttled or failed lookup is not (the next message asks again).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from botbuilder.core import BotAdapter, TurnContext

from bot.cards import Mention
from bot.clock import Clock, SystemClock

log = logging.getLogger("handoff.teams")

Member = tuple[str, str]
"""A member's Teams id and name."""


class MemberDirectory:
    """Finds the people a card mentions among a conversation's members.

    Args:
        ttl: seconds an answer is reused (someone who joins the conversation is found after at most this).
        max_entries: how many answers are kept.
        clock: the time source.
    """

    def __init__(self, ttl: float = 300.0, max_entries: int = 2000, clock: Clock | None = None) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock or SystemClock()
        self._answers: OrderedDict[tuple[str, str], tuple[float, Member | None]] = OrderedDict()

    async def members(self, ctx: TurnContext, conversation_id: str, mentions: Sequence[Mention]) -> list[Member]:
        """The Teams id and name of each person mentioned who is a member of the conversation, each once, found
        by Teams id or AAD object id (``teams:``/``aad:`` in the configuration) or else by UPN (as Azure DevOps
        names people); a person Teams does not find now, or named by a Slack id, goes unmentioned. Never raises.

        Straight on the connector: a proactive turn carries no channel data, which ``TeamsInfo`` needs.
        """
        found: dict[str, Member] = {}
        for mention in mentions:
            member = await self._member(ctx, conversation_id, mention)
            if member is not None:
                found.setdefault(member[0], member)
        return list(found.values())

    async def _member(self, ctx: TurnContext, conversation_id: str, mention: Mention) -> Member | None:
        # Teams finds a member by Teams id or AAD object id as well as by UPN; another platform's id finds nobody
        wanted = mention.id_on("teams") or mention.email
        if not wanted:
            return None
        key = (conversation_id, wanted.lower())
        now = self.clock.monotonic()
        cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        client: Any = ctx.turn_state.get(BotAdapter.BOT_CONNECTOR_CLIENT_KEY)
        try:
            account = await client.conversations.get_conversation_member(conversation_id, wanted)
        except Exception as exc:  # not a member (404), throttled, unreachable: no mention this time
            status = getattr(getattr(exc, "response", None), "status_code", None)
            log.info("no mention of a member of the conversation (%s %s)", type(exc).__name__, status or "")
            if status != 404:
                return None  # (not kept: asked again next time)
            account = None
        name = str(account.name or mention.name or mention.email) if account is not None else ""
        member = (str(account.id), name) if account is not None and account.id and name else None
        self._answers[key] = (now, member)
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)
        return member
