"""Subscriptions and their filters: which conversations an event goes to.

Subscriptions come from the YAML file (each names a configured channel, which may be on Slack,
Teams or both) and from chat (each bound to the conversation it was made in). Every filter narrows;
an empty filter matches everything. A filter on what some kinds never carry (an outcome, an environment)
keeps those kinds out, except the kinds the subscription names in ``events``: it applies to the others only.
A stage filter is held to the same way by what says no stage: a run named in ``events`` comes while it
names no stage (it is going, it succeeded, or its failure named none), but a run that names the stage it
failed in comes only where that stage is one the filter follows. The kinds of ``subscribe``'s defaults are
not named that way: other filters narrow them (``subscribe environments=production`` is production's
approvals and failed deployments, and no run).

A card shown in a conversation is kept current there whatever its later events are, but it is kept current
quietly (no mention, no thread reply, no broadcast) where the subscriptions there turn away what was not
known when it was shown: who did it (an actor filter leaves them out), or the stage its run failed in (a
stage filter follows none of the stages its thread told failed), and where every subscription there is muted
(see :func:`turned_away` and :func:`muted_there`). ``events=run stages=Integration*`` shows a run as it
starts, and a failure in its stage Train changes its card there without calling on anyone.
What each kind may carry (KINDS_SAYING, OUTCOMES_OF) also tells what no event of a kind can ever match
(:meth:`Filters.keeps_out`): ``events=model_registered pipelines=train-*`` takes nothing, and chat refuses it.
A ``reasons`` filter (why a run started: manual, ci, pr…, see :mod:`bot.run_reasons`) reads an event's run, as
the branch filter does: a run's, a stage's or a pipeline approval's, whose hooks (but build.complete's) do not say
it, so the Azure DevOps route asks the Build API where it decides where an event goes
(:func:`depends_on_run_facts`); a kind that has no run (a new model) comes where ``events`` names it, as with
environments.
Glob patterns (``*``, ``?``) work for pipelines, branches, stages, environments, models and tag values; text
filters are regular expressions. A filter on what an event names several of (a deployment's models, a
stage's name and display name) lets it through if any matches.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter

from bot.config import KINDS_WITHOUT_OUTCOME as KINDS_WITHOUT_OUTCOME
from bot.config import Settings, SubscriptionSettings, parse_duration
from bot.events import EVENT_KINDS, DomainEvent, RunStateChanged
from bot.records import ConversationAddress, StoredSubscription
from bot.run_reasons import KINDS_WITH_REASON, reasons_meant
from bot.text_patterns import TextPattern, compile_text_pattern

# Marks the ``events`` and ``outcomes`` of a subscription as ``subscribe``'s defaults (which chat stores with
# them): the kinds are what comes, but are not named the way typed ``events=`` names them, so an environment
# or stage filter holds back those that never say one. (A kind without an outcome still comes whatever the
# outcomes say: the defaults' new models.)
DEFAULTS_MARK = "defaults"

# What a channel gets when someone subscribes it without filters: failures (of runs, classic releases'
# deployments, training runs; drift), approvals, new models.
DEFAULT_FILTERS: dict[str, Any] = {
    "events": ["run", "approval", "release", "model_registered", "training_run", "data_drift"],
    "outcomes": ["failed", "pending"],
    DEFAULTS_MARK: True,
}

# The kinds whose events may say what a filter reads (an event of another kind never matches it, unless the
# subscription names its kind in ``events``, for environments and stages): what ``subscribe``'s defaults
# narrowed by that filter can still bring.
KINDS_SAYING: dict[str, frozenset[str]] = {
    "projects": frozenset({"run", "stage", "approval", "release", "code_pushed", "pull_request"}),
    "pipelines": frozenset({"run", "stage", "approval", "release"}),
    "branches": frozenset({"run", "stage", "approval", "code_pushed", "pull_request"}),
    "stages": frozenset({"run", "stage", "approval"}),  # a run: the stage it failed in, when known
    "environments": frozenset({"approval", "release"}),
    "reasons": KINDS_WITH_REASON,
    "models": frozenset({"run", "approval", "model_registered", "model_deployed", "training_run"}),
    "tags": frozenset({"model_registered", "model_deployed", "training_run"}),
}

# The kinds whose events make one card: a run's card shows its stages.
_CARD_KINDS = {"run": frozenset({"run", "stage"}), "stage": frozenset({"run", "stage"})}

# Kinds whose events never say an environment (only approvals and classic releases' deployments do), or may
# say no stage (stages' events and approvals always do; a run says the stage it failed in, when known). Where
# the subscription names such a kind in ``events``, an environment or stage filter does not hold back those of
# its events that say none: ``events=run,approval environments=production`` is every run and production's
# approvals; ``events=run stages=Integration*`` is every run until it fails, and its failure in a stage
# ``Integration*`` (or one that names no stage).
KINDS_WITHOUT_ENVIRONMENT = frozenset(EVENT_KINDS) - KINDS_SAYING["environments"]
KINDS_WITHOUT_STAGE = frozenset(EVENT_KINDS) - {"stage", "approval"}
# Kinds that have no run, and so no reason it started: a ``reasons`` filter does not hold back those named in
# ``events`` (``events=run,model_registered reasons=manual`` is manual runs and every new model).
KINDS_WITHOUT_REASON = frozenset(EVENT_KINDS) - KINDS_SAYING["reasons"]

# The outcomes each kind's events may have (their ``outcome``): a run under way, a waiting stage or an open pull
# request has none yet; no run or stage is ever pending, no pull request failed; a drift is always failed, a
# deployment succeeded. An outcome filter keeps a kind out where it names none of them (unless it is one of
# KINDS_WITHOUT_OUTCOME named in ``events``).
OUTCOMES_OF: dict[str, frozenset[str]] = {
    "run": frozenset({"succeeded", "failed", "canceled"}),
    "stage": frozenset({"succeeded", "failed", "canceled"}),
    "approval": frozenset({"pending", "succeeded", "failed", "canceled"}),
    "release": frozenset({"succeeded", "failed", "canceled"}),
    "code_pushed": frozenset(),
    "pull_request": frozenset({"succeeded", "canceled"}),
    "model_registered": frozenset(),
    "model_deployed": frozenset({"succeeded"}),
    "training_run": frozenset({"succeeded", "failed", "canceled"}),
    "data_drift": frozenset({"failed"}),
    "data_arrived": frozenset(),
}


# A yes/no setting as YAML (a boolean) or chat (``off``, ``no``, ``false``…) gives it.
_FLAG = TypeAdapter(bool)


def _flag(value: Any) -> bool:
    """A yes/no setting; on unless set."""
    return True if value is None else _FLAG.validate_python(value)


def _one(value: str | None) -> tuple[str, ...]:
    return (value,) if value is not None else ()


# Each glob filter and the values of an event it reads: it matches if any of them matches (a deployment of
# several models comes to a channel that follows any of them; the ingest routes it one version at a time).
_GLOB_FILTERS: tuple[tuple[str, Callable[[DomainEvent], tuple[str, ...]]], ...] = (
    ("projects", lambda event: (*_one(event.project), *_one(event.project_id))),  # by name or by id
    ("pipelines", lambda event: event.pipeline_names),
    ("branches", lambda event: _one(event.branch)),
    ("environments", lambda event: _one(event.environment)),
    ("models", lambda event: event.model_names),
)


def _any_glob(patterns: Sequence[str]) -> re.Pattern[str]:
    """One regex for "any of these globs", to match a lowercased value with (what ``fnmatchcase`` does,
    without case)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


