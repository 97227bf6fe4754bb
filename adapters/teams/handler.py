"""Handoff's Teams bot: what each Teams activity means to Handoff.

- Installs (``installationUpdate`` and ``conversationUpdate`` with the bot among the members added) store
  the team's channels, or the chat, with the tenant id; removals, team and channel deletions deactivate
  them; renames rename them (:class:`~adapters.teams.registry.ConversationRegistry`).
- A message is a command (the bot's mention removed), handed to the core's ``on_command``; the reply goes
  into the same thread or chat. Teams has no ephemeral messages in channels, so a private reply is a
  thread reply too. A message that carries ``value`` is an ``Action.Submit`` click (old clients); what it
  tells only the person who clicked (a refusal) goes to their 1:1 chat with Handoff, not to the thread. A
  decision still under way after :data:`ANSWER_WITHIN` goes on in the background, as for an invoke.
- An ``adaptiveCard/action`` invoke (``Action.Execute``) is a click, handed to the core's ``on_action``:
  if accepted, the updated card goes back to the person who clicked and replaces the message for
  everyone (and, for work the click started, its later face replaces it again once that work is done); a
  refusal comes back as an error response and leaves the card as it was. A decision still under way after
  :data:`ANSWER_WITHIN` (Azure DevOps is slow) is answered with "Applying your approval…" and goes on in
  the background: the card is replaced once it is done, and a refusal then goes to the person's 1:1 chat.
  A ``refresh`` answers with the person's own view of the card (buttons for the card's action audience).
  The card is replaced for everyone after the click is answered (Teams sends an invoke again after 5 s).
- A command or click Teams sends again (it had no answer in time) runs nothing: it gets the first one's
  answer, or one saying that it is being handled (:class:`~adapters.teams.redeliveries.Redeliveries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.schema import (
    Activity,
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
    Mention,
)
from botbuilder.schema.teams import ChannelInfo, TeamInfo, TeamsChannelAccount

from bot.background import BackgroundWork
from bot.cards import Card
from bot.clock import SystemClock
from bot.interactions import (
    ActionRequest,
    ActionResult,
    ChatUser,
    CommandRequest,
    InteractionHandler,
    Reply,
)
from bot.ports import DeliveryFailed, PostedMessage
from bot.records import ConversationAddress

from . import markdown
from .channel import TeamsChatChannel, fitted_activity
from .identity import TeamsIdentity
from .ids import split_thread
from .redeliveries import Redeliveries
from .references import conversation_kind, team_of
from .registry import ConversationRegistry
from .renderer import CONTENT_TYPE, REFRESH_VERB, Click, card_from_refresh, parse_execute, parse_submit, render_card
from .sending import Pacer, SizeBudget, delivery_failure, shrinking
from .text import Mentions, command_text, mentions

T = TypeVar("T")

log = logging.getLogger("handoff.teams")

ERROR_TYPE = "application/vnd.microsoft.error"
MESSAGE_TYPE = "application/vnd.microsoft.activity.message"

ANSWER_WITHIN = 3.0
"""Seconds a click's invoke waits for the core's decision before answering that it is still being applied:
well under the 5 s after which Teams sends an invoke again (and the ~15 s after which the connector gives
up and the person sees an error)."""

COULD_NOT_RECORD = "Handoff could not record this. Try again."
ALREADY_HANDLING = "Handoff is already handling this click. The card changes once it is done."

_DECISION_NOUNS = {"approve": "approval", "reject": "rejection"}


class InvokeAnswer(AdaptiveCardInvokeResponse):  # type: ignore[misc]
    """An ``AdaptiveCardInvokeResponse`` whose ``value`` may also be a string (the message answer):
    botbuilder types it as an object and fails to serialise a string."""

    _attribute_map = {**AdaptiveCardInvokeResponse._attribute_map, "value": {"key": "value", "type": "object"}}


def card_response(card: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    """Show ``card`` to the person who clicked."""
    return InvokeAnswer(status_code=200, type=CONTENT_TYPE, value=card)


def message_response(text: str) -> AdaptiveCardInvokeResponse:
    """Show ``text`` to the person who clicked; the card stays as it is."""
    return InvokeAnswer(status_code=200, type=MESSAGE_TYPE, value=text)


def applying_message(action_id: str) -> str:
    """What the person who clicked is told while their decision is still being applied."""
    noun = _DECISION_NOUNS.get(action_id, "decision")
    return f"Applying your {noun} in Azure DevOps… The card changes once it is done."


def error_response(status: int, code: str, message: str) -> AdaptiveCardInvokeResponse:
    """Show an error to the person who clicked; the card stays as it is."""
    return InvokeAnswer(status_code=status, type=ERROR_TYPE, value={"code": code, "message": message})


class HandoffTeamsBot(TeamsActivityHandler):  # type: ignore[misc]
    """Turns Teams activities into the core's requests and stored conversations.

    Args:
        interactions: the core's entry point for commands and clicks.
        registry: where conversation references are kept.
        identity: resolves the sender to a :class:`~bot.interactions.ChatUser`.
        cards: updates a clicked card after its turn (the click's ``ActionResult.later``, a decision that
            outlasted :data:`ANSWER_WITHIN`) and tells the person who clicked what only they should see.
        pacer: paces and retries what a turn sends (a command's answer, a click's), within the same
            per-conversation limits as the cards the outbox sends (Teams answers a burst with 429).
        answer_within: seconds an ``Action.Execute`` invoke waits for the core's decision.
        redeliveries: recognises activities Teams sends again (by default, within this process only).
    """

    def __init__(
        self,
        interactions: InteractionHandler,
        registry: ConversationRegistry,
        identity: TeamsIdentity,
        *,
        cards: TeamsChatChannel | None = None,
        pacer: Pacer | None = None,
        answer_within: float = ANSWER_WITHIN,
        redeliveries: Redeliveries | None = None,
    ) -> None:
        super().__init__()
        self.interactions = interactions
        self.registry = registry
        self.identity = identity
        self.cards = cards
        self.pacer = pacer
        self.answer_within = answer_within
        self.redeliveries = redeliveries or Redeliveries(None, SystemClock())
        self.later = BackgroundWork(log, "a card's later update")

    # --- installs and removals ---------------------------------------------------------------------

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        if conversation_kind(turn_context.activity) == "channel":
            await self._team_installed(turn_context)
        else:
            await self.registry.chat_installed(turn_context.activity)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        team = team_of(activity)
        if conversation_kind(activity) == "channel" and team is not None:
            await self.registry.team_removed(team[0])
        else:
            await self.registry.chat_removed(activity.conversation.id)

    async def on_teams_members_added_dispatch(
        self, members_added: list[ChannelAccount], team_info: TeamInfo, turn_context: TurnContext
    ) -> None:
        # botbuilder's own looks up every person who joins (a connector call each, and a failed one fails the
        # turn) before asking whether Handoff is among them, the only thing Handoff wants to know.
        if not self._includes_bot(members_added, turn_context):
            return
        if team_info is not None and conversation_kind(turn_context.activity) == "channel":
            await self._team_installed(turn_context)
        else:
            await self.registry.chat_installed(turn_context.activity)

    async def on_teams_members_removed(
        self, teams_members_removed: list[TeamsChannelAccount], team_info: TeamInfo, turn_context: TurnContext
    ) -> None:
        if not self._includes_bot(teams_members_removed, turn_context):
            return
        if team_info is not None and team_info.id:
            await self.registry.team_removed(team_info.id)
        else:
            await self.registry.chat_removed(turn_context.activity.conversation.id)

    async def on_teams_team_deleted(self, team_info: TeamInfo | None, turn_context: TurnContext) -> None:
        if team_id := _id_of(team_info, "teamDeleted"):
            await self.registry.team_removed(team_id)

    async def on_teams_team_hard_deleted(self, team_info: TeamInfo | None, turn_context: TurnContext) -> None:
        if team_id := _id_of(team_info, "teamHardDeleted"):
            await self.registry.team_removed(team_id)

    async def on_teams_team_archived(self, team_info: TeamInfo | None, turn_context: TurnContext) -> None:
        if team_id := _id_of(team_info, "teamArchived"):
            await self.registry.team_removed(team_id)

    async def on_teams_team_unarchived(self, team_info: TeamInfo | None, turn_context: TurnContext) -> None:
        if team_id := _id_of(team_info, "teamUnarchived"):
            await self.registry.team_restored(team_id)

    async def on_teams_team_restored(self, team_info: TeamInfo | None, turn_context: TurnContext) -> None:
        if team_id := _id_of(team_info, "teamRestored"):
            await self.registry.team_restored(team_id)

    async def on_teams_team_renamed(self, team_info: TeamInfo | None, turn_context: TurnContext) -> None:
        if (team_id := _id_of(team_info, "teamRenamed")) and (name := _name_of(team_info)):
            await self.registry.team_renamed(team_id, name)

    async def on_teams_channel_created(
        self, channel_info: ChannelInfo | None, team_info: TeamInfo | None, turn_context: TurnContext
    ) -> None:
        if _id_of(channel_info, "channelCreated"):
            await self.registry.channel_seen(turn_context.activity, _name_of(channel_info))

    async def on_teams_channel_deleted(
        self, channel_info: ChannelInfo | None, team_info: TeamInfo | None, turn_context: TurnContext
    ) -> None:
        if channel_id := _id_of(channel_info, "channelDeleted"):
            await self.registry.channel_removed(channel_id)

    async def on_teams_channel_restored(
        self, channel_info: ChannelInfo | None, team_info: TeamInfo | None, turn_context: TurnContext
    ) -> None:
        if _id_of(channel_info, "channelRestored"):
            await self.registry.channel_seen(turn_context.activity, _name_of(channel_info))

    async def on_teams_channel_renamed(
        self, channel_info: ChannelInfo | None, team_info: TeamInfo | None, turn_context: TurnContext
    ) -> None:
        if (channel_id := _id_of(channel_info, "channelRenamed")) and (name := _name_of(channel_info)):
            await self.registry.channel_renamed(channel_id, name)

    async def _team_installed(self, turn_context: TurnContext) -> None:
        team = team_of(turn_context.activity)
        channels = await self._team_channels(turn_context, team[0]) if team else []
        await self.registry.team_installed(turn_context.activity, channels)

    async def _team_channels(self, turn_context: TurnContext, team_id: str) -> list[tuple[str, str | None]]:
        """The team's channels. botbuilder's Teams client is synchronous: it runs in a worker thread so
        the event loop (and whatever else it serves) keeps running."""
        try:
            client = await TeamsInfo.get_teams_connector_client(turn_context)
            client.config.retry_policy.retries = 0
            result = await asyncio.to_thread(client.teams.get_teams_channels, team_id)
        except Exception as exc:  # the install still counts: the General channel is known
            log.warning("could not list the channels of team %s (%s)", team_id, type(exc).__name__)
            return []
        return [(c.id, c.name) for c in result.conversations or [] if c.id]

    @staticmethod
    def _includes_bot(members: list[ChannelAccount], turn_context: TurnContext) -> bool:
        recipient = turn_context.activity.recipient
        return recipient is not None and any(m.id == recipient.id for m in members)

    # --- messages: commands, and Action.Submit clicks ----------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        click = parse_submit(activity.value) if activity.value is not None else None
        if click is not None:
            await self._submitted(turn_context, click)
            return
        if not (activity.text or "").strip():
            return
        await self._command(turn_context)

    async def _command(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        text = command_text(activity.text, _mentions(activity))
        user = await self.identity.resolve(turn_context)
        base, root = split_thread(activity.conversation.id)
        kind = conversation_kind(activity)
        if kind == "channel":
            await self._channel_seen(turn_context, base)
        elif await self.registry.get(base) is None:
            await self.registry.chat_installed(activity)
        thread = PostedMessage(root, root) if kind == "channel" and root else None
        in_chat = kind in ("personal", "groupChat")
        request = CommandRequest(user, ConversationAddress("teams", base), text, thread, in_chat=in_chat)
        await self.redeliveries.once(activity, lambda: self._run(turn_context, request), again=None)

    async def _run(self, turn_context: TurnContext, request: CommandRequest) -> None:
        try:
            reply = await self.interactions.on_command(request)
        except Exception:
            log.exception("the command handler failed")
            reply = Reply("Handoff could not run that command. Try again in a moment.")
        await self._send_reply(turn_context, reply)

    async def _channel_seen(self, turn_context: TurnContext, channel_id: str) -> None:
        """Store the channel a command came from (``subscribe`` binds it), looking its name up once."""
        if await self.registry.get(channel_id) is not None:
            return
        team = team_of(turn_context.activity)
        names = dict(await self._team_channels(turn_context, team[0])) if team else {}
        await self.registry.channel_seen(turn_context.activity, names.get(channel_id) or "")

    async def _send_reply(self, turn_context: TurnContext, reply: Reply) -> None:
        """Answer where the command was typed: in a channel, in the command's thread, whatever the reply's
        visibility. The command is a post everyone in the channel sees, and so is its thread; an answer
        meant for the whole channel (``subscribe``, ``mute``, ``Starting: …``) needs no post of its own."""
        card = reply.card
        try:
            if card is None:
                answer = _text(reply.text)
                response = await self._paced(turn_context, lambda: turn_context.send_activity(answer), posts=True)
            else:
                text = markdown.message(reply.text) if reply.text and reply.text != card.text else None
                response = await self._paced_card(turn_context, card, turn_context.send_activity, text=text, posts=True)
        except DeliveryFailed as failure:
            log.warning("could not send the reply to a Teams command (%s)", failure.reason)
            return
        answer_id = getattr(response, "id", None)
        if reply.later is not None and answer_id:
            base, root = split_thread(turn_context.activity.conversation.id)
            thread = root if conversation_kind(turn_context.activity) == "channel" else None
            self.later.spawn(self._show_answer_later(base, PostedMessage(answer_id, thread), reply.later))

    async def _show_answer_later(self, conversation: str, answer: PostedMessage, later: Awaitable[Card | None]) -> None:
        """Once the work a command's answer announced is done, show the answer's next face in its place (after the
        command's turn: proactively, as the outbox sends)."""
        card = await later
        if card is None or self.cards is None:
            return
        try:
            await self.cards.update_card(conversation, answer, card)
        except DeliveryFailed as failure:
            log.warning("could not update the answer %s to a Teams command (%s)", answer.message_id, failure.reason)

    async def _submitted(self, turn_context: TurnContext, click: Click) -> None:
        user = await self.identity.resolve(turn_context)
        request = self._action_request(turn_context, user, click)
        if request is None:
            return
        await self.redeliveries.once(turn_context.activity, lambda: self._submit(turn_context, request), again=None)

    async def _submit(self, turn_context: TurnContext, request: ActionRequest) -> None:
        decision = await self._decision_within(request)
        if decision is None:
            return  # still under way: its card, or its refusal, is shown when it is done
        result = decision.result() or ActionResult(False, COULD_NOT_RECORD)
        if result.accepted and result.card is not None:
            await self._update_for_everyone(turn_context, request.message.message_id, result.card)
            self._follow(request, result)
        elif result.message:
            await self._tell_clicker(turn_context, result.message)

    async def _tell_clicker(self, turn_context: TurnContext, text: str) -> None:
        """Tell only the person who clicked an ``Action.Submit`` button (a refusal, say). Its answer is a message,
        which everyone in a channel or group chat would see; Teams has no ephemeral messages, so it goes to
        the person's 1:1 chat with Handoff (which Teams lets a bot start with anyone in a team or chat it is
        installed in). Only if that fails is it a reply where they clicked, @mentioning them."""
        activity = turn_context.activity
        sender = activity.from_property
        if conversation_kind(activity) != "personal" and self.cards is not None and sender is not None:
            try:
                await self.cards.tell_person(sender.id, text)
                return
            except DeliveryFailed as failure:
                log.warning("could not tell the person who clicked in their 1:1 chat (%s)", failure.reason)
        answer = _addressed(text, sender) if conversation_kind(activity) != "personal" else _text(text)
        try:
            await self._paced(turn_context, lambda: turn_context.send_activity(answer), posts=True)
        except DeliveryFailed as failure:
            log.warning("could not answer an Action.Submit click (%s)", failure.reason)

    # --- invokes: Action.Execute clicks and refreshes ---------------------------------------------

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action if isinstance(invoke_value.action, dict) else {}
        verb, data = action.get("verb"), action.get("data")
        if verb == REFRESH_VERB:
            return self._refreshed(turn_context, data)
        click = parse_execute(verb, data)
        if click is None:
            return error_response(400, "BadRequest", "The action has no verb.")
        user = await self.identity.resolve(turn_context)
        request = self._action_request(turn_context, user, click)
        if request is None:
            return error_response(400, "BadRequest", "The action does not name the card it came from.")
        return await self.redeliveries.once(
            turn_context.activity,
            lambda: self._execute(turn_context, request),
            again=message_response(ALREADY_HANDLING),
            wait=self.answer_within,
        )

    async def _execute(self, turn_context: TurnContext, request: ActionRequest) -> AdaptiveCardInvokeResponse:
        decision = await self._decision_within(request)
        if decision is None:
            return message_response(applying_message(request.action_id))
        result = decision.result()
        if result is None:
            return error_response(500, "InternalServerError", COULD_NOT_RECORD)
        if not result.accepted:
            return error_response(400, "BadRequest", result.message or "This action was refused.")
        if result.card is None:
            return message_response(result.message or "Done.")
        if self.cards is not None:  # after the answer: Teams wants it within 5 s, and an update can be slow
            self.later.spawn(self._replaced(request, result))
        else:
            await self._update_for_everyone(turn_context, request.message.message_id, result.card)
            self._follow(request, result)
        return card_response(render_card(result.card, viewer_ids=_ids_of(request.user)))

    def _create_adaptive_card_invoke_error_response(
        self, status_code: HTTPStatus, code: str, message: str
    ) -> AdaptiveCardInvokeResponse:
        # botbuilder puts an Exception in the body, which cannot be serialised (HTTP 500).
        return error_response(int(status_code), code, message)

    def _refreshed(self, turn_context: TurnContext, data: Any) -> AdaptiveCardInvokeResponse:
        card = card_from_refresh(data) if isinstance(data, dict) else None
        if card is None:
            return error_response(400, "BadRequest", "The card cannot be refreshed.")
        sender = turn_context.activity.from_property
        viewer = (sender.id, getattr(sender, "aad_object_id", None) or "")
        return card_response(render_card(card, viewer_ids=viewer))

    # --- shared ------------------------------------------------------------------------------------

    @staticmethod
    def _action_request(turn_context: TurnContext, user: ChatUser, click: Click) -> ActionRequest | None:
        activity: Activity = turn_context.activity
        base, root = split_thread(activity.conversation.id)
        message_id = activity.reply_to_id or root
        if not message_id:
            return None
        thread = root if conversation_kind(activity) == "channel" else None
        return ActionRequest(
            user=user,
            conversation=ConversationAddress("teams", base),
            message=PostedMessage(message_id, thread),
            action_id=click.verb,
            value=click.value,
            comment=click.comment,
        )

    async def _decision_within(self, request: ActionRequest) -> asyncio.Future[ActionResult | None] | None:
        """The core's decision on a click, done, if it is done within :attr:`answer_within`; else None, and it
        goes on in the background and shows how it ended once it has (Teams expects the click's turn to end
        within seconds, and sends a click again that waited too long)."""
        decision = asyncio.ensure_future(self._decide(request))
        try:
            # (asyncio.wait cancels nothing: the decision goes on if the click's request ends or times out)
            await asyncio.wait({decision}, timeout=self.answer_within)
        except asyncio.CancelledError:
            self.later.spawn(self._decided_later(request, decision))
            raise
        if not decision.done():
            self.later.spawn(self._decided_later(request, decision))
            return None
        return decision

    async def _decide(self, request: ActionRequest) -> ActionResult | None:
        """The core's decision, or None if the core failed (logged)."""
        try:
            return await self.interactions.on_action(request)
        except Exception:
            log.exception("the action handler failed")
            return None

    async def _decided_later(self, request: ActionRequest, decision: asyncio.Future[ActionResult | None]) -> None:
        """Show how a decision that outlasted its click's turn ended: its card for everyone (proactively, as the
        outbox sends), or its refusal to the person who clicked, in their 1:1 chat."""
        result = await asyncio.shield(decision)  # (closing the background work does not stop the decision)
        if result is None:
            result = ActionResult(False, COULD_NOT_RECORD)
        if result.accepted and result.card is not None:
            await self._show(request, result.card)
            if result.later is not None:
                await self._show_later(request, result.later)
            return
        if not result.message:
            return
        if self.cards is None:
            log.warning("cannot tell the person who clicked how their decision ended: nothing to send with")
            return
        try:
            await self.cards.tell_person(request.user.user_id, result.message)
        except DeliveryFailed as failure:
            log.warning("could not tell the person who clicked how their decision ended (%s)", failure.reason)

    async def _replaced(self, request: ActionRequest, result: ActionResult) -> None:
        """Replace the clicked card for everyone with the decision's, then with its later face (proactively, as
        the outbox sends)."""
        if result.card is not None and self.cards is not None:
            message = request.message
            try:
                await self.cards.update_card(request.conversation.conversation_id, message, result.card)
            except DeliveryFailed as failure:  # the clicker has the new card; the outbox updates the rest
                log.warning("could not update the Teams card %s (%s)", message.message_id, failure.reason)
        if result.later is not None:
            await self._show_later(request, result.later)

    def _follow(self, request: ActionRequest, result: ActionResult) -> None:
        """Once the work the click started is done, show the card's later face in place of the same message
        (after the click's turn: proactively, as the outbox sends)."""
        if result.later is not None:
            self.later.spawn(self._show_later(request, result.later))

    async def _show_later(self, request: ActionRequest, later: Awaitable[Card | None]) -> None:
        card = await later
        if card is not None:
            await self._show(request, card)

    async def _show(self, request: ActionRequest, card: Card) -> None:
        """Replace the clicked card with ``card`` after the click's turn (a reply in its thread if that fails)."""
        message, conversation = request.message, request.conversation.conversation_id
        if self.cards is None:
            log.warning("the Teams card %s cannot be updated later: nothing to send with", message.message_id)
            return
        try:
            await self.cards.update_card(conversation, message, card)
        except DeliveryFailed as failure:  # then said in its thread, rather than not at all
            log.warning("could not update the Teams card %s again (%s)", message.message_id, failure.reason)
            try:
                await self.cards.reply(conversation, message, card)
            except DeliveryFailed as again:
                log.warning("could not reply to the Teams card %s either (%s)", message.message_id, again.reason)

    async def _update_for_everyone(self, turn_context: TurnContext, message_id: str, card: Card) -> None:
        async def update(activity: Activity) -> Any:
            activity.id = message_id
            return await turn_context.update_activity(activity)

        try:
            await self._paced_card(turn_context, card, update)
        except DeliveryFailed as failure:  # the clicker still gets the new card; the outbox updates the rest
            log.warning("could not update the Teams card %s (%s)", message_id, failure.reason)

    async def _paced_card(
        self,
        turn_context: TurnContext,
        card: Card,
        send: Callable[[Activity], Awaitable[T]],
        *,
        text: str | None = None,
        posts: bool = False,
    ) -> T:
        """:meth:`_paced` ``send`` of ``card``'s activity (with ``text``); one Teams refuses as too big is sent
        again at once, much shorter, as the outbox's cards are (:func:`~adapters.teams.sending.shrinking`)."""

        async def fitted(budget: SizeBudget) -> T:
            activity = fitted_activity(card, budget, text=text)
            return await self._paced(turn_context, lambda: send(activity), posts=posts)

        return await shrinking(fitted)

    async def _paced(self, turn_context: TurnContext, send: Callable[[], Awaitable[T]], *, posts: bool = False) -> T:
        """Run a send of this turn within the conversation's rate limits, retrying what Teams says to retry (a
        new post only where Teams cannot have taken it); raises :class:`DeliveryFailed`."""

        async def attempt() -> T:
            try:
                return await send()
            except Exception as exc:
                raise delivery_failure(exc) from exc

        if self.pacer is None:
            return await attempt()
        return await self.pacer.run(turn_context.activity.conversation.id, attempt, posts=posts)


def _mentions(activity: Activity) -> Mentions:
    """Whom the activity's ``<at>`` tags name. (Not ``TurnContext.remove_recipient_mention``: it removes the bot's
    name wherever the text has it, arguments included, and leaves a mention it cannot match in the command.)"""
    entities: list[dict[str, Any]] = []
    for entity in activity.entities or []:
        data: dict[str, Any] = dict(getattr(entity, "additional_properties", None) or {})
        with contextlib.suppress(Exception):  # a malformed entity: what Teams sent as it is
            data = {**entity.serialize(), **data}
        entities.append(data)
    recipient = activity.recipient
    return mentions(entities, getattr(recipient, "id", None), getattr(recipient, "name", None))


def _id_of(info: TeamInfo | ChannelInfo | None, event: str) -> str | None:
    """The id of the team or channel a ``conversationUpdate`` event is about; None (logged) when it names none,
    and the event is ignored (the endpoint refuses such events; this keeps a turn from failing on one)."""
    value = getattr(info, "id", None)
    if isinstance(value, str) and value:
        return value
    what = "channel" if event.startswith("channel") else "team"
    log.info("a Teams %s event that names no %s was ignored", event, what)
    return None


def _name_of(info: TeamInfo | ChannelInfo | None) -> str:
    value = getattr(info, "name", None)
    return value if isinstance(value, str) else ""


def _text(text: str) -> Activity:
    """A message saying ``text``, the core's reply markup as Teams' markdown (the rest escaped)."""
    activity: Activity = MessageFactory.text(markdown.message(text))
    return activity


def _addressed(text: str, person: ChannelAccount | None) -> Activity:
    """A message that @mentions ``person`` before ``text``, so that it is plainly meant for them."""
    if person is None or not person.id:
        return _text(text)
    name = person.name or "you"
    tag = f"<at>{name}</at>"
    activity: Activity = MessageFactory.text(f"{tag} {markdown.message(text)}")
    activity.entities = [Mention(mentioned=ChannelAccount(id=person.id, name=name), text=tag, type="mention")]
    return activity


def _ids_of(user: ChatUser) -> tuple[str, ...]:
    return tuple(i for i in (user.user_id, user.aad_object_id) if i)
