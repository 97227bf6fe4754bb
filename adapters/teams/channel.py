"""The Teams :class:`~bot.ports.ChatChannel`: cards posted, updated and threaded, proactively.

- ``post_card`` to a channel starts a new thread there (``TeamsInfo.send_message_to_teams_channel`` with
  the bot's app id, inside ``continue_conversation`` on the channel's stored reference); to a personal or
  group chat it sends into the chat; to a person (an MRI ``29:…``) it uses their 1:1 chat with the bot,
  creating it (with the tenant id) the first time. ``tell_person`` sends a person a plain message there.
- ``reply`` posts into the thread ``<channel>;messageid=<root>``; ``update_card`` replaces the message
  with ``update_activity``. Teams answers either with 404 when the message was deleted: that is
  :class:`~bot.ports.MessageGone`, and so is an update Teams refuses for that message alone (403 ``Forbidden``:
  "a bot can only update its own messages"), so that the card is posted afresh. A send refused because Handoff
  is no longer in the team or chat (403 ``BotNotInConversationRoster``), the person blocked it (403
  ``ConversationBlockedByUser``) or the conversation is gone (404 ``ConversationNotFound``) is
  :class:`~bot.ports.ConversationUnreachable`; so is any send to a conversation stored inactive (Teams said
  Handoff was removed from it), unsent. Another 403 on a post refuses that message only.
- Every send goes through a :class:`~adapters.teams.sending.Pacer` (rate limits, retries); every failure
  is a :class:`~bot.ports.DeliveryFailed`.
- A card's message is kept within :data:`~adapters.teams.renderer.MAX_CARD_BYTES` as a whole (card, summary,
  mentions); a post, reply or update Teams refuses as too big (413) is sent again at once, shortened much
  further (:func:`~adapters.teams.sending.shrinking`), down to the card's title and status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    ErrorResponseException,
)
from botframework.connector import Channels

from bot.cards import Card
from bot.ports import ConversationUnreachable, DeliveryFailed, MessageGone, PostedMessage
from bot.records import ConversationAddress, ConversationRecord, Platform

from . import markdown
from .ids import is_channel_id, is_user_id, split_thread, thread_id
from .members import MemberDirectory
from .references import StoredReference
from .registry import ConversationRegistry
from .renderer import MAX_CARD_BYTES, fit_card, message_size, render_card, with_mentions
from .sending import Pacer, SizeBudget, delivery_failure, error_code, shrinking
from .text import truncate

if TYPE_CHECKING:
    from .graph import GraphMessages

T = TypeVar("T")

log = logging.getLogger("handoff.teams")

# The notification text beside the card (counted in the message's size like the rest).
SUMMARY_LENGTH = 300
UNREACHABLE_CODES = frozenset(
    {(403, "BotNotInConversationRoster"), (403, "ConversationBlockedByUser"), (404, "ConversationNotFound")}
)
"""The Bot Connector's refusals meaning Handoff cannot send in the conversation at all (removed, blocked, gone)."""


def card_activity(
    card: Card,
    marker: str | None = None,
    mentioned: Sequence[tuple[str, str]] = (),
    budget: int = MAX_CARD_BYTES,
    text: str | None = None,
) -> Activity:
    """A message activity carrying ``card`` as an Adaptive Card (``summary`` is the plain text).

    ``marker`` becomes the id of the card's title, where Microsoft Graph shows it to
    :meth:`TeamsChatChannel.find_posted` (the card's content is all Graph returns of it); ``mentioned``
    (Teams member id, name) are the people the card @mentions; ``text`` (Teams markdown) is shown with the
    card. The card is shortened until the whole activity is at most ``budget`` bytes (:func:`activity_size`);
    a ``budget`` of 0 gives its smallest form.
    """

    def build(shown: Card) -> Activity:
        content = with_mentions(render_card(shown, limit=None), mentioned)
        if marker:
            content["body"][0]["id"] = marker
        activity: Activity = MessageFactory.attachment(CardFactory.adaptive_card(content))
        activity.summary = truncate(card.text, SUMMARY_LENGTH, "…")
        if text:
            activity.text = text
        return activity

    return build(fit_card(card, budget, lambda shown: activity_size(build(shown))))