def _branch_globs(patterns: Sequence[str]) -> list[str]:
    """Branch globs as people write them (``main``, ``release/*``) match the full refs events name
    (``refs/heads/main``); a glob that names a ref itself (``refs/heads/ma*``, ``refs/pull/*``) matches it."""
    return [*patterns, *(f"refs/heads/{p}" for p in patterns if not p.lower().startswith("refs/"))]


def _globbed(value: str | None, pattern: re.Pattern[str]) -> bool:
    return value is not None and pattern.match(value.lower()) is not None


def _stage_names(event: DomainEvent) -> tuple[str, ...]:
    """The stage names a ``stages`` filter matches: a stage's or an approval's, a failed run's failing stage
    (its display name and its own name, as a stage's events match by either)."""
    if isinstance(event, RunStateChanged) and event.failing_stage:
        return tuple(dict.fromkeys(n for n in (event.failing_stage, event.failing_stage_name) if n))
    return event.stage_names


@dataclass(frozen=True)
class _Matcher:
    """A subscription's filters, compiled once: every event is checked against every subscription."""

    events: frozenset[str] | None
    outcomes: frozenset[str] | None
    # (filter name, the event's values it reads, patterns), for the filters given
    globs: tuple[tuple[str, Callable[[DomainEvent], tuple[str, ...]], re.Pattern[str]], ...]
    stages: re.Pattern[str] | None  # a stage goes by its name and its display name: either may match
    reasons: frozenset[str] | None  # Azure DevOps' reasons, lowercased, that the names given stand for
    tags: tuple[tuple[str, re.Pattern[str]], ...]
    actors_include: frozenset[str] | None
    actors_exclude: frozenset[str] | None


