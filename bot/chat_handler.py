"""The core's answer to everything people do in chat: commands and clicks, on any platform.

Commands are parsed with the grammar in :mod:`bot.commands`, checked against :mod:`bot.policy`,
and answered at once; work that takes time runs in the background (:mod:`bot.runner`). Clicks on
gate cards go to the :class:`~bot.gates.Gatekeeper`; clicks on confirmations go to the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bot.audit import command_entry
from bot.azure_devops_urls import (
    AzureDevOpsUrl,
    NotAnAzureDevOpsUrl,
    looks_like_url,
    organization_of,
    parse_azure_devops_url,
)
from bot.clock import Clock
from bot.commands import LIST_FILTERS, CommandSpec, ParsedCommand, UsageError, closest_option, help_text, parse
from bot.config import parse_duration, subscription_filter_problems
from bot.events import (
    ApprovalEvent,
    ApprovalPending,
    DomainEvent,
    Person,
    PipelineRef,
    RunStateChanged,
    StageStateChanged,
)
from bot.gate_outcomes import decided_in_azure_devops_only
from bot.gates import Gatekeeper
from bot.ingest import Ingest
from bot.interactions import ActionRequest, ActionResult, CommandRequest, Reply, Visibility, link
from bot.kept_out import carriers, joined, kept_out, kinds_said, reasons
from bot.living import merge, render
from bot.local_times import NotATime, names_its_offset, shown, time_typed, zone_named
from bot.policy import Policy
from bot.ports import HookProvisioner, ServiceRefused, ServiceUnavailable
from bot.records import Gate, GateState, StoredSubscription
from bot.routing import DEFAULT_FILTERS, DEFAULTS_MARK, KINDS_SAYING, Filters, Subscription, unknown_projects
from bot.run_reasons import canonical_reason
from bot.stored_events import event_from_json

log = logging.getLogger("handoff.chat")

CommandHandler = Callable[[CommandRequest, ParsedCommand], Awaitable[Reply]]
ActionHandler = Callable[[ActionRequest], Awaitable[ActionResult]]

_PATTERN_FILTERS = ("text_include", "text_exclude")
# How long `mute` silences a subscription: at least a minute, at most 90 days (then `unsubscribe`).
MIN_MUTE, MAX_MUTE = timedelta(minutes=1), timedelta(days=90)
_FOR_IS = "`for` is how long, such as 30m, 4h or 7d."
_UNTIL_IS = (
    "`until` is when the mute ends: 17:00 or 5pm, tomorrow, a date such as 2026-12-01, or a date and time such "
    "as 2026-12-01T09:00."
)
# Filters that name people: ``me`` there is whoever typed the command, by their email.
_PEOPLE_FILTERS = ("actors_include", "actors_exclude")
_NO_EMAIL = "Handoff cannot see it here: name yourself by the email Azure DevOps and Azure ML know you by."
# Options of `subscribe` that hold one value and are no filter (the defaults still apply beside them).
_SETTINGS = ("repeat_limit", "card_format", "broadcast", "mentions")
# The filters that say which events come, in place of the defaults; every other filter narrows them.
_CHOOSING_FILTERS = ("events", "outcomes")
# How many of the events received last a dry run tries the filters on, and how many of the matches it shows.
DRY_RUN_EVENTS = 500
DRY_RUN_SHOWN = 5
# The facts of a card a dry run names beside its title: which run, which model version.
_TELLING_FACTS = ("Run", "Model", "Version")
# What `subscribe <Azure DevOps URL>` follows unless told otherwise: failed runs and approvals.
URL_DEFAULT_FILTERS: dict[str, Any] = {
    "events": ["run", "approval"],
    "outcomes": ["failed", "pending"],
    DEFAULTS_MARK: True,
}
# What the defaults a subscription was made with bring, as it is shown: its kinds and outcomes are not shown
# as typed, since typed they would be named (`events=run,approval environments=production` is every run). Each
# kind of the defaults in words, in the order they are said.
_DEFAULT_KINDS_SAID = {
    "run": "failed runs",
    "release": "classic releases' failed deployments",
    "training_run": "failed training runs",
    "data_drift": "data drift",
    "approval": "approvals",
    "model_registered": "new models",
}
_ALL_DEFAULTS_SAID = "failures, approvals and new models"


def _here(request: CommandRequest) -> str:
    """Where the command was typed, as its answers name it."""
    return "this chat" if request.in_chat else "this channel"


def _described(filters: dict[str, Any]) -> str:
    """A subscription's filters and settings as typed in chat (``events=run,approval repeat_limit=30m``); one
    made with ``subscribe``'s defaults, as what of them can come with what was typed beside them (``approvals and
    classic releases' failed deployments with `environments=production```: no run or model says an environment)."""
    said = _defaults_said(filters) if filters.get(DEFAULTS_MARK) else None
    shown = [*_filters_shown(filters), *(f"{k}={filters[k]}" for k in _SETTINGS if filters.get(k))]
    if said is None:
        return _as_code(shown)
    if not said:
        return f"nothing: no failure, approval or new model says all of {_as_code(shown)}"
    return f"{said} with {_as_code(shown)}" if shown else said