def activity_size(activity: Activity) -> int:
    """The size Teams counts of ``activity`` (approximately: its JSON in UTF-16 bytes, as the SDK sends it
    before the conversation's addresses are added)."""
    return message_size(activity.serialize())


def fitted_activity(
    card: Card,
    budget: SizeBudget,
    marker: str | None = None,
    mentioned: Sequence[tuple[str, str]] = (),
    text: str | None = None,
) -> Activity:
    """``card``'s activity (see :func:`card_activity`) within ``budget``, smaller than any Teams refused as too
    big (see :meth:`~adapters.teams.sending.SizeBudget.fit`): the activity of one send in
    :func:`~adapters.teams.sending.shrinking`."""
    return budget.fit(lambda limit: card_activity(card, marker, mentioned, limit, text), activity_size)


class TeamsChatChannel:
    """Posts Handoff's cards to Teams.

    Args:
        adapter: the ``CloudAdapter`` that also serves ``/api/messages``.
        registry: the stored conversation references.
        bot_app_id: the bot's app id (any non-empty id when authentication is off).
        pacer: rate limits and retries.
        tenant_id: the tenant to reach people in, when Handoff serves one tenant.
        graph: Microsoft Graph, to find posts whose answer was lost (``teams.graph.find_lost_posts``);
            without it such a post is sent again.
        members: where the people cards @mention are looked up.
    """

    platform: Platform = "teams"

    def __init__(
        self,
        adapter: CloudAdapter,
        registry: ConversationRegistry,
        *,
        bot_app_id: str,
        pacer: Pacer,
        tenant_id: str | None = None,
        graph: GraphMessages | None = None,
        members: MemberDirectory | None = None,
    ) -> None:
        self.adapter = adapter
        self.members = members or MemberDirectory()
        self.graph = graph
        self._team_groups: dict[str, str] = {}
        self.registry = registry
        self.bot_app_id = bot_app_id
        self.pacer = pacer
        self.tenant_id = tenant_id

    async def post_card(self, conversation_id: str, card: Card, *, marker: str | None = None) -> PostedMessage:
        if is_user_id(conversation_id):
            return await shrinking(lambda budget: self._post_to_person(conversation_id, _send(card, budget)))
        record, stored = await self._target(conversation_id)
        base = record.address.conversation_id
        reference = stored.conversation_reference(base)
        if stored.kind == "channel":

            async def post(budget: SizeBudget) -> PostedMessage:
                async def start_thread(ctx: TurnContext) -> PostedMessage:
                    mentioned = await self.members.members(ctx, base, card.mentions)
                    _, activity_id = await TeamsInfo.send_message_to_teams_channel(
                        ctx, fitted_activity(card, budget, marker, mentioned), base, bot_app_id=self.bot_app_id
                    )
                    return PostedMessage(activity_id, activity_id)

                start = _unreachable_when_refused(start_thread)
                return await self.pacer.run(base, lambda: self._continue(reference, start), posts=True)

            return await shrinking(post)

        async def send(budget: SizeBudget) -> PostedMessage:
            op = _unreachable_when_refused(_send(card, budget, marker=marker, roster=base, members=self.members))
            return await self.pacer.run(base, lambda: self._continue(reference, op), posts=True)

        return await shrinking(send)

    async def reply(
        self,
        conversation_id: str,
        parent: PostedMessage,
        card: Card,
        *,
        marker: str | None = None,
        broadcast: bool = False,
    ) -> PostedMessage:
        """Post ``card`` in the thread of ``parent`` (in a chat, which has no threads, after it).

        ``broadcast`` changes nothing: Teams orders a channel's posts by their latest activity, so a reply
        brings its post back into view anyway.
        """
        record, stored = await self._target(conversation_id)
        base = record.address.conversation_id
        root = (parent.thread_id or parent.message_id) if stored.kind == "channel" else None
        reference = stored.conversation_reference(thread_id(base, root) if root else base)

        async def send(budget: SizeBudget) -> PostedMessage:
            op = _send(card, budget, root, marker, roster=base, members=self.members)
            if root:
                op = _gone_when_missing(op)
            post = _unreachable_when_refused(op)
            return await self.pacer.run(base, lambda: self._continue(reference, post), posts=True)

        return await shrinking(send)

    async def find_posted(
        self, conversation_id: str, marker: str, since: datetime, parent: PostedMessage | None = None
    ) -> PostedMessage | None:
        """The card posted with ``marker`` since ``since``, read from Microsoft Graph (see :mod:`.graph`).

        None without Graph (``teams.graph.find_lost_posts`` off), and in a 1:1 chat (Graph names those
        chats otherwise than the Bot Framework does): the post is then sent again, and Teams may show it
        twice. Graph's refusals (no consent, no token) are permanent failures, its trouble retryable ones.
        """
        if self.graph is None or is_user_id(conversation_id):
            return None
        record, stored = await self._target(conversation_id)
        base = record.address.conversation_id
        tenant = record.tenant_id or self.tenant_id
        root = (parent.thread_id or parent.message_id) if parent else None
        if stored.kind == "channel":
            group = stored.team_group_id or await self._team_group(record, stored)
            found = await self.graph.find_in_channel(tenant, group, base, marker, since, root)
            return PostedMessage(found, root or found) if found else None
        if stored.kind == "groupChat":
            found = await self.graph.find_in_chat(tenant, base, marker, since)
            return PostedMessage(found, None) if found else None
        return None

    async def _team_group(self, record: ConversationRecord, stored: StoredReference) -> str:
        """The team's Microsoft 365 group id, for a channel stored without it: from the team's details."""
        team_id = record.team_id
        if not team_id:
            raise DeliveryFailed("Graph: the channel's team is not known", False)
        if team_id not in self._team_groups:

            async def details(ctx: TurnContext) -> str | None:
                # botbuilder's Teams client is synchronous: it runs in a worker thread, the loop goes on
                client = await TeamsInfo.get_teams_connector_client(ctx)
                client.config.retry_policy.retries = 0
                group = (await asyncio.to_thread(client.teams.get_team_details, team_id)).aad_group_id
                return str(group) if group else None

            reference = stored.conversation_reference(record.address.conversation_id)
            group = await self.pacer.run(team_id, lambda: self._continue(reference, details))
            if not group:
                raise DeliveryFailed("Graph: Teams did not tell the team's group id", False)
            self._team_groups[team_id] = group
        return self._team_groups[team_id]

    async def update_card(self, conversation_id: str, message: PostedMessage, card: Card) -> None:
        record, stored = await self._target(conversation_id)
        base = record.address.conversation_id
        target = thread_id(base, message.thread_id or message.message_id) if stored.kind == "channel" else base

        reference = stored.conversation_reference(target)

        async def replace_card(budget: SizeBudget) -> None:
            async def update(ctx: TurnContext) -> None:
                # (Teams notifies nobody of an edit: the mentions only keep the card as it was posted)
                activity = fitted_activity(card, budget, None, await self.members.members(ctx, base, card.mentions))
                activity.id = message.message_id
                await ctx.update_activity(activity)

            edit = _unreachable_when_refused(_gone_when_missing(_gone_when_refused(update)))
            await self.pacer.run(base, lambda: self._continue(reference, edit))

        await shrinking(replace_card)

    # targets

    async def _target(self, conversation_id: str) -> tuple[ConversationRecord, StoredReference]:
        found = await self._read(self.registry.find(conversation_id))
        base = split_thread(conversation_id)[0]
        if found is not None:
            if not found[0].active:
                # Teams said Handoff was removed (or the conversation deleted): what was queued there is
                # given up, not sent there, nor to the channel through another conversation's reference
                raise ConversationUnreachable(f"Handoff was removed from Teams conversation {base}")
            return found
        if is_channel_id(base):
            # A configured channel Handoff has not seen yet: any reference of the tenant carries the
            # service URL that reaches it, provided the app is installed in its team.
            anchor = await self._read(self.registry.any_reference(self.tenant_id))
            if anchor is not None:
                record, stored = anchor
                channel = StoredReference(stored.reference, "channel")
                return ConversationRecord(ConversationAddress("teams", base), tenant_id=record.tenant_id), channel
        raise DeliveryFailed(f"Handoff is not installed in Teams conversation {base}", False)

    async def tell_person(self, user_id: str, text: str) -> PostedMessage:
        """Send ``text`` to one person (MRI ``29:…``) in their 1:1 chat with Handoff, creating that chat the
        first time. Teams has no ephemeral messages: outside an invoke's answer, this is the only way to say
        something to one person. Teams lets a bot start it with anyone in a team or chat it is installed in.
        Raises :class:`DeliveryFailed`."""
        return await self._post_to_person(user_id, _send_text(text))

    async def _post_to_person(
        self, user_id: str, send_one: Callable[[TurnContext], Awaitable[PostedMessage]]
    ) -> PostedMessage:
        found = await self._read(self.registry.personal_chat(user_id))
        if found is not None:
            record, stored = found
            base = record.address.conversation_id
            reference = stored.conversation_reference(base)
            send = _unreachable_when_refused(send_one)
            return await self.pacer.run(base, lambda: self._continue(reference, send), posts=True)
        anchor = await self._read(self.registry.any_reference(self.tenant_id))
        if anchor is None or anchor[1].service_url is None:
            raise DeliveryFailed("no Teams conversation of this tenant is known to reach the person from", False)
        record, stored = anchor
        tenant = record.tenant_id
        service_url = stored.service_url
        created: list[str] = []

        async def send_first(ctx: TurnContext) -> PostedMessage:
            created.append(ctx.activity.conversation.id)
            return await send_one(ctx)

        async def create(callback: Callable[[TurnContext], Awaitable[None]]) -> None:
            parameters = ConversationParameters(
                is_group=False,
                bot=ChannelAccount(id=f"28:{self.bot_app_id}"),
                members=[ChannelAccount(id=user_id)],
                tenant_id=tenant,
                channel_data={"tenant": {"id": tenant}} if tenant else None,
            )
            await self.adapter.create_conversation(
                self.bot_app_id, callback, parameters, Channels.ms_teams, service_url, None
            )

        posted = await self.pacer.run(user_id, lambda: self._turn(create, send_first), posts=True)
        if created:
            try:
                await self.registry.personal_chat_created(created[0], stored, tenant, user_id)
            except Exception as exc:  # the message is out; the chat is found again next time
                log.warning("could not store the personal chat with %s (%s)", user_id, type(exc).__name__)
        return posted

    @staticmethod
    async def _read(lookup: Awaitable[T]) -> T:
        """A store read; its failure is a retryable :class:`DeliveryFailed` (the only exception sent out)."""
        try:
            return await lookup
        except Exception as exc:
            raise DeliveryFailed(f"could not read the Teams conversations ({type(exc).__name__})", True) from exc

    # turns

    async def _continue(self, reference: ConversationReference, op: Callable[[TurnContext], Awaitable[T]]) -> T:
        async def start(callback: Callable[[TurnContext], Awaitable[None]]) -> None:
            await self.adapter.continue_conversation(reference, callback, bot_app_id=self.bot_app_id)

        return await self._turn(start, op)

    async def _turn(
        self,
        start: Callable[[Callable[[TurnContext], Awaitable[None]]], Awaitable[None]],
        op: Callable[[TurnContext], Awaitable[T]],
    ) -> T:
        """Run ``op`` in a proactive turn; its exception (which the adapter's ``on_turn_error`` would
        otherwise swallow) becomes a :class:`DeliveryFailed`."""
        results: list[T] = []
        errors: list[BaseException] = []

        async def callback(ctx: TurnContext) -> None:
            try:
                results.append(await op(ctx))
            except Exception as exc:
                errors.append(exc)

        try:
            await start(callback)
        except Exception as exc:
            raise delivery_failure(exc) from exc
        if errors:
            raise delivery_failure(errors[0]) from errors[0]
        if not results:
            raise DeliveryFailed("the Teams turn ended without sending", False)
        return results[0]