@dataclass(frozen=True)
class Filters:
    """The conditions of one subscription."""

    events: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # why a run started, as typed (manual, ci, pr, pullRequest…)
    tags: Mapping[str, str] = field(default_factory=dict)
    actors_include: tuple[str, ...] = ()
    actors_exclude: tuple[str, ...] = ()
    text_include: tuple[TextPattern, ...] = ()
    text_exclude: tuple[TextPattern, ...] = ()
    # not conditions: how often a conversation gets a new card for the same repeat key (None: always),
    # whether its cards are compact, whether alerts in a card's thread also show in the conversation, and
    # whether a failure's reply @mentions the person who asked for the run, and a waiting gate its approvers
    repeat_limit: timedelta | None = None
    compact: bool = False
    broadcast: bool = True
    mentions: bool = True
    # ``events`` and ``outcomes`` are ``subscribe``'s defaults (see DEFAULTS_MARK): they name no kind
    defaulted: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Filters:
        """Build from a subscription's settings or a stored subscription's JSON."""

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or ()
            return (value,) if isinstance(value, str) else tuple(str(v) for v in value)

        def patterns(key: str) -> tuple[TextPattern, ...]:
            return tuple(compile_text_pattern(p) for p in strings(key))

        return cls(
            events=strings("events"),
            outcomes=strings("outcomes"),
            projects=strings("projects"),
            pipelines=strings("pipelines"),
            branches=strings("branches"),
            stages=strings("stages"),
            environments=strings("environments"),
            models=strings("models"),
            reasons=strings("reasons"),
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            actors_include=tuple(a.lower() for a in strings("actors_include")),
            actors_exclude=tuple(a.lower() for a in strings("actors_exclude")),
            text_include=patterns("text_include"),
            text_exclude=patterns("text_exclude"),
            repeat_limit=parse_duration(limit) if (limit := data.get("repeat_limit")) is not None else None,
            compact=data.get("card_format") == "compact",
            broadcast=_flag(data.get("broadcast")),
            mentions=_flag(data.get("mentions")),
            defaulted=data.get(DEFAULTS_MARK) is True,
        )

    @property
    def shapes_cards(self) -> bool:
        """Whether the subscription says more than where events go (a repeat limit, compact cards, no
        broadcast, no mentions)."""
        return self.repeat_limit is not None or self.compact or not (self.broadcast and self.mentions)

    @cached_property
    def _matcher(self) -> _Matcher:
        outcomes = frozenset(self.outcomes) if self.outcomes and "any" not in self.outcomes else None
        return _Matcher(
            events=frozenset(self.events) or None,
            outcomes=outcomes,
            globs=tuple(
                (name, values, _any_glob(_branch_globs(p) if name == "branches" else p))
                for name, values in _GLOB_FILTERS
                if (p := getattr(self, name))
            ),
            stages=_any_glob(self.stages) if self.stages else None,
            reasons=reasons_meant(self.reasons) if self.reasons else None,
            tags=tuple((key, _any_glob([pattern])) for key, pattern in self.tags.items()),
            actors_include=frozenset(self.actors_include) or None,
            actors_exclude=frozenset(self.actors_exclude) or None,
        )

    @property
    def filters_run_facts(self) -> bool:
        """Whether the subscription keeps or leaves out events by what only the Build API may tell of their run
        (the branch it built, why it started)."""
        return bool(self.branches or self.reasons)

    @property
    def filters_actors(self) -> bool:
        """Whether the subscription keeps or leaves out events by who did them."""
        return bool(self.actors_include or self.actors_exclude)

    def takes_outcome(self, event: DomainEvent) -> bool:
        """Whether the outcome filter (if any) lets ``event`` through."""
        outcomes = self._matcher.outcomes
        # (a kind without an outcome in events comes, named or by default: the defaults' new models)
        return outcomes is None or event.outcome in outcomes or self._lists(event.kind, KINDS_WITHOUT_OUTCOME)

    def takes_actor(self, event: DomainEvent) -> bool:
        """Whether the actor filters (if any) let through who did ``event`` (nobody, where it does not say)."""
        matcher = self._matcher
        if matcher.actors_include is None and matcher.actors_exclude is None:
            return True
        person = event.actor
        actor = {n.lower() for n in (person.email, person.name, person.id) if n} if person else set()
        if matcher.actors_include is not None and not actor & matcher.actors_include:
            return False
        return not (matcher.actors_exclude is not None and actor & matcher.actors_exclude)

    def takes_reason(self, event: DomainEvent) -> bool:
        """Whether the reasons filter (if any) lets through why ``event``'s run started. A run whose reason is not
        known (the Build API did not answer) is not let through, as a run whose branch is not known is not by a
        branch filter; a kind without a run is, where ``events`` names it."""
        reasons = self._matcher.reasons
        if reasons is None:
            return True
        reason = event.run_reason
        if reason is None:
            return event.kind not in KINDS_SAYING["reasons"] and self._names(event.kind, KINDS_WITHOUT_REASON)
        return reason.lower() in reasons

    def follows(self, kinds: frozenset[str]) -> bool:
        """Whether the subscription names any of ``kinds`` in ``events`` (or names no kind)."""
        events = self._matcher.events
        return events is None or not events.isdisjoint(kinds)

    def follows_stages(self, names: Iterable[str]) -> bool:
        """Whether the stage filter (if any) follows any of the stages ``names`` (display names, own names)."""
        stages = self._matcher.stages
        return stages is None or any(_globbed(name, stages) for name in names)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of event the subscription takes: those ``events`` names (or its defaults), else every kind."""
        events = self._matcher.events
        return tuple(kind for kind in EVENT_KINDS if events is None or kind in events)

    def keeps_out(self, kind: str) -> str | None:
        """The filter that keeps out every event of ``kind``, as :meth:`matches` reads them (``events``, or a filter
        on what no event of that kind carries: ``outcomes``, ``pipelines``, ``tags``…); None where one may come."""
        matcher = self._matcher
        if matcher.events is not None and kind not in matcher.events:
            return "events"
        outcome_less = self._lists(kind, KINDS_WITHOUT_OUTCOME)  # (named in events: any outcome filter passes it)
        if matcher.outcomes is not None and matcher.outcomes.isdisjoint(OUTCOMES_OF[kind]) and not outcome_less:
            return "outcomes"
        for name, _, _ in matcher.globs:
            moot = name == "environments" and self._names(kind, KINDS_WITHOUT_ENVIRONMENT)
            if kind not in KINDS_SAYING[name] and not moot:
                return name
        runless = self._names(kind, KINDS_WITHOUT_REASON)
        if matcher.reasons is not None and kind not in KINDS_SAYING["reasons"] and not runless:
            return "reasons"
        stageless = self._names(kind, KINDS_WITHOUT_STAGE)
        if matcher.stages is not None and kind not in KINDS_SAYING["stages"] and not stageless:
            return "stages"
        if matcher.tags and kind not in KINDS_SAYING["tags"]:
            return "tags"
        return None

    def kinds_carrying(self) -> tuple[str, ...]:
        """The kinds whose events may carry everything the filters look at (an outcome they name, a pipeline, a
        tag…): those that ``events`` could name for each filter to apply (and not be passed over)."""
        every_kind = replace(self, events=(), defaulted=False)
        return tuple(kind for kind in EVENT_KINDS if every_kind.keeps_out(kind) is None)

    def _names(self, kind: str, kinds_without: frozenset[str]) -> bool:
        """Whether ``kind`` is one of ``kinds_without`` (kinds that never carry what a filter looks at) and the
        subscription names it in ``events`` (``subscribe``'s defaults name none): that filter then does not hold
        its events back."""
        return not self.defaulted and self._lists(kind, kinds_without)

    def _lists(self, kind: str, kinds_without: frozenset[str]) -> bool:
        """Whether ``kind`` is one of ``kinds_without`` and in ``events``, named or by default."""
        events = self._matcher.events
        return events is not None and kind in events and kind in kinds_without

    def matches(
        self,
        event: DomainEvent,
        *,
        ignoring_actor: bool = False,
        ignoring_kind: bool = False,
        ignoring_branch: bool = False,
        ignoring_stage: bool = False,
        ignoring_reason: bool = False,
    ) -> bool:
        """Whether every filter given lets ``event`` through (an empty filter lets everything through);
        ``ignoring_actor``: every filter but the actor filters; ``ignoring_kind``: but the kinds and outcomes;
        ``ignoring_branch``: but the branches; ``ignoring_stage``: but the stages; ``ignoring_reason``: but the
        reasons."""
        matcher = self._matcher
        if not ignoring_kind:
            if matcher.events is not None and event.kind not in matcher.events:
                return False
            if not self.takes_outcome(event):
                return False
        for name, values_of, pattern in matcher.globs:
            if ignoring_branch and name == "branches":
                continue
            values = values_of(event)
            if not values and name == "environments" and self._names(event.kind, KINDS_WITHOUT_ENVIRONMENT):
                continue
            if not any(_globbed(value, pattern) for value in values):
                return False
        if matcher.stages is not None and not ignoring_stage:
            stage_names = _stage_names(event)
            named_without_stage = not stage_names and self._names(event.kind, KINDS_WITHOUT_STAGE)
            if not named_without_stage and not any(_globbed(n, matcher.stages) for n in stage_names):
                return False
        if matcher.reasons is not None and not ignoring_reason and not self.takes_reason(event):
            return False
        if matcher.tags:
            tags = {key.lower(): value for key, value in event.tags.items()}  # tag keys go without case too
            if not all(_globbed(tags.get(key.lower()), pattern) for key, pattern in matcher.tags):
                return False
        if not ignoring_actor and not self.takes_actor(event):
            return False
        if self.text_include and not any(p.search(event.text) for p in self.text_include):
            return False
        return not (self.text_exclude and any(p.search(event.text) for p in self.text_exclude))


@dataclass(frozen=True)
class Subscription:
    """Filters and where matching events go."""

    targets: tuple[ConversationAddress, ...]
    filters: Filters
    muted_until: datetime | None = None
    id: int | None = None

    def wants(
        self,
        event: DomainEvent,
        now: datetime,
        *,
        ignoring_actor: bool = False,
        ignoring_branch: bool = False,
        ignoring_kind: bool = False,
        ignoring_reason: bool = False,
    ) -> bool:
        if self.muted_until is not None and now < self.muted_until:
            return False
        return self.filters.matches(
            event,
            ignoring_actor=ignoring_actor,
            ignoring_branch=ignoring_branch,
            ignoring_kind=ignoring_kind,
            ignoring_reason=ignoring_reason,
        )


# An Azure DevOps project's id (a GUID), as a ``projects`` filter may name a project.
_PROJECT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def unknown_projects(projects: Iterable[str], configured: Sequence[str]) -> list[str]:
    """Of a ``projects`` filter's globs, those that match none of the projects Handoff follows (``configured``, the
    configuration's ``azure_devops.projects``): no event comes from them. A project's id is taken as known (only
    Azure DevOps knows which project it is), and so is every name where the configuration names a project by
    its id."""
    if any(_PROJECT_ID.match(project) for project in configured):
        return []
    names = [project.lower() for project in configured]
    return [p for p in projects if not _PROJECT_ID.match(p) and not any(_any_glob([p]).match(n) for n in names)]


def channel_addresses(settings: Settings, channel: str) -> tuple[ConversationAddress, ...]:
    """The conversations a configured channel name stands for."""
    configured = settings.channels[channel]
    found = []
    if configured.slack:
        found.append(ConversationAddress("slack", configured.slack))
    if configured.teams:
        found.append(ConversationAddress("teams", configured.teams))
    return tuple(found)


def configured_subscriptions(settings: Settings) -> list[Subscription]:
    def build(entry: SubscriptionSettings) -> Subscription:
        data = entry.model_dump(exclude={"channel", "muted_until"})
        return Subscription(channel_addresses(settings, entry.channel), Filters.from_mapping(data), entry.muted_until)

    return [build(entry) for entry in settings.subscriptions]


def stored_subscription(record: StoredSubscription) -> Subscription:
    return Subscription((record.conversation,), Filters.from_mapping(record.filters), record.muted_until, record.id)


def route(event: DomainEvent, subscriptions: Iterable[Subscription], now: datetime) -> set[ConversationAddress]:
    """Every conversation that some subscription wants this event in."""
    targets: set[ConversationAddress] = set()
    for subscription in subscriptions:
        if subscription.wants(event, now):
            targets.update(subscription.targets)
    return targets


def depends_on_actor(event: DomainEvent, subscriptions: Iterable[Subscription], now: datetime) -> bool:
    """Whether who did ``event`` may decide where it goes: some subscription would route it but for its actor
    filters (an event whose hook does not say who did it is then worth asking about)."""
    return any(s.filters.filters_actors and s.wants(event, now, ignoring_actor=True) for s in subscriptions)


def depends_on_run_facts(event: DomainEvent, subscriptions: Iterable[Subscription], now: datetime) -> bool:
    """Whether what the Build API tells of ``event``'s run (the branch it built, why it started) may decide where
    it goes: some subscription with a branch or reasons filter would route it but for those of them the event
    does not know (and its actor filters, where who did it is not known either: the Build API tells all three).
    A run's or stage's hook names neither: it is then worth asking about."""
    unknown_actor = event.actor is None
    unknown_branch = event.branch is None
    unknown_reason = event.run_reason is None
    return any(
        ((s.filters.branches and unknown_branch) or (s.filters.reasons and unknown_reason))
        and s.wants(
            event,
            now,
            ignoring_branch=unknown_branch,
            ignoring_reason=unknown_reason,
            ignoring_actor=unknown_actor,
        )
        for s in subscriptions
    )


def turned_away(
    event: DomainEvent,
    among: Iterable[ConversationAddress],
    subscriptions: Sequence[Subscription],
    now: datetime,
    *,
    failed_in: Sequence[str] = (),
) -> set[ConversationAddress]:
    """Of the conversations ``among`` (which show the event's card), those where the card is to be kept current
    quietly: a subscription there that follows the card (it names one of the kinds of its events, or none)
    turns away what was not known when the card was shown, and none there that follows the card takes the
    event (its kind aside: a stage's failure in a run whose card a run subscription showed is told there; a
    muted one takes nothing).

    What a subscription turns away: who did the event (its actor filters leave them out, or keep only others),
    or the stage the run failed in (``failed_in``: the stages the card's thread told failed, by display name
    and own name; its stage filter follows none of them), where its other filters take the event."""
    among = set(among)
    if not among or (event.actor is None and not failed_in):
        return set()
    if not any(s.filters.filters_actors or s.filters.stages for s in subscriptions):
        return set()
    kinds = _CARD_KINDS.get(event.kind, frozenset({event.kind}))
    turning: set[ConversationAddress] = set()
    taking: set[ConversationAddress] = set()
    for subscription in subscriptions:
        filters = subscription.filters
        there = among.intersection(subscription.targets)
        if not there or not filters.follows(kinds):
            continue
        by_actor = event.actor is not None and filters.filters_actors and not filters.takes_actor(event)
        by_stage = bool(failed_in) and not filters.follows_stages(failed_in)
        if by_actor or by_stage:
            if filters.matches(event, ignoring_actor=True, ignoring_kind=True, ignoring_stage=True):
                turning |= there
        elif subscription.wants(event, now, ignoring_kind=True) and filters.takes_outcome(event):
            taking |= there
    return turning - taking


def muted_there(
    event: DomainEvent, among: Iterable[ConversationAddress], subscriptions: Sequence[Subscription], now: datetime
) -> set[ConversationAddress]:
    """Of the conversations ``among`` (which show ``event``'s card), those where every subscription that follows
    the card (it names one of the kinds of its events, or none) is muted now: the card is kept current there, but
    nobody is called on and nothing is said in its thread until a mute ends. (Where such a subscription is not
    muted, the conversation is told as before: the mute of one subscription of runs does not silence another's;
    nor does a subscription of other kinds, models say, speak for the muted one that follows the card.) Where no
    subscription there follows the card (a command's run, say), every subscription there counts."""
    kinds = _CARD_KINDS.get(event.kind, frozenset({event.kind}))
    muted: set[ConversationAddress] = set()
    for conversation in among:
        subscribed = [s for s in subscriptions if conversation in s.targets]
        following = [s for s in subscribed if s.filters.follows(kinds)] or subscribed
        if following and all(s.muted_until is not None and now < s.muted_until for s in following):
            muted.add(conversation)
    return muted


@dataclass(frozen=True)
class TargetOptions:
    """How a conversation an event goes to wants its cards: its repeat limit (None: none), their format,
    whether alerts in their threads are broadcast to it, and whether failures @mention people there."""

    repeat_limit: timedelta | None = None
    compact: bool = False
    broadcast: bool = True
    mentions: bool = True


def route_with_options(
    event: DomainEvent, subscriptions: Iterable[Subscription], now: datetime
) -> dict[ConversationAddress, TargetOptions]:
    """Every conversation that some subscription wants this event in, with how it wants its cards.

    A conversation wanted by several subscriptions gets the most any of them asked for: no repeat limit if
    one of them has none, else the shortest; full cards unless every one of them asked for compact ones;
    broadcast alerts and mentions unless every one of them turned that off. Events without a repeat key
    are never limited.
    """
    wanting = [s for s in subscriptions if s.wants(event, now)]
    limited = any(s.filters.repeat_limit is not None for s in wanting) and event.repeat_key is not None
    targets: dict[ConversationAddress, TargetOptions] = {}
    for subscription in wanting:
        filters = subscription.filters
        limit = filters.repeat_limit if limited else None
        asked = TargetOptions(limit, filters.compact, filters.broadcast, filters.mentions)
        for target in subscription.targets:
            known = targets.get(target)
            if known is None:
                targets[target] = asked
                continue
            limit = (
                None
                if known.repeat_limit is None or asked.repeat_limit is None
                else min(known.repeat_limit, asked.repeat_limit)
            )
            targets[target] = TargetOptions(
                limit,
                known.compact and asked.compact,
                known.broadcast or asked.broadcast,
                known.mentions or asked.mentions,
            )
    return targets