def _filters_shown(filters: Mapping[str, Any]) -> list[str]:
    """A subscription's filters as typed in chat, one option each (the defaults' kinds and outcomes left out)."""
    shown = [f"{k}={_as_typed(','.join(v))}" for k, v in filters.items() if k in LIST_FILTERS]
    if filters.get(DEFAULTS_MARK):
        shown = [s for s in shown if s.partition("=")[0] not in _CHOOSING_FILTERS]
    shown += [f"tags.{key}={_as_typed(value)}" for key, value in filters.get("tags", {}).items()]
    shown += [f"{k}={_as_typed(p)}" for k in _PATTERN_FILTERS for p in filters.get(k, ())]
    return shown


def _nothing_comes(command: ParsedCommand, filters: dict[str, Any], compiled: Filters, kept: Mapping[str, str]) -> str:
    """The answer to a ``subscribe`` whose filters no event can ever match (``kept``: every kind it takes, with the
    filter that keeps it out): what is wrong, and the command corrected where some kind carries all it asks."""
    if compiled.events and not compiled.defaulted:
        said = f"{reasons(kept, compiled)}, so nothing would ever come."
    else:
        if not compiled.defaulted:
            what = "no event"
        elif set(compiled.kinds) >= set(DEFAULT_FILTERS["events"]):
            what = f"none of the {_ALL_DEFAULTS_SAID} `subscribe` sends unless told otherwise"
        else:
            defaults = joined(words for kind, words in _DEFAULT_KINDS_SAID.items() if kind in compiled.kinds)
            what = f"none of the {defaults} `subscribe` sends unless told otherwise"
        carried = carriers(compiled, outcomes=not compiled.defaulted)
        said = f"{what} can say all of {_as_code(_filters_shown(filters))}: {carried}."
    can = compiled.kinds_carrying()
    if not can:
        return (
            f"Nothing was subscribed: {said} No kind of event carries all of that: leave a filter out, or subscribe "
            "to each kind apart."
        )
    typed = [f"{key}={_as_typed(value)}" for key, value in command.options.items() if key != "events"]
    example = " ".join(["subscribe", *command.targets, f"events={can[0]}", *typed, *sorted(command.flags)])
    others = f" ({kinds_said(can).capitalize()} can match those filters.)" if len(can) > 1 else ""
    return f"Nothing was subscribed: {said} Did you mean `{example}`?{others}"


def _defaults_said(filters: Mapping[str, Any]) -> str:
    """The kinds of ``subscribe``'s defaults that can come with the other filters of ``filters``, in words: a filter
    on what some kinds never say keeps them out (only models and training runs have tags). "" for none."""
    kinds = set(filters.get("events") or ())
    for key, saying in KINDS_SAYING.items():
        if filters.get(key):
            kinds &= saying
    if kinds >= set(DEFAULT_FILTERS["events"]):
        return _ALL_DEFAULTS_SAID
    said = [words for kind, words in _DEFAULT_KINDS_SAID.items() if kind in kinds]
    return " and ".join([", ".join(said[:-1]), said[-1]]) if len(said) > 1 else "".join(said)


def _unknown_projects_said(unknown: list[str], followed: Sequence[str]) -> str:
    """The sentence that warns of ``subscribe projects=…`` naming projects Handoff does not follow."""
    names = ", ".join(f"`{project}`" for project in unknown)
    one = len(unknown) == 1
    return (
        f"\nBut {names} {'is no project' if one else 'are no projects'} Handoff follows "
        f"({', '.join(followed) or 'none'}): nothing comes from {'it' if one else 'them'}. A project goes by its "
        "name or its id."
    )


def _as_code(options: list[str]) -> str:
    """Options shown as typed, in a code span (where a glob's ``*`` is not taken for bold); "" for none."""
    return f"`{' '.join(options).replace('`', chr(39))}`" if options else ""