def _send(
    card: Card,
    budget: SizeBudget,
    thread: str | None = None,
    marker: str | None = None,
    roster: str | None = None,
    members: MemberDirectory | None = None,
) -> Callable[[TurnContext], Awaitable[PostedMessage]]:
    """Send ``card`` within ``budget`` (in ``thread``); the people it mentions are looked up in ``members``
    of ``roster``."""

    async def send(ctx: TurnContext) -> PostedMessage:
        mentioned = await members.members(ctx, roster, card.mentions) if members and roster else []
        response = await ctx.send_activity(fitted_activity(card, budget, marker, mentioned))
        if response is None or not response.id:
            raise DeliveryFailed("Teams accepted the message without an id", False)
        return PostedMessage(str(response.id), thread)

    return send


def _send_text(text: str) -> Callable[[TurnContext], Awaitable[PostedMessage]]:
    """Send ``text`` (in the core's reply markup, see :func:`adapters.teams.markdown.message`) as a message."""

    async def send(ctx: TurnContext) -> PostedMessage:
        response = await ctx.send_activity(MessageFactory.text(markdown.message(text)))
        if response is None or not response.id:
            raise DeliveryFailed("Teams accepted the message without an id", False)
        return PostedMessage(str(response.id))

    return send


def _gone_when_missing(op: Callable[[TurnContext], Awaitable[T]]) -> Callable[[TurnContext], Awaitable[T]]:
    """``op`` on a message or its thread, where Teams' 404 means the message was deleted: :class:`MessageGone`.

    (A 404 for a conversation that is gone altogether shows when the card is posted afresh.)
    """

    async def run(ctx: TurnContext) -> T:
        try:
            return await op(ctx)
        except ErrorResponseException as error:
            if getattr(error.response, "status_code", None) == 404:
                raise MessageGone(delivery_failure(error).reason) from error
            raise

    return run


