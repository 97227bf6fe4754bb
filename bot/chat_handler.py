"""The core's answer to everything people do in chat: commands and clicks, on any platform.

Commands are parsed with the grammar in :mod:`bot.commands`, checked against :mod:`bot.policy`,
and answered at once; work that takes time runs in the background (:mod:`bot.runner`). Clicks on
gate cards go to the :class:`~bot.gates.Gatekeeper`; clicks on confirmations go to the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.clock import Clock
from bot.commands import CommandSpec, ParsedCommand, UsageError, help_text, parse
from bot.config import parse_duration
from bot.gates import Gatekeeper
from bot.ingest import Ingest
from bot.interactions import ActionRequest, ActionResult, CommandRequest, Reply, Visibility
from bot.policy import Policy
from bot.records import AuditEntry, GateState, StoredSubscription
from bot.routing import DEFAULT_FILTERS, Filters

log = logging.getLogger("handoff.chat")

CommandHandler = Callable[[CommandRequest, ParsedCommand], Awaitable[Reply]]
ActionHandler = Callable[[ActionRequest], Awaitable[ActionResult]]

_LIST_FILTERS = ("events", "outcomes", "pipelines", "branches", "models", "environments")


class ChatHandler:
    """Implements :class:`bot.interactions.InteractionHandler` for every platform.

    Other parts of the core add commands and actions with :meth:`add_command` and :meth:`add_action`
    (the runner adds ``retrain``, ``integrate``, ``cancel``…).
    """

    def __init__(self, store: Any, policy: Policy, gatekeeper: Gatekeeper, ingest: Ingest, clock: Clock) -> None:
        self.store = store
        self.policy = policy
        self.gatekeeper = gatekeeper
        self.ingest = ingest
        self.clock = clock
        self._commands: dict[str, CommandHandler] = {
            "help": self._help,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "subscriptions": self._subscriptions,
            "mute": self._mute,
            "approvals": self._approvals,
        }
        self._actions: dict[str, ActionHandler] = {
            "approve": self._decide,
            "reject": self._decide,
            "override": self._decide,
        }

    def add_command(self, verb: str, handler: CommandHandler) -> None:
        self._commands[verb] = handler

    def add_action(self, action_id: str, handler: ActionHandler) -> None:
        self._actions[action_id] = handler

    # --- InteractionHandler ------------------------------------------------------------------------

    async def on_command(self, request: CommandRequest) -> Reply:
        try:
            command = parse(request.text)
        except UsageError as error:
            detail = help_text(self._may_run(request), error.spec.verb) if error.spec else ""
            hint = detail if error.spec else "Type `help` to see the commands."
            return Reply(f"{error.message}\n{hint}".strip())
        verdict = self.policy.may_run(request.user, command.spec, request.conversation)
        if not verdict.allowed:
            await self._audit(request, command.canonical, f"refused: {verdict.reason}")
            return Reply(f"Sorry, you can't run that here. {verdict.reason}")
        handler = self._commands.get(command.verb)
        if handler is None:
            return Reply(f"`{command.verb}` is not available in this installation of Handoff.")
        return await handler(request, command)

    async def on_action(self, request: ActionRequest) -> ActionResult:
        handler = self._actions.get(request.action_id)
        if handler is None:
            return ActionResult(False, "That button is no longer supported.")
        return await handler(request)

    # --- commands ----------------------------------------------------------------------------------

    def _may_run(self, request: CommandRequest) -> Callable[[CommandSpec], bool]:
        return lambda spec: self.policy.may_run(request.user, spec, request.conversation).allowed

    async def _help(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        return Reply(help_text(self._may_run(request), command.target))

    async def _subscribe(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        filters: dict[str, Any] = dict(DEFAULT_FILTERS) if not command.options else {}
        for key, value in command.options.items():
            filters[key] = [v.strip() for v in value.split(",") if v.strip()]
        if command.target:
            filters["url"] = command.target
        try:
            Filters.from_mapping(filters)
        except Exception as error:  # a bad pattern is the person's mistake, not ours
            return Reply(f"Those filters don't work: {error}")
        subscription_id = await self.store.add_subscription(
            StoredSubscription(request.conversation, filters, request.user.display, self.clock.now())
        )
        self.ingest.forget_subscriptions()
        await self._audit(request, command.canonical, f"subscription {subscription_id}")
        shown = ", ".join(f"{k}={','.join(v)}" for k, v in filters.items() if k in _LIST_FILTERS)
        return Reply(
            f"Subscribed this channel (subscription {subscription_id}): {shown or 'everything'}.",
            visibility=Visibility.CHANNEL,
        )

    async def _unsubscribe(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        subscription_id = _number(command.target)
        mine = {s.id for s in await self.store.list_subscriptions(request.conversation)}
        if subscription_id is None or subscription_id not in mine:
            return Reply(f"This channel has no subscription {command.target}. Type `subscriptions` to list them.")
        await self.store.remove_subscription(subscription_id)
        self.ingest.forget_subscriptions()
        await self._audit(request, command.canonical, "removed")
        return Reply(f"Removed subscription {subscription_id}.", visibility=Visibility.CHANNEL)

    async def _subscriptions(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        stored = await self.store.list_subscriptions(request.conversation)
        if not stored:
            return Reply("This channel has no subscriptions made from chat. Type `subscribe` to add one.")
        now = self.clock.now()
        lines = []
        for s in stored:
            shown = ", ".join(f"{k}={','.join(v)}" for k, v in s.filters.items() if k in _LIST_FILTERS)
            muted = (
                f" (muted until {s.muted_until:%Y-%m-%d %H:%M} UTC)" if s.muted_until and s.muted_until > now else ""
            )
            lines.append(f"{s.id}: {shown or 'everything'}{muted}")
        return Reply("Subscriptions of this channel:\n" + "\n".join(lines))

    async def _mute(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        subscription_id = _number(command.target)
        mine = {s.id for s in await self.store.list_subscriptions(request.conversation)}
        if subscription_id is None or subscription_id not in mine:
            return Reply(f"This channel has no subscription {command.target}.")
        try:
            duration = parse_duration(command.options.get("for", "1h"))
        except ValueError as error:
            return Reply(str(error))
        until = self.clock.now() + duration
        await self.store.mute_subscription(subscription_id, until)
        self.ingest.forget_subscriptions()
        return Reply(
            f"Muted subscription {subscription_id} until {until:%Y-%m-%d %H:%M} UTC.", visibility=Visibility.CHANNEL
        )

    async def _approvals(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        mine = []
        for gate in await self.store.list_gates(GateState.PENDING):
            decisions = await self.store.gate_decisions(gate.gate_id)
            if self.policy.may_decide(request.user, gate, "approve", "", decisions).allowed:
                mine.append(gate)
        if not mine:
            return Reply("No pending gates are waiting for you.")
        return Reply("Gates waiting for you:\n" + "\n".join(f"• {g.title}" for g in mine))

    # --- actions -----------------------------------------------------------------------------------

    async def _decide(self, request: ActionRequest) -> ActionResult:
        gate_id = request.value.get("gate", "")
        return await self.gatekeeper.decide(
            request.user, gate_id, request.action_id, request.comment, request.conversation
        )

    async def _audit(self, request: CommandRequest, command: str, outcome: str) -> None:
        await self.store.append_audit(
            AuditEntry(
                at=self.clock.now(),
                actor=request.user.display,
                action="command",
                target=command,
                outcome=outcome,
                platform=request.user.platform,
                conversation=request.conversation.conversation_id,
            )
        )


def _number(text: str | None) -> int | None:
    try:
        return int(text or "")
    except ValueError:
        return None