def _as_typed(value: str) -> str:
    """A value as it would be typed: quoted when it holds a space or a quote, so that it reads as typed
    (``text_exclude="bob's run"``, not shell quoting) and types back as the same value."""
    if not any(c.isspace() or c in "'\"" for c in value):
        return value
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _typed_filters(options: Mapping[str, str]) -> dict[str, Any]:
    """``subscribe``'s options as a subscription's filters: lists split at commas, ``tags.<key>`` options
    gathered under ``tags``, a text pattern whole (a comma may be part of it), a setting as it is."""
    filters: dict[str, Any] = {}
    for key, value in options.items():
        if key.startswith("tags."):
            filters.setdefault("tags", {})[key.removeprefix("tags.")] = value.strip()
        elif key in _SETTINGS:
            filters[key] = value.strip()
        elif key in _PATTERN_FILTERS:
            filters[key] = [value]
        else:
            filters[key] = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    return filters


def _filters_described(filters: Filters) -> str:
    """A configured subscription's filters and settings as they would be typed in chat."""
    shown = [f"{k}={_as_typed(','.join(values))}" for k in LIST_FILTERS if (values := getattr(filters, k))]
    shown += [f"tags.{key}={_as_typed(value)}" for key, value in filters.tags.items()]
    shown += [
        f"{k}=({len(p)} pattern{'' if len(p) == 1 else 's'})" for k in _PATTERN_FILTERS if (p := getattr(filters, k))
    ]
    if filters.repeat_limit is not None:
        shown.append(f"repeat_limit={_duration(filters.repeat_limit)}")
    if filters.compact:
        shown.append("card_format=compact")
    shown += [f"{k}=off" for k in ("broadcast", "mentions") if not getattr(filters, k)]
    return _as_code(shown)