def _gone_when_refused(op: Callable[[TurnContext], Awaitable[T]]) -> Callable[[TurnContext], Awaitable[T]]:
    """``op`` updating a message, where a 403 that refuses that message only (``Forbidden``: "a bot can only
    update its own messages", not one of :data:`UNREACHABLE_CODES`) is :class:`MessageGone`: the card is posted
    afresh rather than left stale."""

    async def run(ctx: TurnContext) -> T:
        try:
            return await op(ctx)
        except ErrorResponseException as error:
            if _refusal(error) == 403 and not _unreachable(error):
                raise MessageGone(delivery_failure(error).reason) from error
            raise

    return run


def _unreachable_when_refused(op: Callable[[TurnContext], Awaitable[T]]) -> Callable[[TurnContext], Awaitable[T]]:
    """``op`` posting in a conversation, where Teams' refusal meaning Handoff is no longer in the team or chat,
    the person blocked it, or the conversation is gone (:data:`UNREACHABLE_CODES`) is
    :class:`ConversationUnreachable`. Any other refusal is the message's alone."""

    async def run(ctx: TurnContext) -> T:
        try:
            return await op(ctx)
        except ErrorResponseException as error:
            if _unreachable(error):
                raise ConversationUnreachable(delivery_failure(error).reason) from error
            raise

    return run


def _refusal(error: ErrorResponseException) -> int | None:
    """The HTTP status of the Bot Connector's refusal."""
    status = getattr(error.response, "status_code", None)
    return status if isinstance(status, int) else None


def _unreachable(error: ErrorResponseException) -> bool:
    """Whether the refusal means Handoff cannot send in the conversation at all."""
    return (_refusal(error), error_code(error)) in UNREACHABLE_CODES
