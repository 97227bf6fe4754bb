"""Bolt listeners: commands, mentions, buttons and the comment modal, handed to the core.

Every listener acknowledges first (Slack's 3-second budget) and does the rest as background work:
resolving who the person is, calling the core's :class:`~bot.interactions.InteractionHandler`, and
posting what it answered. The core may take as long as its backends need; an error in it becomes a
private apology, never an HTTP error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import OrderedDict
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import Card
from bot.clock import Clock, SystemClock
from bot.interactions import ActionRequest, ActionResult, ChatUser, CommandRequest, InteractionHandler
from bot.ports import DeliveryFailed, EventLog, PostedMessage
from bot.records import ConversationAddress, ReceivedEvent

from . import buttons
from .addresses import SlackAddress
from .buttons import CommentMode
from .channel import SlackChatChannel
from .commands import command_text, mention_text, mentioned_people, shown_as
from .identity import UserDirectory
from .modals import CALLBACK_ID, COMMENT_BLOCK, PendingDecision, about_the_card, comment_modal, submitted_comment
from .renderer import render_card
from .replies import ReplyDelivery
from .tasks import AfterResponse, BackgroundTasks, follow_up
from .text import escape

log = logging.getLogger("handoff.slack")

ANY = re.compile(r".*")
ANY_SLASH_COMMAND = re.compile(r"^/.+")
REASON_REQUIRED = "Please give a reason."
REFUSED = "You can't do that here."


def _apology(what: str, ref: str) -> str:
    return (
        f"Sorry, Handoff hit an internal error while handling {what} (ref {ref}). "
        "Please try again; if it keeps happening, give your Handoff admin that ref."
    )


class SlackListeners:
    """The listeners on one Bolt app.

    Args:
        handler: the core's entry point.
        channel: sends messages (pacing, error mapping).
        users: resolves Slack users to :class:`~bot.interactions.ChatUser`.
        tasks: runs the work after each acknowledgement.
        qualify_conversations: name conversations ``TEAM:CHANNEL`` (OAuth installs).
        events: where the ids of handled Slack events are remembered, for every replica (and after a
            restart), so that Slack's redelivery of a mention runs its command once; without it, only this
            process remembers.
        clock: the time an event is remembered at.
    """

    def __init__(
        self,
        handler: InteractionHandler,
        channel: SlackChatChannel,
        users: UserDirectory,
        tasks: BackgroundTasks,
        *,
        qualify_conversations: bool = False,
        events: EventLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.handler = handler
        self.replies = ReplyDelivery(channel)
        self.channel = channel
        self.users = users
        self.tasks = tasks
        self.qualify = qualify_conversations
        self.events = events
        self.clock = clock or SystemClock()
        self._seen_events: OrderedDict[str, None] = OrderedDict()

    def register(self, bolt: AsyncApp) -> None:
        """Add the listeners (after any more specific ones the caller registered first)."""
        bolt.command(ANY_SLASH_COMMAND)(self.on_command)
        bolt.event("app_mention")(self.on_mention)
        bolt.event({"type": "message", "channel_type": "im"})(self.on_direct_message)
        bolt.block_action(ANY)(self.on_button)
        bolt.view_submission(CALLBACK_ID)(self.on_comment)
        bolt.view_closed(CALLBACK_ID)(self.on_ignored)
        bolt.event(ANY)(self.on_ignored)

    # --- commands ---------------------------------------------------------------------------------

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        """``/handoff …``, ``/retrain …``, ``/integrate …`` (and any other registered ``/verb``)."""
        await ack()
        self._later(context).spawn(self._run_command(command, context, client), name="slack command")

    async def _run_command(self, command: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        channel, user_id = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        team_id = _str(command.get("team_id"))
        name, raw = str(command.get("command", "")), str(command.get("text", ""))
        response_url = _str(command.get("response_url"))
        bot_user_id = context.bot_user_id
        people = await self._people(client, raw, team_id, bot_user_id)
        text = command_text(name, raw, bot_user_id, people)
        typed = shown_as(name, raw, bot_user_id, people)
        user = await self.users.user(client, user_id, team_id, name=str(command.get("user_name", "")))
        # a direct message with the app (Slack names its channel so, and its id starts with D), or a group
        # direct message (named mpdm-alice--bob--carol-1)
        channel_name = str(command.get("channel_name", ""))
        in_chat = channel_name == "directmessage" or channel_name.startswith("mpdm-") or channel.startswith("D")
        request = CommandRequest(
            user=user, conversation=self._conversation(team_id, channel), text=text, in_chat=in_chat
        )
        try:
            reply = await self.handler.on_command(request)
        except Exception:
            ref = _ref()
            log.exception("command %r failed (ref %s)", text.split(" ", 1)[0], ref)
            await self.replies.say_privately(
                client,
                _apology(f"`{_code(typed)}`", ref),
                channel=channel,
                user_id=user_id,
                response_url=response_url,
            )
            return
        note = f"<@{user_id}> asked `{_code(typed)}`"
        answer = await self.replies.reply(
            client, reply, channel=channel, user_id=user_id, response_url=response_url, note=note
        )
        await self.replies.show_later(client, reply, channel=channel, ts=answer, note=note)

    async def on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        """``@Handoff <command>`` in a channel: the same commands, answered in the mention's thread."""
        if event.get("bot_id") or not event.get("user") or self._redelivered(body.get("event_id")):
            return
        self._later(context).spawn(self._run_mention(body, event, context, client), name="slack mention")

    async def on_direct_message(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        """A message in someone's own chat with Handoff (its Messages tab): the same commands, without a mention,
        answered there. Edits, deletions and Handoff's own messages (Slack sends those too) are not commands."""
        own = event.get("user") == context.bot_user_id
        if event.get("subtype") or event.get("bot_id") or own or not event.get("user"):
            return
        if self._redelivered(body.get("event_id")):
            return
        self._later(context).spawn(self._run_mention(body, event, context, client, direct=True), name="slack dm")

    async def _run_mention(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        *,
        direct: bool = False,
    ) -> None:
        """A mention's command, or (``direct``) a direct message's: answered in the mention's thread; in a direct
        message, where it was typed (in its thread if it was typed in one)."""
        if not await self._first_delivery(body.get("event_id"), str(event.get("type", ""))):
            return
        channel, user_id, ts = str(event.get("channel", "")), str(event["user"]), str(event.get("ts", ""))
        thread_ts = _str(event.get("thread_ts")) or (None if direct else ts)
        team_id = context.team_id or _str(event.get("team"))
        raw = str(event.get("text", ""))
        text = mention_text(raw, context.bot_user_id, await self._people(client, raw, team_id, context.bot_user_id))
        user = await self.users.user(client, user_id, team_id)
        request = CommandRequest(
            user=user,
            conversation=self._conversation(team_id, channel),
            text=text,
            thread=PostedMessage(message_id=ts, thread_id=thread_ts) if thread_ts else None,
            in_chat=direct,
        )
        try:
            reply = await self.handler.on_command(request)
        except Exception:
            ref = _ref()
            log.exception("mention command %r failed (ref %s)", text.split(" ", 1)[0], ref)
            await self.replies.say_privately(
                client, _apology(f"`{_code(text)}`", ref), channel=channel, user_id=user_id, thread_ts=thread_ts
            )
            return
        # (in one's own chat with Handoff, who asked goes without saying)
        note = "" if direct else f"<@{user_id}> asked"
        answer = await self.replies.reply(
            client, reply, channel=channel, user_id=user_id, thread_ts=thread_ts, note=note
        )
        await self.replies.show_later(client, reply, channel=channel, ts=answer, thread_ts=thread_ts, note=note)

    # --- buttons ----------------------------------------------------------------------------------

    async def on_button(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        """A click on a card's button: a modal first if it takes a comment, else straight to the core."""
        await ack()
        self._later(context).spawn(self._run_click(body, action, client), name="slack button")

    async def _run_click(self, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        button = buttons.decode(str(action.get("action_id", "")), action.get("value"))
        pending = _pending(body, button)
        user = _dict(body.get("user"))
        user_id = str(user.get("id", ""))
        if pending is None:
            log.warning("a click without a channel or message was ignored")
            return
        where: dict[str, Any] = {
            "channel": pending.channel,
            "user_id": user_id,
            "thread_ts": pending.thread_ts,
            "response_url": pending.response_url,
        }
        if button.comment is CommentMode.NONE:
            await self._decide(client, pending, user_id, str(user.get("name", "")), "")
            return
        request = await self._request(client, pending, user_id, str(user.get("name", "")), "")
        try:
            refusal = await self.handler.refuse_before_comment(request)
        except Exception:
            log.exception("action %r could not be checked before its form; the form opens", pending.action_id)
            refusal = None
        if refusal is not None:
            await self.replies.say_privately(client, refusal, **where)
            return
        about = about_the_card(str(_dict(body.get("message")).get("text", "")))
        view = comment_modal(button, pending, about=about)
        if view is None:
            await self.replies.say_privately(client, "This button carries too much to ask for a comment.", **where)
            return
        try:
            await self.channel.call("views.open", client.views_open(trigger_id=body.get("trigger_id"), view=view))
        except DeliveryFailed as failure:
            log.warning("views.open failed: %s", failure.reason)
            await self.replies.say_privately(
                client, "The form could not be opened in time; please click the button again.", **where
            )

    async def on_comment(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        view: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        """The comment modal was submitted: a missing required reason keeps it open with an error."""
        pending = PendingDecision.from_metadata(view.get("private_metadata"))
        comment = submitted_comment(view)
        if pending is not None and pending.mode is CommentMode.REQUIRED and not comment:
            await ack(response_action="errors", errors={COMMENT_BLOCK: REASON_REQUIRED})
            return
        await ack()
        if pending is None:
            log.warning("a comment form without its decision was ignored")
            return
        user = _dict(body.get("user"))
        self._later(context).spawn(
            self._decide(client, pending, str(user.get("id", "")), str(user.get("name", "")), comment),
            name="slack decision",
        )

    async def on_ignored(self, ack: AsyncAck) -> None:
        await ack()

    async def _decide(
        self, client: AsyncWebClient, pending: PendingDecision, user_id: str, name: str, comment: str
    ) -> None:
        where: dict[str, Any] = {
            "channel": pending.channel,
            "user_id": user_id,
            "thread_ts": pending.thread_ts,
            "response_url": pending.response_url,
        }
        request = await self._request(client, pending, user_id, name, comment)
        try:
            result: ActionResult = await self.handler.on_action(request)
        except Exception:
            ref = _ref()
            log.exception("action %r failed (ref %s)", pending.action_id, ref)
            await self.replies.say_privately(client, _apology("your click", ref), **where)
            return
        if not result.accepted:
            await self.replies.say_privately(client, result.message or REFUSED, **where)
            return
        if result.card is None:
            if result.message:
                await self.replies.say_privately(client, result.message, **where)
            return
        problem = await self._show(client, pending, result.card)
        if problem is not None:
            log.warning("decision recorded but the card was not updated: %s", problem)
            await self.replies.say_privately(
                client, f"{result.message or 'Done'}. (The card could not be updated: {problem}.)", **where
            )
        if result.later is not None:
            later = await result.later
            if later is not None and (problem := await self._show(client, pending, later)) is not None:
                log.warning("the card was not updated again: %s", problem)
                await self.replies.say_privately(client, later.text, **where)

    async def _request(
        self, client: AsyncWebClient, pending: PendingDecision, user_id: str, name: str, comment: str
    ) -> ActionRequest:
        """The core's request for ``user_id``'s click described by ``pending``."""
        user: ChatUser = await self.users.user(client, user_id, pending.team_id, name=name)
        return ActionRequest(
            user=user,
            conversation=self._conversation(pending.team_id, pending.channel),
            message=PostedMessage(message_id=pending.message_ts, thread_id=pending.thread_ts or pending.message_ts),
            action_id=pending.action_id,
            value=pending.value,
            comment=comment,
        )

    async def _show(self, client: AsyncWebClient, pending: PendingDecision, card: Card) -> str | None:
        """Show ``card`` in place of the clicked message; None, or why it could not be shown."""
        content = render_card(card, compact=pending.compact)
        if pending.is_ephemeral:
            if pending.response_url and await self.replies.respond(
                pending.response_url, content, response_type="ephemeral", replace_original=True
            ):
                return None
            return "the private message could not be replaced"
        try:
            await self.channel.edit(client, pending.channel, pending.message_ts, content)
        except DeliveryFailed as failure:
            return failure.reason
        return None

    # --- helpers ----------------------------------------------------------------------------------

    def _later(self, context: AsyncBoltContext) -> AfterResponse | BackgroundTasks:
        return follow_up(context, self.tasks)

    def _conversation(self, team_id: str | None, channel: str) -> ConversationAddress:
        address = SlackAddress(channel=channel, team=team_id if self.qualify else None)
        return ConversationAddress(platform="slack", conversation_id=address.conversation_id())

    async def _people(
        self, client: AsyncWebClient, text: str, team_id: str | None, bot_user_id: str | None
    ) -> dict[str, ChatUser]:
        """The people ``text`` mentions (the bot aside), by id, as far as Slack says who they are."""
        people = [i for i in mentioned_people(text) if i != bot_user_id]
        found = await asyncio.gather(*(self.users.user(client, i, team_id) for i in people))
        return {person.user_id: person for person in found}

    async def _first_delivery(self, event_id: Any, kind: str) -> bool:
        """Whether no replica has handled the Slack event ``event_id`` yet; it counts as handled from now.

        Slack redelivers an event it thinks was not acknowledged in time (``X-Slack-Retry-Num``), to any
        replica, for a few minutes; event ids are remembered as long as the store keeps a sender's ids.
        When the store cannot say, the event is handled (a command run twice is the lesser harm).
        """
        if self.events is None or not isinstance(event_id, str) or not event_id:
            return True
        key, now = f"slack:event:{event_id}", self.clock.now()
        try:
            return await self.events.record_event(ReceivedEvent(key, "slack", kind, now), ())
        except Exception:
            log.warning("could not tell whether Slack event %s was handled: handling it", event_id, exc_info=True)
            return True

    def _redelivered(self, event_id: Any) -> bool:
        """This process saw ``event_id`` (a quick check before the store's, see :meth:`_first_delivery`)."""
        if not isinstance(event_id, str) or not event_id:
            return False
        if event_id in self._seen_events:
            return True
        self._seen_events[event_id] = None
        while len(self._seen_events) > 5000:
            self._seen_events.popitem(last=False)
        return False


def _pending(body: dict[str, Any], button: buttons.ButtonPayload) -> PendingDecision | None:
    container = _dict(body.get("container"))
    message = _dict(body.get("message"))
    channel = _str(container.get("channel_id")) or _str(_dict(body.get("channel")).get("id"))
    ts = _str(container.get("message_ts")) or _str(message.get("ts"))
    if not channel or not ts:
        return None
    blocks = message.get("blocks") if isinstance(message.get("blocks"), list) else []
    first_id = str(_dict(blocks[0]).get("block_id", "")) if blocks else ""
    return PendingDecision(
        channel=channel,
        message_ts=ts,
        action_id=button.action_id,
        value=button.value,
        mode=button.comment if button.comment is not CommentMode.NONE else CommentMode.OPTIONAL,
        team_id=_str(_dict(body.get("team")).get("id")) or _str(_dict(body.get("user")).get("team_id")),
        thread_ts=_str(message.get("thread_ts")) if message.get("thread_ts") != ts else None,
        is_ephemeral=bool(container.get("is_ephemeral")),
        response_url=_str(body.get("response_url")),
        # private answers are compact, and Slack does not send the message of an ephemeral click
        compact=first_id.startswith("c") if first_id else bool(container.get("is_ephemeral")),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _code(text: str) -> str:
    return escape(text.replace("`", "'"))[:200]


def _ref() -> str:
    return secrets.token_hex(3)