def _duration(span: timedelta) -> str:
    """``1h30m``, ``45m``, ``2h``: a duration as the settings write it."""
    minutes = int(span.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def _drawn(event: DomainEvent) -> str:
    """An event as the first line of the card it would show, with what tells it from another card of the same
    title (two runs of one pipeline waiting at one stage) and the card's first link: ``Waiting: Release
    release-app-y to production, run 20260301.2, model model-x:8 · [Open in Azure DevOps](…)``."""
    card = render(merge(None, event).state)
    which = [
        f"{f.label.lower()} {f.value}" for f in card.facts if f.label in _TELLING_FACTS and f.value not in card.title
    ]
    opened = f" · {link(card.links[0].url, card.links[0].label)}" if card.links else ""
    return ", ".join([f"{card.status.label}: {card.title}", *which]) + opened


def _tried(
    subscription: Subscription, received: list[tuple[datetime, DomainEvent]], now: datetime
) -> tuple[list[tuple[datetime, DomainEvent]], dict[str, int]]:
    """Of the events ``received``, those ``subscription`` wants, and per run the number of those it may want
    but which do not say who asked for their run, or why it started, where it filters on that.

    Routing asks Azure DevOps who asked for a run and why it started as its events arrive, where an actor or
    reasons filter needs it, and stores each event with what it learned: an event stored without it takes its
    run's requester (and reason) from another stored event of the run; one that has none is told apart, neither
    counted for nor against."""
    matched: list[tuple[datetime, DomainEvent]] = []
    unsaid: dict[str, int] = {}
    by_actor = subscription.filters.filters_actors
    by_reason = bool(subscription.filters.reasons)
    requesters = _run_requesters(event for _, event in received) if by_actor else {}
    reasons_known = _run_reasons(event for _, event in received) if by_reason else {}
    for at, event in received:
        unknown_in: PipelineRef | None = None  # the run of an event that does not say what the filters look at
        no_actor = no_reason = False
        if by_actor and event.actor is None and (run := _requested_run(event)) is not None:
            if (requester := requesters.get(run.run_key)) is None:
                no_actor, unknown_in = True, run
            else:
                event = replace(event, actor=requester)
        if by_reason and (run := _run_of(event)) is not None and run.reason is None:
            if (reason := reasons_known.get(run.run_key)) is None:
                no_reason, unknown_in = True, run
            else:
                event = _with_run(event, replace(run, reason=reason))
        if unknown_in is not None:
            if subscription.wants(event, now, ignoring_actor=no_actor, ignoring_reason=no_reason):
                unsaid[unknown_in.run_key] = unsaid.get(unknown_in.run_key, 0) + 1
            continue
        if subscription.wants(event, now):
            matched.append((at, event))
    return matched, unsaid


def _requested_run(event: DomainEvent) -> PipelineRef | None:
    """The run whose requester is ``event``'s actor, for the events whose requester routing asks Azure DevOps
    about as they arrive (a run's and a stage's, a pipeline approval waiting); None for the others."""
    if isinstance(event, RunStateChanged | StageStateChanged):
        return event.run
    if isinstance(event, ApprovalPending) and event.approval_kind == "pipeline":
        return event.run
    return None


def _run_of(event: DomainEvent) -> PipelineRef | None:
    """The pipeline run ``event`` concerns (a run's, a stage's, a pipeline approval's), where it names one."""
    if isinstance(event, RunStateChanged | StageStateChanged | ApprovalEvent):
        return event.run
    return None


def _with_run(event: DomainEvent, run: PipelineRef) -> DomainEvent:
    """``event`` with its run as ``run`` (of an event that concerns one)."""
    return replace(event, run=run) if isinstance(event, RunStateChanged | StageStateChanged | ApprovalEvent) else event


def _run_reasons(events: Iterable[DomainEvent]) -> dict[str, str]:
    """Why each run started, by its key, as some stored event of it says (build.complete, or one stored as routing
    learned it)."""
    found: dict[str, str] = {}
    for event in events:
        if (run := _run_of(event)) is not None and run.reason:
            found.setdefault(run.run_key, run.reason)
    return found


def _run_requesters(events: Iterable[DomainEvent]) -> dict[str, Person]:
    """Who asked for each run, by its key, as some stored event of it says (one stored as routing learned it)."""
    found: dict[str, Person] = {}
    for event in events:
        if event.actor is not None and (run := _requested_run(event)) is not None:
            found.setdefault(run.run_key, event.actor)
    return found


def _unsaid_words(filters: Filters) -> str:
    """What a run's events may not say that ``filters`` look at, as a dry run names it."""
    if filters.filters_actors and filters.reasons:
        return "who asked for the run or why it started"
    return "why the run started" if filters.reasons else "who asked for the run"


def _ago(elapsed: timedelta) -> str:
    minutes = max(0, int(elapsed.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


class _Refused(Exception):
    """A subscribe that cannot go ahead; the message is the reply."""


class ChatHandler:
    """Implements :class:`bot.interactions.InteractionHandler` for every platform.

    Other parts of the core add commands and actions with :meth:`add_command` and :meth:`add_action`
    (the runner adds ``retrain``, ``integrate``, ``cancel``…). With ``hooks``, ``subscribe <Azure DevOps
    URL>`` also makes sure the project's service hooks reach Handoff. With ``projects`` (the Azure DevOps
    projects Handoff follows), ``subscribe projects=…`` warns of a project that is none of them.
    """

    def __init__(
        self,
        store: Any,
        policy: Policy,
        gatekeeper: Gatekeeper,
        ingest: Ingest,
        clock: Clock,
        hooks: HookProvisioner | None = None,
        projects: Sequence[str] | None = None,
    ) -> None:
        self.hooks = hooks
        self.projects = projects
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
            "unmute": self._unmute,
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
            if error.spec is None:
                return Reply(f"{error.message}\nType `help` to see the commands.")
            # who may not run a command is told so, however they typed it
            if refusal := await self._refusal(request, error.spec, error.spec.verb):
                return refusal
            if error.spec.verb == "subscribe" and error.option is not None:
                return Reply(_filter_mistake(error.spec, error.option, error.message))
            return Reply(f"{error.message}\n{help_text(self._refused(request), error.spec.verb)}")
        if refusal := await self._refusal(request, command.spec, command.canonical):
            return refusal
        handler = self._commands.get(command.verb)
        if handler is None:
            return Reply(f"`{command.verb}` is not available in this installation of Handoff.")
        return await handler(request, command)

    async def on_action(self, request: ActionRequest) -> ActionResult:
        handler = self._actions.get(request.action_id)
        if handler is None:
            return ActionResult(False, "That button is no longer supported.")
        return await handler(request)

    async def refuse_before_comment(self, request: ActionRequest) -> str | None:
        if self._actions.get(request.action_id) != self._decide:
            return None
        return await self.gatekeeper.refuse_before_comment(
            request.user, request.value.get("gate", ""), request.action_id, request.conversation
        )

    # --- commands ----------------------------------------------------------------------------------

    def _refused(self, request: CommandRequest) -> Callable[[CommandSpec], str]:
        """Why the person who typed ``request`` may not run a command there; "" when they may."""

        def refused(spec: CommandSpec) -> str:
            verdict = self.policy.may_run(request.user, spec, request.conversation)
            return "" if verdict.allowed else verdict.reason or "you may not run it here."

        return refused

    async def _refusal(self, request: CommandRequest, spec: CommandSpec, typed: str) -> Reply | None:
        """The answer to someone the policy does not let run ``spec`` there (recorded); None when it does."""
        verdict = self.policy.may_run(request.user, spec, request.conversation)
        if verdict.allowed:
            return None
        await self._audit(request, typed, f"refused: {verdict.reason}")
        return Reply(f"Sorry, you can't run that here. {verdict.reason}")

    async def _help(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        return Reply(help_text(self._refused(request), command.target))

    async def _subscribe(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        link = None
        if command.target and not looks_like_url(command.target):
            return Reply(
                f"Nothing was subscribed: `{command.target}` is not a URL. `subscribe` takes an Azure DevOps "
                "project or pipeline URL, or filters such as `pipelines=release-*` (`help subscribe` shows them)."
            )
        if command.target:
            try:
                link = self._azure_devops_link(command.target)
            except _Refused as refused:
                return Reply(str(refused))
        defaults = URL_DEFAULT_FILTERS if link is not None else DEFAULT_FILTERS
        typed = _typed_filters(command.options)
        # the defaults say what comes (kinds, outcomes); other filters narrow them (`actors_exclude=me` is the
        # defaults without what you did, not everything else)
        chooses_what = any(key in typed for key in _CHOOSING_FILTERS)
        filters: dict[str, Any] = ({} if chooses_what else dict(defaults)) | typed
        for key in _PEOPLE_FILTERS:
            if key in typed and "me" in (v.lower() for v in filters[key]):
                if not request.user.email:
                    return Reply(f"Nothing was subscribed: `{key}=me` needs your email. {_NO_EMAIL}")
                me = request.user.email.lower()
                filters[key] = list(dict.fromkeys(me if v.lower() == "me" else v for v in filters[key]))
        if problems := subscription_filter_problems({k: filters[k] for k in typed}):
            # (a mistyped filter would otherwise be ignored, and the channel would get everything)
            said = "; ".join(problems)
            said += "" if said.endswith(("?", ".")) else "."
            return Reply(f"Nothing was subscribed: {said} `help subscribe` shows the filters.")
        if "reasons" in typed:  # (reasons=pr and reasons=pull_request are one subscription)
            filters["reasons"] = list(dict.fromkeys(canonical_reason(r) for r in filters["reasons"]))
        if command.target:
            filters["url"] = command.target
        dry_run = "dry-run" in command.flags
        warning = ""
        if link is not None:
            try:
                filters.update(await self._link_filters(link))
            except _Refused as refused:
                return Reply(str(refused))
        try:
            compiled = Filters.from_mapping(filters)
        except Exception as error:  # a bad pattern is the person's mistake, not ours
            return Reply(f"Those filters don't work: {error}")
        # (stored, such a subscription would match nothing, silently)
        kept = kept_out(compiled)
        if len(kept) == len(compiled.kinds):
            return Reply(_nothing_comes(command, filters, compiled, kept))
        if kept and compiled.events and not compiled.defaulted:
            warning += f"\nBut {kinds_said(kept)} will not come under these filters: {reasons(kept, compiled)}."
        if link is not None and not dry_run:
            warning = await self._ensure_hooks(link.project, filters.get("events") or []) + warning
        if dry_run:
            return await self._dry_run(request, filters)
        # the store tells a subscription already made (by anyone, even at this very moment)
        subscription_id, added = await self.store.add_subscription(
            StoredSubscription(request.conversation, filters, request.user.display, self.clock.now())
        )
        if not added:
            stored = await self.store.list_subscriptions(request.conversation)
            made = next((s.filters for s in stored if s.id == subscription_id), filters)  # as it was written then
            return Reply(
                f"{_here(request).capitalize()} has that subscription already (subscription {subscription_id}): "
                f"{_described(made) or 'everything'}. Nothing was added."
            )
        self.ingest.forget_subscriptions()
        await self._audit(request, command.canonical, f"subscription {subscription_id}")
        if self.projects is not None and (unknown := unknown_projects(typed.get("projects", ()), self.projects)):
            warning += _unknown_projects_said(unknown, self.projects)
        shown = _described(filters)
        return Reply(
            f"Subscribed {_here(request)} (subscription {subscription_id}): {shown or 'everything'}.{warning}",
            visibility=Visibility.CHANNEL,
        )

    async def _dry_run(self, request: CommandRequest, filters: dict[str, Any]) -> Reply:
        """Which of the events received last these filters would have sent to this conversation (those that do
        not say who asked for their run told apart, where the filters look at that)."""
        described = _described(filters) or "everything"
        received = [
            (r.received_at, event)
            for r in await self.store.recent_events(DRY_RUN_EVENTS)
            if isinstance(r.payload, dict) and (event := event_from_json(r.payload)) is not None
        ]
        if not received:
            return Reply(f"Dry run, nothing subscribed: Handoff has no recent events to try {described} on.")
        subscription = Subscription((request.conversation,), Filters.from_mapping(filters))
        now = self.clock.now()
        matched, unsaid = _tried(subscription, received, now)
        # events of one run or model version make one card: each card once, as its newest event drew it
        cards: dict[str, tuple[datetime, DomainEvent]] = {}
        for at, event in matched:
            cards.setdefault(event.grouping_key, (at, event))
        since = received[-1][0]
        sent = f"{len(matched)} here, on {len(cards)} card{'' if len(cards) == 1 else 's'}" if cards else "none here"
        intro = (
            f"Dry run, nothing subscribed: of the {len(received)} events Handoff received since {since:%Y-%m-%d %H:%M}"
        )
        if unsaid:
            count, runs = sum(unsaid.values()), len(unsaid)
            intro += (
                f" UTC, {count} (of {runs} run{'' if runs == 1 else 's'}) do{'es' if count == 1 else ''} not say "
                f"{_unsaid_words(subscription.filters)}, so whether {described} would send "
                f"{'it' if count == 1 else 'them'} is decided as such events arrive, when Handoff asks Azure DevOps. "
                "Of the others, it"
            )
        else:
            intro += f" UTC, {described}"
        lines = [f"{intro} would have sent {sent}" + (", the newest:" if cards else ".")]
        newest = list(cards.values())[:DRY_RUN_SHOWN]
        lines += [f"• {_drawn(event)} ({_ago(now - at)} ago)" for at, event in newest]
        if len(cards) > DRY_RUN_SHOWN:
            lines.append(f"…and {len(cards) - DRY_RUN_SHOWN} more.")
        lines.append("Type the same without `dry-run` to subscribe.")
        return Reply("\n".join(lines))

    def _azure_devops_link(self, target: str) -> AzureDevOpsUrl:
        """The project or pipeline a pasted URL names, in the organization Handoff is connected to."""
        known = (self.hooks.organization_url,) if self.hooks is not None else ()
        try:
            link = parse_azure_devops_url(target, known)
        except NotAnAzureDevOpsUrl as error:
            raise _Refused(str(error)) from None
        if known and link.organization.lower() != organization_of(known[0]).lower():
            raise _Refused(
                f"Handoff is connected to the Azure DevOps organization {organization_of(known[0])}, "
                f"and that URL is in {link.organization}."
            )
        if link.release:
            raise _Refused(
                "Classic release pipelines can't be followed by URL. Subscribe to the project instead, e.g. "
                "`subscribe <project URL> events=release,approval`."
            )
        return link

    async def _link_filters(self, link: AzureDevOpsUrl) -> dict[str, list[str]]:
        """``projects`` and, for a pipeline URL, ``pipelines`` (the pipeline's name, looked up)."""
        filters = {"projects": [link.project]}
        if not link.names_a_pipeline:
            return filters
        if self.hooks is None:
            raise _Refused(
                "Handoff is not connected to Azure DevOps here, so it can't tell which pipeline that is. "
                "Subscribe to the project URL with `pipelines=<name>` instead."
            )
        try:
            if link.pipeline_id is not None:
                name = await self.hooks.pipeline_name(link.project, link.pipeline_id)
                missing = f"pipeline {link.pipeline_id}"
            else:
                assert link.run_id is not None
                name = await self.hooks.run_pipeline_name(link.project, link.run_id)
                missing = f"run {link.run_id}"
        except (ServiceRefused, ServiceUnavailable) as error:
            raise _Refused(f"Azure DevOps could not say which pipeline that is: {error}") from None
        if name is None:
            raise _Refused(f"Azure DevOps project {link.project} has no {missing}.")
        filters["pipelines"] = [name]
        return filters

    async def _ensure_hooks(self, project: str, events: list[str]) -> str:
        """Make the project's service hooks reach Handoff; a sentence to add to the reply if they don't."""
        if self.hooks is None:
            return ""
        try:
            await self.hooks.ensure_hooks(project, events)
        except (ServiceRefused, ServiceUnavailable) as error:
            log.warning("service hooks for project %s not ensured: %s", project, error)
            return (
                f"\nBut Handoff could not set up the service hooks of {project} ({error}); until someone runs "
                "`handoff connect azure-devops`, events may not arrive."
            )
        return ""

    async def _unsubscribe(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        subscription_id = _number(command.target)
        mine = {s.id for s in await self.store.list_subscriptions(request.conversation)}
        if subscription_id is None or subscription_id not in mine:
            return _no_such_subscription(request, command)
        await self.store.remove_subscription(subscription_id)
        self.ingest.forget_subscriptions()
        await self._audit(request, command.canonical, "removed")
        return Reply(f"Removed subscription {subscription_id}.", visibility=Visibility.CHANNEL)

    async def _subscriptions(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        """The subscriptions made here from chat, and those of the configuration file that route here (which
        chat cannot change, but which explain what arrives)."""
        stored = await self.store.list_subscriptions(request.conversation)
        configured = [s for s in self.ingest.configured if request.conversation in s.targets]
        here = _here(request)
        now, zone = self.clock.now(), zone_named(request.user.time_zone)

        def muted(until: datetime | None) -> str:
            return f" (muted until {shown(until, zone)})" if until is not None and until > now else ""

        if not stored:
            lines = [f"{here.capitalize()} has no subscriptions made from chat. Type `subscribe` to add one."]
        else:
            lines = [f"Subscriptions of {here}:"]
            lines += [f"{s.id}: {_described(s.filters) or 'everything'}{muted(s.muted_until)}" for s in stored]
        if configured:
            # (chat does not write the configuration file: it says where they are muted)
            lines.append(
                "From Handoff's configuration file (changed there, not from chat; `muted_until:` in an entry mutes it):"
            )
            lines += [f"• {_filters_described(s.filters) or 'everything'}{muted(s.muted_until)}" for s in configured]
        return Reply("\n".join(lines))

    async def _mute(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        subscription_id = _number(command.target)
        mine = {s.id for s in await self.store.list_subscriptions(request.conversation)}
        if subscription_id is None or subscription_id not in mine:
            return _no_such_subscription(request, command)
        zone = zone_named(request.user.time_zone)
        try:
            until = _mute_end(command.options, self.clock.now(), zone)
        except _Refused as refused:
            return Reply(str(refused))
        await self.store.mute_subscription(subscription_id, until)
        self.ingest.forget_subscriptions()
        ended = f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        await self._audit(request, command.canonical, f"subscription {subscription_id} muted until {ended}")
        typed = command.options.get("until")
        read_in_utc = (
            f" Handoff does not know your time zone, so it read `{typed}` in UTC."
            if typed is not None and zone is None and not names_its_offset(typed)
            else ""
        )
        return Reply(
            f"Muted subscription {subscription_id} until {shown(until, zone)}. `unmute {subscription_id}` ends it "
            f"sooner.{read_in_utc}",
            visibility=Visibility.CHANNEL,
        )

    async def _unmute(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        subscription_id = _number(command.target)
        found = {s.id: s for s in await self.store.list_subscriptions(request.conversation)}
        subscription = found.get(subscription_id) if subscription_id is not None else None
        if subscription is None:
            return _no_such_subscription(request, command)
        if subscription.muted_until is None or subscription.muted_until <= self.clock.now():
            return Reply(f"Subscription {subscription_id} is not muted.")
        await self.store.mute_subscription(subscription_id, None)
        self.ingest.forget_subscriptions()
        await self._audit(request, command.canonical, f"subscription {subscription_id} unmuted")
        return Reply(f"Unmuted subscription {subscription_id}.", visibility=Visibility.CHANNEL)

    async def _approvals(self, request: CommandRequest, command: ParsedCommand) -> Reply:
        mine: list[Gate] = []
        elsewhere: list[Gate] = []
        for gate in await self.store.list_gates(GateState.PENDING):
            decisions = await self.store.gate_decisions(gate.gate_id)
            if self.policy.may_decide(request.user, gate, "approve", "", decisions).allowed:
                # one Handoff may not decide (or has given its one approval) waits for them in Azure DevOps
                (elsewhere if decided_in_azure_devops_only(gate) else mine).append(gate)
        if not mine and not elsewhere:
            return Reply("No pending gates are waiting for you.")
        now = self.clock.now()
        lines = ["Gates waiting for you, oldest first:"] if mine else ["No pending gates are waiting for you in chat."]
        for gate in sorted(mine, key=lambda g: g.created_at):
            lines.append(await self._gate_line(gate, now))
        if elsewhere:
            lines.append("Waiting for you in Azure DevOps, where only people may decide them:")
        for gate in sorted(elsewhere, key=lambda g: g.created_at):
            lines.append(f"{await self._gate_line(gate, now)}: {decided_in_azure_devops_only(gate)}")
        return Reply("\n".join(lines))

    async def _gate_line(self, gate: Gate, now: datetime) -> str:
        """A gate in `approvals`: its title (linked to it), how long it has waited and when it expires."""
        card = await self.store.get_card_state(gate.gate_id)
        url = card.state.get("url") if card is not None else None
        expires = f", expires in {_ago(gate.expires_at - now)}" if gate.expires_at is not None else ""
        title = link(url, gate.title) if isinstance(url, str) and url else gate.title
        return f"• {title} (waiting {_ago(now - gate.created_at)}{expires})"

    # --- actions -----------------------------------------------------------------------------------

    async def _decide(self, request: ActionRequest) -> ActionResult:
        gate_id = request.value.get("gate", "")
        return await self.gatekeeper.decide(
            request.user, gate_id, request.action_id, request.comment, request.conversation
        )

    async def _audit(self, request: CommandRequest, command: str, outcome: str) -> None:
        await self.store.append_audit(command_entry(request, command, outcome, self.clock.now()))


def _no_such_subscription(request: CommandRequest, command: ParsedCommand) -> Reply:
    """The answer to ``unsubscribe``, ``mute`` or ``unmute`` of a subscription the conversation does not have: a
    target that is no number at all (``mute 2h``) is told how the command goes."""
    here = _here(request)
    if _number(command.target) is None:
        spec = command.spec
        example = f", for example `{spec.examples[0]}`" if spec.examples else ""
        return Reply(
            f"`{spec.verb}` needs {spec.needs or 'a subscription id'} first, not `{command.target}`{example}; "
            f"`subscriptions` lists {here}'s."
        )
    return Reply(f"{here.capitalize()} has no subscription {command.target}. Type `subscriptions` to list them.")


def _number(text: str | None) -> int | None:
    try:
        return int(text or "")
    except ValueError:
        return None


def _mute_end(options: Mapping[str, str], now: datetime, zone: tzinfo | None) -> datetime:
    """When a mute typed with ``options`` ends, in UTC: ``for=`` from now (an hour unless said), or ``until=`` read
    in the person's time ``zone`` (UTC where not known). Raises :class:`_Refused` saying what is wrong."""
    if "for" in options and "until" in options:
        raise _Refused("Give `for` (how long) or `until` (when it ends), not both.")
    if "until" in options:
        typed = options["until"]
        try:
            until = time_typed(typed, now, zone).astimezone(UTC)
        except (NotATime, OverflowError):
            try:
                parse_duration(typed)
            except (ValueError, OverflowError):
                raise _Refused(_UNTIL_IS) from None
            raise _Refused(f"{_UNTIL_IS} For how long, type `for={typed}`.") from None
        if until <= now:
            raise _Refused(f"{shown(until, zone)} has passed; `until` takes a time to come.")
    else:
        typed = options.get("for", "1h")
        try:
            until = now + parse_duration(typed)
        except (ValueError, OverflowError):
            try:
                time_typed(typed, now, zone)
            except (NotATime, OverflowError):
                raise _Refused(_FOR_IS) from None
            raise _Refused(f"{_FOR_IS} For a time, type `until={typed}`.") from None
    if not MIN_MUTE <= until - now <= MAX_MUTE:
        latest = f", so until {shown(now + MAX_MUTE, zone)} at the latest" if until > now else ""
        raise _Refused(f"A subscription is muted for 1 minute to 90 days{latest}; `unsubscribe` removes it for good.")
    return until


def _filter_mistake(spec: CommandSpec, key: str, message: str) -> str:
    """The one-line answer to a ``subscribe`` filter typed wrong (``message`` is what the parser said): the filter
    named, what is wrong with it, and where the filters are listed (the whole help would bury the mistake)."""
    name = key.split(".", 1)[0] + ".<key>" if "." in key else key
    if name not in spec.options:
        said = f"`{key}` is not a filter of `subscribe`.{closest_option(spec, key)}"
    elif message.endswith("needs a value."):
        said = f"the filter `{key}=` needs a value."
    else:
        said = message
    return f"Nothing was subscribed: {said} `help subscribe` shows the filters."
